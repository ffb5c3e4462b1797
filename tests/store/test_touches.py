"""Tasks whose `touches` overlap never run at once (fakeredis with Lua): the earlier in file order
goes first, the later is held back (ready, out of its queue, `waiting_for` saying why) and put
back at its queue's front when the other completes, fails, retries, is handed back or cancelled.
"""

from __future__ import annotations

import json

import fakeredis
import pytest

from reconciler.spec.desired import Policy
from reconciler.store.observed import read_observed
from reconciler.store.turn import Outcome
from tests.store.test_transitions import Ops, queue, rec, state, upsert

POLICY = Policy(retries=1, retry_backoff=30, retry_backoff_max=60)


@pytest.fixture
def ops() -> Ops:
    return Ops(fakeredis.FakeRedis(decode_responses=True))


def touching(tid: str, order: int, *overlaps: str, **kw: object) -> dict[str, object]:
    r = rec(tid, order=order, **kw)  # type: ignore[arg-type]
    r["overlaps"] = list(overlaps)
    return r


def claim(ops: Ops, tid: str, token: str) -> bool:
    """What a worker does with an id it popped: claim it (held back: None)."""
    ops.client.lrem(ops.keys.queue("dev"), 0, tid)
    return ops.claim(tid, "dev", token) is not None


def field(ops: Ops, tid: str, name: str) -> str | None:
    value = ops.client.hget(ops.keys.task(tid), name)
    return None if value is None else str(value)


def two_overlapping(ops: Ops) -> None:
    upsert(ops, touching("a", 0, "b"), touching("b", 1, "a"), rec("c", order=2))
    assert queue(ops, "dev") == ["a", "b", "c"]


def test_when_both_are_ready_the_earlier_goes_first(ops: Ops) -> None:
    two_overlapping(ops)
    assert not claim(ops, "b", "tb")  # popped first (another worker's queue order): held back
    assert state(ops, "b") == "ready" and field(ops, "b", "waiting_for") == "a"
    assert queue(ops, "dev") == ["a", "c"]  # out of the queue: no worker spins on it
    assert claim(ops, "c", "tc")  # a task without touches is never held
    assert claim(ops, "a", "ta")
    assert field(ops, "b", "waiting_for") == "a"  # still: `a` runs now
    assert ops.complete("a", "ta", "done")
    assert queue(ops, "dev") == ["b"] and field(ops, "b", "waiting_for") is None
    assert claim(ops, "b", "tb") and state(ops, "b") == "running"
    events = [e for _, e in ops.client.xrange(ops.keys.events) if e["type"] == "task.held"]
    assert [(e["task"], e["waits_for"], e["reason"]) for e in events] == [
        ("b", "a", "touches overlap")
    ]


def test_a_running_later_task_holds_back_an_earlier_one(ops: Ops) -> None:
    upsert(ops, rec("dep"), touching("a", 1, "b", deps=("dep",)), touching("b", 2, "a"))
    assert claim(ops, "b", "tb")  # `a` is not ready yet (it waits for `dep`)
    assert claim(ops, "dep", "td") and ops.complete("dep", "td", "ok")
    assert queue(ops, "dev") == ["a"]
    assert not claim(ops, "a", "ta") and field(ops, "a", "waiting_for") == "b"
    assert ops.complete("b", "tb", "ok")
    assert queue(ops, "dev") == ["a"] and claim(ops, "a", "ta")


@pytest.mark.parametrize("how", ["failed", "retrying", "handed back", "cancelled", "done"])
def test_the_held_task_runs_once_the_other_stops_running(ops: Ops, how: str) -> None:
    two_overlapping(ops)
    assert claim(ops, "a", "ta")
    assert not claim(ops, "b", "tb")
    if how in ("failed", "retrying"):
        assert ops.fail("a", "ta", "boom", how == "failed", POLICY) == how
    elif how == "handed back":
        assert ops.hand_back("a", "ta")
    else:  # the file says so: an upsert record of `a`
        upsert(ops, {"mode": "cancel" if how == "cancelled" else "complete", "id": "a"})
    assert field(ops, "b", "waiting_for") is None
    if how == "handed back":  # `a` is ready again and earlier: `b` waits again, behind it
        assert queue(ops, "dev")[:2] == ["b", "a"]
        assert not claim(ops, "b", "tb") and field(ops, "b", "waiting_for") == "a"
        assert claim(ops, "a", "ta2") and ops.complete("a", "ta2", "ok")
    assert queue(ops, "dev")[0] == "b" and claim(ops, "b", "tb")


