"""Agents placed on nodes (`node = "N"`): each place (a node's name, or the controller's: none)
starts, adopts and stops only its own agents, several nodes on one host included; the controller
records the death of a node's agent whose heartbeat lease ran out and hands its task back.
Fakeredis; the started "agents" are sleeping processes (tests/control/test_fleet.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.control import atplace, fleet, heal
from reconciler.spec import loader
from reconciler.spec.desired import Desired
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.control.test_fleet import Spawner, spawner  # noqa: F401
from tests.integration.live import until
from tests.redis_fixtures import fake_store, town_name  # noqa: F401
from tests.store.test_transitions import rec
from tests.store.test_turn import POLICY

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


@dataclass
class Places:
    tmp: Path
    store: Store
    spawner: Spawner

    @property
    def paths(self) -> TownPaths:
        return TownPaths(self.tmp)

    def roster(self, text: str = TOWN) -> Desired:
        (self.tmp / "town.toml").write_text(text)
        return loader.load(self.paths)

    def ensure(
        self, desired: Desired, place: str | None = None, **kw: Any
    ) -> list[tuple[str, ...]]:
        changes = fleet.ensure(
            self.paths, desired, self.store, spawn=self.spawner, place=place, stop_grace=0.1, **kw
        )
        return [(c.agent, c.action) for c in changes]


def lead(store: Store) -> Store:
    """The store as the leader's (fenced by its epoch): only its pass decides the placement."""
    store.client.set(store.keys.leader_epoch, "1")
    store.fence = "e:1"
    return store


@pytest.fixture
def places(tmp_path: Path, fake_store: Store, spawner: Spawner) -> Places:  # noqa: F811
    return Places(tmp_path, lead(fake_store), spawner)


def env_of(pid: int) -> dict[str, str]:
    """A process's environment. Read just after its start it may still be empty (the kernel
    sets it up late in exec): read until it shows PATH, which every agent is given."""

    def read() -> dict[str, str] | None:
        pairs = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
        env = dict(p.split("=", 1) for p in pairs if "=" in p)
        return env if "PATH" in env else None

    return until(read, 5, f"the environment of pid {pid}")


def test_each_place_runs_only_the_agents_placed_on_it(places: Places) -> None:
    desired = places.roster()
    assert atplace.desired_instances(desired) == {"home": True}
    assert atplace.desired_instances(desired, "n1") == {"a": True}
    assert atplace.placed_elsewhere(desired, "n1") == {"home": "", "b": "n2"}

    assert places.ensure(desired) == [("home", "started")]
    assert places.ensure(desired, "n1") == [("a", "started")]
    assert places.ensure(desired, "n2") == [("b", "started")]
    records = places.store.agent_records()
    assert {n: r["node"] for n, r in records.items()} == {"home": "", "a": "n1", "b": "n2"}
    # The node's name reaches the worker (it records it, and its attempts name it).
    envs = [env_of(pid).get("TT_NODE") for pid, _ in places.spawner.started]
    assert envs == [None, "n1", "n2"]
    # Every place again, each process alive on this one host: nothing started or stopped.
    for place in (None, "n1", "n2"):
        assert places.ensure(desired, place) == []
    assert len(places.spawner.started) == 3


def test_a_node_stops_its_agent_once_placed_elsewhere_and_the_controller_then_starts_it(
    places: Places,
) -> None:
    places.ensure(places.roster(), "n1")
    moved = places.roster(TOWN.replace('node = "n1"\n', ""))  # `a` moves home
    assert places.ensure(moved, "n1") == [("a", "stopped")]
    assert places.store.agent_records()["a"]["stopped_by"] == "placed on the controller"
    places.store.set_agent("a", {"state": "stopped"})  # what the worker writes as it exits
    assert sorted(places.ensure(moved)) == [("a", "started"), ("home", "started")]


def test_the_controller_hands_back_the_task_of_a_node_agent_silent_past_its_lease(
    places: Places,
) -> None:
    desired, s = places.roster(), places.store
    lease, now = desired.town.policy.lease, time.time()
    s.set_agent_spec("a", base="a", spec="{}", spec_hash="h", suspended=False)
    s.upsert_tasks([rec("t", target="a")], 1)
    assert s.turn("a", None, "tok", ["a"], POLICY).claimed is not None  # `a` runs `t`
    # Its process on another host, beating a moment ago (no lease key: a test's shortcut).
    gone = {"pid": "99999999", "pid_start": "1", "spawn": "s0", "host": "other-host"}
    s.set_agent("a", {**gone, "node": "n1", "heartbeat_at": repr(now - 1)})
    assert not heal.silent(s.agent_records()["a"], now, lease)
    assert places.ensure(desired) == [("home", "started")]
    # Silent past its lease: the controller (not another node) records its death and hands
    # `t` back; the dead attempt's token can no longer complete it.
    s.set_agent("a", {"heartbeat_at": repr(now - lease - 1)})
    assert places.ensure(desired, "n2") == [("b", "started")]
    assert s.agent_records()["a"]["state"] == "working"
    assert places.ensure(desired) == [("a", "died")]
    agent = s.agent_records()["a"]
    assert (agent["state"], agent["pid"], agent["task"]) == ("backoff", "", "")
    assert s.task_hash("t")["state"] == "ready"
    assert not s.complete("t", "tok", "a late result from the dead host")


def test_an_agent_removed_from_the_roster_is_stopped_by_its_node_then_forgotten(
    places: Places,
) -> None:
    s = places.store
    places.ensure(places.roster(), "n1")
    s.client.set(s.keys.heartbeat("a"), "i1")  # the worker's lease
    removed = places.roster(TOWN.replace('[agents.a]\nmodel = "sim"\nnode = "n1"\n', ""))
    places.ensure(removed)
    assert "a" in s.agent_records()  # its node has not stopped it yet
    assert places.ensure(removed, "n1") == [("a", "stopped")]
    assert s.agent_records()["a"]["stopped_by"] == "removed from town.toml"
    s.client.delete(s.keys.heartbeat("a"))  # what the worker does as it exits
    places.ensure(removed)
    assert "a" not in s.agent_records()
