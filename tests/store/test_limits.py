"""Provider pauses and budgets in an agent's turn (lua/limits_lib.lua), on a real Lua engine
(Valkey and the system Redis): a usage or rate limit defers the task without spending a retry
and pauses every agent of the provider; limits without a reset back off 5 min doubling to 1 h;
budgets stop claims."""

from __future__ import annotations

import json
import time

import pytest

from reconciler.spec.desired import Policy
from reconciler.store.client import Store
from reconciler.store.turn import MAX_DEFERRALS, Gate, Limit, Outcome, Turn
from tests.store.test_transitions import rec

POLICY = Policy(retries=0, retry_backoff=30, retry_backoff_max=60)
# A backoff floor below the resets these tests name (the default 5m would outlast them).
FAST = Policy(retries=0, retry_backoff=30, retry_backoff_max=60, limit_backoff=0.1)
CLAUDE = Gate("claude", "dev")


def turn(
    s: Store,
    outcome: Outcome | None,
    token: str,
    agent: str = "dev",
    gate: Gate = CLAUDE,
    targets: tuple[str, ...] = ("dev", "*backlog"),
    policy: Policy = POLICY,
) -> Turn:
    return s.turn(agent, outcome, token, list(targets), policy, "", gate)


def cost(task: str, attempt: int, usd: float | None) -> str:
    return json.dumps(
        {"attempt": attempt, "agent": "dev", "exit_class": "success", "cost_usd": usd}
    )


def limited(task: str, token: str, reset: float | None, cls: str = "usage_limit") -> Outcome:
    limit = Limit(cls, reset, "claude usage limit")
    detail = json.dumps({"attempt": 1, "exit_class": cls, "cost_usd": None})
    return Outcome(task, token, False, "Claude AI usage limit reached", detail=detail, limit=limit)


def test_a_usage_limit_defers_the_task_without_a_retry_and_pauses_the_provider(
    redis_store: Store,
) -> None:
    s = redis_store
    s.upsert_tasks([rec("a"), rec("b", target="ops")], 1)
    assert turn(s, None, "t1").claimed is not None
    reset = time.time() + 600
    after = turn(s, limited("a", "t1", reset), "t2")
    # retries = 0: a failure would fail it for good; a usage limit spends none.
    assert after.reported == "deferred" and after.claimed is None
    assert after.paused_until == pytest.approx(reset, abs=0.01)
    assert s.client.hget(s.keys.task("a"), "state") == "ready"
    assert s.client.lrange(s.keys.queue("dev"), 0, -1) == ["a"]
    [record] = s.attempt_history("a")
    assert record["outcome"] == "deferred" and record["exit_class"] == "usage_limit"
    [pause] = s.pauses()
    assert (pause.provider, pause.reason) == ("claude", "claude usage limit")
    assert pause.until == pytest.approx(reset, abs=0.01)
    # Another agent of the provider claims nothing either; one of another provider does.
    other = turn(s, None, "t3", agent="ops", gate=Gate("claude", "ops"), targets=("ops",))
    assert other.claimed is None and other.paused_until == after.paused_until
    codex = turn(s, None, "t4", agent="ops", gate=Gate("codex", "ops"), targets=("ops",))
    assert codex.claimed is not None and codex.claimed.task_id == "b"
    # Ended by hand (its idle agents woken): the next turn claims `a`, its attempt 2 within
    # its retries.
    s.client.sadd(s.keys.agents, "dev", "ops")
    s.client.hset(s.keys.agent("dev"), "provider", "claude")
    s.client.hset(s.keys.agent("ops"), mapping={"provider": "codex", "state": "idle"})
    assert s.resume_provider("claude") and not s.resume_provider("claude")
    assert s.client.lrange(s.keys.control("dev"), 0, -1) == ["wake"]
    assert s.client.llen(s.keys.control("ops")) == 0
    s.client.delete(s.keys.control("dev"))
    again = turn(s, None, "t5")
    assert again.claimed is not None and (again.claimed.task_id, again.claimed.attempt) == ("a", 2)
    assert turn(s, Outcome("a", "t5", True, "done"), "").reported == "1"
    told = [(f["type"], f.get("provider")) for _, f in s.events_since()]
    assert ("provider.paused", "claude") in told and ("provider.resumed", "claude") in told


def test_a_pause_ends_by_itself_at_its_reset(redis_store: Store) -> None:
    s = redis_store
    s.upsert_tasks([rec("a")], 1)
    assert turn(s, None, "t1").claimed is not None
    assert turn(s, limited("a", "t1", time.time() + 0.3), "t2", policy=FAST).paused_until
    deadline = time.time() + 5
    while time.time() < deadline:
        got = turn(s, None, "t3")
        if got.claimed is not None:
            break
        assert got.paused_until is not None
        time.sleep(0.05)
    assert got.claimed is not None and got.claimed.task_id == "a" and s.pauses() == []


