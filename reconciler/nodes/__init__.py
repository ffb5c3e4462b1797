"""nodes: the node process (`tt node run`: it starts, adopts and stops the agents placed on its
node) and the nodes' read-out and drain (`tt nodes`, `tt node drain`); may import every other
package but `api`, the one layer above it.
"""
