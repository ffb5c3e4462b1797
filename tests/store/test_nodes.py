"""Node records on a real Lua engine (fakeredis): one live process per node name, its lease
renewed only by its own process, leaving on purpose, draining; and what the records say
(`plan.nodes`): ready, draining, dead, stopped, unschedulable."""

from __future__ import annotations

from reconciler.plan.nodes import heartbeat_age, node_state, unschedulable
from reconciler.store.client import Store
from tests.redis_fixtures import fake_store, town_name  # noqa: F401

FIELDS = {"host": "h1", "pid": "101", "slots": "4", "labels": "gpu=1"}


def test_a_second_process_of_a_live_node_is_refused_and_shown_the_holder(
    fake_store: Store,  # noqa: F811
) -> None:
    s = fake_store
    assert s.register_node("n1", "i1", 10, FIELDS) is None
    holder = s.register_node("n1", "i2", 10, {**FIELDS, "pid": "202"})
    assert holder is not None and (holder["pid"], holder["instance"]) == ("101", "i1")
    assert not s.node_beat("n1", "i2", 10)  # nor may it renew the first one's lease
    assert s.node_beat("n1", "i1", 10)
    rec = s.node_records()["n1"]
    assert (rec["state"], rec["lease"], rec["slots"], rec["labels"]) == ("ready", "1", "4", "gpu=1")
    assert node_state(rec) == "ready"


def test_a_node_whose_lease_expired_is_dead_and_may_be_taken_by_a_new_process(
    fake_store: Store,  # noqa: F811
) -> None:
    s = fake_store
    s.register_node("n1", "i1", 10, FIELDS)
    s.client.delete(s.keys.node_lease("n1"))  # the lease ran out: the process was killed
    assert node_state(s.node_records()["n1"]) == "dead"
    assert s.register_node("n1", "i2", 10, {**FIELDS, "pid": "202"}) is None
    assert not s.node_beat("n1", "i1", 10)  # the old process, back from a pause, must stop
    rec = s.node_records()["n1"]
    assert (node_state(rec), rec["pid"], rec["instance"]) == ("ready", "202", "i2")


def test_drain_and_leave(fake_store: Store) -> None:  # noqa: F811
    s = fake_store
    assert not s.drain_node("n1")  # never registered
    s.register_node("n1", "i1", 10, FIELDS)
    assert s.drain_node("n1")
    assert s.node_beat("n1", "i1", 10)  # a beat keeps the state
    assert node_state(s.node_records()["n1"]) == "draining"
    assert not s.leave_node("n1", "i2")
    assert s.leave_node("n1", "i1")
    rec = s.node_records()["n1"]
    assert (node_state(rec), rec["lease"]) == ("stopped", "")
    types = [f["type"] for _, f in s.events_since("-")]
    assert types == ["node.registered", "node.draining", "node.stopped"]


def test_why_a_pinned_agent_does_not_run() -> None:
    nodes = {
        "up": {"state": "ready", "lease": "1"},
        "gone": {"state": "ready", "lease": ""},
        "off": {"state": "stopped", "lease": ""},
    }
    assert unschedulable(None, nodes) is None
    assert unschedulable("up", nodes) is None
    assert unschedulable("never", nodes) == "node never not registered"
    assert unschedulable("gone", nodes) == "node gone dead"
    assert unschedulable("off", nodes) == "node off stopped"
    assert heartbeat_age({"heartbeat_at": "100.0"}, 102.5) == 2.5
    assert heartbeat_age({}, 1.0) is None


def test_the_applied_roster_is_recorded_once_per_change_and_read_back(
    fake_store: Store,  # noqa: F811
) -> None:
    from reconciler.spec import loader
    from reconciler.spec.rosterjson import roster_from_json

    s = fake_store
    assert s.roster_record() is None and s.roster_digest() is None
    one = loader.load_texts('[town]\nname = "r"\n\n[agents.a]\nmodel = "sim"\n', None)
    assert s.record_roster(one)
    assert not s.record_roster(one)  # the same roster: nothing written
    digest, text = s.roster_record() or ("", "")
    assert s.roster_digest() == digest and roster_from_json(text).agents == one.agents
    two = loader.load_texts('[town]\nname = "r"\n\n[agents.b]\nmodel = "sim"\n', None)
    assert s.record_roster(two) and s.roster_digest() != digest
    assert s.keys.roster.startswith(f"tt:{{{s.town}}}:")  # under the town's hash tag


def test_a_deposed_leaders_roster_is_refused_and_the_newer_one_stays(
    fake_store: Store,  # noqa: F811
) -> None:
    import pytest

    from reconciler.errors import LeaderFenced
    from reconciler.spec import loader

    s = fake_store
    _, old_epoch = s.hold_leader("loop-a", 30)
    s.client.delete(s.keys.leader)  # its lease ran out; another loop leads, and applies
    _, new_epoch = s.hold_leader("loop-b", 30)
    s.fence = f"e:{new_epoch}"
    newer = loader.load_texts('[town]\nname = "r"\n\n[agents.new]\nmodel = "sim"\n', None)
    assert s.record_roster(newer)
    digest = s.roster_digest()
    s.fence = f"e:{old_epoch}"  # the deposed leader's pass, late
    stale = loader.load_texts('[town]\nname = "r"\n\n[agents.old]\nmodel = "sim"\n', None)
    with pytest.raises(LeaderFenced):
        s.record_roster(stale)
    assert s.roster_digest() == digest
