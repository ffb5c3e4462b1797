"""The town's events for scripts (`tt events -o json`, the API's `/v1/events` and its stream):
each stored event (strings in the Redis stream) as a typed JSON object. Pure; no I/O.
"""

from __future__ import annotations

from typing import Any

# Version 1 of the event format for scripts: fields are only ever added. Stored as strings in
# the Redis stream; typed here by name.
COUNTS = frozenset({"count", "ready", "attempt", "pid", "epoch", "generation", "exit_code"})
FLAGS = frozenset({"urgent", "permanent"})
LISTS = {"tasks": " ", "to": ","}
NUMBERS = frozenset({"seconds"})  # a duration (the `apply` event's)


def is_time(key: str) -> bool:
    """`ts` and every `…_at` / `…_until` field hold unix seconds."""
    return key == "ts" or key.endswith(("_at", "_until"))


def event_json(event_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """The event for `-o json` (version 1): `ts` and every `…_at` field an epoch number, counts
    (`count`, `ready`, `attempt`, `pid`, `epoch`, `generation`, `exit_code`) integers, `seconds` a
    number, `urgent`
    and `permanent` booleans, `tasks` and `to` arrays of names; every other field a string."""
    out: dict[str, Any] = {"id": event_id}
    for key, value in fields.items():
        out[key] = _typed(key, value)
    return out


def _typed(key: str, value: str) -> Any:
    if is_time(key):
        seconds = seconds_of(value)
        return value if seconds is None else seconds
    if key in COUNTS:
        try:
            return int(value)
        except ValueError:
            return value  # written by a later tt that changed its meaning: kept as stored
    if key in NUMBERS:
        number = seconds_of(value)
        return value if number is None else number
    if key in FLAGS and value in ("0", "1"):
        return value == "1"
    if key in LISTS:
        return [v for v in value.split(LISTS[key]) if v]
    return value


def seconds_of(value: str) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
