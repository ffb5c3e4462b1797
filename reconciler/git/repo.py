"""The git operations of work products, on one repository: worktrees, branches, commits, rebase
and merge, compare-and-swap of a ref. Each is one or a few `git` commands (argv lists, no shell,
stdin closed, bounded time), with gc and hooks off and tt's identity as committer.

Pure git: no locks (callers serialise writes to the shared repository), no Redis, no policy.
A failing command raises `GitError` with git's own message, except where failing is an answer
(a conflict, an unknown ref, a CAS lost: those return values).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .runner import SLOW, GitError, GitRunner, identity
from .steps import Step, Steps

__all__ = ["SLOW", "GitError", "GitRunner", "Repo", "Step", "Worktree", "identity", "repository_of"]


@dataclass(frozen=True)
class Worktree:
    path: Path
    head: str  # commit ('' in a repository without one)
    branch: str | None  # short name; None when detached
    prunable: bool = False  # registered, but its folder is gone


class Repo(Steps):
    """One repository, reached from any of its work trees (`top`)."""

    def __init__(self, top: Path, author: str = "tt <tt@localhost>") -> None:
        super().__init__(top, author)
        self._paths: dict[tuple[str, tuple[str, ...]], list[Path]] = {}

    # -- refs ------------------------------------------------------------------------------
    def resolve(self, ref: str) -> str | None:
        """The commit `ref` names, or None."""
        done = self.run("rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
        return done.stdout.strip() or None if done.returncode == 0 else None

    def is_ancestor(self, commit: str, of: str, cwd: Path | None = None) -> bool:
        return self.run("merge-base", "--is-ancestor", commit, of, cwd=cwd).returncode == 0

    def merge_base(self, a: str, b: str) -> str | None:
        done = self.run("merge-base", a, b)
        return done.stdout.strip() or None if done.returncode == 0 else None

    def update_ref(self, ref: str, new: str, old: str | None) -> bool:
        """Move `ref` to `new` only if it still points at `old` (None: only if it does not
        exist); False when it moved meanwhile (the compare-and-swap was lost)."""
        done = self.run("update-ref", ref, new, old or "0" * 40)
        return done.returncode == 0

    def delete_ref(self, ref: str, old: str | None = None) -> bool:
        return self.run("update-ref", "-d", ref, *([old] if old else [])).returncode == 0

    def refs(self, prefix: str) -> dict[str, str]:
        """ref name → commit, for every ref under `prefix` (e.g. `refs/tt/town/`)."""
        text = self.out("for-each-ref", "--format=%(refname) %(objectname)", prefix)
        return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)

    def ahead_behind(self, branch: str, base: str) -> tuple[int, int]:
        """(commits on `branch` not on `base`, commits on `base` not on `branch`)."""
        text = self.out("rev-list", "--left-right", "--count", f"{branch}...{base}")
        ahead, behind = text.split()
        return int(ahead), int(behind)

    # -- worktrees -------------------------------------------------------------------------
    def worktrees(self) -> list[Worktree]:
        """Every work tree of the repository, the main one first (`git worktree list`)."""
        found: list[Worktree] = []
        for block in self.out("worktree", "list", "--porcelain").split("\n\n"):
            fields: dict[str, str] = {}
            for line in block.splitlines():
                key, _, value = line.partition(" ")
                fields[key] = value
            if "worktree" not in fields:
                continue
            branch = fields.get("branch")
            short = branch.removeprefix("refs/heads/") if branch else None
            found.append(
                Worktree(
                    Path(fields["worktree"]), fields.get("HEAD", ""), short, "prunable" in fields
                )
            )
        return found

    def add_worktree(self, path: Path, branch: str | None, start: str, *, new: bool) -> None:
        """A work tree at `path`: on a new branch from `start` (`new`), on the existing
        `branch`, or detached at `start` (`branch` None)."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.run("worktree", "prune")  # a folder deleted by hand leaves its registration
        if branch is None:
            args = ["--detach", str(path), start]
        elif new:
            args = ["-b", branch, str(path), start]
        else:
            args = [str(path), branch]
        self.out("worktree", "add", *args, timeout=SLOW)

    def remove_worktree(self, path: Path, force: bool = False) -> None:
        """`force`: also with changes, or the registration alone when its folder is gone."""
        self.out("worktree", "remove", *(["--force"] if force else []), str(path), timeout=SLOW)

    def dirty(self, tree: Path) -> list[str]:
        """Paths with changes in `tree` (tracked changes, untracked files, unmerged paths).
        Read only: no index refresh (a model at work in `tree` never meets tt's index.lock)."""
        text = self.out(
            "--no-optional-locks",
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            cwd=tree,
        )
        paths: list[str] = []
        entries = iter(text.split("\0"))
        for entry in entries:
            if len(entry) < 4:
                continue
            paths.append(entry[3:])
            if entry[0] in "RC":  # a rename's source follows
                next(entries, None)
        return paths

    def head(self, tree: Path) -> str:
        return self.out("rev-parse", "HEAD", cwd=tree).strip()

    def git_paths(self, tree: Path, *names: str) -> list[Path]:
        """Where `names` live in `tree`'s git folder (`rev-parse --git-path`, one call; asked
        once per tree and names: a worktree's git folder does not move)."""
        key = (str(tree), names)
        known = self._paths.get(key)
        if known is None:
            args = [x for n in names for x in ("--git-path", n)]
            out = self.out("rev-parse", "--path-format=absolute", *args, cwd=tree)
            known = self._paths[key] = [Path(line) for line in out.splitlines()]
        return known

    def clear_stale_lock(self, tree: Path, older_than: float = 2.0) -> bool:
        """Remove the `index.lock` a git process killed mid-write left in `tree` (git never
        removes it itself, and every later write fails on it). Only for trees tt owns, whose
        last writer is known dead; a lock younger than `older_than` seconds is left alone.
        True when one was removed."""
        return _unlink_stale(self.git_paths(tree, "index.lock")[0], older_than)

    def in_progress(self, tree: Path) -> str | None:
        """'merge' or 'rebase' when one was left half-done in `tree`, else None."""
        paths = self.git_paths(tree, "MERGE_HEAD", "rebase-merge", "rebase-apply")
        return _what_in_progress(paths)

    def recover(self, tree: Path) -> None:
        """What a step killed mid-way left in tt's own `tree` undone: git's index.lock (its
        writer is gone) and a half-done merge or rebase (aborted). One git call when clean."""
        lock, *rest = self.git_paths(
            tree, "index.lock", "MERGE_HEAD", "rebase-merge", "rebase-apply"
        )
        _unlink_stale(lock, 0.0)
        what = _what_in_progress(rest)
        if what:
            self.run(what, "--abort", cwd=tree)

    def branch_tip(self, branch: str) -> tuple[str | None, Path | None]:
        """(the commit `branch` points at, the work tree it is checked out in), one call."""
        text = self.out(
            "for-each-ref", "--format=%(objectname) %(worktreepath)", f"refs/heads/{branch}"
        )
        for line in text.splitlines():
            commit, _, where = line.partition(" ")
            return commit or None, Path(where) if where.strip() else None
        return None, None

    # -- commits ---------------------------------------------------------------------------
    def commit_all(self, tree: Path, message: str) -> str | None:
        """Stage every change in `tree` and commit it (hooks off); the new commit, or None when
        there was nothing to commit and no merge to conclude."""
        self.out("add", "-A", cwd=tree, timeout=SLOW)
        staged = self.run("diff", "--cached", "--quiet", cwd=tree).returncode != 0
        if not staged and self.in_progress(tree) != "merge":
            return None
        done = self.run(
            "commit", "--no-verify", "-q", "-F", "-", cwd=tree, input=message, timeout=SLOW
        )
        if done.returncode != 0:
            raise GitError(
                f"git commit failed in {tree}: {done.stderr.strip() or done.stdout.strip()}"
            )
        return self.head(tree)

    def snapshot(self, tree: Path, message: str) -> str | None:
        """A commit of everything in `tree`'s files (changed, new, with conflict markers; not
        what is ignored) on top of its HEAD, made through a temporary index: the tree's own
        index, HEAD and branch stay as they are. None when the files are those of HEAD."""
        head = self.head(tree)
        with tempfile.TemporaryDirectory(prefix="tt-snapshot-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self.out("read-tree", head, cwd=tree, env=env)
            self.out("add", "-A", cwd=tree, env=env, timeout=SLOW)
            written = self.out("write-tree", cwd=tree, env=env).strip()
        if written == self.out("rev-parse", f"{head}^{{tree}}", cwd=tree).strip():
            return None
        return self.out("commit-tree", written, "-p", head, "-m", message, cwd=tree).strip()

    def changed_files(self, since: str, until: str) -> list[str]:
        text = self.out("diff", "--name-only", "-z", since, until)
        return [p for p in text.split("\0") if p]

    def changed_since_fork(self, base: str, head: str) -> list[str]:
        """The files `head` changed since it left `base` (`diff base...head`, one call)."""
        text = self.out("diff", "--name-only", "-z", f"{base}...{head}")
        return [p for p in text.split("\0") if p]

    def diffstat(self, since: str, until: str) -> str:
        return self.out("diff", "--stat", since, until).rstrip()

    def commits(self, since: str | None, until: str, limit: int = 100) -> list[tuple[str, str]]:
        """(commit, subject) of the commits in `until` not in `since` (all of `until`'s history
        when None), newest first, at most `limit`."""
        span = f"{since}..{until}" if since else until
        text = self.out("log", f"--max-count={limit}", "--format=%H %s", span, "--")
        return [(c, subject) for c, _, subject in (x.partition(" ") for x in text.splitlines())]

    def subjects(self, commits: list[str]) -> dict[str, str]:
        """commit → its subject line, for each of `commits` the repository has (unknown ones are
        left out), 1,000 commits per command."""
        out: dict[str, str] = {}
        for start in range(0, len(commits), 1000):
            args = ("--no-walk=unsorted", "--ignore-missing", "--format=%H %s")
            text = self.out("log", *args, *commits[start : start + 1000], "--")
            pairs = (line.partition(" ") for line in text.splitlines())
            out.update((c, subject) for c, _, subject in pairs)
        return out

    def delete_branch(self, branch: str) -> bool:
        return self.run("branch", "-q", "-D", branch).returncode == 0


def _unlink_stale(path: Path, older_than: float) -> bool:
    try:
        if time.time() - path.stat().st_mtime < older_than:
            return False
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _what_in_progress(paths: list[Path]) -> str | None:
    """'merge' or 'rebase' from the paths of MERGE_HEAD, rebase-merge and rebase-apply."""
    merge_head, *rebase = paths
    if merge_head.exists():
        return "merge"
    return "rebase" if any(p.exists() for p in rebase) else None


def repository_of(folder: Path, author: str = "tt <tt@localhost>") -> Repo | None:
    """The repository `folder` is in (its main work tree's top), or None outside one."""
    try:
        done = GitRunner(folder, author).run(
            "rev-parse", "--path-format=absolute", "--git-common-dir"
        )
    except GitError:
        return None
    if done.returncode != 0 or not done.stdout.strip():
        return None
    common = Path(done.stdout.strip())
    top = common.parent if common.name == ".git" else common  # a bare repository: itself
    return Repo(top, author)
