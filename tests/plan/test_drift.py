"""`find_drift` on plain values: each kind of drift, what is not drift (a file change, what an
apply left on purpose, tt's own stops), and the plan `self_heal = false` lets an apply keep."""

from __future__ import annotations

from dataclasses import replace

from reconciler.plan.actions import Plan, Requeue, RerunTask
from reconciler.plan.diff import diff
from reconciler.plan.drift import Drift, DriftKind, find_drift, healing_only, stopped_by_hand
from reconciler.plan.state import Observed, Source, TaskState
from reconciler.spec.desired import AgentSpec, Desired, TaskSpec, TownSettings
from tests.plan.test_plan import observed, with_task

AGENTS = (AgentSpec("dev", "sim"), AgentSpec("pool", "sim", replicas=2))
A = TaskSpec("a", "first", agent="dev")
B = TaskSpec("b", "second", agent="dev", parent="a")
DIGESTS = (("town.toml", "t1"), ("tasks.toml", "k1"))


def town(*tasks: TaskSpec) -> Desired:
    return Desired(town=TownSettings("t"), agents=AGENTS, tasks=tasks, digests=DIGESTS)


def applied(desired: Desired, **states: TaskState) -> Observed:
    """Redis as the last apply of these very files left it, tasks then moved to `states`."""
    return replace(observed(desired, states), digests=dict(DIGESTS))


def record(spec: TaskSpec, state: str, **fields: str) -> dict[str, str]:
    return {
        "id": spec.id,
        "state": state,
        "spec": spec.canonical_json(),
        "hash": spec.spec_hash(),
        "source": "file",
        **fields,
    }


def drift_of(
    desired: Desired,
    seen: Observed,
    tasks: list[dict[str, str]] | None = None,
    agents: dict[str, dict[str, str]] | None = None,
    alive: dict[str, bool] | None = None,
) -> Drift:
    should_run = {n: not a.suspended for a in desired.agents for n in a.instances()}
    return find_drift(
        desired, seen, tasks or [], agents or {}, should_run=should_run, alive=alive or {}
    )


def kinds(found: Drift) -> list[tuple[DriftKind, str]]:
    return [(i.kind, i.object) for i in found.items]


def test_nothing_differs_right_after_an_apply() -> None:
    desired = town(A, B)
    found = drift_of(desired, applied(desired), [record(A, "ready"), record(B, "blocked")])
    assert found == Drift()
    assert found.as_json() == {"drift": [], "count": 0, "changed_files": []}


def test_a_task_made_with_no_save_is_drift_whatever_its_state() -> None:
    desired = town(A)
    cli = TaskSpec("extra", "by hand", agent="dev")
    tasks = [record(A, "ready"), record(cli, "running", source=Source.CLI.value)]
    found = drift_of(desired, applied(desired), tasks)
    assert kinds(found) == [(DriftKind.CLI_TASK, "task extra")]
    assert found.items[0].detail == "made with --no-save; running"


def test_a_hand_retry_is_drift_from_its_marker_with_the_attempt_it_began_at() -> None:
    desired = town(A)
    tasks = [record(A, "ready", rerun_by="tt retry", run_base="3")]
    [item] = drift_of(desired, applied(desired), tasks).items
    assert (item.kind, item.object) == (DriftKind.RETRIED, "task a")
    assert "re-run by tt retry from attempt 4" in item.detail
    assert item.detail.endswith("; ready")


def test_a_stored_spec_that_its_hash_does_not_match_was_edited_in_redis() -> None:
    desired = town(A)
    edited = record(A, "ready")
    edited["spec"] = replace(A, description="rm -rf").canonical_json()
    unreadable = {**record(B, "blocked"), "spec": "{not json"}
    found = drift_of(desired, applied(desired), [edited, unreadable])
    assert kinds(found) == [(DriftKind.EDITED, "task a"), (DriftKind.EDITED, "task b")]


