"""Every folder in examples/ is validated, applied and run to the end with the offline sim model.
An example with `[git]` runs in a repository of its own (the copy, committed on main)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.work.gitrepo import git, log_subjects

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
    uses_git = re.search(r"^\[git\]", (town / "town.toml").read_text(), re.M) is not None
    if uses_git:
        git(town, "init", "-q", "-b", "main")
        git(town, "add", "-A")
        git(town, "commit", "-q", "-m", "the example")
    try:
        assert tt(town, "validate").returncode == 0
        run = tt(town, "apply", "--model", "sim", "--wait", "--timeout", "90s")
        assert run.returncode == 0, run.stdout + run.stderr
        status = json.loads(tt(town, "status", "-o", "json").stdout)
        tasks = {t["id"]: t for t in status["tasks"]}
        assert tasks and all(t["state"] == "completed" for t in tasks.values())
        for t in tasks.values():
            assert t["attempts"] <= 1  # groups complete without an attempt
        if uses_git:
            # one commit on main per working task, its subject naming the task; the user's
            # checkout of main moved with it and is clean (tt's state never shows)
            subjects = log_subjects(town)
            assert subjects[-1] == "the example"
            working = sorted(t["id"] for t in tasks.values() if t["kind"] == "work")
            assert sorted(s.split(":", 1)[0] for s in subjects[:-1]) == working
            assert git(town, "status", "--porcelain", "--untracked-files=all") == ""
        # The files say what ran: a second apply changes nothing.
        again = tt(town, "apply", "--model", "sim", "--detailed-exitcode")
        assert again.returncode == 0, again.stdout
        assert "Everything up to date" in again.stdout
    finally:
        tt(town, "down")
