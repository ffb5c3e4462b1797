"""`diff(desired, observed, now) -> Plan`: what must change in Redis for it to match the files.

Pure: no Redis, processes, files or clock (`now` is the caller's). The plan is an ordered tuple
of small frozen action records that `apply` executes, dry-run renders (`render_lines`) and CI
reads (`Plan.as_json`). It never executes anything and never decides process liveness (fleet).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, fields
from enum import Enum
from operator import attrgetter
from typing import Any, ClassVar, TypeAlias

from .graph import Graph, Node, TaskKind, build_graph
from .spec import AgentSpec, Desired, Directive, TaskSpec
from .state import (
    TERMINAL,
    Observed,
    ObservedAgent,
    ObservedTask,
    Source,
    TaskState,
    agent_spec_json,
)

# -- action records ------------------------------------------------------------------------------
# `write` says whether executing the record changes Redis; the others only inform. States named
# in a record (`state`, `new_state`, `deps_left`) are those at the moment the record executes, in
# plan order: later records (a CompleteTask releasing dependents) may move a task on again.


@dataclass(frozen=True)
class CreateAgent:
    op: ClassVar[str] = "create_agent"
    write: ClassVar[bool] = True
    name: str  # instance name (worker-3)
    spec: AgentSpec  # its town.toml entry


@dataclass(frozen=True)
class UpdateAgent:
    op: ClassVar[str] = "update_agent"
    write: ClassVar[bool] = True
    name: str
    spec: AgentSpec
    changed_fields: tuple[str, ...]
    restart: bool  # what the process runs with changed (spec hash drift): restart it


@dataclass(frozen=True)
class DeleteAgent:
    op: ClassVar[str] = "delete_agent"
    write: ClassVar[bool] = True
    name: str
    reason: str


@dataclass(frozen=True)
class OrphanAgent:
    """A file-owned agent no longer in town.toml, kept because prune is off."""

    op: ClassVar[str] = "orphan_agent"
    write: ClassVar[bool] = False
    name: str


@dataclass(frozen=True)
class CreateTask:
    op: ClassVar[str] = "create_task"
    write: ClassVar[bool] = True
    spec: TaskSpec
    source: Source
    kind: TaskKind
    state: TaskState  # blocked | ready | completed | cancelled
    deps: tuple[str, ...]
    deps_left: int
    target: str
    order: float

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True)
class UpdateTask:
    """Rewrite a task's stored definition. A blocked/ready task whose directive is pending is
    settled again (recount, requeue on its possibly new target); others keep their state
    (`new_state` None): running/retrying tasks use the new spec on their next attempt, a failed
    one needs `tt retry`, and a later CompleteTask/CancelTask moves a done/cancelled one."""

    op: ClassVar[str] = "update_task"
    write: ClassVar[bool] = True
    id: str
    spec: TaskSpec
    changed_fields: tuple[str, ...]
    kind: TaskKind
    state: TaskState  # before
    new_state: TaskState | None
    deps: tuple[str, ...]
    deps_left: int
    target: str
    old_target: str
    order: float


@dataclass(frozen=True)
class RerunTask:
    """Back to blocked/ready with a fresh run (attempt budget reset). Completed dependents are
    not re-run."""

    op: ClassVar[str] = "rerun_task"
    write: ClassVar[bool] = True
    id: str
    spec: TaskSpec
    changed_fields: tuple[str, ...]
    reason: str
    kind: TaskKind
    state: TaskState  # before: completed, or cancelled
    new_state: TaskState
    deps: tuple[str, ...]
    deps_left: int
    target: str
    order: float


@dataclass(frozen=True)
class ChangedAfterDone:
    op: ClassVar[str] = "changed_after_done"
    write: ClassVar[bool] = False
    id: str
    changed_fields: tuple[str, ...]


@dataclass(frozen=True)
class CompleteTask:
    """Mark done (a running attempt's late result is rejected) and release dependents."""

    op: ClassVar[str] = "complete_task"
    write: ClassVar[bool] = True
    id: str
    state: TaskState  # before
    reason: str = "marked done in file"


@dataclass(frozen=True)
class CancelTask:
    """Cancel a non-terminal task; when it is running, the executor stops its agent's attempt."""

    op: ClassVar[str] = "cancel_task"
    write: ClassVar[bool] = True
    id: str
    state: TaskState  # before
    reason: str = "cancelled in file"


@dataclass(frozen=True)
class DeleteTask:
    op: ClassVar[str] = "delete_task"
    write: ClassVar[bool] = True
    id: str
    was_running: bool


@dataclass(frozen=True)
class Orphan:
    """A file-owned task no longer in tasks.toml, kept because prune is off."""

    op: ClassVar[str] = "orphan_task"
    write: ClassVar[bool] = False
    id: str


@dataclass(frozen=True)
class Requeue:
    """Dispatch repair (a crash between two writes): settle a task that is ready but in no queue,
    or blocked although every dependency is completed (a group then completes)."""

    op: ClassVar[str] = "requeue"
    write: ClassVar[bool] = True
    id: str
    target: str
    state: TaskState  # before
    new_state: TaskState
    reason: str


Action: TypeAlias = (
    CreateAgent
    | UpdateAgent
    | DeleteAgent
    | OrphanAgent
    | CreateTask
    | UpdateTask
    | RerunTask
    | ChangedAfterDone
    | CancelTask
    | CompleteTask
    | DeleteTask
    | Orphan
    | Requeue
)
OPS = tuple(
    a.op
    for a in (
        CreateAgent,
        UpdateAgent,
        DeleteAgent,
        OrphanAgent,
        CreateTask,
        UpdateTask,
        RerunTask,
        ChangedAfterDone,
        CancelTask,
        CompleteTask,
        DeleteTask,
        Orphan,
        Requeue,
    )
)
JSON_VERSION = 1


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    # Every file-owned task (or agent) would go while the files ask for none: an empty or
    # truncated file. `apply` refuses such a plan unless given --allow-empty.
    deletes_everything: bool = False

    @property
    def changes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.write)

    @property
    def is_empty(self) -> bool:
        """Up to date: nothing to write (informational records may remain)."""
        return not any(a.write for a in self.actions)

    def counts(self) -> dict[str, int]:
        """op → number of records, in `OPS` order, zeros left out."""
        seen: dict[str, int] = {}
        for a in self.actions:
            seen[a.op] = seen.get(a.op, 0) + 1
        return {op: seen[op] for op in OPS if op in seen}

    def summary(self) -> str:
        """`2 to create, 1 to change, 1 to delete; 1 changed after done` (Terraform's habit)."""
        c = self.counts()

        def total(*ops: str) -> int:
            return sum(c.get(op, 0) for op in ops)

        create = total("create_agent", "create_task")
        change = total(
            "update_agent", "update_task", "rerun_task", "cancel_task", "complete_task", "requeue"
        )
        delete = total("delete_agent", "delete_task")
        text = f"{create} to create, {change} to change, {delete} to delete"
        notes = [
            f"{n} {what}"
            for n, what in (
                (c.get("changed_after_done", 0), "changed after done"),
                (total("orphan_agent", "orphan_task"), "not in the files (prune is off)"),
            )
            if n
        ]
        return text + ("; " + ", ".join(notes) if notes else "")

    def as_json(self) -> dict[str, Any]:
        """The machine-readable plan (`tt diff -o json`, `tt apply --dry-run -o json`).

        Schema, version 1 (fields are only ever added; a change of meaning bumps `version`):
          {"version": 1, "empty": bool, "deletes_everything": bool,
           "summary": str, "counts": {op: int},
           "actions": [ {"op": str, "write": bool, ...op fields}, ... ]}   # in execution order
        op fields (enums as their lowercase values, tuples as arrays, absent values as null):
          create_agent        name, spec{name, model, role, replicas, args, env, env_from,
                              workdir, timeout, restart, suspended, node}
          update_agent        name, spec{...}, changed_fields[], restart
          delete_agent        name, reason
          orphan_agent        name
          create_task         id, spec{id, description, agent, role, status, parent, depends_on,
                              tags, retries, timeout, priority, sequential}, source,
                              kind (work|group|backlog), state, deps[], deps_left, target, order
          update_task         id, spec, changed_fields[], kind, state, new_state|null, deps[],
                              deps_left, target, old_target, order
          rerun_task          id, spec, changed_fields[], reason, kind, state, new_state, deps[],
                              deps_left, target, order
          changed_after_done  id, changed_fields[]
          cancel_task         id, state, reason
          complete_task       id, state, reason
          delete_task         id, was_running
          orphan_task         id
          requeue             id, target, state, new_state, reason
        A group's target is "" (never queued); a backlog task's is "*backlog".
        """
        return {
            "version": JSON_VERSION,
            "empty": self.is_empty,
            "deletes_everything": self.deletes_everything,
            "summary": self.summary(),
            "counts": self.counts(),
            "actions": [action_json(a) for a in self.actions],
        }


