"""Durations as written in town.toml and tasks.toml: seconds, or strings like "1h30m" / "500ms".

One pure function, `parse_duration`, turning either form into float seconds. It does no I/O and
knows nothing about which field it parses; the loader decides where zero is allowed. No
duration is longer than 30 days (`MAX_SECONDS`, also the schemas' `maximum` for numbers).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

MAX_SECONDS = 30 * 86400.0
UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

# "ms" is listed before "m" so that "500ms" is not read as 500 minutes followed by "s".
_PART = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)")
_EXAMPLES = '"90s", "5m", "1h30m" or "500ms"'


def parse_duration(value: int | float | str) -> float:
    """Seconds as a float. A number is seconds; a string is one or more `<number><unit>` parts
    (units ms, s, m, h, d). Raise ValueError with a message a person can act on."""
    if isinstance(value, bool):
        # bool is an int subclass; `timeout = true` is a mistake, not one second.
        raise ValueError(f"expected a duration, got {str(value).lower()}")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:  # an integer beyond any float
            seconds = MAX_SECONDS + 1 if value > 0 else -1.0
        return _checked(seconds, _shown(value))
    if not isinstance(value, str):
        raise ValueError(f"expected a duration, got {type(value).__name__}")
    return _checked(_parse_text(value), _shown(value))


def format_duration(seconds: float) -> str:
    """The shortest string `parse_duration` reads back as `seconds` (for messages and output)."""
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


# A tasks.toml with 10,000 tasks tends to repeat a handful of timeouts.
@lru_cache(maxsize=256)
def _parse_text(text: str) -> float:
    stripped = text.strip()
    if not stripped:
        raise ValueError(
            f"invalid duration '': use a number of seconds or a string like {_EXAMPLES}"
        )
    if re.fullmatch(r"\d+(?:\.\d+)?", stripped):
        raise ValueError(
            f'invalid duration {_shown(text)}: a string needs a unit, like "{stripped[:20]}s" '
            "(or write the number of seconds without quotes)"
        )
    if stripped.startswith("-"):
        raise ValueError(f"invalid duration {_shown(text)}: it must not be negative")
    total = 0.0
    pos = 0
    while pos < len(stripped):
        match = _PART.match(stripped, pos)
        if match is None:
            raise ValueError(
                f"invalid duration {_shown(text)}: expected <number><unit> parts with units "
                f"{', '.join(UNITS)}, like {_EXAMPLES}"
            )
        total += float(match.group(1)) * UNITS[match.group(2)]
        pos = match.end()
    return total


def _shown(value: object) -> str:
    """`value` as a message quotes it: its start only, when it is long."""
    if isinstance(value, int) and abs(value) > 10**40:
        return "a number beyond ±1e40"  # (repr fails past 4,300 digits)
    text = repr(value)
    return text if len(text) <= 42 else f"{text[:40]}…"


def _checked(seconds: float, shown: str) -> float:
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"invalid duration {shown}: it must be a finite number of seconds")
    if seconds < 0:
        raise ValueError(f"invalid duration {shown}: it must not be negative")
    if seconds > MAX_SECONDS:
        raise ValueError(f"invalid duration {shown}: it must be at most 30 days")
    return seconds
