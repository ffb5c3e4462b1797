"""`[git]` of town.toml as a frozen value: where finished work lands and how it gets there.

Its presence turns git work products on (a branch and worktree per task, a merge queue with
checks); without it nothing about git changes. Built only by `loader`; no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class MergeMode(str, Enum):
    QUEUE = "queue"  # a task completes when its branch is merged into base
    MANUAL = "manual"  # a task completes when its branch has its commits (`tt merge` later)


class Strategy(str, Enum):
    REBASE = "rebase"
    MERGE = "merge"


class OnConflict(str, Enum):
    RESOLVE = "resolve"  # the next attempt resolves the markers in the task's worktree
    REDO = "redo"  # the branch restarts from base (old commits kept under refs/tt/...)


DEFAULT_AUTHOR = "tt <tt@localhost>"


@dataclass(frozen=True)
class GitSettings:
    """`[git]` of town.toml: each task's branch, worktree and merge (work products)."""

    repo: str = "."  # relative to the town folder (or absolute)
    base: str = "main"
    merge: MergeMode = MergeMode.QUEUE
    strategy: Strategy = Strategy.REBASE
    on_conflict: OnConflict = OnConflict.RESOLVE
    checks: tuple[str, ...] = ()  # each run as `sh -c CHECK` in a clean merge worktree
    check_timeout: float = 600.0
    push: str | None = None  # a remote: base pushed after each merge (manual: task branches)
    author: str = DEFAULT_AUTHOR
    keep_branches: bool = False
