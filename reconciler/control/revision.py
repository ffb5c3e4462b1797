"""The applied revision: where the files of each apply came from, and the apply history.

A commit (full and short SHA, branch) when town.toml and tasks.toml are committed and unchanged
at HEAD; else `dirty` on top of HEAD with the files' digests; else the digests alone (outside a
work tree, or before the first commit). In CI, on a detached HEAD, the branch comes from
`GITHUB_REF_NAME` / `CI_COMMIT_REF_NAME` once HEAD is checked to be `GITHUB_SHA` / `CI_COMMIT_SHA`.
Cheap by design: one `git status` per apply (none outside a work tree), one read of Redis and at
most one MULTI. No printing; `syncstatus` reads what is recorded here.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .. import git
from ..plan.actions import Plan
from ..town import TASKS_FILE, TOWN_FILE, TownPaths

FILES = (TOWN_FILE, TASKS_FILE)
# (HEAD's SHA, the branch name) as each CI sets them; its checkout is usually detached.
CI_VARS = (("GITHUB_SHA", "GITHUB_REF_NAME"), ("CI_COMMIT_SHA", "CI_COMMIT_REF_NAME"))
SAME = ("sha", "branch", "dirty", "digests")  # what makes two revisions the same source
MAX_PROBLEMS = 20
Revision = dict[str, Any]  # JSON: sha, short, branch, dirty, digests, at, by (+ changed, note)


class RevisionStore(Protocol):
    def revisions(self) -> tuple[Revision | None, Revision | None, str | None]: ...
    def record_revision(
        self, applied: Revision | None, attempted: Revision | None, entry: Revision | None
    ) -> None: ...


def described(
    state: git.FilesAtHead | None,
    digests: Mapping[str, str],
    env: Mapping[str, str],
    now: float,
) -> Revision:
    """The revision of files with these `digests`, given what git said of them (pure)."""
    rev: Revision = {"sha": None, "short": None, "branch": None, "dirty": False}
    rev.update({"digests": {n: digests.get(n, "") for n in FILES}, "at": now})
    if state is None or state.head is None:
        return rev
    rev.update(sha=state.head, short=state.head[:7], branch=state.branch)
    if state.changed:
        rev.update(dirty=True, changed=list(state.changed))
    if state.branch is None:
        for sha_var, ref_var in CI_VARS:
            ci_sha = env.get(sha_var, "").strip()
            if not ci_sha:
                continue
            if ci_sha == state.head:
                rev["branch"] = env.get(ref_var, "").strip() or None
            else:
                rev["note"] = f"HEAD {state.head[:7]} is not {sha_var} {ci_sha[:7]}"
            break
    return rev


def of_files(root: Path, digests: Mapping[str, str], now: float | None = None) -> Revision:
    """The revision of the town files in `root` with these `digests` (one git call at most)."""
    state = git.files_at_head(root, FILES) if git.may_be_in_work_tree(root) else None
    return described(state, digests, os.environ, time.time() if now is None else now)


def of_commit(commit: str, digests: Mapping[str, str], now: float | None = None) -> Revision:
    """Files read from `commit` itself (a rollback; a followed branch): that commit, no branch."""
    state = git.FilesAtHead(commit, None, ())
    return described(state, digests, {}, time.time() if now is None else now)


def file_digests(paths: TownPaths) -> dict[str, str]:
    """sha256 of each file's bytes now, as the loader records them (b"" when absent)."""
    found = {}
    for name, path in ((TOWN_FILE, paths.town_file), (TASKS_FILE, paths.tasks_file)):
        try:
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            found[name] = hashlib.sha256(b"").hexdigest()
    return found


def same(a: Revision | None, b: Revision | None) -> bool:
    return a is not None and b is not None and all(a.get(k) == b.get(k) for k in SAME)


def record_applied(
    store: RevisionStore,
    root: Path,
    digests: Mapping[str, str],
    *,
    by: str,
    plan: Plan,
    seconds: float,
    given: Revision | None = None,
) -> Revision:
    """After an apply, under its lock: the revision applied (`given`, else from git), and a
    history entry when the plan changed something or the files did. Files that are
    the bytes of the commit recorded before, now on top of another HEAD, keep that commit."""
    old, attempted, _ = store.revisions()
    rev = dict(given) if given is not None else of_files(root, digests)
    rev["by"] = by
    if same(old, rev) or (
        old is not None
        and rev["dirty"]
        and old.get("sha")
        and not old.get("dirty")
        and old.get("digests") == rev["digests"]
    ):
        assert old is not None
        rev = old
    moved = rev is not old
    # History keeps what changed the town: its files (digests) or Redis. A commit that moved
    # HEAD without touching the two files (a task's work merged, say) moves the revision only.
    files_changed = old is None or old.get("digests") != rev.get("digests")
    entry = entry_of(rev, "ok", by, plan, seconds) if files_changed or not plan.is_empty else None
    tried = None if same(attempted, rev) and attempted and attempted["result"] == "ok" else rev
    if given is not None and not moved:
        # A pass applying the same given revision again (a followed copy, each resync) is no
        # new attempt: the newest one tried (a commit found invalid since) stays recorded.
        tried = None
    store.record_revision(
        rev if moved else None, None if tried is None else {**tried, "result": "ok"}, entry
    )
    return rev


def record_failed(
    store: RevisionStore,
    paths: TownPaths,
    by: str,
    result: str,
    problems: Sequence[str],
    seconds: float,
    given: Mapping[str, Any] | None = None,
) -> None:
    """An apply that did not happen (`result` "invalid" or "refused") is the newest attempt;
    the history gets it once, not again while the same files fail the same way (`given`: the
    revision they are, as for `record_applied`). A town never applied is left as it is: invalid
    files write nothing into Redis then."""
    applied, attempted, _ = store.revisions()
    if applied is None:
        return
    rev = dict(given) if given is not None else of_files(paths.root, file_digests(paths))
    rev.update(by=by, result=result, problems=[p[:500] for p in problems[:MAX_PROBLEMS]])
    if same(attempted, rev) and attempted and attempted.get("result") == result:
        return
    entry = entry_of(rev, result, by, Plan(), seconds)
    entry["problems"] = rev["problems"]
    store.record_revision(None, rev, entry)


def entry_of(rev: Revision, result: str, by: str, plan: Plan, seconds: float) -> Revision:
    """One history record: the revision, who applied it, the result, counts and duration."""
    keep = ("sha", "short", "branch", "dirty", "digests", "note")
    entry: Revision = {k: rev[k] for k in keep if k in rev}
    entry.update(at=time.time(), by=by, result=result, seconds=round(seconds, 3))
    entry.update(plan.totals())
    return entry
