"""town.toml + tasks.toml → a validated, frozen `spec.Desired`, or every problem at once.

Problems carry file, line and JSON path (`tasks.toml:14: $.tasks[2].agent: ...`). Entry points:
`load(paths)`, `load_settings(paths)` (only [town], to find Redis), `check(paths)` (a report that
never raises), and the same on strings: `load_texts`, `check_texts`, `validate_texts` (`edit`'s
Validate). It reads the two files and nothing else: no Redis, no processes, no environment.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from . import models
from .durations import format_duration, parse_duration
from .errors import Problem, TtError, ValidationFailed
from .names import NAME_RE, RESERVED_AGENT_NAMES, did_you_mean, is_valid_name
from .spec import (
    AgentSpec,
    Desired,
    ModelSpec,
    Policy,
    PromptMode,
    RestartPolicy,
    TaskSpec,
    TownSettings,
)
from .town import TASKS_FILE, TOWN_FILE, TownPaths

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Key = str | int
E = TypeVar("E", bound=Enum)
Path_ = tuple[Key, ...]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# Durations where zero would mean "never wait" and spin or kill at once.
POSITIVE_DURATIONS = frozenset({"heartbeat", "lease", "resync", "task_timeout", "timeout"})
POLICY_DURATIONS = (
    "heartbeat",
    "lease",
    "retry_backoff",
    "retry_backoff_max",
    "restart_backoff",
    "restart_backoff_max",
    "crash_loop_window",
    "quarantine",
    "resync",
    "task_timeout",
)


@dataclass(frozen=True)
class Validation:
    """The outcome of checking a town's files: the desired state, or what is wrong with them."""

    desired: Desired | None
    problems: tuple[Problem, ...]
    town: str | None
    agents: int
    tasks: int

    @property
    def valid(self) -> bool:
        return self.desired is not None


# -- public entry points -----------------------------------------------------------------------


def load(paths: TownPaths) -> Desired:
    """The town's desired state; `ValidationFailed` with every problem when the files are bad."""
    return _desired_or_raise(check(paths))


def check(paths: TownPaths) -> Validation:
    """Read and check both files (no tasks.toml means no tasks); never raises on bad input."""
    problems: list[Problem] = []
    town = _read(paths.town_file, problems, required=True)
    tasks = _read(paths.tasks_file, problems, required=False)
    if town is None:
        return Validation(None, tuple(problems), None, 0, 0)
    return _check(_Doc(TOWN_FILE, *town), _Doc(TASKS_FILE, *tasks) if tasks else None, problems)


def load_texts(town_text: str, tasks_text: str | None) -> Desired:
    """`load` on would-be file contents (nothing is read); `tasks_text=None` means no tasks."""
    return _desired_or_raise(check_texts(town_text, tasks_text))


def check_texts(town_text: str, tasks_text: str | None) -> Validation:
    """`check` on would-be file contents."""
    town = _Doc(TOWN_FILE, town_text, _sha256(town_text.encode()))
    tasks = (
        None if tasks_text is None else _Doc(TASKS_FILE, tasks_text, _sha256(tasks_text.encode()))
    )
    return _check(town, tasks, [])


def validate_texts(town_text: str, tasks_text: str) -> None:
    """Raise `ValidationFailed` unless the pair is valid: the `Validate` callable of `edit`."""
    load_texts(town_text, tasks_text)


def load_settings(paths: TownPaths) -> TownSettings:
    """Only town.toml's [town] (the fast path every command takes to find Redis)."""
    problems: list[Problem] = []
    read = _read(paths.town_file, problems, required=True)
    if read is None:
        raise ValidationFailed(problems)
    doc = _Doc(TOWN_FILE, *read, problems=problems)
    data = doc.parse()
    if data is None:
        raise ValidationFailed(problems)
    _schema_check(doc, "settings", data)
    custom = data.get("models")
    settings = _town_settings(doc, data.get("town"), custom if isinstance(custom, dict) else {})
    if problems:
        raise ValidationFailed(_sorted(problems))
    return settings


def waits_for(desired: Desired) -> dict[str, tuple[str, ...]]:
    """What each task waits for under the file semantics: `parent` (a working parent runs first;
    a group waits for its children), `sequential` groups, and `depends_on`."""
    has_default = bool(desired.default_agent or desired.default_role)
    edges = _edges(desired.tasks, has_default)
    ids = desired.task_ids()
    return {ids[i]: tuple(ids[j] for j in edges[i]) for i in range(len(ids))}


