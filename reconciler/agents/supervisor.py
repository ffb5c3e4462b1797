"""The only module that starts, signals or waits for agent and model processes.

Agents run detached (own session, outlive `tt`); a model process runs in its own process group
so a timeout or a cancel kills its whole tree. Argv lists only: task text never reaches a shell.
Processes are identified by pid plus start time, so a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import TtError

TAIL_LINES = 40
TAIL_CHARS = 4000
# A CLI often says what went wrong first and then prints its whole help (gemini's "unknown flag"
# is followed by 45 lines): a failed attempt's error keeps the first lines too.
HEAD_LINES = 5
HEAD_CHARS = 1000


def proc_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces; fields follow the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else None


def is_alive(pid: int, start_time: str | None = None) -> bool:
    current = proc_start_time(pid)
    if current is None:
        return False
    return start_time is None or start_time == current


def spawn_detached(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path
) -> tuple[int, str]:
    """Start a long-lived process in its own session; returns (pid, start time)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=devnull,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return proc.pid, proc_start_time(proc.pid) or ""


def signal_group(pid: int, sig: int) -> bool:
    """Signal the process group led by `pid`; False when it is already gone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def kill_group(pid: int, start_time: str | None) -> bool:
    """SIGKILL the process group led by `pid` if that leader is still the same process (a model
    orphaned by its agent's death). True if a group was signalled."""
    return is_alive(pid, start_time) and signal_group(pid, signal.SIGKILL)


def stop_process(pid: int, start_time: str | None, grace: float) -> bool:
    """SIGTERM the group, wait `grace` seconds, then SIGKILL. True if it is gone."""
    if not is_alive(pid, start_time):
        return True
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not is_alive(pid, start_time):
            return True
        _reap(pid)
        time.sleep(0.05)
    signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and is_alive(pid, start_time):
        _reap(pid)
        time.sleep(0.02)
    return not is_alive(pid, start_time)


def _reap(pid: int) -> None:
    """Collect a child of ours that exited, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@dataclass(frozen=True)
class RunResult:
    returncode: int | None
    timed_out: bool
    cancelled: bool
    stdout_tail: str
    stderr_tail: str
    seconds: float
    not_found: str | None = None


def run_model(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin_text: str | None,
    log: IO[bytes],
    timeout: float | None,
    should_stop: Callable[[], bool] | None = None,
    grace: float = 3.0,
    on_start: Callable[[int], None] | None = None,
) -> RunResult:
    """Run one model process to completion, streaming its output into `log`.

    stdin is the prompt or /dev/null, never an inherited terminal (codex reads stdin to EOF).
    A timeout or `should_stop()` kills the whole process group. Both pipes are read here, with
    one selector (a pidfd tells the exit at once): no thread per run, no polling for the exit.
    """
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    except FileNotFoundError:
        return RunResult(None, False, False, "", "", 0.0, not_found=argv[0])
    except PermissionError as e:
        return RunResult(None, False, False, "", str(e), 0.0, not_found=argv[0])
    if on_start is not None:
        on_start(proc.pid)
    if stdin_text is not None and proc.stdin is not None:
        _feed(proc.stdin, stdin_text.encode())
    assert proc.stdout is not None and proc.stderr is not None
    out = _Stream(proc.stdout, b"", log)
    err = _Stream(proc.stderr, b"[err] ", log)
    pidfd = _pidfd(proc.pid)
    deadline = None if timeout is None else started + timeout
    timed_out = cancelled = False
    with selectors.DefaultSelector() as sel:
        for stream in (out, err):
            sel.register(stream.fd, selectors.EVENT_READ, stream)
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ, None)
        while proc.poll() is None:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                timed_out = True
            elif should_stop is not None and should_stop():
                cancelled = True
            if timed_out or cancelled:
                _kill_group(proc, grace)
                break
            # Without a pidfd, an exit behind pipes a grandchild holds open shows by polling.
            wait = 0.2 if pidfd is not None else 0.05
            _pump(sel, wait if deadline is None else min(wait, deadline - now))
        # The group may still hold the pipes open (a grandchild): kill stragglers, then read
        # what is left.
        signal_group(proc.pid, signal.SIGKILL)
        if pidfd is not None:
            sel.unregister(pidfd)
            os.close(pidfd)
        drain_until = time.monotonic() + 5
        while sel.get_map() and time.monotonic() < drain_until:
            _pump(sel, 0.2)
    for stream in (out, err):
        stream.close()
    return RunResult(
        returncode=proc.returncode,
        timed_out=timed_out,
        cancelled=cancelled,
        stdout_tail=_excerpt(out),
        stderr_tail=_excerpt(err),
        seconds=time.monotonic() - started,
    )


def _kill_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def _pidfd(pid: int) -> int | None:
    """A descriptor that turns readable when `pid` exits (Linux ≥ 5.3), else None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


class _Stream:
    """One output pipe of a model: lines go to the log (with a prefix) and to a tail."""

    CHUNK = 65536

    def __init__(self, pipe: IO[bytes], prefix: bytes, log: IO[bytes]) -> None:
        self.pipe, self.fd, self.prefix, self.log = pipe, pipe.fileno(), prefix, log
        self.partial = b""
        self.lines = 0
        self.head: list[str] = []
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def read(self) -> bool:
        """Read what is there; False at end of file."""
        data = os.read(self.fd, self.CHUNK)
        if not data:
            self._emit(self.partial)
            self.partial = b""
            return False
        data = self.partial + data
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) > self.CHUNK:
            cut = len(data)  # a very long line without a newline: pass it on in parts
        self.partial = data[cut:]
        self._emit(data[:cut])
        return True

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        lines = data.splitlines(keepends=True)
        self.log.write(b"".join(self.prefix + line for line in lines))
        self.log.flush()
        text = [line.decode(errors="replace") for line in lines]
        self.lines += len(text)
        self.head.extend(text[: HEAD_LINES - len(self.head)])
        self.tail.extend(text)

    def close(self) -> None:
        self.pipe.close()