def test_with_the_files_as_last_applied_each_change_of_the_plan_is_drift() -> None:
    desired = town(A, B, TaskSpec("c", "third", agent="dev", status="cancelled"))
    seen = applied(desired, b=TaskState.CANCELLED, c=TaskState.RUNNING)
    seen = with_task(seen, "a", spec_hash="other", spec_json=replace(A, agent="x").canonical_json())
    found = drift_of(desired, seen)
    assert kinds(found) == [
        (DriftKind.CANCELLED, "task b"),
        (DriftKind.STATE, "task c"),
        (DriftKind.EDITED, "task a"),
    ]
    assert found.items[1].detail == "running; tasks.toml cancels it"
    assert found.items[2].detail.startswith("agent differ from tasks.toml")


def test_a_task_deleted_from_redis_is_missing_and_a_done_one_not_completed_is_state() -> None:
    desired = town(A, replace(B, status="done"))
    seen = applied(desired, b=TaskState.READY)
    seen = replace(seen, tasks={"b": seen.tasks["b"]})
    found = drift_of(desired, seen)
    assert kinds(found) == [(DriftKind.STATE, "task b"), (DriftKind.MISSING, "task a")]


def test_after_a_file_change_the_differences_are_the_plans_not_drift() -> None:
    desired = town(A, B)
    seen = replace(applied(desired, b=TaskState.CANCELLED), digests={"town.toml": "t1"})
    tasks = [record(A, "ready", source="cli")]
    found = drift_of(desired, seen, tasks)
    assert found.changed_files == ("tasks.toml",)
    assert kinds(found) == [(DriftKind.CLI_TASK, "task a")]  # independent of the files


def test_what_an_apply_left_on_purpose_is_not_drift() -> None:
    """A completed task whose spec changed waits for `tt retry` or --rerun-changed, and a task
    an apply with --no-prune kept: the files' doing, both."""
    desired = town(A)
    seen = applied(desired, a=TaskState.COMPLETED)
    seen = with_task(
        seen, "a", spec_hash="older", spec_json=replace(A, description="x").canonical_json()
    )
    kept = replace(seen.tasks["a"], id="gone", spec_hash="h")
    seen = replace(seen, tasks={**seen.tasks, "gone": kept})
    assert drift_of(desired, seen) == Drift()


def test_an_agent_stopped_by_a_person_is_drift_but_not_one_tt_stopped_or_parked() -> None:
    desired = town()
    stopped = {"state": "stopped", "pid": "4242", "host": "h"}
    agents = {
        "dev": stopped,
        "pool-1": {**stopped, "stopped_by": "suspended"},
        "pool-2": {"state": "stopped", "pid": ""},  # never started / recorded dead
    }
    found = drift_of(desired, applied(desired), agents=agents)
    assert kinds(found) == [(DriftKind.AGENT_STOPPED, "agent dev")]
    assert found.items[0].detail == "stopped by hand (pid 4242)"
    # Alive again (restarted since), or no longer meant to run here: not drift.
    assert drift_of(desired, applied(desired), agents=agents, alive={"dev": True}) == Drift()
    parked = replace(desired, agents=(replace(AGENTS[0], suspended=True), AGENTS[1]))
    assert drift_of(parked, applied(parked), agents=agents).items == ()


def test_stopped_by_hand_needs_a_clean_exit_that_tt_did_not_ask_for() -> None:
    assert stopped_by_hand({"state": "stopped", "pid": "1"}, alive=False)
    assert not stopped_by_hand({"state": "stopped", "pid": "1"}, alive=True)
    assert not stopped_by_hand({"state": "backoff", "pid": ""}, alive=False)  # a crash
    assert not stopped_by_hand(
        {"state": "stopped", "pid": "1", "stopped_by": "tt down"}, alive=False
    )


def test_healing_only_keeps_the_dispatch_repairs_and_nothing_that_undoes_drift() -> None:
    desired = town(A, B)
    seen = applied(desired, a=TaskState.CANCELLED)
    seen = with_task(seen, "b", state=TaskState.READY, queued=False)
    plan = diff(desired, seen, 0.0)
    assert any(isinstance(a, RerunTask) for a in plan.actions)
    kept = healing_only(plan)
    assert kept.actions and all(isinstance(a, Requeue) for a in kept.actions)
    assert healing_only(Plan()) == Plan()
