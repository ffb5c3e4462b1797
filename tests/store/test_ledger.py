"""The attempt ledger in Redis: a report's entry joins the attempt's record (never over what the
store writes), a record from before has none and stays readable, and the entry of an attempt
completed by `tt task complete` before its process exited still reaches its record."""

from __future__ import annotations

import json

from reconciler.store.client import Store
from reconciler.store.turn import Outcome
from tests.store.test_transitions import rec
from tests.store.test_turn import turn

ENTRY = {
    "attempt": 1,
    "agent": "dev",
    "model": "fake-claude",
    "exit_class": "success",
    "session_id": "s-1",
    "tokens": {"input": 12, "output": 287, "cache_read": 14012, "cache_write": 1523},
    "cost_usd": 0.0421875,
    "turns": 3,
    "outcome": "forged",  # the store's own keys win
    "started_at": 1,
}


def test_a_reported_entry_joins_the_attempts_record(redis_store: Store) -> None:
    s = redis_store
    s.upsert_tasks([rec("a")], 1)
    turn(s, None, "t1")
    turn(s, Outcome("a", "t1", True, "done", detail=json.dumps(ENTRY)), "")
    [attempt] = s.attempt_history("a")
    assert attempt["outcome"] == "completed" and attempt["started_at"] != 1
    assert attempt["tokens"] == ENTRY["tokens"] and attempt["cost_usd"] == 0.0421875
    assert (attempt["exit_class"], attempt["session_id"], attempt["turns"]) == ("success", "s-1", 3)


def test_a_failed_attempts_entry_keeps_its_error_and_class(redis_store: Store) -> None:
    s = redis_store
    s.upsert_tasks([rec("a")], 1)
    turn(s, None, "t1")
    entry = {**ENTRY, "exit_class": "auth", "cost_usd": None}
    turn(s, Outcome("a", "t1", False, "exit code 1: Not logged in", detail=json.dumps(entry)), "")
    [attempt] = s.attempt_history("a")
    assert attempt["outcome"] == "failed" and attempt["error"] == "exit code 1: Not logged in"
    assert attempt["exit_class"] == "auth" and attempt["cost_usd"] is None


def test_an_entry_that_is_no_json_object_is_left_out(redis_store: Store) -> None:
    s = redis_store
    s.upsert_tasks([rec("a")], 1)
    turn(s, None, "t1")
    turn(s, Outcome("a", "t1", True, "done", detail="[1, 2"), "")
    [attempt] = s.attempt_history("a")
    assert attempt["outcome"] == "completed" and "exit_class" not in attempt


def test_the_entry_of_an_attempt_completed_from_inside_reaches_its_record(
    redis_store: Store,
) -> None:
    s = redis_store
    s.upsert_tasks([rec("a")], 1)
    turn(s, None, "t1")
    assert s.complete("a", "t1", "told by the model")  # `tt task complete` from the model
    [before] = s.attempt_history("a")
    late = turn(s, Outcome("a", "t1", True, "done", detail=json.dumps(ENTRY)), "")
    assert late.reported == "0"  # stale: the task was completed already
    [after] = s.attempt_history("a")
    assert after["cost_usd"] == 0.0421875 and after["exit_class"] == "success"
    assert (after["started_at"], after["finished_at"]) == (
        before["started_at"],
        before["finished_at"],
    )
    # A second late report changes nothing more.
    other = {**ENTRY, "cost_usd": 9.0}
    turn(s, Outcome("a", "t1", True, "done", detail=json.dumps(other)), "")
    assert s.attempt_history("a")[0]["cost_usd"] == 0.0421875


def test_a_handed_back_attempt_names_the_session_and_folder_its_model_was_started_in(
    redis_store: Store,
) -> None:
    # Its agent died: the retry (maybe another replica) resumes that session, in that folder only.
    s = redis_store
    s.upsert_tasks([rec("a")], 1)
    turn(s, None, "t1")
    s.note_model("dev", 4242, "1", "a sess-1", "/town/root")
    assert s.hand_back("a", "*:dev", "agent died")
    [record] = s.attempt_history("a")
    assert record["outcome"] == "handed back"
    assert (record["session_id"], record["workdir"]) == ("sess-1", "/town/root")
