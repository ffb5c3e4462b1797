"""What the notifier keeps in Redis (issue 15), on a real Lua engine: a rule's cursor starts once
and moves by compare-and-set only as the leading watcher (so an event is told at most once, also
by two watchers racing), cursors of rules gone are dropped, and `town.completed` is written once
each time every task becomes final."""

from __future__ import annotations

import pytest

from reconciler.errors import LeaderFenced
from reconciler.store.client import Store
from reconciler.store.turn import Outcome
from tests.store.test_transitions import rec
from tests.store.test_turn import turn


def test_a_cursor_starts_once_and_moves_by_compare_and_set(redis_store: Store) -> None:
    s = redis_store
    assert s.notify_cursor("rule-a", "5-0") == "5-0"
    assert s.notify_cursor("rule-a", "9-0") == "5-0"  # a restart keeps where it was
    assert s.notify_advance("rule-a", "5-0", "7-0")
    assert not s.notify_advance("rule-a", "5-0", "8-0")  # another watcher moved it: refused
    assert s.notify_cursor("rule-a", "0-0") == "7-0"
    s.notify_cursor("rule-b", "1-0")
    s.notify_forget(["rule-b"])
    assert s.notify_cursor("rule-a", "9-0") == "9-0"  # dropped: a rule back starts afresh
    assert s.notify_cursor("rule-b", "9-0") == "1-0"
    # A thread only reads where its rule stands: a dropped cursor is not recreated.
    assert s.notify_position("rule-b") == "1-0"
    s.notify_forget([])
    assert s.notify_position("rule-b") is None and s.client.hkeys(s.keys.notify) == []


def test_only_the_leading_epoch_moves_a_cursor(redis_store: Store) -> None:
    s = redis_store
    status, epoch = s.hold_leader("watcher-a", 10)
    assert status == 2
    s.notify_cursor("rule", "1-0")
    s.fence = f"e:{epoch}"
    assert s.notify_advance("rule", "1-0", "2-0")
    s.fence = f"e:{epoch - 1}"  # a deposed leader's notifier
    with pytest.raises(LeaderFenced):
        s.notify_advance("rule", "2-0", "3-0")
    s.fence = ""
    assert s.notify_cursor("rule", "0-0") == "2-0"


def test_town_completed_is_written_once_for_each_finish(redis_store: Store) -> None:
    assert_told_once_per_finish(redis_store)


def test_town_completed_on_fakeredis_too(fake_store: Store) -> None:
    assert_told_once_per_finish(fake_store)  # (the unit tests' loops: no sha1hex there)


def assert_told_once_per_finish(s: Store) -> None:
    """town.completed: not for no task or an unfinished one, once when every task is final,
    not again for the same finish."""
    final = ("completed", "failed", "cancelled")

    def completions() -> list[dict[str, str]]:
        return [f for _, f in s.events_since("-") if f["type"] == "town.completed"]

    assert not s.town_completed(final)  # no task: nothing finished
    s.upsert_tasks([rec("a")], 1)
    s.client.hset(s.keys.meta, "generation", 1)
    assert not s.town_completed(final)  # decided on the tasks as they are: a is not final
    turn(s, None, "t1")
    turn(s, Outcome("a", "t1", True, "done"), "t2")
    assert s.town_completed(final) and not s.town_completed(final)
    (said,) = completions()
    assert said["generation"] == "1" and said["count"] == "1" and said["completed"] == "1"
    # An apply that changed no task (an agent's edit) moved the generation: the same finish.
    s.client.hset(s.keys.meta, "generation", 2)
    assert not s.town_completed(final) and len(completions()) == 1
    # Not done any more (a retry; a count said so), then done again: told again.
    s.town_unfinished()
    assert s.town_completed(final) and len(completions()) == 2
    # Another task, run: a new finish, also when no count saw the town unfinished meanwhile.
    s.upsert_tasks([rec("a"), rec("b", order=1)], 3)
    turn(s, None, "t3")
    turn(s, Outcome("b", "t3", True, "done"), "t4")
    assert s.state_counts() == {"completed": 2}
    assert s.town_completed(final)
    assert completions()[-1]["count"] == "2" and completions()[-1]["completed"] == "2"


def test_an_event_without_an_agent_is_given_the_task_s_assignee(redis_store: Store) -> None:
    s = redis_store
    s.upsert_tasks([rec("a")], 1)
    assert s.task_assignee("a") == ""
    turn(s, None, "t1")
    assert s.task_assignee("a") == "dev"
    assert s.task_assignee("gone") == ""


def test_the_stream_says_where_it_starts_and_whether_it_dropped_events(redis_store: Store) -> None:
    s = redis_store
    assert s.events_start() == ("", False)
    s.event("task.ready", task="a")
    s.event("task.ready", task="b")
    first = s.events_since("-")[0][0]
    assert s.events_start() == (first, False)
    s.client.xtrim(s.keys.events, maxlen=1, approximate=False)
    assert s.events_start() == (s.last_event_id(), True)
