"""What a town's state folder records about this host's side of the town, so `tt down` works
from `.tt/` alone (town.toml invalid or unreadable, the town's Redis away): the town's name and
Redis setting as last applied, a pid file per agent and watcher process started here, and the
down mark that tells watchers to exit and stay down until the next `tt apply` / `tt conductor`.

Files only: no process is checked or signalled here (that is `agents/supervisor`). Every file is
0600 in the 0700 `.tt/` (the Redis setting may hold a password, as town.toml or the env does).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .filelock import atomic_write_text
from .town import TownPaths

TOWN_RECORD = "town.json"
RUN_DIR = "run"
DOWN_MARK = "down"
AGENT, WATCHER = "agent", "watch"


@dataclass(frozen=True)
class Registered:
    """A process tt started and registered in the run folder: an agent or a watcher."""

    kind: str  # AGENT | WATCHER
    name: str  # the agent's name, or the watcher's pid
    pid: int
    start: str  # the kernel's start time of pid (so a reused pid is never taken for it)
    path: Path
    node: str = ""  # an agent's: the node that started it ('' the controller's host)


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _write_private(path: Path, text: str) -> None:
    _private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


# -- the town as last applied ---------------------------------------------------------------------
def remember_town(paths: TownPaths, name: str, redis: str) -> None:
    """Keep the town's name and Redis setting (what `tt down` needs without town.toml)."""
    text = json.dumps({"name": name, "redis": redis}) + "\n"
    path = paths.state_dir / TOWN_RECORD
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return
    _private_dir(paths.state_dir)
    if not path.exists():
        _write_private(path, "")
    atomic_write_text(path, text)  # keeps the 0600 of the file just made


def recorded_town(paths: TownPaths) -> tuple[str, str] | None:
    """(name, redis setting) as the last apply recorded them; None if never or unreadable."""
    try:
        data = json.loads((paths.state_dir / TOWN_RECORD).read_text())
        return str(data["name"]), str(data["redis"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- processes started on this host ---------------------------------------------------------------
def register(paths: TownPaths, kind: str, name: str, pid: int, start: str, node: str = "") -> None:
    text = f"{pid} {start or '-'} {node}".rstrip()
    _write_private(paths.state_dir / RUN_DIR / f"{kind}.{name}.pid", f"{text}\n")


def unregister(paths: TownPaths, kind: str, name: str, pid: int) -> None:
    """Remove the pid file of `name` if it still names `pid` (a newer process keeps its own)."""
    path = paths.state_dir / RUN_DIR / f"{kind}.{name}.pid"
    with contextlib.suppress(OSError):
        if path.read_text().split()[:1] == [str(pid)]:
            path.unlink()


@contextlib.contextmanager
def registered_as(paths: TownPaths, kind: str, pid: int, start: str) -> Iterator[None]:
    """This process's pid file (named by its pid) for as long as the block runs."""
    register(paths, kind, str(pid), pid, start)
    try:
        yield
    finally:
        unregister(paths, kind, str(pid), pid)


def registered(paths: TownPaths, kind: str) -> list[Registered]:
    found = []
    for path in sorted((paths.state_dir / RUN_DIR).glob(f"{kind}.*.pid")):
        try:
            pid, start, node = [*path.read_text().split(), "", ""][:3]
            start = "" if start == "-" else start
            name = path.name[len(kind) + 1 : -4]
            found.append(Registered(kind, name, int(pid), start, path, node))
        except (OSError, ValueError):
            continue
    return found


# -- down -----------------------------------------------------------------------------------------
def mark_down(paths: TownPaths) -> None:
    _write_private(paths.state_dir / DOWN_MARK, f"{time.time()!r}\n")


def clear_down(paths: TownPaths) -> None:
    with contextlib.suppress(FileNotFoundError):
        (paths.state_dir / DOWN_MARK).unlink()


def is_down(paths: TownPaths) -> bool:
    return (paths.state_dir / DOWN_MARK).exists()
