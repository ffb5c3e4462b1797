"""Process handling: model runs with tails, timeouts that kill the whole tree, detached agents."""

from __future__ import annotations

import io
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from reconciler.agents.prompt import judge
from reconciler.agents.supervisor import (
    is_alive,
    open_log,
    run_model,
    spawn_detached,
    stop_process,
)

PY = sys.executable


def wait_for(cond: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return True
        time.sleep(0.02)
    return False


def test_run_model_streams_and_keeps_tails(tmp_path: Path) -> None:
    log = io.BytesIO()
    code = (
        "import sys; print(sys.stdin.read().upper()); print('oops', file=sys.stderr); sys.exit(3)"
    )
    r = run_model(
        [PY, "-c", code], cwd=tmp_path, env=os.environ, stdin_text="hello", log=log, timeout=30
    )
    assert r.returncode == 3 and not r.timed_out
    assert r.stdout_tail == "HELLO" and r.stderr_tail == "oops"
    assert b"HELLO\n" in log.getvalue() and b"[err] oops\n" in log.getvalue()


def test_missing_binary_is_reported(tmp_path: Path) -> None:
    r = run_model(
        ["no-such-cli-xyz"],
        cwd=tmp_path,
        env=os.environ,
        stdin_text=None,
        log=io.BytesIO(),
        timeout=5,
    )
    assert r.launch is not None and r.returncode is None
    assert r.launch.text() == "launch_failed: model CLI not found: no-such-cli-xyz"
    assert r.launch.hint and "install no-such-cli-xyz" in r.launch.hint


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("not-executable", "cannot execute"),
        ("cwd-missing", "does not exist"),
        ("cwd-a-file", "is not a folder"),
        ("argv-too-long", "the command line is too long for the system"),
        ("nul-in-argv", "a NUL byte in the command line"),
        ("nul-in-env", "a NUL byte in the environment"),
        ("bad-env-name", "cannot start"),
    ],
)
def test_a_model_that_cannot_start_is_a_launch_failure_not_an_exception(
    tmp_path: Path, case: str, needle: str
) -> None:
    # Whatever exec or Popen refuses comes back as the reason, with no descriptor left open.
    script = tmp_path / "model"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    argv, cwd, env = [str(script)], tmp_path, dict(os.environ)
    if case == "not-executable":
        script.chmod(0o644)
    elif case == "cwd-missing":
        cwd = tmp_path / "gone"
    elif case == "cwd-a-file":
        cwd = tmp_path / "file"
        cwd.write_text("x")
    elif case == "argv-too-long":
        argv += ["x" * 200_000]  # over MAX_ARG_STRLEN (128 KiB) for one argument
    elif case == "nul-in-argv":
        argv += ["a\0b"]
    elif case == "nul-in-env":
        env["TT_X"] = "a\0b"
    elif case == "bad-env-name":
        env["A=B"] = "c"
    before = _open_fds()
    r = run_model(argv, cwd=cwd, env=env, stdin_text="prompt", log=io.BytesIO(), timeout=5)
    assert r.launch is not None and r.returncode is None, r
    assert r.launch.text().startswith("launch_failed: ") and needle in r.launch.reason
    assert _open_fds() == before


def test_timeout_kills_whole_tree(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    # The model starts a grandchild that ignores SIGTERM; both must be gone after the timeout.
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(600)\n"
    )
    r = run_model(
        [PY, "-c", code],
        cwd=tmp_path,
        env=os.environ,
        stdin_text=None,
        log=io.BytesIO(),
        timeout=1.5,
        grace=0.5,
    )
    assert r.timed_out and r.seconds < 30
    grandchild = int(pidfile.read_text())
    assert wait_for(lambda: not is_alive(grandchild), 5)


def test_should_stop_cancels(tmp_path: Path) -> None:
    started = time.monotonic()
    r = run_model(
        [PY, "-c", "import time; time.sleep(600)"],
        cwd=tmp_path,
        env=os.environ,
        stdin_text=None,
        log=io.BytesIO(),
        timeout=None,
        should_stop=lambda: time.monotonic() - started > 0.5,
        grace=0.5,
    )
    assert r.cancelled and not r.timed_out


def test_a_prompt_larger_than_the_pipe_is_fed_whole(tmp_path: Path) -> None:
    prompt = "x" * 1_000_000 + "\n"
    code = "import sys; print(len(sys.stdin.read()))"
    r = run_model(
        [PY, "-c", code],
        cwd=tmp_path,
        env=os.environ,
        stdin_text=prompt,
        log=io.BytesIO(),
        timeout=30,
    )
    assert r.returncode == 0 and r.stdout_tail == "1000001"


