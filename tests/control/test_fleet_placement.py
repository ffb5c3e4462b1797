"""The leader's placement through the fleet (issue 14, points 2 and 3), on fakeredis: the
controller's pass decides and records where each agent runs (`control/placing.py`); each node's
pass starts what it was given; slots and labels hold; a dead node's agents move to a ready one
(their task handed back) while a pinned one stays unschedulable; a node back with a stale
process stops it. The started "agents" are sleeping processes (tests/control/test_fleet.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.agents.supervisor import is_alive
from reconciler.control import fleet, report
from reconciler.plan.placement import Placed
from reconciler.spec.desired import Desired
from reconciler.store.client import Store
from tests.control.test_fleet import Spawner, spawner  # noqa: F401
from tests.control.test_fleet_places import Places, lead
from tests.redis_fixtures import fake_store, town_name  # noqa: F401
from tests.store.test_transitions import rec
from tests.store.test_turn import POLICY

POOL = """[town]
name = "placing"

[agents.home]
model = "sim"

[agents.w]
model = "sim"
replicas = 3
node_labels = {gpu = "1"}

[agents.pin]
model = "sim"
node = "n1"
"""


@pytest.fixture
def places(tmp_path: Path, fake_store: Store, spawner: Spawner) -> Places:  # noqa: F811
    return Places(tmp_path, lead(fake_store), spawner)


def register(s: Store, name: str, slots: int = 0, labels: str = "") -> None:
    fields = {"host": "h", "pid": "1", "slots": str(slots), "labels": labels}
    assert s.register_node(name, f"i-{name}", 60, fields) is None


def pin_and_w_on_n1(places: Places) -> tuple[Store, Desired]:
    """n1 registered (gpu=1), a one-replica pool: the pin and `w` placed and started on n1."""
    s = places.store
    register(s, "n1", labels="gpu=1")
    desired = places.roster(POOL.replace("replicas = 3", "replicas = 1"))
    places.ensure(desired)
    assert sorted(places.ensure(desired, "n1")) == [("pin", "started"), ("w", "started")]
    return s, desired


def states(s: Store, desired: Desired) -> dict[str, tuple[str, str | None]]:
    return {r["name"]: (r["state"], r["node"]) for r in report.agents_report(s, desired)}


def test_the_leader_places_a_pool_on_labelled_nodes_and_each_node_starts_its_share(
    places: Places,
) -> None:
    s = places.store
    register(s, "n1", labels="gpu=1")
    register(s, "n2", labels="gpu=1")
    register(s, "cpu")  # no gpu label: never chosen for `w`
    desired = places.roster(POOL)
    assert places.ensure(desired) == [("home", "started")]  # the controller runs only `home`
    placed = s.placement()
    # Spread: the pin counts on n1, so `w` goes to n2 first.
    assert dict(placed.nodes) == {"pin": "n1", "w": "n2", "w-2": "n1", "w-3": "n2"}
    assert dict(placed.unschedulable) == {}
    events = [(f["type"], f.get("agent"), f.get("node")) for _, f in s.events_since("-")]
    assert [e for e in events if e[0] == "agent.placed"] == [
        ("agent.placed", n, placed.nodes[n]) for n in ("pin", "w", "w-2", "w-3")
    ]
    assert sorted(places.ensure(desired, "n1")) == [("pin", "started"), ("w-2", "started")]
    assert sorted(places.ensure(desired, "n2")) == [("w", "started"), ("w-3", "started")]
    assert places.ensure(desired, "cpu") == []
    records = s.agent_records()
    assert {n: records[n]["node"] for n in ("pin", "w", "w-2", "w-3")} == dict(placed.nodes)
    # Again: nothing moves, nothing is written (no new event).
    before = len(s.events_since("-"))
    for place in (None, "n1", "n2"):
        assert places.ensure(desired, place) == []
    assert len(s.events_since("-")) == before
    # A node that joins later takes nothing from the others (stability).
    register(s, "n3", labels="gpu=1")
    assert places.ensure(desired) == [] and places.ensure(desired, "n3") == []
    assert s.placement() == placed


def test_slots_hold_and_an_agent_that_fits_nowhere_is_unschedulable_with_the_reason(
    places: Places,
) -> None:
    s = places.store
    register(s, "n1", slots=2, labels="gpu=1")
    desired = places.roster(POOL)
    places.ensure(desired)
    placed = s.placement()
    # The pin takes one of n1's two slots; one replica of `w` fits, two do not.
    assert dict(placed.nodes) == {"pin": "n1", "w": "n1"}
    why = "no ready node with node_labels gpu=1 and a free slot"
    assert dict(placed.unschedulable) == {"w-2": why, "w-3": why}
    assert sorted(places.ensure(desired, "n1")) == [("pin", "started"), ("w", "started")]
    rows = {r["name"]: r for r in report.agents_report(s, desired)}
    assert (rows["w-2"]["state"], rows["w-2"]["reason"], rows["w-2"]["node"]) == (
        "unschedulable",
        why,
        None,
    )
    assert rows["w"]["node"] == "n1" and rows["home"]["node"] is None
    # A second node with the label: the two left over are placed there, the rest stays.
    register(s, "n2", labels="gpu=1")
    places.ensure(desired)
    assert dict(s.placement().nodes) == {"pin": "n1", "w": "n1", "w-2": "n2", "w-3": "n2"}
    assert sorted(places.ensure(desired, "n2")) == [("w-2", "started"), ("w-3", "started")]


def test_local_agents_false_runs_nothing_on_the_controllers_host(places: Places) -> None:
    s = places.store
    text = POOL.replace('name = "placing"', 'name = "placing"\nlocal_agents = false')
    desired = places.roster(text)
    assert places.ensure(desired) == []  # no node yet: `home` runs nowhere
    assert s.placement().unschedulable["home"] == "no ready node and a free slot"
    assert states(s, desired)["home"] == ("unschedulable", None)
    register(s, "n1")
    places.ensure(desired)
    assert s.placement().nodes["home"] == "n1"
    assert ("home", "started") in places.ensure(desired, "n1")
    assert s.agent_records()["home"]["node"] == "n1"
    s.client.set(s.keys.heartbeat("home"), "i1")  # the worker's lease
    # Back to true: the controller starts it at home once n1 has stopped its process.
    home = places.roster(POOL)
    assert places.ensure(home) == []  # still running under n1
    assert ("home", "stopped") in places.ensure(home, "n1")
    s.set_agent("home", {"state": "stopped"})  # what the worker writes as it exits
    s.client.delete(s.keys.heartbeat("home"))
    assert places.ensure(home) == [("home", "started")]
    assert "home" not in s.placement().nodes


def test_a_dead_nodes_agents_move_and_its_task_is_handed_back_but_a_pin_stays(
    places: Places,
) -> None:
    s = places.store
    register(s, "n1", labels="gpu=1")
    register(s, "n2", labels="gpu=1")
    desired = places.roster(POOL.replace("replicas = 3", "replicas = 2"))
    places.ensure(desired)
    assert dict(s.placement().nodes) == {"pin": "n1", "w": "n2", "w-2": "n1"}
    places.ensure(desired, "n1")  # pin and w-2
    places.ensure(desired, "n2")  # w
    s.upsert_tasks([rec("t", target="w-2")], 1)
    assert s.turn("w-2", None, "tok", ["w-2"], POLICY).claimed is not None  # on n1
    # n1's host dies: its lease runs out; its agents' processes are gone (no heartbeat lease
    # in this test: the pid is another host's, so it is checked by lease).
    s.client.delete(s.keys.node_lease("n1"))
    for name in ("w-2", "pin"):
        s.set_agent(name, {"host": "dead-host", "heartbeat_at": "1", "spawned_at": "1"})
    changes = places.ensure(desired)
    moved = s.placement()
    assert dict(moved.nodes) == {"pin": "n1", "w": "n2", "w-2": "n2"}
    events = [f for _, f in s.events_since("-") if f["type"] == "agent.placed"]
    assert (events[-1]["agent"], events[-1]["node"], events[-1]["from"]) == ("w-2", "n2", "n1")
    # The controller recorded both deaths and handed `t` back (a late completion is fenced).
    assert sorted(changes) == [("pin", "died"), ("w-2", "died")]
    assert s.task_hash("t")["state"] == "ready"
    assert not s.complete("t", "tok", "a late result from the dead host")
    # n2 starts `w-2`; the pin waits for its node, shown unschedulable (node n1 dead).
    assert places.ensure(desired, "n2") == [("w-2", "started")]
    assert s.agent_records()["w-2"]["node"] == "n2"
    rows = {r["name"]: r for r in report.agents_report(s, desired)}
    assert (rows["pin"]["state"], rows["pin"]["reason"]) == ("unschedulable", "node n1 dead")
    assert rows["w-2"]["node"] == "n2"


def test_an_agent_that_beats_is_not_moved_off_its_late_node_and_one_moved_is_stopped_there(
    places: Places,
) -> None:
    s, desired = pin_and_w_on_n1(places)
    # n1's process alone dies (or is late with its lease); its agents run on; n2 joins.
    s.client.delete(s.keys.node_lease("n1"))
    register(s, "n2", labels="gpu=1")
    s.client.set(s.keys.heartbeat("w"), "beating")  # the old process still beats
    s.upsert_tasks([rec("t", target="w")], 1)
    assert s.turn("w", None, "tok", ["w"], POLICY).claimed is not None
    assert places.ensure(desired) == []
    assert s.placement().nodes["w"] == "n1"  # not moved while it beats: its task runs on
    assert places.ensure(desired, "n2") == []
    register(s, "n1", labels="gpu=1")  # n1 back: it adopts its agents, none handed back
    assert places.ensure(desired, "n1") == []
    assert s.task_hash("t")["state"] == "running"
    assert s.complete("t", "tok", "done where it ran")
    # n1 dead again, and the agent's own lease gone too: now it moves.
    s.client.delete(s.keys.node_lease("n1"))
    s.client.delete(s.keys.heartbeat("w"))
    places.ensure(desired)
    assert s.placement().nodes["w"] == "n2"
    # n1 comes back before n2 started it: it stops its process of `w` (placed on n2 now).
    register(s, "n1", labels="gpu=1")
    assert places.ensure(desired, "n1") == [("w", "stopped")]
    assert s.agent_records()["w"]["stopped_by"] == "placed on node n2"
    s.set_agent("w", {"state": "stopped"})  # what the worker writes as it exits
    assert places.ensure(desired, "n2") == [("w", "started")]
    assert s.placement().nodes["w"] == "n2"  # n1 back moves nothing (stability)


def test_a_node_restarted_with_fewer_slots_stops_the_pin_that_no_longer_fits(
    places: Places,
) -> None:
    s = places.store
    register(s, "n1")
    desired = places.roster(POOL.replace('node = "n1"', 'node = "n1"\nreplicas = 2'))
    places.ensure(desired)
    assert sorted(places.ensure(desired, "n1")) == [("pin", "started"), ("pin-2", "started")]
    register(s, "n1", slots=1)  # started again with --slots 1
    places.ensure(desired)
    why = "node n1 has no free slot (1 slots)"
    assert (dict(s.placement().nodes), dict(s.placement().unschedulable)) == (
        {"pin": "n1"},
        {"pin-2": why, "w": "no ready node with node_labels gpu=1 and a free slot"}
        | {f"w-{i}": "no ready node with node_labels gpu=1 and a free slot" for i in (2, 3)},
    )
    assert places.ensure(desired, "n1") == [("pin-2", "stopped")]
    assert s.agent_records()["pin-2"]["stopped_by"] == f"unschedulable ({why})"
    s.set_agent("pin-2", {"state": "stopped"})  # what the worker writes as it exits
    assert places.ensure(desired, "n1") == []  # not started again
    rows = {r["name"]: r for r in report.agents_report(s, desired)}
    assert (rows["pin-2"]["state"], rows["pin-2"]["reason"]) == ("unschedulable", why)


class Counting:
    """The store, counting its full reads of the agent records."""

    def __init__(self, store: Store) -> None:
        self.store, self.scans = store, 0

    def agent_records(self) -> dict[str, dict[str, str]]:
        self.scans += 1
        return self.store.agent_records()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_the_deaths_of_a_dead_nodes_agents_cost_one_read_of_the_records(places: Places) -> None:
    s = places.store
    register(s, "n1", labels="gpu=1")
    register(s, "n2", labels="gpu=1")
    desired = places.roster(POOL.replace("replicas = 3", "replicas = 4"))
    places.ensure(desired)
    places.ensure(desired, "n1")
    on_n1 = sorted(n for n, at in s.placement().nodes.items() if at == "n1")
    assert len(on_n1) == 3  # pin, w-2, w-4
    s.client.delete(s.keys.node_lease("n1"))
    for name in on_n1:
        s.set_agent(name, {"host": "dead-host", "heartbeat_at": "1", "spawned_at": "1"})
    counting = Counting(s)
    changes = fleet.ensure(places.paths, desired, counting, spawn=places.spawner, stop_grace=0.1)  # type: ignore[arg-type]
    assert sorted((c.agent, c.action) for c in changes) == [(n, "died") for n in on_n1]
    assert counting.scans == 1  # not one more scan per dead agent


def test_a_nodes_death_is_recorded_but_quarantines_none_of_its_agents(places: Places) -> None:
    s = places.store
    register(s, "n1", labels="gpu=1")
    desired = places.roster(POOL.replace("replicas = 3", "replicas = 1"))
    places.ensure(desired)
    places.ensure(desired, "n1")
    assert {n for n, at in s.placement().nodes.items() if at == "n1"} == {"pin", "w"}
    register(s, "n2", labels="gpu=1")
    for _ in range(3):  # a flaky host: n1 dies again and again, just after its agents start
        s.client.delete(s.keys.node_lease("n1"))
        for name in ("pin", "w"):  # silent since their start, one death short of quarantine
            fields = {"host": "dead-host", "pid": "1", "state": "idle", "node": "n1"}
            s.set_agent(name, fields | {"quick_deaths": "4", "heartbeat_at": "1"})
            s.set_agent(name, {"spawned_at": repr(time.time() - 2 * POLICY.lease)})
        places.ensure(desired)
        records = s.agent_records()
        for name in ("pin", "w"):
            assert records[name]["state"] == "backoff", records[name]
            assert records[name]["quick_deaths"] == "4"  # not counted as the agent's crash
            assert records[name]["reason"] == "node n1 lost; restart now"
        register(s, "n1", labels="gpu=1")
    assert s.agent_records()["pin"]["node_deaths"] == "3"


ONE_SLOT = """[town]
name = "placing"

