"""store: Redis, every key (`keys`), the one redis door (`client`, with its lean client), task/
agent/mail operations and the Lua scripts; may import `plan`, `spec`, `server` and the base
modules, never `agents`/`control`.
"""
