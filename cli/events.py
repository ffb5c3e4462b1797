"""How an event prints, wherever events print (`tt events`, the conductor's lines, the live view):
a line for people, with times as ISO-8601 local times (and "in 5s" for one still to come), or a
JSON object for scripts, with times as unix-epoch numbers. Never a raw float on a person's line.
"""

from __future__ import annotations

import time
from typing import Any

from reconciler.spec.durations import format_duration

# Shown by `tt conductor` / `apply --wait` lines and the live view only as their effects.
QUIET = ("apply", "tasks.created", "task.ready", "leader.acquired")


def is_time(key: str) -> bool:
    """`ts` and every `…_at` / `…_until` field hold unix seconds."""
    return key == "ts" or key.endswith(("_at", "_until"))


# Version 1 of the event format for scripts (`tt events -o json`): fields are only ever added.
# Stored as strings in the Redis stream; typed here by name.
COUNTS = frozenset({"count", "ready", "attempt", "pid", "epoch", "generation", "exit_code"})
FLAGS = frozenset({"urgent", "permanent"})
LISTS = {"tasks": " ", "to": ","}


def event_json(event_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """The event for `-o json` (version 1): `ts` and every `…_at` field an epoch number, counts
    (`count`, `ready`, `attempt`, `pid`, `epoch`, `generation`, `exit_code`) integers, `urgent`
    and `permanent` booleans, `tasks` and `to` arrays of names; every other field a string."""
    out: dict[str, Any] = {"id": event_id}
    for key, value in fields.items():
        out[key] = _typed(key, value)
    return out


def _typed(key: str, value: str) -> Any:
    if is_time(key):
        seconds = _seconds(value)
        return value if seconds is None else seconds
    if key in COUNTS:
        try:
            return int(value)
        except ValueError:
            return value  # written by a later tt that changed its meaning: kept as stored
    if key in FLAGS and value in ("0", "1"):
        return value == "1"
    if key in LISTS:
        return [v for v in value.split(LISTS[key]) if v]
    return value


def event_line(fields: dict[str, str], now: float | None = None) -> str:
    """`23:50:12 task.retrying task=build … next_attempt_at=23:50:17 (in 5s)`."""
    now = time.time() if now is None else now
    ts = _seconds(fields.get("ts", ""))
    rest = " ".join(
        f"{key}={_shown(key, value, now)}"
        for key, value in fields.items()
        if key not in ("type", "ts") and value
    )
    return f"{local_time(now if ts is None else ts, now)} {fields.get('type', '?')} {rest}".rstrip()


def local_time(seconds: float, now: float) -> str:
    """ISO-8601 local time: the time of day when it is today, else the date and the time."""
    at = time.localtime(seconds)
    if at[:3] == time.localtime(now)[:3]:
        return time.strftime("%H:%M:%S", at)
    return time.strftime("%Y-%m-%dT%H:%M:%S", at)


def _shown(key: str, value: str, now: float) -> str:
    if key == "tasks":
        return _short(value)
    seconds = _seconds(value) if is_time(key) else None
    if seconds is None:
        return value
    text = local_time(seconds, now)
    if seconds - now >= 0.5:
        text += f" (in {format_duration(round(seconds - now))})"
    return text


def _seconds(value: str) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _short(value: str, most: int = 8) -> str:
    """A long list of ids (`tasks.created` names up to 500) cut for a terminal line."""
    words = value.split(" ")
    if len(words) <= most:
        return value
    return " ".join(words[:most]) + f" …(+{len(words) - most})"
