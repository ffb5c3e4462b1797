"""`upstream_failed` in the Lua scripts (fakeredis with Lua): a task whose dependency failed (for
good: permanently or out of retries) or was cancelled waits as upstream_failed, naming that task,
in the same script as the failure; re-running that task re-arms them all; and a task is in
exactly one state and, if ready, in exactly one queue throughout."""

from __future__ import annotations

import fakeredis
import pytest

from reconciler.spec.desired import Policy
from tests.store.test_transitions import Ops, queue, rec, state, take, upsert


@pytest.fixture
def ops() -> Ops:
    return Ops(fakeredis.FakeRedis(decode_responses=True))


def upstream(ops: Ops, tid: str) -> str | None:
    value = ops.client.hget(ops.keys.task(tid), "upstream")
    return None if value is None else str(value)


def events(ops: Ops, etype: str) -> list[dict[str, str]]:
    return [f for _, f in ops.client.xrange(ops.keys.events) if f["type"] == etype]


def queued(ops: Ops) -> list[str]:
    ids = []
    for key in ops.client.keys(ops.keys.queue("*")):
        ids.extend(ops.client.lrange(key, 0, -1))
    return sorted(ids)


def chain(ops: Ops) -> None:
    upsert(ops, rec("a"), rec("b", deps=("a",)), rec("c", "rev", deps=("b",)))


@pytest.mark.parametrize(("permanent", "retries"), [(True, 2), (False, 0)])
def test_a_failure_makes_the_whole_chain_below_it_upstream_failed(
    ops: Ops, permanent: bool, retries: int
) -> None:
    chain(ops)
    take(ops, "dev", "dev", "t1")
    assert ops.fail("a", "t1", "boom", permanent, Policy(retries=retries)) == "failed"
    assert [state(ops, t) for t in "abc"] == ["failed", "upstream_failed", "upstream_failed"]
    assert [upstream(ops, t) for t in "bc"] == ["a", "a"]  # both name the task that failed
    assert queued(ops) == []
    [news] = events(ops, "task.upstream_failed")
    assert (news["upstream"], news["count"], sorted(news["tasks"].split())) == (
        "a",
        "2",
        ["b", "c"],
    )


def test_retrying_is_not_failing(ops: Ops) -> None:
    chain(ops)
    take(ops, "dev", "dev", "t1")
    assert ops.fail("a", "t1", "boom", False, Policy(retries=1)) == "retrying"
    assert [state(ops, t) for t in "bc"] == ["blocked", "blocked"]


def test_retry_of_the_failed_task_re_arms_its_dependents_and_the_pipeline_completes(
    ops: Ops,
) -> None:
    chain(ops)
    take(ops, "dev", "dev", "t1")
    ops.fail("a", "t1", "boom", True, Policy())
    upsert(ops, {**rec("a"), "mode": "rerun"})  # what `tt retry a` sends
    assert [state(ops, t) for t in "abc"] == ["ready", "blocked", "blocked"]
    assert [upstream(ops, t) for t in "bc"] == [None, None]
    for tid, target in [("a", "dev"), ("b", "dev"), ("c", "rev")]:
        assert queued(ops) == [tid]
        assert take(ops, target, target, f"r-{tid}") == tid
        assert ops.complete(tid, f"r-{tid}", "ok")
    assert [state(ops, t) for t in "abc"] == ["completed"] * 3


def test_a_cancelled_dependency_makes_its_dependents_upstream_failed(ops: Ops) -> None:
    chain(ops)
    upsert(ops, {"mode": "cancel", "id": "a"})
    assert [state(ops, t) for t in "abc"] == ["cancelled", "upstream_failed", "upstream_failed"]
    assert [upstream(ops, t) for t in "bc"] == ["a", "a"] and queued(ops) == []
    upsert(ops, {**rec("a"), "mode": "rerun"})  # no longer cancelled in the file
    assert [state(ops, t) for t in "abc"] == ["ready", "blocked", "blocked"]


def test_fan_in_names_a_failed_dependency_while_one_is_left(ops: Ops) -> None:
    upsert(ops, rec("a"), rec("x"), rec("join", "rev", deps=("a", "x")))
    take(ops, "dev", "dev", "ta")
    ops.fail("a", "ta", "boom", True, Policy())
    take(ops, "dev", "dev", "tx")
    ops.fail("x", "tx", "bang", True, Policy())
    assert (state(ops, "join"), upstream(ops, "join")) == ("upstream_failed", "a")
    upsert(ops, {**rec("a"), "mode": "rerun"})
    assert (state(ops, "join"), upstream(ops, "join")) == ("upstream_failed", "x")
    upsert(ops, {**rec("x"), "mode": "rerun"})
    assert (state(ops, "join"), upstream(ops, "join")) == ("blocked", None)
    assert queue(ops, "dev") == ["a", "x"]


def test_a_failed_child_fails_its_group_and_what_waits_for_the_group(ops: Ops) -> None:
    upsert(
        ops,
        rec("c1"),
        rec("c2"),
        rec("epic", kind="group", deps=("c1", "c2")),
        rec("after", "rev", deps=("epic",)),
    )
    take(ops, "dev", "dev", "t1")
    ops.fail("c1", "t1", "boom", True, Policy())
    assert [state(ops, t) for t in ("c2", "epic", "after")] == [
        "ready",
        "upstream_failed",
        "upstream_failed",
    ]
    assert upstream(ops, "after") == "c1"


def test_a_new_task_under_a_failed_one_is_created_upstream_failed(ops: Ops) -> None:
    upsert(ops, rec("a"))
    take(ops, "dev", "dev", "t1")
    ops.fail("a", "t1", "boom", True, Policy())
    upsert(ops, rec("b", deps=("a",)), rec("c", deps=("b",)))
    assert [(state(ops, t), upstream(ops, t)) for t in "bc"] == [("upstream_failed", "a")] * 2
    assert queued(ops) == []


def test_a_new_definition_without_the_failed_dependency_waits_no_more(ops: Ops) -> None:
    chain(ops)
    take(ops, "dev", "dev", "t1")
    ops.fail("a", "t1", "boom", True, Policy())
    upsert(ops, rec("b"))  # b no longer depends on a
    assert [state(ops, t) for t in "bc"] == ["ready", "blocked"]
    assert [upstream(ops, t) for t in "bc"] == [None, None]


def test_an_upstream_failed_task_can_be_cancelled(ops: Ops) -> None:
    chain(ops)
    take(ops, "dev", "dev", "t1")
    ops.fail("a", "t1", "boom", True, Policy())
    upsert(ops, {"mode": "cancel", "id": "b"})
    assert (state(ops, "b"), upstream(ops, "b")) == ("cancelled", None)
    # c now waits for a cancelled task: retrying `a` would not let it run, so it names b.
    assert (state(ops, "c"), upstream(ops, "c")) == ("upstream_failed", "b")
