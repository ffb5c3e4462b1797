"""The only module that starts, signals or waits for agent and model processes.

Agents run detached (own session, outlive `tt`); a model process runs in its own process group
so a timeout or a cancel kills its whole tree. Argv lists only: task text never reaches a shell.
Processes are identified by pid plus start time, so a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import TtError

TAIL_LINES = 40
TAIL_CHARS = 4000


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
    A timeout or `should_stop()` kills the whole process group.
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
    lock = threading.Lock()
    tails: dict[str, deque[str]] = {
        "out": deque(maxlen=TAIL_LINES),
        "err": deque(maxlen=TAIL_LINES),
    }
    pumps = [
        threading.Thread(
            target=_pump, args=(proc.stdout, b"", log, lock, tails["out"]), daemon=True
        ),
        threading.Thread(
            target=_pump, args=(proc.stderr, b"[err] ", log, lock, tails["err"]), daemon=True
        ),
    ]
    for t in pumps:
        t.start()
    if stdin_text is not None and proc.stdin is not None:
        threading.Thread(target=_feed, args=(proc.stdin, stdin_text), daemon=True).start()
    deadline = None if timeout is None else started + timeout
    timed_out = cancelled = False
    while True:
        try:
            proc.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            pass
        if deadline is not None and time.monotonic() >= deadline:
            timed_out = True
        elif should_stop is not None and should_stop():
            cancelled = True
        if timed_out or cancelled:
            _kill_group(proc, grace)
            break
    # The group may still hold the pipes open (a grandchild); kill stragglers before joining.
    signal_group(proc.pid, signal.SIGKILL)
    for t in pumps:
        t.join(timeout=5)
    return RunResult(
        returncode=proc.returncode,
        timed_out=timed_out,
        cancelled=cancelled,
        stdout_tail=_tail(tails["out"]),
        stderr_tail=_tail(tails["err"]),
        seconds=time.monotonic() - started,
    )


def _kill_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def _pump(
    stream: IO[bytes] | None, prefix: bytes, log: IO[bytes], lock: threading.Lock, tail: deque[str]
) -> None:
    if stream is None:
        return
    for line in iter(stream.readline, b""):
        with lock:
            log.write(prefix + line)
            log.flush()
        tail.append(line.decode(errors="replace"))
    stream.close()


def _feed(stdin: IO[bytes], text: str) -> None:
    try:
        stdin.write(text.encode())
        stdin.close()
    except (BrokenPipeError, OSError):
        pass


def _tail(lines: deque[str]) -> str:
    return "".join(lines)[-TAIL_CHARS:].strip()


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
