"""Is a model's run still moving? Output bytes on its pipes, or a file changed in its working
folder; neither for `after` seconds and it is stalled (`supervisor` then kills its tree).

The folder check is cheap and bounded: the newest mtime under it (lstat, no symlink followed),
breadth first so the sources near the top are seen before deep trees, with `.git`, tt's own
state folder and well-known dependency and cache folders (node_modules, .venv, target…) left
out, at most `MAX_ENTRIES` entries and `SCAN_SECONDS` a look, looked at every few seconds
(every 30 s at most), never a hash. Output a stall pattern matched (the CLI's own retry loop)
is no progress: `pipes.Stream` leaves it out. It signals nothing and reads no file's content.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from ..spec.durations import format_duration

# Folders whose files a model does not write as its work: git's own, installed dependencies,
# caches and build trees of package managers (large, and churned by installs).
SKIPPED = frozenset(
    {
        ".git",
        "node_modules",
        ".venv",
        "venv",
        "__pycache__",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".gradle",
        ".cache",
        "target",
    }
)
MAX_ENTRIES = 200_000  # a folder larger than this is looked at this far only
SCAN_SECONDS = 0.25  # the longest one look takes (the supervisor's loop waits on it)
LONGEST_LOOK = 30.0  # seconds between two looks at the folder, at most


class Counted(Protocol):
    @property
    def progress(self) -> int: ...


def newest_mtime(
    folder: Path,
    skip: Path | None = None,
    limit: int = MAX_ENTRIES,
    budget: float = SCAN_SECONDS,
) -> float:
    """The newest mtime (ns) of `folder` and what is under it, breadth first, the `SKIPPED`
    folders and `skip` left out, over at most `limit` entries and `budget` seconds."""
    newest = 0
    seen = 0
    queue = deque([os.fspath(folder)])
    skipped = os.fspath(skip) if skip is not None else None
    give_up = time.monotonic() + budget
    while queue and seen < limit:
        top = queue.popleft()
        try:
            newest = max(newest, os.lstat(top).st_mtime_ns)
            entries = os.scandir(top)
        except OSError:
            continue
        with entries:
            for entry in entries:
                seen += 1
                if entry.name in SKIPPED or entry.path == skipped:
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        queue.append(entry.path)
                    else:
                        newest = max(newest, entry.stat(follow_symlinks=False).st_mtime_ns)
                except OSError:
                    continue
        if time.monotonic() > give_up:
            break
    return float(newest)


def stall_limit(task: object, agent: float | None, town: float) -> float | None:
    """How long an attempt may make no progress: the task's `stall_after` (from its spec's
    JSON), else its agent's, else the town's; None (no check) when the one that applies is 0
    (`"off"`)."""
    own = float(task) if isinstance(task, (int, float)) and not isinstance(task, bool) else None
    chosen = next((v for v in (own, agent) if v is not None and v >= 0), town)
    return chosen or None


class ProgressWatch:
    """`check(now)` returns what stopped moving once nothing moved for `after` seconds."""

    def __init__(
        self,
        after: float,
        streams: Sequence[Counted],
        folder: Path | None,
        now: float,
        skip: Path | None = None,
    ) -> None:
        self.after, self.streams, self.folder, self.skip = after, streams, folder, skip
        self.look_every = min(max(after / 10, 0.5), LONGEST_LOOK)
        self.output = self._output()
        # The folder is first looked at a `look_every` after the start (most runs are over
        # by then: no scan at all); a change before that counts from the start.
        self.mtime: float | None = None
        self.moved_at = now
        self.next_look = now + self.look_every

    def _output(self) -> int:
        return sum(s.progress for s in self.streams)

    def _mtime(self) -> float:
        return 0.0 if self.folder is None else newest_mtime(self.folder, self.skip)

    def _files_moved(self) -> bool:
        mtime = self._mtime()
        moved = self.mtime is not None and mtime != self.mtime
        self.mtime = mtime
        return moved

    def check(self, now: float) -> str | None:
        output = self._output()
        if output != self.output:
            self.output, self.moved_at = output, now
        elif self.folder is not None and now >= self.next_look:
            self.next_look = now + self.look_every
            if self._files_moved():
                self.moved_at = now
        if now - self.moved_at < self.after:
            return None
        if self.folder is not None and self._files_moved():  # one last look before the kill
            self.moved_at = now
            return None
        quiet = format_duration(self.after)
        if self.folder is None:
            return f"no output for {quiet}"
        return f"no output and no file change for {quiet}"
