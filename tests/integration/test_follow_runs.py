"""A followed town runs the branch's commit, not the user's checkout: an agent a followed commit
adds runs (its process reads the followed copy) and completes its task; `tt status`, `tt plan`
and `tt diff --drift` read that copy; verbs that would apply or edit the local files refuse with
one line, Redis-only verbs still work; and `tt wait` leading the town applies the copy, never
the stale local files (which would prune what the branch added)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.live import live_town, until
from tests.integration.test_follow import AGENT, push, setup, status, tree_digest
from tests.integration.test_self_healing import task, town_toml

pytestmark = pytest.mark.integration

HELPER = '[agents.helper]\nmodel = "sim"\n'
REFUSAL = "this town follows origin/main: commit and push the change there"


def test_a_followed_commit_that_adds_an_agent_runs_it_and_local_changes_are_refused(
    tmp_path: Path,
) -> None:
    other, user = setup(tmp_path, "runs")
    with live_town(user / "town", sim_delay=0.05) as town:
        town.name = "runs"
        proc = town.start_watcher("watch", "--follow", "origin/main", "--interval", "1s")
        until(lambda: town.tasks().get("a", {}).get("state") == "completed", 30, "a done")

        tasks = task("a", "first") + task("h", "helped", agent="helper")
        pushed = push(
            other, {"town.toml": town_toml("runs", AGENT + HELPER), "tasks.toml": tasks}, "h"
        )
        until(lambda: town.tasks().get("h", {}).get("state") == "completed", 30, "h done by helper")
        exits = [e for e in town.events("agent.exited") if "helper" in e.values()]
        assert not exits, exits  # it did not crash-loop on "not in town.toml"
        report = status(town)
        assert report["revision"]["sha"] == pushed
        assert {a["name"] for a in report["agents"] if a["in_roster"]} == {"solo", "helper"}
        plan = town.tt("plan")
        assert plan.returncode == 0 and "No changes." in plan.stdout, plan.stdout + plan.stderr
        drift = town.tt("diff", "--drift", "-o", "json")
        assert drift.returncode == 0, drift.stderr

        before = tree_digest(user)
        for verb in (
            ("apply",),
            ("suspend",),
            ("resume",),
            ("sync", "push"),
            ("sync", "pull"),
            ("spawn", "extra", "--model", "sim"),
            ("kill", "helper"),
            ("assign", "solo", "more work"),
            ("cancel", "h"),
        ):
            done = town.tt(*verb)
            assert done.returncode != 0, verb
            assert REFUSAL in done.stderr, (verb, done.stderr)
        assert tree_digest(user) == before  # nothing written to the local files
        assert status(town)["health"]["state"] != "suspended"
        noted = town.tt("assign", "solo", "redis only", "--no-save", "--id", "r")
        assert noted.returncode == 0, noted.stderr
        until(lambda: town.tasks().get("r", {}).get("state") == "completed", 30, "r done")
        retried = town.tt("retry", "h")  # no file says h is done: a Redis-only re-run
        assert retried.returncode == 0, retried.stderr

        # The watcher gone, `tt wait` takes the lead: it applies the copy, not the local files
        # (those have neither helper nor h: applied, they would prune both).
        town.kill_watcher(proc)
        waited = town.tt("wait", "--timeout", "60s", timeout=90)
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert "h" in town.tasks() and "helper" in town.agents()
        assert town.tasks()["h"]["state"] == "completed"
        assert not town.events("task.deleted")
