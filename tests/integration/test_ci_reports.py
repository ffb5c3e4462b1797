"""`tt apply --wait --junit FILE` and `$GITHUB_STEP_SUMMARY` on a run that fails: the failed
task is a JUnit failure with its error tail, the task waiting on it and a cancelled one are
skipped, the exit code is 1; both reports are read back (junitparser, the Markdown)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml, Skipped

TOWN = '[town]\nname = "reports"\n\n[agents.dev]\nmodel = "sim"\n'
TASKS = """\
[[tasks]]
id = "build"
description = "Build it [sim:fail]"
agent = "dev"
retries = 0

[[tasks]]
id = "ship"
description = "Ship it"
agent = "dev"
parent = "build"

[[tasks]]
id = "lint"
description = "Lint it"
agent = "dev"

[[tasks]]
id = "docs"
description = "Write the docs"
agent = "dev"
status = "cancelled"
"""


def tt(town: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args, "--town", str(town)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.integration
def test_a_failed_run_is_reported_as_junit_and_in_the_step_summary(tmp_path: Path) -> None:
    town = tmp_path / "town"
    town.mkdir()
    (town / "town.toml").write_text(TOWN)
    (town / "tasks.toml").write_text(TASKS)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TT_")}
    env |= {"TT_SIM_DELAY": "0.05", "GITHUB_STEP_SUMMARY": str(summary)}
    junit = tmp_path / "out" / "junit.xml"
    junit.parent.mkdir()
    try:
        run = tt(town, "apply", "--wait", "--timeout", "60s", "--junit", str(junit), env=env)
        assert run.returncode == 1, run.stdout + run.stderr
        assert f"wrote {junit}" in run.stdout
        (suite,) = list(JUnitXml.fromfile(str(junit)))
        assert (suite.name, suite.tests, suite.failures, suite.skipped) == ("reports", 4, 1, 2)
        cases = {c.name: c for c in suite}
        assert cases["lint"].is_passed
        (failure,) = cases["build"].result
        assert isinstance(failure, Failure) and failure.type == "failed"
        assert "failing attempt 1 as the task asks" in failure.text
        assert cases["build"].system_out == (
            f"attempt 1, agent dev, exit failed, {cases['build'].system_out.split(', ')[-1]}"
        )
        assert isinstance(cases["ship"].result[0], Skipped)
        assert cases["ship"].result[0].message == "upstream_failed: build did not complete"
        assert cases["docs"].result[0].message == "cancelled"
        text = summary.read_text()
        assert text.startswith("earlier step\n### ❌ `tt apply --wait`: town `reports` failed\n")
        assert "| `build` | ❌ failed | dev | 1 |" in text
        assert "<details><summary>failed: <code>build</code>: exit code 1" in text
    finally:
        tt(town, "down", env=env)


def test_junit_needs_wait(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TT_")}
    (tmp_path / "town.toml").write_text(TOWN)
    done = tt(tmp_path, "apply", "--junit", str(tmp_path / "j.xml"), env=env)
    assert done.returncode == 2 and "--junit reports a run: use it with --wait" in done.stderr
    assert not (tmp_path / "j.xml").exists() and not (tmp_path / ".tt").exists()
    nowhere = tt(tmp_path, "apply", "--wait", "--junit", str(tmp_path / "no" / "j.xml"), env=env)
    assert nowhere.returncode == 2 and "no folder to write" in nowhere.stderr
    assert not (tmp_path / ".tt").exists()  # refused before anything ran


@pytest.mark.integration
def test_a_report_that_cannot_be_written_keeps_the_runs_exit_code(tmp_path: Path) -> None:
    """Review of #15: an unwritable --junit or $GITHUB_STEP_SUMMARY after the wait replaced
    the run's exit code with 1 (a traceback); it is an error on stderr, the code stands."""
    town = tmp_path / "town"
    town.mkdir()
    (town / "town.toml").write_text(TOWN)
    (town / "tasks.toml").write_text(
        '[[tasks]]\nid = "lint"\ndescription = "Lint"\nagent = "dev"\n'
    )
    taken = tmp_path / "a-folder"  # a folder where a file should be: no file can be written
    taken.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TT_")}
    env |= {"TT_SIM_DELAY": "0.05", "GITHUB_STEP_SUMMARY": str(taken)}
    try:
        # (/dev/full: every write fails, even as root)
        run = tt(town, "apply", "--wait", "--timeout", "60s", "--junit", "/dev/full", env=env)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "error: cannot write the JUnit report to /dev/full: No space left" in run.stderr
        assert f"error: cannot write $GITHUB_STEP_SUMMARY to {taken}: Is a directory" in run.stderr
        assert "Traceback" not in run.stderr
    finally:
        tt(town, "down", env=env)
