"""One reconcile pass: load the files, hold the apply lock, read Redis, plan, execute, record.

`apply` is what `tt apply`, `tt sync push`, the file-editing verbs and the watch loop call.
Invalid files raise before anything is written; the plan is computed by the pure `plan.diff`;
writes go through store scripts in batches; processes through `fleet`. No click, no printing.
Files unchanged since an apply that left nothing to do take a checked fast path (below).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from . import __version__, fleet, loader
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
)
from .store import Store
from .supervisor import is_alive, proc_start_time
from .town import TownPaths

BATCH = 500
LOCK_TTL = 120.0
# Part of the recorded fingerprint of a clean town: another version of tt plans afresh.
CLEAN_FORMAT = f"1/{__version__}"


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


def apply(session: Session, opts: ApplyOptions) -> ApplyResult:
    with _gc_paused():
        return _apply(session, opts)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """A pass builds ~10^6 objects for 10,000 tasks (parsed TOML, specs, graph, plan) and keeps
    them all until it ends: the cycle collector's full sweeps over them would find nothing and
    cost 15-20 % of an apply. Paused for the pass only (`tt conductor` runs many)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _apply(session: Session, opts: ApplyOptions) -> ApplyResult:
    started = time.monotonic()
    fingerprint, town_text = file_fingerprint(session.paths)
    store = session.store
    # The files are those of the last apply that left nothing to do: plan only if Redis moved.
    quick = fingerprint is not None and store.clean_fingerprint() == fingerprint
    desired = None if quick else session.desired()  # raises ValidationFailed: nothing is written
    with apply_lock(store, opts.command, opts.lock_timeout):
        if fingerprint is not None and town_text is not None and desired is None:
            result = _unchanged(session, opts, fingerprint, town_text, started)
            if result is not None:
                return result
        if desired is None or file_fingerprint(session.paths)[0] != clean_fingerprint(
            dict(desired.digests)
        ):
            # Read (again) under the lock: files another command changed while this one waited
            # would otherwise be applied as they were, and prune would undo that change.
            desired = session.desired()
        observed = with_changed_specs(store, read_observed(store), desired)
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
        if all(a.write for a in plan.actions):
            # Nothing is left for a next pass to report either: remember the state (the Lua
            # script checks it first), so an apply of the same files can skip planning.
            store.check_clean(clean_fingerprint(dict(desired.digests)), record=True)
        keep = {a.name for a in plan.actions if isinstance(a, OrphanAgent)}
        changes = _fleet(session, desired, opts, keep)
    return ApplyResult(plan, True, generation, tuple(changes), time.monotonic() - started)


def _fleet(
    session: Session, desired: Desired, opts: ApplyOptions, keep: set[str]
) -> list[fleet.FleetChange]:
    if not opts.start_agents:
        return []
    env = dict(os.environ)
    override = opts.model or os.environ.get("TT_MODEL_OVERRIDE")
    if override:
        env["TT_MODEL_OVERRIDE"] = override
    return fleet.ensure(session.paths, desired, session.store, env=env, keep=keep)


def _record(store: Store, desired: Desired, generation: int, observed: Observed) -> None:
    digests = dict(desired.digests)
    if generation != observed.generation or digests != dict(observed.digests):
        fields = {f"digest:{name}": value for name, value in digests.items()}
        fields.update(
            {"generation": str(generation), "applied_at": repr(time.time()), "schema": "1"}
        )
        store.write_meta(fields)


# -- the no-op fast path -------------------------------------------------------------------------
# Parsing and diffing 10,000 tasks takes about a second; a periodic resync or a CI re-run mostly
# finds nothing to do. An apply whose plan comes out with no records at all records the files'
# fingerprint and a digest of the task definitions (`lua/clean.lua`); every task writer clears
# them. The next apply of byte-identical files runs that script instead of planning: it passes
# only if Redis still holds those definitions and nothing needs a repair (a ready task outside
# its queue, a blocked one with nothing to wait for). Agents are diffed as usual: town.toml is
# small. Anything else plans in full, so the result is the same as planning, only sooner.


def file_fingerprint(paths: TownPaths) -> tuple[str | None, str | None]:
    """(fingerprint of town.toml + tasks.toml as they are now, town.toml's text); (None, None)
    when a file cannot be read as the loader would (it will report why)."""
    try:
        town_raw = paths.town_file.read_bytes()
        town_text = town_raw.decode("utf-8")
        try:
            tasks_raw = paths.tasks_file.read_bytes()
        except FileNotFoundError:
            tasks_raw = b""
    except (OSError, UnicodeDecodeError):
        return None, None
    digests = {
        "town.toml": hashlib.sha256(town_raw).hexdigest(),
        "tasks.toml": hashlib.sha256(tasks_raw).hexdigest(),
    }
    return clean_fingerprint(digests), town_text


def clean_fingerprint(digests: dict[str, str]) -> str:
    """The same digests the loader records (sha256 of each file's bytes; b"" when absent)."""
    return "/".join((CLEAN_FORMAT, digests.get("town.toml", ""), digests.get("tasks.toml", "")))