def action_json(action: Action) -> dict[str, Any]:
    out: dict[str, Any] = {"op": action.op, "write": action.write}
    if isinstance(action, CreateTask):
        out["id"] = action.id
    for f in fields(action):
        out[f.name] = _json_value(getattr(action, f.name))
    return out


def _json_value(value: object) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, TaskSpec):
        return {**value.as_dict(), "status": value.status}
    if isinstance(value, AgentSpec):
        return json.loads(agent_spec_json(value))
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    return value


# -- diff ----------------------------------------------------------------------------------------

# The work-defining fields, taken from `TaskSpec.as_dict` so a field added there is compared too.
TASK_FIELDS = tuple(TaskSpec(id="x").as_dict())
_task_values = attrgetter(*TASK_FIELDS)
# What an agent process runs with (`AgentSpec.spec_hash`): a change restarts it. `replicas` is
# not compared per instance: scaling shows as instances created or deleted.
AGENT_DRIFT_FIELDS = ("model", "role", "args", "env", "env_from", "workdir", "timeout", "node")
AGENT_OTHER_FIELDS = ("restart",)  # read by the worker and fleet at start: no restart needed
_DERIVED = ("kind", "target", "deps", "source")


def diff(
    desired: Desired,
    observed: Observed,
    now: float,
    *,
    prune: bool = True,
    rerun_changed: bool = False,
) -> Plan:
    """The plan that makes `observed` match `desired`; empty (`is_empty`) when it already does.

    Order: agents (create, update, delete), then per task in topological order its create,
    update, re-run or changed-after-done, then cancels, completes, deletes and dispatch repairs.
    `now` is accepted for time-based rules; no current rule reads it, so a plan depends only on
    the two states (reproducible dry-runs, idempotent applies).
    """
    del now
    graph = build_graph(desired)
    agents = _agent_actions(desired, observed, prune)
    tasks = _TaskPlanner(desired, graph, observed, prune, rerun_changed).run()
    deletes_everything = (not desired.tasks and any(isinstance(a, DeleteTask) for a in tasks)) or (
        not desired.agents and any(isinstance(a, DeleteAgent) for a in agents)
    )
    return Plan(tuple(agents + tasks), deletes_everything)


