"""Custody of a town's work products: every task worktree (`.tt/git/trees/`), branch
(`tt/<town>/*`) and kept ref (`refs/tt/<town>/...`), joined with its task's record, and the
garbage collection that removes only what holds nothing unmerged (`tt worktrees`, `tt gc`).

Work is never lost: a worktree goes only when it is clean and its commits are in base (or its
task was cancelled and it is clean: its branch stays); a branch only when its commits are in
base. A task that may still run keeps everything. `force` first saves uncommitted changes and
unmerged commits under `refs/tt/<town>/<task>/salvage`, then removes. What has no owner (a task
gone, a worktree whose folder was deleted by hand, a folder that is no worktree) is listed too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import TtError
from ..spec.gitsettings import GitSettings
from .products import CheckRun, WorkProducts, WorkStore
from .remote import tracking_ref

if TYPE_CHECKING:
    from .sweep import Action

# Task states after which no attempt starts without a user's word; any other state (running,
# ready, retrying, blocked, upstream_failed) may still use the worktree: never touched.
FINISHED = frozenset({"completed", "failed", "cancelled", "deleted", "orphan"})
SALVAGE = "salvage"
_TOMBSTONE = ("state", "git_stage", "git_head")  # (the script reads one whose first is set)


class CustodyStore(WorkStore, Protocol):
    def tombstone_rows(self, fields: Sequence[str], ids: Sequence[str]) -> list[list[Any]]: ...


@dataclass(frozen=True)
class Product:
    """One task's work product as found: its worktree (`path`), branch, kept refs, the task's
    state, and why each part stays (`tree_keep`, `branch_keep`; None: safe to remove)."""

    task: str
    path: Path | None  # its worktree folder (None: it has none)
    branch: str | None  # tt/<town>/<task> when it exists
    kept: tuple[str, ...]  # refs/tt/<town>/<task>/... (attempt-N, salvage)
    state: str  # the task's, or deleted (a tombstone), orphan (no task)
    dirty: int | None  # changed paths in the worktree (None: no worktree folder)
    ahead: int | None  # commits of its head not in base, and of base not in its head
    behind: int | None
    merged: bool  # every commit of its worktree and branch is in base
    missing: bool = False  # a registered worktree whose folder is gone
    stray: bool = False  # a folder under trees/ that is no worktree of the repository
    tree_keep: str | None = None
    branch_keep: str | None = None
    heads: tuple[str, ...] = ()  # the unmerged commits of its worktree and branch
    node: str = ""  # the node whose own clone its task's worktree is in ('': the leader's host)

    @property
    def verdict(self) -> str:
        return "keep" if self.reason else "safe"

    @property
    def reason(self) -> str:
        """Why something of it stays ('' when all of it may go)."""
        if self.tree_keep:
            return self.tree_keep
        if self.branch_keep:
            return f"branch kept: {self.branch_keep}" if self.path else self.branch_keep
        return ""

    def as_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "path": str(self.path) if self.path else None,
            "branch": self.branch,
            "kept_refs": list(self.kept),
            "state": self.state,
            "dirty": self.dirty,
            "ahead": self.ahead,
            "behind": self.behind,
            "merged": self.merged,
            "folder_missing": self.missing,
            "verdict": self.verdict,
            "reason": self.reason,
            "node": self.node or None,
        }


class _NoChecks:
    """Custody merges nothing: it runs no check and has none to stop."""

    def run(
        self, argv: Sequence[str], cwd: Path, log: Path, timeout: float, pidfile: Path
    ) -> CheckRun:
        raise TtError("custody runs no checks")

    def stop_orphan(self, pidfile: Path) -> None:
        raise TtError("custody runs no checks")


class _Deferred:
    """The store, opened on its first use: a town with no work product needs none (its
    embedded server is not started for nothing)."""

    def __init__(self, open_store: Callable[[], CustodyStore]) -> None:
        self._open = open_store
        self._store: CustodyStore | None = None

    def __call__(self) -> CustodyStore:
        if self._store is None:
            self._store = self._open()
        return self._store

    def git_record(self, task_id: str) -> dict[str, str]:
        return self().git_record(task_id)

    def note_git(self, task_id: str, token: str, **fields: str) -> bool:
        return self().note_git(task_id, token, **fields)

    def merge_enqueue(self, task_id: str, token: str = "") -> int:
        return self().merge_enqueue(task_id, token)

    def merge_queue(self) -> list[str]:
        return self().merge_queue()

    def merge_drop(self, task_id: str) -> None:
        self().merge_drop(task_id)

    def event(self, etype: str, **fields: str) -> None:
        self().event(etype, **fields)

    def tombstone_rows(self, fields: Sequence[str], ids: Sequence[str]) -> list[list[Any]]:
        return self().tombstone_rows(fields, ids)


def open_custody(
    state_dir: Path,
    town_root: Path,
    town: str,
    git: GitSettings,
    store: CustodyStore | Callable[[], CustodyStore],
) -> Custody:
    """The town's custody; `store` may be a function that opens it (called when needed)."""
    deferred = _Deferred(store if callable(store) else lambda: store)
    return Custody(WorkProducts(state_dir, town_root, town, git, deferred, _NoChecks()), deferred)


