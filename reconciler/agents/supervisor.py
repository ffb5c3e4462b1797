"""The only module that starts, signals or waits for agent and model processes.

Agents run detached (own session, outlive `tt`); a model process runs in its own process group
so a timeout or a cancel kills its whole tree. Argv lists only: task text never reaches a shell.
Processes are identified by pid plus start time, so a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .launch import Launch, explain
from .pipes import StallWatch, Stream, excerpt, feed, pump
from .progress import ProgressWatch


def proc_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None if it is gone."""
    try:  # raw calls: this runs for every model an agent starts
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            stat = os.read(fd, 4096).decode(errors="replace")
        finally:
            os.close(fd)
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


def open_log(path: Path) -> IO[bytes]:
    """`path` opened to append, unbuffered (each write reaches `tt logs -f` at once); a new log
    is 0600 and a new folder for it 0700: a model's prompt and output are private."""
    try:
        return open(path, "ab", buffering=0, opener=_private)
    except FileNotFoundError:
        path.parent.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        return open(path, "ab", buffering=0, opener=_private)


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def spawn_detached(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path
) -> tuple[int, str]:
    """Start a long-lived process in its own session; returns (pid, start time)."""
    with open_log(log_path) as log, open(os.devnull, "rb") as devnull:
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


def terminate(pid: int, start_time: str | None, grace: float) -> bool:
    """SIGTERM one process (not its group: a watcher in the foreground shares its shell's),
    wait `grace` seconds, then SIGKILL it. True if it is gone."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not is_alive(pid, start_time):
            return True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and is_alive(pid, start_time):
            _reap(pid)
            time.sleep(0.02)
    return not is_alive(pid, start_time)


def _reap(pid: int) -> None:
    """Collect a child of ours that exited, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


# A model's environment, as str or already encoded (exec wants bytes; an agent encodes once).
Env = Mapping[str, str] | Mapping[bytes, bytes]


@dataclass(frozen=True)
class RunResult:
    """How one model process ended: its code, the tails of its output, its time."""

    returncode: int | None
    timed_out: bool
    cancelled: bool
    stdout_tail: str
    stderr_tail: str
    seconds: float
    launch: Launch | None = None  # the model could not be started: why (nothing ran)
    stalled: str | None = None  # the line of the CLI's own retry loop it was killed in
    no_progress: str | None = None  # what stopped moving, when it was killed for it
    stdout: str = ""  # all of stdout (its last `keep_stdout` bytes), when asked for


