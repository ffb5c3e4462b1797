"""Task transitions as Lua scripts (fakeredis with Lua): claim, complete, fail, retry, release."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest

from reconciler.spec.desired import Policy
from reconciler.store import scripts
from reconciler.store.client import Store


class Ops(Store):
    def __init__(self, client: Any, town: str = "t") -> None:
        super().__init__(client, town, "fake://")


@pytest.fixture
def ops() -> Ops:
    return Ops(fakeredis.FakeRedis(decode_responses=True))


def rec(
    tid: str,
    target: str = "dev",
    deps: tuple[str, ...] = (),
    kind: str = "work",
    directive: str = "pending",
    order: int = 0,
) -> dict[str, object]:
    return {
        "id": tid,
        "spec": json.dumps({"id": tid, "description": f"do {tid}"}),
        "hash": "h",
        "source": "file",
        "kind": kind,
        "target": target if kind != "group" else "",
        "deps": list(deps),
        "order": order,
        "priority": 0,
        "retries": -1,
        "timeout": -1,
        "directive": directive,
        "rerun": False,
    }


def upsert(ops: Ops, *recs: dict[str, object]) -> None:
    ops.upsert_tasks(list(recs), 1)


def take(ops: Ops, target: str, agent: str, token: str) -> str:
    """What a worker does: pop the next id from a queue, then claim it."""
    tid = ops.client.lpop(ops.keys.queue(target))
    assert tid is not None and ops.claim(tid, agent, token) is not None
    return str(tid)


def state(ops: Ops, tid: str) -> str:
    return str(ops.client.hget(ops.keys.task(tid), "state"))


def queue(ops: Ops, target: str) -> list[str]:
    return list(ops.client.lrange(ops.keys.queue(target), 0, -1))


def test_pipeline_releases_in_order(ops: Ops) -> None:
    upsert(
        ops,
        rec("design", "architect"),
        rec("implement", deps=("design",)),
        rec("test", "tester", deps=("implement",)),
    )
    assert [state(ops, t) for t in ("design", "implement", "test")] == [
        "ready",
        "blocked",
        "blocked",
    ]
    assert queue(ops, "architect") == ["design"] and queue(ops, "dev") == []
    claimed = ops.claim("design", "architect", "tok1")
    assert claimed is not None and claimed.attempt == 1 and claimed.spec["id"] == "design"
    assert ops.complete("design", "tok1", "the design")
    assert state(ops, "implement") == "ready" and queue(ops, "dev") == ["implement"]
    assert state(ops, "test") == "blocked"
    deps = ops.dep_results("implement")
    assert [(d.id, d.agent, d.result) for d in deps] == [("design", "architect", "the design")]
    # The claim itself carries them (the prompt needs no second round trip).
    implement = ops.claim("implement", "dev", "tok2")
    assert implement is not None and implement.deps == tuple(deps) and claimed.deps == ()


def test_stale_attempt_is_rejected(ops: Ops) -> None:
    upsert(ops, rec("a"))
    ops.claim("a", "dev", "old")
    ops.hand_back("a", "old")
    ops.claim("a", "dev2", "new")
    assert not ops.complete("a", "old", "late result")
    assert ops.fail("a", "old", "late error", False, Policy()) == "stale"
    assert state(ops, "a") == "running"
    assert ops.complete("a", "new", "ok") and state(ops, "a") == "completed"
    assert not ops.complete("a", "new", "twice")
    types = [f["type"] for _, f in ops.client.xrange(ops.keys.events)]
    assert types.count("task.completed") == 1 and types.count("task.stale") == 3


def test_claim_of_non_ready_task_is_dropped(ops: Ops) -> None:
    upsert(ops, rec("a"), rec("b", deps=("a",)))
    assert ops.claim("b", "dev", "x") is None
    assert ops.claim("a", "dev", "x") is not None
    assert ops.claim("a", "dev", "y") is None  # already running


def test_retry_backoff_then_fail_keeps_every_error(ops: Ops) -> None:
    policy = Policy(retries=1, retry_backoff=0.05, retry_backoff_max=1)
    upsert(ops, rec("a"))
    take(ops, "dev", "dev", "t1")
    assert ops.fail("a", "t1", "boom 1", False, policy) == "retrying"
    assert state(ops, "a") == "retrying" and queue(ops, "dev") == []
    deadline = time.monotonic() + 5
    while ops.promote_due() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert state(ops, "a") == "ready" and queue(ops, "dev") == ["a"]
    take(ops, "dev", "dev", "t2")
    assert ops.fail("a", "t2", "boom 2", False, policy) == "failed"
    history = [json.loads(x) for x in ops.client.lrange(ops.keys.attempts("a"), 0, -1)]
    assert [h["error"] for h in history] == ["boom 1", "boom 2"]


def test_claim_carries_the_previous_attempts_error(ops: Ops) -> None:
    policy = Policy(retries=1, retry_backoff=0.01, retry_backoff_max=1)
    upsert(ops, rec("a"))
    first = ops.claim(str(ops.client.lpop(ops.keys.queue("dev"))), "dev", "t1")
    assert first is not None and first.attempt == 1 and first.previous_error is None
    assert first.spec["description"] == "do a"
    assert ops.fail("a", "t1", "exit code 3: boom", False, policy) == "retrying"
    deadline = time.monotonic() + 5
    while ops.promote_due() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    second = ops.claim(str(ops.client.lpop(ops.keys.queue("dev"))), "dev", "t2")
    assert second is not None and second.attempt == 2
    assert second.previous_error == "exit code 3: boom"
    again = ops.claim("a", "dev", "t2")  # the same token again: the same claim back
    assert again is not None and again.previous_error == "exit code 3: boom"


def test_permanent_failure_fails_at_once(ops: Ops) -> None:
    upsert(ops, rec("a"))
    ops.claim("a", "dev", "t1")
    assert ops.fail("a", "t1", "Not logged in", True, Policy()) == "failed"


def test_group_completes_with_children_and_releases_dependents(ops: Ops) -> None:
    upsert(
        ops,
        rec("c1"),
        rec("c2"),
        rec("epic", kind="group", deps=("c1", "c2")),
        rec("after", "rev", deps=("epic",)),
    )
    assert state(ops, "epic") == "blocked" and queue(ops, "dev") == ["c1", "c2"]
    for tid in ("c1", "c2"):
        ops.claim(tid, "dev", tid)
        ops.complete(tid, tid, "ok")
    assert state(ops, "epic") == "completed"
    assert queue(ops, "rev") == ["after"]


def test_done_in_file_releases_dependents(ops: Ops) -> None:
    upsert(ops, rec("a", directive="done"), rec("b", deps=("a",)))
    assert state(ops, "a") == "completed" and state(ops, "b") == "ready"


def test_hand_back_does_not_count_as_attempt(ops: Ops) -> None:
    policy = Policy(retries=0)
    upsert(ops, rec("a"))
    take(ops, "dev", "dev", "t1")
    assert ops.hand_back("a", "t1")
    assert queue(ops, "dev") == ["a"]
    take(ops, "dev", "dev", "t2")
    assert ops.fail("a", "t2", "x", False, policy) == "failed"  # first counted attempt


def test_messages_urgent_first_and_kept(ops: Ops) -> None:
    ops.send("reviewer", "conductor", "Ready for review.")
    ops.send("reviewer", "tester", "Critical bug!", urgent=True)
    msgs = ops.take_messages("reviewer")
    assert [(m.text, m.urgent) for m in msgs] == [
        ("Critical bug!", True),
        ("Ready for review.", False),
    ]
    assert ops.take_messages("reviewer") == []
    assert ops.client.llen(ops.keys.seen("reviewer")) == 2
    assert ops.unanswered("reviewer") == []  # read by a person: nothing left to answer


def test_mail_in_a_task_prompt_is_kept_until_that_attempt_ends(ops: Ops) -> None:
    """An agent that dies while its task's prompt carries a message has not lost it."""
    ops.send("dev", "conductor", "Use the v2 API.")
    taken = ops.take_mail("dev")  # into the prompt of the attempt it is starting
    assert [m.text for m in ops.unanswered("dev")] == ["Use the v2 API."]  # killed here: kept
    ops.delivered("dev", [raw for raw, _ in taken])  # the attempt ran to its end
    assert ops.unanswered("dev") == [] and ops.take_mail("dev") == []