[agents.a]
model = "sim"
node_labels = {gpu = "1"}
suspended = A

[agents.b]
model = "sim"
node_labels = {gpu = "1"}
suspended = B
"""


def test_a_node_stops_what_leaves_its_slot_before_it_starts_what_takes_it(
    places: Places,
) -> None:
    s = places.store
    register(s, "n1", slots=1, labels="gpu=1")
    first = places.roster(ONE_SLOT.replace("A", "true").replace("B", "false"))
    places.ensure(first)
    assert places.ensure(first, "n1") == [("b", "started")]
    b_pid, b_start = places.spawner.started[0]
    # `a` (first in the roster) resumed, `b` suspended: the slot goes from b to a.
    second = places.roster(ONE_SLOT.replace("A", "false").replace("B", "true"))
    places.ensure(second)
    assert s.placement().nodes == {"a": "n1"}
    running_at_start: list[bool] = []
    spawn = places.spawner

    def checking(argv: Any, **kw: Any) -> tuple[int, str]:
        running_at_start.append(is_alive(b_pid, b_start))
        return spawn(argv, **kw)

    changes = fleet.ensure(places.paths, second, s, spawn=checking, place="n1", stop_grace=0.1)
    assert [(c.agent, c.action) for c in changes] == [("b", "stopped"), ("a", "started")]
    assert running_at_start == [False]  # never two agents on the 1-slot node


def test_a_node_back_from_a_partition_stops_its_process_of_an_agent_started_anew_elsewhere(
    places: Places, tmp_path: Path
) -> None:
    s, desired = pin_and_w_on_n1(places)
    old_pid = int(s.agent_records()["w"]["pid"])
    old = next(p for p in places.spawner.started if p[0] == old_pid)
    # n1 is cut off past the leases: its lease and w's lapse, but w's process runs on.
    register(s, "n2", labels="gpu=1")
    s.client.delete(s.keys.node_lease("n1"))
    s.set_agent("w", {"heartbeat_at": "1", "spawned_at": "1"})
    assert ("w", "died") in places.ensure(desired)  # the leader records its death ...
    assert s.placement().nodes["w"] == "n2"  # ... and moves it
    far = Places(tmp_path / "n2-host", s, places.spawner)  # n2: another host's folder
    far.tmp.mkdir()
    assert far.ensure(far.roster(POOL.replace("replicas = 3", "replicas = 1")), "n2") == [
        ("w", "started")
    ]
    new_pid = int(s.agent_records()["w"]["pid"])
    # n1 back: the record names n2's process; n1 stops its own stray (its run folder has it).
    register(s, "n1", labels="gpu=1")
    assert places.ensure(desired, "n1") == [("w", "stopped")]
    assert not is_alive(*old)
    assert is_alive(new_pid, s.agent_records()["w"]["pid_start"])  # n2's runs on
    assert s.agent_records()["w"]["node"] == "n2"
    stop = [f for _, f in s.events_since("-") if f["type"] == "agent.stopped"][-1]
    assert (stop["agent"], stop["reason"], stop["pid"]) == ("w", "superseded", str(old_pid))
    assert places.ensure(desired, "n1") == []  # once


def test_only_the_leader_decides_the_placement_other_passes_act_on_the_last_one(
    places: Places,
) -> None:
    s = places.store
    register(s, "n1", labels="gpu=1")
    desired = places.roster(POOL.replace("replicas = 3", "replicas = 1"))
    # A pass that does not lead (a one-shot `tt apply`, `tt restart`, a CI job): no placement
    # is decided or written; the pin waits on its node, `w` is placed nowhere yet.
    s.fence = ""
    assert places.ensure(desired) == [("home", "started")]
    assert s.placement() == Placed({}, {})
    assert not [f for _, f in s.events_since("-") if f["type"].startswith("agent.placed")]
    s.fence = "e:1"  # the leader decides
    places.ensure(desired)
    decided = s.placement()
    assert dict(decided.nodes) == {"pin": "n1", "w": "n1"}
    # Things change (n1 gone, n2 up): a pass that does not lead acts on the leader's last
    # placement and writes no stale one of its own.
    s.client.delete(s.keys.node_lease("n1"))
    register(s, "n2", labels="gpu=1")
    s.fence = ""
    before = len(s.events_since("-"))
    places.ensure(desired)
    assert s.placement() == decided
    assert not [f for _, f in s.events_since("-")[before:] if f["type"] == "agent.placed"]
    s.fence = "e:1"
    places.ensure(desired)
    assert s.placement().nodes["w"] == "n2"