class Custody:
    def __init__(self, products: WorkProducts, store: CustodyStore) -> None:
        self.p, self.store = products, store
        self.repo, self.layout, self.git = products.repo, products.layout, products.git
        self.town = self.layout.town

    # -- what there is ---------------------------------------------------------------------
    def base(self) -> str:
        """Base as far as this clone knows it: the local branch, or the remote's (`[git]
        push`) where it is ahead of it (a node's own clone, whose local base stays behind)."""
        base = self.p.base_commit()
        if self.git.push:
            ahead = self.repo.resolve(tracking_ref(self.git.push, self.git.base))
            if ahead and ahead != base and self.repo.is_ancestor(base, ahead):
                return ahead
        return base

    def inventory(self) -> list[Product]:
        """Every work product of the town, by task name."""
        base = self.base()
        trees = self._trees()
        branch_prefix = f"refs/heads/{self.layout.branch('')}"
        branches = {
            ref.removeprefix(branch_prefix): commit
            for ref, commit in self.repo.refs(branch_prefix).items()
        }
        kept: dict[str, list[str]] = {}
        for ref in self.repo.refs(f"refs/tt/{self.town}/"):
            task = ref.removeprefix(f"refs/tt/{self.town}/").split("/", 1)[0]
            kept.setdefault(task, []).append(ref)
        names = sorted({*trees, *branches, *kept})
        return [
            self._product(t, trees.get(t), branches.get(t), kept.get(t, []), base) for t in names
        ]

    def _trees(self) -> dict[str, tuple[Path, str, bool, bool]]:
        """task → (folder, head commit, folder missing, stray) of the worktrees under trees/."""
        root = self.layout.trees.resolve()
        found: dict[str, tuple[Path, str, bool, bool]] = {}
        for w in self.repo.worktrees():
            if w.path.resolve().parent == root:
                found[w.path.name] = (w.path, w.head, w.prunable, False)
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                if folder.is_dir() and folder.name not in found:
                    found[folder.name] = (folder, "", False, True)
        return found

    def _record(self, task: str) -> tuple[str, dict[str, str]]:
        """The task's state and record: a pruned task's are its tombstone's (`deleted`); no
        task at all is `orphan`."""
        record = self.store.git_record(task)
        if record:
            return record.get("state", "") or "unknown", record
        rows = self.store.tombstone_rows(_TOMBSTONE, [task])
        if rows:
            values = zip(_TOMBSTONE, rows[0][1:], strict=True)
            return "deleted", {k: str(v) for k, v in values if v is not None}
        return "orphan", {}

    def _product(
        self,
        task: str,
        tree: tuple[Path, str, bool, bool] | None,
        branch_head: str | None,
        kept: list[str],
        base: str,
    ) -> Product:
        state, record = self._record(task)
        path, tree_head, missing, stray = tree if tree else (None, "", False, False)
        present = path is not None and not missing and not stray
        dirty = len(self.repo.dirty(path)) if present and path else None
        busy = self.repo.in_progress(path) if present and path else None
        heads = [h for h in (tree_head, branch_head) if h]
        unmerged = tuple(dict.fromkeys(h for h in heads if not self._merged(h, base, record)))
        # commits that only the worktree's HEAD holds (it left its branch): lost with it
        alone = tree_head in unmerged and not (
            branch_head and self.repo.is_ancestor(tree_head, branch_head)
        )
        ahead = behind = None
        if heads:
            ahead, behind = self.repo.ahead_behind(heads[0], base)
        tree_keep = branch_keep = None
        if state not in FINISHED:
            tree_keep = branch_keep = f"task {state}"
        else:
            not_in = ""
            if unmerged:
                count = max(self.repo.ahead_behind(h, base)[0] for h in unmerged)
                not_in = f"{count} commit(s) not in {self.git.base}"
            if stray and any(path.iterdir() if path else ()):
                tree_keep = "not a worktree of the repository: look inside, then remove it"
            elif dirty:
                tree_keep = f"{dirty} uncommitted change(s)"
            elif busy:
                tree_keep = f"a {busy} left half-done"
            elif alone:
                tree_keep = f"its HEAD alone holds {not_in}"
            elif not_in and state != "cancelled" and not missing:
                tree_keep = not_in
            branch_keep = not_in or None
            if state == "orphan" and (tree_keep or branch_keep):
                tree_keep = tree_keep and f"no task owns it; {tree_keep}"
                branch_keep = branch_keep and f"no task owns it; {branch_keep}"
        return Product(
            task=task,
            path=path,
            branch=self.layout.branch(task) if branch_head else None,
            kept=tuple(sorted(kept)),
            state=state,
            dirty=dirty,
            ahead=ahead,
            behind=behind,
            merged=not unmerged,
            missing=missing,
            stray=stray,
            tree_keep=tree_keep if path else None,
            branch_keep=branch_keep if branch_head else None,
            heads=unmerged,
            node=record.get("git_node", ""),
        )

    def _merged(self, commit: str, base: str, record: dict[str, str]) -> bool:
        """In base, or recorded merged (a rebase put copies of its commits there) or unchanged
        by the queue, for this commit or one before it."""
        if self.repo.is_ancestor(commit, base):
            return True
        recorded = record.get("git_head", "")
        return (
            record.get("git_stage") in ("merged", "unchanged")
            and bool(recorded)
            and self.repo.is_ancestor(commit, recorded)
        )

    # -- garbage collection ----------------------------------------------------------------
    def gc(self, dry_run: bool = False, force: bool = False) -> list[Action]:
        """Remove what is safe (with `force`, what is not, once saved); every part that stays
        is reported with its reason. A dry run changes nothing (and takes no lock)."""
        if dry_run:
            return self._collect(self.inventory(), True, force)
        with self.p.locked():
            return self._collect(self.inventory(), False, force)

    def _collect(self, products: list[Product], dry: bool, force: bool) -> list[Action]:
        from .sweep import Sweep  # (it imports this module's types)

        return [a for p in products for a in Sweep(self, p, dry, force).run()]
