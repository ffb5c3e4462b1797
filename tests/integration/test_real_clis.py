"""The real agent CLIs (claude, codex, auggie), not logged in, as the models of tasks: each task
ends `failed` with the CLI's own error text, within its timeout, and no process is left behind.

The CLIs come from npm (`.ci/run` installs them into a cache and sets TT_TEST_CLI_BIN); where
they are not installed the test says so and skips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI_BIN = os.environ.get("TT_TEST_CLI_BIN", "/work/clis/node_modules/.bin")
NEEDED = ("claude", "codex", "auggie")
TIMEOUT_S = 15

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all((Path(CLI_BIN) / c).exists() for c in NEEDED),
        reason=f"real CLIs not installed in {CLI_BIN} (npm install @anthropic-ai/claude-code "
        "@openai/codex @augmentcode/auggie)",
    ),
]


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
    env = {
        "PATH": f"{CLI_BIN}:{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
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
