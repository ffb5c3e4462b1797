"""Bringing a branch up to base in tt's own trees: checkout, rebase, merge, squash, fast-forward;
push and fetch (a node's own clone and the leader's meet at `[git] push`). A conflict is an
answer (`Step`), not an error.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from .runner import SLOW, GitRunner


@dataclass(frozen=True)
class Step:
    """A rebase or merge: done (`ok`), or stopped on a conflict in `conflicts` (aborted)."""

    ok: bool
    conflicts: tuple[str, ...] = ()
    message: str = ""


class Steps(GitRunner):
    def unmerged(self, tree: Path) -> list[str]:
        text = self.out("diff", "--name-only", "--diff-filter=U", "-z", cwd=tree)
        return sorted({p for p in text.split("\0") if p})

    # -- bringing a branch up to base ------------------------------------------------------
    def checkout_detached(self, tree: Path, commit: str, clean: bool = True) -> None:
        """`tree` detached at `commit`, its tracked files as there (only in tt's own merge
        worktree: local changes are thrown away), and with `clean` no untracked file left."""
        self.out("checkout", "-f", "-q", "--detach", commit, cwd=tree, timeout=SLOW)
        if clean:
            self.out("clean", "-ffdxq", cwd=tree, timeout=SLOW)

    def rebase(self, tree: Path, onto: str, commit: str | None = None) -> Step:
        """Rebase `commit` (it is checked out first, detached; default: what `tree` has
        checked out) onto `onto`; a conflict aborts it."""
        done = self.run("rebase", "-q", onto, *([commit] if commit else []), cwd=tree, timeout=SLOW)
        if done.returncode == 0:
            return Step(True)
        conflicts = tuple(self.unmerged(tree))
        self.run("rebase", "--abort", cwd=tree)
        return Step(False, conflicts, _said(done))

    def merge(
        self, tree: Path, refs: list[str], message: str, *, no_ff: bool = True, abort: bool = True
    ) -> Step:
        """Merge `refs` into what `tree` has checked out; a conflict is aborted (`abort`) or
        left in the tree with its markers."""
        args = ["merge", "-q", "--no-edit", "-m", message, *(["--no-ff"] if no_ff else []), *refs]
        done = self.run(*args, cwd=tree, timeout=SLOW)
        if done.returncode == 0:
            return Step(True)
        conflicts = tuple(self.unmerged(tree))
        if abort:
            self.run("merge", "--abort", cwd=tree)
        return Step(False, conflicts, _said(done))

    def squash_onto(self, tree: Path, base: str, work: str) -> Step:
        """Reset `tree` to `base` and bring `work`'s changes in as one uncommitted change
        (`merge --squash`): conflicts are left in the tree with their markers."""
        self.out("reset", "-q", "--hard", base, cwd=tree, timeout=SLOW)
        done = self.run("merge", "-q", "--squash", work, cwd=tree, timeout=SLOW)
        if done.returncode == 0:
            return Step(True)
        return Step(False, tuple(self.unmerged(tree)), _said(done))

    def reset_hard(self, tree: Path, commit: str, clean: bool = False) -> None:
        """`tree` (and the branch it has checked out) at `commit`; `clean`: no untracked file
        left either."""
        self.out("reset", "-q", "--hard", commit, cwd=tree, timeout=SLOW)
        if clean:
            self.out("clean", "-fdq", cwd=tree, timeout=SLOW)

    def fast_forward(self, tree: Path, branch: str, commit: str) -> Step:
        """Fast-forward `branch`, checked out in `tree` (the user's own), to `commit`: git
        refuses to overwrite local changes. Refused too when `tree` has switched to another
        branch meanwhile (a fast-forward would move that one instead)."""
        head = self.run("symbolic-ref", "-q", "HEAD", cwd=tree).stdout.strip()
        if head != f"refs/heads/{branch}":
            return Step(False, (), f"{tree} is no longer on {branch}")
        done = self.run("merge", "-q", "--ff-only", commit, cwd=tree, timeout=SLOW, hooks=True)
        return Step(done.returncode == 0, (), "" if done.returncode == 0 else _said(done))

    def push(
        self,
        remote: str,
        commit: str,
        ref: str,
        timeout: float = SLOW,
        force: bool = False,
        lease: str | None = None,
    ) -> Step:
        """`commit` to `ref` of `remote`; `force`: also over another history (a task branch a
        redo rewrote), `commit` '' deletes `ref` there. `lease`: a compare-and-swap, only if
        `ref` there is still that commit ('': only if it does not exist). A refusal's message
        holds git's own `! [rejected]` line."""
        spec = f"{'+' if force else ''}{commit}:{ref}"
        cas = [f"--force-with-lease={ref}:{lease}"] if lease is not None else []
        done = self.run("push", "-q", *cas, remote, spec, timeout=timeout)
        return Step(done.returncode == 0, (), "" if done.returncode == 0 else _refused(done))

    def fetch(self, remote: str, ref: str, into: str, timeout: float = SLOW) -> Step:
        """`ref` of `remote` into the local `into` (moved whatever it held: the remote's word
        is the newer); objects and that ref only, never a work tree."""
        args = ("fetch", "-q", "--no-tags", "--no-write-fetch-head", remote, f"+{ref}:{into}")
        done = self.run(*args, timeout=timeout)
        return Step(done.returncode == 0, (), "" if done.returncode == 0 else _said(done))


def _refused(done: subprocess.CompletedProcess[str]) -> str:
    """A push's refusal: git's `! [rejected]` lines and its error, without the hints after."""
    lines = [line.strip() for line in (done.stdout + "\n" + done.stderr).splitlines()]
    kept = [line for line in lines if line.startswith(("! ", "error:", "fatal:"))]
    return " ".join(kept) if kept else _said(done)


def _said(done: subprocess.CompletedProcess[str]) -> str:
    lines = (done.stdout.strip() + "\n" + done.stderr.strip()).strip().splitlines()
    return " ".join(line.strip() for line in lines[-4:])
