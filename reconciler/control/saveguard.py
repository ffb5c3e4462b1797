"""The watch loop's guards against a file caught mid-save (an editor writing in place, `cat >`,
a checkout of many files, a network file system): a changed file is applied only once it has
settled (the same fingerprint on two reads `settle` apart; the loop then checks that it parses),
and a pass that would prune much (`apply.guard_prune`) waits until the files have been stable
for `window`. What is pruned anyway is kept as a tombstone. Reads the files; writes nothing.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from ..plan.actions import DeleteTask
from .apply import ApplyResult
from .fingerprint import file_fingerprint
from .session import Session


class Events(Protocol):
    def event(self, etype: str, **fields: str) -> None: ...


class SaveGuard:
    def __init__(self, session: Session, settle: float, window: float, stop: threading.Event):
        # (the session's files are read when a pass looks, not here: a loop built only to
        # test its reports needs none)
        self.session, self.settle, self.window, self.stop = session, settle, window, stop
        self.applied: str | None = None  # fingerprint of the files the loop last applied
        self.seen: tuple[str | None, float] = (None, 0.0)  # a fingerprint, first seen when
        self.until: float | None = None  # a held pass that prunes much: look again then
        self.held: str | None = None  # the fingerprint of the files that pass would apply

    def left(self) -> float | None:
        """Seconds until a held pass is due again (negative once due); None when none is held."""
        return None if self.until is None else self.until - time.monotonic()

    def settled(self) -> tuple[bool, str | None]:
        """(settled, the files' fingerprint): settled once they read the same twice `settle`
        apart; files the loop last applied need no wait. None: a file cannot be read (the
        loader reports why)."""
        first = file_fingerprint(self.session.paths)[0]
        if first is not None and first == self.applied:
            return True, first
        self.stop.wait(self.settle)
        now = file_fingerprint(self.session.paths)[0]
        if now != self.seen[0]:
            self.seen = (now, time.monotonic())
        return (True, now) if now == first else (False, None)

    def stable_for(self, fingerprint: str | None) -> float:
        """Seconds since the loop first saw these files."""
        return time.monotonic() - self.seen[1] if self.seen[0] == fingerprint else 0.0

    def guards(self, fingerprint: str | None) -> bool:
        """Whether a pass of these files must hold a plan that prunes much: new files, not yet
        stable for the window."""
        return fingerprint != self.applied and self.stable_for(fingerprint) < self.window

    def hold(self, result: ApplyResult, fingerprint: str | None) -> str | None:
        """The guard held `result`: look again once the window has passed. Returns what to
        report the first time these files are held."""
        first = self.held != fingerprint
        self.held = fingerprint
        self.until = time.monotonic() + max(0.0, self.window - self.stable_for(fingerprint))
        if not first:
            return None
        return (
            f"{deletes(result)} of {result.tasks} tasks would be deleted: applying once the files "
            f"have been stable for {self.window:g}s"
        )

    def passed(self, fingerprint: str | None, result: ApplyResult, store: Events) -> str | None:
        """These files were applied. If the guard had held them, that is recorded
        (`apply.guarded`) and this returns what to report."""
        stable, was_held = self.stable_for(fingerprint), self.held == fingerprint
        self.applied, self.held = fingerprint, None
        if not was_held or fingerprint is None:
            return None
        n = deletes(result)
        summary = result.plan.summary()
        store.event("apply.guarded", deleted=str(n), tasks=str(result.tasks),
                    stable=f"{stable:.2f}", summary=summary)  # fmt: skip
        return f"applied after {stable:.1f}s stable: {n} deleted"


def deletes(result: ApplyResult) -> int:
    return sum(1 for a in result.plan.actions if isinstance(a, DeleteTask))
