"""An agent's transitions on a real Lua engine (Valkey and the system Redis): what fakeredis's Lua
does not reproduce, such as the 14 digits cjson keeps of a number."""

from __future__ import annotations

from reconciler.store.client import Store
from tests.store.test_transitions import rec


def test_an_attempts_times_are_exact(redis_store: Store) -> None:
    # cjson keeps 14 digits (0.1 ms): a start written through it could come before the
    # completion that released the task, when both happen in the same 0.1 ms.
    s = redis_store
    s.upsert_tasks([rec("a", "dev")], 1)
    assert s.client.lpop(s.keys.queue("dev")) == "a"
    assert s.claim("a", "dev", "t1") is not None
    assert s.complete("a", "t1", "ok")
    started, finished = s.client.hmget(s.keys.task("a"), "started_at", "finished_at")
    [attempt] = s.attempt_history("a")
    assert attempt["started_at"] == float(started) and attempt["finished_at"] == float(finished)
    assert attempt["outcome"] == "completed" and attempt["agent"] == "dev"
