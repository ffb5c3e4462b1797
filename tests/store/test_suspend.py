"""A suspended town on a real Lua engine: no agent claims a task (a popped one is parked, not lost),
the attempt running ends as usual, and resuming puts what was parked back at the head of its
queue in order; the state counts and the recorded health the loop reads."""

from __future__ import annotations

from reconciler.store.client import Store
from reconciler.store.turn import Outcome
from tests.store.test_transitions import rec
from tests.store.test_turn import field, turn


def queued(s: Store, target: str = "dev") -> list[str]:
    return [str(i) for i in s.client.lrange(s.keys.queue(target), 0, -1)]


def test_a_suspended_town_claims_nothing_and_resume_gives_it_back(redis_store: Store) -> None:
    s = redis_store
    s.upsert_tasks([rec("a"), rec("b"), rec("c")], 1)
    running = turn(s, None, "t1")
    assert running.claimed is not None and running.claimed.task_id == "a"
    assert s.set_suspended(True, "tt suspend") and not s.set_suspended(True, "tt suspend")
    assert s.is_suspended()
    # The running attempt completes; the same turn claims nothing new.
    after = turn(s, Outcome("a", "t1", True, "done"), "t2")
    assert after.reported == "1" and after.claimed is None
    assert field(s, "a", "state") == "completed"
    assert s.client.hmget(s.keys.agent("dev"), "state", "task") == ["idle", ""]
    # An idle agent's blocking pop took `b` from its queue: parked, not claimed, not lost.
    assert s.client.lpop(s.keys.queue("dev")) == "b"
    assert turn(s, None, "t3", popped="b").claimed is None
    assert field(s, "b", "state") == "ready" and s.parked_ids() == ["b"]
    assert s.claim("c", "dev", "t4") is None  # the one-task claim too
    assert s.parked_ids() == ["b", "c"] and queued(s) == ["c"]
    assert s.state_counts() == {"completed": 1, "ready": 2}
    # Resumed: what was parked goes back first, in order; the next turn claims it.
    assert s.set_suspended(False, "tt resume") and not s.set_suspended(False, "tt resume")
    assert not s.is_suspended() and s.parked_ids() == []
    assert queued(s) == ["b", "c", "c"]  # the stale second `c` is dropped when popped
    again = turn(s, None, "t5")
    assert again.claimed is not None and again.claimed.task_id == "b"
    types = [f["type"] for _, f in s.events_since("0")]
    assert types.count("town.suspended") == 1 and types.count("town.resumed") == 1


def test_a_parked_task_cancelled_meanwhile_is_not_queued_again(redis_store: Store) -> None:
    s = redis_store
    s.upsert_tasks([rec("a")], 1)
    s.set_suspended(True, "tt suspend")
    assert s.client.lpop(s.keys.queue("dev")) == "a"
    assert turn(s, None, "t1", popped="a").claimed is None
    s.client.hset(s.keys.task("a"), "state", "cancelled")
    s.set_suspended(False, "tt resume")
    assert queued(s) == [] and s.parked_ids() == []


def test_the_recorded_health_is_swapped(redis_store: Store) -> None:
    s = redis_store
    assert s.swap_health('{"state": "healthy"}') is None
    assert s.swap_health('{"state": "degraded"}') == '{"state": "healthy"}'
