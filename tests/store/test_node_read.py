"""A node pass's one round trip (`store.node_read`) and the index of each node's agents it rests
on (`keys.node_agents`), on real servers (Valkey, Redis, a Redis Cluster, and the lean client):
a start's claim moves an agent to its node's index, forget drops it; the read gives the node's
state, the suspension, the roster digest, the placement and the records and leases of the names
asked, as the town-wide reads give them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.plan.placement import Placed
from reconciler.store.client import Store
from tests.redis_fixtures import (  # noqa: F401
    flush_town,
    redis_cluster,
    redis_store,
    redis_url,
    system_redis_url,
    town_name,
    valkey_url,
)


@pytest.fixture(params=["redis-py", "lean"])
def store(request: pytest.FixtureRequest, redis_store: Store) -> Iterator[Store]:  # noqa: F811
    if request.param == "redis-py" or redis_store.cluster:
        yield redis_store
        return
    lean = Store.open(redis_store.url, redis_store.keys.town, lean=True)
    assert type(lean.client).__module__ == "reconciler.store.leanclient"
    yield lean
    lean.close()


def start(store: Store, name: str, node: str) -> None:
    """What `fleet._start` writes: the claim (a new spawn id, its node), then the pid."""
    seen = store.agent_record(name)
    assert store.claim_start(name, seen, {"spawn": f"s-{name}-{node}", "node": node, "pid": ""})
    assert store.record_spawn(name, f"s-{name}-{node}", {"pid": "4242", "host": "h"})


def test_a_claim_moves_an_agent_to_its_nodes_index_and_forget_drops_it(store: Store) -> None:
    start(store, "a", "n1")
    start(store, "b", "n2")
    index = store.keys.node_agents
    assert store.client.smembers(index("n1")) == {"a"}
    start(store, "a", "n2")  # placed elsewhere since, and started there
    assert store.client.smembers(index("n1")) == set()
    assert store.client.smembers(index("n2")) == {"a", "b"}
    start(store, "b", "")  # the controller's now
    assert store.client.smembers(index("n2")) == {"a"}
    store.forget_agent("a")
    assert store.client.smembers(index("n2")) == set()
    assert store.agent_record("a") == {}


def test_the_read_gives_what_the_town_wide_reads_give_of_the_names_asked(store: Store) -> None:
    start(store, "a", "n1")
    start(store, "far", "n2")
    assert store.take_instance("a", "i-a", 60)
    store.write_placement(Placed({"a": "n1", "far": "n2"}, {"lost": "no ready node"}), [])
    assert store.register_node("n1", "i1", 10, {"host": "h"}) is None
    store.drain_node("n1")
    store.set_suspended(True, "test")
    store.client.hset(store.keys.roster, mapping={"digest": "d1", "json": "{}"})

    got = store.node_read("n1", ["a", "lost"], ["a", "gone"])
    assert (got.state, got.suspended, got.digest) == ("draining", True, "d1")
    assert got.indexed == {"a"}
    assert got.placed == Placed({"a": "n1"}, {"lost": "no ready node"})
    assert got.records == {"a": store.agent_records()["a"]}  # "gone" is not registered
    assert got.beats == {"a": True, "gone": False}

    empty = store.node_read("n3", [], [])
    assert (empty.state, empty.indexed, empty.records, empty.beats) == ("", frozenset(), {}, {})


def test_a_node_indexes_the_records_written_before_its_index(store: Store) -> None:
    store.register_agent("old", {"node": "n1", "pid": "7"})
    store.register_agent("other", {"node": "n2", "pid": "8"})
    store.client.delete(store.keys.node_agents("n1"), store.keys.node_agents("n2"))
    assert store.index_node_agents("n1") == 1
    assert store.client.smembers(store.keys.node_agents("n1")) == {"old"}
