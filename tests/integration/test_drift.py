"""Drift with a live watcher and real agents: an agent a person stops (SIGTERM to its worker) is
restarted by default, and left stopped and reported (`town.drift`, `tt status`, `tt diff
--drift`) under `[town] self_heal = false`, where a change of the files is still applied and
`tt restart` brings it back."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.integration.live import alive, cwd_of, live_town, until
from tests.integration.test_self_healing import task, town_toml

AGENT = '[agents.solo]\nmodel = "sim"\n'


def stop_by_hand(root: Path, pid: int) -> None:
    """What a person does to stop an agent: SIGTERM to its worker (by pid, checked as ours)."""
    assert alive(pid) and cwd_of(pid) == str(root.resolve())
    os.kill(pid, signal.SIGTERM)


@pytest.mark.parametrize("self_heal", [True, False], ids=["default", "self_heal-false"])
def test_an_agent_stopped_by_hand_is_restarted_or_left_and_reported(
    tmp_path: Path, self_heal: bool
) -> None:
    name = "drift" if self_heal else "nodrift"
    policy = {} if self_heal else {"self_heal": "@false"}
    text = town_toml(name, AGENT, **policy).replace('"@false"', "false")
    with live_town(tmp_path / name, sim_delay=0.05) as town:
        town.write(text, task("a", "first", agent="solo"))
        town.start_watcher()
        first = until(lambda: town.live_agents().get("solo"), 20, "solo runs")
        until(lambda: town.states()["completed"] == 1, 20, "its first task")
        stop_by_hand(town.root, first)
        if self_heal:
            until(lambda: (p := town.live_agents().get("solo")) != first and p, 10, "restarted")
            assert town.tt("diff", "--drift", "--detailed-exitcode").returncode == 0
            assert town.events("town.drift") == []
            return
        [event] = until(lambda: town.events("town.drift"), 10, "a town.drift event")
        assert event["count"] == "1" and event["items"].startswith("agent solo: stopped by hand")
        # Left stopped over several heal passes (heartbeat 0.5 s), and a file change applies.
        town.save("tasks.toml", task("a", "first", agent="solo") + task("b", "next", agent="solo"))
        until(lambda: town.tasks().get("b", {}).get("state") == "ready", 10, "b is ready")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            assert "solo" not in town.live_agents()
            time.sleep(0.1)
        assert town.agents()["solo"]["state"] == "stopped"
        assert "drift: 1 items (tt diff --drift)" in town.tt("status").stdout
        listed = town.tt("diff", "--drift", "-o", "json", "--detailed-exitcode")
        assert listed.returncode == 2, listed.stderr
        assert [d["kind"] for d in json.loads(listed.stdout)["drift"]] == ["agent_stopped"]
        # A person's word starts it again; it then runs b, and the drift is gone.
        assert town.tt("restart", "solo").returncode == 0
        until(lambda: town.tasks()["b"].get("state") == "completed", 20, "b completed")
        until(lambda: len(town.events("town.drift")) == 2, 10, "the drift gone, said")
        assert town.events("town.drift")[-1]["count"] == "0"
