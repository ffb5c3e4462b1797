"""The plan's vocabulary: one small frozen record per action, the `Plan` that orders them, and
the plan's stable JSON (`Plan.as_json`, read by CI).

Data only: `plan.diff` decides which records a plan holds, `control.execute` runs them and
`render` prints them for people. Nothing here reads Redis, files or the clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, ClassVar, TypeAlias

from ..spec.desired import AgentSpec, TaskSpec
from .graph import TaskKind
from .state import Source, TaskState, agent_spec_json

# -- action records ------------------------------------------------------------------------------
# `write` says whether executing the record changes Redis; the others only inform. States named
# in a record (`state`, `new_state`, `deps_left`) are those at the moment the record executes, in
# plan order: later records (a CompleteTask releasing dependents) may move a task on again.


@dataclass(frozen=True)
class CreateAgent:
    """An agent instance the roster adds."""

    op: ClassVar[str] = "create_agent"
    write: ClassVar[bool] = True
    name: str  # instance name (worker-3)
    spec: AgentSpec  # its town.toml entry


@dataclass(frozen=True)
class UpdateAgent:
    """An agent instance whose entry changed (restarted when what it runs with did)."""

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
    """A task the files add: its record, and the state executing it yields."""

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
    # (`graph.Node.after`) the sequential group member before it that it waits for only to
    # run after it: skipped, it counts as done; "" for none
    after: str = ""

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True)
class RestoreTask:
    """A task pruned earlier (kept as a tombstone) whose id is in the files again: its record
    comes back as it was (state, attempts, result) and is not re-run; one that had not finished
    is settled again. A changed spec follows as the records after it, as for any task (a
    completed one: changed after done). `hash`, `deps` and `target` are the tombstone's."""

    op: ClassVar[str] = "restore_task"
    write: ClassVar[bool] = True
    id: str
    state: TaskState  # as pruned (a running one was handed back then: ready)
    new_state: TaskState
    hash: str
    deps: tuple[str, ...]
    target: str
    order: float
    # (`graph.Node.after`) the sequential group member before it that it waits for only to
    # run after it: skipped, it counts as done; "" for none
    after: str = ""


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
    # (`graph.Node.after`) the sequential group member before it that it waits for only to
    # run after it: skipped, it counts as done; "" for none
    after: str = ""


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
    # (`graph.Node.after`) the sequential group member before it that it waits for only to
    # run after it: skipped, it counts as done; "" for none
    after: str = ""


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
    """Prune: the task becomes a tombstone until `keep_until` (unix seconds), restored if its
    id comes back to the files before then."""

    op: ClassVar[str] = "delete_task"
    write: ClassVar[bool] = True
    id: str
    was_running: bool
    # Dated by the plan's `now`: plans of the same states are equal (and print alike) whenever made.
    keep_until: float | None = field(default=None, compare=False, repr=False)


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
    | RestoreTask
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
        RestoreTask,
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
    """The actions that bring Redis to the files, in the order they are executed."""

    actions: tuple[Action, ...] = ()
    # Every file-owned task (or agent) would go while the files ask for none: an empty or
    # truncated file. `apply` refuses such a plan unless given --allow-empty.
    deletes_everything: bool = False
    deletes_every_task: bool = False  # the tasks' side of it (else only the roster empties)

    @property
    def changes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.write)

    @property
    def is_empty(self) -> bool:
        """Up to date: nothing to write (informational records may remain)."""
        return not any(a.write for a in self.actions)

    def counts(self) -> dict[str, int]:
        """op → number of records, in `OPS` order, zeros left out. Counted once per plan (an
        apply asks for them ~5 times: its event, its history entry, its output), kept in the
        instance's __dict__, which the dataclass's eq and repr ignore."""
        cached: dict[str, int] | None = self.__dict__.get("_counts")
        if cached is None:
            seen: dict[str, int] = {}
            for a in self.actions:
                seen[a.op] = seen.get(a.op, 0) + 1
            cached = {op: seen[op] for op in OPS if op in seen}
            object.__setattr__(self, "_counts", cached)
        return dict(cached)

    def totals(self) -> dict[str, int]:
        """{created, changed, deleted}: the records of each kind (`summary`, the history)."""
        c = self.counts()
        ops = {
            "created": ("create_agent", "create_task", "restore_task"),
            "changed": (
                "update_agent",
                "update_task",
                "rerun_task",
                "cancel_task",
                "complete_task",
                "requeue",
            ),
            "deleted": ("delete_agent", "delete_task"),
        }
        return {kind: sum(c.get(op, 0) for op in names) for kind, names in ops.items()}

    def summary(self) -> str:
        """`2 to create, 1 to change, 1 to delete; 1 changed after done` (Terraform's habit)."""
        c = self.counts()

        def total(*ops: str) -> int:
            return sum(c.get(op, 0) for op in ops)

        create, change, delete = self.totals().values()
        text = f"{create} to create, {change} to change, {delete} to delete"
        notes = [
            f"{n} {what}"
            for n, what in (
                (c.get("restore_task", 0), "restored from tombstones"),
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
                              tags, retries, timeout, priority, sequential, touches,
                              approve, run_if (these three only when set)}, source,
                              kind (work|group|backlog|gate), state, deps[], deps_left,
                              target, order
          restore_task        id, state, new_state, hash, deps[], target, order
          update_task         id, spec, changed_fields[], kind, state, new_state|null, deps[],
                              deps_left, target, old_target, order
          rerun_task          id, spec, changed_fields[], reason, kind, state, new_state, deps[],
                              deps_left, target, order
          changed_after_done  id, changed_fields[]
          cancel_task         id, state, reason
          complete_task       id, state, reason
          delete_task         id, was_running, keep_until (unix seconds, kept as a tombstone)
          orphan_task         id
          requeue             id, target, state, new_state, reason
        A group's or gate's target is "" (never queued); a backlog task's is "*backlog".
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


# Changed-field names that are not spec fields: derived from the graph (`kind`, `target`,
# `deps`) or ownership (`source`). Only a change of spec fields counts as "changed after done".
DERIVED_FIELDS = ("kind", "target", "deps", "source")


def spec_changed(changed: Iterable[str]) -> bool:
    """Whether `changed_fields` name a spec field, not only derived ones."""
    return any(f not in DERIVED_FIELDS for f in changed)
