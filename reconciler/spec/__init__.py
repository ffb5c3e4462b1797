"""spec: the files as validated, frozen desired state (loader, checks, schema, names, durations,
presets). Pure of I/O but reading the two files; may import only the base modules beside it.
"""
