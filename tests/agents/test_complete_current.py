"""`tt task complete ID`: a late result of an older attempt is rejected and leaves the same
`task.stale` event as a stale exit does; the current attempt's token completes the task."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.agents.completion import complete_current
from reconciler.control.apply import ApplyOptions, apply
from reconciler.errors import TtError
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.control.test_apply import TOWN, CountingSession
from tests.redis_fixtures import fake_store, town_name  # noqa: F401

TASKS = '[[tasks]]\nid = "a"\ndescription = "first"\nagent = "dev"\n'


def stale_events(store: Store) -> list[dict[str, str]]:
    return [f for _, f in store.events_since() if f.get("type") == "task.stale"]


def test_a_late_result_is_rejected_with_the_stale_event_of_a_stale_exit(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
) -> None:
    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_text(TASKS)
    apply(CountingSession(TownPaths(tmp_path), fake_store), ApplyOptions(start_agents=False))
    fake_store.client.lpop(fake_store.keys.queue("dev"))
    assert fake_store.claim("a", "dev", "current") is not None

    with pytest.raises(TtError, match="does not match the current attempt"):
        complete_current(fake_store, "a", "too late", "older")
    assert [(e["task"], e["outcome"], e["token"]) for e in stale_events(fake_store)] == [
        ("a", "completed", "older")
    ]
    assert fake_store.client.hget(fake_store.keys.task("a"), "state") == "running"

    assert complete_current(fake_store, "a", "done", "current")
    with pytest.raises(TtError, match="does not match the current attempt"):
        complete_current(fake_store, "a", "again", "current")  # the task is no longer running
    assert len(stale_events(fake_store)) == 2
    assert fake_store.client.hget(fake_store.keys.task("a"), "result") == "done"


def test_every_replica_listens_on_the_pool_queue_and_the_others_on_their_own() -> None:
    from reconciler.agents.targets import queue_targets
    from reconciler.spec.desired import AgentSpec

    pool = AgentSpec("worker", "claude", role="dev", replicas=3)
    assert pool.instances() == ("worker", "worker-2", "worker-3")
    assert queue_targets(pool, "worker") == ["worker", "%dev", "*backlog"]
    assert queue_targets(pool, "worker-3") == ["worker-3", "worker", "%dev", "*backlog"]
    assert queue_targets(AgentSpec("solo", "sim"), "solo") == ["solo", "*backlog"]