def test_limits_without_a_reset_back_off_5_minutes_doubling_to_an_hour(redis_store: Store) -> None:
    s = redis_store
    s.upsert_tasks([rec("a"), rec("b", target="ops")], 1)
    ops = {"agent": "ops", "gate": Gate("claude", "ops"), "targets": ("ops",)}
    pauses = []
    for i in range(6):  # two tasks of the provider, so neither reaches MAX_DEFERRALS
        token, task, who = f"t{i}", "ab"[i % 2], ({} if i % 2 == 0 else ops)
        s.resume_provider("claude")
        assert turn(s, None, token, **who).claimed is not None  # type: ignore[arg-type]
        now = time.time()
        turn(s, limited(task, token, None, "rate_limited"), "", **who)  # type: ignore[arg-type]
        [pause] = s.pauses()
        pauses.append(round((pause.until - now) / 60))
        assert pause.exit_class == "rate_limited"
    assert pauses == [5, 10, 20, 40, 60, 60]
    # A success starts it over.
    s.resume_provider("claude")
    assert turn(s, None, "ok").claimed is not None
    turn(s, Outcome("a", "ok", True, "done"), "")
    s.upsert_tasks([rec("a"), rec("b", target="ops"), rec("c")], 2)
    assert turn(s, None, "t9").claimed is not None
    now = time.time()
    turn(s, limited("c", "t9", None, "rate_limited"), "")
    assert round((s.pauses()[0].until - now) / 60) == 5


def test_the_backoff_is_a_floor_under_a_named_reset_from_the_second_limit_in_a_row(
    redis_store: Store,
) -> None:
    # The first limit waits for the reset its provider named ("resets in 0.4s"); a limit again
    # right after that reset must not let the provider be hammered: from the second in a row the
    # pause is the backoff at least, doubling at each limit in a row all the same.
    s = redis_store
    s.upsert_tasks([rec("a")], 1)
    pauses = []
    for i in range(3):
        s.resume_provider("claude")
        assert turn(s, None, f"t{i}").claimed is not None
        now = time.time()
        turn(s, limited("a", f"t{i}", now + 0.4), "")
        pauses.append(round((s.pauses()[0].until - now) / 60))
    assert pauses == [0, 10, 20]


def test_a_pause_longer_than_limit_pause_max_is_cut_to_it_with_an_event(redis_store: Store) -> None:
    s = redis_store
    s.upsert_tasks([rec("a")], 1)
    assert turn(s, None, "t1").claimed is not None
    now = time.time()
    turn(s, limited("a", "t1", 9999999999.0), "")  # year 2286: a garbled epoch
    [pause] = s.pauses()
    assert pause.until == pytest.approx(now + POLICY.limit_pause_max, abs=5)
    [capped] = [f for _, f in s.events_since() if f["type"] == "provider.pause_capped"]
    assert capped["provider"] == "claude" and float(capped["named"]) == 9999999999.0


def test_limits_in_a_row_past_max_deferrals_spend_a_retry(redis_store: Store) -> None:
    # A task whose runs keep ending in a limit (a CLI that keeps saying it, a misread message)
    # cannot loop for ever: the limit after MAX_DEFERRALS in a row fails it as any failure.
    s = redis_store
    s.upsert_tasks([rec("a")], 1)
    fates = []
    for i in range(MAX_DEFERRALS + 1):
        s.resume_provider("claude")
        assert turn(s, None, f"t{i}").claimed is not None
        fates.append(turn(s, limited("a", f"t{i}", None), "").reported)
    assert fates == ["deferred"] * MAX_DEFERRALS + ["failed"]  # retries = 0
    assert s.client.hget(s.keys.task("a"), "state") == "failed"
    [capped] = [f for _, f in s.events_since() if f["type"] == "task.deferrals_capped"]
    assert (capped["task"], capped["deferrals"]) == ("a", str(MAX_DEFERRALS))
    outcomes = [r["outcome"] for r in s.attempt_history("a")]
    assert outcomes == ["deferred"] * MAX_DEFERRALS + ["failed"]


def test_a_completed_or_failed_attempt_ends_the_row_of_deferrals(redis_store: Store) -> None:
    s = redis_store
    s.upsert_tasks([{**rec("a"), "retries": 1}], 1)
    fates = []
    for i in range(2 * MAX_DEFERRALS):
        s.resume_provider("claude")
        assert turn(s, None, f"t{i}").claimed is not None
        if i == MAX_DEFERRALS - 1:  # one plain failure in the middle: a retry spent, row over
            fates.append(turn(s, Outcome("a", f"t{i}", False, "boom"), "").reported)
            s.client.zadd(s.keys.timers, {"a": 0})
            continue
        fates.append(turn(s, limited("a", f"t{i}", None), "").reported)
    # 4 limits, a failure, then 5 more: without the reset the 6th in all would be capped
    assert fates == ["deferred"] * 4 + ["retrying"] + ["deferred"] * MAX_DEFERRALS


