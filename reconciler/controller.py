"""One reconcile pass: load the files, hold the apply lock, read Redis, plan, execute, record.

`apply` is what `tt apply`, `tt sync push`, the file-editing verbs and the watch loop call.
Invalid files raise before anything is written; the plan is computed by the pure `plan.diff`;
writes go through store scripts in batches; processes through `fleet`. No click, no printing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from . import fleet
from .errors import TtError
from .graph import TaskKind
from .plan import (
    CancelTask,
    CompleteTask,
    CreateAgent,
    CreateTask,
    DeleteTask,
    OrphanAgent,
    Plan,
    Requeue,
    RerunTask,
    UpdateAgent,
    UpdateTask,
    diff,
)
from .session import Session
from .spec import Desired, TaskSpec
from .state import (
    AgentState,
    Observed,
    ObservedAgent,
    ObservedTask,
    Source,
    TaskState,
    agent_spec_from_json,
    agent_spec_json,
    task_spec_from_json,
    task_spec_json,
)
from .store import Store

BATCH = 500
LOCK_TTL = 120.0


@dataclass(frozen=True)
class ApplyOptions:
    dry_run: bool = False
    prune: bool = True
    allow_empty: bool = False
    rerun_changed: bool = False
    model: str | None = None  # `--model sim`: every agent runs this model
    lock_timeout: float = 0.0
    start_agents: bool = True
    command: str = "tt apply"


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    applied: bool
    generation: int
    fleet: tuple[fleet.FleetChange, ...] = ()
    seconds: float = 0.0


def with_model(desired: Desired, model: str | None) -> Desired:
    """`--model M` / TT_MODEL_OVERRIDE: rehearse a town on another model (e.g. sim)."""
    if not model:
        return desired
    agents = tuple(dataclasses.replace(a, model=model) for a in desired.agents)
    return dataclasses.replace(desired, agents=agents)


def apply(session: Session, opts: ApplyOptions) -> ApplyResult:
    started = time.monotonic()
    desired = session.desired()  # raises ValidationFailed: nothing is written
    store = session.store
    with apply_lock(store, opts.command, opts.lock_timeout):
        observed = read_observed(store)
        plan = diff(
            desired, observed, time.time(), prune=opts.prune, rerun_changed=opts.rerun_changed
        )
        if plan.deletes_everything and not opts.allow_empty:
            raise TtError(
                "refusing to apply: it would delete every task or agent the files owned "
                "(is tasks.toml or town.toml empty or truncated?)",
                hint="check the files; if you mean it, run again with --allow-empty",
            )
        if opts.dry_run:
            return ApplyResult(plan, False, observed.generation, (), time.monotonic() - started)
        generation = observed.generation + (0 if plan.is_empty else 1)
        if not plan.is_empty:
            execute(store, plan, desired, generation)
        _record(store, desired, generation, observed)
        changes: list[fleet.FleetChange] = []
        if opts.start_agents:
            keep = {a.name for a in plan.actions if isinstance(a, OrphanAgent)}
            env = dict(os.environ)
            override = opts.model or os.environ.get("TT_MODEL_OVERRIDE")
            if override:
                env["TT_MODEL_OVERRIDE"] = override
            changes = fleet.ensure(session.paths, desired, store, env=env, keep=keep)
    return ApplyResult(plan, True, generation, tuple(changes), time.monotonic() - started)


def _record(store: Store, desired: Desired, generation: int, observed: Observed) -> None:
    digests = dict(desired.digests)
    if generation != observed.generation or digests != dict(observed.digests):
        fields = {f"digest:{name}": value for name, value in digests.items()}
        fields.update(
            {"generation": str(generation), "applied_at": repr(time.time()), "schema": "1"}
        )
        store.write_meta(fields)


# -- the lock ------------------------------------------------------------------------------------


@contextmanager
def apply_lock(store: Store, command: str, timeout: float) -> Iterator[None]:
    token = uuid.uuid4().hex
    holder = {
        "token": token,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": command,
        "since": time.time(),
    }
    deadline = time.monotonic() + timeout
    while True:
        current = store.try_lock(holder, LOCK_TTL)
        if current is None:
            break
        if time.monotonic() >= deadline:
            since = float(str(current.get("since", 0)))
            raise TtError(
                f"another apply holds the town's lock: {current.get('command')} "
                f"(pid {current.get('pid')} on {current.get('host')}, "
                f"for {max(0.0, time.time() - since):.0f}s)",
                hint="wait for it, pass --lock-timeout SECONDS, or `tt unlock` if it is stale",
            )
        time.sleep(0.05)
    try:
        yield
    finally:
        store.unlock(token)


# -- observed state ------------------------------------------------------------------------------


def read_observed(store: Store) -> Observed:
    records = store.task_records()
    targets = {r.get("target", "") for r in records if r.get("state") == "ready"}
    queued = store.queued_ids(sorted(t for t in targets if t))
    tasks = {}
    for r in records:
        tid = r["id"]
        tasks[tid] = ObservedTask(
            id=tid,
            state=TaskState(r.get("state") or "blocked"),
            spec_hash=r.get("hash", ""),
            spec=task_spec_from_json(r.get("spec")),
            source=Source(r.get("source") or "file"),
            kind=TaskKind(r.get("kind") or "work"),
            target=r.get("target", ""),
            deps=tuple(json.loads(r.get("deps") or "[]")),
            deps_left=int(r.get("deps_left") or 0),
            order=float(r.get("order") or 0),
            queued=tid in queued,
            attempt=int(r.get("attempt") or 0),
            assignee=r.get("assignee") or None,
            created_at=_f(r.get("created_at")),
            started_at=_f(r.get("started_at")),
            finished_at=_f(r.get("finished_at")),
            error=r.get("error") or None,
            result=r.get("result") or None,
            next_attempt_at=_f(r.get("next_attempt_at")),
        )
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
    meta = store.read_meta()
    digests = {k.split(":", 1)[1]: v for k, v in meta.items() if k.startswith("digest:")}
    return Observed(tasks, agents, int(meta.get("generation") or 0), digests)


def _agent_state(value: str | None) -> AgentState:
    try:
        return AgentState(value or "stopped")
    except ValueError:
        return AgentState.STOPPED


def _f(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


# -- execution -----------------------------------------------------------------------------------


def task_record(
    spec: TaskSpec,
    *,
    kind: TaskKind,
    target: str,
    deps: tuple[str, ...],
    order: float,
    source: Source,
    mode: str = "upsert",
) -> dict[str, object]:
    return {
        "mode": mode,
        "id": spec.id,
        "spec": task_spec_json(spec),
        "hash": spec.spec_hash(),
        "source": source.value,
        "kind": kind.value,
        "target": target,
        "deps": list(deps),
        "order": order,
        "priority": spec.priority,
        "retries": -1 if spec.retries is None else spec.retries,
        "timeout": -1 if spec.timeout is None else spec.timeout,
        "directive": spec.directive.value,
    }


def execute(store: Store, plan: Plan, desired: Desired, generation: int) -> None:
    """Run the plan's writes: agent records, then task records in plan order (batched Lua),
    then deletes, then dispatch repairs. A crash between batches leaves each task old or new;
    the next pass converges."""
    records: list[dict[str, object]] = []
    deletes: list[str] = []
    requeues: list[str] = []
    for a in plan.actions:
        if isinstance(a, (CreateAgent, UpdateAgent)):
            store.set_agent_spec(
                a.name,
                base=a.spec.name,
                spec=agent_spec_json(a.spec),
                spec_hash=a.spec.spec_hash(),
                suspended=a.spec.suspended,
            )
            if isinstance(a, UpdateAgent) and a.restart:
                store.request_stop(a.name, "restart")
        elif isinstance(a, CreateTask):
            records.append(
                task_record(
                    a.spec,
                    kind=a.kind,
                    target=a.target,
                    deps=a.deps,
                    order=a.order,
                    source=a.source,
                )
            )
        elif isinstance(a, UpdateTask):
            rec = task_record(
                a.spec, kind=a.kind, target=a.target, deps=a.deps, order=a.order, source=Source.FILE
            )
            # A done/cancel directive comes as its own record; Lua settles only pending ones, so
            # a task the file cancels is never queued in between.
            records.append(rec)
        elif isinstance(a, RerunTask):
            records.append(
                task_record(
                    a.spec,
                    kind=a.kind,
                    target=a.target,
                    deps=a.deps,
                    order=a.order,
                    source=Source.FILE,
                    mode="rerun",
                )
            )
        elif isinstance(a, CompleteTask):
            records.append({"mode": "complete", "id": a.id})
        elif isinstance(a, CancelTask):
            records.append({"mode": "cancel", "id": a.id})
        elif isinstance(a, DeleteTask):
            deletes.append(a.id)
        elif isinstance(a, Requeue):
            requeues.append(a.id)
    for start in range(0, len(records), BATCH):
        store.upsert_tasks(records[start : start + BATCH], generation)
    if deletes:
        store.delete_tasks(deletes)
    if requeues:
        store.requeue(requeues)
    if plan.changes:
        store.event(
            "apply",
            generation=str(generation),
            summary=plan.summary(),
            pid=str(os.getpid()),
            argv=" ".join(sys.argv[1:3]),
        )
