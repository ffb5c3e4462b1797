"""Approval gates and `run_if` in the Lua scripts (fakeredis with Lua): lua/ready.lua decides as
`plan.conditions.readiness` does, on creation, on a settle and in the clean check; a task with
`approve` awaits approval after its attempt; approve.lua and reject.lua are the only ways on,
fenced by the state (a task that does not await approval is left as it was)."""

from __future__ import annotations

import itertools

import fakeredis
import pytest

from reconciler.plan.conditions import readiness
from reconciler.plan.model import StoreModel
from reconciler.plan.state import ObservedTask, TaskState
from reconciler.spec.desired import Policy
from tests.store.test_transitions import Ops, queue, rec, state, take, upsert

FINAL = ("completed", "failed", "cancelled", "skipped", "upstream_failed")


@pytest.fixture
def ops() -> Ops:
    return Ops(fakeredis.FakeRedis(decode_responses=True))


def events(ops: Ops, etype: str) -> list[dict[str, str]]:
    return [f for _, f in ops.client.xrange(ops.keys.events) if f["type"] == etype]


def _deps_in(ops: Ops, states: tuple[str, ...]) -> tuple[str, ...]:
    """Dependencies in `states`, each as the scripts would leave it (a skipped one is a
    run_if = failure task after a success, an upstream_failed one waits for a failure)."""
    upsert(ops, rec("ok"), rec("bad"))
    ops.client.delete(ops.keys.queue("dev"))
    ops.client.hset(ops.keys.task("ok"), "state", "completed")
    ops.client.hset(ops.keys.task("bad"), "state", "failed")
    ids = tuple(f"d{i}" for i in range(len(states)))
    for d, s in zip(ids, states, strict=True):
        if s == "skipped":
            upsert(ops, {**rec(d, deps=("ok",)), "run_if": "failure"})
        elif s == "upstream_failed":
            upsert(ops, rec(d, deps=("bad",)))
        else:
            upsert(ops, rec(d))
            ops.client.hset(ops.keys.task(d), "state", s)
            ops.client.lrem(ops.keys.queue("dev"), 0, d)
        assert state(ops, d) == s
    return ids


@pytest.mark.parametrize("run_if", ["success", "failure", "always"])
@pytest.mark.parametrize("states", [*itertools.product(FINAL, repeat=2), ("running",), ()])
def test_lua_readiness_is_the_plans(run_if: str, states: tuple[str, ...]) -> None:
    want = readiness(run_if, [TaskState(s) for s in states]).value
    # created with its dependencies as they are (upsert_tasks.lua `create`)
    ops = Ops(fakeredis.FakeRedis(decode_responses=True))
    deps = _deps_in(ops, states)
    upsert(ops, {**rec("t", deps=deps), "run_if": run_if})
    assert state(ops, "t") == want
    assert ("t" in queue(ops, "dev")) == (want == "ready")
    # settled again once they got there (requeue.lua: `settle`), from blocked
    ops.client.hset(ops.keys.task("t"), "state", "blocked")
    ops.client.lrem(ops.keys.queue("dev"), 0, "t")
    ops.requeue(["t"])
    assert state(ops, "t") == want
    # the no-op fast path agrees that this is what it should be (clean.lua)
    assert ops.check_clean("fp", record=True)[0]


@pytest.mark.parametrize("states", [*itertools.product(FINAL, repeat=2), ("running",)])
def test_lua_readiness_of_a_group_is_the_plans(states: tuple[str, ...]) -> None:
    """A group of members in `states`: a skipped member counts as done (review of #15)."""
    verdict = readiness("success", [TaskState(s) for s in states], group=True).value
    want = "completed" if verdict == "ready" else verdict  # a ready group is completed
    ops = Ops(fakeredis.FakeRedis(decode_responses=True))
    upsert(ops, rec("t", deps=_deps_in(ops, states), kind="group"))
    assert state(ops, "t") == want
    ops.client.hset(ops.keys.task("t"), "state", "blocked")
    ops.requeue(["t"])
    assert state(ops, "t") == want
    assert ops.check_clean("fp", record=True)[0]


@pytest.mark.parametrize("run_if", ["success", "failure", "always"])
@pytest.mark.parametrize("states", [*itertools.product(FINAL, repeat=2), ("running",)])
def test_lua_readiness_after_a_sequential_member_is_the_plans(
    run_if: str, states: tuple[str, ...]
) -> None:
    """The first dependency is the member before it in a sequential group (`after`): skipped,
    it counts as done, in the plan's model as in the scripts."""
    ops = Ops(fakeredis.FakeRedis(decode_responses=True))
    deps = _deps_in(ops, states)
    model = StoreModel(
        [ObservedTask(d, TaskState(s)) for d, s in zip(deps, states, strict=True)]
        + [ObservedTask("t", TaskState.BLOCKED, deps=deps, run_if=run_if, after=deps[0])]
    )
    want = model._verdict("t").value
    upsert(ops, {**rec("t", deps=deps), "run_if": run_if, "after": deps[0]})
    assert state(ops, "t") == want
    ops.client.hset(ops.keys.task("t"), "state", "blocked")
    ops.client.lrem(ops.keys.queue("dev"), 0, "t")
    ops.requeue(["t"])
    assert state(ops, "t") == want
    assert ops.check_clean("fp", record=True)[0]


