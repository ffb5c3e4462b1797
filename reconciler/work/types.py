"""The values the work products pass around (what an attempt's work came to, how a check ran)
and what they need from outside (the store, a check runner): no logic here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol


class CheckRun(NamedTuple):
    returncode: int | None  # None: killed (timed out or stopped)
    timed_out: bool
    tail: str  # the end of its output


class CheckRunner(Protocol):
    """Runs the merge queue's checks (`agents` passes its supervisor's runner in)."""

    def run(
        self, argv: Sequence[str], cwd: Path, log: Path, timeout: float, pidfile: Path
    ) -> CheckRun:
        """A check to its end, or to `timeout` seconds (its whole process tree killed then);
        its process group leader is named in `pidfile` while it runs."""
        ...

    def stop_orphan(self, pidfile: Path) -> None:
        """Kill the check `pidfile` names, left running by a worker killed mid-merge."""
        ...


class WorkStore(Protocol):
    def git_record(self, task_id: str) -> dict[str, str]: ...
    def note_git(self, task_id: str, token: str, **fields: str) -> bool: ...
    def merge_enqueue(self, task_id: str, token: str = "") -> int: ...
    def merge_queue(self) -> list[str]: ...
    def merge_drop(self, task_id: str) -> None: ...
    def event(self, etype: str, **fields: str) -> None: ...


@dataclass(frozen=True)
class Finished:
    """How the work product of an attempt ended: `ok` (completed), else the error; `stopped`:
    the worker is stopping (the task goes back, nothing counted)."""

    ok: bool
    text: str
    permanent: bool = False
    stopped: bool = False


@dataclass(frozen=True)
class Started:
    """Where the model runs (`tree`), what its prompt must add (`note`), or why it need not run:
    `result` (its commit is waiting for the merge) or `done` (the attempt is over already)."""

    tree: Path
    note: str | None = None
    result: str | None = None
    done: Finished | None = None
