"""Approval gates and `run_if` with real agents (sim) on the embedded Valkey: a task with
`approve = true` waits for `tt approve` while its dependents wait; `tt reject` runs it again with
the reason in its prompt and counts a retry (failed when they are spent); a gate without agent
is a manual checkpoint that `apply --wait` stops at (exit 4); a cleanup with run_if = "failure"
runs after a failure and is skipped after a success; run_if = "always" runs either way."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

from tests.integration.live import LiveTown, live_town, until

TOWN = """\
[town]
name = "{name}"
retry_backoff = "0.2s"
heartbeat = "0.5s"

[agents.dev]
model = "sim"
"""


def states(town: LiveTown) -> dict[str, str]:
    return {tid: r.get("state", "") for tid, r in town.tasks().items()}


def reach(town: LiveTown, want: dict[str, str], timeout: float = 60) -> None:
    until(
        lambda: all(states(town).get(t) == s for t, s in want.items()),
        timeout,
        f"tasks reach {want}; they are {states(town)}",
    )


def status(town: LiveTown) -> dict[str, Any]:
    run = town.tt("status", "-o", "json")
    assert run.returncode == 0, run.stderr
    data: dict[str, Any] = json.loads(run.stdout)
    return data


APPROVED = """\
[[tasks]]
id = "build"
description = "Build the release"
agent = "dev"
approve = true
retries = {retries}

[[tasks]]
id = "deploy"
description = "Deploy what was built"
agent = "dev"
parent = "build"
"""


def test_approval_lets_a_dependent_run_and_rejection_reaches_the_next_prompt(
    tmp_path: Path,
) -> None:
    with live_town(tmp_path / "approve") as town:
        town.write(TOWN.format(name="approve"), APPROVED.format(retries=2))
        assert town.tt("apply").returncode == 0
        reach(town, {"build": "awaiting_approval", "deploy": "blocked"})
        st = status(town)
        assert st["awaiting_approval"] == ["build"]
        assert st["counts"]["awaiting_approval"] == 1
        text = town.tt("status").stdout
        assert "awaiting approval: build" in text, text

        # Approving a task that does not await approval: an error naming its state, no change.
        wrong = town.tt("approve", "deploy")
        assert wrong.returncode == 1
        assert "task 'deploy' is blocked, not awaiting approval" in wrong.stderr, wrong.stderr
        assert states(town) == {"build": "awaiting_approval", "deploy": "blocked"}
        assert town.tt("approve", "nope").returncode == 1

        rejected = town.tt("reject", "build", "--reason", "add a changelog entry", "--by", "rev")
        assert rejected.returncode == 0, rejected.stderr
        assert rejected.stdout == "rejected build (by rev): it runs again\n"
        until(lambda: town.tasks()["build"].get("attempt") == "2", 60, "a second attempt")
        reach(town, {"build": "awaiting_approval", "deploy": "blocked"})
        prompt = (town.paths.logs_dir / "dev" / "build-2.log").read_text()
        assert "## Review" in prompt and "add a changelog entry" in prompt, prompt[:2000]
        assert "## Review" not in (town.paths.logs_dir / "dev" / "build-1.log").read_text()

        approved = town.tt("approve", "build", "--comment", "ship it")
        assert approved.returncode == 0, approved.stderr
        reach(town, {"build": "completed", "deploy": "completed"})
        shown = json.loads(town.tt("show", "build", "-o", "json").stdout)
        approval = shown["approval"]
        assert (approval["approved_by"], approval["comment"]) == (getpass.getuser(), "ship it")
        assert (approval["rejected_by"], approval["rejection"]) == ("rev", "add a changelog entry")
        assert approval["approved_at"] and approval["awaiting_since"] is None
        assert "approved:    by " in town.tt("show", "build").stdout

        kinds = [e["type"] for e in town.events() if e.get("task") == "build"]
        assert kinds.count("task.awaiting_approval") == 2
        assert kinds.count("task.rejected") == 1 and kinds.count("task.approved") == 1
        (ev,) = town.events("task.rejected")
        assert (ev["by"], ev["reason"]) == ("rev", "add a changelog entry")
        again = town.tt("approve", "build")
        assert again.returncode == 1 and "is completed, not awaiting approval" in again.stderr


def test_rejection_counts_against_retries_and_fails_when_they_are_spent(tmp_path: Path) -> None:
    with live_town(tmp_path / "spent") as town:
        town.write(TOWN.format(name="spent"), APPROVED.format(retries=0))
        assert town.tt("apply").returncode == 0
        reach(town, {"build": "awaiting_approval"})
        out = town.tt("reject", "build", "--reason", "wrong approach", "-o", "json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["state"] == "failed"
        reach(town, {"build": "failed", "deploy": "upstream_failed"})
        assert town.tasks()["build"]["error"] == "rejected: wrong approach"
        assert town.tt("reject", "build", "--reason", "again").returncode == 1


GATED = """\
[[tasks]]
id = "build"
description = "Build"
agent = "dev"

[[tasks]]
id = "go"
parent = "build"
approve = true

