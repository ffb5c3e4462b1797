"""The merge queue: one per town (its base), serial, in completion order. Whoever holds the
queue's file lock works it from the head: bring the branch up to base (`strategy`), run the
checks in tt's own clean merge worktree, then move base by compare-and-swap. Base only ever
points at a commit that passed the checks.

The order lives in Redis (`mergeq`), so a worker killed mid-merge leaves its task at the head:
the next one to take the lock does that step again from the start (the merge worktree is reset;
a candidate that reached base before the crash is recognised as merged).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..filelock import try_lock
from ..git.repo import GitError
from ..spec.gitsettings import Strategy
from . import remote
from .types import Finished

if TYPE_CHECKING:
    from .products import WorkProducts


def never() -> bool:
    return False


# How a turn at the queue ended (`MergeQueue.work`).
THROUGH, EMPTY, BLOCKED, BUSY = "through", "empty", "blocked", "busy"
# The stages in which a task's commit went back to its task instead of into base.
REOPENED = frozenset({"conflict", "check_failed", "merge_failed"})
WAIT = 0.2  # between two looks at the queue while another process works it
WAIT_BLOCKED = 1.0  # between two tries of a head that waits for base's checkout
CAS_TRIES = 5
TAIL_LINES = 30


class MergeQueue:
    def __init__(self, products: WorkProducts) -> None:
        self.p = products
        self.repo, self.git, self.store = products.repo, products.git, products.store
        self.layout = products.layout
        self.holder: Path | None = None  # where base is checked out, read with base's commit
        self.fence = ""  # 'head:SHA' of the commit being merged: its writes hold only for it
        self.local = ""  # the local base at the start of this step (moved by compare-and-swap)
        self.remote_at: str | None = None  # the remote's base as fetched (None: it has none)
        # Raises when this process may no longer move base (`control/mergework.py`: the lead).
        self.lead: Callable[[], None] | None = None

    def wait_for(self, task: str, token: str, should_stop: Callable[[], bool]) -> Finished:
        """Queue the task's commit and see it through: merged, or reopened (conflict, a failed
        check); `stopped` when the worker must stop first (its place in the queue is kept)."""
        position = self.store.merge_enqueue(task, token)
        if position >= 0:
            self.store.event("git.queued", task=task, position=str(position))
        lost = 0  # passes that found the queue empty without it: queued again, at most twice
        while True:
            rec = self.store.git_record(task)
            if rec.get("token") != token:
                return Finished(False, "stopped: the attempt is no longer current", stopped=True)
            stage = rec.get("git_stage", "")
            if stage == "merged":
                self.p.clean_up(task, merged=True)
                return Finished(True, rec.get("git_result", ""))
            if stage in REOPENED:
                return Finished(False, rec.get("git_note", stage))
            if should_stop():
                return Finished(False, "stopped while waiting in the merge queue", stopped=True)
            with try_lock(self.layout.queue_lock) as mine:
                # (a node's clone is not the leader's: the leader works the queue for it)
                works = mine and not self.p.node
                outcome = self.work(until=task, should_stop=should_stop) if works else BUSY
            if outcome == THROUGH:
                continue  # worked through to this task: read its outcome now
            if outcome == EMPTY:
                # Not in the queue, not through (a crash between two writes): queue it again.
                lost += 1
                if lost > 2:
                    return Finished(False, f"merge_failed: {task} cannot be queued ({stage})")
                self.store.merge_enqueue(task, token)
                continue
            # Another process works the queue, or its head waits for base's checkout (looked
            # at again once a second).
            time.sleep(WAIT_BLOCKED if outcome == BLOCKED else WAIT)

    def work(self, until: str | None = None, should_stop: Callable[[], bool] = never) -> str:
        """Merge from the head of the queue, holding the queue lock: THROUGH once `until` is
        through (merged or reopened), EMPTY when the queue ran out first, BLOCKED when the head
        must wait (base checked out with local changes in the way), BUSY when stopping."""
        while True:
            queue = self.store.merge_queue()
            if not queue:
                return EMPTY
            head = queue[0]
            try:
                waits = not self.merge_one(head)
            except GitError as e:
                # That head's own trouble (an unreadable commit, a worktree git refuses): it is
                # reopened with the error, never left to fail every task behind it.
                self._reopen(head, "merge_failed", f"merge_failed: {e.message}", [])
                waits = False
            if waits:
                return BLOCKED
            if head == until:
                return THROUGH
            if should_stop():
                return BUSY

    def merge_one(self, task: str) -> bool:
        """One step of the queue: the task at its head merged, reopened or dropped (True), or
        left waiting at the head (False)."""
        rec = self.store.git_record(task)
        head = rec.get("git_head", "")
        if not head or not self._wanted(rec, head):
            self.store.merge_drop(task)  # cancelled, deleted, re-run, or already through
            return True
        self.fence = f"head:{head}"  # every write of this step: only for this very commit
        # Done on a node: its pushed branch, fetched (a fetch that fails waits: the remote may
        # be away for a while, no fault of the task's; a branch gone or without it reopens it).
        why = remote.fetch_task(self.p, task, head) if rec.get("git_node") else None
        if why is not None:
            self._wait(task, why)
            return False
        for _ in range(CAS_TRIES):
            old, self.holder = self.repo.branch_tip(self.git.base)  # one call for both
            if old is None:
                old = self.p.base_commit()  # (raises: base is gone)
            self.local = old
            onto = self._onto(task, old)
            if onto is None:
                return False  # the remote's base unknown, or apart from the local one: waits
            done = self._already_in(task, head, rec.get("git_candidate", ""), onto)
            result = self._step(task, head, onto, rec) if done is None else done
            if result != "retry":
                return result != "wait"
        return False  # base kept moving under it: the head waits and is tried again

    def _onto(self, task: str, local: str) -> str | None:
        """What the step builds on: the local base, or with `[git] push` the newer of it and
        the remote's (fetched now: another host may have merged and pushed since), noted in
        `remote_at` for the push's compare-and-swap. None when the head must wait (noted)."""
        if not self.git.push:
            return local
        at, why = remote.remote_base(self.p)
        self.remote_at = at
        if why is None and (at is None or at == local or self.repo.is_ancestor(at, local)):
            return local
        if why is None and self.repo.is_ancestor(local, at or local):
            return at
        if why is None:
            why = (
                f"{self.git.base} and {self.git.push}/{self.git.base} have diverged (each holds "
                f"commits the other lacks): merge or rebase one onto the other"
            )
        self._wait(task, why)
        return None

    @staticmethod
    def _wanted(rec: dict[str, str], head: str) -> bool:
        """The task still wants `head` merged: it runs (or was handed back) with that commit
        queued, or `tt merge` of a completed manual-mode task asked for that very commit."""
        manual = rec.get("state") == "completed" and rec.get("git_manual") == head
        return (
            (rec.get("state") in ("running", "ready") or manual)
            and rec.get("git_head") == head
            and rec.get("git_stage") in ("queued", "waiting", "committed")
        )

    def _already_in(self, task: str, head: str, candidate: str, base: str) -> str | None:
        """'merged' when the task's work is in base already (a crash after base moved), once
        the local base and the remote's hold it too ('wait', 'retry' when they cannot yet)."""
        for commit in (candidate, head):
            if commit and self.repo.is_ancestor(commit, base):
                synced = self._publish(task, base)
                if synced == "merged":
                    self._merged(task, commit)
                return synced
        return None

    def _publish(self, task: str, commit: str) -> str:
        """`commit` (checked, or base already) onto the remote's base (`[git] push`: compare-
        and-swap against what was fetched), then onto the local base. 'merged' when both hold
        it; 'wait' (noted: the remote refused, or base's checkout is in the way) or 'retry' (the
        local base moved meanwhile). Nothing is recorded merged before both moved."""
        if self.lead is not None:
            self.lead()  # (raises when this process may no longer move base: no push, no move)
        if self.git.push and commit != self.remote_at:
            refused = remote.push_base(self.p, task, commit, self.remote_at)
            if refused is not None:
                self._wait(task, refused)
                return "wait"
            self.remote_at = commit
        if commit == self.local:
            return "merged"
        with self.p.locked():
            moved = self._move_base(task, self.local, commit)
        return "wait" if moved is None else "merged" if moved else "retry"

    def _step(self, task: str, head: str, old: str, rec: dict[str, str]) -> str:
        candidate = rec.get("git_candidate", "")
        if rec.get("git_stage") == "waiting" and candidate and rec.get("git_onto") == old:
            # Checked already on this very base: only base's checkout was in the way.
            return self._land(task, old, candidate)
        tree = self.layout.merge_tree
        with self.p.locked():
            if not (tree / ".git").exists():
                self.repo.add_worktree(tree, None, old, new=False)
        self.p.run_check.stop_orphan(self.layout.check_pid)  # before its folder is reset
        self.repo.recover(tree)  # a step killed mid-way: its lock and half-done rebase undone
        branch = self.layout.branch(task)
        used = self.layout.merge_used.exists()  # checks ran there: anything may be left over
        if self.git.strategy == Strategy.REBASE:
            if used:
                self.repo.checkout_detached(tree, head)
            step = self.repo.rebase(tree, old, head)  # (checks the commit out itself)
            if not step.ok and not step.conflicts and not used:
                self.repo.checkout_detached(tree, head)  # refused for a reason of the tree's
                step = self.repo.rebase(tree, old, head)
        else:
            self.repo.checkout_detached(tree, old, clean=used)
            step = self.repo.merge(tree, [head], f"Merge {branch}: {task}")
        self.layout.merge_used.unlink(missing_ok=True)
        if not step.ok:
            files = list(step.conflicts)
            shown = ", ".join(files[:5]) + (" …" if len(files) > 5 else "")
            note = f"conflict: {branch} does not apply on {self.git.base}: {shown or step.message}"
            self._reopen(task, "conflict", note, files)
            return "done"
        candidate = self.repo.head(tree)
        self.store.note_git(task, self.fence, git_candidate=candidate, git_onto=old)
        failed = self._checks(task, tree, int(rec.get("attempt", "0") or 0))
        if failed is not None:
            self._reopen(task, "check_failed", failed, [])
            return "done"
        return self._land(task, old, candidate)

    def _land(self, task: str, old: str, candidate: str) -> str:
        """Base to the checked `candidate`: 'merged', 'wait' (its checkout is in the way) or
        'retry' (base moved since `old`); 'done' when the task no longer wants it (cancelled
        or re-run during the checks): base is not moved for it."""
        if not self._wanted(self.store.git_record(task), self.fence.removeprefix("head:")):
            self.store.merge_drop(task)
            return "done"
        landed = self._publish(task, candidate)
        if landed == "merged":
            self._merged(task, candidate)
        return landed

    def _checks(self, task: str, tree: Path, attempt: int) -> str | None:
        """The first failing check's report (command, exit, output tail), or None."""
        if not self.git.checks:
            return None
        log = self.layout.check_log(task, attempt)
        log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.layout.merge_used.touch()  # the next step cleans what the checks leave
        for check in self.git.checks:
            ran = self.p.run_check.run(
                ["sh", "-c", check], tree, log, self.git.check_timeout, self.layout.check_pid
            )
            if ran.returncode == 0:
                continue
            how = (
                f"did not finish within {self.git.check_timeout:g} s"
                if ran.timed_out
                else f"exited {ran.returncode}"
            )
            tail = "\n".join(ran.tail.rstrip().splitlines()[-TAIL_LINES:])
            self.store.event("git.check_failed", task=task, check=check, how=how)
            return f"check_failed: `{check}` {how} on the merged result:\n{tail}"
        return None

    def _move_base(self, task: str, old: str, candidate: str) -> bool | None:
        """Base to `candidate` if it still points at `old` (False: it moved). Where base is
        checked out in a working tree it is fast-forwarded there, never behind its back; local
        changes the merge would touch make it wait (None)."""
        holder = self.holder  # where base was checked out at the start of this step
        if self.git.checks:  # time has passed: read base again
            tip, holder = self.repo.branch_tip(self.git.base)
            if tip != old:
                return False
        if holder is None or not holder.is_dir():
            return self.repo.update_ref(self.p.base_ref, candidate, old)  # compare-and-swap
        # git refuses to fast-forward over local changes to the files the merge touches (and
        # over untracked files it would add): only then is it worth finding out which.
        step = self.repo.fast_forward(holder, self.git.base, candidate)
        if step.ok:
            # (the branch checked out there is checked first: a switch in the very instant
            # between would have moved another branch; base is then still `old`: the step again)
            return self.repo.branch_tip(self.git.base)[0] == candidate
        if self.repo.branch_tip(self.git.base)[0] != old:
            return False  # it was base that moved: the step again on the new one
        touched = set(self.repo.dirty(holder)) & set(self.repo.changed_files(old, candidate))
        if touched:
            shown = ", ".join(sorted(touched)[:3])
            why = f"base checked out with local changes at {holder} ({shown})"
        else:
            why = f"base checked out at {holder} cannot be fast-forwarded: {step.message}"
        self._wait(task, why)
        return None

    def _wait(self, task: str, why: str) -> None:
        """The head waits, `why` noted on the task (and told once while it stays the same)."""
        rec = self.store.git_record(task)
        if rec.get("git_stage") != "waiting" or rec.get("git_note") != why:
            self.store.note_git(task, self.fence, git_stage="waiting", git_note=why)
            self.store.event("git.waiting", task=task, reason=why)

    def _merged(self, task: str, commit: str) -> None:
        """Base holds the task's work, here and (`[git] push`) on the remote, pushed first (a
        node starts its next task from the remote's base: its dependents must find this work
        there): recorded merged. Killed before, the next turn finds it in base and records it."""
        self.store.note_git(
            task,
            self.fence,
            git_stage="merged",
            git_merged=commit,
            git_candidate="",
            git_onto="",
            git_note="",
        )
        self.store.merge_drop(task)
        self.store.event("git.merged", task=task, commit=commit, base=self.git.base)
        if self.store.git_record(task).get("git_node"):
            remote.drop_pushed(self.p, task)  # (base, pushed, holds its work)

    def _reopen(self, task: str, stage: str, note: str, files: list[str]) -> None:
        self.store.note_git(
            task,
            self.fence,
            git_stage=stage,
            git_note=note,
            git_candidate="",
            git_conflicts=json.dumps(files) if files else "",
        )
        self.store.merge_drop(task)
        self.store.event(f"git.{stage}", task=task, note=note.splitlines()[0][:200])
