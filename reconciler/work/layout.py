"""Where a town's work products live: branch and ref names, worktree folders, lock files.

Worktrees sit under the town's state folder (`.tt/git/trees/TASK`), which carries its own
`.gitignore` so none of it ever shows in `git status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    state_dir: Path
    town: str

    @property
    def root(self) -> Path:
        return self.state_dir / "git"

    def tree(self, task: str) -> Path:
        return self.root / "trees" / task

    @property
    def trees(self) -> Path:
        return self.root / "trees"

    @property
    def merge_tree(self) -> Path:
        """tt's own clean checkout where the queue brings a branch up to base and runs checks."""
        return self.root / "merge"

    @property
    def merge_used(self) -> Path:
        """Present while the merge worktree may hold what checks left (cleaned before reuse)."""
        return self.root / "merge.used"

    @property
    def repo_lock(self) -> Path:
        """Held for every write to the shared repository (worktrees, refs, commits)."""
        return self.root / "repo.lock"

    @property
    def queue_lock(self) -> Path:
        """Held by whoever works the merge queue: one merge at a time."""
        return self.root / "queue.lock"

    @property
    def check_pid(self) -> Path:
        """The running check's process group leader ("PID START"), while one runs."""
        return self.root / "check.pid"

    def branch(self, task: str) -> str:
        return f"tt/{self.town}/{task}"

    def kept_ref(self, task: str, what: str) -> str:
        """Where replaced work is kept: `attempt-N` (a redo), `salvage` (gc --force)."""
        return f"refs/tt/{self.town}/{task}/{what}"

    def check_log(self, task: str, attempt: int) -> Path:
        return self.state_dir / "logs" / "merge" / f"{task}-{attempt}.log"


def ignore_state(state_dir: Path) -> None:
    """`.tt/.gitignore` with `*`: the state folder never shows in `git status`, whether or not
    the town's own .gitignore names it."""
    path = state_dir / ".gitignore"
    if not path.exists():
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.write_text("# tt's state: never committed\n*\n")
