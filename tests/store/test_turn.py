"""An agent's transitions on a real Lua engine (Valkey and the system Redis): what fakeredis's Lua
does not reproduce, such as the 14 digits cjson keeps of a number."""

from __future__ import annotations

import time

import pytest

from reconciler.errors import RedisUnavailable
from reconciler.spec.desired import Policy
from reconciler.store.client import Store
from reconciler.store.turn import Outcome, Turn
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


TARGETS = ["dev", "@dev", "*backlog"]  # own queue, pool, backlog: a worker's order
POLICY = Policy(retries=1, retry_backoff=30, retry_backoff_max=60)


def turn(s: Store, outcome: Outcome | None, token: str, popped: str = "") -> Turn:
    return s.turn("dev", outcome, token, TARGETS, POLICY, popped)


def field(s: Store, tid: str, name: str) -> str | None:
    value = s.client.hget(s.keys.task(tid), name)
    return None if value is None else str(value)


def test_one_turn_reports_the_last_attempt_and_claims_the_next(redis_store: Store) -> None:
    s = redis_store
    s.upsert_tasks([rec("a"), rec("b", deps=("a",))], 1)
    first = turn(s, None, "t1")
    assert first.claimed is not None and first.claimed.task_id == "a" and first.reported == ""
    assert s.client.hmget(s.keys.agent("dev"), "state", "task") == ["working", "a"]
    # Completing `a` releases `b`, which the same call claims, with `a`'s result for its prompt.
    second = turn(s, Outcome("a", "t1", True, "the design"), "t2")
    assert second.reported == "1" and field(s, "a", "state") == "completed"
    assert second.claimed is not None and second.claimed.task_id == "b"
    assert [(d.id, d.agent, d.result) for d in second.claimed.deps] == [("a", "dev", "the design")]
    assert field(s, "b", "state") == "running" and field(s, "b", "token") == "t2"
    assert s.client.hmget(s.keys.agent("dev"), "state", "task") == ["working", "b"]
    # Nothing left: reported, idle, and the pop's timeout knows of no timer.
    last = turn(s, Outcome("b", "t2", True, "built"), "t3")
    assert last.claimed is None and last.next_timer is None and last.reported == "1"
    assert s.client.hmget(s.keys.agent("dev"), "state", "task", "model_pid") == ["idle", "", ""]


def test_a_turn_retried_after_a_lost_reply_returns_the_same_claim(redis_store: Store) -> None:
    s = redis_store
    s.upsert_tasks([rec("a"), rec("b")], 1)
    first = turn(s, None, "t1")
    again = turn(s, None, "t1")
    assert first.claimed is not None and again.claimed == first.claimed
    assert field(s, "a", "attempt") == "1" and s.client.lrange(s.keys.queue("dev"), 0, -1) == ["b"]


def test_a_stale_outcome_changes_nothing_and_a_failure_sets_a_timer(redis_store: Store) -> None:
    s = redis_store
    s.upsert_tasks([rec("a")], 1)
    assert turn(s, None, "t1").claimed is not None
    stale = turn(s, Outcome("a", "old", True, "late"), "")
    assert stale.reported == "0" and field(s, "a", "state") == "running"
    failed = turn(s, Outcome("a", "t1", False, "exit code 1: boom"), "t2")
    assert failed.reported == "retrying" and failed.claimed is None
    assert failed.next_timer is not None and 25 < failed.next_timer < 35  # 30 s ± 10 %
    assert field(s, "a", "error") == "exit code 1: boom"


def test_control_requests_and_mail_come_before_the_work_they_precede(redis_store: Store) -> None:
    s = redis_store
    s.upsert_tasks([rec("own"), rec("spare", target="*backlog")], 1)
    s.request_stop("dev", "drain")
    assert turn(s, None, "t1").claimed is None  # the pop takes the request first
    assert s.client.lpop(s.keys.control("dev")) == "drain"
    s.send("dev", "lead", "use the new API")
    mine = turn(s, None, "t1")  # its own queue comes before mail; the mail goes in the prompt
    assert mine.claimed is not None and mine.claimed.task_id == "own"
    assert [m.text for _, m in mine.mail] == ["use the new API"]
    assert turn(s, Outcome("own", "t1", True, "ok", delivered=(mine.mail[0][0],)), "t2").claimed
    assert s.unanswered("dev") == []
    s.upsert_tasks([rec("own"), rec("spare", target="*backlog"), rec("more", "*backlog")], 2)
    s.send("dev", "lead", "a question")
    assert turn(s, Outcome("spare", "t2", True, "ok"), "t3").claimed is None  # mail first
    assert s.client.llen(s.keys.queue("*backlog")) == 1


def test_stale_queue_entries_are_dropped_and_a_popped_id_comes_first(redis_store: Store) -> None:
    s = redis_store
    s.upsert_tasks([rec("a"), rec("b", target="@dev")], 1)
    s.client.lpush(s.keys.queue("dev"), "gone", "a")  # `a` twice: the second entry is stale
    popped = turn(s, None, "t1", popped="b")
    assert popped.claimed is not None and popped.claimed.task_id == "b"
    nxt = turn(s, Outcome("b", "t1", True, "ok"), "t2")
    assert nxt.claimed is not None and nxt.claimed.task_id == "a"
    assert turn(s, Outcome("a", "t2", True, "ok"), "t3").claimed is None
    assert s.client.llen(s.keys.queue("dev")) == 0


def test_the_model_pid_is_written_at_once_and_its_reply_read_with_the_next_turn(
    server_store: Store,
) -> None:
    s = server_store
    s.upsert_tasks([rec("a")], 1)
    assert turn(s, None, "t1").claimed is not None
    s.note_model("dev", 4242, "777")
    other = Store.open(s.url, s.town)  # another process (a healer) sees it before any reply
    try:
        deadline = time.monotonic() + 5
        while other.client.hget(s.keys.agent("dev"), "model_pid") != "4242":
            assert time.monotonic() < deadline, "the model pid was not written"
            time.sleep(0.001)
        assert other.client.hget(s.keys.agent("dev"), "model_start") == "777"
    finally:
        other.close()
    assert s.lane().unread == 1
    done = turn(s, Outcome("a", "t1", True, "ok"), "t2")
    assert done.reported == "1" and s.lane().unread == 0
    assert s.client.hget(s.keys.agent("dev"), "model_pid") == ""


def test_a_deferred_writes_error_or_a_broken_connection_does_not_break_the_next_turn(
    server_store: Store,
) -> None:
    s = server_store
    s.upsert_tasks([rec("a"), rec("b")], 1)
    s.client.set(s.keys.agent("ghost"), "not a hash")
    s.note_model("ghost", 1, "1")  # WRONGTYPE, read and dropped with the next reply
    first = turn(s, None, "t1")
    assert first.claimed is not None and first.claimed.task_id == "a"
    s.client.client_kill_filter(_id=s.lane().call("CLIENT", "ID"))  # the server restarted
    with pytest.raises(RedisUnavailable):
        turn(s, Outcome("a", "t1", True, "ok"), "t2")
    assert s.lane().conn is None  # the worker waits the outage out and retries the same turn
    again = turn(s, Outcome("a", "t1", True, "ok"), "t2")
    assert again.claimed is not None and again.claimed.task_id == "b"
    assert field(s, "a", "state") == "completed"
