"""Execute a plan: agent records, then task records in plan order (batched Lua), then deletes,
then dispatch repairs, then one `apply` event. A crash between batches leaves each task old or
new; the next pass converges. It decides nothing: the plan did.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator

from ..plan.actions import (
    Action,
    CancelTask,
    CompleteTask,
    CreateAgent,
    CreateTask,
    DeleteTask,
    Plan,
    Requeue,
    RerunTask,
    RestoreTask,
    UpdateAgent,
    UpdateTask,
)
from ..plan.graph import TaskKind
from ..plan.state import Source, agent_spec_json
from ..plan.touches import TouchIndex
from ..spec.desired import Desired, TaskSpec, directive_of
from ..store.client import Store

BATCH = 500


def task_record(
    spec: TaskSpec,
    *,
    kind: TaskKind,
    target: str,
    deps: tuple[str, ...],
    order: float,
    source: Source,
    mode: str = "upsert",
    overlaps: tuple[str, ...] | None = None,
    after: str = "",
) -> dict[str, object]:
    rec: dict[str, object] = {
        "mode": mode,
        "id": spec.id,
        "spec": spec.canonical_json(),
        "hash": spec.spec_hash(),
        "target": target,
        "order": order,
        # (`_value_`: an enum's `.value` is a Python-level property, ~10 ms over 10,000 tasks)
        "directive": directive_of(spec.status)._value_,
    }
    # The rest only where it differs from what a missing field means (lua/upsert_tasks.lua).
    if deps:
        rec["deps"] = list(deps)
    if kind is not TaskKind.WORK:
        rec["kind"] = kind.value
    if source is not Source.FILE:
        rec["source"] = source.value
    if spec.priority:
        rec["priority"] = spec.priority
    if spec.retries is not None:
        rec["retries"] = spec.retries
    if spec.run_if != "success":
        rec["run_if"] = spec.run_if
    if spec.approve:
        rec["approve"] = 1
    if after:
        rec["after"] = after
    if overlaps is not None:
        rec["overlaps"] = list(overlaps)
    return rec


class _Overlaps:
    """Each written task's `overlaps` (`plan.touches`), only for a task that has or had
    `touches`: the index of the town's globs is built when the first such task is written."""

    def __init__(self, desired: Desired | None) -> None:
        self.desired = desired
        self._index: TouchIndex | None = None

    def _built(self) -> TouchIndex | None:
        if self._index is None and self.desired is not None:
            self._index = TouchIndex(self.desired.tasks)
        return self._index

    def created(self, spec: TaskSpec) -> tuple[str, ...] | None:
        index = self._built() if spec.touches else None
        return (index.overlaps(spec.id) or None) if index else None  # new: no list to clear

    def rewritten(self, spec: TaskSpec, changed: tuple[str, ...]) -> tuple[str, ...] | None:
        # An empty list is written too when its touches went: the others forget it.
        if not spec.touches and not {"touches", "spec"} & set(changed):
            return None
        index = self._built()
        return index.overlaps(spec.id) if index else None

    def restored(self, tid: str) -> tuple[str, ...] | None:
        index = self._built()
        return index.overlaps(tid) if index and tid in index.touches else None


def execute(
    store: Store, plan: Plan, desired: Desired, generation: int, started: float | None = None
) -> list[dict[str, object]]:
    """Run the plan's writes: agent records, then task records in plan order (batched Lua),
    then deletes, then dispatch repairs; returns the task records sent. A crash between
    batches leaves each task old or new; the next pass converges. `started`: when the apply
    began (`time.monotonic`), for the `seconds` of its event."""
    return execute_actions(store, plan.actions, generation, desired=desired, started=started)[0]


