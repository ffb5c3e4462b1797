"""What the notifier keeps in Redis, mixed into `Store`: each `[[notify]]` rule's delivery cursor
on the event stream (moved before an event is sent: told at most once, never twice after a
restart), and `town.completed`, written once for each finish (every task in a final state).
No redis import: it uses the client `Store` owns.
"""

from __future__ import annotations

from collections.abc import Iterable

from .scripts import EVENTS_MAXLEN, Scripted


class NotifyOps(Scripted):
    def notify_cursor(self, rule: str, start: str) -> str:
        """The id of the last event rule `rule` passed; a rule new to the town starts at
        `start` (recorded now, so a restart resumes there)."""
        with self._writes() as pipe:
            pipe.hsetnx(self.keys.notify, rule, start)
        return str(self.client.hget(self.keys.notify, rule) or start)

    def notify_position(self, rule: str) -> str | None:
        """Where rule `rule`'s cursor stands; None when it has none (dropped, or never set):
        never created here, so a rule another leader dropped is not told from an old place."""
        value = self.client.hget(self.keys.notify, rule)
        return None if value is None else str(value)

    def events_start(self) -> tuple[str, bool]:
        """The oldest event's id ("" when there is none), and whether events were ever dropped
        from the capped stream (counted by the server where it can, Redis 7 / Valkey; else:
        the stream is at its cap). What a rule's cursor older than that has missed."""
        if not self.client.exists(self.keys.events):
            return "", False
        info = self.client.xinfo_stream(self.keys.events)
        first, length = info.get("first-entry"), int(info.get("length") or 0)
        added = info.get("entries-added")
        dropped = int(added) > length if added is not None else length >= EVENTS_MAXLEN
        return (str(first[0]) if first else ""), dropped

    def notify_advance(self, rule: str, old: str, new: str) -> bool:
        """Move the rule's cursor from `old` to `new`; False when it was not at `old`."""
        return bool(self._run("notify_advance", rule, old, new))

    def notify_forget(self, keep: Iterable[str]) -> None:
        """Drop the cursors of rules the files no longer have (back later: from then on)."""
        gone = set(map(str, self.client.hkeys(self.keys.notify))) - set(keep)
        if gone:
            with self._writes() as pipe:
                pipe.hdel(self.keys.notify, *sorted(gone))

    def task_assignee(self, task_id: str) -> str:
        """The agent instance that ran (or runs) the task last, "" when none did."""
        return str(self.client.hget(self.keys.task(task_id), "assignee") or "")

    def town_completed(self, final: Iterable[str]) -> bool:
        """Write `town.completed` if every task is in one of the `final` states, unless it was
        written for these tasks in these states already (a digest of them: an apply that
        changed no task tells nothing again). True when it was written."""
        return bool(self._run("town_completed", *sorted(final)))

    def town_unfinished(self) -> None:
        """The town is not done (a count of its tasks said so): its next finish is told."""
        self._run("town_completed", "0")
