"""The applied roster as JSON: what a node without the town's files runs by (`tt node run --redis
URL --town-name T`): `[town]`'s settings, the agents, the custom `[models.X]`, `[git]`. The
controller's apply records it in Redis; a node and its agents rebuild the same frozen values.

Pure: no I/O. Never the tasks, `[[notify]]` (sinks are the leader's) nor the Redis URL.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
from enum import Enum
from functools import cache
from typing import Any, Union, get_args, get_origin, get_type_hints

from .desired import Desired

VERSION = 1
# What a node needs of the desired state; the rest (tasks, notify, digests) stays with the leader.
FIELDS = ("town", "agents", "models", "description", "default_agent", "default_role", "git")


def roster_json(desired: Desired) -> str:
    """The roster of `desired` as compact JSON with sorted keys (equal rosters, equal text)."""
    town = dataclasses.replace(desired.town, redis="", follow=None)
    data: dict[str, Any] = {name: _plain(getattr(desired, name)) for name in FIELDS}
    data["town"] = _plain(town)
    data["v"] = VERSION
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def roster_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def roster_from_json(text: str) -> Desired:
    """The `Desired` (no tasks) `roster_json` wrote; ValueError when it cannot be read: not
    JSON, written by a newer `tt` (its `v` above `VERSION`: what it added may be a restriction
    this version would not keep), or holding a key this version does not know (never dropped
    silently: it may be one)."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ValueError(f"the recorded roster is not JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("town"), dict):
        raise ValueError("the recorded roster has no [town]")
    version = data.get("v")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"the recorded roster has no valid version (v = {version!r})")
    if version > VERSION:
        raise NewerRoster(
            f"the recorded roster is version {version}, written by a newer tt; this tt reads "
            f"version {VERSION} at most"
        )
    unknown = sorted(set(data) - {*FIELDS, "v"})
    if unknown:
        raise ValueError(f"the recorded roster has keys this tt does not know: {unknown}")
    try:
        built = _build(Desired, {k: v for k, v in data.items() if k in FIELDS})
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"the recorded roster cannot be read: {e}") from e
    assert isinstance(built, Desired)
    return built


class NewerRoster(ValueError):
    """The roster was written by a newer `tt` than this one (`v` > `VERSION`)."""


def _plain(value: Any) -> Any:
    """Frozen values to JSON's: dataclasses to objects, enums to their values, tuples and
    frozensets to arrays."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (tuple, list, frozenset)):
        items = sorted(value) if isinstance(value, frozenset) else value
        return [_plain(v) for v in items]
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _build(hint: Any, value: Any) -> Any:
    """`value` (from JSON) as the type `hint` says: the inverse of `_plain`."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _build(options[0], value) if len(options) == 1 else value
    if origin is tuple:
        args = get_args(hint)
        if not isinstance(value, list):
            raise TypeError(f"expected a list for {hint}, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v) for v in value)
        return tuple(_build(a, v) for a, v in zip(args, value, strict=True))
    if origin is frozenset:
        return frozenset(_build(get_args(hint)[0], v) for v in value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object for {hint.__name__}, got {value!r}")
        hints = _hints(hint)
        fields = dataclasses.fields(hint)
        unknown = sorted(set(value) - {f.name for f in fields})
        if unknown:
            raise ValueError(f"{hint.__name__} has keys this tt does not know: {unknown}")
        known = {f.name for f in fields if f.init}
        return hint(**{k: _build(hints[k], v) for k, v in value.items() if k in known})
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
