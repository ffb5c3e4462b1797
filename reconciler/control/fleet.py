"""Keep the agent processes of this place (the controller's host, or a node) matching the roster
as placed: start, adopt, stop. The controller's pass decides the placement first (`placing`).

An agent that is alive (its pid with the recorded start time, or a live heartbeat lease) is
adopted, never restarted: restarting `tt` must not kill healthy workers. Process work goes
through `supervisor`; what exists in Redis goes through the store. Crash-loop policy lives here.
Several `tt` processes may run this at once (a watcher's heal pass, `tt restart`): recording a
death and starting a process are compare-and-set writes on the agent's record, so one wins.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from .. import rundir
from ..agents import environment
from ..agents.models import OVERRIDE_ENV, resolve
from ..agents.supervisor import is_alive, kill_group, spawn_detached, stop_process
from ..plan.drift import stopped_by_hand
from ..plan.placement import Placed
from ..spec.desired import AgentSpec, Desired, ModelSpec
from ..store.nodes import NodeRead
from ..town import TownPaths
from . import heal, nodepass, placing, strays
from .atplace import desired_instances, placed_elsewhere


class FleetStore(Protocol):
    url: str
    fence: str  # 'e:N' for the leader's store: only its pass decides the placement

    def agent_records(self) -> dict[str, dict[str, str]]: ...
    def agent_record(self, name: str) -> dict[str, str]: ...
    def heartbeat_alive(self, names: list[str]) -> dict[str, bool]: ...
    def set_agent(self, name: str, fields: dict[str, str]) -> None: ...
    def forget_agent(self, name: str) -> None: ...
    def request_stop(self, name: str, how: str) -> None: ...
    def record_death(self, name: str, seen: Mapping[str, str], fields: dict[str, str]) -> bool: ...
    def claim_start(self, name: str, seen: Mapping[str, str], fields: dict[str, str]) -> bool: ...
    def record_spawn(self, name: str, spawn: str, fields: dict[str, str]) -> bool: ...
    def hand_back(self, task_id: str, token: str, reason: str = ...) -> bool: ...
    def event(self, etype: str, **fields: str) -> None: ...
    def node_records(self) -> dict[str, dict[str, str]]: ...
    def placement(self) -> Placed: ...
    def write_placement(self, placed: Placed, events: list[tuple[str, dict[str, str]]]) -> None: ...
    def node_read(self, node: str, placing: list[str], agents: list[str]) -> NodeRead: ...


# Starts a detached process (argv; cwd, env, log_path by keyword) → (pid, start time).
Spawner = Callable[..., tuple[int, str]]


@dataclass(frozen=True)
class FleetChange:
    """An agent process started, adopted, stopped or left suspended by an apply."""

    agent: str
    action: str  # started | adopted | stopped | suspended
    detail: str = ""


def local_alive(record: Mapping[str, str], host: str) -> bool:
    pid = record.get("pid", "")
    if record.get("host") != host or not pid.isdigit():
        return False
    return is_alive(int(pid), record.get("pid_start") or None)


def _mine(record: Mapping[str, str], host: str, place: str | None) -> bool:
    """A process this place started: on this host, under this node (`node` '' = the controller's).
    Several nodes may share a host; each adopts and stops only its own processes."""
    return local_alive(record, host) and record.get("node", "") == (place or "")


def ensure(
    paths: TownPaths,
    desired: Desired,
    store: FleetStore,
    *,
    env: Mapping[str, str] | None = None,
    stop_grace: float = 10.0,
    keep: set[str] | frozenset[str] = frozenset(),
    spawn: Spawner = spawn_detached,
    place: str | None = None,
    seen: nodepass.NodeView | None = None,
) -> list[FleetChange]:
    """Start what is placed at `place` (a node's name, by the leader's last placement; None:
    the controller's host, whose pass decides and records the placement first if it leads:
    `placing.acted_on`) and is not
    alive, stop what should not run there; `keep` names agents
    outside the roster that stay as they are (prune is off). The controller (`place` None) also
    records the deaths of agents placed on nodes whose heartbeat lease ran out (`_heal_away`).
    A node reads its own agents only (`nodepass`; `seen`: what its pass read already)."""
    host = socket.gethostname()
    if place is None:
        records = store.agent_records()
        # The leader's pass decides the placement; a pass not leading reads the last.
        placed = placing.acted_on(store, desired, records)
        beats = store.heartbeat_alive(list(records))
    else:
        view = seen or nodepass.read(store, desired, place)
        records, placed, beats = view.records, view.placed, view.beats
    want = desired_instances(desired, place, placed, records)
    away = placed_elsewhere(desired, place, placed, records, here=want)
    changes: list[FleetChange] = []
    starts: list[tuple[str, Mapping[str, str], dict[str, str]]] = []  # (name, record, env)

    @functools.cache
    def nodes() -> dict[str, dict[str, str]]:  # (read once, if an agent fell silent)
        return store.node_records()

    def lost(rec: Mapping[str, str]) -> str:  # the other node a silent agent died with, or ''
        at = rec.get("node", "")
        gone = at and at != (place or "") and heal.node_lost(nodes().get(at), time.time())
        return at if gone else ""

    for name, run_here in want.items():
        rec = records.get(name, {})
        if rec.get("root", str(paths.root)) != str(paths.root) and _mine(rec, host, place):
            # Started for another folder of this host (a town adopted here, another clone of
            # its repository): it must not serve this town's tasks from there.
            why = f"runs in {rec['root']}, not in the town's folder {paths.root}"
            changes.append(stop_agent(store, name, rec, why, grace=stop_grace))
            store.set_agent(name, {"state": "stopped", "task": ""})
            rec = store.agent_record(name)
        local = _here(rec, host, place)
        alive = _mine(rec, host, place) or (not local and beats.get(name, False))
        if not run_here:
            if _mine(rec, host, place):
                nowhere = placed.unschedulable.get(name)
                why = f"unschedulable ({nowhere})" if nowhere else "suspended"
                changes.append(stop_agent(store, name, rec, why, grace=stop_grace))
            elif local and heal.is_dead(rec, local=True, pid_alive=False, lease_alive=False):
                # Died here while suspended (or being stopped): its task goes back to the
                # queue and the death is recorded; it stays parked until it is resumed.
                died = _died(store, name, rec, desired, time.time())
                if died is not None:
                    changes.append(FleetChange(name, "died", died.get("reason", "")))
            continue
        if alive:
            # A worker that wrote `stopped` itself is on its way out (a person stopped it):
            # marked idle, its exit would read as a crash. Others are adopted as idle.
            if rec.get("state") in ("stopped", "") and not stopped_by_hand(rec, alive=False):
                store.set_agent(name, {"state": "idle"})
            continue
        now = time.time()
        if heal.start_pending(rec, now, desired.town.policy.lease):
            continue  # another `tt` is starting it
        if heal.is_dead(rec, local=local, pid_alive=False, lease_alive=beats.get(name, False)):
            died = _died(store, name, rec, desired, now, "" if local else lost(rec))
            if died is None:
                continue  # another `tt` recorded this death first (and restarts it)
            rec = {**rec, **died}
            changes.append(FleetChange(name, "died", rec.get("reason", "")))
        if not heal.may_start(rec, now) or _left_stopped(desired, name, rec):
            continue
        source = os.environ if env is None else env
        spec = _spec_of(desired, name)
        lacking = environment.missing(source, spec)
        if lacking:
            changes.append(_not_started(store, name, rec, lacking))
            continue
        child_env = environment.agent_process_env(
            source, spec, _model_of(desired, spec, source), desired.town.serve_token_env
        )
        if place is not None:
            child_env[environment.NODE_ENV] = place  # the worker records it (`node`)
        starts.append((name, rec, child_env))
    for name, node in away.items():
        rec = records.get(name, {})
        if _mine(rec, host, place):  # placed elsewhere since this place started it
            why = f"placed on {'node ' + node if node else 'the controller'}"
            changes.append(stop_agent(store, name, rec, why, grace=stop_grace))
        elif place is None and rec:
            changes.extend(_heal_away(store, name, rec, desired, beats.get(name, False), lost))
    for name, rec in records.items():
        if name not in want and name not in away and name not in keep:  # not in the roster
            if _mine(rec, host, place):
                changes.append(
                    stop_agent(store, name, rec, "removed from town.toml", grace=stop_grace)
                )
            # The controller's to forget (a node only stops its own), once no node runs it:
            # a live process of a node is left for its node to stop first.
            if place is None and not (rec.get("node") and beats.get(name, False)):
                store.forget_agent(name)
    for agent, pid, at in strays.stop_strays(
        paths, place, host, records, store.agent_record, stop_grace
    ):  # superseded while this place was cut off: its agent runs anew
        changes.append(FleetChange(agent, "stopped", f"pid {pid}: superseded (now {at})"))
        store.event("agent.stopped", agent=agent, reason="superseded", pid=str(pid), by=_actor())
    # Starts after every stop: a slot freed in this pass is free before it is taken again.
    for name, found, child_env in starts:
        started = _start(paths, store, name, found, (host, place or ""), child_env, spawn)
        if started is not None:
            changes.append(started)
    return changes


def _here(rec: Mapping[str, str], host: str, place: str | None) -> bool:
    """Whether a record's process is checked by pid here (started on this host by this place,
    or never started: no host yet), rather than by its heartbeat lease."""
    return rec.get("host", host) == host and rec.get("node", "") == (place or "")


def _heal_away(
    store: FleetStore,
    name: str,
    rec: Mapping[str, str],
    desired: Desired,
    lease_alive: bool,
    lost: Callable[[Mapping[str, str]], str],
) -> list[FleetChange]:
    """An agent placed on a node, silent past its lease (its node died, or it did): its death is
    recorded and its running task handed back (the attempt token fences a late completion).
    Its node, alive or back, starts it again. The death of a node that is not ready is not
    the agent's crash (`heal.on_death`'s `node_lost`): a flaky host quarantines no agent."""
    now = time.time()
    if lease_alive or not heal.silent(rec, now, desired.town.policy.lease):
        return []
    if not heal.is_dead(rec, local=False, pid_alive=False, lease_alive=False):
        return []
    died = _died(store, name, rec, desired, now, lost(rec))
    return [] if died is None else [FleetChange(name, "died", "heartbeat lease expired")]


def _left_stopped(desired: Desired, name: str, rec: Mapping[str, str]) -> bool:
    """Stopped by a person, and `[town] self_heal = false`: drift, reported and left so. Or
    stopped after its max_rounds, and its `restart` is not `always`."""
    if heal.rounds_spent(rec, _spec_of(desired, name).restart):
        return True
    return not desired.town.policy.self_heal and stopped_by_hand(rec, alive=False)


def _died(
    store: FleetStore,
    name: str,
    rec: Mapping[str, str],
    desired: Desired,
    now: float,
    node_lost: str = "",
) -> dict[str, str] | None:
    """Record a crash (backoff or quarantine) and hand its running task back to the queue;
    None when the record no longer shows the dead process (another `tt` handled it)."""
    # The record read at the start of the pass may predate the agent's last claim (or model
    # start): read it again; the process is gone, so it no longer changes.
    fresh = store.agent_record(name)
    if _identity(fresh) != _identity(rec):
        return None
    rec = {**rec, **fresh}
    spec = _spec_of(desired, name)
    fields = heal.on_death(rec, now, desired.town.policy, spec.restart, node_lost)
    fields["model_pid"] = ""
    # (Its pid cleared: a process only cut off that beats again later is superseded.)
    if not store.record_death(name, rec, fields):
        return None
    kill_orphaned_model(rec)
    if rec.get("task"):
        # Only if it is still this agent's attempt: its marker may outlive a cancel and re-run.
        store.hand_back(rec["task"], f"*:{name}", f"agent {name} died")
    store.event(
        "agent.exited", agent=name, reason="crashed", detail=fields.get("reason", ""), by=_actor()
    )
    return fields


def _spec_of(desired: Desired, name: str) -> AgentSpec:
    return next(a for a in desired.agents if name in a.instances())


def _model_of(desired: Desired, spec: AgentSpec, source: Mapping[str, str]) -> ModelSpec:
    """The model the agent will run (the override in `source`, else its own), for the
    credentials it is passed; an unknown one gets none (its start fails and says why)."""
    try:
        return resolve(spec.model, {m.name: m for m in desired.models}, source.get(OVERRIDE_ENV))
    except KeyError:
        return ModelSpec(name="", command=())


def _not_started(
    store: FleetStore, name: str, rec: Mapping[str, str], lacking: tuple[str, ...]
) -> FleetChange:
    """An agent whose `env_from` names variables this environment lacks is not started (it
    would run with them silently unset): its record and an event say which, once."""
    reason = f"missing env {' '.join(lacking)}"
    if rec.get("reason") != reason or rec.get("state") != "stopped":
        store.set_agent(name, {"state": "stopped", "reason": reason, "stopped_by": reason})
        store.event("agent.env_missing", agent=name, missing=" ".join(lacking), by=_actor())
    return FleetChange(name, "not started", reason)


def _identity(rec: Mapping[str, str]) -> tuple[str, str]:
    """Which process a record names: its spawn id (new at each start) and pid."""
    return rec.get("spawn", ""), rec.get("pid", "")


def _actor() -> str:
    """Who wrote an event (host:pid): with several loops on one town, only the leader may."""
    return f"{socket.gethostname()}:{os.getpid()}"


def kill_orphaned_model(rec: Mapping[str, str]) -> bool:
    """The model process group of an agent that died mid-task (its pid and start time are in the
    record while it runs): kill it, so it does not work on beside the next attempt."""
    pid = rec.get("model_pid", "")
    if rec.get("host") != socket.gethostname() or not pid.isdigit():
        return False
    return kill_group(int(pid), rec.get("model_start") or None)


def _start(
    paths: TownPaths,
    store: FleetStore,
    name: str,
    rec: Mapping[str, str],
    where: tuple[str, str],
    env: dict[str, str],
    spawn: Spawner,
) -> FleetChange | None:
    """Start the next process of `name` if the record still shows what `rec` read (else another
    `tt` started it: None). The claim drops the dead instance's lease (only if still its own)."""
    spawn_id = uuid.uuid4().hex
    restarts = int(rec.get("restarts", "0") or 0) + (1 if rec.get("spawned_at") else 0)
    claim = {
        "spawn": spawn_id,
        "pid": "",
        "pid_start": "",
        "host": where[0],
        "node": where[1],  # the place that starts it ('' = the controller's host)
        "root": str(paths.root),
        "state": "starting",
        "spawned_at": repr(time.time()),
        "restarts": str(restarts),
        "stopped_by": "",
        "instance": "",  # the process it replaces, if it still runs cut off, is superseded
    }
    if rec.get("reason", "").startswith("missing env"):
        claim["reason"] = ""  # it has them now
    if not store.claim_start(name, rec, claim):
        return None
    # The previous instance is dead (checked by pid): a task it was running goes back to its
    # queue, and its model process must not run on beside the new one.
    if rec.get("task"):
        store.hand_back(rec["task"], f"*:{name}", f"agent {name} restarted")
    kill_orphaned_model(rec)
    child_env = {**env, "TT_TOWN": str(paths.root)}
    argv = [sys.executable, "-m", "cli", "agent", "run", name, "--town", str(paths.root)]
    pid, start = spawn(
        argv, cwd=paths.root, env=child_env, log_path=paths.logs_dir / name / "agent.log"
    )
    if not store.record_spawn(name, spawn_id, {"pid": str(pid), "pid_start": start}):
        stop_process(pid, start or None, 3.0)  # claimed again meanwhile (forgotten, restarted)
        return FleetChange(name, "stopped", f"pid {pid}: another start claimed the agent")
    rundir.register(paths, rundir.AGENT, name, pid, start, where[1])  # (the worker's too)
    store.event("agent.spawned", agent=name, pid=str(pid), by=_actor())
    return FleetChange(name, "started", f"pid {pid}")


def stop_agent(
    store: FleetStore,
    name: str,
    rec: Mapping[str, str],
    why: str,
    *,
    grace: float = 10.0,
    term_grace: float = 3.0,
) -> FleetChange:
    """The one way an agent's process is stopped (apply, `tt restart`, `tt down`): ask it to stop
    (an idle agent exits; a busy one hands its task back when signalled), wait up to `grace`,
    SIGTERM the group, SIGKILL it after `term_grace`; kill a model left behind; record it."""
    store.request_stop(name, "stop")
    # `stopped_by`: tt stopped it, not a person (`plan.drift.stopped_by_hand`); a start clears it.
    store.set_agent(name, {"state": "stopping", "stopped_by": why})
    pid, start = int(rec["pid"]), rec.get("pid_start") or None
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and is_alive(pid, start):
        time.sleep(0.05)
    gone = stop_process(pid, start, term_grace)
    kill_orphaned_model(rec)
    store.event("agent.stopped", agent=name, reason=why, by=_actor())
    return FleetChange(name, "stopped", why if gone else f"{why}; pid {pid} did not exit")
