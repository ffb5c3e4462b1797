"""The private copy of a followed branch's files (`.tt/follow/`, written by `follow.py`) as town
paths, and the refusal of a local-file change while the town follows a branch. Kept apart from
follow.py so that `Session` can read the desired state from the copy without the follower.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import TtError
from ..town import TASKS_FILE, TOWN_FILE, TownPaths

COPY = "follow"  # the copy's folder under the state folder


@dataclass(frozen=True)
class CopyPaths(TownPaths):
    """A town whose two files are read from `files` (the followed copy, or a commit's files
    being checked); its state stays in the town's own `.tt/`."""

    files: Path = Path()

    @property
    def town_file(self) -> Path:
        return self.files / TOWN_FILE

    @property
    def tasks_file(self) -> Path:
        return self.files / TASKS_FILE


def copy_dir(paths: TownPaths) -> Path:
    return paths.state_dir / COPY


def copy_paths(paths: TownPaths) -> CopyPaths | None:
    """The town's followed copy as paths, None while there is none (no valid commit staged)."""
    copy = copy_dir(paths)
    return CopyPaths(paths.root, files=copy) if copy.joinpath(TOWN_FILE).is_file() else None


class Following(TtError):
    """A change of the local files (an apply of them, an edit verb) while the town follows a
    branch: the watcher would undo it, or it would fight the branch."""

    def __init__(self, branch: str) -> None:
        super().__init__(
            f"this town follows {branch}: commit and push the change there "
            "(or stop following: run the watcher without --follow)"
        )
