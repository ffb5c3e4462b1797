"""The reconcile loop: `tt conductor` / `tt watch` (forever) and `tt wait` / `apply --wait` (until
every task is terminal). Level-triggered passes, woken by a file change, an agent event, a timer
or the periodic resync. Several loops may run for one town: a leader lease (the town's `lease`)
picks the one that acts, and its epoch fences the leader's writes (a pass that outlives the lease
is refused once another loop leads: this one stands by). An invalid edit keeps the last good state
running and is reported once per file content. A Redis outage is waited out; the embedded server
is restarted (its AOF kept). A file caught mid-save is never applied (control/saveguard.py);
what is pruned anyway is kept as a tombstone (restored when it comes back). `tt down` stops every
loop of the town: each registers its pid in the state folder and exits on the down mark there or
on the `town.down` event (another host's: `loopevents.py` follows the events); starting a loop
brings a town that is down back up.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from .. import rundir, server
from ..agents.supervisor import proc_start_time, spawn_detached
from ..errors import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_TIMEOUT,
    LeaderFenced,
    RedisUnavailable,
    TtError,
    ValidationFailed,
)
from ..plan.render import render_lines
from ..spec.desired import Desired, Policy
from ..store.client import is_embedded
from . import fleet, heal, notifier, townwatch
from .apply import ApplyOptions, agent_env, apply, failed
from .applylock import release_own_lock
from .drift import DriftWatch
from .faults import LOOP_LOG, record_traceback
from .follow import Follow, Target
from .identity import TownClaimed
from .loopevents import follow_events
from .mergework import NodeMerges
from .outcome import holder_words, outcome, settled
from .saveguard import SaveGuard
from .session import Session
from .watch import FileWatcher

Report = Callable[[str, dict[str, str]], None]
Rows = list[dict[str, str]]


@dataclass(frozen=True)
class LoopOptions:
    apply: ApplyOptions = field(default_factory=ApplyOptions)
    until_done: bool = False
    timeout: float | None = None
    resync: float | None = None  # default: the town's policy (30 s)
    watch_files: bool = True
    # Follow events after this stream id (`apply --wait`: the position taken before the apply
    # wrote, so claims made before the loop starts are reported too); default: from now.
    events_after: str | None = None
    settle: float = 0.05  # a changed file must read the same twice this far apart
    guard_window: float = 2.0  # ... and stay so this long before a pass that prunes much
    follow: Target | None = None  # a branch whose commits are applied (`follow.py`)


@dataclass(frozen=True)
class LoopResult:
    exit_code: int
    counts: dict[str, int]
    failed: tuple[dict[str, str], ...] = ()
    unfinished: tuple[dict[str, str], ...] = ()


MAX_CHANGE_LINES = 20  # a pass's changes told one per line, up to this many


class Loop:
    def __init__(
        self,
        session: Session,
        opts: LoopOptions,
        report: Report,
        spawn: fleet.Spawner = spawn_detached,  # how an agent process starts (tests: a fake)
    ) -> None:
        self.s, self.opts, self.report, self.spawn = session, opts, report, spawn
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.good: Desired | None = None
        self.bad_digest: str | None = None
        self.leader = False
        self.followed = False  # told that another watcher leads
        self.next_full = 0.0
        self.sweep_due = True  # look for orphaned attempts (see `_sweep_orphans`)
        self.not_started: dict[str, str] = {}  # agent → why it was not started, said once
        self.outage: str | None = None  # what the last Redis failure said, while it lasts
        self.failing: str | None = None  # the error of the last pass, while passes fail
        self.told_state = True  # whether this leader said what it found (set at the lead)
        self.saves = SaveGuard(session, opts.settle, opts.guard_window, self.stop)
        self.downed = False  # `tt down` asked this loop to exit
        self.drift = DriftWatch()  # `town.drift` events under [town] self_heal = false
        self.town = townwatch.TownWatch(report)  # its health (events on change), a suspension
        self.follow = Follow(session, opts.follow, clears=not opts.until_done)
        self.notify = notifier.Notifier(self)  # tells `[[notify]]` rules of events, as leader
        self.merges = NodeMerges(self)  # merges the tasks nodes pushed, as leader

    def run(self) -> LoopResult:
        policy = self.s.settings.policy
        rundir.clear_down(self.s.paths)  # a loop started is the town up again
        pid = os.getpid()  # registered: `tt down` finds it (and waits for it to exit)
        with rundir.registered_as(self.s.paths, rundir.WATCHER, pid, proc_start_time(pid) or ""):
            return self._run(policy)

    def _is_down(self) -> bool:  # `tt down`: the mark in .tt/, or the event (`downed`)
        self.downed = self.downed or rundir.is_down(self.s.paths)
        return self.downed

    def _run(self, policy: Policy) -> LoopResult:
        watcher = FileWatcher(self.s.paths.root, self._file_changed)
        if self.opts.watch_files:
            watcher.start()
        # Events from here on are followed, also those landing before the thread reads.
        try:
            start = self.opts.events_after or self.s.store.last_event_id()
        except RedisUnavailable:
            start = "$"  # Redis away: from whenever the thread first reaches it
        follower = threading.Thread(target=follow_events, args=(self, start), daemon=True)
        follower.start()
        deadline = None if self.opts.timeout is None else time.monotonic() + self.opts.timeout
        self.wake.set()
        try:
            while not self.stop.is_set() and not self._is_down():
                try:
                    result = self._step(deadline)
                    pause = 0.0 if result is not None else self._tick(policy.heartbeat)
                except RedisUnavailable as e:
                    self._redis_away(e)
                    if deadline is not None and time.monotonic() >= deadline:
                        return LoopResult(EXIT_TIMEOUT, {})
                    self.wake.wait(policy.heartbeat)
                    continue
                except TownClaimed:  # adopted by another folder: this loop may not act
                    raise
                except Exception as e:  # a bug or a surprise: recorded; the loop goes on
                    self._pass_failed(e)
                    if deadline is not None and time.monotonic() >= deadline:
                        return LoopResult(EXIT_TIMEOUT, {})
                    self.wake.wait(policy.heartbeat)
                    continue
                self.failing = None
                if result is not None:
                    return result
                self.wake.wait(pause)
        finally:
            if self.opts.watch_files:
                watcher.stop()
            self.stop.set()
            self.notify.close(self.leader)  # (a last town.completed; sinks drain)
            if self.leader:
                with contextlib.suppress(TtError):  # Redis may be away: the lease then expires
                    self.s.store.resign_leader(self.holder)
        if self.downed:
            self.report("down", {"detail": "the town is down (tt down); this loop exits"})
            return LoopResult(EXIT_ERROR if self.opts.until_done else EXIT_OK, {})
        return self._result(EXIT_OK, [], [])

    def _step(self, deadline: float | None) -> LoopResult | None:
        """One iteration: hold the lease, act if leader, and tell whether the wait is over."""
        store = self.s.store
        policy = self.s.settings.policy
        status, epoch = store.hold_leader(self.holder, policy.lease)
        if self.outage is not None:
            self.outage = None
            self.report("redis", {"detail": "Redis answers again"})
            self.wake.set()  # a full pass: a transition or an apply may have been cut short
        if status == 2:
            self.report("leader", {"holder": self.holder, "detail": self._leading()})
            self.wake.set()  # a new leader plans afresh: the last one may have died mid-pass
            self.sweep_due = True
            self.told_state = False  # say what this leader found at its first pass
        if status == 0 and (self.leader or not self.followed):
            # Said once: this one watches and stands by, ready to take over.
            who = holder_words(store.leader_holder())
            self.report(
                "standby",
                {"detail": f"another watcher leads ({who}); following, ready to take over"},
            )
        self.followed = self.followed or status == 0
        self.leader = status > 0
        # Every write script of this pass carries the epoch: refused once another loop leads.
        store.fence = f"e:{epoch}" if self.leader else ""
        if self.leader and not self._is_down():
            try:
                self._act(policy.resync)
            except LeaderFenced as e:
                self._lost_lead(e)
        if self.opts.until_done:
            code, failed, unfinished = settled(store.task_records())
            if code is not None:
                return self._result(code, failed, unfinished)
        if deadline is not None and time.monotonic() >= deadline:
            _, failed, unfinished = outcome(store.task_records())
            return self._result(EXIT_TIMEOUT, failed, unfinished)
        return None

    def _act(self, resync: float) -> None:
        now = time.monotonic()
        due = self.saves.left()  # a pass the guard held, due again
        if not self.follow.poll(self):  # following a branch: no valid commit of it staged yet
            self._heal_pass()
        elif self.wake.is_set() or now >= self.next_full or (due is not None and due <= 0):
            if now >= self.next_full:
                self.sweep_due = True  # the periodic resync also looks for orphans
            self.wake.clear()
            self._full_pass()
            self.next_full = now + (self.opts.resync or resync)
        else:
            self._heal_pass()
        self.s.store.promote_due()
        self.town.check(self.s.store, self.good)
        self.notify.check(self.s.store, self.good, self.town.counts)
        self.merges.check(self.good)

    def _lost_lead(self, error: LeaderFenced) -> None:
        """A write of this pass was refused: another loop took the lead while it ran (its lease
        ran out). Stop acting; the next step finds the lease held and stands by."""
        self.leader, self.s.store.fence = False, ""
        self.report("leader", {"detail": f"lost the lead mid-pass ({error.message}); standing by"})
        self.s.store.event("leader.fenced", holder=self.holder, detail=error.message)

    def _redis_away(self, error: Exception) -> None:
        """Redis stopped answering (killed, restarting): report it once, restart the embedded
        server (it reloads its AOF), and look for orphans once it answers. Agents wait it out."""
        if self.outage is None:
            self.outage = str(error)
            self.report("redis", {"detail": f"Redis is away ({error}); waiting for it"})
        self.sweep_due = True
        if self._is_down() or not is_embedded(self.s.settings.redis, self.s.paths):
            return  # down: `tt down` stopped the server, which must stay stopped
        try:
            server.ensure_running(self.s.paths)
        except TtError as e:
            self.report("redis", {"detail": f"cannot restart the town's server: {e.message}"})

    def _pass_failed(self, error: Exception) -> None:
        """A pass raised what nothing handles: its traceback goes to the loop's log (.tt/logs/
        loop.log, 0600), a `loop.error` event and a report line say so, once while the same
        error repeats; the next pass starts afresh (a full one) after a heartbeat's pause."""
        self.wake.set()
        self.sweep_due = True
        text = f"{type(error).__name__}: {error}"
        if text == self.failing:
            return
        self.failing = text
        where = record_traceback(self.s.paths.logs_dir / LOOP_LOG, self.holder, error)
        self.report("error", {"detail": f"a pass failed ({text}); traceback in {where}"})
        with contextlib.suppress(TtError):  # Redis away too: the report and the log say it
            self.s.store.event("loop.error", holder=self.holder, error=text[:500], log=where)

    def _tick(self, heartbeat: float) -> float:
        timers = (self.s.store.seconds_to_next_timer(), self.saves.left(), self.follow.left())
        return max(0.05, min([heartbeat, *(t for t in timers if t is not None)]))

    def _leading(self) -> str:
        files = (
            "watching town.toml and tasks.toml" if self.opts.watch_files else "not watching files"
        )
        return f"leading town '{self.s.settings.name}' in {self.s.paths.root}; {files}"

    def _file_changed(self) -> None:
        self.report("files", {"detail": "town files changed"})
        self.wake.set()

    def _full_pass(self) -> None:
        settled, fingerprint = self.saves.settled()
        self.saves.until = None  # this pass decides again
        if not settled:
            self.wake.set()  # still being written: look again
            self._heal_pass()
            return
        try:
            desired = self.s.desired()
        except ValidationFailed as e:
            digest = str(hash(e.message))
            if digest != self.bad_digest:
                self.bad_digest = digest
                self.report("invalid", {"detail": e.message})
                self.s.store.event("config.invalid", detail=e.message.splitlines()[0])
                failed(self.s, self.opts.apply, e, 0.0)  # the attempted revision
            self._heal_pass()  # keep the last good state running
            return
        self.bad_digest = None
        release_own_lock(self.s.store)  # an apply cut short by a Redis outage left it
        guard = self.saves.guards(fingerprint)
        opts = replace(self.opts.apply, lock_timeout=5.0, expect=fingerprint, guard_prune=guard)
        try:
            result = apply(self.s, replace(opts, up=False))
        except (RedisUnavailable, LeaderFenced, TownClaimed):
            raise  # TownClaimed: adopted by another folder; this loop must not act any more
        except TtError as e:
            self.report("error", {"detail": e.message})
            failed(self.s, self.opts.apply, e, 0.0)  # a refused plan: the attempt
            self._heal_pass()  # a held lock or a refused plan must not stop the healing
            return
        if result.held:  # "moved" (look again at once), "guarded" (once stable long), "suspended"
            if result.held == "suspended":  # nothing applied, started or healed (running ends)
                self.town.held(result.plan.summary())
            elif result.held != "guarded":
                self.wake.set()
            elif detail := self.saves.hold(result, fingerprint):
                self.report("guarded", {"detail": detail})
            self._heal_pass()  # by what was applied last: a held roster may be mid-save too
            return
        self.good = desired
        if guarded := self.saves.passed(fingerprint, result, self.s.store):
            self.report("guarded", {"detail": guarded})
        if not result.plan.is_empty:
            lines = render_lines(result.plan)
            shown = lines[:MAX_CHANGE_LINES]
            more = len(lines) - len(shown)
            self.report("applied", {"detail": result.plan.summary()})
            for line in [*shown, *([f"… and {more} more (tt status)"] if more > 0 else [])]:
                self.report("change", {"detail": line})
        elif not self.told_state:
            tasks, agents = len(self.good.tasks), len(self.good.agents)
            self.report("applied", {"detail": f"up to date: {agents} agents, {tasks} tasks"})
        self.told_state = True
        self._fleet_changes(result.fleet)
        self.drift.check(self.s.store, desired, self.report)
        if self.sweep_due:
            self._sweep_orphans()

    def _heal_pass(self) -> None:
        if self.good is None:
            return
        self.s.identity.check(self.s.store)  # adopted away: TownClaimed, before fleet acts
        if not self.s.store.is_suspended():  # suspended: no agent is started or restarted
            env = agent_env(self.opts.apply)
            changes = fleet.ensure(self.s.paths, self.good, self.s.store, env=env, spawn=self.spawn)
            self._fleet_changes(changes)
        self.drift.check(self.s.store, self.good, self.report, full=False)
        wake_at = heal.next_wakeup(self.s.store.agent_records())
        if wake_at is not None and wake_at <= time.time():
            self.wake.set()

    def _fleet_changes(self, changes: Iterable[fleet.FleetChange]) -> None:
        for c in changes:
            if c.action == "not started" and self.not_started.get(c.agent) == c.detail:
                continue  # said once (every pass finds it again until the variable is there)
            self.not_started[c.agent] = c.detail if c.action == "not started" else ""
            self.report("agent", {"agent": c.agent, "detail": f"{c.action} {c.detail}".strip()})
            if c.action == "died":
                self.sweep_due = True  # its last claim may have landed after it was read

    def _sweep_orphans(self) -> None:
        """Hand back running attempts that no agent works on (`heal.orphaned`): their agent died
        before its death was recorded, or its claim landed after. Each by its own token, so a
        live attempt is never taken. Reads every task: done after deaths, on taking the lead,
        after an outage and at each resync, not on every pass."""
        store = self.s.store
        tasks = store.task_records()  # before the agents (see heal.orphaned)
        agents = store.agent_records()
        for tid, token, who in heal.orphaned(tasks, agents):
            if store.hand_back(tid, token, f"orphaned: {who or 'no agent'} does not run it"):
                self.report("agent", {"agent": who, "detail": f"handed back orphaned task {tid}"})
        self.sweep_due = False

    def _result(self, code: int, failed: Rows, unfinished: Rows) -> LoopResult:
        counts = dict(Counter(r.get("state", "") for r in self.s.store.task_records()))
        return LoopResult(code, counts, tuple(failed), tuple(unfinished))
