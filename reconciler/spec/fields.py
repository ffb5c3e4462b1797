"""Typed reads of single fields from parsed TOML tables, after the schema check has run.

The readers are lenient: a value of the wrong type reads as absent, because `schemacheck` has
reported it already. Only what the schema cannot express (duration text, name rules) is
reported here, on the file's `TomlDoc`. No rule that relates two fields belongs here.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

from ..errors import MASK, mask_passwords
from .bounds import quoted
from .durations import MAX_SECONDS, parse_duration
from .locate import JsonPath
from .names import RESERVED_AGENT_NAMES, name_problem, slug
from .tomldoc import TomlDoc

E = TypeVar("E", bound=Enum)

# The schemas' `maximum` of an amount in USD (budgets).
MAX_USD = 1e9
# The schemas' `maxLength` of a duration string.
MAX_DURATION_TEXT = 64
# Durations where zero would mean "never wait" and spin or kill at once.
POSITIVE_DURATIONS = frozenset(
    {"heartbeat", "lease", "resync", "task_timeout", "timeout", "stall_after", "check_timeout"}
)
# `stall_after = "off"` (or 0) of the town, an agent or a task turns the no-progress check off
# (read as 0); a model's `stall_after`, its grace after a stall pattern, stays positive.
OFF = "off"


def _may_be_off(path: JsonPath, key: str) -> bool:
    return key == "stall_after" and path[:1] != ("models",)


def table(data: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    value = data.get(key) if data is not None else None
    return value if isinstance(value, dict) else {}


def opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def strs(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    return tuple(v for _, v in indexed_strs(data, key))


def indexed_strs(data: Mapping[str, Any], key: str) -> list[tuple[int, str]]:
    """(index, item) of the strings of an array; indices stay true to the file for paths."""
    value = data.get(key)
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, str)]


def choice(kind: type[E], value: str | None, default: E) -> E:
    try:
        return kind(value)
    except ValueError:  # absent, or not one of the values: the schema has reported it
        return default


def integer(data: Mapping[str, Any], key: str, default: int, bounds: tuple[int, int]) -> int:
    """An integer within `bounds` (the schema's range, `bounds.int_range`), else `default`: the
    schema has reported a float (3.0, 1e9, nan), a bool and a number out of range."""
    value = data.get(key)
    if type(value) is not int or not bounds[0] <= value <= bounds[1]:
        return default
    return value


def usd(data: Mapping[str, Any], key: str) -> float | None:
    """An amount of US dollars (a budget): a number from 0 up, else absent (the schema has
    reported a string, a bool, a negative number, nan or inf)."""
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    amount = float(value)
    return amount if 0 <= amount <= MAX_USD else None


def duration(doc: TomlDoc, path: JsonPath, data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None  # absent, or a type error the schema has reported
    off = _may_be_off(path, key)
    if off and value == OFF:
        return 0.0
    if isinstance(value, str) and len(value) > MAX_DURATION_TEXT:
        return None  # the schema has reported its length
    if not isinstance(value, str) and (value < 0 or value > MAX_SECONDS):
        return None  # the schema has reported its range (NaN is not out of it: parsed below)
    try:
        seconds = parse_duration(value)
    except ValueError as e:
        doc.report((*path, key), str(e))
        return None
    if seconds == 0 and key in POSITIVE_DURATIONS and not off:
        doc.report((*path, key), f"{key} must be greater than zero")
        return None
    return seconds


def env(data: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    values = table(data, "env")
    return tuple(sorted((k, v) for k, v in values.items() if isinstance(v, str)))


def check_name(doc: TomlDoc, path: JsonPath, value: str, what: str, *, agent: bool = False) -> bool:
    """Check a name or id (it becomes a Redis key and a path); report and return False if bad."""
    if agent and value.lower() in RESERVED_AGENT_NAMES:
        doc.report(path, f"'{value}' is a reserved name (a mailbox), not an agent")
        return False
    why = name_problem(value)
    if why is None:
        return True
    fixed = slug(mask_passwords(value).replace(MASK, ""))  # no password even as a slug
    hint = f"for example '{fixed}'" if fixed and fixed != value else None
    doc.report(path, f"invalid {what} {quoted(value)}: {why}", hint)
    return False
