"""Work products on Redis, mixed into `Store`: a task's `git_*` fields (branch, worktree, commit,
merge stage) and the town's merge queue (`mergeq`, a list of task ids in completion order).

Writes of an attempt are fenced by its token (`lua/git_note.lua`), so a stale attempt never
records a commit; the merge queue's own writes are not (it acts for whichever attempt is current).
No redis import: it uses the client `Store` owns.
"""

from __future__ import annotations

from .scripts import Scripted

# Every field of a task hash about its work product.
GIT_FIELDS = (
    "git_branch",  # tt/<town>/<task>
    "git_tree",  # its worktree's path
    "git_base",  # the base commit the branch started from
    "git_head",  # the commit to merge (what the last attempt left)
    "git_stage",  # committing | committed | queued | waiting | merged | unchanged | conflict |
    # check_failed | merge_failed | reopening | resolving | redo
    "git_note",  # why it waits, what conflicted, which check failed (one line)
    "git_conflicts",  # JSON list of the files a conflict left with markers
    "git_candidate",  # the commit the queue is about to move base to (checked)
    "git_onto",  # the base commit the candidate was made and checked on
    "git_merged",  # the commit on base that holds the task's work
    "git_changed",  # JSON list of the files the task changed
    "git_outside",  # JSON list of the changed files outside its `touches`
    "git_result",  # the model's result, kept until the task completes
    "git_reopen_from",  # the head a conflict reopened the task from (before its tree changed)
    "git_told",  # the result the model gave by `tt task complete` (the attempt goes on)
    "git_manual",  # the commit `tt merge` asked to merge (a completed manual-mode task)
    "git_node",  # the node whose own clone holds its worktree (pushed; '': the leader's host)
)
# spec: its `touches` and `approve`; approved: `tt approve` let its commit into the queue
_READ = ("state", "token", "attempt", "spec", "approved", *GIT_FIELDS)


class WorkOps(Scripted):
    def git_record(self, task_id: str) -> dict[str, str]:
        """The task's state, token, attempt, spec and `git_*` fields ({} when it does not exist);
        missing fields are left out."""
        values = self.client.hmget(self.keys.task(task_id), list(_READ))
        if values[0] is None:
            return {}
        return {k: str(v) for k, v in zip(_READ, values, strict=True) if v is not None}

    def note_git(self, task_id: str, token: str, **fields: str) -> bool:
        """Write `fields` (a '' value deletes one) if attempt `token` is still current ('' = any
        attempt); False when it is not, or the task is gone."""
        pairs = [x for kv in fields.items() for x in kv]
        return bool(self._run("git_note", task_id, token, *pairs))

    def merge_enqueue(self, task_id: str, token: str = "") -> int:
        """Queue `task_id` for the merge (once); its position, 0 at the head. With the `token`
        of the attempt whose commit it is: -1 (nothing done) unless that attempt is current and
        its work not through already; its stage is then `queued`."""
        return int(self._run("merge_enqueue", task_id, token))

    def merge_queue(self) -> list[str]:
        return [str(x) for x in self.client.lrange(self.keys.merge_queue, 0, -1)]

    def git_nodes(self, task_ids: list[str]) -> list[str]:
        """Each task's `git_node` ('' for none: the leader's host), in one round trip."""
        if not task_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for t in task_ids:
            pipe.hget(self.keys.task(t), "git_node")
        return [str(v or "") for v in pipe.execute()]

    def merge_drop(self, task_id: str) -> None:
        self.client.lrem(self.keys.merge_queue, 0, task_id)
