"""Whether a town's server runs: its socket's answer, its verified pid, and the server lock.

A pid is trusted only when it is this town's live server (its working folder is the town's data
dir), so a stale pid file is harmless. Signals nothing and starts nothing.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RedisUnavailable
from ..filelock import exclusive_lock
from ..town import TownPaths
from .location import LOCK_FILE, PID_FILE, socket_path
from .resp import ReplyError, request

if TYPE_CHECKING:
    import subprocess

POLL = 0.005

_HAS_PROC = os.path.isdir("/proc/self")
# Servers this process spawned: their liveness is asked of their Popen, which also reaps them.
# Other pids are never waited for, lest we steal the exit status of someone else's child.
children: dict[int, subprocess.Popen[bytes]] = {}


def ping(sock: Path) -> str:
    """`up`, `loading` (answers, not ready), `busy` (listens, does not answer) or `down`."""
    try:
        reply = request(sock, "PING")
    except ReplyError as e:
        if str(e).startswith("LOADING"):
            return "loading"
        raise RedisUnavailable(f"the town's server on {sock} refuses PING: {e}") from None
    except PermissionError as e:
        raise RedisUnavailable(
            f"cannot connect to the town's server on {sock}: {e.strerror}"
        ) from None
    except OSError:  # a timeout, or a reset while the server shuts down
        return "busy"
    if reply is None:
        return "down"
    return "up" if reply == "PONG" else "busy"


def is_running(paths: TownPaths) -> bool:
    return ping(socket_path(paths)) in ("up", "loading")


def alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (dead, not yet reaped) counts as gone."""
    child = children.get(pid)
    if child is not None:
        return child.poll() is None
    if _HAS_PROC:
        # An orphan is reaped by pid 1, which in a container may never do it: ask the kernel
        # for the state, which follows the command name (in parentheses, may hold spaces).
        try:
            raw = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            return False
        return raw[raw.rfind(b")") + 2 :][:1] not in (b"Z", b"X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_town_server(pid: int, paths: TownPaths) -> bool:
    """Whether `pid` is a live server of this town: its working folder is the town's data dir.

    This is what makes a stale pid file harmless after kill -9 or a reboot (the pid may now be
    anyone's). Without /proc (macOS) a live pid from our own pid file is trusted.
    """
    if not alive(pid):
        return False
    if not _HAS_PROC:
        return True
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return cwd == os.path.realpath(paths.data_dir)


def server_pid(paths: TownPaths) -> int | None:
    """The pid in `.tt/valkey.pid` if it is this town's live server."""
    try:
        pid = int((paths.state_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and is_town_server(pid, paths) else None


@contextlib.contextmanager
def server_lock(paths: TownPaths, deadline: float) -> Iterator[None]:
    """`flock` on `.tt/server.lock`: one process at a time checks, starts or stops the server."""
    with exclusive_lock(
        paths.state_dir / LOCK_FILE,
        max(0.0, deadline - time.monotonic()),
        mode=0o600,
        busy="starting or stopping the town's server",
        hint="retry; the lock is released when that process exits",
    ):
        yield
