"""work: a task's work product under `[git]`: its branch and worktree, the commit of what the model
left, the merge queue with checks, custody of what is not merged. May import `store`, `spec`,
`git` and the base; never `agents`/`control` (a check's process runner is passed in).
"""

from __future__ import annotations

from .layout import Layout, ignore_state
from .products import CheckRun, CheckRunner, Finished, Started, WorkProducts

__all__ = [
    "CheckRun",
    "CheckRunner",
    "Finished",
    "Layout",
    "Started",
    "WorkProducts",
    "ignore_state",
]
