"""The reconcile loop: `tt conductor` / `tt watch` (forever) and `tt wait` / `apply --wait` (until
every task is terminal). Level-triggered passes, woken by a file change, an agent event, a timer
or the periodic resync. Several loops may run for one town: a leader lease picks the one that acts.
An invalid edit keeps the last good state running and is reported once per file content.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from . import fleet, heal
from .controller import ApplyOptions, apply
from .errors import EXIT_ERROR, EXIT_OK, EXIT_TIMEOUT, TtError, ValidationFailed
from .session import Session
from .spec import Desired
from .watch import FileWatcher

LEADER_LEASE = 15.0
WAKE_EVENTS = ("agent.exited", "agent.stopped", "task.retrying", "config.changed")
DONE_EVENTS = ("task.completed", "task.failed", "task.cancelled")
Report = Callable[[str, dict[str, str]], None]


@dataclass(frozen=True)
class LoopOptions:
    apply: ApplyOptions = field(default_factory=ApplyOptions)
    until_done: bool = False
    timeout: float | None = None
    resync: float | None = None  # default: the town's policy (30 s)
    watch_files: bool = True


@dataclass(frozen=True)
class LoopResult:
    exit_code: int
    counts: dict[str, int]
    failed: tuple[dict[str, str], ...] = ()
    unfinished: tuple[dict[str, str], ...] = ()


def outcome(
    records: list[dict[str, str]],
) -> tuple[bool, list[dict[str, str]], list[dict[str, str]]]:
    """(all terminal, failed tasks, unfinished tasks). A task blocked behind a failed or cancelled
    dependency can never run: it counts as terminal (and is reported as unfinished)."""
    state = {r["id"]: r.get("state", "") for r in records}
    stuck: set[str] = set()
    changed = True
    while changed:
        changed = False
        for r in records:
            tid = r["id"]
            if state[tid] == "blocked" and tid not in stuck:
                deps = json.loads(r.get("deps") or "[]")
                if any(state.get(d) in ("failed", "cancelled") or d in stuck for d in deps):
                    stuck.add(tid)
                    changed = True
    terminal = {"completed", "failed", "cancelled"}
    done = all(state[r["id"]] in terminal or r["id"] in stuck for r in records)
    failed = [r for r in records if state[r["id"]] == "failed"]
    unfinished = [r for r in records if state[r["id"]] not in terminal]
    return done, failed, unfinished


class Loop:
    def __init__(self, session: Session, opts: LoopOptions, report: Report) -> None:
        self.s, self.opts, self.report = session, opts, report
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.good: Desired | None = None
        self.bad_digest: str | None = None
        self.leader = False

    def run(self) -> LoopResult:
        store = self.s.store
        policy = self.s.settings.policy
        resync = self.opts.resync or policy.resync
        watcher = (
            FileWatcher(self.s.paths.root, self._file_changed) if self.opts.watch_files else None
        )
        if watcher:
            watcher.start()
        follower = threading.Thread(target=self._follow_events, daemon=True)
        follower.start()
        deadline = None if self.opts.timeout is None else time.monotonic() + self.opts.timeout
        next_full = 0.0
        self.wake.set()
        try:
            while not self.stop.is_set():
                status, _epoch = store.hold_leader(self.holder, LEADER_LEASE)
                if status == 2:
                    self.report("leader", {"holder": self.holder})
                self.leader = status > 0
                if self.leader:
                    now = time.monotonic()
                    if self.wake.is_set() or now >= next_full:
                        self.wake.clear()
                        self._full_pass()
                        next_full = now + resync
                    else:
                        self._heal_pass()
                    store.promote_due()
                if self.opts.until_done:
                    done, failed, unfinished = outcome(store.task_records())
                    if done:
                        return self._result(EXIT_ERROR if failed else EXIT_OK, failed, unfinished)
                if deadline is not None and time.monotonic() >= deadline:
                    _, failed, unfinished = outcome(store.task_records())
                    return self._result(EXIT_TIMEOUT, failed, unfinished)
                self.wake.wait(self._tick(policy.heartbeat))
        finally:
            if watcher:
                watcher.stop()
            self.stop.set()
            if self.leader:
                store.resign_leader(self.holder)
        return self._result(EXIT_OK, [], [])

    def _tick(self, heartbeat: float) -> float:
        timers = [t for t in (self.s.store.seconds_to_next_timer(),) if t is not None]
        return max(0.05, min([heartbeat, *timers]))

    def _file_changed(self) -> None:
        self.report("files", {"detail": "town files changed"})
        self.wake.set()

    def _full_pass(self) -> None:
        try:
            self.good = self.s.desired()
        except ValidationFailed as e:
            digest = str(hash(e.message))
            if digest != self.bad_digest:
                self.bad_digest = digest
                self.report("invalid", {"detail": e.message})
                self.s.store.event("config.invalid", detail=e.message.splitlines()[0])
            self._heal_pass()  # keep the last good state running
            return
        self.bad_digest = None
        try:
            result = apply(self.s, replace(self.opts.apply, lock_timeout=5.0))
        except TtError as e:
            self.report("error", {"detail": e.message})
            return
        if not result.plan.is_empty:
            self.report("applied", {"detail": result.plan.summary()})
        for c in result.fleet:
            self.report("agent", {"agent": c.agent, "detail": f"{c.action} {c.detail}".strip()})

    def _heal_pass(self) -> None:
        if self.good is None:
            return
        for c in fleet.ensure(self.s.paths, self.good, self.s.store, env=_env(self.opts.apply)):
            self.report("agent", {"agent": c.agent, "detail": f"{c.action} {c.detail}".strip()})
        wake_at = heal.next_wakeup(self.s.store.agent_records())
        if wake_at is not None and wake_at <= time.time():
            self.wake.set()

    def _follow_events(self) -> None:
        from .session import Session

        # A connection of its own: the main loop's client must not wait behind a blocking read.
        store = Session(self.s.paths).store
        cursor = "$"
        while not self.stop.is_set():
            try:
                entries = store.events_since(cursor, block_ms=1000)
            except Exception:  # Redis restarting: the main loop reports it; keep following
                time.sleep(0.5)
                continue
            for eid, fields in entries:
                cursor = eid
                self.report("event", fields)
                etype = fields.get("type", "")
                if etype in WAKE_EVENTS or (self.opts.until_done and etype in DONE_EVENTS):
                    self.wake.set()
        store.close()

    def _result(
        self, code: int, failed: list[dict[str, str]], unfinished: list[dict[str, str]]
    ) -> LoopResult:
        counts = dict(Counter(r.get("state", "") for r in self.s.store.task_records()))
        return LoopResult(code, counts, tuple(failed), tuple(unfinished))


def _env(opts: ApplyOptions) -> dict[str, str]:
    env = dict(os.environ)
    if opts.model:
        env["TT_MODEL_OVERRIDE"] = opts.model
    return env