def _unchanged(
    session: Session, opts: ApplyOptions, fingerprint: str, town_text: str, started: float
) -> ApplyResult | None:
    """The fast path's result, or None when a full pass is needed. Runs under the lock."""
    store = session.store
    clean, generation = store.check_clean(fingerprint, record=False)
    if not clean:
        return None
    roster = loader.load_texts(town_text, None)  # valid: these bytes were applied before
    agents = diff(roster, Observed(agents=read_agents(store)), time.time(), prune=opts.prune)
    if agents.actions:
        return None
    if opts.dry_run:
        return ApplyResult(Plan(), False, generation, (), time.monotonic() - started)
    changes = _fleet(session, roster, opts, set())
    return ApplyResult(Plan(), True, generation, tuple(changes), time.monotonic() - started)


# -- the lock ------------------------------------------------------------------------------------


@contextmanager
def apply_lock(store: Store, command: str, timeout: float) -> Iterator[None]:
    token = uuid.uuid4().hex
    holder = {
        "token": token,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_start": proc_start_time(os.getpid()),
        "command": command,
        "since": time.time(),
    }
    deadline = time.monotonic() + timeout
    while True:
        current = store.try_lock(holder, LOCK_TTL)
        if current is None:
            break
        if _holder_dead(current):
            # An apply killed (kill -9, a crash) on this host: its lock must not block the
            # re-run for LOCK_TTL. Taken over only if it is still that holder's.
            if store.take_over_lock(str(current.get("token", "")), holder, LOCK_TTL):
                break
            continue
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


def _holder_dead(holder: dict[str, object]) -> bool:
    """The lock's holder ran on this host and its process is gone (pid plus start time)."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    start = holder.get("pid_start")
    return not is_alive(pid, start if isinstance(start, str) else None)


# -- observed state ------------------------------------------------------------------------------


# What `plan.diff` reads of a task. Timestamps, results and errors (up to kilobytes each) are
# left out: they are for `tt status`, and a finished 10,000-task town would read megabytes. So is
# the stored spec: its hash tells whether it changed; `with_changed_specs` reads the few that did.
OBSERVED_FIELDS = ("state", "hash", "source", "kind", "target", "deps", "order")


# Enum members by stored value; None (a field left out of the hash) means the default.
_STATES: dict[str | None, TaskState] = {s.value: s for s in TaskState} | {None: TaskState.BLOCKED}
_SOURCES: dict[str | None, Source] = {s.value: s for s in Source} | {None: Source.FILE}
_KINDS: dict[str | None, TaskKind] = {k.value: k for k in TaskKind} | {None: TaskKind.WORK}


def read_observed(store: Store) -> Observed:
    """The town's actual state: every task (one script call per 2,000), the agents, the meta."""
    rows = store.task_rows(OBSERVED_FIELDS)
    at = {name: 1 + i for i, name in enumerate(OBSERVED_FIELDS)}
    ready_targets = {r[at["target"]] for r in rows if r[1] == "ready" and r[at["target"]]}
    queued = store.queued_ids(sorted(ready_targets))
    # 10,000 rows: one json.loads for every deps list, enum members looked up in dicts.
    deps_of = json.loads("[" + ",".join(r[at["deps"]] or "[]" for r in rows) + "]")
    tasks = {}
    for row, deps in zip(rows, deps_of, strict=True):
        tid, state, spec_hash, source, kind, target, _, order = row
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
        )
    meta = store.read_meta()
    digests = {k.split(":", 1)[1]: v for k, v in meta.items() if k.startswith("digest:")}
    return Observed(tasks, read_agents(store), int(meta.get("generation") or 0), digests)


def with_changed_specs(store: Store, observed: Observed, desired: Desired) -> Observed:
    """`observed` with the stored spec of each task whose definition changed (its hash differs
    from the file's), so the plan can name the changed fields: one read for the few edited."""
    changed = [
        t.id
        for t in desired.tasks
        if (seen := observed.tasks.get(t.id)) is not None and seen.spec_hash != t.spec_hash()
    ]
    if not changed:
        return observed
    tasks = dict(observed.tasks)
    for tid, spec_json in store.task_rows(("spec",), ids=changed):
        tasks[tid] = replace(tasks[tid], spec_json=spec_json or "")
    return replace(observed, tasks=tasks)


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
    rec: dict[str, object] = {
        "mode": mode,
        "id": spec.id,
        "spec": spec.canonical_json(),
        "hash": spec.spec_hash(),
        "target": target,
        "order": order,
        "directive": spec.directive.value,
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
    return rec


def execute(store: Store, plan: Plan, desired: Desired, generation: int) -> None:
    """Run the plan's writes: agent records, then task records in plan order (batched Lua),
    then deletes, then dispatch repairs. A crash between batches leaves each task old or new;
    the next pass converges."""
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
    deletes = [a.id for a in plan.actions if isinstance(a, DeleteTask)]
    requeues = [a.id for a in plan.actions if isinstance(a, Requeue)]
    store.upsert_batches(_batches(plan), generation)
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


def _batches(plan: Plan) -> Iterator[list[dict[str, object]]]:
    """The task records of the plan in plan order, BATCH at a time (built as they are sent)."""
    records: list[dict[str, object]] = []
    for a in plan.actions:
        if isinstance(a, CreateTask):
            rec = task_record(
                a.spec, kind=a.kind, target=a.target, deps=a.deps, order=a.order, source=a.source
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
            )
        elif isinstance(a, CompleteTask):
            rec = {"mode": "complete", "id": a.id}
        elif isinstance(a, CancelTask):
            rec = {"mode": "cancel", "id": a.id}
        else:
            continue
        records.append(rec)
        if len(records) == BATCH:
            yield records
            records = []
    if records:
        yield records
