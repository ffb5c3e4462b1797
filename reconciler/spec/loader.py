"""town.toml + tasks.toml → a validated, frozen `spec.Desired`, or every problem at once.

Entry points: `load`, `load_settings` (only [town], to find Redis), `check` (a report that never
raises), and on strings `load_texts`, `check_texts`, `validate_texts` (`edit`'s Validate). It reads
the two files and runs `schemacheck`, `towncheck` (`gitcheck` on [git], `notifycheck` on
[[notify]]) and `taskcheck` on them, in that order; it touches no Redis, processes or
environment. Problems read `tasks.toml:14: $.tasks[2].agent: ...`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import Problem, ValidationFailed
from ..town import TASKS_FILE, TOWN_FILE, TownPaths
from . import reading, schemacheck
from .desired import Desired, TaskSpec, TownSettings
from .fields import opt_str, table
from .gitcheck import git_settings
from .launchcheck import check_nul, check_workdirs
from .notifycheck import check_notify_commands, check_notify_tasks, notify_rules
from .reuse import Reuse as Reuse  # (its former home: imported from here)
from .reuse import parse_tasks
from .reuse import table_key as table_key
from .schemacheck import check_schema
from .taskcheck import Meta, check_tasks, edges
from .tomldoc import TomlDoc
from .towncheck import roster, town_settings

# The schema internals under their former names, for tests/test_loader.py.
_schema = schemacheck.load_schema
_schema_dir = schemacheck.schema_dir
_fast_check = schemacheck.fast_check


@dataclass(frozen=True)
class Validation:
    """The outcome of checking a town's files: the desired state, or what is wrong with them."""

    desired: Desired | None
    problems: tuple[Problem, ...]
    town: str | None
    agents: int
    tasks: int
    # Valid only: tasks.toml's task tables as parsed, one per `desired.tasks` entry, in order
    # ({} for a table found unchanged by text, `reuse.parse_tasks`), and their keys where this
    # check has them: `table_key`s, or (`pieced`) the text of each table (`pieces`).
    tables: tuple[dict[str, Any], ...] = ()
    table_keys: tuple[bytes | str | None, ...] | None = None
    pieced: bool = False
    # Checked with a `Reuse`: that one, and the tables it held (file index -> its position).
    reused: Reuse | None = None
    known: Mapping[int, int] = field(default_factory=dict)

    @property
    def fresh(self) -> list[int]:
        """The file indices of the tables `reused` did not hold."""
        known = self.known
        return [i for i in range(len(self.tables)) if i not in known]

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
            specs = self._spec_fields()
            ids = self.desired.task_ids()
            made = Reuse(town_digest, ids, keys, defaults, specs, pieced=self.pieced)
            object.__setattr__(self, "_reuse", made)
        return made

    def _spec_fields(self) -> tuple[dict[str, Any], ...]:
        assert self.desired is not None
        tasks, known, reused = self.desired.tasks, self.known, self.reused
        if reused is None or not known:
            return tuple(s.fields() for s in tasks)
        old = reused.specs  # (the same fields: a known table's spec is made from them)
        return tuple(
            old[j] if (j := known.get(i)) is not None else s.fields() for i, s in enumerate(tasks)
        )


# -- public entry points -----------------------------------------------------------------------


def load(paths: TownPaths) -> Desired:
    """The town's desired state; `ValidationFailed` with every problem when the files are bad."""
    return _desired_or_raise(check(paths))


def check(paths: TownPaths, reuse: Reuse | None = None) -> Validation:
    """Read and check both files (no tasks.toml means no tasks); never raises on bad input.
    `reuse`: a previous valid check of this town (see `Reuse`)."""
    problems: list[Problem] = []
    town = reading.read(paths.town_file, problems, required=True)
    tasks = reading.read(paths.tasks_file, problems, required=False)
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
    check_notify_commands(doc, paths.root, data)
    if not doc.problems:
        return result
    found = _sorted([*result.problems, *doc.problems])
    return Validation(None, tuple(found), result.town, result.agents, result.tasks)


def check_roster(paths: TownPaths) -> Validation:
    """`check` of town.toml alone, as if the town had no tasks.toml: what an agent process runs
    by. tasks.toml is the watcher's to apply; a save of it in progress (torn) must not stop an
    agent from starting."""
    problems: list[Problem] = []
    town = reading.read(paths.town_file, problems, required=True)
    if town is None:
        return Validation(None, tuple(problems), None, 0, 0)
    return _check(TomlDoc(TOWN_FILE, *town), None, problems)


def load_texts(town_text: str, tasks_text: str | None) -> Desired:
    """`load` on would-be file contents (nothing is read); `tasks_text=None` means no tasks."""
    return _desired_or_raise(check_texts(town_text, tasks_text))


