"""Starting a town's server on demand, detached, so it outlives the command that started it.

The common case (it answers PING) takes no lock; otherwise one process under the server lock
spawns it with a config it writes each time, and every other waits for it to answer.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RedisUnavailable
from ..town import TownPaths, make_private_tree
from .binary import find_binary
from .liveness import POLL, children, ping, server_lock, server_pid
from .location import CONFIG_FILE, LOG_FILE, PID_FILE, make_private_dir, socket_path

if TYPE_CHECKING:
    import subprocess

START_TIMEOUT = 30.0  # generous: a big AOF loads before the server answers PING


def ensure_running(paths: TownPaths, timeout: float = START_TIMEOUT) -> str:
    """Start the town's server unless it answers already; returns its `unix://` URL.

    The common case (it answers PING) takes no lock and costs one unix-socket round trip.
    """
    sock = socket_path(paths)
    if ping(sock) == "up":
        return f"unix://{sock}"
    deadline = time.monotonic() + timeout
    with server_lock(paths, deadline):
        _start_locked(paths, sock, deadline, timeout)
    return f"unix://{sock}"


def _start_locked(paths: TownPaths, sock: Path, deadline: float, timeout: float) -> None:
    proc: subprocess.Popen[bytes] | None = None
    while True:
        state = ping(sock)
        if state == "up":
            return
        if proc is not None:
            code = proc.poll()
            if code is not None:
                raise RedisUnavailable(
                    f"the town's server exited at start (exit code {code}): {_log_tail(paths)}",
                    hint=f"see {paths.state_dir / LOG_FILE}",
                )
        elif state == "down" and server_pid(paths) is None:
            proc = _spawn(paths, sock)
        # else: a server of this town is starting or loading its data; wait for it.
        if time.monotonic() >= deadline:
            if state != "loading" and proc is not None:
                proc.terminate()  # ours and hung: leave nothing half-started behind
            raise RedisUnavailable(
                f"the town's server did not answer on {sock} within {timeout:g} s"
                + (" (still loading its data)" if state == "loading" else ""),
                hint=f"see {paths.state_dir / LOG_FILE}; `tt server stop` and retry",
            )
        time.sleep(POLL)


def _spawn(paths: TownPaths, sock: Path) -> subprocess.Popen[bytes]:
    import subprocess

    binary = find_binary()
    paths.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if _left_open(paths):
        make_private_tree(paths.state_dir)
    if sock != Path(os.path.abspath(paths.socket)):
        make_private_dir(sock.parent)
        _record_link(paths.socket, sock)
    conf = paths.state_dir / CONFIG_FILE
    tmp = conf.with_name(f".{CONFIG_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(_config_text(paths, sock))
    os.replace(tmp, conf)
    # A pid file left by kill -9 would name a dead (or recycled) pid until the new server writes.
    with contextlib.suppress(FileNotFoundError):
        (paths.state_dir / PID_FILE).unlink()
    log_fd = os.open(paths.state_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(
            [str(binary), str(conf)],
            cwd=paths.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command and its terminal's Ctrl-C
            umask=0o077,  # its pid file, AOF folder and files: private, as all of `.tt/`
            close_fds=True,  # above all the server lock: the server must not inherit it
            # The server outlives this command: keep its secrets (API keys) out of its environ.
            env={"PATH": os.environ.get("PATH", os.defpath)},
        )
    finally:
        os.close(log_fd)
    children[proc.pid] = proc
    return proc


def _left_open(paths: TownPaths) -> bool:
    """Whether an older tt left this `.tt/` (or what it and its server wrote first: the AOF
    folder, the pid file) open to others: then all of it is made private."""
    for path in (paths.state_dir, paths.data_dir / "appendonlydir", paths.state_dir / PID_FILE):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mode & 0o077:
                return True
    return False


def _config_text(paths: TownPaths, sock: Path) -> str:
    def quoted(path: Path) -> str:
        escaped = os.path.abspath(path).replace("\\", "\\\\").replace('"', '\\"')
        return '"' + escaped.replace("\n", "\\n") + '"'

    return "\n".join(
        [
            "# Written by tt each time it starts the town's server; edits are overwritten.",
            "port 0",  # no TCP at all: only the owner can reach the unix socket
            f"unixsocket {quoted(sock)}",
            "unixsocketperm 700",
            f"dir {quoted(paths.data_dir)}",
            f"pidfile {quoted(paths.state_dir / PID_FILE)}",
            "daemonize no",  # tt detaches it; staying its parent shows an early exit at once
            "appendonly yes",
            "appendfsync everysec",
            'save ""',  # the AOF is the durable copy; RDB snapshots would only repeat it
            "",
        ]
    )


def _record_link(link: Path, target: Path) -> None:
    """Point `.tt/redis.sock` at the short socket, so people and tools find it in the town."""
    with contextlib.suppress(OSError):
        if os.readlink(link) == str(target):
            return
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _log_tail(paths: TownPaths) -> str:
    try:
        lines = (paths.state_dir / LOG_FILE).read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    last = [line for line in lines if line.strip()][-1:]
    return last[0].strip() if last else "no log"
