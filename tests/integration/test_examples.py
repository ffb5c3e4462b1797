"""Every folder in examples/ is validated, applied and run to the end with the offline sim model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted(p for p in (Path(__file__).parents[2] / "examples").iterdir() if p.is_dir())
TT = [sys.executable, "-m", "cli"]


def tt(town: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TT_SIM_DELAY": "0.1"}
    env.pop("TT_REDIS_URL", None)
    env.pop("TT_TOWN", None)
    return subprocess.run(
        [*TT, *args, "--town", str(town)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.integration
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_to_completion_on_sim(example: Path, tmp_path: Path) -> None:
    town = tmp_path / example.name
    shutil.copytree(example, town, ignore=shutil.ignore_patterns(".tt"))
    try:
        assert tt(town, "validate").returncode == 0
        run = tt(town, "apply", "--model", "sim", "--wait", "--timeout", "90s")
        assert run.returncode == 0, run.stdout + run.stderr
        status = json.loads(tt(town, "status", "-o", "json").stdout)
        tasks = {t["id"]: t for t in status["tasks"]}
        assert tasks and all(t["state"] == "completed" for t in tasks.values())
        for t in tasks.values():
            assert t["attempts"] <= 1  # groups complete without an attempt
        # The files say what ran: a second apply changes nothing.
        again = tt(town, "apply", "--model", "sim", "--detailed-exitcode")
        assert again.returncode == 0, again.stdout
        assert "Everything up to date" in again.stdout
    finally:
        tt(town, "down")
