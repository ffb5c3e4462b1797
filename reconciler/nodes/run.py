"""The node process, `tt node run --name N`: one per node name, in the foreground. It registers
node N in the town's Redis (`store/nodes.py`: a second live process of the same name is refused),
renews the node's lease from a thread, and at each pass (every `interval`, and at once on an
agent's, the files' or a placement's event) starts, adopts and stops the agents the leader
placed on it (`control/placing.py`) through `fleet.ensure` with N as the place. It never plans
tasks nor places agents: the controller does.
Stopped on purpose (SIGINT/SIGTERM) it stops its agents (a busy one hands its task back) and
leaves (state stopped); killed, it leaves them: its lease expires, the node shows dead, and the
controller hands the tasks of its silent agents back (`fleet._heal_away`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from .. import __version__, rundir
from ..agents.supervisor import proc_start_time, spawn_detached
from ..control import fleet, nodepass, placing
from ..control.session import Session
from ..errors import EXIT_OK, TtError, ValidationFailed
from ..plan.nodes import DRAINING
from ..spec.desired import Desired
from ..spec.names import name_problem

Report = Callable[[str, str], None]
WAKE_EVENTS = frozenset(
    {"agent.exited", "agent.stopped", "config.changed", "node.draining", "town.resumed"}
    | {placing.PLACED_EVENT, placing.UNSCHEDULABLE_EVENT}  # the leader moved an agent
)
APPLY_EVENT = "apply"  # the controller applied a change of the files: read them again
DOWN_EVENT = "town.down"  # `tt down`: the node leaves (tt down stops the agents of its host)
STOP_GRACE = 2.0  # a busy agent of a stopping node is signalled after this (it hands back)


@dataclass(frozen=True)
class NodeOptions:
    name: str
    slots: int = 0  # agents the leader places on it at most; 0: not said (no limit)
    labels: tuple[tuple[str, str], ...] = ()
    lease: float = 10.0
    interval: float = 1.0


def check_options(opts: NodeOptions) -> None:
    """Bad input refused before anything is written: the name rule, a positive lease."""
    problem = name_problem(opts.name)
    if problem:
        raise TtError(f"--name {opts.name!r}: not a valid node name: {problem}")
    if not opts.lease > 0 or not opts.interval > 0:
        raise TtError(f"--lease {opts.lease:g} / --interval {opts.interval:g}: must be > 0")
    if opts.slots < 0:
        raise TtError(f"--slots {opts.slots}: must be 0 or more")
    for key, value in opts.labels:
        if problem := name_problem(key):
            raise TtError(f"--label {key!r}: not a valid label name: {problem}")
        if "," in value or "=" in value:  # the record keeps them as `k=v,k2=v2`
            raise TtError(
                f"--label {key}={value}: a label value holds no ',' or '='",
                hint="one --label per label: --label a=1 --label b=2",
            )


def parse_labels(items: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """`k=v` pairs (`--label gpu=1`) → sorted pairs; a missing `=` is refused."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TtError(f"--label {item!r}: expected KEY=VALUE", hint="e.g. --label gpu=1")
        out.append((key, value))
    return tuple(sorted(out))