def test_a_turn_skips_a_held_task_and_claims_the_next(ops: Ops) -> None:
    two_overlapping(ops)
    first = ops.turn("dev", None, "t1", ["dev"], POLICY)
    assert first.claimed is not None and first.claimed.task_id == "a"
    other = ops.turn("w2", None, "t2", ["dev"], POLICY)  # pops b (held), then claims c
    assert other.claimed is not None and other.claimed.task_id == "c"
    assert queue(ops, "dev") == [] and field(ops, "b", "waiting_for") == "a"
    done = ops.turn("dev", Outcome("a", "t1", True, "ok"), "t3", ["dev"], POLICY)
    assert done.claimed is not None and done.claimed.task_id == "b"  # woken, in the same turn


def test_tasks_whose_touches_do_not_overlap_both_run(ops: Ops) -> None:
    upsert(ops, touching("a", 0), touching("b", 1), rec("c", order=2))
    assert claim(ops, "b", "tb") and claim(ops, "a", "ta") and claim(ops, "c", "tc")


def test_overlaps_stay_symmetric_whichever_task_is_rewritten(ops: Ops) -> None:
    upsert(ops, touching("a", 0, "b", "z"))  # `b`, `z` do not exist yet: left alone
    assert field(ops, "a", "overlaps") == '["b","z"]' and field(ops, "z", "state") is None
    upsert(ops, touching("b", 1, "a"))
    upsert(ops, touching("c", 2, "a"))  # `a` learns of `c` from `c`'s record
    assert sorted(json.loads(field(ops, "a", "overlaps") or "[]")) == ["b", "c", "z"]
    upsert(ops, touching("b", 1))  # `b`'s touches moved away: `a` forgets it
    assert field(ops, "b", "overlaps") is None
    assert sorted(json.loads(field(ops, "a", "overlaps") or "[]")) == ["c", "z"]
    assert claim(ops, "b", "tb") and claim(ops, "a", "ta")


def test_an_edit_of_a_held_task_queues_it_again(ops: Ops) -> None:
    two_overlapping(ops)
    assert claim(ops, "a", "ta") and not claim(ops, "b", "tb")
    edited = touching("b", 1, "a")
    edited["hash"] = "h2"
    upsert(ops, edited)
    assert queue(ops, "dev") == ["c", "b"] and field(ops, "b", "waiting_for") is None
    assert not claim(ops, "b", "tb")  # held again: `a` still runs
    assert ops.complete("a", "ta", "ok") and queue(ops, "dev")[0] == "b"


def test_a_held_task_counts_as_queued_only_while_it_is_held(ops: Ops) -> None:
    two_overlapping(ops)
    assert claim(ops, "a", "ta") and not claim(ops, "b", "tb")
    assert read_observed(ops).tasks["b"].queued  # the plan repairs nothing
    assert ops.held_ids(["b", "c"]) == {"b"}
    assert ops.check_clean("fp", record=True)[0]  # nor does the no-op fast path's walk
    # Were a wake ever missed (here: `a` completed by hand), the plan would requeue it.
    ops.client.hset(ops.keys.task("a"), "state", "completed")
    assert not read_observed(ops).tasks["b"].queued
    assert not ops.check_clean("fp", record=True)[0]
    assert ops.requeue(["b"]) == 1 and queue(ops, "dev")[-1] == "b"
    assert field(ops, "b", "waiting_for") is None and claim(ops, "b", "tb")
