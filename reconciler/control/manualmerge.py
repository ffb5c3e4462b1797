"""`tt merge TASK`: the branch of a completed task of a `merge = "manual"` town merged into base
through the town's merge queue (the same rebase or merge, checks and compare-and-swap as queue
mode), worked by this process until that task is through.

The branch as it is now is what merges (a reviewer may have added commits to it). Nothing is left
half-way: a task that cannot merge now (its base checked out with local changes it would touch)
leaves the queue with its branch as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..agents.gitwork import Checks
from ..errors import NotFound, TtError
from ..filelock import exclusive_lock
from ..spec.gitsettings import MergeMode
from ..spec.names import did_you_mean, is_valid_name
from ..work import WorkProducts
from ..work.queue import MergeQueue
from .session import Session


@dataclass(frozen=True)
class Merged:
    """How `tt merge` ended: `ok` (merged into `base` as `commit`), else `text` says why not
    (a conflict, a failed check with its output's tail, a wait); `log`: the checks' log."""

    ok: bool
    task: str
    base: str
    commit: str | None = None
    text: str = ""
    log: str | None = None
    already: bool = False


def merge_task(s: Session, task_id: str) -> Merged:
    """Merge `task_id`'s branch into base now. Raises `TtError` (nothing done) for a town
    without `[git]`, a town whose merge is "queue", a task that is not completed, changed
    nothing, or has no branch."""
    desired = s.desired()
    git = desired.git
    if git is None:
        raise TtError(
            "tt merge needs work products: town.toml has no [git] table",
            hint='add [git] with merge = "manual" to keep each task\'s branch for review',
        )
    if git.merge != MergeMode.MANUAL:
        raise TtError(
            f'tt merge is for [git] merge = "manual"; this town has merge = "{git.merge.value}", '
            "where a task's branch merges through the queue before the task completes",
            hint="tt show TASK tells where its merge is",
        )
    store = s.store
    rec = store.git_record(task_id) if is_valid_name(task_id) else {}
    if not rec:
        raise NotFound(f"no task named {task_id}", hint=did_you_mean(task_id, desired.task_ids()))
    state, stage = rec.get("state"), rec.get("git_stage", "")
    if stage == "merged" and rec.get("git_merged"):
        return Merged(True, task_id, git.base, rec["git_merged"], already=True)
    if state != "completed":
        raise TtError(
            f"task {task_id} is {state}, not completed: tt merge merges the branch of a "
            "finished task",
            hint=f"tt show {task_id}; tt wait for it to finish",
        )
    if stage == "unchanged":
        raise TtError(f"task {task_id} changed nothing: it has no commit to merge")
    wp = WorkProducts(s.paths.state_dir, s.paths.root, desired.town.name, git, store, Checks())
    branch = wp.layout.branch(task_id)
    head = wp.repo.resolve(f"refs/heads/{branch}")
    if head is None:
        raise TtError(
            f"task {task_id} has no branch: {branch} is not a branch of {wp.repo.top}",
            hint="it was deleted, or the task never ran with [git]; tt show " + task_id,
        )
    with exclusive_lock(
        wp.layout.queue_lock,
        git.check_timeout + 120,
        busy="merging into base",
        hint="another tt merge is running its checks; try again when it is done",
    ):
        # A candidate of the same head is kept: one that reached base before a crash is then
        # found merged, not merged twice. A new head (a reviewer's commits) starts afresh.
        same = store.git_record(task_id).get("git_head") == head
        moved = {} if same else {"git_candidate": "", "git_onto": ""}
        store.note_git(
            task_id, "", git_head=head, git_stage="queued", git_note="", git_manual=head, **moved
        )
        store.merge_enqueue(task_id)
        try:
            MergeQueue(wp).work(until=task_id)
            return _outcome(wp, task_id, head)
        finally:
            store.note_git(task_id, "", git_manual="")


def _outcome(wp: WorkProducts, task_id: str, head: str) -> Merged:
    store, base = wp.store, wp.git.base
    rec = store.git_record(task_id)
    stage, note = rec.get("git_stage", ""), rec.get("git_note", "")
    if stage == "merged":
        wp.clean_up(task_id, merged=True)
        return Merged(True, task_id, base, rec.get("git_merged"))
    log = wp.layout.check_log(task_id, int(rec.get("attempt", "0") or 0))
    shown = str(log) if stage == "check_failed" and log.is_file() else None
    if stage in ("conflict", "check_failed"):
        # The task stays completed with its branch: fix the branch, then tt merge again.
        return Merged(False, task_id, base, text=note or stage, log=shown)
    # Still queued: it waits (base checked out with local changes), or behind another task
    # that does. It leaves the queue as it came: committed, for a later tt merge.
    store.merge_drop(task_id)
    ahead = store.merge_queue()
    why = note or (f"{ahead[0]} waits at the head of the merge queue" if ahead else stage)
    store.note_git(task_id, "", git_stage="committed", git_note="", git_head=head)
    return Merged(False, task_id, base, text=f"{why}; run tt merge {task_id} again then")
