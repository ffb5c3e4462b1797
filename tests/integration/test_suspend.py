"""Suspend and resume a running town (#19): with real Valkey, a watcher and a sim agent, a
suspension between two tasks of a pipeline lets the running one finish and starts no other;
resuming finishes the pipeline. The watcher reports the health (`town.health`) as it changes."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from tests.integration.live import live_town, until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="finds processes through /proc"),
]

TOWN = '[town]\nname = "pause"\nheartbeat = "1s"\n\n[agents.dev]\nmodel = "sim"\n'
TASKS = """
[[tasks]]
id = "first"
description = "build it"
agent = "dev"

[[tasks]]
id = "second"
description = "test it"
agent = "dev"
depends_on = ["first"]
"""


def test_suspend_stops_a_pipeline_between_two_tasks_and_resume_finishes_it(
    tmp_path: Path,
) -> None:
    with live_town(tmp_path / "pause", sim_delay=0.05) as town:
        gate = tmp_path / "gate"  # the sim model waits until this file exists
        town.env["TT_SIM_GATE"] = str(gate)
        town.write(TOWN, TASKS)
        assert town.tt("apply").returncode == 0
        watcher = town.start_watcher()
        until(lambda: town.tasks()["first"]["state"] == "running", 30, "first running")

        done = town.tt("suspend")
        assert done.returncode == 0, done.stderr
        assert "suspend = true" in (town.root / "town.toml").read_text()
        gate.touch()  # the running attempt finishes...
        until(lambda: town.tasks()["first"]["state"] == "completed", 30, "first completed")
        # ... and the idle agent's pop of the next task is parked, not claimed.
        until(lambda: town.store.parked_ids() == ["second"], 30, "second parked")
        second = town.tasks()["second"]
        assert second["state"] == "ready" and second.get("attempt", "0") == "0"
        assert town.agents()["dev"]["state"] == "idle"
        assert "dev" in town.live_agents()  # still running, taking nothing
        status = json.loads(town.tt("status", "-o", "json").stdout)
        assert status["health"]["state"] == "suspended"
        until(
            lambda: any(e["state"] == "suspended" for e in town.events("town.health")),
            30,
            "the watcher's town.health event",
        )

        resumed = town.tt("resume")
        assert resumed.returncode == 0, resumed.stderr
        assert f"resumed town '{town.name}'" in resumed.stdout
        until(lambda: town.tasks()["second"]["state"] == "completed", 30, "second completed")
        assert [a["outcome"] for a in town.attempts("second")] == ["completed"]
        until(
            lambda: town.events("town.health")[-1]["state"] == "healthy",
            30,
            "healthy again",
        )
        said = [(e["state"], e["reasons"]) for e in town.events("town.health")]
        assert all(a != b for a, b in itertools.pairwise(said)), said  # on change only
        assert watcher.poll() is None, town.log_of(watcher)
