"""control: one reconcile pass (apply), the loop, healing, the leader lease, verbs, reports, and
`watch` (the only door to watchfiles); the top layer: may import every other package.
"""
