"""The real agent CLIs (claude, codex, auggie; gemini and copilot where found), not logged in, as
the models of tasks: each task ends `failed` with the CLI's own error text, within its timeout,
and no process is left behind.

The CLIs come from npm. They are looked up in the folder named by the environment variable
TT_TEST_CLI_BIN when it is set (`.ci/run` installs them into a cache and sets it to that cache's
`node_modules/.bin`), else on PATH. Where one is missing the test says which and skips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

NEEDED = ("claude", "codex", "auggie")
TIMEOUT_S = 15
BIN_ENV = "TT_TEST_CLI_BIN"


def find_clis(environ: Mapping[str, str]) -> dict[str, Path]:
    """Each needed CLI that is found: under $TT_TEST_CLI_BIN when it is set, else on PATH."""
    search = environ.get(BIN_ENV) or environ.get("PATH", "")
    found = {c: shutil.which(c, path=search) for c in NEEDED}
    return {c: Path(hit) for c, hit in found.items() if hit}


CLIS = find_clis(os.environ)
pytestmark = pytest.mark.integration
needs_clis = pytest.mark.skipif(
    len(CLIS) < len(NEEDED),
    reason=f"real CLIs not found ({', '.join(c for c in NEEDED if c not in CLIS)}) "
    + (f"in ${BIN_ENV}" if os.environ.get(BIN_ENV) else f"on PATH (or set ${BIN_ENV})")
    + ": npm install @anthropic-ai/claude-code @openai/codex @augmentcode/auggie",
)


def test_the_clis_are_found_under_the_variables_folder_else_on_path(tmp_path: Path) -> None:
    folders = {name: tmp_path / name for name in ("bin", "path1", "path2")}
    for name, folder in folders.items():
        folder.mkdir()
        for cli in NEEDED if name != "path1" else ("claude",):
            (folder / cli).write_text("#!/bin/sh\n")
            (folder / cli).chmod(0o755)
    path = f"{folders['path1']}:{folders['path2']}"
    assert find_clis({"PATH": path}) == {
        "claude": folders["path1"] / "claude",
        "codex": folders["path2"] / "codex",
        "auggie": folders["path2"] / "auggie",
    }
    assert find_clis({"PATH": path, BIN_ENV: str(folders["bin"])}) == {
        c: folders["bin"] / c for c in NEEDED
    }
    assert find_clis({"PATH": path, BIN_ENV: str(tmp_path / "none")}) == {}


def town_processes(town: Path) -> list[int]:
    """Pids whose environment names this town (agents and every model process they started)."""
    marker = f"TT_TOWN={town}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


@needs_clis
def test_not_logged_in_clis_fail_with_their_own_words(tmp_path: Path) -> None:
    town = tmp_path / "real"
    town.mkdir()
    (town / "town.toml").write_text(
        '[town]\nname = "real"\nretries = 0\n\n'
        '[agents.a-claude]\nmodel = "claude"\n\n'
        '[agents.a-codex]\nmodel = "codex"\n\n'
        '[agents.a-auggie]\nmodel = "auggie"\n'
    )
    (town / "tasks.toml").write_text(
        "".join(
            f'[[tasks]]\nid = "t-{c}"\ndescription = "Say hello"\nagent = "a-{c}"\n'
            f'timeout = "{TIMEOUT_S}s"\n\n'
            for c in NEEDED
        )
    )
    home = tmp_path / "home"
    home.mkdir()
    # The npm entry points are node scripts: node's folder too, wherever it is installed.
    node = shutil.which("node")
    system_path = [
        *([str(Path(node).parent)] if node else []),
        str(Path(sys.executable).parent),
        "/usr/local/bin",
        "/usr/bin",
        "/bin",
    ]
    env = {
        "PATH": ":".join([*dict.fromkeys(str(p.parent) for p in CLIS.values()), *system_path]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
    }

    def tt(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli", *args, "--town", str(town)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    started = time.monotonic()
    try:
        run = tt("apply", "--wait", "--timeout", "90s", "-o", "json")
        elapsed = time.monotonic() - started
        assert run.returncode == 1, run.stdout + run.stderr  # failed tasks
        status = json.loads(tt("status", "-o", "json").stdout)
        tasks = {t["id"]: t for t in status["tasks"]}
        assert {t["state"] for t in tasks.values()} == {"failed"}
        assert "Not logged in" in tasks["t-claude"]["error"]
        assert "No auth provided" in tasks["t-auggie"]["error"]
        assert f"timed out after {TIMEOUT_S}s" in tasks["t-codex"]["error"]
        assert tasks["t-claude"]["attempts"] == 1 and tasks["t-auggie"]["attempts"] == 1
        for cli in ("claude", "auggie"):  # classed auth, from the CLI's own words
            [attempt] = json.loads(tt("show", f"t-{cli}", "-o", "json").stdout)["attempts"]
            assert attempt["exit_class"] == "auth", attempt
        assert elapsed < TIMEOUT_S + 60
        # Only the three agent processes remain: every model process tree is gone.
        agents = {a["pid"] for a in status["agents"]}
        assert set(town_processes(town)) <= agents
    finally:
        tt("down")
    deadline = time.monotonic() + 10
    while town_processes(town) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert town_processes(town) == []


def found(clis: tuple[str, ...]) -> dict[str, Path]:
    """Each of `clis` found under $TT_TEST_CLI_BIN when it is set, else on PATH."""
    search = os.environ.get(BIN_ENV) or os.environ.get("PATH", "")
    return {c: Path(hit) for c in clis if (hit := shutil.which(c, path=search))}


STDIN_CLIS = ("gemini", "copilot")  # presets that moved their prompt from argv to stdin
STDIN_FOUND = found(STDIN_CLIS)


@pytest.mark.skipif(
    len(STDIN_FOUND) < len(STDIN_CLIS),
    reason="gemini or copilot not found: npm install @google/gemini-cli @github/copilot",
)
def test_gemini_and_copilot_take_the_prompt_from_stdin(tmp_path: Path) -> None:
    # Their presets pass no prompt argument (it goes on stdin): both still run headless, neither
    # drops to an interactive mode or hangs, and each fails at once with its own login error.
    # (Both check the login before they read the prompt: tests/integration/test_launch.py shows
    # by stand-ins that the prompt does reach each preset's stdin or file.)
    town = tmp_path / "stdin"
    town.mkdir()
    (town / "town.toml").write_text(
        '[town]\nname = "stdin"\nretries = 0\n\n'
        '[agents.a-gemini]\nmodel = "gemini"\n\n[agents.a-copilot]\nmodel = "copilot"\n'
    )
    (town / "tasks.toml").write_text(
        "".join(
            f'[[tasks]]\nid = "t-{c}"\ndescription = "Say hello"\nagent = "a-{c}"\n'
            'timeout = "60s"\n\n'
            for c in STDIN_CLIS
        )
    )
    home = tmp_path / "home"
    home.mkdir()
    node = shutil.which("node")
    path = [*dict.fromkeys(str(p.parent) for p in STDIN_FOUND.values())]
    path += [*([str(Path(node).parent)] if node else []), str(Path(sys.executable).parent)]
    env = {
        "PATH": ":".join([*path, "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
    }

    def tt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli", *args, "--town", str(town)],
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
            stdin=subprocess.DEVNULL,
        )

    try:
        run = tt("apply", "--wait", "--timeout", "120s", "-o", "json")
        assert run.returncode == 1, run.stdout + run.stderr  # failed tasks
        tasks = {t["id"]: t for t in json.loads(tt("status", "-o", "json").stdout)["tasks"]}
        assert "Please set an Auth method" in tasks["t-gemini"]["error"], tasks
        assert "No authentication information found" in tasks["t-copilot"]["error"], tasks
        assert all(t["attempts"] == 1 for t in tasks.values())  # permanent: no retry
        for cli in STDIN_CLIS:
            [attempt] = json.loads(tt("show", f"t-{cli}", "-o", "json").stdout)["attempts"]
            assert attempt["exit_class"] == "auth", attempt
    finally:
        tt("down")
    deadline = time.monotonic() + 10
    while town_processes(town) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert town_processes(town) == []


@needs_clis
def test_codex_in_its_own_retry_loop_fails_as_stalled_long_before_its_timeout(
    tmp_path: Path,
) -> None:
    """Without credentials or network codex never exits ("Reconnecting... waiting for network"
    forever). Its preset's stall pattern fails the attempt a grace after that line (1 min by
    default; 2 s here, on a model with the preset's command), as a retryable failure."""
    from reconciler.spec.presets import PRESETS

    codex = PRESETS["codex"]
    town = tmp_path / "stall"
    town.mkdir()
    command = ", ".join(f'"{part}"' for part in codex.command)
    patterns = ", ".join(f"'{p}'" for p in codex.stall_patterns)
    (town / "town.toml").write_text(
        '[town]\nname = "stall"\nretries = 0\n\n'
        '[agents.a-codex]\nmodel = "codex-quick"\n\n'
        f"[models.codex-quick]\ncommand = [{command}]\nstall_patterns = [{patterns}]\n"
        'stall_after = "2s"\n'
    )
    (town / "tasks.toml").write_text(
        '[[tasks]]\nid = "t"\ndescription = "Say hello"\nagent = "a-codex"\ntimeout = "5m"\n'
    )
    home = tmp_path / "home"
    home.mkdir()
    node = shutil.which("node")
    path = [str(CLIS["codex"].parent), *([str(Path(node).parent)] if node else [])]
    env = {
        "PATH": ":".join([*path, str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
    }

    def tt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli", *args, "--town", str(town)],
            env=env,
            capture_output=True,
            text=True,
            timeout=200,
            stdin=subprocess.DEVNULL,
        )

    started = time.monotonic()
    try:
        run = tt("apply", "--wait", "--timeout", "150s", "-o", "json")
        assert run.returncode == 1, run.stdout + run.stderr
        task = json.loads(tt("status", "-o", "json").stdout)["tasks"][0]
        assert task["error"].startswith("stalled: the CLI kept retrying for 2s"), task
        assert "Reconnecting... waiting for network" in task["error"]
        assert time.monotonic() - started < 150  # far from its 5 min timeout
    finally:
        tt("down")
    deadline = time.monotonic() + 10
    while town_processes(town) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert town_processes(town) == []


RESUMING = ("claude", "codex", "gemini", "copilot")  # presets with resume_args
RESUME_FOUND = found(RESUMING)


@pytest.mark.skipif(
    len(RESUME_FOUND) < len(RESUMING),
    reason="claude, codex, gemini or copilot not found: npm install @anthropic-ai/claude-code "
    "@openai/codex @google/gemini-cli @github/copilot",
)
def test_a_session_the_cli_does_not_have_is_refused_as_the_preset_and_the_fake_expect(
    tmp_path: Path,
) -> None:
    """Each preset's resume arguments, run by the real CLI (not logged in) on a session it does
    not have: it exits at once, non-zero, in words its preset's `resume_rejected` matches (so
    tt runs the attempt fresh), and the fake CLI of the tests says the same with the same code."""
    from reconciler.agents import resume
    from reconciler.agents.models import render_argv
    from reconciler.spec.presets import PRESETS
    from tests.fakes import clis

    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    home = tmp_path / "home"
    home.mkdir()
    node = shutil.which("node")
    path = [*dict.fromkeys(str(p.parent) for p in RESUME_FOUND.values())]
    path += [*([str(Path(node).parent)] if node else []), "/usr/local/bin", "/usr/bin", "/bin"]
    env = {"PATH": ":".join(path), "HOME": str(home), "LANG": "C.UTF-8", "TERM": "dumb"}
    session = "0b7e4f0c-3d2a-4e8b-9c1d-2f6a5b4c3d21"
    for cli in RESUMING:
        preset = PRESETS[cli]
        argv, _ = render_argv(
            preset,
            prompt="Say hello",
            prompt_file=str(tmp_path / "prompt.md"),
            workdir=str(repo),
            python=sys.executable,
            session=resume.fill(preset.resume_args, session),
        )
        started = time.monotonic()
        run = subprocess.run(
            argv,
            cwd=repo,
            env=env,
            input="Say hello",
            capture_output=True,
            text=True,
            timeout=60,
            start_new_session=True,
        )
        said = run.stdout + run.stderr
        assert time.monotonic() - started < 30, (cli, said)
        fake, code = clis.REJECTED[cli]
        assert run.returncode == code, (cli, run.returncode, said)
        assert fake.format(id=session) in said, (cli, said)
        went_on = resume.Session(session, (), resumed=True)
        assert resume.rejected(preset, went_on, False, said), (cli, said)
        assert resume.rejected(preset, went_on, False, fake.format(id=session))