def test_mail_stays_in_redis_until_it_is_answered(ops: Ops) -> None:
    ops.send("reviewer", "conductor", "Ready for review.")
    ops.send("reviewer", "tester", "Critical bug!", urgent=True)
    assert ops.client.lrange(ops.keys.bell("reviewer"), 0, -1) == ["1"]  # rung, kept at one

    taken = ops.take_mail("reviewer")
    assert [(m.sender, m.text, m.urgent) for _, m in taken] == [
        ("tester", "Critical bug!", True),
        ("conductor", "Ready for review.", False),
    ]
    assert ops.peek_messages("reviewer") == [] and not ops.client.exists(ops.keys.bell("reviewer"))
    assert ops.client.llen(ops.keys.seen("reviewer")) == 2
    # The process dies mid-answer: its next process (and `tt inbox`) finds them again.
    assert [m.text for m in ops.unanswered("reviewer")] == ["Critical bug!", "Ready for review."]
    ops.send("reviewer", "conductor", "And one more.")
    again = ops.take_mail("reviewer")
    assert [m.text for _, m in again] == ["Critical bug!", "Ready for review.", "And one more."]

    ops.answer_mail("reviewer", [raw for raw, _ in again], "All noted.")
    assert ops.unanswered("reviewer") == [] and ops.take_mail("reviewer") == []
    for sender in ("tester", "conductor"):  # each sender gets the answer once
        assert [(m.sender, m.text) for m in ops.peek_messages(sender)] == [
            ("reviewer", "All noted.")
        ]
    events = [f["type"] for _, f in ops.events_since("-")]
    assert events.count("message.answered") == 1 and events.count("message.read") == 3


def test_a_dependents_start_is_never_stamped_before_its_dependencys_end(
    ops: Ops, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two agents' clocks read in one order, their scripts run in the other: the claimer read
    its clock, was descheduled, and the completer's script ran first (a chaos run under load
    saw a dependent stamped 6 ms before its dependency's end). Stamps follow the order the
    scripts ran in."""
    upsert(ops, rec("a"), rec("b", deps=("a",)))
    take(ops, "dev", "w1", "tok-a")
    read_early = time.time()
    assert ops.complete("a", "tok-a", "ok")
    # The claimer's reading, from before (its process's clock, not the server's).
    monkeypatch.setattr(scripts, "time", SimpleNamespace(time=lambda: read_early))
    take(ops, "dev", "w2", "tok-b")
    a, b = (ops.client.hgetall(ops.keys.task(t)) for t in ("a", "b"))
    assert float(b["started_at"]) >= float(a["finished_at"]), (a, b)
