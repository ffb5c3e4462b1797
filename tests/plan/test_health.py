"""The town's health from plain values: every input, and worst wins."""

from __future__ import annotations

import pytest

from reconciler.plan.health import Health, HealthState, describe, town_health

IDLE = [{"name": "dev", "state": "idle"}]


def test_a_town_with_nothing_to_do_is_healthy() -> None:
    assert town_health([], {}, suspended=False) == Health(HealthState.HEALTHY)
    done = town_health(IDLE, {"completed": 3, "cancelled": 1}, suspended=False)
    assert done.text() == "healthy"
    assert done.as_json() == {"state": "healthy", "reasons": []}


@pytest.mark.parametrize(
    ("counts", "reasons"),
    [
        ({"running": 1}, ["1 running task"]),
        ({"ready": 2}, ["2 ready tasks"]),
        ({"retrying": 1}, ["1 retrying task"]),
        ({"blocked": 4}, ["4 blocked tasks"]),
        (
            {"blocked": 1, "ready": 2, "running": 3, "completed": 9},
            ["3 running tasks", "2 ready tasks", "1 blocked task"],
        ),
    ],
)
def test_work_running_ready_retrying_or_blocked_is_progress(
    counts: dict[str, int], reasons: list[str]
) -> None:
    health = town_health(IDLE, counts, suspended=False)
    assert health.as_json() == {"state": "progressing", "reasons": reasons}


@pytest.mark.parametrize(
    ("agents", "counts", "newest_invalid", "text"),
    [
        ([], {"failed": 2, "running": 1}, False, "degraded (2 failed tasks)"),
        ([], {"upstream_failed": 1}, False, "degraded (1 upstream_failed task)"),
        (
            [{"name": "dev", "state": "quarantined"}, {"name": "qa", "state": "idle"}],
            {"ready": 1},
            False,
            "degraded (agent dev quarantined)",
        ),
        (
            [{"name": "b", "state": "backoff"}, {"name": "a", "state": "backoff"}],
            {},
            False,
            "degraded (agents a, b crash-looping)",
        ),
        (
            [{"name": f"w{i}", "state": "quarantined"} for i in range(5)],
            {},
            False,
            "degraded (5 agents quarantined)",
        ),
        (IDLE, {"completed": 1}, True, "degraded (newest revision invalid)"),
        (
            [{"name": "dev", "state": "quarantined"}],
            {"failed": 2, "upstream_failed": 3},
            True,
            "degraded (newest revision invalid, agent dev quarantined, 2 failed tasks, "
            "3 upstream_failed tasks)",
        ),
    ],
)
def test_failures_sick_agents_and_an_invalid_revision_degrade(
    agents: list[dict[str, str]], counts: dict[str, int], newest_invalid: bool, text: str
) -> None:
    health = town_health(agents, counts, suspended=False, newest_invalid=newest_invalid)
    assert health.state is HealthState.DEGRADED
    assert health.text() == text


def test_suspended_wins_over_everything_and_says_what_still_runs() -> None:
    sick = [{"name": "dev", "state": "quarantined"}]
    health = town_health(sick, {"failed": 1, "running": 2}, suspended=True, newest_invalid=True)
    assert health.as_json() == {
        "state": "suspended",
        "reasons": ["nothing starts until tt resume", "2 running tasks finishing"],
    }
    quiet = town_health(IDLE, {"completed": 1}, suspended=True)
    assert quiet.text() == "suspended (nothing starts until tt resume)"


def test_describe_reads_a_health_from_json() -> None:
    assert describe("healthy", []) == "healthy"
    assert describe("degraded", ["a", "b"]) == "degraded (a, b)"
