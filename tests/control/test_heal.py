"""Self-healing decisions on plain records (heal.py), and the fenced hand-back of a dead agent's
task (Lua on fakeredis): an attempt is reclaimed only from the agent that runs it."""

from __future__ import annotations

import fakeredis
import pytest

from reconciler.control import heal
from reconciler.spec.desired import Policy, RestartPolicy
from tests.store.test_transitions import Ops, rec, state, upsert

POLICY = Policy(restart_backoff=10, restart_backoff_max=300, crash_loop_deaths=3)


@pytest.fixture
def ops() -> Ops:
    return Ops(fakeredis.FakeRedis(decode_responses=True))


def test_dead_means_a_process_that_should_run_and_does_not() -> None:
    running = {"pid": "42", "state": "working"}
    assert heal.is_dead(running, local=True, pid_alive=False, lease_alive=True)
    assert not heal.is_dead(running, local=True, pid_alive=True, lease_alive=False)
    assert heal.is_dead(running, local=False, pid_alive=True, lease_alive=False)
    assert not heal.is_dead(
        {"pid": "42", "state": "stopped"}, local=True, pid_alive=False, lease_alive=False
    )
    assert not heal.is_dead({"state": "idle"}, local=True, pid_alive=False, lease_alive=False)


def test_restart_at_once_after_a_long_life_with_backoff_after_a_quick_death() -> None:
    old = heal.on_death({"spawned_at": "0"}, 1000.0, POLICY, RestartPolicy.ALWAYS)
    assert old["state"] == "backoff" and float(old["restart_after"]) == 1000.0
    quick = heal.on_death(
        {"spawned_at": "995", "quick_deaths": "1"}, 1000.0, POLICY, RestartPolicy.ALWAYS
    )
    assert quick["quick_deaths"] == "2" and float(quick["restart_after"]) == 1010.0
    assert not heal.may_start(quick, 1009.0) and heal.may_start(quick, 1010.0)
    never = heal.on_death({"spawned_at": "0"}, 1000.0, POLICY, RestartPolicy.NEVER)
    assert never["state"] == "stopped"


def test_a_crash_restarts_at_once_then_waits_10_s_doubling_to_5_min() -> None:
    policy = Policy(restart_backoff=10, restart_backoff_max=300, crash_loop_deaths=100)
    rec: dict[str, str] = {"spawned_at": "1000"}
    delays = []
    for _ in range(8):
        now = float(rec["spawned_at"]) + 1  # each process dies a second after its start
        fields = heal.on_death(rec, now, policy, RestartPolicy.ALWAYS)
        delays.append(float(fields["restart_after"]) - now)
        rec = {**fields, "spawned_at": fields["restart_after"]}
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300]
    assert (
        heal.on_death(
            {"spawned_at": "990", "quick_deaths": "4"}, 1000.0, Policy(), RestartPolicy.ALWAYS
        )["state"]
        == "quarantined"
    )  # the fifth quick death, with the defaults


def test_the_third_quick_death_quarantines() -> None:
    fields = heal.on_death(
        {"spawned_at": "990", "quick_deaths": "2"}, 1000.0, POLICY, RestartPolicy.ALWAYS
    )
    assert fields["state"] == "quarantined"
    assert float(fields["quarantined_until"]) == 1300.0
    assert fields["reason"] == "3 deaths within 30s of start"
    assert heal.next_wakeup({"a": fields, "b": {"state": "idle"}}) == 1300.0


def test_orphaned_attempts_are_the_running_ones_no_agent_names() -> None:
    tasks = [
        {"id": "a", "state": "running", "token": "ta", "assignee": "w1"},  # w1 runs it
        {"id": "b", "state": "running", "token": "tb", "assignee": "w2"},  # w2 moved on
        {"id": "c", "state": "running", "token": "tc", "assignee": "gone"},  # no such agent
        {"id": "d", "state": "ready", "token": "", "assignee": "w2"},
        {"id": "e", "state": "completed", "token": "", "assignee": "w3"},
    ]
    agents = {"w1": {"task": "a"}, "w2": {"task": "x"}, "w3": {"task": ""}}
    assert heal.orphaned(tasks, agents) == [("b", "tb", "w2"), ("c", "tc", "gone")]


def test_a_dead_agents_hand_back_never_takes_another_agents_attempt(ops: Ops) -> None:
    upsert(ops, rec("a"))
    assert ops.claim("a", "w1", "t1") is not None
    assert not ops.hand_back("a", "*:w2", "agent w2 died")  # w2's marker was stale
    assert state(ops, "a") == "running"
    assert ops.hand_back("a", "*:w1", "agent w1 died")
    assert state(ops, "a") == "ready"
    assert not ops.hand_back("a", "*:w1", "agent w1 died")  # once only


def test_an_attempt_ending_clears_only_its_own_agent_marker(ops: Ops) -> None:
    upsert(ops, rec("a"), rec("b"))
    ops.claim("a", "w1", "t1")
    # w1 was restarted and now runs b; a's old attempt is handed back as an orphan.
    ops.set_agent("w1", {"task": ""})
    ops.claim("b", "w1", "t2")
    assert ops.hand_back("a", "t1", "orphaned")
    assert ops.client.hget(ops.keys.agent("w1"), "task") == "b"
    assert ops.complete("b", "t2", "ok")
    assert ops.client.hget(ops.keys.agent("w1"), "task") == ""


def test_a_death_its_node_caused_counts_toward_no_crash_loop() -> None:
    rec = {"spawned_at": "995", "quick_deaths": "4", "node_deaths": "1"}
    fields = heal.on_death(rec, 1000.0, Policy(), RestartPolicy.ALWAYS, node_lost="n1")
    assert (fields["state"], float(fields["restart_after"])) == ("backoff", 1000.0)
    assert "quick_deaths" not in fields and fields["node_deaths"] == "2"
    assert fields["reason"] == "node n1 lost; restart now"
    never = heal.on_death(rec, 1000.0, Policy(), RestartPolicy.NEVER, node_lost="n1")
    assert never["state"] == "stopped"


def test_a_silent_agents_node_is_lost_when_dead_stopped_or_two_renewals_late() -> None:
    assert heal.node_lost(None, 100.0)
    ready = {"state": "ready", "lease": "1", "lease_s": "10", "heartbeat_at": "96"}
    assert not heal.node_lost(ready, 100.0)  # renewed 4 s ago: one renewal (2.5 s) late at most
    assert heal.node_lost(ready, 101.5)  # two renewals missed: cut off, its lease not lapsed yet
    assert heal.node_lost(ready | {"lease": ""}, 100.0)  # dead
    assert heal.node_lost(ready | {"state": "stopped"}, 100.0)
    assert not heal.node_lost(ready | {"state": "draining"}, 100.0)
