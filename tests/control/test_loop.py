"""`outcome`: when `tt wait` / `apply --wait` are done, and what they count as failed."""

from __future__ import annotations

from reconciler.control.loop import outcome


def task(tid: str, state: str, **fields: str) -> dict[str, str]:
    return {"id": tid, "state": state, **fields}


def test_upstream_failed_is_finished_and_counts_as_failed() -> None:
    records = [
        task("a", "failed", error="boom"),
        task("b", "upstream_failed", upstream="a"),
        task("x", "cancelled"),
        task("y", "upstream_failed", upstream="x"),
        task("z", "completed"),
    ]
    done, failed, unfinished = outcome(records)
    assert done and unfinished == []
    assert [(f["id"], f.get("upstream_state")) for f in failed] == [
        ("a", None),
        ("b", "failed"),
        ("y", "cancelled"),
    ]


def test_a_task_still_waiting_or_running_is_not_done() -> None:
    records = [task("a", "retrying"), task("b", "blocked"), task("c", "upstream_failed")]
    done, failed, unfinished = outcome(records)
    assert not done
    assert [f["id"] for f in failed] == ["c"]
    assert [u["id"] for u in unfinished] == ["a", "b"]


def test_a_task_waiting_for_a_deleted_one_is_failed_naming_it() -> None:
    from cli.cmd_loop import failure

    records = [task("later", "upstream_failed", upstream="tidy"), task("a", "completed")]
    done, failed, _ = outcome(records)  # tidy was pruned: not a task any more
    assert done
    assert [failure(f) for f in failed] == ["upstream_failed: tidy was deleted"]


def test_an_agent_not_started_for_a_missing_variable_is_reported_once_per_reason() -> None:
    """Every heal pass finds it again: the loop says it once, again if the reason changes or
    after the agent started."""
    from typing import Any, cast

    from reconciler.control.fleet import FleetChange
    from reconciler.control.loop import Loop, LoopOptions

    said: list[str] = []
    loop = Loop(cast(Any, None), LoopOptions(), lambda kind, f: said.append(f["detail"]))
    missing = FleetChange("dev", "not started", "missing env KEY")
    for changes in (
        [missing],
        [missing],
        [FleetChange("dev", "not started", "missing env KEY OTHER")],
        [FleetChange("dev", "started", "pid 7")],
        [missing],
    ):
        loop._fleet_changes(changes)
    assert said == [
        "not started missing env KEY",
        "not started missing env KEY OTHER",
        "started pid 7",
        "not started missing env KEY",
    ]