# -- reading and parsing -----------------------------------------------------------------------


def _read(path: Path, problems: list[Problem], *, required: bool) -> tuple[str, str] | None:
    """(text, sha256 of the bytes), or None with a problem (or silently, for a missing optional)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if required:
            problems.append(
                Problem(path.name, "$", "file not found", hint="run `tt init` to create a town")
            )
        return None
    except OSError as e:
        problems.append(Problem(path.name, "$", f"cannot read it: {e.strerror or e}"))
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        problems.append(
            Problem(path.name, "$", f"not UTF-8 text (byte {e.start} is {raw[e.start]:#04x})", line)
        )
        return None
    return text, _sha256(raw)


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class _Doc:
    """One file: its text, parsed data and problems. Lines are located only when a problem is."""

    def __init__(
        self, file: str, text: str, digest: str, problems: list[Problem] | None = None
    ) -> None:
        self.file = file
        self.text = text
        self.digest = digest
        self.problems: list[Problem] = [] if problems is None else problems
        self._lines: dict[Path_, int] | None = None

    def parse(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = tomllib.loads(self.text)
            return data
        except tomllib.TOMLDecodeError as e:
            message, line, column = _toml_error(e)
            self.problems.append(Problem(self.file, "$", f"invalid TOML: {message}", line, column))
        except RecursionError:
            self.problems.append(Problem(self.file, "$", "invalid TOML: nested too deeply"))
        return None

    def report(
        self, path: Path_, message: str, hint: str | None = None, line_at: Path_ | None = None
    ) -> None:
        """Add a problem at `path`; its line is that of `line_at` (default: `path`)."""
        self.problems.append(
            Problem(self.file, _json_path(path), message, self.line(line_at or path), hint=hint)
        )

    def line(self, path: Path_) -> int | None:
        if self._lines is None:
            self._lines = _index_lines(self.text)
        while path:
            found = self._lines.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return None


def _toml_error(e: ValueError) -> tuple[str, int | None, int | None]:
    # tomllib puts the position in the message ("... (at line 3, column 7)"); 3.14 adds attributes.
    text = str(e)
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", text)
    if match:
        return text[: match.start()], int(match.group(1)), int(match.group(2))
    return text.replace(" (at end of document)", " at the end of the file"), None, None


def _json_path(path: Path_) -> str:
    out = "$"
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        elif re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]*", key):
            out += f".{key}"
        else:
            out += f"[{json.dumps(key)}]"
    return out


def _sorted(problems: list[Problem]) -> list[Problem]:
    rank = {TOWN_FILE: 0, TASKS_FILE: 1}
    return sorted(problems, key=lambda p: (rank.get(p.file, 2), p.line or 0))


def _desired_or_raise(result: Validation) -> Desired:
    if result.desired is None:
        raise ValidationFailed(list(result.problems))
    return result.desired


# -- locating a JSON path in TOML text ----------------------------------------------------------

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_DOTTED = rf"(?:{_BARE}|{_QUOTED})(?:\s*\.\s*(?:{_BARE}|{_QUOTED}))*"
_AOT_LINE = re.compile(rf"\s*\[\[\s*({_DOTTED})\s*\]\]\s*(?:#.*)?$")
_TABLE_LINE = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]\s*(?:#.*)?$")
_KEY_LINE = re.compile(rf"\s*({_DOTTED})\s*=")
_KEY_PART = re.compile(rf"{_BARE}|{_QUOTED}")
_QUOTED_RE = re.compile(_QUOTED)


def _split_key(dotted: str) -> tuple[str, ...]:
    parts = []
    for part in _KEY_PART.findall(dotted):
        if part.startswith('"'):
            try:
                parts.append(json.loads(part))
            except ValueError:  # a TOML-only escape such as \U0001F600: close enough here
                parts.append(part[1:-1])
        elif part.startswith("'"):
            parts.append(part[1:-1])
        else:
            parts.append(part)
    return tuple(parts)


class _Value:
    """Whether a value continues on the next lines (multi-line string, array or inline table)."""

    def __init__(self) -> None:
        self.string: str | None = None
        self.depth = 0

    @property
    def open(self) -> bool:
        return self.string is not None or self.depth > 0

    def feed(self, text: str) -> None:
        i, n = 0, len(text)
        while i < n:
            if self.string is not None:
                end = text.find(self.string, i)
                if end < 0:
                    return
                i, self.string = end + 3, None
                continue
            c = text[i]
            if c == "#":
                return
            if text.startswith('"""', i) or text.startswith("'''", i):
                self.string, i = text[i : i + 3], i + 3
            elif c in "\"'":
                match = _QUOTED_RE.match(text, i)
                i = match.end() if match else n
            else:
                self.depth += (c in "[{") - (c in "]}")
                i += 1