def check_texts(town_text: str, tasks_text: str | None) -> Validation:
    """`check` on would-be file contents."""
    problems: list[Problem] = []
    town_raw = reading.encoded(TOWN_FILE, town_text, problems)
    tasks_raw = None if tasks_text is None else reading.encoded(TASKS_FILE, tasks_text, problems)
    if (
        problems
        or town_raw is None
        or reading.too_large(TOWN_FILE, town_raw, problems)
        or reading.too_large(TASKS_FILE, tasks_raw, problems)
    ):
        return Validation(None, tuple(problems), None, 0, 0)
    town = TomlDoc(TOWN_FILE, town_text, reading.sha256(town_raw))
    tasks = (
        None
        if tasks_text is None or tasks_raw is None
        else TomlDoc(TASKS_FILE, tasks_text, reading.sha256(tasks_raw))
    )
    result = _check(town, tasks, problems)
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
    town = reading.read(paths.town_file, problems, required=True)
    if town is None:
        raise ValidationFailed(problems)
    doc = TomlDoc(TOWN_FILE, *town, problems=problems)
    data = doc.parse()
    if data is None:
        raise ValidationFailed(problems)
    check_schema(doc, "settings", data)
    custom = data.get("models")
    serve = data.get("serve")
    settings = town_settings(
        doc,
        data.get("town"),
        custom if isinstance(custom, dict) else {},
        serve if isinstance(serve, dict) else None,
    )
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


_EMPTY = reading.sha256(b"")
_MAX_TASKS = schemacheck.load_schema("tasks")["properties"]["tasks"]["maxItems"]

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
    parsed = None
    if tasks is not None:
        tasks.problems = problems
        parsed = parse_tasks(tasks, town.digest, reuse)
        tasks_data = parsed.data
        if tasks_data is not None:
            # (A table found unchanged is {} here: its strings passed this check before.)
            check_nul(tasks, tasks_data)

    town_roster = roster(town, town_data) if town_data is not None else None
    git = git_settings(town, town_data) if town_data is not None else None
    notify = notify_rules(town, town_data or {}, town_roster.agents) if town_roster else ()
    task_specs: tuple[TaskSpec, ...] = ()
    meta = Meta()
    raw_tasks = tasks_data.get("tasks") if tasks_data else None
    # Over the schema's limit: said so; checking each of them would only cost time.
    too_many = isinstance(raw_tasks, list) and len(raw_tasks) > _MAX_TASKS
    if tasks is not None and parsed is not None and parsed.data is not None and not too_many:
        meta, task_specs = check_tasks(
            tasks,
            parsed.data,
            town_roster,
            typed=parsed.typed,
            known=parsed.known,
            reused=parsed.reused,
            intact=parsed.intact,
            acyclic=parsed.acyclic,
        )

    if town_data and town_data.get("notify") and isinstance(raw_tasks, list) and not too_many:
        ids = {t["id"] for t in raw_tasks if isinstance(t, dict) and isinstance(t.get("id"), str)}
        check_notify_tasks(town, town_data or {}, ids)
    raw_agents = town_data.get("agents") if town_data else None
    problems[:] = _sorted(problems)
    for doc in (town, tasks):
        note = doc.summary() if doc is not None else None
        if note is not None:  # how many problems went unlisted: last of its file's
            at = [i for i, p in enumerate(problems) if p.file == note.file]
            problems.insert(at[-1] + 1 if at else len(problems), note)
    name = opt_str(table(town_data, "town"), "name")
    counts = (
        len(raw_agents) if isinstance(raw_agents, dict) else 0,
        len(raw_tasks) if isinstance(raw_tasks, list) else 0,
    )
    if problems or town_roster is None:
        return Validation(None, tuple(problems), name, *counts)
    desired = Desired(
        town=town_roster.settings,
        agents=town_roster.agents,
        models=town_roster.models,
        tasks=task_specs,
        description=meta.description,
        default_agent=meta.default_agent,
        default_role=meta.default_role,
        git=git,
        notify=notify,
        digests=((TOWN_FILE, town.digest), (TASKS_FILE, tasks.digest if tasks else _EMPTY)),
    )
    tables = tuple(raw_tasks) if isinstance(raw_tasks, list) else ()
    keys = parsed.keys if parsed is not None else None
    if keys is None or len(keys) != len(tables):
        return Validation(desired, (), name, *counts, tables=tables)
    known = parsed.known if parsed is not None else {}
    return Validation(
        desired,
        (),
        name,
        *counts,
        tables=tables,
        table_keys=tuple(keys),
        pieced=parsed is not None and parsed.pieced,
        reused=reuse if known else None,
        known=known,
    )


def _sorted(problems: list[Problem]) -> list[Problem]:
    rank = {TOWN_FILE: 0, TASKS_FILE: 1}
    return sorted(problems, key=lambda p: (rank.get(p.file, 2), p.line or 0))


def _desired_or_raise(result: Validation) -> Desired:
    if result.desired is None:
        raise ValidationFailed(list(result.problems))
    return result.desired
