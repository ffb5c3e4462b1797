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
from tests.work.gitrepo import git

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
        tasks += task("z", "called off", status="cancelled")
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
            ("config", "default_model", "sim"),
            ("retry", "z"),  # the files cancel it: a retry would edit them
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
        for verb in (("restart", "helper"), ("send", "helper", "hello")):
            done = town.tt(*verb)
            assert done.returncode == 0, (verb, done.stderr)

        # The watcher gone, `tt wait` takes the lead: it applies the copy, not the local files
        # (those have neither helper nor h: applied, they would prune both).
        town.kill_watcher(proc)
        waited = town.tt("wait", "--timeout", "60s", timeout=90)
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert "h" in town.tasks() and "helper" in town.agents()
        assert town.tasks()["h"]["state"] == "completed"
        assert not town.events("task.deleted")


def test_a_hung_fetch_keeps_the_lead_and_the_healing(tmp_path: Path) -> None:
    """The remote's `ssh` hangs (until released): the leader keeps its lease and restarts a
    killed agent meanwhile; the fetch's failure is told once it ends."""
    _, user = setup(tmp_path, "hangs")
    release = tmp_path / "release"
    with live_town(user / "town", sim_delay=0.05) as town:
        town.name = "hangs"
        proc = town.start_watcher("watch", "--follow", "origin/main", "--interval", "1s")
        until(lambda: town.tasks().get("a", {}).get("state") == "completed", 30, "a done")
        town.kill_watcher(proc)
        git(user, "remote", "set-url", "origin", "ssh://tt.invalid/town.git")
        wait = f"i=0; while [ ! -e {release} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done"
        town.env["GIT_SSH_VARIANT"] = "simple"
        town.env["GIT_SSH_COMMAND"] = f"{wait}; echo remote hung up >&2; exit 1; :"
        try:
            proc = town.start_watcher("watch", "--follow", "origin/main", "--interval", "1s")
            mine = f":{proc.pid}:"
            holder = until(lambda: mine in (town.store.leader_holder() or "") and mine, 10, "lead")
            pid = until(lambda: town.live_agents().get("solo"), 10, "solo runs")
            assert town.kill(pid)
            again = until(lambda: town.live_agents().get("solo") not in (None, pid), 8, "healed")
            assert again and holder in (town.store.leader_holder() or "")
            assert not town.events("leader.fenced") and not town.events("follow.fetch_failed")
        finally:
            release.touch()
        [failed] = until(lambda: town.events("follow.fetch_failed"), 20, "the fetch's failure")
        assert "remote hung up" in failed["error"]