class NodeRun:
    def __init__(
        self,
        session: Session,
        opts: NodeOptions,
        report: Report,
        spawn: fleet.Spawner = spawn_detached,
    ) -> None:
        check_options(opts)
        self.s, self.opts, self.report, self.spawn = session, opts, report, spawn
        self.instance = uuid.uuid4().hex
        self.wake = threading.Event()
        self.done = threading.Event()  # set by the main thread only (see `_on_signal`)
        self.signalled = False
        self.lost = False  # another process took the name: stop without touching its agents
        self.downed = False  # `tt down` (its event): it stops the agents; this one only leaves
        self.good: Desired | None = None
        self.drained: set[str] = set()  # agents asked to drain (once each)
        self.reread = False  # an apply happened: read the files at the next pass
        self.read_at = 0.0  # ... and at the resync in any case
        self.invalid = ""  # the last invalid read's error, said once
        self.mine: frozenset[str] = frozenset()  # its agents at the last pass (read at once)

    def run(self) -> int:
        store, name = self.s.store, self.opts.name
        fields = {
            "host": socket.gethostname(),
            "pid": str(os.getpid()),
            "version": __version__,
            "slots": str(self.opts.slots),
            "labels": ",".join(f"{k}={v}" for k, v in self.opts.labels),
            "root": str(self.s.paths.root),
            "started_at": repr(time.time()),
            "lease_s": f"{self.opts.lease:g}",
        }
        holder = store.register_node(name, self.instance, self.opts.lease, fields)
        if holder is not None:
            raise TtError(
                f"node {name} is already running (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, its lease lives)",
                hint="stop that process first, or give this one another --name",
            )
        store.index_node_agents(name)  # its passes read only these and those placed on it
        if threading.current_thread() is threading.main_thread():  # (not in a test's thread)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._on_signal)
        self.report("node", f"node {name} ready (lease {self.opts.lease:g}s, pid {os.getpid()})")
        for target in (self._beat, self._follow):
            threading.Thread(target=target, daemon=True).start()
        pid = os.getpid()  # registered: `tt down` on this host waits for it to exit
        try:
            with rundir.registered_as(
                self.s.paths, rundir.WATCHER, pid, proc_start_time(pid) or ""
            ):
                while not self._ending():
                    self._pass()
                    self._wait()
        finally:
            self.done.set()
            if not self.lost:
                self._leave(stop_agents=not self.downed)
        if self.lost:
            raise TtError(
                f"node {name}: another process took the name while this one's lease had lapsed;"
                " this one stops and leaves the agents to it"
            )
        return EXIT_OK

    def _ending(self) -> bool:
        return self.signalled or self.lost or self.downed

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signalled = True  # a plain flag: the main thread waits in short slices

    def _wait(self) -> None:
        deadline = time.monotonic() + self.opts.interval
        while not self._ending() and time.monotonic() < deadline:
            if self.wake.wait(0.2):
                break
        self.wake.clear()

    def _pass(self) -> None:
        """One pass: what it reads is its own (`nodepass`: its state, the town's suspension,
        the roster's digest, its agents' records and leases), in one round trip."""
        if self.good is None:
            self._read_files(None)
        assert self.good is not None
        store, name = self.s.store, self.opts.name
        view, last = nodepass.read(store, self.good, name, self.mine), self.good
        if self._read_files(view.digest) and self.good != last:  # its agents may be others
            view = nodepass.read(store, self.good, name, self.mine)
        self.mine = view.mine
        if view.state == DRAINING:
            self._drain(view.records)
            return
        if view.suspended:
            return  # a suspended town starts nothing (running agents claim nothing)
        for c in fleet.ensure(
            self.s.paths, self.good, store, env=os.environ, spawn=self.spawn, place=name, seen=view
        ):
            self.report("agent", f"{c.agent}: {c.action} {c.detail}".strip())

    def _read_files(self, digest: str | None) -> bool:
        """The town's files (or the roster in Redis, `--redis`: `digest` is the recorded one's),
        read at the first pass, after each apply (its event; a roster whose digest moved) and
        at each resync; an invalid read keeps the last good state (said once per error).
        True when it read a new good state."""
        fresh = not self.reread and time.monotonic() < self.read_at and not self.s.stale(digest)
        if self.good is not None and fresh:
            return False
        self.reread = False
        try:
            self.good = self.s.desired()
        except ValidationFailed as e:
            if self.good is None:
                raise
            if e.message != self.invalid:
                self.report("invalid", e.message.splitlines()[0] + " (the last good state runs)")
            self.invalid = e.message
            return False
        self.invalid = ""
        self.read_at = time.monotonic() + self.good.town.policy.resync
        return True

    def _drain(self, records: dict[str, dict[str, str]]) -> None:
        """Its agents (`records`: its own) finish their running task and exit (a `drain`
        request: the turn after a task claims nothing while one is pending); none is started
        again while draining."""
        for agent, rec in records.items():
            if agent not in self.drained and _runs(rec, self.opts.name):
                # `stopped_by`: tt stopped it, not a person (`plan.drift.stopped_by_hand`), so
                # its new node starts it even under `self_heal = false` (as `stop_agent` does).
                self.s.store.set_agent(agent, {"stopped_by": f"node {self.opts.name} draining"})
                self.s.store.request_stop(agent, "drain")
                self.drained.add(agent)
                self.report("agent", f"{agent}: draining")

    def _leave(self, *, stop_agents: bool) -> None:
        """Stopped on purpose: stop its agents (a busy one hands its task back), then leave."""
        with contextlib.suppress(TtError):
            store, name = self.s.store, self.opts.name
            records = store.agent_records() if stop_agents else {}
            for agent, rec in records.items():
                if _runs(rec, name):
                    why = f"node {name} stopped"
                    c = fleet.stop_agent(store, agent, rec, why, grace=STOP_GRACE)
                    # An idle worker may exit before `stopping` is written (as `tt down` does).
                    store.set_agent(agent, {"state": "stopped", "task": ""})
                    self.report("agent", f"{c.agent}: {c.action} {c.detail}".strip())
            store.leave_node(name, self.instance)
            self.report("node", f"node {name} stopped")

    def _beat(self) -> None:
        """Renew the lease a few times per lease; a name taken by another process stops this."""
        while not self.done.wait(self.opts.lease / 4):
            try:
                if not self.s.store.node_beat(self.opts.name, self.instance, self.opts.lease):
                    self.report("node", f"node {self.opts.name} was taken by another process")
                    self.lost = True
                    return
            except TtError as e:  # Redis away: the lease tells if it lasts
                self.report("redis", e.message)

    def _follow(self) -> None:
        """A pass at once on an agent's exit, a change of files or a drain; `tt down` ends it."""
        store = self.s.store  # its blocking reads use the store's own `blocking` client
        cursor = "$"
        with contextlib.suppress(TtError):
            cursor = store.last_event_id()
        while not self.done.is_set():
            try:
                entries = store.events_since(cursor, block_ms=1000)
            except TtError:
                self.done.wait(0.5)
                continue
            for eid, fields in entries:
                cursor = eid
                self.downed = self.downed or fields.get("type") == DOWN_EVENT
                self.reread = self.reread or fields.get("type") == APPLY_EVENT
                if fields.get("type") in WAKE_EVENTS or self.downed or self.reread:
                    self.wake.set()


def _runs(rec: dict[str, str], node: str) -> bool:
    """A live process of this node (on this host: several nodes may share one)."""
    return rec.get("node") == node and fleet.local_alive(rec, socket.gethostname())