def _agent_actions(desired: Desired, observed: Observed, prune: bool) -> list[Action]:
    wanted = {name: spec for spec in desired.agents for name in spec.instances()}
    creates: list[Action] = []
    updates: list[Action] = []
    for name, spec in wanted.items():
        seen = observed.agents.get(name)
        if seen is None:
            creates.append(CreateAgent(name, spec))
            continue
        changed, restart = _agent_changes(seen, spec)
        if changed:
            updates.append(UpdateAgent(name, spec, changed, restart))
    removals: list[Action] = []
    for name in sorted(observed.agents):
        seen = observed.agents[name]
        if name in wanted or seen.source is not Source.FILE:
            continue  # agents spawned with --no-save are never pruned
        base = desired.agent(seen.base_name)
        if base is not None:
            # Its town.toml entry remains with other replicas: that is a scale, not a prune.
            removals.append(DeleteAgent(name, f"scaled to {base.replicas} replica(s)"))
        elif prune:
            removals.append(DeleteAgent(name, "removed from town.toml"))
        else:
            removals.append(OrphanAgent(name))
    return creates + updates + removals


def _agent_changes(seen: ObservedAgent, spec: AgentSpec) -> tuple[tuple[str, ...], bool]:
    if seen.spec is not None:
        drift = [f for f in AGENT_DRIFT_FIELDS if getattr(seen.spec, f) != getattr(spec, f)]
        other = [f for f in AGENT_OTHER_FIELDS if getattr(seen.spec, f) != getattr(spec, f)]
    else:
        drift = ["spec"] if seen.spec_hash != spec.spec_hash() else []
        other = []
    if seen.suspended != spec.suspended:
        other.append("suspended")
    if seen.source is not Source.FILE:
        other.append("source")  # the file now owns an agent spawned with --no-save
    return tuple(drift + other), bool(drift)