def _index_lines(text: str) -> dict[Path_, int]:
    """The line of every table header and key, by JSON path (arrays of tables get their index).

    Best effort, for messages only: dotted keys and inline tables resolve to their key's line,
    values spanning lines to their first line; `_Doc.line` falls back to the nearest parent."""
    lines: dict[Path_, int] = {}
    current: dict[Path_, int] = {}  # index of the last [[x]] seen, per resolved array path
    prefix: Path_ = ()
    value = _Value()

    def resolve(raw: tuple[str, ...]) -> Path_:
        out: list[Key] = []
        for part in raw:
            out.append(part)
            if tuple(out) in current:
                out.append(current[tuple(out)])
        return tuple(out)

    def mark(path: Path_, lineno: int) -> None:
        for end in range(1, len(path) + 1):
            lines.setdefault(path[:end], lineno)

    # TOML counts lines by "\n" only; str.splitlines() would also split on \x0c, \u2028 ...
    for lineno, line in enumerate(text.split("\n"), 1):
        if value.open:
            value.feed(line)
            continue
        if match := _AOT_LINE.match(line):
            raw = _split_key(match.group(1))
            array = (*resolve(raw[:-1]), raw[-1])
            current[array] = current.get(array, -1) + 1
            prefix = (*array, current[array])
            mark(prefix, lineno)
        elif match := _TABLE_LINE.match(line):
            prefix = resolve(_split_key(match.group(1)))
            mark(prefix, lineno)
        elif match := _KEY_LINE.match(line):
            mark((*prefix, *_split_key(match.group(1))), lineno)
            value.feed(line[match.end() :])
    return lines


# -- schema ------------------------------------------------------------------------------------

Check = Callable[[object], bool]


def _schema_dir() -> Path:
    # In a wheel the schemas sit inside the package; in a source checkout beside it.
    here = Path(__file__).resolve().parent
    for folder in (here / "schema", here.parent / "schema"):
        if (folder / "town.schema.json").is_file():
            return folder
    raise TtError(f"the JSON schemas are missing (looked in {here / 'schema'} and beside it)")


@cache
def _schema(which: str) -> dict[str, Any]:
    if which == "settings":
        # [town] alone, for load_settings: the other tables are not read on that path.
        town = _schema("town")
        return {
            "type": "object",
            "required": ["town"],
            "properties": {"town": town["properties"]["town"]},
            "$defs": town["$defs"],
        }
    schema: dict[str, Any] = json.loads((_schema_dir() / f"{which}.schema.json").read_text())
    return schema


@cache
def _validator(which: str) -> Any:
    # jsonschema costs ~80 ms to import and is needed only to explain an invalid document.
    import jsonschema  # type: ignore[import-untyped]

    return jsonschema.Draft202012Validator(_schema(which))


@cache
def _fast_check(which: str) -> Check:
    return _compile(_schema(which), _schema(which), {})


def _schema_check(doc: _Doc, which: str, data: dict[str, Any]) -> None:
    # The compiled predicate accepts a valid 10,000-task file in ~60 ms where jsonschema takes
    # ~0.5 s; jsonschema runs only to explain what the predicate rejected.
    if _fast_check(which)(data):
        return
    for error in _validator(which).iter_errors(data):
        _report_schema_error(doc, error)


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "an array",
    "object": "a table",
    "null": "nothing",
}


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"a string ({json.dumps(value)[:40]})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"


