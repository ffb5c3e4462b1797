"""Usage and rate limits of a model's provider: which provider a model runs on, and when the
limit a CLI's message names resets.

Pure: text and clocks in, values out. The worker reports an attempt classed `usage_limit` or
`rate_limited` with what this finds (`store.turn.Limit`); the store pauses the provider and
decides the backoff when no reset is named.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..spec.desired import ModelSpec
from ..store.turn import Limit, Turn
from .exitclass import ExitClass, limit_line
from .ledger import Ended

LIMIT_CLASSES = (ExitClass.USAGE_LIMIT, ExitClass.RATE_LIMITED)
REASONS = {ExitClass.USAGE_LIMIT: "usage limit", ExitClass.RATE_LIMITED: "rate limit"}

# Claude's "Claude AI usage limit reached|1712345678": the reset as unix seconds.
EPOCH = re.compile(r"\|\s*(\d{10})(?:\d{3})?\b")
# "resets 3pm", "resets at 15:30", "reset at 3:30 pm (Europe/Berlin)", "resets 11am (UTC)".
CLOCK = re.compile(
    r"\bresets?\s+(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*([ap]\.?m\.?)?"
    r"(?:\s*\(([A-Za-z_]+(?:/[A-Za-z0-9_+\-]+)*)\))?",
    re.IGNORECASE,
)
# "try again in 2 hours", "in 30 minutes", "retry in 41.7s", "in 2 hours 5 minutes".
UNIT = r"(\d+(?:\.\d+)?)\s*(hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)\b"
RELATIVE = re.compile(rf"\b(?:in|after)\s+((?:{UNIT}[\s,]*(?:and\s+)?)+)", re.IGNORECASE)
SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}
# A clock time passed less than this long ago is the reset that just happened (the message was
# written before it, or the clocks differ), not the same time tomorrow: no reset named, the
# provider's short backoff applies.
JUST_PASSED = 3 * 3600.0


def provider_of(model: ModelSpec) -> str:
    """The account a model's CLI runs on: its `provider`, else its command's name (the
    preset family: codex and codex-mini are both codex), else the model's name when the
    command starts with a placeholder ({python})."""
    if model.provider:
        return model.provider
    first = model.command[0] if model.command else ""
    if not first or first.startswith("{"):
        return model.name
    return os.path.basename(first) or model.name


def reset_at(text: str, now: float, tz: tzinfo | None = None) -> float | None:
    """When the limit `text` names resets (unix seconds), or None when it names none. A clock
    time is in the zone it names, else `tz` (default: this machine's local time), at its
    next occurrence after `now`, unless it passed less than `JUST_PASSED` ago (None: it has
    just reset). How long a pause may last is the store's to cap (`limit_pause_max`)."""
    if m := EPOCH.search(text):
        return float(m.group(1))
    if m := RELATIVE.search(text):
        total = 0.0
        for amount, unit in re.findall(UNIT, m.group(1), re.IGNORECASE):
            total += float(amount) * SECONDS[unit[0].lower()]
        return now + total if total > 0 else None
    if m := CLOCK.search(text):
        return _next_clock(m, now, tz)
    return None


def _next_clock(m: re.Match[str], now: float, tz: tzinfo | None) -> float | None:
    hour, minute = int(m.group(1)), int(m.group(2) or 0)
    meridiem = (m.group(3) or "").lower().replace(".", "")
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    zone = tz
    if m.group(4):
        try:
            zone = ZoneInfo(m.group(4))
        except (ZoneInfoNotFoundError, ValueError):
            zone = tz
    # Naive local time without a zone: its timestamp() follows the machine's DST rules.
    base = datetime.fromtimestamp(now) if zone is None else datetime.fromtimestamp(now, zone)
    today = base.replace(hour=hour, minute=minute, second=0, microsecond=0)
    # Its last occurrence and its next one (wall-clock arithmetic: the same time a day apart).
    if today.timestamp() > now:
        last, after = today - timedelta(days=1), today
    else:
        last, after = today, today + timedelta(days=1)
    if now - last.timestamp() < JUST_PASSED:
        return None  # "resets 3pm" read at 15:30: it has reset, not tomorrow's
    return after.timestamp()


def limit_of(verdict: Ended, provider: str, now: float) -> Limit | None:
    """The usage or rate limit a failed attempt's run was classed with (`verdicts`: from the
    CLI's own signals, never from its text here), with its reset if the limit's own message
    line names one (not "12 passed in 0.4s" from a test run above it), else None."""
    cls = verdict.exit_class
    if verdict.ok or cls not in LIMIT_CLASSES:
        return None
    line = limit_line(verdict.text, cls)
    reset = None if line is None else reset_at(line, now)
    return Limit(cls.value, reset, f"{provider} {REASONS[cls]}")


# While its provider is paused or a budget is reached, an idle worker is woken on its control
# list (`tt resume-provider`, a raised budget, a stop); it looks again this often at most, in
# case a wake was missed.
BLOCKED_LOOK = 60.0


def idle_wait(turn: Turn, keys: list[str], now: float) -> tuple[float, list[str]]:
    """How long and on what an idle worker blocks (`keys`: its control list first, then its
    queues and mail bell): at most 5 s, or until the next retry timer; only on its control
    list while its provider is paused (until the reset, no sleep past it, no 5 s polling) or a
    budget is reached (until woken), `BLOCKED_LOOK` at the longest."""
    if turn.paused_until is not None:
        return max(0.05, min(BLOCKED_LOOK, turn.paused_until - now)), keys[:1]
    if turn.budget is not None:
        return BLOCKED_LOOK, keys[:1]
    timeout = 5.0 if turn.next_timer is None else min(5.0, turn.next_timer)
    return max(0.05, timeout), keys
