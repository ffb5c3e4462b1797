"""plan: the pure diff of desired against observed state, the task graph, the action records.
No I/O, no clock of its own; may import only `spec` and the base modules.
"""
