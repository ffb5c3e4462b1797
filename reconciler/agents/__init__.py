"""agents: the worker process of an agent, its model runs, presets and prompts, and `supervisor`
(the only door to processes); may import `store`, `plan`, `spec` and the base, never `control`.
"""
