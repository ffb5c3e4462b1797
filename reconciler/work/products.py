"""A task attempt's work product under `[git]`, for the worker: before the model runs, the task's
worktree on its branch (`start`); after it exits 0, the commit of what it left and, with
`merge = "queue"`, the merge through the queue (`finish`).

Every write to the shared repository holds the repository's file lock (no `index.lock` races);
every record in Redis is fenced by the attempt's token. An attempt that dies anywhere leaves
its worktree and branch in place: the next attempt goes on from them (a commit already queued is
merged without running the model again).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from ..errors import TtError
from ..filelock import exclusive_lock
from ..git.repo import GitError, Repo, repository_of
from ..plan.touches import outside
from ..spec.gitsettings import GitSettings, MergeMode, OnConflict, Strategy
from . import remote
from .layout import Layout, ignore_state
from .queue import MergeQueue
from .types import CheckRun, CheckRunner, Finished, Started, WorkStore

__all__ = ["CheckRun", "CheckRunner", "Finished", "Started", "WorkProducts", "WorkStore"]

# A conflict marker left in a file (git's own, at the start of a line).
MARKER = re.compile(r"^(<{7}|>{7})( |$)|^={7}$", re.M)
LOCK_WAIT = 120.0


class WorkProducts:
    def __init__(
        self,
        state_dir: Path,
        town_root: Path,
        town: str,
        git: GitSettings,
        store: WorkStore,
        run_check: CheckRunner,
        node: str = "",
    ) -> None:
        self.git, self.store, self.run_check = git, store, run_check
        self.layout = Layout(state_dir, town)
        self.repo: Repo = open_repository(town_root, git)
        # `node`: a node's own clone (`--workspace`): base as [git] push has it (`remote.py`).
        self.node = node
        self.base_ref = f"refs/heads/{git.base}"
        if node:
            if not git.push:
                raise TtError(
                    f"node {node} works in its own clone ({self.repo.top}), and [git] push "
                    "names no remote to hand its branches to the leader through",
                    hint='set [git] push = "origin" (a remote both clones share)',
                )
            self.base_ref = remote.tracking_ref(git.push, git.base)
        ignore_state(state_dir)

    def locked(self) -> AbstractContextManager[None]:
        return exclusive_lock(
            self.layout.repo_lock,
            LOCK_WAIT,
            busy="writing to the git repository",
            hint="another agent of the town is creating a worktree or committing",
        )

    def base_commit(self) -> str:
        commit = self.repo.resolve(self.base_ref)
        if commit is None:
            raise TtError(
                f"[git] base {self.git.base!r} is not a branch of {self.repo.top}",
                hint="create it (git branch NAME) or set [git] base to an existing branch",
            )
        return commit

    # -- before the model ------------------------------------------------------------------
    def start(self, task: str, attempt: int, token: str, deps: Sequence[str] = ()) -> Started:
        """The task's worktree, made or reused, ready for this attempt. When the model runs
        again (a reopen after a conflict or a failed check, a retry), a `tt approve` given to
        the commit before is void: what it makes is another commit, approved anew."""
        started = self._start(task, attempt, token, deps)
        if started.done is None and started.result is None:
            self.store.note_git(task, token, approved="")
        return started

    def _start(self, task: str, attempt: int, token: str, deps: Sequence[str]) -> Started:
        rec = self.store.git_record(task)
        stage = rec.get("git_stage", "")
        tree = self.layout.tree(task)
        if stage in ("merged", "unchanged"):
            # Merged (or found unchanged) by an attempt that died before it completed the task.
            self.clean_up(task, merged=True)
            return Started(tree, done=Finished(True, rec.get("git_result", "")))
        branch = self.layout.branch(task)
        with self.locked():
            if self.node:
                remote.fetch_base(self)  # (a node starts from base as the remote has it)
            base = self.base_commit()
            fresh = self._ensure_tree(task, tree, branch, base)
            # An attempt killed mid-commit leaves git's index.lock: the attempt that held this
            # tree is over (this one holds the task's token now).
            self.repo.clear_stale_lock(tree)
            started_on = {"git_base": base} if fresh else {}  # where the new branch starts
            # (git_told: a result `tt task complete` gave an earlier attempt is not this one's)
            self.store.note_git(
                task,
                token,
                git_branch=branch,
                git_tree=str(tree),
                git_told="",
                git_node=self.node,  # whose clone holds the tree ('': the leader's host)
                **started_on,
            )
            if stage in ("conflict", "reopening"):
                return self._reopen(task, attempt, token, tree, base, rec)
            if self.git.merge == MergeMode.MANUAL and deps:
                failed = self._merge_deps(tree, deps)
                if failed is not None:
                    return Started(tree, done=failed)
        head = rec.get("git_head", "")
        made = stage in ("committing", "committed", "queued", "waiting")
        if made and rec.get("git_node", "") != self.node:
            # Made in another clone (an attempt on another node): its tree is not this one.
            # Its pushed commit is fetched and gone on from; else the model runs again here.
            if stage != "committing" and head:
                with self.locked():
                    if remote.adopt(self, task, tree, head):
                        return Started(tree, result=rec.get("git_result", ""))
            self.store.note_git(task, token, git_stage="", git_head="", git_result="")
            return Started(tree)
        if stage == "committing":
            # The model had finished and its result was kept; the agent died around the
            # commit: what the tree holds is committed (again, if need be) and merged.
            return Started(tree, result=rec.get("git_result", ""))
        if stage in ("committed", "queued", "waiting") and head and not self.repo.dirty(tree):
            # Its commit was made; the agent died before the merge finished: merge it now.
            return Started(tree, result=rec.get("git_result", ""))
        return Started(tree)

    def _ensure_tree(self, task: str, tree: Path, branch: str, base: str) -> bool:
        """The worktree of `task` on `branch` (new from `base` if the branch is new); True when
        the branch was made now."""
        known = {w.path.resolve() for w in self.repo.worktrees() if not w.prunable}
        if tree.exists() and tree.resolve() in known:
            return False
        if tree.exists() and any(tree.iterdir()):
            raise TtError(
                f"{tree} exists but is not a worktree of {self.repo.top}",
                hint="move it away (tt keeps task worktrees there)",
            )
        if tree.exists():
            tree.rmdir()
        exists = self.repo.resolve(f"refs/heads/{branch}") is not None
        self.repo.add_worktree(tree, branch, base, new=not exists)
        return not exists

    def _merge_deps(self, tree: Path, deps: Sequence[str]) -> Finished | None:
        """Manual mode: a branch starts from base with its dependencies' branches merged, and
        takes in what they gained since (a re-run of a dependency, a crash before the merge):
        every dependency branch not yet in it, each attempt, when its tree is clean."""
        branches = []
        for b in map(self.layout.branch, deps):
            tip = self.repo.resolve(f"refs/heads/{b}")
            if tip and not self.repo.is_ancestor(tip, "HEAD", cwd=tree):
                branches.append(b)
        if not branches or self.repo.dirty(tree):
            return None
        step = self.repo.merge(tree, branches, f"Merge {', '.join(branches)}", no_ff=False)
        if step.ok:
            return None
        files = ", ".join(step.conflicts[:5]) or step.message
        return Finished(
            False,
            f"conflict: the branches of its dependencies ({', '.join(branches)}) conflict "
            f"in {files}",
            permanent=True,
        )

    def _reopen(
        self, task: str, attempt: int, token: str, tree: Path, base: str, rec: dict[str, str]
    ) -> Started:
        """A conflict with base reopened the task: `redo` restarts the branch from base (its old
        commits kept under refs/tt/...); `resolve` brings base in with the markers left. The
        head it starts from is recorded first: an attempt killed half-way through this (its
        tree already reset) is redone from that head, not from what the tree shows."""
        old = rec.get("git_reopen_from") or self.repo.head(tree)
        self.store.note_git(task, token, git_stage="reopening", git_reopen_from=old)
        self.repo.update_ref(self.layout.kept_ref(task, f"attempt-{attempt - 1}"), old, None)
        if self.git.on_conflict == OnConflict.REDO:
            self.repo.reset_hard(tree, base)
            self.store.note_git(
                task,
                token,
                git_stage="redo",
                git_base=base,
                git_head="",
                git_conflicts="",
                git_reopen_from="",
            )
            return Started(
                tree,
                note=f"Your earlier work conflicted with {self.git.base}; "
                f"start again from the current {self.git.base}.",
            )
        if self.git.strategy == Strategy.REBASE:
            step = self.repo.squash_onto(tree, base, old)
        else:
            step = self.repo.merge(tree, [base], f"Merge {self.git.base}", abort=False)
        files = list(step.conflicts)
        self.store.note_git(
            task,
            token,
            git_stage="resolving",
            git_base=base,
            git_conflicts=json.dumps(files),
            git_reopen_from="",
        )
        if step.ok:
            # Base moved on since: the work applies cleanly now. It is committed and queued
            # as it stands, without running the model again.
            return Started(tree, result=rec.get("git_result", ""))
        listed = "\n".join(f"- {f}" for f in files)
        return Started(
            tree,
            note=f"Your branch conflicts with {self.git.base}. These files hold conflict "
            f"markers (<<<<<<< ======= >>>>>>>); resolve each so both intents survive, remove "
            f"every marker, then finish the task:\n{listed}",
        )

    # -- after the model -------------------------------------------------------------------
    def finish(
        self,
        task: str,
        attempt: int,
        token: str,
        description: str,
        result: str,
        should_stop: Callable[[], bool],
    ) -> Finished:
        """Commit what the model left; then merge it (queue) or keep the branch (manual)."""
        rec = self.store.git_record(task)
        tree = self.layout.tree(task)
        result = rec.get("git_told", "").strip() or result  # `tt task complete --result`
        stage = rec.get("git_stage")
        # (a dirty tree past the commit: the model ran again on it; what it left is committed)
        if stage not in ("committed", "queued", "waiting") or self.repo.dirty(tree):
            made = self._commit(task, attempt, token, tree, description, result, rec)
            if made is not None:
                return made
        if self.git.merge == MergeMode.MANUAL:
            self._push_branch(task)
            return Finished(True, result)
        if _awaits_approval(rec):
            # `approve = true`: the commit waits for a person before it enters the queue; the
            # attempt ends here (awaiting approval), `tt approve` queues the task again and
            # its next attempt merges this commit without running the model (approve.lua).
            self.store.note_git(task, token, approval_merge="1")
            return Finished(True, result)
        if self.node and (failed := remote.push_task(self, task, token)) is not None:
            return failed
        return MergeQueue(self).wait_for(task, token, should_stop)

    def _commit(
        self,
        task: str,
        attempt: int,
        token: str,
        tree: Path,
        description: str,
        result: str,
        rec: dict[str, str],
    ) -> Finished | None:
        """Commit the tree; a Finished when the attempt ends here (markers left, no changes)."""
        left = [f for f in json.loads(rec.get("git_conflicts") or "[]") if _has_markers(tree / f)]
        if left:
            return Finished(
                False, f"conflict: markers left in {', '.join(left[:5])} (resolve every one)"
            )
        first = (description.strip().splitlines() or [task])[0][:72]
        message = f"{task}: {first}\n\nTt-Task: {task}\nTt-Attempt: {attempt}\n"
        # The result first: an attempt killed around the commit leaves `committing`, and the
        # next one commits what is there and merges it without running the model again.
        if not self.store.note_git(task, token, git_stage="committing", git_result=result):
            return Finished(False, "stopped: the attempt is no longer current", stopped=True)
        with self.locked():
            if self.store.git_record(task).get("token") != token:  # (a stale attempt's tree)
                return Finished(False, "stopped: the attempt is no longer current", stopped=True)
            made = self.repo.commit_all(tree, message)
            head = made or self.repo.head(tree)
            base = self.base_commit()
        # A new commit is ahead of base; without one, the model's own commits may be.
        if made is None and self.repo.ahead_behind(head, base)[0] == 0:
            self.store.note_git(
                task,
                token,
                git_stage="unchanged",
                git_head=head,
                git_note="no changes",
                git_result=result,
                git_conflicts="",
            )
            self.store.event("git.unchanged", task=task)
            self.clean_up(task)
            return Finished(True, result)
        changed = self.repo.changed_since_fork(base, head)
        touches = json.loads(rec.get("spec") or "{}").get("touches") or []
        strays = outside(touches, changed) if touches else []
        self.store.note_git(
            task,
            token,
            git_stage="committed",
            git_head=head,
            git_result=result,
            git_changed=json.dumps(changed),
            git_outside=json.dumps(strays) if strays else "",
            git_conflicts="",
            git_note="",
        )
        self.store.event("git.committed", task=task, commit=head, files=str(len(changed)))
        if strays:  # reported, not refused: its `touches` said where it would write
            first = ", ".join(strays[:5])
            self.store.event("git.outside_touches", task=task, files=str(len(strays)), first=first)
        return None

    def _push_branch(self, task: str) -> None:
        if not self.git.push:
            return
        branch = self.layout.branch(task)
        step = self.repo.push(self.git.push, f"refs/heads/{branch}", f"refs/heads/{branch}")
        kind = "git.pushed" if step.ok else "git.push_failed"
        self.store.event(kind, task=task, remote=self.git.push, ref=branch, error=step.message)

    def clean_up(self, task: str, merged: bool = False) -> bool:
        """Remove the task's worktree (only when clean) and, unless `keep_branches`, its branch
        (only when `merged` by the queue, or its commits are in base). True when the worktree
        is gone."""
        tree = self.layout.tree(task)
        with self.locked():
            if tree.exists():
                try:  # (git refuses a tree with changes or untracked files: it is kept)
                    self.repo.remove_worktree(tree)
                except GitError:
                    return False
            branch = self.layout.branch(task)
            head = self.repo.resolve(f"refs/heads/{branch}")
            base = self.repo.resolve(self.base_ref)
            if (
                not self.git.keep_branches
                and head
                and base
                and (merged or self.repo.is_ancestor(head, base))
            ):
                self.repo.delete_branch(branch)
        return True


def open_repository(town_root: Path, git: GitSettings) -> Repo:
    """The repository `[git] repo` names (relative to the town folder); a `TtError` naming the
    field when there is none."""
    folder = Path(git.repo) if Path(git.repo).is_absolute() else town_root / git.repo
    repo = repository_of(folder, git.author)
    if repo is None:
        raise TtError(
            f"town.toml [git] repo: {folder} is not inside a git repository",
            hint="run `git init -b main` there and commit once, or point [git] repo at one",
        )
    return repo


def _awaits_approval(rec: dict[str, str]) -> bool:
    """The task has `approve = true` and no `tt approve` let its commit in yet."""
    if rec.get("approved") == "1":
        return False
    try:
        spec = json.loads(rec.get("spec") or "{}")
    except ValueError:
        return False
    return isinstance(spec, dict) and spec.get("approve") is True


def _has_markers(path: Path) -> bool:
    try:
        return MARKER.search(path.read_text(errors="replace")) is not None
    except OSError:
        return False