def _pump(sel: selectors.BaseSelector, timeout: float) -> None:
    for key, _ in sel.select(max(0.0, timeout)):
        stream = key.data
        if stream is not None and not stream.read():
            sel.unregister(key.fd)


def _feed(stdin: IO[bytes], data: bytes) -> None:
    """Write the prompt without blocking; only a prompt larger than the pipe gets a thread."""
    fd = stdin.fileno()
    try:
        os.set_blocking(fd, False)
        try:
            written = os.write(fd, data)
        except BlockingIOError:
            written = 0
        os.set_blocking(fd, True)
    except OSError:  # the model exited without reading (EPIPE)
        written = len(data)
    if written >= len(data):
        with contextlib.suppress(OSError):
            stdin.close()
        return
    threading.Thread(target=_feed_rest, args=(stdin, data[written:]), daemon=True).start()


def _feed_rest(stdin: IO[bytes], data: bytes) -> None:
    try:
        stdin.write(data)
        stdin.close()
    except OSError:
        pass


def _excerpt(stream: _Stream) -> str:
    """What a stream said, bounded: all of it if short, else its first lines, "…", its last."""
    tail = "".join(stream.tail)
    before = stream.lines - len(stream.tail)  # lines that left the tail
    if before <= 0 and len(tail) <= TAIL_CHARS:
        return tail.strip()
    if before <= 0:  # a few long lines: the text is all in the tail
        head, rest = tail[:HEAD_CHARS], tail[HEAD_CHARS:]
        gap = True
    else:
        head, rest = "".join(stream.head[:before])[:HEAD_CHARS], tail
        gap = before > len(stream.head)
    room = TAIL_CHARS - len(head) - 3
    if len(rest) > room:
        rest, gap = rest[-room:], True
    return (head.rstrip() + ("\n…\n" if gap else "\n") + rest.lstrip()).strip()


def add_worktree(repo: Path, path: Path) -> None:
    """`git worktree add --detach PATH` in the town's repository (workdir = "worktree")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "--detach", str(path)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    if done.returncode != 0:
        raise TtError(
            f"cannot create a git worktree for the agent at {path}: {done.stderr.strip()}",
            hint='workdir = "worktree" needs the town folder to be inside a git repository '
            "with at least one commit",
        )
