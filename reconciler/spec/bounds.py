"""The limits that keep a check of any file small and quick, and how a long value is quoted.

The ranges of fields are written once, in the JSON schemas (`minimum`, `maximum`, `maxLength`,
`maxItems`, `maxProperties`; `schemacheck.int_range` reads an integer's); what a schema cannot
say lives here: how large a file may be, and how many problems are worth listing. No I/O.
"""

from __future__ import annotations

import json

# A 20,000-task tasks.toml (the schema's `maxItems`) is ~3.5 MB: 8 MiB leaves room for long
# descriptions and keeps a check of the largest file within a few seconds and ~300 MB.
MAX_FILE_BYTES = 8 * 1024 * 1024
# And at most this many lines and commas (a bound on its values: see `reading.too_large`). A
# 20,000-task file has ~180,000; 500,000 values cost the TOML parser ~100-300 MB.
MAX_FILE_VALUES = 500_000
# Problems listed per file; a file with more gets one last line saying how many were left out.
MAX_PROBLEMS = 100
# How much of a value a message quotes.
SHOWN_CHARS = 60


def quoted(value: str) -> str:
    """`value` quoted for a message (JSON string syntax): its start only when it is long."""
    if len(value) <= SHOWN_CHARS:
        return json.dumps(value)
    return f'{json.dumps(value[:SHOWN_CHARS])[:-1]}…"'
