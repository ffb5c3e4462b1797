"""Agents placed on nodes (`node = "N"`): each place (a node's name, or the controller's: none)
starts, adopts and stops only its own agents, several nodes on one host included; the controller
records the death of a node's agent whose heartbeat lease ran out and hands its task back.
Fakeredis; the started "agents" are sleeping processes (tests/control/test_fleet.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.control import fleet, heal
from reconciler.spec import loader
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.control.test_fleet import EnvSpawner as Spawner
from tests.redis_fixtures import fake_store, town_name  # noqa: F401

TOWN = """[town]
name = "places"

[agents.home]
model = "sim"

[agents.a]
model = "sim"
node = "n1"

[agents.b]
model = "sim"
node = "n2"
"""


@pytest.fixture
def spawner() -> Iterator[Spawner]:
    s = Spawner()
    try:
        yield s
    finally:
        s.stop_all()


def started(changes: list[fleet.FleetChange]) -> list[str]:
    return sorted(c.agent for c in changes if c.action == "started")


def test_each_place_runs_only_the_agents_placed_on_it(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    spawner: Spawner,
) -> None:
    (tmp_path / "town.toml").write_text(TOWN)
    paths = TownPaths(tmp_path)
    desired = loader.load(paths)
    assert fleet.desired_instances(desired) == {"home": True}
    assert fleet.desired_instances(desired, "n1") == {"a": True}
    assert fleet.placed_elsewhere(desired, "n1") == {"home": "", "b": "n2"}

    assert started(fleet.ensure(paths, desired, fake_store, spawn=spawner)) == ["home"]
    assert started(fleet.ensure(paths, desired, fake_store, spawn=spawner, place="n1")) == ["a"]
    assert started(fleet.ensure(paths, desired, fake_store, spawn=spawner, place="n2")) == ["b"]
    records = fake_store.agent_records()
    assert {n: r["node"] for n, r in records.items()} == {"home": "", "a": "n1", "b": "n2"}
    # The node's name reaches the worker (it records it, and its attempts name it).
    assert [e.get("TT_NODE") for e in spawner.envs] == [None, "n1", "n2"]
    # Every place again, each process alive on this one host: nothing started or stopped.
    for place in (None, "n1", "n2"):
        assert fleet.ensure(paths, desired, fake_store, spawn=spawner, place=place) == []
    assert len(spawner.started) == 3


def test_a_node_stops_its_agent_once_placed_elsewhere_and_the_controller_then_starts_it(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    spawner: Spawner,
) -> None:
    (tmp_path / "town.toml").write_text(TOWN)
    paths = TownPaths(tmp_path)
    fleet.ensure(paths, loader.load(paths), fake_store, spawn=spawner, place="n1")
    (tmp_path / "town.toml").write_text(TOWN.replace('node = "n1"\n', ""))  # `a` moves home
    moved = loader.load(paths)
    changes = fleet.ensure(paths, moved, fake_store, spawn=spawner, place="n1", stop_grace=0.1)
    assert [(c.agent, c.action, c.detail) for c in changes] == [
        ("a", "stopped", "placed on the controller")
    ]
    fake_store.set_agent("a", {"state": "stopped"})  # what the worker writes as it exits
    assert started(fleet.ensure(paths, moved, fake_store, spawn=spawner)) == ["a", "home"]


def test_the_controller_hands_back_the_task_of_a_node_agent_silent_past_its_lease(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    spawner: Spawner,
) -> None:
    (tmp_path / "town.toml").write_text(TOWN)
    paths = TownPaths(tmp_path)
    desired = loader.load(paths)
    lease = desired.town.policy.lease
    now = time.time()
    gone = {"pid": "99999999", "pid_start": "1", "spawn": "s0", "host": "other-host"}
    fake_store.set_agent_spec("a", base="a", spec="{}", spec_hash="h", suspended=False)
    # Beating a moment ago (its lease key is gone: a test's shortcut): not dead yet.
    fresh = {**gone, "node": "n1", "state": "working", "heartbeat_at": repr(now - 1)}
    fake_store.set_agent("a", fresh)
    assert not heal.silent(fresh, now, lease)
    assert [c.agent for c in fleet.ensure(paths, desired, fake_store, spawn=spawner)] == ["home"]
    assert fake_store.agent_records()["a"]["state"] == "working"
    # Silent past its lease: the controller records its death (its node then restarts it).
    fake_store.set_agent("a", {"heartbeat_at": repr(now - lease - 1), "task": ""})
    n2 = fleet.ensure(paths, desired, fake_store, spawn=spawner, place="n2")
    assert [(c.agent, c.action) for c in n2] == [("b", "started")]  # and nothing of n1's
    assert fake_store.agent_records()["a"]["state"] == "working"
    changes = fleet.ensure(paths, desired, fake_store, spawn=spawner)
    assert [(c.agent, c.action) for c in changes] == [("a", "died")]
    rec = fake_store.agent_records()["a"]
    assert (rec["state"], rec["pid"], rec["host"]) == ("backoff", "", "other-host")
    assert socket.gethostname() != "other-host"


def test_an_agent_removed_from_the_roster_is_stopped_by_its_node_then_forgotten(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    spawner: Spawner,
) -> None:
    (tmp_path / "town.toml").write_text(TOWN)
    paths = TownPaths(tmp_path)
    fleet.ensure(paths, loader.load(paths), fake_store, spawn=spawner, place="n1")
    fake_store.client.set(fake_store.keys.heartbeat("a"), "i1")  # the worker's lease
    (tmp_path / "town.toml").write_text(
        TOWN.replace('[agents.a]\nmodel = "sim"\nnode = "n1"\n', "")
    )
    removed = loader.load(paths)
    fleet.ensure(paths, removed, fake_store, spawn=spawner)
    assert "a" in fake_store.agent_records()  # its node has not stopped it yet
    changes = fleet.ensure(paths, removed, fake_store, spawn=spawner, place="n1", stop_grace=0.1)
    assert [(c.agent, c.action, c.detail) for c in changes] == [
        ("a", "stopped", "removed from town.toml")
    ]
    fake_store.client.delete(fake_store.keys.heartbeat("a"))  # what the worker does as it exits
    fleet.ensure(paths, removed, fake_store, spawn=spawner)
    assert "a" not in fake_store.agent_records()