def test_a_model_that_ignores_a_large_prompt_does_not_hang(tmp_path: Path) -> None:
    r = run_model(
        [PY, "-c", "print('done')"],
        cwd=tmp_path,
        env=os.environ,
        stdin_text="y" * 1_000_000,
        log=io.BytesIO(),
        timeout=30,
    )
    assert r.returncode == 0 and r.stdout_tail == "done" and r.seconds < 10


def test_exit_is_seen_although_a_grandchild_holds_the_pipes(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "print('partial line without newline', end='', flush=True)\n"
    )
    log = io.BytesIO()
    r = run_model(
        [PY, "-c", code], cwd=tmp_path, env=os.environ, stdin_text=None, log=log, timeout=60
    )
    assert r.returncode == 0 and not r.timed_out and r.seconds < 10
    assert r.stdout_tail == "partial line without newline"
    assert log.getvalue() == b"partial line without newline"
    assert wait_for(lambda: not is_alive(int(pidfile.read_text())), 5)  # the straggler is killed


def test_output_keeps_its_lines_and_the_tail_is_bounded(tmp_path: Path) -> None:
    code = "import sys\nfor i in range(5000):\n    print(i); print('e', i, file=sys.stderr)\n"
    log = io.BytesIO()
    r = run_model(
        [PY, "-c", code], cwd=tmp_path, env=os.environ, stdin_text=None, log=log, timeout=30
    )
    lines = log.getvalue().splitlines()
    assert [x for x in lines if not x.startswith(b"[err] ")] == [b"%d" % i for i in range(5000)]
    assert [x for x in lines if x.startswith(b"[err] ")][-1] == b"[err] e 4999"
    # The first lines, then the last 40 (the middle is left out, and said to be).
    expected = [*map(str, range(5)), "…", *map(str, range(4960, 5000))]
    assert r.stdout_tail.splitlines() == expected
    assert len(r.stderr_tail) <= 4000 and r.stderr_tail.splitlines()[-1] == "e 4999"


def test_a_clis_first_error_line_survives_its_help_text(tmp_path: Path) -> None:
    """gemini prints "unknown flag" first and then 45 lines of help, and exits 1."""
    code = (
        "import sys\n"
        "print('Unknown argument: --frobnicate', file=sys.stderr)\n"
        "for i in range(45):\n"
        "    print(f'  --option-{i}  what option {i} does', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    r = run_model(
        [PY, "-c", code],
        cwd=tmp_path,
        env=os.environ,
        stdin_text=None,
        log=io.BytesIO(),
        timeout=30,
    )
    lines = r.stderr_tail.splitlines()
    assert lines[0] == "Unknown argument: --frobnicate"
    assert lines[5] == "…" and lines[-1] == "  --option-44  what option 44 does"
    assert len(lines) == 5 + 1 + 40 and len(r.stderr_tail) <= 4000
    verdict = judge(
        returncode=r.returncode,
        stdout_tail=r.stdout_tail,
        stderr_tail=r.stderr_tail,
        timed_out=False,
        timeout=None,
    )
    assert not verdict.ok and verdict.text.startswith("exit code 1: Unknown argument: --frobnicate")
    assert "--option-44" in verdict.text and len(verdict.text.splitlines()) == 3 + 1 + 10


def test_a_few_very_long_lines_keep_their_start_and_end(tmp_path: Path) -> None:
    code = "print('A' * 3000 + 'first-end')\nprint('B' * 3000 + 'last-end')\n"
    r = run_model(
        [PY, "-c", code],
        cwd=tmp_path,
        env=os.environ,
        stdin_text=None,
        log=io.BytesIO(),
        timeout=30,
    )
    assert r.stdout_tail.startswith("AAAA") and r.stdout_tail.endswith("last-end")
    assert "\n…\n" in r.stdout_tail and len(r.stdout_tail) <= 4000


def test_detached_process_outlives_and_stops(tmp_path: Path) -> None:
    pid, start = spawn_detached(
        [PY, "-c", "import time; print('up', flush=True); time.sleep(600)"],
        cwd=tmp_path,
        env=os.environ,
        log_path=tmp_path / "a.log",
    )
    try:
        assert os.getpgid(pid) == pid  # own session and group
        assert wait_for(lambda: (tmp_path / "a.log").read_text().startswith("up"))
        assert is_alive(pid, start) and not is_alive(pid, "0")
    finally:
        assert stop_process(pid, start, grace=2)
    assert not is_alive(pid, start)