def _report_schema_error(doc: _Doc, error: Any) -> None:
    path: Path_ = tuple(error.absolute_path)
    kind, value, instance, schema = (
        error.validator,
        error.validator_value,
        error.instance,
        error.schema,
    )
    hint: str | None
    if kind == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        for key in instance:
            if key not in allowed:
                hint = did_you_mean(key, allowed) or f"known keys: {', '.join(allowed)}"
                doc.report((*path, key), f"unknown key '{key}'", hint)
    elif kind == "required":
        for key in value:
            if key not in instance:
                if not path and key == "town":
                    doc.report(path, "missing the [town] table", 'it needs at least name = "..."')
                else:
                    doc.report(path, f"missing required key '{key}'")
    elif kind == "type":
        if schema.get("title") == "duration":
            expected = schema["description"]
        else:
            types = [value] if isinstance(value, str) else value
            expected = " or ".join(_TYPE_WORDS.get(t, t) for t in types)
        hint = "write each task as a [[tasks]] table" if path == ("tasks",) else None
        doc.report(path, f"expected {expected}, got {_kind(instance)}", hint)
    elif kind == "enum":
        choices = ", ".join(json.dumps(c) for c in value)
        hint = did_you_mean(instance, value) if isinstance(instance, str) else None
        doc.report(path, f"must be one of {choices}, got {_kind(instance)}", hint)
    elif kind == "minimum":
        doc.report(path, f"must be at least {value}, got {instance}")
    elif kind in ("minItems", "minLength"):
        doc.report(path, "must not be empty")
    elif kind == "pattern" and "propertyNames" in error.relative_schema_path:
        doc.report((*path, instance), f"invalid key {json.dumps(instance)}: it must match {value}")
    elif kind == "pattern":
        doc.report(path, f"invalid value {json.dumps(instance)}: it must match {value}")
    else:
        doc.report(path, error.message)


def _compile(schema: object, root: dict[str, Any], defs: dict[str, Check]) -> Check:
    """A predicate that never accepts what the schema rejects, for the keywords our schemas use.

    Any other keyword compiles to "reject", which hands the document to jsonschema: a keyword
    added to a schema file without support here costs speed, never correctness."""
    if schema is True:
        return lambda v: True
    if not isinstance(schema, dict):
        return lambda v: False
    checks: list[Check] = []
    for key, arg in schema.items():
        if key in ("$schema", "$id", "$defs", "$comment", "title", "description"):
            continue
        made = _keyword(key, arg, schema, root, defs)
        if made is None:
            return lambda v: False
        checks.append(made)
    if len(checks) == 1:
        return checks[0]

    def all_of(v: object) -> bool:
        return all(check(v) for check in checks)

    return all_of


_IS_TYPE: dict[str, Check] = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def _keyword(
    key: str, arg: Any, schema: dict[str, Any], root: dict[str, Any], defs: dict[str, Check]
) -> Check | None:
    """The check of one keyword (keywords ignore instances of other types), or None if unknown."""
    if key == "$ref" and isinstance(arg, str) and arg.startswith("#/$defs/"):
        name = arg.removeprefix("#/$defs/")
        if name not in defs:
            # Looked up at call time, so a definition that refers to itself compiles too.
            defs[name] = lambda v: defs[name](v)
            defs[name] = _compile(root["$defs"][name], root, defs)
        return defs[name]
    if key == "type":
        checks = [_IS_TYPE[t] for t in ([arg] if isinstance(arg, str) else arg) if t in _IS_TYPE]
        if len(checks) == 1:
            return checks[0]
        return lambda v: any(check(v) for check in checks)
    if key == "properties":
        props = {k: _compile(s, root, defs) for k, s in arg.items()}
        return lambda v: (
            not isinstance(v, dict) or all(props[k](x) for k, x in v.items() if k in props)
        )
    if key == "additionalProperties":
        known = set(schema.get("properties", ()))
        if arg is False:
            return lambda v: not isinstance(v, dict) or known.issuperset(v)
        extra = _compile(arg, root, defs)
        return lambda v: (
            not isinstance(v, dict) or all(extra(x) for k, x in v.items() if k not in known)
        )
    if key == "required":
        return lambda v: not isinstance(v, dict) or all(k in v for k in arg)
    if key == "propertyNames":
        names = _compile(arg, root, defs)
        return lambda v: not isinstance(v, dict) or all(names(k) for k in v)
    if key == "items":
        items, skip = _compile(arg, root, defs), len(schema.get("prefixItems", ()))
        return lambda v: not isinstance(v, list) or all(items(x) for x in v[skip:])
    if key == "prefixItems":
        firsts = [_compile(s, root, defs) for s in arg]
        return lambda v: (
            not isinstance(v, list) or all(c(x) for c, x in zip(firsts, v, strict=False))
        )
    if key == "minItems":
        return lambda v: not isinstance(v, list) or len(v) >= arg
    if key == "minLength":
        return lambda v: not isinstance(v, str) or len(v) >= arg
    if key == "minimum":
        return lambda v: isinstance(v, bool) or not isinstance(v, (int, float)) or v >= arg
    if key == "pattern":
        pattern = re.compile(arg)
        return lambda v: not isinstance(v, str) or pattern.search(v) is not None
    if key == "enum" and all(isinstance(e, str) for e in arg):
        choices = frozenset(arg)
        return lambda v: isinstance(v, str) and v in choices
    return None


