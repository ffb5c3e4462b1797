"""Following a branch (`tt watch --follow [REMOTE/]BRANCH`, `[town] follow`): the loop's leader
fetches it every interval (at once on `tt refresh`) and, when it moved, reads the town's files at
its commit from git objects into a private copy (`.tt/follow/`), validates them and has the loop
apply that copy as the revision of that commit, by `follow`. The branch is the truth: the local
files are neither applied nor written. An invalid commit is recorded once and not tried again
(the next one is); a failing fetch is an event, retried with backoff. No printing: `report`.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from .. import git
from ..errors import TtError
from ..filelock import atomic_write_text
from ..plan.actions import Plan
from ..spec import loader
from ..spec.durations import format_duration
from ..town import TASKS_FILE, TOWN_FILE
from . import revision
from .apply import REFUSAL, apply, refused
from .fetcher import Fetcher, Outcome
from .followcopy import CopyPaths, copy_dir
from .outcome import holder_words
from .session import Session

if TYPE_CHECKING:
    from .loop import LoopOptions

BY = "follow"  # who applied, in the revision and the history
REFRESH_EVENT = "town.refresh"  # `tt refresh`: fetch and reconcile now
MAX_BACKOFF = 300.0
# A valid commit whose plan would empty the town: the watcher has no --allow-empty.
FOLLOW_EMPTY_HINT = "stop following and run tt apply --allow-empty on a checkout of that commit"
FETCH_WAIT = 2.0  # a pass waits this long (at most a quarter of the lease) for its fetch
STAGING = "next"  # a commit's files are checked here before they replace the copy
REVISION_FILE = "revision.json"  # the revision the copy is (read back by a restarted loop)


@dataclass(frozen=True)
class Target:
    name: str  # as given: `origin/main`, `main`
    interval: float = 30.0


class Host(Protocol):  # what of the loop this needs (`loop.Loop`)
    s: Session
    opts: LoopOptions
    wake: threading.Event
    report: Callable[[str, dict[str, str]], None]


class Follow:
    """The loop's follower. Without a target it only forgets a branch followed before (`clears`:
    `tt watch`, `tt conductor`; not `tt wait`, which leaves following to the watcher)."""

    def __init__(self, session: Session, target: Target | None, *, clears: bool) -> None:
        self.target, self.clears = target, clears
        self.done = False  # said and recorded at the first pass
        self.refresh = False
        self.due = 0.0
        self.backoff = 0.0
        self.failing: str | None = None  # the fetch's error, while fetches fail
        self.head: str | None = None  # where the branch was last seen
        self.staged: str | None = None  # the commit whose files the copy holds, staged here
        self.rejected: str | None = None  # the newest invalid commit: not tried again
        self.copied = False  # `tt wait` of a followed town: it applies the copy
        self.fetch: Fetcher | None = None  # made at the first poll
        if target is None:
            return
        root = session.paths.root
        checkout = git.checkout_of(root) if git.may_be_in_work_tree(root) else None
        if checkout is None:
            raise TtError(
                f"{root} is not in a git work tree: following {target.name} reads the town "
                "files from its commits",
                hint="put the town folder in a git repository, or watch without --follow",
            )
        self.root, self.prefix = root, checkout.prefix
        self.remote, self.branch = git.split_target(root, target.name)
        session.settings  # noqa: B018 (Redis and the town's name: from the local town.toml)
        self.copy = copy_dir(session.paths)
        session.paths = CopyPaths(root, files=self.copy)

    def heard(self, etype: str) -> None:
        self.refresh = self.refresh or etype == REFRESH_EVENT

    def left(self) -> float | None:
        """Seconds until the next fetch is due (for the loop's wait); None when not following."""
        if self.target is None or (self.fetch is not None and self.fetch.busy):
            return None  # a fetch runs: the loop looks again within a heartbeat
        return 0.0 if self.refresh else self.due - time.monotonic()

    def poll(self, host: Host) -> bool:
        """Before a leader's pass: fetch when due and stage a new commit (waking the loop).
        Whether the loop has files to apply (not before a first valid commit is staged)."""
        store = host.s.store
        if self.target is None:
            if not self.done:
                self.done = True
                self._without_target(host)
            return not self.copied or self.copy.joinpath(TOWN_FILE).is_file()
        if not self.done:
            store.set_follow(self.target.name)
            every = format_duration(self.target.interval)
            host.report(
                "follow",
                {
                    "detail": f"following {self.target.name} (every {every}): the town's files "
                    "come from its newest commit; edits of the local files are not applied"
                },
            )
            self.done = True
            self._resume(host)
        if self.fetch is None:
            self.fetch = Fetcher(self.root, self.remote, self.branch)
        if (outcome := self.fetch.take()) is not None:
            self._fetched(host, outcome)
        elif not self.fetch.busy and (self.refresh or time.monotonic() >= self.due):
            self.refresh = False
            # In its own thread: a hung remote must not hold up healing past the lease. A quick
            # fetch (a local remote) is taken by this pass still.
            self.fetch.start(min(FETCH_WAIT, host.s.settings.policy.lease / 4))
            if (outcome := self.fetch.take()) is not None:
                self._fetched(host, outcome)
        return self.copy.joinpath(TOWN_FILE).is_file()

    def _without_target(self, host: Host) -> None:
        """`tt watch` forgets a branch followed before; `tt wait` (`clears` false) of a town
        that follows one applies the copy the watcher staged, never the local files."""
        branch = host.s.follows()
        if branch is None:
            return
        if self.clears:
            host.s.store.set_follow(None)
            detail = f"no longer following {branch}: the town's own files are applied"
        else:
            self.copy, self.copied = copy_dir(host.s.paths), True
            host.s.paths = CopyPaths(host.s.paths.root, files=self.copy)
            self._resume(host)
            detail = (
                f"the town follows {branch}: its watcher's copy is applied, not the local files"
            )
        host.report("follow", {"detail": detail})

    def _resume(self, host: Host) -> None:
        """A copy left by an earlier loop is applied as the revision it was staged as."""
        try:
            rev = json.loads(self.copy.joinpath(REVISION_FILE).read_text())
        except (OSError, ValueError):
            return
        if isinstance(rev, dict) and self.copy.joinpath(TOWN_FILE).is_file():
            self._use(host, rev)

    def _use(self, host: Host, rev: dict[str, Any]) -> None:
        self.staged = rev.get("sha")
        apply_opts = replace(host.opts.apply, command=BY, revision=rev)
        host.opts = replace(host.opts, apply=apply_opts)

    def _fetched(self, host: Host, head: Outcome) -> None:
        assert self.target is not None
        store, name = host.s.store, self.target.name
        if isinstance(head, git.FetchFailed):
            self._fetch_failed(host, head.message)
            return
        if self.failing is not None:
            host.report("follow", {"detail": f"fetching {name} works again"})
        self.failing, self.backoff = None, 0.0
        self.due = time.monotonic() + self.target.interval
        self.head = head
        store.set_follow(name, self._state())
        applied, attempted, _ = store.revisions()
        failed = attempted is not None and attempted.get("result", "ok") != "ok"
        if applied is not None and head == applied.get("sha") and self.staged in (None, head):
            if failed:  # back at what runs (a force-push over a bad commit): no failed attempt
                back = dict(applied, by=BY, result="ok", at=time.time(), problems=[])
                store.record_revision(None, back, None)
            return
        if head in (self.staged, self.rejected):
            return
        if failed and attempted is not None and attempted.get("sha") == head:
            self.rejected = head  # found invalid or refused before this loop started
            return
        self._stage(host, head)

    def _state(self) -> dict[str, Any]:
        return {"head": self.head, "checked_at": time.time(), "error": self.failing}

    def _fetch_failed(self, host: Host, message: str) -> None:
        assert self.target is not None
        interval = self.target.interval
        self.backoff = min(MAX_BACKOFF, 2 * self.backoff if self.backoff else interval)
        self.due = time.monotonic() + self.backoff
        retry = format_duration(self.backoff)
        if message != self.failing:
            host.report("follow", {"detail": f"{message} (retrying in {retry}, backing off)"})
        self.failing = message
        store = host.s.store
        store.event("follow.fetch_failed", branch=self.target.name, error=message[:500])
        store.set_follow(self.target.name, self._state())

    def _stage(self, host: Host, head: str) -> None:
        """Check the town's files at `head`; valid, they become the copy the loop applies."""
        assert self.target is not None
        texts, problems = self._texts(head)
        staging = self.copy / STAGING
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700, parents=True)
        for file, text in texts.items():
            if text is not None:
                atomic_write_text(staging / file, text)
        if not problems:
            checked = loader.check(CopyPaths(self.root, files=staging))
            problems = [p.render() for p in checked.problems]
        digests = revision.file_digests(CopyPaths(self.root, files=staging))
        rev = revision.of_commit(head, digests)
        rev["branch"] = self.target.name
        if problems:
            self._reject(host, head, rev, problems, "invalid")
            return
        if refusal := self._refusal(host, CopyPaths(self.root, files=staging)):
            self._reject(host, head, rev, [refusal], "refused")
            return
        for file, text in texts.items():
            if text is None:
                self.copy.joinpath(file).unlink(missing_ok=True)
            else:
                (staging / file).replace(self.copy / file)
        atomic_write_text(self.copy / REVISION_FILE, json.dumps(rev, sort_keys=True))
        self._use(host, rev)
        host.report("follow", {"detail": f"{self.target.name} is at {head[:7]}: applying it"})
        host.wake.set()

    def _texts(self, head: str) -> tuple[dict[str, str | None], list[str]]:
        """The two files' texts at `head` (None: not in that commit), and what keeps them from
        being town files at all."""
        texts: dict[str, str | None] = {}
        problems: list[str] = []
        for file in (TOWN_FILE, TASKS_FILE):
            path = f"{self.prefix}/{file}" if self.prefix else file
            try:
                raw = git.file_at(self.root, head, path)
                texts[file] = None if raw is None else raw.decode("utf-8")
            except (TtError, UnicodeDecodeError) as e:
                texts[file] = None
                problems.append(f"{path} at {head[:7]}: {getattr(e, 'message', e)}")
        if texts[TOWN_FILE] is None and not problems:
            problems.append(f"commit {head[:7]} has no {self.prefix or '.'}/{TOWN_FILE}")
        return texts, problems

    def _refusal(self, host: Host, files: CopyPaths) -> str | None:
        """Why `tt apply` would refuse the plan of a valid commit's files (they empty the town
        unasked), with what to do while following; None when it would apply them."""
        opts = replace(host.opts.apply, dry_run=True)
        try:
            planned = apply(host.s.reading(files), opts)
        except TtError:  # a held lock, Redis away: the loop's own apply finds out
            return None
        if not refused(planned.plan, opts):
            return None
        return f"{REFUSAL} (to empty the town on purpose: {FOLLOW_EMPTY_HINT})"

    def _reject(
        self, host: Host, head: str, rev: dict[str, Any], problems: list[str], result: str
    ) -> None:
        """An invalid or refused commit: recorded as the newest attempt (and in the history)
        once and not tried again; the copy is left as it is, so the last good revision keeps
        running."""
        assert self.target is not None
        store, name = host.s.store, self.target.name
        kept = revision.MAX_PROBLEMS
        rev.update(by=BY, result=result, problems=[p[:500] for p in problems[:kept]])
        entry = revision.entry_of(rev, result, BY, Plan(), 0.0)
        entry["problems"] = rev["problems"]
        store.record_revision(None, rev, entry)
        said = "\n".join(problems)
        store.event(f"revision.{result}", sha=head, branch=name, problems=said[:2000])
        applied = f"{self.staged[:7]}" if self.staged else "what runs"
        detail = f"{name} at {head[:7]} is {result}; keeping {applied}:\n{said}"
        host.report("invalid" if result == "invalid" else "follow", {"detail": detail})
        self.rejected = head


def refresh(session: Session) -> str:
    """`tt refresh`: ask the town's watcher to fetch (when following) and reconcile now. What
    to tell; a `TtError` when no watcher runs to hear it."""
    store = session.store
    holder = store.leader_holder()
    if not holder:
        raise TtError(
            f"no watcher runs for town '{store.town}': nothing to refresh",
            hint="start one: tt watch (--follow BRANCH), or tt apply",
        )
    store.event(REFRESH_EVENT)
    _, _, follow = store.revisions()
    what = f"fetch {follow} and reconcile" if follow else "reconcile"
    return f"asked the watcher ({holder_words(holder)}) to {what} now"
