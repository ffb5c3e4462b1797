"""Drift: what differs in Redis from what the files ask for, although the files did not change.

Pure: the caller reads the task and agent records, the liveness of agents and the observed
state; `find_drift` names each difference as a small record, and `healing_only` cuts a plan down
to what `[town] self_heal = false` still lets an apply do. Never reads Redis, files or a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from ..spec.desired import Desired
from .actions import (
    Action,
    CancelTask,
    CompleteTask,
    CreateAgent,
    CreateTask,
    DeleteAgent,
    DeleteTask,
    Plan,
    Requeue,
    RerunTask,
    RestoreTask,
    UpdateAgent,
    UpdateTask,
)
from .diff import diff
from .state import Observed, Source, TaskState, task_spec_from_json


class DriftKind(str, Enum):
    CLI_TASK = "cli_task"  # made with `--no-save`: in Redis only
    RETRIED = "retried"  # re-run by `tt retry` although its file says nothing new
    CANCELLED = "cancelled"  # cancelled in Redis; its file says pending
    STATE = "state"  # its file marks it done or cancelled; Redis holds another state
    EDITED = "edited"  # its record in Redis is not what the files wrote
    MISSING = "missing"  # in the files, gone from Redis
    EXTRA = "extra"  # owned by the files in Redis, not in the files
    AGENT_STOPPED = "agent_stopped"  # should run, was stopped by a person (not by tt)


@dataclass(frozen=True)
class DriftItem:
    """One difference Redis has from the files that no file change explains."""

    kind: DriftKind
    object: str  # "task ID" or "agent NAME"
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind.value, "object": self.object, "detail": self.detail}

    def line(self) -> str:
        return f"{self.object}: {self.detail} ({self.kind.value})"


@dataclass(frozen=True)
class Drift:
    """What differs in Redis from the files last applied (`tt drift`)."""

    items: tuple[DriftItem, ...] = ()
    # Files changed since the last apply (their digests differ from the applied ones): their
    # objects' differences are a plan's changes (`tt plan`), not drift, and are not compared.
    changed_files: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "drift": [i.as_json() for i in self.items],
            "count": len(self.items),
            "changed_files": list(self.changed_files),
        }


def stopped_by_hand(rec: Mapping[str, str], *, alive: bool) -> bool:
    """An agent's process exited cleanly (its worker wrote `stopped`: SIGTERM or Ctrl-C, as a
    person stops it) while nothing of tt asked it to: every stop of tt's writes `stopped_by`,
    and a start clears it. A SIGKILL looks like a crash, and is healed as one."""
    return (
        not alive
        and rec.get("state") == "stopped"
        and bool(rec.get("pid"))
        and not rec.get("stopped_by")
    )


def files_changed(desired: Desired, observed: Observed) -> tuple[str, ...]:
    """The town's files whose digest is not the one last applied (all of them, never applied)."""
    applied = dict(observed.digests)
    return tuple(name for name, digest in desired.digests if applied.get(name) != digest)


def find_drift(
    desired: Desired,
    observed: Observed,
    tasks: Iterable[Mapping[str, str]],
    agents: Mapping[str, Mapping[str, str]],
    *,
    should_run: Mapping[str, bool],
    alive: Mapping[str, bool],
) -> Drift:
    """Every drift item, by kind then object. `tasks`/`agents` are the stored records (a task's
    with its id), `should_run` the agents this host should run (`atplace.desired_instances`),
    `alive` which of them have a live process. `observed` (its changed tasks' specs read) gives
    the plan an apply would make: with the files as last applied, each of its changes is drift."""
    items: dict[str, DriftItem] = {}

    def add(kind: DriftKind, obj: str, detail: str) -> None:
        items.setdefault(obj, DriftItem(kind, obj, detail))

    for rec in tasks:
        tid, state = rec.get("id", ""), rec.get("state") or TaskState.BLOCKED.value
        if rec.get("source") == Source.CLI.value:
            add(DriftKind.CLI_TASK, f"task {tid}", f"made with --no-save; {state}")
        elif not _hash_matches(rec):
            add(DriftKind.EDITED, f"task {tid}", "its stored spec does not match its stored hash")
        elif rec.get("rerun_by"):
            since = int(rec.get("run_base") or 0) + 1
            add(
                DriftKind.RETRIED,
                f"task {tid}",
                f"re-run by {rec['rerun_by']} from attempt {since}, tasks.toml unchanged; {state}",
            )
    for name, run in sorted(should_run.items()):
        seen = agents.get(name)
        if run and seen is not None and stopped_by_hand(seen, alive=alive.get(name, False)):
            add(DriftKind.AGENT_STOPPED, f"agent {name}", f"stopped by hand (pid {seen['pid']})")
    changed = files_changed(desired, observed)
    if not changed:
        # Without prune: what an apply with --no-prune kept is the files' doing, not drift.
        for action in diff(desired, observed, 0.0, prune=False).actions:
            found = _of_action(action)
            if found is not None:
                add(*found)
    ordered = sorted(items.values(), key=lambda i: (list(DriftKind).index(i.kind), i.object))
    return Drift(tuple(ordered), changed)


def healing_only(plan: Plan) -> Plan:
    """The plan of an apply under `self_heal = false` when the files are as last applied: each
    change would undo drift, so only the dispatch repairs (a ready task in no queue) remain."""
    return Plan(tuple(a for a in plan.actions if isinstance(a, Requeue)))


def _hash_matches(rec: Mapping[str, str]) -> bool:
    spec = task_spec_from_json(rec.get("spec"))
    return spec is not None and spec.spec_hash() == rec.get("hash")


def _of_action(a: Action) -> tuple[DriftKind, str, str] | None:
    """The drift an action of the plan would undo, with the files unchanged since the last apply."""
    unchanged = "tasks.toml unchanged since the last apply"
    if isinstance(a, UpdateTask):
        fields = ", ".join(a.changed_fields)
        return DriftKind.EDITED, f"task {a.id}", f"{fields} differ from tasks.toml ({unchanged})"
    if isinstance(a, RerunTask):
        if a.state is TaskState.CANCELLED:
            return DriftKind.CANCELLED, f"task {a.id}", f"cancelled in Redis; {unchanged}"
        return DriftKind.EDITED, f"task {a.id}", f"{a.reason} ({unchanged})"
    if isinstance(a, CancelTask):
        return DriftKind.STATE, f"task {a.id}", f"{a.state.value}; tasks.toml cancels it"
    if isinstance(a, CompleteTask):
        return DriftKind.STATE, f"task {a.id}", f"{a.state.value}; tasks.toml marks it done"
    if isinstance(a, (CreateTask, RestoreTask)):
        tid = a.spec.id if isinstance(a, CreateTask) else a.id
        return DriftKind.MISSING, f"task {tid}", "in tasks.toml, deleted from Redis"
    if isinstance(a, DeleteTask):
        return DriftKind.EXTRA, f"task {a.id}", "owned by the files in Redis, not in tasks.toml"
    if isinstance(a, UpdateAgent):
        fields = ", ".join(a.changed_fields)
        return DriftKind.EDITED, f"agent {a.name}", f"{fields} differ from town.toml"
    if isinstance(a, CreateAgent):
        return DriftKind.MISSING, f"agent {a.name}", "in town.toml, deleted from Redis"
    if isinstance(a, DeleteAgent):
        return DriftKind.EXTRA, f"agent {a.name}", "in Redis, not in town.toml"
    # Requeue: a dispatch repair, not a difference from the files. ChangedAfterDone, Orphan,
    # OrphanAgent: what an apply of these files left on purpose (no --rerun-changed, --no-prune).
    return None
