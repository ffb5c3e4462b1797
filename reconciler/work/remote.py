"""Work products across hosts: a node given its own clone (`tt node run --workspace DIR`) starts
each task branch from base as `[git] push` (the remote) has it, pushes the branch there once its
commit is made, and waits for the leader; the leader's merge queue fetches the branch from that
remote before it merges, and pushes base back (`queue._publish`).

git through `git.repo` only; no policy beyond what to fetch and push, and when a failure is the
task's (a push that fails fails the attempt, its commit kept for the next one to push again).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import TtError
from ..git.repo import GitError
from .types import Finished

if TYPE_CHECKING:
    from .products import WorkProducts

WORKSPACE_ENV = "TT_WORKSPACE"  # a node's own clone (`--workspace`): its agents work there


def tracking_ref(remote: str, base: str) -> str:
    """Where a node's clone keeps base as the remote has it: the branch it starts tasks from."""
    return f"refs/remotes/{remote}/{base}"


def fetch_base(p: WorkProducts) -> None:
    """The remote's base into the node's tracking ref (before a task branch starts from it)."""
    assert p.git.push is not None
    step = p.repo.fetch(p.git.push, f"refs/heads/{p.git.base}", p.base_ref)
    if not step.ok:
        raise TtError(
            f"cannot fetch {p.git.base} from [git] push remote {p.git.push!r} into "
            f"{p.repo.top}: {step.message}",
            hint=f"the node's --workspace must be a clone with the remote {p.git.push!r}",
        )


def push_task(p: WorkProducts, task: str, token: str) -> Finished | None:
    """The task's recorded commit (`git_head`) to its branch on the remote, only while attempt
    `token` is current, by compare-and-swap against what the remote's branch held a moment
    before (a redo rewrites it; a stale attempt never pushes over a newer one's). A Finished
    failure when the push fails (the commit stays: the next attempt pushes it, no model run),
    `stopped` when the attempt is no longer current."""
    assert p.git.push is not None
    branch = p.layout.branch(task)
    ref = f"refs/heads/{branch}"
    seen = tracking_ref(p.git.push, branch)
    step = p.repo.fetch(p.git.push, ref, seen)
    expected = p.repo.resolve(seen) if step.ok else None
    rec = p.store.git_record(task)
    if rec.get("token") != token:
        return Finished(False, "stopped: the attempt is no longer current", stopped=True)
    head = rec.get("git_head", "")
    if step.ok or "couldn't find remote ref" in step.message:
        if expected == head:
            return None  # (pushed already: an attempt died after its push)
        step = p.repo.push(p.git.push, head, ref, lease=expected or "")
    p.store.event(
        "git.pushed" if step.ok else "git.push_failed",
        task=task,
        remote=p.git.push,
        ref=branch,
        error=step.message,
    )
    if step.ok:
        return None
    return Finished(
        False,
        f"push_failed: {branch} to {p.git.push}: {step.message} (its commit is kept in "
        f"{p.repo.top}; the next attempt pushes it again)",
    )


def adopt(p: WorkProducts, task: str, tree: Path, head: str) -> bool:
    """An attempt on this clone goes on from the commit another clone made and pushed (its
    attempt died after the commit, `head`): fetched from the remote, `tree` and its branch
    moved to it (what the tree held before kept under `refs/tt/TOWN/TASK/replaced-SHA`). False
    when `head` cannot be had here: the model runs again."""
    if p.repo.resolve(head) is None:
        if p.git.push is None:
            return False
        branch = p.layout.branch(task)
        p.repo.fetch(p.git.push, f"refs/heads/{branch}", tracking_ref(p.git.push, branch))
        if p.repo.resolve(head) is None:
            return False
    old = p.repo.head(tree)
    if p.repo.dirty(tree):
        old = p.repo.snapshot(tree, f"{task}: left in its worktree\n\nTt-Task: {task}\n") or old
    if old != head and not p.repo.is_ancestor(old, head):
        p.repo.update_ref(p.layout.kept_ref(task, f"replaced-{old[:12]}"), old, None)
    p.repo.reset_hard(tree, head, clean=True)
    return True


def remote_base(p: WorkProducts) -> tuple[str | None, str | None]:
    """The leader: base as the remote has it now, fetched into its tracking ref (the queue
    builds on it when it is ahead of the local base: another host merged and pushed). (commit,
    None); (None, None) when the remote has no base yet; (None, why) when it cannot be read
    (the head waits)."""
    assert p.git.push is not None
    into = tracking_ref(p.git.push, p.git.base)
    step = p.repo.fetch(p.git.push, f"refs/heads/{p.git.base}", into)
    if step.ok:
        return p.repo.resolve(into), None
    if "couldn't find remote ref" in step.message:
        return None, None
    return None, f"cannot fetch {p.git.base} from {p.git.push}: {step.message}"


def push_base(p: WorkProducts, task: str, commit: str, expected: str | None) -> str | None:
    """The leader: base to the remote, only if the remote's base is still `expected` (None:
    it had none), before the merge is recorded. None when pushed, else why not (git's own
    `! [rejected]` line): nothing is recorded, the head waits and is tried again."""
    assert p.git.push is not None
    step = p.repo.push(p.git.push, commit, f"refs/heads/{p.git.base}", lease=expected or "")
    kind = "git.pushed" if step.ok else "git.push_failed"
    p.store.event(kind, task=task, remote=p.git.push, ref=p.git.base, error=step.message)
    return None if step.ok else f"cannot push {p.git.base} to {p.git.push}: {step.message}"


def fetch_task(p: WorkProducts, task: str, head: str) -> str | None:
    """The leader: a node's pushed branch fetched into a ref of tt's own (`refs/tt/TOWN/TASK/
    fetched`: never a branch, which a worktree may have checked out), unless `head` is here
    already; the queue merges `head` by its SHA. None when `head` is here; why not when the
    fetch failed (the head waits: a remote away is no fault of the task's); `GitError` when the
    remote's branch is gone or lacks `head`."""
    if p.repo.resolve(head) is not None:
        return None
    remote = p.git.push
    branch = p.layout.branch(task)
    if remote is None:
        raise GitError(f"{task} was done on a node, and [git] push names no remote to fetch it")
    step = p.repo.fetch(remote, f"refs/heads/{branch}", fetched_ref(p, task))
    if not step.ok and "couldn't find remote ref" not in step.message:
        return f"cannot fetch {branch} from {remote}: {step.message}"
    if p.repo.resolve(head) is None:
        why = "is gone" if not step.ok else f"does not hold the task's commit {head[:12]}"
        raise GitError(f"{remote}'s {branch} {why}")
    return None


def fetched_ref(p: WorkProducts, task: str) -> str:
    return p.layout.kept_ref(task, "fetched")


def drop_pushed(p: WorkProducts, task: str) -> None:
    """The leader, once a node's task is merged: its fetched copy and the remote's branch go
    (the branch unless `keep_branches`); a failure to delete the remote's is an event, never
    the task's."""
    with p.locked():
        p.repo.delete_ref(fetched_ref(p, task))
    if p.git.keep_branches or p.git.push is None:
        return
    branch = p.layout.branch(task)
    try:
        step = p.repo.push(p.git.push, "", f"refs/heads/{branch}")
        ok, error = step.ok, step.message
    except GitError as e:
        ok, error = False, e.message
    if not ok:
        p.store.event("git.push_failed", task=task, remote=p.git.push, ref=branch, error=error)
