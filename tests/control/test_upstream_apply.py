"""Applies around upstream_failed on fakeredis: the plan states exactly what executing it yields,
so a town left as the Lua scripts leave it needs no repair."""

from __future__ import annotations

from pathlib import Path

from reconciler.control import verbs
from reconciler.control.apply import ApplyOptions, apply
from reconciler.plan.actions import CompleteTask
from reconciler.plan.state import TaskState
from reconciler.spec.desired import Policy
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.control.test_apply import TOWN, CountingSession
from tests.redis_fixtures import fake_store, town_name  # noqa: F401

CHAIN = """\
[[tasks]]
id = "a"
description = "first"
agent = "dev"
{status}
[[tasks]]
id = "b"
description = "second"
agent = "dev"
depends_on = ["a"]

[[tasks]]
id = "c"
description = "third"
agent = "dev"
depends_on = ["b"]
"""


def states(store: Store) -> dict[str, str]:
    return {t: store.client.hget(store.keys.task(t), "state") for t in "abc"}


def test_a_failed_task_marked_done_releases_its_chain_with_no_repair_planned(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
) -> None:
    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_text(CHAIN.format(status=""))
    session = CountingSession(TownPaths(tmp_path), fake_store)
    opts = ApplyOptions(start_agents=False)
    apply(session, opts)
    store = fake_store
    store.client.lpop(store.keys.queue("dev"))
    assert store.claim("a", "dev", "t1") is not None
    store.fail("a", "t1", "boom", True, Policy())
    assert states(store) == {"a": "failed", "b": "upstream_failed", "c": "upstream_failed"}

    (tmp_path / "tasks.toml").write_text(CHAIN.format(status='status = "done"'))
    plan = apply(session, ApplyOptions(start_agents=False, dry_run=True)).plan
    assert [(type(a), a.id) for a in plan.actions] == [(CompleteTask, "a")]  # no Requeue of c
    apply(session, opts)
    assert states(store) == {"a": "completed", "b": "ready", "c": "blocked"}
    assert apply(session, opts).plan.is_empty


def test_retry_of_a_task_the_file_cancels_sets_it_pending_there_and_its_chain_runs(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
) -> None:
    """DESIGN: `retry` of a task whose file status is cancelled or completed sets it back to
    pending; else the next apply cancels it again and `tt retry UPSTREAM` is undone."""
    (tmp_path / "town.toml").write_text(TOWN)
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(CHAIN.format(status='status = "cancelled"'))
    session = CountingSession(TownPaths(tmp_path), fake_store)
    opts = ApplyOptions(start_agents=False)
    apply(session, opts)
    assert states(fake_store) == {"a": "cancelled", "b": "upstream_failed", "c": "upstream_failed"}

    assert verbs.retry(session, "a") is TaskState.READY
    assert 'status = "pending"' in tasks.read_text()
    assert apply(session, opts).plan.is_empty  # the retry stands
    assert states(fake_store) == {"a": "ready", "b": "blocked", "c": "blocked"}


def test_retry_after_sync_pull_wrote_completed_sets_it_pending_and_it_runs_again(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
) -> None:
    (tmp_path / "town.toml").write_text(TOWN)
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(CHAIN.format(status=""))
    session = CountingSession(TownPaths(tmp_path), fake_store)
    opts = ApplyOptions(start_agents=False)
    apply(session, opts)
    fake_store.client.lpop(fake_store.keys.queue("dev"))
    assert fake_store.claim("a", "dev", "t1") is not None
    assert fake_store.complete("a", "t1", "done")
    verbs.sync_pull(session)
    assert 'status = "completed"' in tasks.read_text()

    assert verbs.retry(session, "a") is TaskState.READY
    assert 'status = "pending"' in tasks.read_text() and "completed" not in tasks.read_text()
    assert apply(session, opts).plan.is_empty  # the file agrees: the re-run is not undone
    assert states(fake_store)["a"] == "ready"