[[tasks]]
id = "deploy"
description = "Deploy"
agent = "dev"
parent = "go"
"""


def test_a_gate_is_a_manual_checkpoint_that_apply_wait_stops_at(tmp_path: Path) -> None:
    with live_town(tmp_path / "gate") as town:
        town.write(TOWN.format(name="gate"), GATED)
        run = town.tt("apply", "--wait", "--timeout", "60s")
        assert run.returncode == 4, run.stdout + run.stderr
        assert "awaiting approval: go (tt approve go)" in run.stderr, run.stderr
        assert states(town) == {
            "build": "completed",
            "go": "awaiting_approval",
            "deploy": "blocked",
        }
        assert town.tasks()["go"].get("attempt", "0") == "0"  # no model ran for it
        assert town.tt("approve", "go", "--by", "lead").returncode == 0
        run = town.tt("apply", "--wait", "--timeout", "60s", "-o", "json")
        assert run.returncode == 0, run.stdout + run.stderr
        assert json.loads(run.stdout)["outcome"] == "completed"
        assert states(town)["deploy"] == "completed"
        assert town.tasks()["go"]["approved_by"] == "lead"
        # approved is completed, as the files tell it once pulled (the verbs do not edit them)
        assert (town.root / "tasks.toml").read_text() == GATED
        assert town.tt("sync", "pull").returncode == 0
        written = (town.root / "tasks.toml").read_text()
        assert 'id = "go"\nparent = "build"\napprove = true\nstatus = "completed"' in written, (
            written
        )


CONDITIONS = """\
[[tasks]]
id = "build"
description = "Build {marker}"
agent = "dev"
retries = 0

[[tasks]]
id = "cleanup"
description = "Clean up after a failed build"
agent = "dev"
depends_on = ["build"]
run_if = "failure"

[[tasks]]
id = "notify"
description = "Tell the team how it went"
agent = "dev"
depends_on = ["build"]
run_if = "always"

[[tasks]]
id = "ship"
description = "Ship it"
agent = "dev"
parent = "build"
"""


def test_run_if_failure_runs_a_cleanup_after_a_failure_and_always_runs(tmp_path: Path) -> None:
    with live_town(tmp_path / "fails") as town:
        town.write(TOWN.format(name="fails"), CONDITIONS.format(marker="[sim:fail]"))
        run = town.tt("apply", "--wait", "--timeout", "60s")
        assert run.returncode == 1, run.stdout + run.stderr
        assert states(town) == {
            "build": "failed",
            "cleanup": "completed",
            "notify": "completed",
            "ship": "upstream_failed",
        }


def test_run_if_failure_is_skipped_when_all_succeed(tmp_path: Path) -> None:
    with live_town(tmp_path / "works") as town:
        town.write(TOWN.format(name="works"), CONDITIONS.format(marker="well"))
        run = town.tt("apply", "--wait", "--timeout", "60s")
        assert run.returncode == 0, run.stdout + run.stderr
        assert states(town) == {
            "build": "completed",
            "cleanup": "skipped",
            "notify": "completed",
            "ship": "completed",
        }
        assert town.tasks()["cleanup"].get("attempt", "0") == "0"
        assert [e["tasks"] for e in town.events("task.skipped")] == ["cleanup"]
        assert town.tt("apply").stdout.strip() == "Everything up to date"


def test_bad_run_if_and_approve_are_refused_naming_file_line_and_field(tmp_path: Path) -> None:
    with live_town(tmp_path / "bad") as town:
        bad = CONDITIONS.format(marker="x").replace('run_if = "always"', 'run_if = "allways"')
        town.write(TOWN.format(name="bad"), bad.replace("retries = 0", "approve = 1"))
        run = town.tt("apply")
        assert run.returncode == 1
        assert "tasks.toml:5: $.tasks[0].approve: expected true or false" in run.stderr, run.stderr
        assert "tasks.toml:19: $.tasks[2].run_if: must be one of" in run.stderr, run.stderr
        assert not town.paths.data_dir.exists() or not town.tasks()  # nothing was written


def test_under_git_the_commit_waits_for_approval_before_the_merge_queue(tmp_path: Path) -> None:
    from tests.integration.test_git_work import commit_town, task, town_toml
    from tests.work.gitrepo import git

    tasks = task("build", "Build [sim:write:src/app.txt:v1]").replace(
        'agent = "dev"\n', 'agent = "dev"\napprove = true\n'
    ) + task("deploy", "Deploy [sim:write:docs/deploy.md:done]", parent="build")
    with live_town(tmp_path / "repo") as town:
        commit_town(town, town_toml("gitgate", "[git]", replicas=1), tasks)
        before = git(town.root, "rev-parse", "main")
        assert town.tt("apply").returncode == 0
        reach(town, {"build": "awaiting_approval", "deploy": "blocked"}, 120)
        rec = town.store.git_record("build")
        assert rec["git_stage"] == "committed" and rec["git_head"]
        assert git(town.root, "rev-parse", "main") == before  # not merged: it waits
        assert town.store.merge_queue() == []

        assert town.tt("reject", "build", "--reason", "say v2 too").returncode == 0
        until(lambda: town.tasks()["build"].get("attempt") == "2", 60, "a second attempt")
        reach(town, {"build": "awaiting_approval"}, 120)
        assert "say v2 too" in (town.paths.logs_dir / "dev" / "build-2.log").read_text()
        assert git(town.root, "rev-parse", "main") == before

        assert town.tt("approve", "build").returncode == 0
        reach(town, {"build": "completed", "deploy": "completed"}, 120)
        merged = town.store.git_record("build")["git_merged"]
        git(town.root, "merge-base", "--is-ancestor", merged, "main")
        # the model ran twice (each run appends its line); the third attempt only merged
        assert (town.root / "src" / "app.txt").read_text().splitlines() == ["v1", "v1"]
        history = town.attempts("build")
        assert [a["outcome"] for a in history] == ["completed"] * 3
