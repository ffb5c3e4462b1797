"""What a node's pass costs Redis (`nodes/run.py` → `control/nodepass.py`): its own agents are
read, never the town's others, so the commands of a pass do not grow with the agents placed on
other nodes, and a pass that changes nothing is one round trip. A node started over records
written before its index was kept still finds (and stops) its stale process. Fakeredis, its
connections counted; the started "agents" are sleeping processes (tests/control/test_fleet.py).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
from fakeredis._clients._sync import FakeRedisConnection

from reconciler.agents.supervisor import is_alive
from reconciler.control import fleet
from reconciler.control.session import Session
from reconciler.nodes.run import NodeOptions, NodeRun
from reconciler.plan.placement import Placed
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.control.test_fleet import Spawner, spawner  # noqa: F401


@dataclass
class Tally:
    commands: int = 0
    trips: int = 0  # round trips: what is sent at once, then read back


def counting_store(tally: Tally) -> Store:
    """A store on its own fake server whose connections count what they send."""

    class Counting(FakeRedisConnection):
        def send_command(self, *args: Any, **kwargs: Any) -> None:
            tally.commands += 1
            super().send_command(*args, **kwargs)

        def pack_commands(self, commands: Any) -> Any:
            commands = list(commands)
            tally.commands += len(commands)
            return super().pack_commands(commands)

        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            tally.trips += 1
            super().send_packed_command(command, check_health)

    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    client.connection_pool.connection_class = Counting
    return Store.from_client(client, "cost")


def town(others: int) -> str:
    """n1's two agents (pinned), and `others` on n2: half pinned there, half the leader's pick
    (`node_labels`), in agents of up to 50 replicas each."""
    text = '[town]\nname = "cost"\n\n[agents.mine]\nmodel = "sim"\nnode = "n1"\nreplicas = 2\n\n'
    for kind, where in (("far", 'node = "n2"'), ("roam", 'node_labels = { zone = "b" }')):
        half = others // 2
        for k in range(0, half, 50):
            n = min(50, half - k)
            text += f'[agents.{kind}{k}]\nmodel = "sim"\n{where}\nreplicas = {n}\n\n'
    return text


def node_for(tmp_path: Path, store: Store, spawn: Spawner, others: int) -> NodeRun:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "town.toml").write_text(town(others))
    (tmp_path / "tasks.toml").write_text("")
    s = Session(TownPaths(tmp_path))
    s.__dict__["store"] = store
    return NodeRun(s, NodeOptions("n1"), lambda kind, detail: None, spawn=spawn)


def place_the_others(store: Store, node: NodeRun) -> list[str]:
    """What n2 and the leader wrote for the other agents: each registered, idle on n2 with a
    live heartbeat lease, the unpinned ones placed there."""
    desired = node.s.desired()
    names = [n for a in desired.agents if a.name != "mine" for n in a.instances()]
    for n in names:
        store.register_agent(n, {"node": "n2", "host": "elsewhere", "pid": "7", "state": "idle"})
        assert store.take_instance(n, f"i-{n}", 60)
    roam = [n for a in desired.agents if a.node_labels for n in a.instances()]
    store.write_placement(Placed(dict.fromkeys(roam, "n2"), {}), [])
    return names


def pass_cost(tmp_path: Path, spawn: Spawner, others: int) -> Tally:
    """A pass of node n1 once its agents run (nothing to start or stop): what it sent."""
    tally = Tally()
    store = counting_store(tally)
    node = node_for(tmp_path, store, spawn, others)
    names = place_the_others(store, node)
    node._pass()  # starts its two agents
    node._pass()  # adopts them
    assert sorted(n for n, r in store.agent_records().items() if r.get("node") == "n1") == [
        "mine",
        "mine-2",
    ]
    tally.commands = tally.trips = 0
    node._pass()
    seen = Tally(tally.commands, tally.trips)
    assert len(spawn.started) == 2  # nothing started or stopped meanwhile
    assert all(store.agent_records()[n]["state"] == "idle" for n in names)
    return seen


def test_a_node_pass_costs_the_same_whatever_the_agents_of_other_nodes(
    tmp_path: Path,
    spawner: Spawner,  # noqa: F811
) -> None:
    few = pass_cost(tmp_path / "few", spawner, others=2)
    spawner.stop_all()
    spawner.started.clear()
    many = pass_cost(tmp_path / "many", spawner, others=200)
    assert few == many, (few, many)
    assert many.trips == 1  # its state, the suspension, its agents and leases: one round trip
    assert many.commands <= 12, many


def test_a_node_finds_its_stale_process_recorded_before_its_index(
    tmp_path: Path,
    spawner: Spawner,  # noqa: F811
) -> None:
    store = counting_store(Tally())
    node = node_for(tmp_path, store, spawner, others=2)
    # An agent that left the roster, whose process this node started under an older tt (its
    # record names n1; no index of n1's agents was kept then).
    pid, start = spawner(["gone"], cwd=tmp_path, env={}, log_path=tmp_path / "gone.log")
    record = {"node": "n1", "host": socket.gethostname(), "pid": str(pid), "pid_start": start}
    store.register_agent("gone", {**record, "root": str(tmp_path), "state": "idle"})
    store.client.delete(store.keys.node_agents("n1"))
    assert store.index_node_agents("n1") == 1  # what `run` does once, at its start
    node._read_files(None)
    assert node.good is not None
    changes = fleet.ensure(
        node.s.paths, node.good, store, spawn=spawner, place="n1", stop_grace=0.1
    )
    assert [(c.agent, c.action) for c in changes] == [  # stops first, then starts
        ("gone", "stopped"),
        ("mine", "started"),
        ("mine-2", "started"),
    ]
    assert not is_alive(pid, start)
    assert store.agent_records()["gone"]["stopped_by"] == "removed from town.toml"