def test_a_cleanup_runs_after_a_failure_and_is_skipped_after_a_success(ops: Ops) -> None:
    upsert(
        ops,
        rec("a"),
        {**rec("cleanup", deps=("a",)), "run_if": "failure"},
        rec("after", deps=("cleanup",)),
        {**rec("report", deps=("a",)), "run_if": "always"},
    )
    assert [state(ops, t) for t in ("cleanup", "after", "report")] == ["blocked"] * 3
    take(ops, "dev", "dev", "t1")
    assert ops.complete("a", "t1", "fine")
    assert [state(ops, t) for t in ("cleanup", "after", "report")] == [
        "skipped",
        "skipped",
        "ready",
    ]
    (skip,) = events(ops, "task.skipped")
    assert sorted(skip["tasks"].split()) == ["after", "cleanup"]
    upsert(ops, {**rec("a"), "mode": "rerun"})  # `tt retry a`: the skips are undone
    assert [state(ops, t) for t in ("cleanup", "after")] == ["blocked", "blocked"]
    ops.client.lrem(ops.keys.queue("dev"), 0, "report")
    take(ops, "dev", "dev", "t2")
    assert ops.fail("a", "t2", "boom", True, Policy()) == "failed"
    assert [state(ops, t) for t in ("cleanup", "after")] == ["ready", "blocked"]


def test_an_approved_task_waits_then_completes_and_releases(ops: Ops) -> None:
    upsert(ops, {**rec("a"), "approve": 1}, rec("b", deps=("a",)))
    take(ops, "dev", "dev", "t1")
    assert ops.complete("a", "t1", "my work")
    assert (state(ops, "a"), state(ops, "b")) == ("awaiting_approval", "blocked")
    assert ops.client.hget(ops.keys.task("a"), "result") == "my work"
    assert ops.client.hget(ops.keys.agent("dev"), "task") == ""  # the agent is free
    assert ops.reject("b", "ann", "no", Policy()) == (False, "blocked")  # nothing written
    assert ops.approve("a", "ann", "looks good") == (True, "completed")
    assert (state(ops, "a"), queue(ops, "dev")) == ("completed", ["b"])
    (ev,) = events(ops, "task.approved")
    assert (ev["task"], ev["by"], ev["comment"]) == ("a", "ann", "looks good")
    assert ops.approve("a", "ann", "") == (False, "completed")  # once


def test_a_rejection_reopens_with_the_reason_and_counts_a_retry(ops: Ops) -> None:
    upsert(ops, {**rec("a"), "approve": 1, "retries": 1})
    for attempt, token in enumerate(("t1", "t2"), 1):
        take(ops, "dev", "dev", token)
        assert ops.complete("a", token, "v")
        want = "ready" if attempt == 1 else "failed"
        assert ops.reject("a", "bob", "too slow", Policy()) == (True, want)
    claim = ops.client.hgetall(ops.keys.task("a"))
    assert (claim["state"], claim["error"], claim["rejected_by"]) == (
        "failed",
        "rejected: too slow",
        "bob",
    )
    assert len(events(ops, "task.rejected")) == 2


def test_a_gate_awaits_approval_when_its_dependencies_complete(ops: Ops) -> None:
    upsert(ops, rec("a"), rec("go", target="", deps=("a",), kind="gate"), rec("b", deps=("go",)))
    assert state(ops, "go") == "blocked"
    take(ops, "dev", "dev", "t1")
    ops.complete("a", "t1", "built")
    assert (state(ops, "go"), state(ops, "b")) == ("awaiting_approval", "blocked")
    assert ops.reject("go", "cy", "not today", Policy()) == (True, "failed")
    assert state(ops, "b") == "upstream_failed"


def test_a_claim_after_a_rejection_carries_its_reason_and_only_then(ops: Ops) -> None:
    """The prompt's review section comes from the rejection fields (reject.lua records the
    attempt it rejected), not from an error that reads like one."""
    upsert(ops, {**rec("a"), "approve": 1, "retries": 3})
    take(ops, "dev", "dev", "t1")
    assert ops.complete("a", "t1", "v1")
    ops.reject("a", "bob", "add a changelog entry", Policy())
    ops.client.lpop(ops.keys.queue("dev"))
    second = ops.claim("a", "dev", "t2")
    assert second is not None and second.rejection == "add a changelog entry"
    again = ops.claim("a", "dev", "t2")  # the same claim again (its reply was lost)
    assert again is not None and again.rejection == "add a changelog entry"
    assert ops.fail("a", "t2", "rejected: by the API", False, Policy(retry_backoff=0)) == "retrying"
    ops.client.hset(ops.keys.task("a"), mapping={"state": "ready"})
    third = ops.claim("a", "dev", "t3")
    assert third is not None and third.previous_error == "rejected: by the API"
    assert third.rejection is None  # the model's own error: no review