def execute_actions(
    store: Store,
    actions: Iterable[Action],
    generation: int,
    sent: Callable[[list[dict[str, object]]], None] | None = None,
    desired: Desired | None = None,
    started: float | None = None,
    ahead: Callable[[], None] | None = None,
) -> tuple[list[dict[str, object]], tuple[Action, ...]]:
    """`execute` of a plan's actions as they come, in plan order (agents first): each batch of
    task records is sent as soon as it is full, so Redis runs it while the next is planned,
    and `sent` is given it meanwhile. Returns the task records sent and the actions. With
    `desired` (the files planned), each record of a task with `touches` says which tasks'
    touches overlap its own. The `apply` event says how long the apply took from `started`
    (`time.monotonic`: files read, planned, written; the fleet is started after it). `ahead`
    is called once every batch is sent, while Redis runs the last of them: work that does
    not wait for Redis, done meanwhile."""
    done: list[Action] = []
    written: list[dict[str, object]] = []
    batches = _batches(store, actions, done, _Overlaps(desired))
    store.upsert_batches(_kept(batches, written, sent, ahead), generation)
    deletes = [a.id for a in done if isinstance(a, DeleteTask)]
    requeues = [a.id for a in done if isinstance(a, Requeue)]
    if deletes:
        store.delete_tasks(deletes)
    if requeues:
        store.requeue(requeues)
    plan = Plan(tuple(done))
    if plan.changes:
        timed = {} if started is None else {"seconds": f"{time.monotonic() - started:.4f}"}
        store.event(
            "apply",
            generation=str(generation),
            summary=plan.summary(),
            pid=str(os.getpid()),
            argv=" ".join(sys.argv[1:3]),
            **timed,
        )
    return written, plan.actions


def _kept(
    batches: Iterator[list[dict[str, object]]],
    into: list[dict[str, object]],
    sent: Callable[[list[dict[str, object]]], None] | None,
    ahead: Callable[[], None] | None,
) -> Iterator[list[dict[str, object]]]:
    for batch in batches:
        into.extend(batch)
        yield batch
        if sent is not None:  # asked for the next batch: this one is on its way to Redis
            sent(batch)
    if ahead is not None:  # every batch sent: Redis runs the last ones
        ahead()


def _agent(store: Store, a: CreateAgent | UpdateAgent) -> None:
    store.set_agent_spec(
        a.name,
        base=a.spec.name,
        spec=agent_spec_json(a.spec),
        spec_hash=a.spec.spec_hash(),
        suspended=a.spec.suspended,
    )
    if isinstance(a, UpdateAgent) and a.restart:
        store.request_stop(a.name, "restart")


def _batches(
    store: Store, actions: Iterable[Action], done: list[Action], overlaps: _Overlaps
) -> Iterator[list[dict[str, object]]]:
    """The task records of `actions` in plan order, BATCH at a time (built as they are sent);
    an agent's action is written when met (a plan lists them before every task's)."""
    records: list[dict[str, object]] = []
    for a in actions:
        done.append(a)
        if isinstance(a, CreateTask):
            rec = task_record(
                a.spec,
                kind=a.kind,
                target=a.target,
                deps=a.deps,
                order=a.order,
                source=a.source,
                overlaps=overlaps.created(a.spec),
                after=a.after,
            )
        elif isinstance(a, (UpdateTask, RerunTask)):
            # A done/cancel directive comes as its own record; Lua settles only pending ones, so
            # a task the file cancels is never queued in between.
            rec = task_record(
                a.spec,
                kind=a.kind,
                target=a.target,
                deps=a.deps,
                order=a.order,
                source=Source.FILE,
                mode="rerun" if isinstance(a, RerunTask) else "upsert",
                overlaps=overlaps.rewritten(a.spec, a.changed_fields),
                after=a.after,
            )
        elif isinstance(a, RestoreTask):
            rec = {"mode": "restore", "id": a.id, "hash": a.hash, "target": a.target}
            rec.update(order=a.order, deps=list(a.deps))
            if a.after:
                rec["after"] = a.after
            touching = overlaps.restored(a.id)
            if touching is not None:
                rec["overlaps"] = list(touching)
        elif isinstance(a, CompleteTask):
            rec = {"mode": "complete", "id": a.id}
        elif isinstance(a, CancelTask):
            rec = {"mode": "cancel", "id": a.id}
        elif isinstance(a, (CreateAgent, UpdateAgent)):
            _agent(store, a)
            continue
        else:
            continue
        records.append(rec)
        if len(records) == BATCH:
            yield records
            records = []
    if records:
        yield records
