"""The node process's loop (`nodes/run.py`) on fakeredis, with sleeping processes for agents:
it starts the agents placed on it, drains them on `tt node drain`, stops them when it stops on
purpose, refuses a name another live process holds, and, its name taken by another process after
its lease lapsed, stops and leaves the agents to that one. Bad options are refused."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.agents.supervisor import is_alive, stop_process
from reconciler.control.session import Session
from reconciler.errors import TtError
from reconciler.nodes.run import NodeOptions, NodeRun, check_options, parse_labels
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.control.test_fleet import Spawner, spawner  # noqa: F401
from tests.control.test_fleet_places import Places, lead
from tests.integration.live import until
from tests.redis_fixtures import fake_store, town_name  # noqa: F401

TOWN = (
    '[town]\nname = "node"\n\n[agents.a]\nmodel = "sim"\nnode = "n1"\n\n[agents.b]\nmodel = "sim"\n'
)


def node_on(tmp_path: Path, store: Store, spawn: Spawner, **kw: object) -> NodeRun:
    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_text("")
    s = Session(TownPaths(tmp_path))
    s.__dict__["store"] = store
    opts = NodeOptions("n1", **kw)  # type: ignore[arg-type]
    return NodeRun(s, opts, lambda kind, detail: None, spawn=spawn)


def beside(action: Callable[[], None]) -> threading.Thread:
    """`action` in a thread while the node runs in this (the main) thread."""
    t = threading.Thread(target=action, daemon=True)
    t.start()
    return t


def test_it_starts_its_agents_drains_them_and_stops_them_when_stopped(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    spawner: Spawner,  # noqa: F811
) -> None:
    node = node_on(tmp_path, fake_store, spawner, interval=0.1, slots=2, labels=(("gpu", "1"),))
    seen: dict[str, object] = {}

    def drive() -> None:
        until(lambda: spawner.started, 10, "its agent started")
        seen["record"] = fake_store.node_records()["n1"]
        fake_store.drain_node("n1")
        control = fake_store.keys.control("a")
        until(lambda: fake_store.client.lrange(control, 0, -1) == ["drain"], 10, "drain asked")
        node.signalled = True  # what SIGTERM does

    thread = beside(drive)
    assert node.run() == 0
    thread.join(5)
    assert [pid for pid, _ in spawner.started] == [int(fake_store.agent_records()["a"]["pid"])]
    assert "b" not in fake_store.agent_records()  # the controller's, not the node's
    record = seen["record"]
    assert isinstance(record, dict) and (record["slots"], record["labels"]) == ("2", "gpu=1")
    pid, start = spawner.started[0]
    assert not is_alive(pid, start)  # stopped with the node
    assert fake_store.agent_records()["a"]["stopped_by"] == "node n1 stopped"
    assert fake_store.node_records()["n1"]["state"] == "stopped"


def test_a_name_held_by_a_live_process_is_refused(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    spawner: Spawner,  # noqa: F811
) -> None:
    fake_store.register_node("n1", "other", 10, {"pid": "4242", "host": "h9"})
    node = node_on(tmp_path, fake_store, spawner)
    with pytest.raises(TtError, match=r"node n1 is already running \(pid 4242 on h9"):
        node.run()
    assert spawner.started == []


def test_its_name_taken_after_its_lease_lapsed_it_stops_and_leaves_the_agents(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    spawner: Spawner,  # noqa: F811
) -> None:
    node = node_on(tmp_path, fake_store, spawner, interval=0.1, lease=0.4)

    def take_over() -> None:
        until(lambda: spawner.started, 10, "its agent started")
        fake_store.client.delete(fake_store.keys.node_lease("n1"))  # it lapsed (a long pause)
        assert fake_store.register_node("n1", "newer", 10, {"pid": "5151"}) is None

    beside(take_over)
    with pytest.raises(TtError, match="another process took the name"):
        node.run()
    pid, start = spawner.started[0]
    assert is_alive(pid, start)  # the newer process adopts it
    assert fake_store.node_records()["n1"]["instance"] == "newer"


@pytest.mark.parametrize(
    ("opts", "error"),
    [
        (NodeOptions("N1_bad"), "not a valid node name"),
        (NodeOptions("n1", lease=0), "must be > 0"),
        (NodeOptions("n1", slots=-1), "must be 0 or more"),
        (NodeOptions("n1", labels=(("GPU", "1"),)), "not a valid label name"),
        (NodeOptions("n1", labels=(("a", "1,b=2"),)), "a label value holds no ',' or '='"),
        (NodeOptions("n1", labels=(("a", "x=y"),)), "a label value holds no ',' or '='"),
    ],
)
def test_bad_options_are_refused(opts: NodeOptions, error: str) -> None:
    with pytest.raises(TtError, match=error):
        check_options(opts)


def test_labels_parse_and_a_label_without_a_value_sign_is_refused() -> None:
    assert parse_labels(("zone=b", "gpu=1")) == (("gpu", "1"), ("zone", "b"))
    with pytest.raises(TtError, match="expected KEY=VALUE"):
        parse_labels(("gpu",))
    # `a=1,b=2` would read back as two labels: refused before anything is written.
    with pytest.raises(TtError, match="a label value holds no ',' or '='") as refused:
        check_options(NodeOptions("n1", labels=parse_labels(("a=1,b=2",))))
    assert refused.value.hint == "one --label per label: --label a=1 --label b=2"


POOL = """[town]
name = "node"
self_heal = false

[agents.w]
model = "sim"
node_labels = {gpu = "1"}
"""


def test_an_unpinned_agent_of_a_drained_node_starts_on_another_node_even_without_self_heal(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    spawner: Spawner,  # noqa: F811
) -> None:
    places = Places(tmp_path, lead(fake_store), spawner)
    for name in ("n1", "n2"):
        fields = {"host": "h", "pid": "1", "labels": "gpu=1"}
        assert fake_store.register_node(name, f"i-{name}", 60, fields) is None
    desired = places.roster(POOL)
    places.ensure(desired)
    assert fake_store.placement().nodes["w"] == "n1"
    assert places.ensure(desired, "n1") == [("w", "started")]
    node = node_on(tmp_path, fake_store, spawner)
    node.good = desired
    fake_store.drain_node("n1")
    node._drain(fake_store.agent_records())  # what n1's pass does while draining (its own)
    assert fake_store.client.lrange(fake_store.keys.control("w"), 0, -1) == ["drain"]
    # The worker drains: it exits cleanly, writing `stopped` (with its pid still recorded).
    pid, start = spawner.started[0]
    stop_process(pid, start, 3.0)
    fake_store.set_agent("w", {"state": "stopped", "task": ""})
    places.ensure(desired)  # the leader moves it off the draining node
    assert fake_store.placement().nodes["w"] == "n2"
    assert places.ensure(desired, "n2") == [("w", "started")]
    assert fake_store.agent_records()["w"]["node"] == "n2"
