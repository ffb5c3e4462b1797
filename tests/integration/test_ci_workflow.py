"""examples/ci/github-actions.yml, run here (not on GitHub): its `run:` steps, job by job, in a
copy of the repository's example town, with the environment GitHub would give them (the
workflow's `env`, `GITHUB_STEP_SUMMARY`, bash -eo pipefail). The `Install tt` steps are left
out (tt is installed here already) and so are `uses:` steps (GitHub's actions). The plan job
leaves the Markdown plan in the summary; the apply job runs the town to the end and leaves a
JUnit XML report that junitparser reads (a JUnit parser, with JUnit's meaning of failure and
skipped, rather than a check of the XML's shape alone) and the run's table in the summary."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from junitparser import JUnitXml

ROOT = Path(__file__).parents[2]
WORKFLOW = ROOT / "examples" / "ci" / "github-actions.yml"


def workflow() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


def run_steps(job: str, checkout: Path, summary: Path) -> list[tuple[str, int, str]]:
    """Every `run:` step of `job` but `Install tt`, in order, as GitHub runs them: a failed step
    stops the job, but `if: always()` steps run all the same. (name, exit code, output) each."""
    flow = workflow()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TT_", "GITHUB_"))}
    for key, value in flow["env"].items():
        # `${{ secrets.X }}` of a secret the repository does not set is empty on GitHub
        env[key] = "" if "${{" in str(value) else str(value)
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "GITHUB_STEP_SUMMARY": str(summary),
        "TT_SIM_DELAY": "0.1",
        "CI": "true",
    }
    shell = flow["defaults"]["run"]["shell"]
    assert shell == "bash"
    done: list[tuple[str, int, str]] = []
    failed = False
    for step in flow["jobs"][job]["steps"]:
        if "run" not in step or step.get("name") == "Install tt":
            continue
        if failed and step.get("if") != "always()":
            continue
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )
        done.append((step["name"], proc.returncode, proc.stdout + proc.stderr))
        failed = failed or proc.returncode != 0
    return done


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The repository as a job checks it out: here, the example town at the workflow's TOWN."""
    root = tmp_path / "checkout"
    town = root / workflow()["env"]["TOWN"]
    shutil.copytree(ROOT / "examples" / "ci", town, ignore=shutil.ignore_patterns(".tt"))
    return root


def test_the_workflow_validates_and_plans_on_pull_requests_and_applies_on_main() -> None:
    flow = workflow()
    triggers = flow.get("on", flow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(triggers) == {"pull_request", "push"}
    assert triggers["push"]["branches"] == ["main"]
    jobs = flow["jobs"]
    assert "pull_request" in jobs["plan"]["if"] and "refs/heads/main" in jobs["apply"]["if"]
    plan_runs = " ".join(s.get("run", "") for s in jobs["plan"]["steps"])
    apply_runs = " ".join(s.get("run", "") for s in jobs["apply"]["steps"])
    assert "tt validate" in plan_runs and "--format markdown" in plan_runs
    assert "tt apply" in apply_runs and "--wait" in apply_runs and "--junit" in apply_runs


@pytest.mark.integration
def test_the_plan_job_puts_the_markdown_plan_in_the_summary(checkout: Path) -> None:
    summary = checkout.parent / "summary.md"
    steps = run_steps("plan", checkout, summary)
    assert [(name, code) for name, code, _ in steps] == [
        ("Validate", 0),
        ("Plan", 0),
        ("Stop the town", 0),
    ], steps
    text = summary.read_text()
    assert text.startswith("### `tt plan`: town `ci-demo`")
    assert "**5 to create, 0 to change, 0 to delete**" in text
    assert "- `+` task build (ready → builder)" in text
    assert "```diff\n+ agent builder (sim)" in text


@pytest.mark.integration
def test_the_apply_job_runs_the_town_and_reports_it_as_junit(checkout: Path) -> None:
    summary = checkout.parent / "summary.md"
    steps = run_steps("apply", checkout, summary)
    assert [(name, code) for name, code, _ in steps] == [
        ("Validate", 0),
        ("Apply and wait", 0),
        ("Stop the town", 0),
    ], steps
    report = JUnitXml.fromfile(str(checkout / "tt-junit.xml"))
    suites = list(report)
    assert [s.name for s in suites] == ["ci-demo"]
    cases = {c.name: c for c in suites[0]}
    assert sorted(cases) == ["build", "review", "test"]
    for case in cases.values():
        assert case.classname == "ci-demo"
        assert case.is_passed and not case.result
        assert "attempt 1, agent " in (case.system_out or "")
        assert "exit success" in (case.system_out or "")
    assert suites[0].tests == 3 and suites[0].failures == 0
    text = summary.read_text()
    assert "### ✅ `tt apply --wait`: town `ci-demo` completed" in text
    assert "| `build` | ✅ completed | builder | 1 |" in text
    assert "3 tasks · 3 completed" in text
