"""town.toml + tasks.toml → a validated, frozen `spec.Desired`, or every problem at once.

Entry points: `load`, `load_settings` (only [town], to find Redis), `check` (a report that never
raises), and on strings `load_texts`, `check_texts`, `validate_texts` (`edit`'s Validate). It reads
the two files and runs `schemacheck`, `towncheck` and `taskcheck` on them, in that order; it
touches no Redis, processes or environment. Problems read `tasks.toml:14: $.tasks[2].agent: ...`.
"""

from __future__ import annotations

import hashlib
import marshal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Problem, ValidationFailed
from ..town import TASKS_FILE, TOWN_FILE, TownPaths
from . import schemacheck
from .desired import Desired, TaskSpec, TownSettings
from .fields import opt_str, table
from .launchcheck import check_nul, check_workdirs
from .schemacheck import check_schema, fast_check
from .taskcheck import Meta, check_tasks, edges
from .tomldoc import TomlDoc
from .towncheck import roster, town_settings

# The schema internals under their former names, for tests/test_loader.py.
_schema = schemacheck.load_schema
_schema_dir = schemacheck.schema_dir
_fast_check = schemacheck.fast_check
_compile = schemacheck.compile_schema


@dataclass(frozen=True)
class Validation:
    """The outcome of checking a town's files: the desired state, or what is wrong with them."""

    desired: Desired | None
    problems: tuple[Problem, ...]
    town: str | None
    agents: int
    tasks: int
    # Valid only: tasks.toml's task tables as parsed, one per `desired.tasks` entry, in order,
    # and their `table_key`s where this check computed them.
    tables: tuple[dict[str, Any], ...] = ()
    table_keys: tuple[bytes | None, ...] | None = None

    @property
    def valid(self) -> bool:
        return self.desired is not None

    def reuse(self) -> Reuse | None:
        """What a next check of an edited tasks.toml may take from this one (made once: kept
        in the instance's __dict__, like `TaskSpec.canonical_json`)."""
        if self.desired is None:
            return None
        made: Reuse | None = self.__dict__.get("_reuse")
        if made is None:
            keys = self.table_keys
            if keys is None:  # a check of texts: its keys were not needed until now
                keys = tuple(table_key(t) for t in self.tables)
            town_digest = dict(self.desired.digests)[TOWN_FILE]
            defaults = (self.desired.default_agent, self.desired.default_role)
            made = Reuse(town_digest, self.desired.task_ids(), keys, defaults)
            object.__setattr__(self, "_reuse", made)
        return made


@dataclass(frozen=True)
class Reuse:
    """The task tables of a valid tasks.toml, checked under the town.toml of digest
    `town_digest`. A table's own checks (schema, name, agent and role, fields) depend only on
    it and on the roster, so a later check under the same roster does not repeat them for a
    table found again word for word. Never a verdict on a whole file: the checks across tables
    (duplicates, references, cycles) and of everything else run every time."""

    town_digest: str
    ids: tuple[str, ...]  # the task ids, in file order
    tables: tuple[bytes | None, ...]  # `table_key` of each one's table
    defaults: tuple[str | None, str | None] = (None, None)  # [meta] default_agent, _role


def table_key(table: dict[str, Any]) -> bytes | None:
    """A parsed table's exact value as bytes: types count (`true` is not `1`, `1.0` is not `1`,
    though Python finds them equal), and so does key order. None where a value has no such
    encoding (a TOML date in an informational field): that table is always checked."""
    try:
        return marshal.dumps(table, 2)  # version 2: no back-references, the same bytes each time
    except ValueError:
        return None


# -- public entry points -----------------------------------------------------------------------


def load(paths: TownPaths) -> Desired:
    """The town's desired state; `ValidationFailed` with every problem when the files are bad."""
    return _desired_or_raise(check(paths))


def check(paths: TownPaths, reuse: Reuse | None = None) -> Validation:
    """Read and check both files (no tasks.toml means no tasks); never raises on bad input.
    `reuse`: a previous valid check of this town (see `Reuse`)."""
    problems: list[Problem] = []
    town = _read(paths.town_file, problems, required=True)
    tasks = _read(paths.tasks_file, problems, required=False)
    if town is None:
        return Validation(None, tuple(problems), None, 0, 0)
    result = _last_valid.get((town[1], tasks[1] if tasks else None)) if not problems else None
    if result is None:
        town_doc = TomlDoc(TOWN_FILE, *town)
        tasks_doc = TomlDoc(TASKS_FILE, *tasks) if tasks else None
        result = _check(town_doc, tasks_doc, problems, reuse)
    # The folders the agents' workdirs name, as they are now (not part of a check of texts).
    doc = TomlDoc(TOWN_FILE, *town)
    data = doc.parse()
    if data is None:
        return result  # its syntax error is among the result's problems already
    check_workdirs(doc, paths.root, data)
    if not doc.problems:
        return result
    found = _sorted([*result.problems, *doc.problems])
    return Validation(None, tuple(found), result.town, result.agents, result.tasks)