# -- town.toml -----------------------------------------------------------------------------------


def _check(town: _Doc, tasks: _Doc | None, problems: list[Problem]) -> Validation:
    """Every check on a pair of files; problems in one do not hide those in the other."""
    town.problems = problems
    town_data = town.parse()
    if town_data is not None:
        _schema_check(town, "town", town_data)
    tasks_data: dict[str, Any] | None = {}
    if tasks is not None:
        tasks.problems = problems
        tasks_data = tasks.parse()
        if tasks_data is not None:
            _schema_check(tasks, "tasks", tasks_data)

    roster = _roster(town, town_data) if town_data is not None else None
    task_specs: tuple[TaskSpec, ...] = ()
    meta: _Meta = _Meta()
    if tasks is not None and tasks_data is not None:
        meta, task_specs = _tasks(tasks, tasks_data, roster)

    raw_agents = town_data.get("agents") if town_data else None
    raw_tasks = tasks_data.get("tasks") if tasks_data else None
    name = _opt_str(_table(town_data, "town"), "name")
    counts = (
        len(raw_agents) if isinstance(raw_agents, dict) else 0,
        len(raw_tasks) if isinstance(raw_tasks, list) else 0,
    )
    if problems or roster is None:
        return Validation(None, tuple(_sorted(problems)), name, *counts)
    desired = Desired(
        town=roster.settings,
        agents=roster.agents,
        models=roster.models,
        tasks=task_specs,
        description=meta.description,
        default_agent=meta.default_agent,
        default_role=meta.default_role,
        digests=((TOWN_FILE, town.digest), (TASKS_FILE, tasks.digest if tasks else _EMPTY)),
    )
    return Validation(desired, (), name, *counts)


_EMPTY = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class _Roster:
    settings: TownSettings
    agents: tuple[AgentSpec, ...]
    models: tuple[ModelSpec, ...]
    targets: frozenset[str]  # what a task's `agent` may name: agents and replicas of pools
    roles: frozenset[str]


def _table(data: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    value = data.get(key) if data is not None else None
    return value if isinstance(value, dict) else {}


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _strs(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    return tuple(v for _, v in _indexed_strs(data, key))


def _indexed_strs(data: Mapping[str, Any], key: str) -> list[tuple[int, str]]:
    """(index, item) of the strings of an array; indices stay true to the file for paths."""
    value = data.get(key)
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, str)]


def _choice(kind: type[E], value: str | None, default: E) -> E:
    try:
        return kind(value)
    except ValueError:  # absent, or not one of the values: the schema has reported it
        return default


def _int(data: Mapping[str, Any], key: str, default: int) -> int:
    # The schema has reported anything else; a float such as 3.0 is an integer to JSON Schema.
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        return default
    return int(value)


