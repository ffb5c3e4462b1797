"""tasks.toml's meaning, after the schema check: [meta] and every [[tasks]] entry.

Yields the task specs in file order and reports on the file's `TomlDoc` what the schema cannot
express: duplicate ids, unknown targets, parents and dependencies, a `sequential` that does
nothing, dependency cycles (`graph.find_cycles`). It never reads town.toml: references are
checked against the caller's `Roster` (None when town.toml is unreadable: left unchecked).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import MISSING, dataclass
from typing import Any

from .cycles import find_cycles
from .desired import RUN_IF, RUN_IF_DEFAULT, TASK_FIELDS, TaskSpec
from .fields import check_name, duration, indexed_strs, integer, opt_str, strs, table, usd
from .gitcheck import check_touches
from .locate import JsonPath
from .names import did_you_mean, is_valid_name
from .schemacheck import int_range
from .tomldoc import TomlDoc
from .towncheck import Roster

_RETRIES = int_range("tasks", "task", "retries")
_PRIORITY = int_range("tasks", "task", "priority")


@dataclass(frozen=True)
class Meta:
    """`[meta]` of tasks.toml."""

    description: str | None = None
    default_agent: str | None = None
    default_role: str | None = None


def check_tasks(
    doc: TomlDoc,
    data: dict[str, Any],
    roster: Roster | None,
    *,
    typed: bool = False,
    known: AbstractSet[int] | Mapping[int, int] = frozenset(),
    reused: Mapping[int, TaskSpec] | None = None,
    intact: bool = False,
    acyclic: bool = False,
) -> tuple[Meta, tuple[TaskSpec, ...]]:
    """`typed`: the data conforms to the schema, so every value has its type (and the specs are
    built without the lenient readers of `fields`: a third of a 10,000-task load).
    `known`: file indices of tables that a valid file had word for word under the same roster
    (`loader.Reuse`): their own checks passed then and depend on nothing else, so only their
    specs are built, or taken from `reused` (file index -> the spec that file's table had).
    `intact`: every task of that file is still here, so the tasks those tables name still
    exist. `acyclic`: the tasks wait for each other as in that file, which had no cycle
    (`loader._same_edges`). The other checks across tables run on all."""
    reused = reused if typed and reused else {}
    raw_meta = table(data, "meta")
    meta = Meta(
        opt_str(raw_meta, "description"),
        opt_str(raw_meta, "default_agent"),
        opt_str(raw_meta, "default_role"),
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
    named_before: set[int] = set()  # specs whose references a valid file had, all still here
    for i, entry in entries:
        spec = reused.get(i)
        if spec is not None and spec.id not in first:
            first[spec.id] = len(specs)
            if intact:
                named_before.add(len(specs))
            deps.append(list(enumerate(spec.depends_on)) if spec.depends_on else [])
            specs.append(spec)
            where.append(i)
            continue
        task_id = entry.get("id")
        if not isinstance(task_id, str):
            continue  # the schema has reported it; the other tasks are still checked
        at: JsonPath = ("tasks", i)
        if typed and i in known and task_id not in first:
            first[task_id] = len(specs)
            if intact:
                named_before.add(len(specs))
            spec = _typed_spec(doc, at, entry, task_id, entry.get("agent"), entry.get("role"))
            deps.append(list(enumerate(spec.depends_on)) if spec.depends_on else [])
            specs.append(spec)
            where.append(i)
            continue
        if task_id in first:
            line = doc.line(("tasks", where[first[task_id]], "id"))
            doc.report((*at, "id"), f"duplicate task id '{task_id}' (also at line {line})")
        else:
            first[task_id] = len(specs)
            if not is_valid_name(task_id):  # (the common case without building a path)
                check_name(doc, (*at, "id"), task_id, "task id")
        if typed:  # (each value of its type: no reader needed)
            agent, role = entry.get("agent"), entry.get("role")
        else:
            agent, role = opt_str(entry, "agent"), opt_str(entry, "role")
        if roster is not None and agent is not None and agent not in roster.targets:
            _target(doc, (*at, "agent"), agent, roster)
        if roster is not None and role is not None and role not in roster.roles:
            _role(doc, (*at, "role"), role, roster)
        if typed:
            spec = _typed_spec(doc, at, entry, task_id, agent, role)
            deps.append(list(enumerate(spec.depends_on)) if spec.depends_on else [])
        else:
            spec = TaskSpec(
                id=task_id,
                description=opt_str(entry, "description") or "",
                agent=agent,
                role=role,
                status=opt_str(entry, "status"),
                parent=opt_str(entry, "parent"),
                depends_on=tuple(d for _, d in indexed_strs(entry, "depends_on")),
                tags=strs(entry, "tags"),
                retries=integer(entry, "retries", 0, _RETRIES) if "retries" in entry else None,
                timeout=duration(doc, at, entry, "timeout"),
                priority=integer(entry, "priority", 0, _PRIORITY),
                sequential=entry.get("sequential") is True,
                touches=strs(entry, "touches"),
                approve=entry.get("approve") is True,
                run_if=_run_if(entry),
                max_cost_usd=usd(entry, "max_cost_usd"),
                stall_after=duration(doc, at, entry, "stall_after"),
            )
            deps.append(indexed_strs(entry, "depends_on"))
        if "touches" in entry:
            check_touches(doc, at, entry)
        specs.append(spec)
        where.append(i)
    _references(doc, specs, where, deps, first, named_before)
    has_default = bool(meta.default_agent or meta.default_role)
    _descriptions(doc, specs, where, dict(entries), has_default, typed)
    _sequential(doc, specs, where, has_default)
    if not acyclic:
        _cycles(doc, specs, where, edges(specs, has_default))
    return meta, tuple(specs)


def _typed_spec(
    doc: TomlDoc,
    at: JsonPath,
    entry: dict[str, Any],
    task_id: str,
    agent: str | None,
    role: str | None,
) -> TaskSpec:
    """The spec of an entry the schema accepted (so every value has its type): its values over
    the defaults, in one C-level update (~2x faster than a field at a time, 10,000 times an
    apply), then what needs a conversion: arrays to tuples, integral floats to integers,
    durations and dollars read. `test_the_typed_and_the_lenient_readers_make_the_same_spec`
    holds it to the lenient reader."""
    fields = _DEFAULTS.copy()
    fields.update(entry)
    if len(fields) != _WIDTH:  # an informational key (result, error, attempts): not a field
        fields = {name: fields[name] for name in TASK_FIELDS}
    fields["id"], fields["agent"], fields["role"] = task_id, agent, role
    for name in _ARRAYS:
        if type(fields[name]) is not tuple:
            fields[name] = tuple(fields[name])
    if "retries" in entry:
        fields["retries"] = int(entry["retries"])
    if "priority" in entry:
        fields["priority"] = int(entry["priority"])
    if "timeout" in entry:
        fields["timeout"] = duration(doc, at, entry, "timeout")
    if "stall_after" in entry:
        fields["stall_after"] = duration(doc, at, entry, "stall_after")
    if "max_cost_usd" in entry:
        fields["max_cost_usd"] = usd(entry, "max_cost_usd")
    return TaskSpec.checked(fields)


# A spec's fields as the dataclass defaults them (`_typed_spec`).
_DEFAULTS: dict[str, Any] = {
    f.name: "" if f.default is MISSING else f.default for f in dataclasses.fields(TaskSpec)
}  # (the id, the one field without a default, is always set)
_WIDTH = len(TASK_FIELDS)
_ARRAYS = ("depends_on", "tags", "touches")


def _run_if(entry: Mapping[str, Any]) -> str:
    """The entry's `run_if`; a value the schema refused (reported there) reads as the default."""
    value = entry.get("run_if", RUN_IF_DEFAULT)
    return value if value in RUN_IF else RUN_IF_DEFAULT


def _hint(doc: TomlDoc, word: str, choices: AbstractSet[str] | dict[str, int]) -> str | None:
    """ "did you mean", unless the problem will not be listed (`TomlDoc.full`): a fuzzy match
    costs ~0.1 ms, a million unknown names in an array would take minutes."""
    return None if doc.full else did_you_mean(word, choices)


def _target(doc: TomlDoc, path: JsonPath, agent: str, roster: Roster) -> None:
    if agent not in roster.targets:
        hint = _hint(doc, agent, roster.targets)
        if hint is None and roster.agents:
            hint = f"agents: {', '.join(a.name for a in roster.agents)}"
        doc.report(path, f"unknown agent '{agent}'", hint or "town.toml has no agents yet")


def _role(doc: TomlDoc, path: JsonPath, role: str, roster: Roster) -> None:
    if role not in roster.roles:
        hint = _hint(doc, role, roster.roles) or f'give an agent role = "{role}" in town.toml'
        doc.report(path, f"unknown role '{role}': no agent has it", hint)


def _references(
    doc: TomlDoc,
    specs: list[TaskSpec],
    where: list[int],
    deps: list[list[tuple[int, str]]],
    first: dict[str, int],
    skip: AbstractSet[int] = frozenset(),
) -> None:
    for k, (spec, i, depends_on) in enumerate(zip(specs, where, deps, strict=True)):
        if k in skip:
            continue
        at: JsonPath = ("tasks", i)
        if spec.parent == spec.id:
            doc.report((*at, "parent"), f"task '{spec.id}' is its own parent")
        elif spec.parent is not None and spec.parent not in first:
            doc.report(
                (*at, "parent"), f"unknown parent '{spec.parent}'", _hint(doc, spec.parent, first)
            )
        for j, dep in depends_on:
            if dep == spec.id:
                doc.report((*at, "depends_on", j), f"task '{spec.id}' depends on itself")
            elif dep not in first:
                doc.report(
                    (*at, "depends_on", j), f"unknown task id '{dep}'", _hint(doc, dep, first)
                )


def _does_work(spec: TaskSpec, has_default: bool) -> bool:
    return bool(spec.agent or spec.role or has_default)


def _holds(spec: TaskSpec, has_default: bool) -> bool:
    """Whether the tasks naming it as parent wait for it: it does work, or it is a manual gate
    (`approve` with no agent: it completes when a person approves it)."""
    return spec.approve or _does_work(spec, has_default)


def _descriptions(
    doc: TomlDoc,
    specs: list[TaskSpec],
    where: list[int],
    entries: Mapping[int, dict[str, Any]],
    has_default: bool,
    typed: bool,
) -> None:
    # Tinytown's format requires a description: it is the prompt of the agent that does the
    # task. Only a group (no agent, role or default, named as parent) does no work and may
    # go without one; a backlog task is work too, for whichever idle agent claims it.
    # Typed, a spec's description is its table's string (or "" when absent): most pass here.
    some = [k for k, s in enumerate(specs) if not s.description.strip()] if typed else None
    if some == []:
        return
    parents = {s.parent for s in specs if s.parent is not None}
    for k in range(len(specs)) if some is None else some:
        spec, i = specs[k], where[k]
        entry = entries[i]
        text = entry.get("description")
        if (isinstance(text, str) and text.strip()) or not isinstance(text, str | None):
            continue  # described, or of the wrong type (the schema has said so)
        if not _does_work(spec, has_default) and (
            spec.id in parents or spec.approve or not isinstance(entry.get("approve"), bool | None)
        ):
            continue  # a group, or a manual gate (`approve` with no agent; the schema has
            # reported an `approve` that is not a boolean)
        missing = text is None
        doc.report(
            ("tasks", i, "description"),
            f"task '{spec.id}' has {'no' if missing else 'an empty'} description",
            "a task that does work needs one: it is what its agent is asked to do",
            line_at=("tasks", i, "id") if missing else None,
        )


def _sequential(doc: TomlDoc, specs: list[TaskSpec], where: list[int], has_default: bool) -> None:
    # On a task that does work (or a gate) its children run after it anyway; `sequential` would
    # be ignored. A group does no work: it ends with its members, a `run_if` would mean nothing.
    parents: set[str] | None = None
    for spec, i in zip(specs, where, strict=True):
        if spec.run_if != RUN_IF_DEFAULT and not _holds(spec, has_default):
            parents = {s.parent for s in specs if s.parent} if parents is None else parents
            if spec.id in parents:
                doc.report(
                    ("tasks", i, "run_if"),
                    f"run_if has no meaning on '{spec.id}': it is a group (no agent, role or "
                    "default agent; other tasks name it as parent), which does no work and ends "
                    "with its members",
                    f"put run_if = {spec.run_if!r} on the members it is meant for",
                )
        if spec.sequential and spec.approve and not _does_work(spec, has_default):
            doc.report(
                ("tasks", i, "sequential"),
                f"sequential has no effect: '{spec.id}' is an approval gate (approve = true, "
                "no agent), so the tasks naming it as parent run after it, not as a group",
                "a group is a task with no agent, role, default agent or approve; its children "
                "name it as parent",
            )
        if spec.sequential and _does_work(spec, has_default):
            who = "the default agent" if has_default and not (spec.agent or spec.role) else None
            doc.report(
                ("tasks", i, "sequential"),
                f"sequential has no effect: '{spec.id}' does work itself "
                f"({who or 'it names an agent or role'}), so it is not a group",
                "a group is a task with no agent, role or default agent; its children name it "
                "as parent",
            )


def edges(specs: Sequence[TaskSpec], has_default: bool) -> list[list[int]]:
    """waits[i] = indices of the tasks that task i waits for (see `loader.waits_for`).

    A duplicated id resolves to its first definition; a task never waits for itself."""
    index: dict[str, int] = {}
    for i, spec in enumerate(specs):
        index.setdefault(spec.id, i)
    waits: list[list[int]] = [[] for _ in specs]
    children: dict[int, list[int]] = {}
    for i, spec in enumerate(specs):
        p = index.get(spec.parent) if spec.parent is not None else None
        if p is not None and p != i:
            if _holds(specs[p], has_default):
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


def _cycles(doc: TomlDoc, specs: list[TaskSpec], where: list[int], waits: list[list[int]]) -> None:
    if _acyclic(waits):
        return  # the common case, cheaply: ~3 ms on 10,000 tasks where find_cycles takes ~15 ms
    # Keyed by position, not id, so a duplicated id (reported above) stays a task of its own.
    # `edges` leaves out self-waits (reported as such), so every cycle has two tasks or more.
    keyed = {str(i): [str(j) for j in w] for i, w in enumerate(waits)}
    for found in find_cycles(keyed):
        cycle = [int(k) for k in found]
        start = cycle[0]
        names = " → ".join(specs[i].id for i in (*cycle, start))
        doc.report(
            ("tasks", where[start]),
            f"dependency cycle: {names}",
            "each task waits for the next one through parent, depends_on or a group; "
            "remove one of these links",
            line_at=("tasks", where[start], "id"),
        )


def _acyclic(waits: list[list[int]]) -> bool:
    """Whether every task can be ordered after all it waits for (Kahn's count, no recursion)."""
    left = [len(w) for w in waits]
    dependents: list[list[int]] = [[] for _ in waits]
    for i, w in enumerate(waits):
        for j in w:
            dependents[j].append(i)
    ready = [i for i, n in enumerate(left) if not n]
    done = 0
    while ready:
        i = ready.pop()
        done += 1
        for k in dependents[i]:
            left[k] -= 1
            if not left[k]:
                ready.append(k)
    return done == len(waits)