def load_texts(town_text: str, tasks_text: str | None) -> Desired:
    """`load` on would-be file contents (nothing is read); `tasks_text=None` means no tasks."""
    return _desired_or_raise(check_texts(town_text, tasks_text))


def check_texts(town_text: str, tasks_text: str | None) -> Validation:
    """`check` on would-be file contents."""
    town = TomlDoc(TOWN_FILE, town_text, _sha256(town_text.encode()))
    tasks = (
        None
        if tasks_text is None
        else TomlDoc(TASKS_FILE, tasks_text, _sha256(tasks_text.encode()))
    )
    result = _check(town, tasks, [])
    if result.valid:
        # An edit validates the text it is about to write, and the apply that follows reads
        # that same text back: checked once (a 10,000-task file takes ~0.4 s), not twice.
        _last_valid.clear()
        _last_valid[town.digest, tasks.digest if tasks else None] = result
    return result


def validate_texts(town_text: str, tasks_text: str) -> None:
    """Raise `ValidationFailed` unless the pair is valid: the `Validate` callable of `edit`."""
    load_texts(town_text, tasks_text)


def load_settings(paths: TownPaths) -> TownSettings:
    """Only town.toml's [town] (the fast path every command takes to find Redis)."""
    problems: list[Problem] = []
    read = _read(paths.town_file, problems, required=True)
    if read is None:
        raise ValidationFailed(problems)
    doc = TomlDoc(TOWN_FILE, *read, problems=problems)
    data = doc.parse()
    if data is None:
        raise ValidationFailed(problems)
    check_schema(doc, "settings", data)
    custom = data.get("models")
    settings = town_settings(doc, data.get("town"), custom if isinstance(custom, dict) else {})
    if problems:
        raise ValidationFailed(_sorted(problems))
    return settings


def waits_for(desired: Desired) -> dict[str, tuple[str, ...]]:
    """What each task waits for under the file semantics: `parent` (a working parent runs first;
    a group waits for its children), `sequential` groups, and `depends_on`."""
    has_default = bool(desired.default_agent or desired.default_role)
    waits = edges(desired.tasks, has_default)
    ids = desired.task_ids()
    return {ids[i]: tuple(ids[j] for j in waits[i]) for i in range(len(ids))}


# -- reading -----------------------------------------------------------------------------------


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


_EMPTY = _sha256(b"")

# The last valid pair checked as text in this process, by the digests of its two files (None:
# no tasks file); the check is a pure function of the two texts, so its result is reused as is.
_last_valid: dict[tuple[str, str | None], Validation] = {}


# -- checking ----------------------------------------------------------------------------------