def _duration(doc: _Doc, path: Path_, data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None  # absent, or a type error the schema has reported
    try:
        seconds = parse_duration(value)
    except ValueError as e:
        doc.report((*path, key), str(e))
        return None
    if seconds == 0 and key in POSITIVE_DURATIONS:
        doc.report((*path, key), f"{key} must be greater than zero")
        return None
    return seconds


def _env(data: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    env = _table(data, "env")
    return tuple(sorted((k, v) for k, v in env.items() if isinstance(v, str)))


def _name(doc: _Doc, path: Path_, value: str, what: str, *, agent: bool = False) -> bool:
    """Check a name or id (it becomes a Redis key and a path); report and return False if bad."""
    if agent and value.lower() in RESERVED_AGENT_NAMES:
        doc.report(path, f"'{value}' is a reserved name (a mailbox), not an agent")
        return False
    if is_valid_name(value):
        return True
    if len(value) > 63:
        why = f"it is {len(value)} characters long, at most 63"
    elif ".." in value and NAME_RE.match(value):
        why = "'..' is not allowed"
    else:
        why = "use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
    fixed = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9._-]+", "-", value.lower()))
    fixed = fixed.replace("..", ".").strip("-._")[:63].rstrip("-._")
    hint = f"for example '{fixed}'" if fixed and fixed != value and is_valid_name(fixed) else None
    doc.report(path, f"invalid {what} {json.dumps(value)}: {why}", hint)
    return False


def _town_settings(doc: _Doc, data: object, custom_models: Mapping[str, Any]) -> TownSettings:
    town = data if isinstance(data, dict) else {}
    at: Path_ = ("town",)
    name = _opt_str(town, "name")
    if name is not None:
        _name(doc, (*at, "name"), name, "town name")
    redis = _opt_str(town, "redis") or "embedded"
    if redis != "embedded" and not redis.startswith(REDIS_SCHEMES):
        doc.report(
            (*at, "redis"),
            f'unsupported redis {json.dumps(redis)}: use "embedded" or a '
            f"{', '.join(REDIS_SCHEMES)} URL",
        )
    default_model = _opt_str(town, "default_model") or "claude"
    known = _known_models(custom_models)
    if default_model not in known:
        doc.report(
            (*at, "default_model"),
            f"unknown model '{default_model}'",
            did_you_mean(default_model, known) or "add a [models.X] table or use a preset",
        )
    policy = Policy()
    values: dict[str, Any] = {}
    for key in POLICY_DURATIONS:
        seconds = _duration(doc, at, town, key)
        if seconds is not None:
            values[key] = seconds
    for key in ("retries", "crash_loop_deaths"):
        values[key] = _int(town, key, getattr(policy, key))
    policy = Policy(**values)
    if ("lease" in town or "heartbeat" in town) and policy.lease <= policy.heartbeat:
        doc.report(
            (*at, "lease" if "lease" in town else "heartbeat"),
            f"lease ({format_duration(policy.lease)}) must be longer than heartbeat "
            f"({format_duration(policy.heartbeat)}), or every agent looks dead",
        )
    return TownSettings(name=name or "", redis=redis, default_model=default_model, policy=policy)


def _known_models(custom: Mapping[str, Any]) -> list[str]:
    return [*models.PRESETS, *(k for k in custom if k not in models.PRESETS), models.SIM]


def _roster(doc: _Doc, data: dict[str, Any]) -> _Roster:
    custom = _table(data, "models")
    settings = _town_settings(doc, data.get("town"), custom)
    specs = tuple(_model(doc, name, entry) for name, entry in custom.items())
    known = _known_models(custom)
    agents_table = _table(data, "agents")

    agents: list[AgentSpec] = []
    for name, entry in agents_table.items():
        if not isinstance(entry, dict):
            continue  # the schema has reported it
        at: Path_ = ("agents", name)
        _name(doc, at, name, "agent name", agent=True)
        model = _opt_str(entry, "model") or settings.default_model
        if "model" in entry and model not in known:
            doc.report(
                (*at, "model"),
                f"unknown model '{model}'",
                did_you_mean(model, known) or f"presets: {', '.join(models.PRESETS)}",
            )
        role = _opt_str(entry, "role")
        if role is not None:
            _name(doc, (*at, "role"), role, "role name")
        restart = _opt_str(entry, "restart")
        replicas = max(1, _int(entry, "replicas", 1))
        if replicas > 1 and not is_valid_name(f"{name}-{replicas}") and is_valid_name(name):
            doc.report(
                (*at, "replicas"), f"replica name '{name}-{replicas}' would be longer than 63"
            )
        agents.append(
            AgentSpec(
                name=name,
                model=model,
                role=role,
                replicas=replicas,
                args=_strs(entry, "args"),
                env=_env(entry),
                env_from=_strs(entry, "env_from"),
                workdir=_opt_str(entry, "workdir"),
                timeout=_duration(doc, at, entry, "timeout"),
                restart=_choice(RestartPolicy, restart, RestartPolicy.ALWAYS),
                suspended=entry.get("suspended") is True,
                node=_opt_str(entry, "node"),
            )
        )

    # A pool's replicas are addressable by name, so they share the agents' namespace.
    replica_of = {i: a for a in agents if a.replicas > 1 for i in a.instances()}
    for agent in agents:
        pool = replica_of.get(agent.name)
        if pool is not None:
            doc.report(
                ("agents", agent.name),
                f"agent '{agent.name}' has the name of a replica of agent '{pool.name}' "
                f"(replicas = {pool.replicas})",
                "rename the agent or lower the replicas of the pool",
            )
    targets = frozenset(agents_table) | frozenset(replica_of)
    roles = frozenset(a.role for a in agents if a.role)
    return _Roster(settings, tuple(agents), specs, targets, roles)


def _model(doc: _Doc, name: str, entry: object) -> ModelSpec:
    at: Path_ = ("models", name)
    _name(doc, at, name, "model name")
    table = entry if isinstance(entry, dict) else {}
    patterns = _indexed_strs(table, "fail_patterns")
    for i, pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as e:
            doc.report((*at, "fail_patterns", i), f"invalid regular expression: {e}")
    prompt = _opt_str(table, "prompt")
    return ModelSpec(
        name=name,
        command=_strs(table, "command"),
        prompt=_choice(PromptMode, prompt, PromptMode.STDIN),
        env=_env(table),
        fail_patterns=tuple(p for _, p in patterns),
    )


# -- tasks.toml ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Meta:
    description: str | None = None
    default_agent: str | None = None
    default_role: str | None = None


def _tasks(
    doc: _Doc, data: dict[str, Any], roster: _Roster | None
) -> tuple[_Meta, tuple[TaskSpec, ...]]:
    raw_meta = _table(data, "meta")
    meta = _Meta(
        _opt_str(raw_meta, "description"),
        _opt_str(raw_meta, "default_agent"),
        _opt_str(raw_meta, "default_role"),
    )
    if roster is not None:
        # Without a readable town.toml there is nothing to check references against.
        if meta.default_agent is not None:
            _target(doc, ("meta", "default_agent"), meta.default_agent, roster)
        if meta.default_role is not None:
            _role(doc, ("meta", "default_role"), meta.default_role, roster)

    raw = data.get("tasks")
    entries = (
        [(i, t) for i, t in enumerate(raw) if isinstance(t, dict)] if isinstance(raw, list) else []
    )
    specs: list[TaskSpec] = []
    where: list[int] = []  # file index of each spec, for paths and lines
    deps: list[list[tuple[int, str]]] = []  # depends_on of each spec, with file indices
    first: dict[str, int] = {}
    for i, entry in entries:
        task_id = _opt_str(entry, "id")
        if task_id is None:
            continue  # the schema has reported it; the other tasks are still checked
        at: Path_ = ("tasks", i)
        if task_id in first:
            line = doc.line(("tasks", where[first[task_id]], "id"))
            doc.report((*at, "id"), f"duplicate task id '{task_id}' (also at line {line})")
        else:
            first[task_id] = len(specs)
            _name(doc, (*at, "id"), task_id, "task id")
        agent, role = _opt_str(entry, "agent"), _opt_str(entry, "role")
        if roster is not None and agent is not None:
            _target(doc, (*at, "agent"), agent, roster)
        if roster is not None and role is not None:
            _role(doc, (*at, "role"), role, roster)
        specs.append(
            TaskSpec(
                id=task_id,
                description=_opt_str(entry, "description") or "",
                agent=agent,
                role=role,
                status=_opt_str(entry, "status"),
                parent=_opt_str(entry, "parent"),
                depends_on=tuple(d for _, d in _indexed_strs(entry, "depends_on")),
                tags=_strs(entry, "tags"),
                retries=_int(entry, "retries", 0) if "retries" in entry else None,
                timeout=_duration(doc, at, entry, "timeout"),
                priority=_int(entry, "priority", 0),
                sequential=entry.get("sequential") is True,
            )
        )
        where.append(i)
        deps.append(_indexed_strs(entry, "depends_on"))
    _references(doc, specs, where, deps, first)
    has_default = bool(meta.default_agent or meta.default_role)
    _sequential(doc, specs, where, has_default)
    _cycles(doc, specs, where, _edges(specs, has_default))
    return meta, tuple(specs)


def _target(doc: _Doc, path: Path_, agent: str, roster: _Roster) -> None:
    if agent not in roster.targets:
        hint = did_you_mean(agent, roster.targets)
        if hint is None and roster.agents:
            hint = f"agents: {', '.join(a.name for a in roster.agents)}"
        doc.report(path, f"unknown agent '{agent}'", hint or "town.toml has no agents yet")


def _role(doc: _Doc, path: Path_, role: str, roster: _Roster) -> None:
    if role not in roster.roles:
        hint = did_you_mean(role, roster.roles) or f'give an agent role = "{role}" in town.toml'
        doc.report(path, f"unknown role '{role}': no agent has it", hint)


def _references(
    doc: _Doc,
    specs: list[TaskSpec],
    where: list[int],
    deps: list[list[tuple[int, str]]],
    first: dict[str, int],
) -> None:
    for spec, i, depends_on in zip(specs, where, deps, strict=True):
        at: Path_ = ("tasks", i)
        if spec.parent == spec.id:
            doc.report((*at, "parent"), f"task '{spec.id}' is its own parent")
        elif spec.parent is not None and spec.parent not in first:
            doc.report(
                (*at, "parent"), f"unknown parent '{spec.parent}'", did_you_mean(spec.parent, first)
            )
        for j, dep in depends_on:
            if dep == spec.id:
                doc.report((*at, "depends_on", j), f"task '{spec.id}' depends on itself")
            elif dep not in first:
                doc.report(
                    (*at, "depends_on", j), f"unknown task id '{dep}'", did_you_mean(dep, first)
                )


def _does_work(spec: TaskSpec, has_default: bool) -> bool:
    return bool(spec.agent or spec.role or has_default)


def _sequential(doc: _Doc, specs: list[TaskSpec], where: list[int], has_default: bool) -> None:
    # On a task that does work its children run after it anyway; `sequential` would be ignored.
    for spec, i in zip(specs, where, strict=True):
        if spec.sequential and _does_work(spec, has_default):
            who = "the default agent" if has_default and not (spec.agent or spec.role) else None
            doc.report(
                ("tasks", i, "sequential"),
                f"sequential has no effect: '{spec.id}' does work itself "
                f"({who or 'it names an agent or role'}), so it is not a group",
                "a group is a task with no agent, role or default agent; its children name it "
                "as parent",
            )


def _edges(specs: Sequence[TaskSpec], has_default: bool) -> list[list[int]]:
    """waits[i] = indices of the tasks that task i waits for (see `waits_for`)."""
    index: dict[str, int] = {}
    for i, spec in enumerate(specs):
        index.setdefault(spec.id, i)
    waits: list[list[int]] = [[] for _ in specs]
    children: dict[int, list[int]] = {}
    for i, spec in enumerate(specs):
        p = index.get(spec.parent) if spec.parent is not None else None
        if p is not None and p != i:
            if _does_work(specs[p], has_default):
                waits[i].append(p)
            else:
                children.setdefault(p, []).append(i)
        for dep in spec.depends_on:
            d = index.get(dep)
            if d is not None and d != i:
                waits[i].append(d)
    for group, kids in children.items():
        waits[group].extend(kids)
        if specs[group].sequential:
            for before, after in itertools.pairwise(kids):
                waits[after].append(before)
    return waits


def _cycles(doc: _Doc, specs: list[TaskSpec], where: list[int], waits: list[list[int]]) -> None:
    for component in _strongly_connected(waits):
        if len(component) < 2:
            continue  # self-waits are excluded from the edges and reported as such
        members = set(component)
        start = min(component)
        cycle = _cycle_through(start, waits, members)
        names = " → ".join(specs[i].id for i in (*cycle, start))
        doc.report(
            ("tasks", where[start]),
            f"dependency cycle: {names}",
            "each task waits for the next one through parent, depends_on or a group; "
            "remove one of these links",
            line_at=("tasks", where[start], "id"),
        )


def _strongly_connected(graph: list[list[int]]) -> Iterator[list[int]]:
    """Tarjan's algorithm without recursion (a 10,000-task chain must not hit the stack limit)."""
    counter = 0
    order = [-1] * len(graph)
    low = [0] * len(graph)
    on_stack = [False] * len(graph)
    stack: list[int] = []
    for root in range(len(graph)):
        if order[root] != -1:
            continue
        work = [(root, 0)]
        while work:
            node, edge = work.pop()
            if edge == 0:
                order[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack[node] = True
            for k in range(edge, len(graph[node])):
                nxt = graph[node][k]
                if order[nxt] == -1:
                    work.append((node, k + 1))
                    work.append((nxt, 0))
                    break
                if on_stack[nxt]:
                    low[node] = min(low[node], order[nxt])
            else:
                if low[node] == order[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack[member] = False
                        component.append(member)
                        if member == node:
                            break
                    yield component
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])


def _cycle_through(start: int, waits: list[list[int]], members: set[int]) -> list[int]:
    """A shortest cycle from `start` back to it, inside one strongly connected component."""
    came_from: dict[int, int] = {}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in waits[node]:
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return path[::-1]
                if nxt in members and nxt not in came_from:
                    came_from[nxt] = node
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    return [start]
