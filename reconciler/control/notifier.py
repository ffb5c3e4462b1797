"""The leading loop's notifications (`[[notify]]`): a thread per rule follows the event stream
from the rule's cursor in Redis and tells its sink each matching event, at most once (the cursor
moves first, fenced by the leader epoch), so a slow or failing sink delays only itself, never a
pass; and `town.completed`, written when every task reached a final state. loop.py only hooks
it in (`check` after a leader's pass, `close` as the loop ends); sending is `delivery.py`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Protocol

from ..errors import TtError
from ..plan.state import TERMINAL, TaskState
from ..spec.desired import Desired
from ..spec.events import NOTIFY_FAILED
from ..spec.notifyrules import NotifyRule
from ..store.client import Store
from ..store.scripts import EVENTS_MAXLEN
from .delivery import deliver
from .session import Session

Report = Callable[[str, dict[str, str]], None]
# Where a task ends as things stand (what `tt wait` counts as finished, `outcome.outcome`).
FINAL = frozenset(
    {*(s.value for s in TERMINAL), TaskState.UPSTREAM_FAILED.value, TaskState.SKIPPED.value}
)
DRAIN = 5.0  # seconds a closing loop gives its sinks to tell what is on the stream already
BATCH = 200  # events read per round
MAX_SEQ = 2**64 - 1  # a stream id's greatest sequence number


class Host(Protocol):
    """The loop the notifier serves: its session, whether it leads, and its report."""

    s: Session
    leader: bool
    report: Report


def stream_id(eid: str) -> tuple[int, int]:
    ms, _, seq = eid.partition("-")
    return int(ms or 0), int(seq or 0)


def following(eid: str) -> tuple[int, int]:
    """The smallest stream id after `eid`."""
    ms, seq = stream_id(eid)
    return (ms + 1, 0) if seq >= MAX_SEQ else (ms, seq + 1)


def preceding(eid: str) -> str:
    """The greatest stream id before `eid` (a cursor there reads `eid` next)."""
    ms, seq = stream_id(eid)
    return f"{ms}-{seq - 1}" if seq else f"{ms - 1}-{MAX_SEQ}"


class Notifier:
    def __init__(self, host: Host, clock: Callable[[], float] = time.monotonic) -> None:
        self.host, self.s, self.report, self.clock = host, host.s, host.report, clock
        self.workers: dict[str, SinkWorker] = {}
        self.epoch = ""  # the leader fence the rules were last configured under
        self.counts: dict[str, int] | None = None  # the count of the tasks looked at last
        self.drain = DRAIN

    def fence(self) -> str:
        """The fence the threads write with: the loop's while it leads, in the epoch its rules
        were configured in; else "" (a new epoch waits for a pass to configure them again:
        another leader may have dropped or moved their cursors meanwhile)."""
        fence = self.s.store.fence
        return fence if self.host.leader and fence and fence == self.epoch else ""

    def leading(self) -> bool:
        return bool(self.fence())

    def check(
        self, store: Store, desired: Desired | None, counts: dict[str, int] | None = None
    ) -> None:
        """After a leader's pass: run a thread per rule of `desired`; and, given a new count of
        the tasks by state (the town's health reads it), look whether the town is done."""
        if desired is not None:
            self._configure(store, desired.notify)
        if counts is not None and counts is not self.counts:
            self.counts = counts
            self._completion(store, sum(counts.values()) > 0 and FINAL.issuperset(counts))

    def _configure(self, store: Store, rules: tuple[NotifyRule, ...]) -> None:
        wanted = {rule.key(): rule for rule in rules}
        # (a thread that found its cursor gone has retired: its rule starts afresh)
        self.workers = {k: w for k, w in self.workers.items() if not w.retired.is_set()}
        current = {k: w.rule for k, w in self.workers.items()}
        if self.epoch == store.fence and wanted == current:
            return
        # The first pass of each epoch also drops the cursors of rules gone meanwhile.
        for key in set(self.workers) - set(wanted):
            self.workers.pop(key).retired.set()
        store.notify_forget(wanted)
        register(store, tuple(wanted.values()))
        for key, rule in wanted.items():
            if key in self.workers:
                self.workers[key].rule = rule  # (only how it is told can differ)
            else:
                worker = self.workers[key] = SinkWorker(self, rule)
                worker.start()
        self.epoch = store.fence  # the threads tell from here on

    def _completion(self, store: Store, done: bool) -> None:
        """`done` (a count says every task is final): the store looks again, on the tasks as
        they are, and writes `town.completed` unless this finish was told; else it forgets
        the last finish. The count spares the scan while tasks run."""
        if done:
            store.town_completed(FINAL)
        else:
            store.town_unfinished()

    def close(self, leading: bool) -> None:
        """The loop ends: as leader, a last look at completion, and each sink gets up to
        `drain` seconds to tell what the stream holds now; then the threads stop."""
        if leading:
            with contextlib.suppress(TtError):
                self._completion(self.s.store, done=True)
                last = self.s.store.last_event_id()
                for worker in self.workers.values():
                    worker.until = last
                deadline = self.clock() + self.drain
                for worker in self.workers.values():
                    worker.join(max(0.0, deadline - self.clock()))
        for worker in self.workers.values():
            worker.retired.set()


def register(store: Store, rules: tuple[NotifyRule, ...]) -> dict[str, str]:
    """Each rule's cursor; a rule new to the town starts at the newest event. An apply calls it
    before it writes, so a rule is told what the apply that brings it sets off."""
    now = store.last_event_id()
    return {rule.key(): store.notify_cursor(rule.key(), now) for rule in rules}


class SinkWorker(threading.Thread):
    """One rule's deliveries, in stream order, from its cursor; only while the loop leads."""

    def __init__(self, owner: Notifier, rule: NotifyRule) -> None:
        super().__init__(name=f"notify-{rule.key()}", daemon=True)
        self.n, self.rule, self.key = owner, rule, rule.key()
        self.retired = threading.Event()
        self.until: str | None = None  # closing: done once past this event
        self.rounds = 0  # rounds of its loop, leading or not (tests wait on it)

    def run(self) -> None:
        session: Session | None = None
        cursor: str | None = None
        behind = True
        while not self.retired.is_set():
            self.rounds += 1
            fence = self.n.fence()
            if not fence:
                cursor = None  # the next leader's position is read afresh
                self.retired.wait(0.2)
                continue
            try:
                session = session or Session(self.n.s.paths)
                store = session.store
                store.fence = fence
                if cursor is None:
                    cursor = store.notify_position(self.key)
                    if cursor is None:  # dropped by a leader whose files lack the rule
                        self.retired.set()  # (the next pass starts it afresh, if it is wanted)
                        break
                    behind = True
                if behind:
                    cursor = self._past_gap(store, cursor)
                if self.until is not None and stream_id(cursor) >= stream_id(self.until):
                    break  # drained
                block = None if self.until is not None else 500
                entries = store.events_since(cursor, count=BATCH, block_ms=block)
                if not entries and self.until is not None:
                    break
                behind = bool(entries)  # (at the stream's end: nothing can be dropped unseen)
                cursor = self._tell(store, cursor, entries)
            except TtError:  # Redis away, or fenced: look again in a moment
                cursor = None
                self.retired.wait(0.5)
        if session is not None:
            with contextlib.suppress(TtError):
                session.close()

    def _past_gap(self, store: Store, cursor: str) -> str:
        """The cursor, moved to just before the oldest event kept when the capped stream has
        dropped events this rule had not passed (told once: `notify.failed` and a line)."""
        oldest, dropped = store.events_start()
        if not dropped or not oldest or stream_id(oldest) <= following(cursor):
            return cursor
        moved = preceding(oldest)
        if not store.notify_advance(self.key, cursor, moved):
            return cursor  # another watcher moved it: the next round reads it again
        sink, on = self.rule.sink_words(), " ".join(self.rule.on)
        detail = (
            f"{sink} (on {on}) was not told what the event stream dropped after {cursor} (it "
            f"keeps about {EVENTS_MAXLEN} events) before it passed them; told from {oldest} on"
        )
        self.n.report("notify", {"detail": detail})
        with contextlib.suppress(TtError):
            store.event(
                NOTIFY_FAILED,
                sink=sink,
                event="",
                on=on,
                after=cursor,
                before=oldest,
                error=detail[:500],
            )
        return moved

    def _tell(
        self, store: Store, stored: str, entries: list[tuple[str, dict[str, str]]]
    ) -> str | None:
        """Deliver the matching `entries`; the new cursor, or None when another watcher moved
        it (read it again)."""
        cursor = stored
        for eid, fields in entries:
            if self.retired.is_set() or not self.n.leading():
                break
            if (
                fields.get("type") in self.rule.on
                and fields.get("task")
                and not fields.get("agent")
            ):
                # (`task.completed` names no agent: the one that ran it, for filters and `{agent}`)
                fields = {**fields, "agent": store.task_assignee(fields["task"])}
            if not self.rule.matches(fields):
                cursor = eid
                continue
            store.fence = self.n.fence()
            if not store.fence or not store.notify_advance(self.key, stored, eid):
                return None  # (no fence: the loop no longer leads)
            stored = cursor = eid
            self._deliver(store, eid, fields)
        if cursor != stored:
            store.fence = self.n.fence()
            if not store.fence or not store.notify_advance(self.key, stored, cursor):
                return None
        return cursor

    def _deliver(self, store: Store, eid: str, fields: dict[str, str]) -> None:
        paths = self.n.s.paths
        outcome = deliver(
            self.rule,
            store.town,
            eid,
            fields,
            root=paths.root,
            log=paths.logs_dir / "notify.log",
            stop=self.retired,
        )
        if outcome.ok:
            return
        sink = self.rule.sink_words()
        etype = fields.get("type", "")
        self.n.report("notify", {"detail": f"{sink} was not told {etype} {eid}: {outcome.detail}"})
        with contextlib.suppress(TtError):
            store.event(NOTIFY_FAILED, sink=sink, event=eid, on=etype, error=outcome.detail[:500])
