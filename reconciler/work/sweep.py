"""`tt gc` of one task's work product (`Custody.gc`): its worktree, then its branch, then its
kept refs, each removed only when `Product` says nothing of it would be lost, or (`force`, a
finished task) once saved under `refs/tt/<town>/<task>/salvage`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TtError
from ..git.repo import GitError
from .custody import FINISHED, SALVAGE, Custody, Product


@dataclass(frozen=True)
class Action:
    """One line of `tt gc`: `removed`, `salvaged`, `kept` (or `would remove`/`would salvage`
    in a dry run) a `kind` of thing (worktree, registration, folder, branch, ref)."""

    action: str
    kind: str
    name: str
    task: str
    reason: str = ""

    def line(self) -> str:
        text = f"{self.action} {self.kind} {self.name}"
        return f"{text} ({self.reason})" if self.reason else text

    def as_json(self) -> dict[str, str]:
        return {
            "action": self.action,
            "kind": self.kind,
            "name": self.name,
            "task": self.task,
            "reason": self.reason,
        }


class Sweep:
    """The gc of one task's work product."""

    def __init__(self, c: Custody, p: Product, dry: bool, force: bool) -> None:
        self.c, self.p, self.dry = c, p, dry
        self.force = force and p.state in FINISHED
        self.done: list[Action] = []
        self.salvaged = False
        self.claimed: set[str] = set()  # salvage refs taken (a dry run makes none)

    def _say(self, action: str, kind: str, name: str, reason: str = "") -> None:
        if self.dry and action in ("removed", "salvaged"):
            action = {"removed": "would remove", "salvaged": "would salvage"}[action]
        self.done.append(Action(action, kind, name, self.p.task, reason))

    def run(self) -> list[Action]:
        p = self.p
        tree_gone = self._tree() if p.path else True
        if p.branch:
            self._branch(tree_gone)
        for ref in p.kept:
            self._kept(ref)
        return self.done

    def _tree(self) -> bool:
        p, path = self.p, self.p.path
        assert path is not None
        kind = "registration" if p.missing else "folder" if p.stray else "worktree"
        if p.state not in FINISHED or (p.tree_keep and (p.stray or not self.force)):
            self._say("kept", kind, str(path), p.tree_keep or f"task {p.state}")
            return False
        if p.tree_keep:
            self._salvage()
        if not self.dry:
            try:
                if p.stray:
                    path.rmdir()  # (an empty one: any other is kept)
                else:  # (forced: with its changes saved, or only its registration is left)
                    self.c.repo.remove_worktree(path, force=bool(p.tree_keep) or p.missing)
            except (GitError, OSError) as e:
                self._say("kept", kind, str(path), getattr(e, "message", None) or str(e))
                return False
        why = "empty" if p.stray else "its folder was deleted" if p.missing else ""
        self._say("removed", kind, str(path), "saved first" if p.tree_keep else why)
        return True

    def _salvage(self) -> None:
        """Save the worktree's uncommitted changes (a commit on its HEAD) and every unmerged
        head under refs/tt/<town>/<task>/salvage (salvage-2, ... when that holds other work)."""
        if self.salvaged:
            return
        self.salvaged = True
        p, repo = self.p, self.c.repo
        todo: list[tuple[str, str, str]] = []  # (commit, what it is, what it covers)
        if p.path and p.dirty:
            message = f"{p.task}: salvaged by tt gc --force\n\nTt-Task: {p.task}\n"
            made = "" if self.dry else repo.snapshot(p.path, message) or ""
            if made or self.dry:  # (a dry run makes no commit)
                todo.append((made, f"{p.dirty} uncommitted change(s)", made or repo.head(p.path)))
        todo += [(h, f"commit {h[:12]}", h) for h in p.heads]
        covered: list[str] = []
        for commit, what, cover in todo:
            if commit and any(repo.is_ancestor(commit, c) for c in covered):
                continue  # (the branch's head, under the snapshot made on it)
            ref, new = self._salvage_ref(commit)
            if new and not self.dry and not repo.update_ref(ref, commit, None):
                raise TtError(f"cannot save {commit[:12]} of task {p.task} under {ref}")
            covered.append(cover)
            self._say("salvaged", "ref", ref, what if new else f"{what}: saved there already")

    def _salvage_ref(self, commit: str) -> tuple[str, bool]:
        """A free salvage ref of the task (True), or the one that holds `commit` (False)."""
        repo, n = self.c.repo, 1
        while True:
            ref = self.c.layout.kept_ref(self.p.task, SALVAGE if n == 1 else f"{SALVAGE}-{n}")
            held = repo.resolve(ref)
            if held is None and ref not in self.claimed:
                self.claimed.add(ref)
                return ref, True
            if held and commit and repo.is_ancestor(commit, held):
                return ref, False
            n += 1

    def _branch(self, tree_gone: bool) -> None:
        p, c = self.p, self.c
        assert p.branch is not None
        if not tree_gone:
            self._say("kept", "branch", p.branch, p.branch_keep or "its worktree stays")
            return
        if p.branch_keep and not self.force:
            self._say("kept", "branch", p.branch, p.branch_keep)
            return
        if c.git.keep_branches:
            self._say("kept", "branch", p.branch, "keep_branches")
            return
        if p.branch_keep:
            self._salvage()  # (done already when its worktree went)
        if not self.dry and not c.repo.delete_branch(p.branch):
            self._say("kept", "branch", p.branch, "git refused to delete it (checked out?)")
            return
        self._say("removed", "branch", p.branch, "saved first" if p.branch_keep else "")

    def _kept(self, ref: str) -> None:
        """A kept ref goes only once its commit is in base (nothing of it can be lost)."""
        c = self.c
        if self.p.state not in FINISHED:
            self._say("kept", "ref", ref, f"task {self.p.state}")
            return
        commit = c.repo.resolve(ref)
        base = c.base()
        if commit and c.repo.is_ancestor(commit, base):
            if not self.dry:
                c.repo.delete_ref(ref, commit)
            self._say("removed", "ref", ref, f"in {c.git.base}")
        else:
            self._say("kept", "ref", ref, f"not in {c.git.base}")