def test_a_model_found_on_path_is_found_again_when_it_moves(tmp_path: Path) -> None:
    # Looked up on the PATH once, then run by its full path: moved since, it is looked up again.
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
    script = "#!/bin/sh\necho {}\n"
    (first / "tt-model-xyz").write_text(script.format("first"))
    (first / "tt-model-xyz").chmod(0o755)
    env = {**os.environ, "PATH": f"{first}:{second}:{os.environ['PATH']}"}

    def run() -> str:
        log = io.BytesIO()
        r = run_model(["tt-model-xyz"], cwd=tmp_path, env=env, stdin_text="p", log=log, timeout=30)
        assert r.returncode == 0, r
        return r.stdout_tail

    assert run() == "first" and run() == "first"
    (first / "tt-model-xyz").unlink()
    (second / "tt-model-xyz").write_text(script.format("second"))
    (second / "tt-model-xyz").chmod(0o755)
    assert run() == "second"
    encoded = {os.fsencode(k): os.fsencode(v) for k, v in env.items()}  # as an agent passes it
    r = run_model(
        ["tt-model-xyz"], cwd=tmp_path, env=encoded, stdin_text=None, log=io.BytesIO(), timeout=30
    )
    assert r.returncode == 0 and r.stdout_tail == "second"
    (second / "tt-model-xyz").unlink()
    r = run_model(
        ["tt-model-xyz"], cwd=tmp_path, env=env, stdin_text=None, log=io.BytesIO(), timeout=5
    )
    assert r.launch is not None and r.launch.reason == "model CLI not found: tt-model-xyz"


def test_logs_are_private(tmp_path: Path) -> None:
    # A model's prompt and output may hold secrets: its log is 0600, a folder made for it 0700.
    path = tmp_path / "logs" / "agent" / "t-1.log"
    with open_log(path) as log:
        log.write(b"line\n")
    with open_log(path) as log:  # appended to, not replaced
        log.write(b"more\n")
    assert path.read_bytes() == b"line\nmore\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


# What codex prints without credentials or network, forever (CLI-FACTS).
CODEX_LOOP = (
    "import sys, time\n"
    "print('OpenAI Codex v0.171.0', file=sys.stderr, flush=True)\n"
    "for i in range(1, 6):\n"
    "    print(f'ERROR: Reconnecting... {i}/5', file=sys.stderr, flush=True)\n"
    "while True:\n"
    "    print('ERROR: Reconnecting... waiting for network', file=sys.stderr, flush=True)\n"
    "    time.sleep(0.2)\n"
)


def test_a_cli_in_its_own_retry_loop_is_stalled_after_the_grace_and_its_tree_killed(
    tmp_path: Path,
) -> None:
    from reconciler.spec.presets import PRESETS

    codex = PRESETS["codex"]
    started = time.monotonic()
    r = run_model(
        [PY, "-c", CODEX_LOOP],
        cwd=tmp_path,
        env=os.environ,
        stdin_text=None,
        log=io.BytesIO(),
        timeout=600,
        grace=0.5,
        stall_patterns=codex.stall_patterns,
        stall_grace=1.0,
    )
    assert r.stalled == "ERROR: Reconnecting... waiting for network"
    assert not r.timed_out and time.monotonic() - started < 60
    verdict = judge(
        returncode=r.returncode,
        stdout_tail=r.stdout_tail,
        stderr_tail=r.stderr_tail,
        timed_out=False,
        timeout=600,
        stalled=r.stalled,
        stall_grace=1.0,
    )
    assert not verdict.ok and not verdict.permanent  # retryable
    assert verdict.text.startswith("stalled: the CLI kept retrying for 1s (ERROR: Reconnecting")


def test_a_retry_line_that_goes_away_in_time_is_no_stall(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "print('Reconnecting... waiting for network', file=sys.stderr, flush=True)\n"
        "time.sleep(0.3)\n"
        "print('connected; done')\n"
    )
    r = run_model(
        [PY, "-c", code],
        cwd=tmp_path,
        env=os.environ,
        stdin_text=None,
        log=io.BytesIO(),
        timeout=60,
        stall_patterns=(r"Reconnecting\.\.\. waiting for network",),
        stall_grace=30.0,
    )
    assert r.returncode == 0 and r.stalled is None and "connected; done" in r.stdout_tail
