"""control: one reconcile pass (apply), the loop, healing, the leader lease, verbs, reports, the
operations the CLI and the API share (`townops`), and `watch` (the only door to watchfiles); may
import every other package but `api`, the one layer above it.
"""
