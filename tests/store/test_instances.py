"""The one live process of an agent (review finding 1): a heartbeat renews the lease only while
the record names the process (its instance token and a pid), so a process cut off past its lease
whose death was recorded, or whose agent was started again, learns it is superseded and never
takes the lease back; its turn claims nothing and puts back a task it popped. Fakeredis."""

from __future__ import annotations

from reconciler.store.client import Store
from tests.redis_fixtures import fake_store, town_name  # noqa: F401
from tests.store.test_transitions import rec
from tests.store.test_turn import POLICY


def registered(s: Store, instance: str, pid: str = "100") -> None:
    """What a worker does at its start: take the lease, then name itself in the record."""
    assert s.take_instance("w", instance, 10)
    s.register_agent("w", {"pid": pid, "instance": instance, "spawn": "s1", "state": "idle"})


def test_a_heartbeat_renews_only_the_agents_own_instance(fake_store: Store) -> None:  # noqa: F811
    s = fake_store
    registered(s, "old")
    assert s.heartbeat("w", "old", 10)
    assert s.client.get(s.keys.heartbeat("w")) == "old"
    # Cut off past its lease: the lease lapses and the leader records its death (pid cleared).
    s.client.delete(s.keys.heartbeat("w"))
    seen = s.agent_records()["w"]
    assert s.record_death("w", seen, {"pid": "", "state": "backoff"})
    assert not s.heartbeat("w", "old", 10)  # back: superseded, the lease not taken back
    assert s.client.get(s.keys.heartbeat("w")) is None
    # A start claims the agent (the instance cleared) and the new process registers.
    assert s.claim_start("w", s.agent_records()["w"], {"spawn": "s2", "instance": ""})
    assert not s.heartbeat("w", "old", 10)
    registered(s, "new", pid="200")
    assert not s.heartbeat("w", "old", 10)
    assert s.heartbeat("w", "new", 10) and s.client.get(s.keys.heartbeat("w")) == "new"
    assert s.heartbeat("w", "new", 0) and not s.heartbeat("w", "old", 0)  # a check alone


def test_a_superseded_process_claims_nothing_and_puts_back_what_it_popped(
    fake_store: Store,  # noqa: F811
) -> None:
    s = fake_store
    registered(s, "old")
    s.upsert_tasks([rec("t", target="w"), rec("u", target="w")], 1)
    popped = s.client.lpop(s.keys.queue("w"))  # the old process's blocking pop took it
    assert popped == "t"
    registered_new = {"pid": "200", "instance": "new", "state": "idle"}
    s.client.delete(s.keys.heartbeat("w"))
    s.register_agent("w", registered_new)  # the agent runs anew elsewhere
    got = s.turn("w", None, "tok", ["w"], POLICY, popped, instance="old")
    assert got.superseded and got.claimed is None
    assert s.client.lrange(s.keys.queue("w"), 0, -1) == ["t", "u"]  # back at the front
    assert s.task_hash("t")["state"] == "ready"
    assert s.agent_records()["w"]["state"] == "idle"  # nothing of the agent's written
    # The process that owns the record claims as before.
    mine = s.turn("w", None, "tok2", ["w"], POLICY, "", instance="new")
    assert not mine.superseded and mine.claimed is not None and mine.claimed.task_id == "t"