def run_model(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Env,
    stdin_text: str | None,
    log: IO[bytes],
    timeout: float | None,
    should_stop: Callable[[], bool] | None = None,
    grace: float = 3.0,
    on_start: Callable[[int], None] | None = None,
    stall_patterns: Sequence[str] = (),
    stall_grace: float = 60.0,
    keep_stdout: int = 0,
    stall_after: float | None = None,
    watch: Path | None = None,
    watch_skip: Path | None = None,
) -> RunResult:
    """Run one model process to completion, streaming its output into `log`.

    stdin is the prompt or /dev/null, never an inherited terminal (codex reads stdin to EOF).
    A timeout, `should_stop()` or a stall (a line matching `stall_patterns`, the CLI's own
    retry loop, and still running `stall_grace` seconds later) kills the whole process group,
    and so does no progress for `stall_after` seconds: no output (but stall-pattern lines) and
    no file change under `watch` (`watch_skip` and `.git` left out).
    `keep_stdout` > 0 keeps all of stdout (its last that many bytes) for a parser of the CLI's
    JSON (`RunResult.stdout`).
    Both pipes are read here, with one selector (a pidfd tells the exit at once): no thread per
    run, no polling for the exit.
    """
    started = time.monotonic()
    # Pipes of our own (raw descriptors, no file objects): the child's ends close here once
    # it has them.
    out_fd, out_child = os.pipe()
    err_fd, err_child = os.pipe()
    in_child, in_fd = os.pipe() if stdin_text is not None else (subprocess.DEVNULL, -1)
    try:
        proc = _popen(argv, cwd=cwd, env=env, stdin=in_child, stdout=out_child, stderr=err_child)
    except (OSError, ValueError, TypeError) as e:
        # exec refused it (ENOENT, EACCES, E2BIG, a bad cwd) or Popen did (a NUL byte, a bad
        # env name): nothing ran, the attempt fails with the reason.
        for fd in (out_fd, err_fd, in_fd):
            if fd >= 0:
                os.close(fd)
        launch = explain(e, argv, str(cwd), env)
        return RunResult(None, False, False, "", "", 0.0, launch=launch)
    finally:
        for fd in (out_child, err_child, in_child):
            if fd >= 0:
                os.close(fd)
    if on_start is not None:
        on_start(proc.pid)
    if stdin_text is not None:
        feed(in_fd, stdin_text.encode())
    out = Stream(out_fd, b"", log, keep=keep_stdout, idle=stall_patterns)
    err = Stream(err_fd, b"[err] ", log, idle=stall_patterns)
    pidfd = _pidfd(proc.pid)
    deadline = None if timeout is None else started + timeout
    timed_out = cancelled = False
    stalled: str | None = None
    no_progress: str | None = None
    stall = StallWatch(stall_patterns, stall_grace, (out, err)) if stall_patterns else None
    progress = None
    if stall_after is not None:
        progress = ProgressWatch(stall_after, (out, err), watch, started, watch_skip)
    with _Selector() as sel:
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
            else:
                stalled = stall.check(now) if stall is not None else None
                if stalled is None and progress is not None:
                    no_progress = progress.check(now)
            if timed_out or cancelled or stalled is not None or no_progress is not None:
                _kill_group(proc, grace)
                break
            # Without a pidfd, an exit behind pipes a grandchild holds open shows by polling.
            wait = 0.2 if pidfd is not None else 0.05
            pump(sel, wait if deadline is None else min(wait, deadline - now))
        # The group may still hold the pipes open (a grandchild): kill stragglers, then read
        # what is left.
        signal_group(proc.pid, signal.SIGKILL)
        if pidfd is not None:
            sel.unregister(pidfd)
            os.close(pidfd)
        drain_until = time.monotonic() + 5
        while sel.get_map() and time.monotonic() < drain_until:
            pump(sel, 0.2)
    for stream in (out, err):
        stream.close()
    return RunResult(
        returncode=proc.returncode,
        timed_out=timed_out,
        cancelled=cancelled,
        stdout_tail=excerpt(out),
        stderr_tail=excerpt(err),
        seconds=time.monotonic() - started,
        stalled=stalled,
        no_progress=no_progress,
        stdout=out.kept.decode(errors="replace"),
    )


def _kill_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


# poll(2) needs no descriptor of its own for three pipes (epoll: create, 3 ctl, close per run).
_Selector = getattr(selectors, "PollSelector", selectors.DefaultSelector)
# Where a bare command name was found on a PATH (Popen searches PATH in Python, and the child
# tries execve in each folder, on every run otherwise).
_found: dict[tuple[str, str], str] = {}


def _popen(
    argv: Sequence[str], *, cwd: Path, env: Env, stdin: int, stdout: int, stderr: int
) -> subprocess.Popen[bytes]:
    """Start `argv` in a session of its own (the group a timeout kills). No preexec_fn, so
    CPython can vfork; a bare command name is looked up on the model's PATH once."""
    name = argv[0]
    either: Mapping[Any, Any] = env
    path = either.get("PATH")
    if path is None:
        with contextlib.suppress(TypeError):  # os.environ takes str keys only
            path = either.get(b"PATH")
    key = (name, os.fsdecode(path) if path is not None else os.defpath)
    executable = _found.get(key)
    try:
        proc = subprocess.Popen(
            list(argv),
            executable=executable,
            cwd=cwd,
            env=env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:
        if executable is None:
            raise
        del _found[key]  # moved or replaced since: search the PATH again
        return _popen(argv, cwd=cwd, env=env, stdin=stdin, stdout=stdout, stderr=stderr)
    if executable is None and os.sep not in name:
        found = shutil.which(name, path=key[1])
        if found is not None and os.path.isabs(found):
            _found[key] = found
    return proc


def _pidfd(pid: int) -> int | None:
    """A descriptor that turns readable when `pid` exits (Linux ≥ 5.3), else None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None