def changed_task_fields(seen: ObservedTask, spec: TaskSpec, node: Node) -> tuple[str, ...]:
    """Spec fields that differ (field by field: cheaper than hashing 10,000 specs, and it names
    them), then derived ones (`kind`, `target`, `deps`: a new default agent moves tasks whose
    spec did not change) and `source`. A stored spec that cannot be decoded falls back to the
    hash and reports `spec`."""
    out: list[str] = []
    if seen.spec is not None:
        old, new = _task_values(seen.spec), _task_values(spec)
        if old != new:
            out.extend(f for f, a, b in zip(TASK_FIELDS, old, new, strict=True) if a != b)
    elif seen.spec_hash != spec.spec_hash():
        out.append("spec")
    if seen.kind is not node.kind:
        out.append("kind")
    if seen.target != node.target:
        out.append("target")
    if seen.deps != node.deps and set(seen.deps) != set(node.deps):
        out.append("deps")
    if seen.source is not Source.FILE:
        out.append("source")
    return tuple(out)


class _TaskPlanner:
    """Plans task actions while replaying their effect on a small model of the store (states,
    stored deps, `children:` sets, queued flags), so every record's state and deps_left are what
    executing it in plan order yields, and repairs are planned only for what is still wrong."""

    def __init__(
        self, desired: Desired, graph: Graph, observed: Observed, prune: bool, rerun: bool
    ) -> None:
        self.graph, self.observed, self.prune, self.rerun = graph, observed, prune, rerun
        self.specs = {t.id: t for t in reversed(desired.tasks)}  # first definition wins
        self.state: dict[str, TaskState] = {}
        self.queued: dict[str, bool] = {}
        self.kind: dict[str, TaskKind] = {}
        self.deps: dict[str, tuple[str, ...]] = {}
        self.children: dict[str, set[str]] = {}
        for t in observed.tasks.values():
            self.state[t.id], self.queued[t.id] = t.state, t.queued
            self.kind[t.id], self.deps[t.id] = t.kind, t.deps
            for d in t.deps:
                self.children.setdefault(d, set()).add(t.id)

    def run(self) -> list[Action]:
        writes: list[Action] = []
        completes: list[str] = []
        cancels: list[str] = []
        for tid in self.graph.order:
            spec, node = self.specs[tid], self.graph.nodes[tid]
            seen = self.observed.tasks.get(tid)
            if seen is None:
                writes.append(self._create(spec, node))
                continue
            directive = spec.directive
            action = self._update(spec, node, seen, directive)
            if action is not None:
                writes.append(action)
            state = self.state[tid]
            if directive is Directive.DONE and state is not TaskState.COMPLETED:
                completes.append(tid)
            elif directive is Directive.CANCELLED and state not in TERMINAL:
                cancels.append(tid)
        out = writes
        # Cancels before completes: a completion cascade must not queue (or complete, for a
        # group) a task the file cancels, and a worker must never get to claim it in between.
        for tid in cancels:
            if self.state[tid] not in TERMINAL:
                out.append(CancelTask(tid, self.state[tid]))
                self._unqueue(tid)
                self.state[tid] = TaskState.CANCELLED
        for tid in completes:
            # A group marked done may already have completed with its last child, above.
            if self.state[tid] is not TaskState.COMPLETED:
                out.append(CompleteTask(tid, self.state[tid]))
                self._unqueue(tid)
                self._complete(tid)
        out.extend(self._removals())
        out.extend(self._repairs())
        return out

    # -- per task -------------------------------------------------------------------------------
    def _create(self, spec: TaskSpec, node: Node) -> CreateTask:
        self._store(node.id, node)
        self.queued[node.id] = False
        left = self._left(node.id)
        if spec.directive is Directive.DONE:
            self._complete(node.id)
        elif spec.directive is Directive.CANCELLED:
            self.state[node.id] = TaskState.CANCELLED
        else:
            self._settle(node.id)
        return CreateTask(
            spec,
            Source.FILE,
            node.kind,
            self.state[node.id],
            node.deps,
            left,
            node.target,
            float(node.index),
        )

    def _update(
        self, spec: TaskSpec, node: Node, seen: ObservedTask, directive: Directive
    ) -> Action | None:
        tid, state = node.id, self.state[node.id]
        changed = changed_task_fields(seen, spec, node)
        pending = directive is Directive.PENDING
        if pending and state is TaskState.CANCELLED:
            # The file no longer says cancelled: "pending" means run it.
            return self._rerun(spec, node, changed, "no longer cancelled in tasks.toml")
        if not changed:
            return None
        if pending and state is TaskState.COMPLETED and _spec_changed(changed):
            if self.rerun:
                return self._rerun(spec, node, changed, "changed after done")
            return ChangedAfterDone(tid, changed)
        self._store(tid, node)
        new_state: TaskState | None = None
        if pending and state in (TaskState.BLOCKED, TaskState.READY):
            self._unqueue(tid)
            new_state = self._settle(tid)
        return UpdateTask(
            tid,
            spec,
            changed,
            node.kind,
            state,
            new_state,
            node.deps,
            self._left(tid),
            node.target,
            seen.target,
            float(node.index),
        )

    def _rerun(
        self, spec: TaskSpec, node: Node, changed: tuple[str, ...], reason: str
    ) -> RerunTask:
        before = self.state[node.id]
        self._store(node.id, node)
        self._unqueue(node.id)
        left = self._left(node.id)
        new_state = self._settle(node.id)
        return RerunTask(
            node.id,
            spec,
            changed,
            reason,
            node.kind,
            before,
            new_state,
            node.deps,
            left,
            node.target,
            float(node.index),
        )

    def _removals(self) -> list[Action]:
        gone = [
            t
            for t in self.observed.tasks.values()
            if t.id not in self.graph.nodes and t.source is Source.FILE
        ]
        gone.sort(key=lambda t: (t.order, t.id))
        if not self.prune:
            return [Orphan(t.id) for t in gone]
        for t in gone:
            for d in self.deps.pop(t.id, ()):
                self.children.get(d, set()).discard(t.id)
            del self.state[t.id]
        return [DeleteTask(t.id, t.state is TaskState.RUNNING) for t in gone]

    def _repairs(self) -> list[Action]:
        """Tasks still ready-but-unqueued or blocked-with-nothing-left after everything above."""
        others = sorted(
            (t for t in self.observed.tasks.values() if t.id not in self.graph.nodes),
            key=lambda t: (t.order, t.id),
        )
        targets = {i: n.target for i, n in self.graph.nodes.items()}
        targets.update((t.id, t.target) for t in others)
        out: list[Action] = []
        for tid in (*self.graph.order, *(t.id for t in others)):
            state = self.state.get(tid)
            if state is TaskState.READY and not self.queued[tid]:
                reason = "ready but in no queue"
            elif state is TaskState.BLOCKED and self._left(tid) == 0:
                reason = "every dependency is completed"
            else:
                continue
            self._unqueue(tid)
            new_state = self._settle(tid)
            out.append(Requeue(tid, targets[tid], state, new_state, reason))
        return out

    # -- the store model (mirrors lua/lib.lua: settle, complete, unqueue) -----------------------
    def _store(self, tid: str, node: Node) -> None:
        for d in self.deps.get(tid, ()):
            self.children.get(d, set()).discard(tid)
        self.deps[tid], self.kind[tid] = node.deps, node.kind
        for d in node.deps:
            self.children.setdefault(d, set()).add(tid)

    def _left(self, tid: str) -> int:
        return sum(1 for d in self.deps[tid] if self.state.get(d) is not TaskState.COMPLETED)

    def _unqueue(self, tid: str) -> None:
        self.queued[tid] = False

    def _settle(self, tid: str) -> TaskState:
        if self._left(tid):
            self.state[tid] = TaskState.BLOCKED
        elif self.kind[tid] is TaskKind.GROUP:
            self._complete(tid)
        else:
            self.state[tid], self.queued[tid] = TaskState.READY, True
        return self.state[tid]

    def _complete(self, tid: str) -> None:
        self.state[tid] = TaskState.COMPLETED
        stack = [tid]
        while stack:
            for kid in self.children.get(stack.pop(), ()):
                if self.state.get(kid) is TaskState.BLOCKED and self._left(kid) == 0:
                    if self.kind[kid] is TaskKind.GROUP:
                        self.state[kid] = TaskState.COMPLETED
                        stack.append(kid)
                    else:
                        self.state[kid], self.queued[kid] = TaskState.READY, True


