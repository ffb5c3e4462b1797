"""How an event prints, wherever events print (`tt events`, the conductor's lines, the live view):
a line for people, with times as ISO-8601 local times (and "in 5s" for one still to come), or a
JSON object for scripts, with times as unix-epoch numbers (`reconciler/spec/events.py`,
shared with the HTTP API and the notifier). Never a raw float on a person's line.
"""

from __future__ import annotations

import time

from reconciler.spec.durations import format_duration
from reconciler.spec.events import event_json as event_json
from reconciler.spec.events import is_time, seconds_of

# Shown by `tt conductor` / `apply --wait` lines and the live view only as their effects.
QUIET = ("apply", "tasks.created", "task.ready", "leader.acquired")


def event_line(fields: dict[str, str], now: float | None = None) -> str:
    """`23:50:12 task.retrying task=build … next_attempt_at=23:50:17 (in 5s)`."""
    now = time.time() if now is None else now
    ts = seconds_of(fields.get("ts", ""))
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
    seconds = seconds_of(value) if is_time(key) else None
    if seconds is None:
        return value
    text = local_time(seconds, now)
    if seconds - now >= 0.5:
        text += f" (in {format_duration(round(seconds - now))})"
    return text


def _short(value: str, most: int = 8) -> str:
    """A long list of ids (`tasks.created` names up to 500) cut for a terminal line."""
    words = value.split(" ")
    if len(words) <= most:
        return value
    return " ".join(words[:most]) + f" …(+{len(words) - most})"


__all__ = ["QUIET", "event_json", "event_line", "is_time", "local_time"]