def test_a_town_budget_stops_claims_at_its_limit_and_a_raised_one_resumes(
    redis_store: Store,
) -> None:
    s = redis_store
    s.set_budgets(0.05, {}, False)
    s.upsert_tasks([rec("a"), rec("b"), rec("c")], 1)
    assert turn(s, None, "t1").claimed is not None
    second = turn(s, Outcome("a", "t1", True, "ok", detail=cost("a", 1, 0.03)), "t2")
    assert second.claimed is not None and second.claimed.task_id == "b"
    third = turn(s, Outcome("b", "t2", True, "ok", detail=cost("b", 1, 0.03)), "t3")
    assert third.claimed is None and third.budget == "town"
    assert s.spent()["town"] == 0.06 and "town" in s.exhausted()
    assert s.client.lrange(s.keys.queue("dev"), 0, -1) == ["c"]  # waits, queued
    s.client.sadd(s.keys.agents, "dev")
    s.set_budgets(1.0, {}, False)
    assert s.exhausted() == {}
    assert s.client.lrange(s.keys.control("dev"), 0, -1) == ["wake"]  # idle: woken at once
    s.client.delete(s.keys.control("dev"))
    assert turn(s, None, "t4").claimed is not None


def test_an_agent_budget_stops_its_entry_only(redis_store: Store) -> None:
    s = redis_store
    s.set_budgets(None, {"dev": 0.01}, False)
    s.upsert_tasks([rec("a"), rec("b"), rec("c", target="ops")], 1)
    assert turn(s, None, "t1").claimed is not None
    done = turn(s, Outcome("a", "t1", True, "ok", detail=cost("a", 1, 0.02)), "t2")
    assert done.claimed is None and done.budget == "agent:dev"
    ops = turn(s, None, "t3", agent="ops", gate=Gate("claude", "ops"), targets=("ops",))
    assert ops.claimed is not None and ops.claimed.task_id == "c"
    s.set_budgets(None, {"dev": 0.5}, False)  # raised: dev claims again
    again = turn(s, None, "t4")
    assert again.claimed is not None and again.claimed.task_id == "b"


def test_a_tasks_own_budget_makes_it_wait_until_raised(redis_store: Store) -> None:
    s = redis_store
    capped = rec("a")
    capped["spec"] = json.dumps({"id": "a", "description": "do a", "max_cost_usd": 0.01})
    capped["retries"] = 3
    s.upsert_tasks([capped], 1)
    assert turn(s, None, "t1").claimed is not None
    failed = Outcome("a", "t1", False, "exit code 1: boom", detail=cost("a", 1, 0.02))
    turn(s, failed, "")
    assert s.client.hmget(s.keys.task("a"), "state", "waiting_for") == ["retrying", "budget"]
    assert s.client.zscore(s.keys.timers, "a") is None and "task:a" in s.exhausted()
    assert turn(s, None, "t2").claimed is None
    capped["spec"] = json.dumps({"id": "a", "description": "do a", "max_cost_usd": 1.0})
    capped["hash"] = "h2"
    s.upsert_tasks([capped], 2)
    assert s.set_budgets(None, {}, False) == 1
    assert s.client.hget(s.keys.task("a"), "state") == "ready" and s.exhausted() == {}
    got = turn(s, None, "t3")
    assert got.claimed is not None and got.claimed.attempt == 2


def test_a_cost_is_counted_once_when_a_turn_is_repeated(redis_store: Store) -> None:
    s = redis_store
    s.upsert_tasks([rec("a")], 1)
    assert turn(s, None, "t1").claimed is not None
    done = Outcome("a", "t1", True, "ok", detail=cost("a", 1, 0.25))
    turn(s, done, "")
    turn(s, done, "")  # the reply was lost: the same report again
    assert s.spent() == {"town": 0.25, "agent:dev": 0.25, "task:a": 0.25}


def test_a_hard_budget_stops_the_attempts_running_under_it(redis_store: Store) -> None:
    s = redis_store
    s.set_budgets(0.1, {}, True)
    s.upsert_tasks([rec("a"), rec("b", target="ops")], 1)
    assert turn(s, None, "t1").claimed is not None
    ops = turn(s, None, "t2", agent="ops", gate=Gate("claude", "ops"), targets=("ops",))
    assert ops.claimed is not None
    s.client.sadd(s.keys.agents, "dev", "ops")
    turn(s, Outcome("a", "t1", True, "ok", detail=cost("a", 1, 0.2)), "")
    assert s.client.hmget(s.keys.task("b"), "state", "token") == ["ready", ""]
    [killed] = s.attempt_history("b")
    assert (killed["exit_class"], killed["reason"]) == ("killed", "budget")