def _spec_changed(changed: Iterable[str]) -> bool:
    return any(f not in _DERIVED for f in changed)


# -- rendering -----------------------------------------------------------------------------------


def render_lines(plan: Plan) -> list[str]:
    """One line per record, in plan order: `+` create, `~` change, `-` delete, `!` and `?` notes."""
    return [_line(a) for a in plan.actions]


def _line(a: Action) -> str:
    if isinstance(a, CreateAgent):
        return f"+ agent {a.name} ({a.spec.model}{', suspended' if a.spec.suspended else ''})"
    if isinstance(a, UpdateAgent):
        return f"~ agent {a.name}: {', '.join(a.changed_fields)}{' (restart)' if a.restart else ''}"
    if isinstance(a, DeleteAgent):
        return f"- agent {a.name} ({a.reason})"
    if isinstance(a, OrphanAgent):
        return f"? agent {a.name}: not in town.toml (use --prune to delete)"
    if isinstance(a, CreateTask):
        if a.kind is TaskKind.GROUP:
            return f"+ task {a.id} (group, {a.state.value})"
        if a.state in TERMINAL:
            return f"+ task {a.id} ({a.state.value})"
        return f"+ task {a.id} ({a.state.value} → {a.target})"
    if isinstance(a, UpdateTask):
        return f"~ task {a.id}: {_fields(a.changed_fields)}{_update_note(a)}"
    if isinstance(a, RerunTask):
        if a.state is TaskState.CANCELLED:
            return f"~ task {a.id}: re-run, {a.reason} ({a.new_state.value})"
        return (
            f"~ task {a.id}: re-run, changed after done ({_fields(a.changed_fields)}) — "
            "its completed dependents are not re-run"
        )
    if isinstance(a, ChangedAfterDone):
        return (
            f"! task {a.id}: changed after done ({_fields(a.changed_fields)}) — not re-run; "
            f"use tt retry {a.id} or --rerun-changed"
        )
    if isinstance(a, CompleteTask):
        late = " — its running attempt's result will be ignored" if _running(a.state) else ""
        return f"~ task {a.id}: completed ({a.reason}){late}"
    if isinstance(a, CancelTask):
        stop = " — its running attempt will be stopped" if _running(a.state) else ""
        return f"~ task {a.id}: cancelled ({a.reason}){stop}"
    if isinstance(a, DeleteTask):
        return f"- task {a.id}{' (running: its attempt will be stopped)' if a.was_running else ''}"
    if isinstance(a, Orphan):
        return f"? task {a.id}: not in tasks.toml (use --prune to delete)"
    if a.new_state is TaskState.COMPLETED:
        return f"~ task {a.id}: completed (group: {a.reason})"
    if a.new_state is TaskState.BLOCKED:
        return f"~ task {a.id}: blocked again, a dependency is not completed ({a.reason})"
    return f"~ task {a.id}: requeued → {a.target} ({a.reason})"


def _fields(changed: tuple[str, ...]) -> str:
    """Changed fields, without derived ones a changed spec field already explains."""
    shown = set(changed)
    if shown & {"parent", "depends_on", "sequential"}:
        shown.discard("deps")
    if shown & {"agent", "role"}:
        shown.discard("target")
    if _spec_changed(shown - {"deps", "target"}):
        shown.discard("kind")
    return ", ".join(f for f in changed if f in shown)


def _update_note(a: UpdateTask) -> str:
    if a.state in (TaskState.RUNNING, TaskState.RETRYING):
        return f" ({a.state.value}: takes effect on the next attempt)"
    if a.state is TaskState.FAILED:
        return f" (failed: tt retry {a.id} to run it with the new spec)"
    notes = []
    if a.target != a.old_target and a.new_state is TaskState.READY:
        notes.append(f"moves {a.old_target or '-'} → {a.target or '-'}")
    elif a.target != a.old_target:
        notes.append(f"→ {a.target or 'group'}")
    if a.new_state is not None and a.new_state is not a.state:
        notes.append(f"{a.state.value} → {a.new_state.value}")
    return f" ({'; '.join(notes)})" if notes else ""


def _running(state: TaskState) -> bool:
    return state is TaskState.RUNNING
