"""git: the only door to git (the `git` CLI, run as a subprocess with argv lists); may import only
the base modules (errors). Used by `edit` (a new town's default name), `agents` (an agent's
worktree), `work` (a task's branch, worktree, commit and merge: `runner`, `steps`, `repo`) and
`control` (a town's source, see `control/identity.py`; the applied revision, `control/revision.py`;
a followed branch, `branch.py`).

Nothing else runs git: `tests/test_boundaries.py` fails on a `"git"` argv built anywhere else.
"""

from __future__ import annotations

from .branch import FetchFailed, fetch_branch, split_target, tracking_ref
from .cli import (
    GIT_TIMEOUT,
    Checkout,
    FilesAtHead,
    add_worktree,
    branch_of,
    checkout_of,
    commit_of,
    file_at,
    files_at_head,
    may_be_in_work_tree,
    normalize_remote,
)

__all__ = [
    "GIT_TIMEOUT",
    "Checkout",
    "FetchFailed",
    "FilesAtHead",
    "add_worktree",
    "branch_of",
    "checkout_of",
    "commit_of",
    "fetch_branch",
    "file_at",
    "files_at_head",
    "may_be_in_work_tree",
    "normalize_remote",
    "split_target",
    "tracking_ref",
]
