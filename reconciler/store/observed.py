"""The town's actual state read from Redis as the typed records `plan.diff` takes: every task
(one SORT ... GET) or some, the agents with their heartbeat leases, the meta hash; and the
stored spec of the few tasks whose definition changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace

from ..plan.graph import TaskKind
from ..plan.state import (
    AgentState,
    Observed,
    ObservedAgent,
    ObservedTask,
    Source,
    TaskState,
    agent_spec_from_json,
)
from ..spec.desired import RUN_IF_DEFAULT, Desired, TaskSpec
from .cleanrows import Row
from .client import Store

# What `plan.diff` reads of a task. Timestamps, results and errors (up to kilobytes each) are
# left out: they are for `tt status`, and a finished 10,000-task town would read megabytes. So is
# the stored spec: its hash tells whether it changed; `with_changed_specs` reads the few that did.
OBSERVED_FIELDS = (
    "state",
    "hash",
    "source",
    "kind",
    "target",
    "deps",
    "order",
    "run_if",
    "after",
)


# Enum members by stored value; None (a field left out of the hash) means the default.
_STATES: dict[str | None, TaskState] = {s.value: s for s in TaskState} | {None: TaskState.BLOCKED}
_SOURCES: dict[str | None, Source] = {s.value: s for s in Source} | {None: Source.FILE}
_KINDS: dict[str | None, TaskKind] = {k.value: k for k in TaskKind} | {None: TaskKind.WORK}


def read_observed(store: Store) -> Observed:
    """The town's actual state: every task (one SORT ... GET), the agents, the meta."""
    return observe(store)[0]


def observe(store: Store, ids: Sequence[str] | None = None) -> tuple[Observed, list[Row]]:
    """`read_observed`, or with the tasks `ids` only (those that exist; one script call per
    2,000), and the clean row (`cleanrows.Row`) of each task read, from the same read."""
    rows = store.task_rows(OBSERVED_FIELDS, ids=ids)
    at = {name: 1 + i for i, name in enumerate(OBSERVED_FIELDS)}
    ready_targets = {r[at["target"]] for r in rows if r[1] == "ready" and r[at["target"]]}
    queued = store.queued_ids(sorted(ready_targets))
    unqueued = [r[0] for r in rows if r[1] == "ready" and r[0] not in queued]
    if unqueued:  # held back by an overlap of `touches`: as good as queued while it holds
        queued |= store.held_ids(unqueued)
    # 10,000 rows: one json.loads for every deps list, enum members looked up in dicts.
    deps_of = json.loads("[" + ",".join(r[at["deps"]] or "[]" for r in rows) + "]")
    tasks = {}
    for row, deps in zip(rows, deps_of, strict=True):
        tid, state, spec_hash, source, kind, target, _, order, run_if, after = row
        tasks[tid] = ObservedTask(
            id=tid,
            state=_STATES.get(state) or TaskState(state),
            spec_hash=spec_hash or "",
            source=_SOURCES.get(source) or Source(source),
            kind=_KINDS.get(kind) or TaskKind(kind),
            target=target or "",
            deps=tuple(deps),
            order=float(order or 0),
            queued=tid in queued,
            run_if=run_if or RUN_IF_DEFAULT,
            after=after or "",
        )
    meta = store.read_meta()
    digests = {k.split(":", 1)[1]: v for k, v in meta.items() if k.startswith("digest:")}
    observed = Observed(tasks, read_agents(store), int(meta.get("generation") or 0), digests)
    clean = [(r[0], r[2] or "", r[5] or "", r[6] or "", float(r[7] or 0)) for r in rows]
    return observed, clean


def with_changed_specs(store: Store, observed: Observed, desired: Desired) -> Observed:
    """`observed` with the stored spec of each task whose definition changed (its hash differs
    from the file's), so the plan can name the changed fields: one read for the few edited."""
    pairs: list[tuple[ObservedTask | None, TaskSpec | None]]
    if len(observed.tasks) < len(desired.tasks):  # an incremental apply's few
        specs = {t.id: t for t in desired.tasks}
        pairs = [(seen, specs.get(tid)) for tid, seen in observed.tasks.items()]
    else:
        pairs = [(observed.tasks.get(t.id), t) for t in desired.tasks]
    changed = [
        seen.id
        for seen, spec in pairs
        if seen is not None and spec is not None and seen.spec_hash != spec.spec_hash()
    ]
    if not changed:
        return observed
    tasks = dict(observed.tasks)
    for tid, spec_json in store.task_rows(("spec",), ids=changed):
        tasks[tid] = replace(tasks[tid], spec_json=spec_json or "")
    return replace(observed, tasks=tasks)


def with_tombstones(store: Store, observed: Observed, ids: Iterable[str]) -> Observed:
    """`observed` with the tombstones (`delete_tasks.lua`) of those of `ids` (the tasks a plan
    considers) that Redis has no task of: a plan restores them instead of creating them. One
    script call per 2,000 such ids; nothing is read when none would be created."""
    new = [tid for tid in ids if tid not in observed.tasks]
    if not new:
        return observed
    fields = (*OBSERVED_FIELDS, "spec")
    tombs = {}
    for row in store.tombstone_rows(fields, new):
        tid, state, spec_hash, source, kind, target, deps, order, run_if, after, spec_json = row
        tombs[tid] = ObservedTask(
            id=tid,
            state=_STATES.get(state) or TaskState(state),
            spec_hash=spec_hash or "",
            spec_json=spec_json or "",
            source=_SOURCES.get(source) or Source(source),
            kind=_KINDS.get(kind) or TaskKind(kind),
            target=target or "",
            deps=tuple(json.loads(deps or "[]")),
            order=float(order or 0),
            run_if=run_if or RUN_IF_DEFAULT,
            after=after or "",
        )
    return replace(observed, tombstones=tombs) if tombs else observed


def read_agents(store: Store) -> dict[str, ObservedAgent]:
    agent_records = store.agent_records()
    beats = store.heartbeat_alive(list(agent_records))
    agents = {}
    for name, rec in agent_records.items():
        if not rec.get("spec"):
            continue  # a process record without a roster entry (being spawned or forgotten)
        agents[name] = ObservedAgent(
            name=name,
            state=_agent_state(rec.get("state")),
            base=rec.get("base") or None,
            spec_hash=rec.get("spec_hash", ""),
            spec=agent_spec_from_json(rec.get("spec")),
            source=Source(rec.get("source") or "file"),
            suspended=rec.get("suspended") == "1",
            pid=int(rec["pid"]) if rec.get("pid", "").isdigit() else None,
            host=rec.get("host") or None,
            alive=beats.get(name, False),
            task=rec.get("task") or None,
            restarts=int(rec.get("restarts") or 0),
        )
    return agents


def _agent_state(value: str | None) -> AgentState:
    try:
        return AgentState(value or "stopped")
    except ValueError:
        return AgentState.STOPPED
