"""Before an apply with `[git]`: the repository and its base branch must exist, or the apply
refuses with the reason and changes nothing (the agents would otherwise fail every attempt)."""

from __future__ import annotations

from pathlib import Path

from ..errors import TtError
from ..spec.gitsettings import GitSettings


def preflight(town_root: Path, git: GitSettings) -> None:
    """Raise a `TtError` naming town.toml's [git] field when its repository or base is missing."""
    # (work products and their git layer, ~9 ms to import, only for a town with [git])
    from ..work.products import open_repository

    repo = open_repository(town_root, git)
    if repo.resolve(f"refs/heads/{git.base}") is None:
        branches = sorted(r.removeprefix("refs/heads/") for r in repo.refs("refs/heads/"))
        found = ", ".join(b for b in branches if not b.startswith("tt/")) or "none: no commit yet"
        raise TtError(
            f"town.toml [git] base: {git.base!r} is not a branch of {repo.top} (branches: {found})",
            hint="set [git] base to one of them, or create it (a first commit makes one)",
        )
