"""A task id used again after its tombstone was purged is a new task: its attempts start at 1
and every one of them is counted (lua/purge_tombstones.lua, lua/upsert_tasks.lua drop the old
task's own count); the town keeps what the old one cost."""

from __future__ import annotations

import json
import time

from reconciler.store.client import Store
from reconciler.store.turn import Outcome
from tests.store.test_limits import cost, turn
from tests.store.test_transitions import rec


def failed(task: str, token: str, attempt: int, usd: float) -> Outcome:
    detail = {"attempt": attempt, "agent": "dev", "exit_class": "failed", "cost_usd": usd}
    return Outcome(task, token, False, "boom", detail=json.dumps(detail))


def first_life(s: Store) -> None:
    s.set_budgets(10.0, {}, False)
    s.upsert_tasks([{**rec("a"), "retries": 5}], 1)
    for i in (1, 2):
        c = turn(s, None, f"t{i}")
        assert c.claimed is not None and c.claimed.attempt == i
        turn(s, failed("a", f"t{i}", i, 1.0), "")
        s.client.zadd(s.keys.timers, {"a": 0})  # its retry is due now
    c = turn(s, None, "t3")
    assert c.claimed is not None and c.claimed.attempt == 3
    turn(s, Outcome("a", "t3", True, "done", detail=cost("a", 3, 1.0)), "")
    assert s.spent() == {"town": 3.0, "agent:dev": 3.0, "task:a": 3.0}


def new_life(s: Store, usd: float) -> None:
    """Attempt 1 of the task `a` there now, completed at a cost of `usd`."""
    c = turn(s, None, "n1")
    assert c.claimed is not None and c.claimed.attempt == 1
    turn(s, Outcome("a", "n1", True, "done", detail=cost("a", 1, usd)), "")


def test_a_purged_task_id_used_again_has_every_attempt_counted(redis_store: Store) -> None:
    s = redis_store
    first_life(s)
    s.delete_tasks(["a"])
    s.purge_tombstones(time.time() + 1)
    assert "counted:a" not in s.client.hgetall(s.keys.spent)
    s.upsert_tasks([{**rec("a"), "hash": "h2"}], 2)  # back, a week later: a new task
    new_life(s, 2.5)
    assert s.spent() == {"town": 5.5, "agent:dev": 5.5, "task:a": 2.5}


def test_a_new_task_under_an_id_whose_count_was_left_starts_from_nothing(
    redis_store: Store,
) -> None:
    # A count left by an older tt (its purge kept it): a new task hash drops it too.
    s = redis_store
    s.client.hset(s.keys.spent, mapping={"counted:a": 3, "task:a": 3.0, "town": 3.0})
    s.upsert_tasks([rec("a")], 1)
    new_life(s, 2.5)
    assert s.spent() == {"town": 5.5, "agent:dev": 2.5, "task:a": 2.5}


def test_a_restored_task_keeps_its_count(redis_store: Store) -> None:
    # Deleted and back before keep_deleted: the same task, its attempts go on from 4.
    s = redis_store
    first_life(s)
    s.delete_tasks(["a"])
    s.upsert_tasks([{**rec("a"), "mode": "restore"}], 2)
    assert s.client.hget(s.keys.task("a"), "state") == "completed"  # as it was
    assert s.spent()["task:a"] == 3.0
    assert s.client.hget(s.keys.spent, "counted:a") == "3"


def test_a_new_task_drops_a_budget_mark_left_under_its_id_with_no_cost_kept(
    redis_store: Store,
) -> None:
    # upsert_tasks.lua clears a reused id's marks only where the town keeps a cost or a mark at
    # all: a mark without any `spent` hash is found and dropped as well.
    s = redis_store
    s.client.hset(s.keys.exhausted, mapping={"task:a": "1", "town": "1"})
    s.upsert_tasks([rec("a"), rec("b")], 1)
    assert s.client.hgetall(s.keys.exhausted) == {"town": "1"}
    assert not s.client.exists(s.keys.spent)