def _check(
    town: TomlDoc, tasks: TomlDoc | None, problems: list[Problem], reuse: Reuse | None = None
) -> Validation:
    """Every check on a pair of files; problems in one do not hide those in the other."""
    town.problems = problems
    town_data = town.parse()
    if town_data is not None:
        check_schema(town, "town", town_data)
        check_nul(town, town_data)
    tasks_data: dict[str, Any] | None = {}
    typed = False
    known: set[int] = set()
    keys: list[bytes | None] | None = None
    intact = same_edges = False
    if tasks is not None:
        tasks.problems = problems
        tasks_data = tasks.parse()
        if tasks_data is not None:
            check_nul(tasks, tasks_data)
            if reuse is not None and reuse.town_digest == town.digest:
                keys, known, intact = _known_tables(tasks_data, reuse)
                same_edges = _same_edges(tasks_data, reuse, known)
            # The schema's rules for a task table are its own: the known ones passed already.
            typed = bool(known) and fast_check("tasks")(_unknown_part(tasks_data, known))
            typed = typed or check_schema(tasks, "tasks", tasks_data)

    town_roster = roster(town, town_data) if town_data is not None else None
    task_specs: tuple[TaskSpec, ...] = ()
    meta = Meta()
    if tasks is not None and tasks_data is not None:
        meta, task_specs = check_tasks(
            tasks,
            tasks_data,
            town_roster,
            typed=typed,
            known=known,
            intact=intact,
            acyclic=same_edges,
        )

    raw_agents = town_data.get("agents") if town_data else None
    raw_tasks = tasks_data.get("tasks") if tasks_data else None
    name = opt_str(table(town_data, "town"), "name")
    counts = (
        len(raw_agents) if isinstance(raw_agents, dict) else 0,
        len(raw_tasks) if isinstance(raw_tasks, list) else 0,
    )
    if problems or town_roster is None:
        return Validation(None, tuple(_sorted(problems)), name, *counts)
    desired = Desired(
        town=town_roster.settings,
        agents=town_roster.agents,
        models=town_roster.models,
        tasks=task_specs,
        description=meta.description,
        default_agent=meta.default_agent,
        default_role=meta.default_role,
        digests=((TOWN_FILE, town.digest), (TASKS_FILE, tasks.digest if tasks else _EMPTY)),
    )
    tables = tuple(raw_tasks) if isinstance(raw_tasks, list) else ()
    return Validation(
        desired,
        (),
        name,
        *counts,
        tables=tables,
        table_keys=tuple(keys) if keys is not None and len(keys) == len(tables) else None,
    )


def _known_tables(
    data: dict[str, Any], reuse: Reuse
) -> tuple[list[bytes | None] | None, set[int], bool]:
    """The `table_key` of each task table, the file indices of those `reuse` holds word for
    word (a key is the whole table, its id included: equal keys, equal tables), and whether
    every task id of `reuse` is still here."""
    raw = data.get("tasks")
    if not isinstance(raw, list):
        return None, set(), False
    before = set(reuse.tables)
    before.discard(None)
    keys = [table_key(entry) if isinstance(entry, dict) else None for entry in raw]
    ids = {entry.get("id") for entry in raw if isinstance(entry, dict)}
    return keys, {i for i, key in enumerate(keys) if key in before}, ids.issuperset(reuse.ids)


# What a task table says that decides what it waits for (`taskcheck.edges`): its parent,
# dependencies, `sequential`, and whether it names an agent or a role (does work).
_EDGE_KEYS = ("parent", "depends_on", "sequential")


def _same_edges(data: dict[str, Any], reuse: Reuse, known: set[int]) -> bool:
    """Whether the tasks can have no cycle, as in the file `reuse` came from: they wait for
    each other as there, but for the tasks removed. No task added, the same [meta] defaults,
    every table found changed the same as before in what decides its waits. (A removal adds
    no wait but in a sequential group, where the next member now waits for the one before the
    removed: a path that was there already. A move is not the same: it reorders a group.)"""
    meta = data.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    if (meta.get("default_agent"), meta.get("default_role")) != reuse.defaults:
        return False
    raw = data.get("tasks")
    if not isinstance(raw, list):
        return False
    before = dict(zip(reuse.ids, reuse.tables, strict=True))
    # Sequential groups order their members by file position: a move may add a wait.
    ids = [e.get("id") if isinstance(e, dict) else None for e in raw]
    kept = set(ids)
    if [t for t in ids if t in before] != [t for t in reuse.ids if t in kept]:
        return False
    for i, entry in enumerate(raw):
        if i in known:
            continue
        tid = entry.get("id") if isinstance(entry, dict) else None
        key = before.get(tid) if isinstance(tid, str) else None
        old = marshal.loads(key) if key is not None else None
        if not isinstance(old, dict) or not isinstance(entry, dict):
            return False
        if any(old.get(k) != entry.get(k) for k in _EDGE_KEYS) or any(
            (old.get(k) is None) != (entry.get(k) is None) for k in ("agent", "role")
        ):
            return False
    return True


def _unknown_part(data: dict[str, Any], known: set[int]) -> dict[str, Any]:
    """`data` without its known task tables (what is left for the schema check)."""
    raw = data["tasks"]
    return {**data, "tasks": [t for i, t in enumerate(raw) if i not in known]}


def _sorted(problems: list[Problem]) -> list[Problem]:
    rank = {TOWN_FILE: 0, TASKS_FILE: 1}
    return sorted(problems, key=lambda p: (rank.get(p.file, 2), p.line or 0))


def _desired_or_raise(result: Validation) -> Desired:
    if result.desired is None:
        raise ValidationFailed(list(result.problems))
    return result.desired
