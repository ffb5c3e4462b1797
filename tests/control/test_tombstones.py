"""Tombstones on fakeredis: a task pruned from the files keeps its record; the same id back is
restored as it was (not re-run), a changed one follows the changed-after-done rules; a task of the
CLI waiting for a pruned one is upstream_failed naming it, not blocked forever; tombstones expire
after keep_deleted; and none of it disturbs the no-op fast path."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from reconciler.control import snapshot, verbs
from reconciler.control.apply import ApplyOptions, apply
from reconciler.control.report import deleted_report, status_report
from reconciler.errors import NotFound, TtError
from reconciler.plan.diff import (
    ChangedAfterDone,
    CreateTask,
    DeleteTask,
    RerunTask,
    RestoreTask,
    render_lines,
)
from reconciler.plan.state import TaskState
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.control.test_apply import TOWN, CountingSession
from tests.redis_fixtures import fake_store, town_name  # noqa: F401

A = '[[tasks]]\nid = "a"\ndescription = "{text}"\nagent = "dev"\n'
B = '[[tasks]]\nid = "b"\ndescription = "second"\nagent = "dev"\n'
OPTS = ApplyOptions(start_agents=False)


@pytest.fixture
def town(tmp_path: Path, fake_store: Store) -> CountingSession:  # noqa: F811
    (tmp_path / "town.toml").write_text(TOWN)
    return CountingSession(TownPaths(tmp_path), fake_store)


def write(s: CountingSession, *tables: str) -> None:
    s.paths.tasks_file.write_text("\n".join(tables))


def run(store: Store, tid: str, result: str = "done well") -> None:
    """An agent claims `tid` from its queue and completes it."""
    store.client.lrem(store.keys.queue("dev"), 0, tid)
    assert store.claim(tid, "dev", f"tok-{tid}") is not None
    assert store.complete(tid, f"tok-{tid}", result)


def ops(plan_actions: object) -> list[tuple[str, str]]:
    return [(a.op, getattr(a, "id", "")) for a in plan_actions]  # type: ignore[attr-defined]


def test_a_completed_task_deleted_and_added_back_is_restored_not_rerun(
    town: CountingSession,
) -> None:
    store = town.store
    write(town, A.format(text="first"), B)
    apply(town, OPTS)
    run(store, "a")
    history = store.attempt_history("a")

    write(town, B)
    result = apply(town, OPTS)
    [delete] = [a for a in result.plan.actions if isinstance(a, DeleteTask)]
    assert delete.id == "a" and delete.keep_until == pytest.approx(time.time() + 7 * 86400, abs=60)
    assert "kept as tombstone until" in render_lines(result.plan)[0]
    # Not a task any more: in no list, count or queue; its record is kept aside.
    assert store.task_ids() == ["b"]
    assert [t["id"] for t in status_report(store, None)["tasks"]] == ["b"]
    [row] = deleted_report(store, town.paths.logs_dir, 7 * 86400)
    assert (row["id"], row["state"], row["attempts"], row["result"]) == (
        "a",
        "completed",
        1,
        "done well",
    )
    assert row["keep_until"] == pytest.approx(row["deleted_at"] + 7 * 86400)

    write(town, A.format(text="first"), B)
    result = apply(town, OPTS)
    assert ops(result.plan.actions) == [("restore_task", "a")]
    assert render_lines(result.plan) == [
        "+ task a (restored from its tombstone: completed; not re-run)"
    ]
    rec = store.task_hash("a")
    assert (rec["state"], rec["result"], rec["attempt"]) == ("completed", "done well", "1")
    assert store.attempt_history("a") == history
    assert store.client.lrange(store.keys.queue("dev"), 0, -1) == ["b"]
    assert store.task_ids() == ["a", "b"]
    assert deleted_report(store, town.paths.logs_dir, 7 * 86400) == []
    assert store.client.exists(store.keys.tombstone("a")) == 0
    # Idempotent, and the no-op fast path holds again: the same files are not even planned.
    assert apply(town, OPTS).plan.is_empty
    loads = town.loads
    assert apply(town, OPTS).plan.is_empty
    assert town.loads == loads


def test_a_pruned_town_keeps_the_no_op_fast_path(town: CountingSession) -> None:
    write(town, A.format(text="first"), B)
    apply(town, OPTS)
    write(town, B)
    apply(town, OPTS)  # a pruned: a tombstone now
    assert apply(town, OPTS).plan.is_empty
    loads = town.loads
    assert apply(town, OPTS).plan.is_empty
    assert town.loads == loads  # answered by the clean check: the tombstone is not walked


def test_a_restored_task_with_a_changed_spec_follows_the_changed_after_done_rules(
    town: CountingSession,
) -> None:
    store = town.store
    write(town, A.format(text="first"), B)
    apply(town, OPTS)
    run(store, "a")
    write(town, B)
    apply(town, OPTS)

    write(town, A.format(text="first, reworded"), B)
    plan = apply(town, OPTS).plan
    assert [type(a) for a in plan.actions] == [RestoreTask, ChangedAfterDone]
    assert store.task_hash("a")["state"] == "completed"
    # Still told on the next apply (the stored spec is the one that ran), never re-run silently.
    again = apply(town, OPTS).plan
    assert [type(a) for a in again.actions] == [ChangedAfterDone]
    assert store.task_hash("a")["state"] == "completed"

    rerun = apply(town, ApplyOptions(start_agents=False, rerun_changed=True)).plan
    assert [type(a) for a in rerun.actions] == [RerunTask]
    assert store.task_hash("a")["state"] == "ready"


def test_restore_with_rerun_changed_in_the_same_apply(town: CountingSession) -> None:
    store = town.store
    write(town, A.format(text="first"), B)
    apply(town, OPTS)
    run(store, "a")
    write(town, B)
    apply(town, OPTS)
    write(town, A.format(text="changed"), B)
    plan = apply(town, ApplyOptions(start_agents=False, rerun_changed=True)).plan
    assert [type(a) for a in plan.actions] == [RestoreTask, RerunTask]
    assert store.task_hash("a")["state"] == "ready"
    assert store.client.lrange(store.keys.queue("dev"), 0, -1) == ["b", "a"]
    assert apply(town, OPTS).plan.is_empty


def test_a_running_task_pruned_is_handed_back_and_restored_ready(town: CountingSession) -> None:
    store = town.store
    write(town, A.format(text="first"), B)
    apply(town, OPTS)
    store.client.lrem(store.keys.queue("dev"), 0, "a")
    assert store.claim("a", "dev", "tok") is not None
    write(town, B)
    apply(town, OPTS)
    assert not store.complete("a", "tok", "late")  # its attempt was stopped: rejected
    [row] = deleted_report(store, town.paths.logs_dir, 7 * 86400)
    assert row["state"] == "ready"
    write(town, A.format(text="first"), B)
    plan = apply(town, OPTS).plan
    assert [(type(a), a.state, a.new_state) for a in plan.actions] == [  # type: ignore[union-attr]
        (RestoreTask, TaskState.READY, TaskState.READY)
    ]
    rec = store.task_hash("a")
    assert rec["state"] == "ready" and rec["token"] == ""
    history = store.attempt_history("a")
    assert [(h["outcome"], h.get("reason")) for h in history] == [("handed back", "pruned")]
    assert "a" in store.client.lrange(store.keys.queue("dev"), 0, -1)
    # The handed-back attempt does not count against its retries: a fresh budget remains.
    assert rec["run_base"] == "1"
    assert apply(town, OPTS).plan.is_empty


def test_a_cli_task_waiting_for_a_pruned_task_is_upstream_failed_then_released(
    town: CountingSession,
) -> None:
    store = town.store
    write(town, A.format(text="first"), B)
    apply(town, OPTS)
    tid, _ = verbs.assign(town, "dev", "after a", task_id="later", after="a", save=False, opts=OPTS)
    assert store.task_hash(tid)["state"] == "blocked"

    write(town, B)
    apply(town, OPTS)
    rec = store.task_hash("later")
    assert (rec["state"], rec["upstream"]) == ("upstream_failed", "a")  # not blocked forever
    events = [f for _, f in store.events_since("0", block_ms=None)]
    assert any(e["type"] == "task.upstream_failed" and e["upstream"] == "a" for e in events)
    assert apply(town, OPTS).plan.is_empty  # the plan model agrees: nothing to repair

    write(town, A.format(text="first"), B)
    apply(town, OPTS)  # a is back (ready): later waits for it again
    assert store.task_hash("later")["state"] == "blocked"
    run(store, "a")
    assert store.task_hash("later")["state"] == "ready"
    assert apply(town, OPTS).plan.is_empty


def test_a_task_added_back_after_its_tombstone_expired_is_created_and_releases_cli_waiters(
    town: CountingSession,
) -> None:
    store = town.store
    write(town, A.format(text="first"), B)
    apply(town, OPTS)
    verbs.assign(town, "dev", "after a", task_id="later", after="a", save=False, opts=OPTS)
    write(town, B)
    apply(town, OPTS)
    # Pruned long ago: the next apply's purge drops it (keep_deleted, 7 days).
    store.client.zadd(store.keys.deleted, {"a": time.time() - 8 * 86400})
    apply(town, OPTS)
    assert store.client.exists(store.keys.tombstone("a")) == 0
    assert store.client.zcard(store.keys.deleted) == 0

    write(town, A.format(text="first"), B)
    plan = apply(town, OPTS).plan
    assert ops(plan.actions)[0] == ("create_task", "a")
    assert isinstance(plan.actions[0], CreateTask)
    assert store.task_hash("later")["state"] == "blocked"  # waits for the new a, as before
    assert apply(town, OPTS).plan.is_empty


def test_keep_deleted_is_read_from_the_town(town: CountingSession) -> None:
    town.paths.town_file.write_text(
        TOWN.replace('name = "unit"', 'name = "unit"\nkeep_deleted = "1h"')
    )
    write(town, A.format(text="first"), B)
    apply(town, OPTS)
    write(town, B)
    [delete] = [a for a in apply(town, OPTS).plan.actions if isinstance(a, DeleteTask)]
    assert delete.keep_until == pytest.approx(time.time() + 3600, abs=60)
    store = town.store
    store.client.zadd(store.keys.deleted, {"a": time.time() - 3700})
    apply(town, OPTS)  # older than an hour: purged
    assert store.client.exists(store.keys.tombstone("a")) == 0


def test_plan_json_names_the_restore_and_the_tombstone(town: CountingSession) -> None:
    write(town, A.format(text="first"), B)
    apply(town, OPTS)
    write(town, B)
    deleted = apply(town, OPTS).plan.as_json()
    [d] = deleted["actions"]
    assert d["op"] == "delete_task" and d["keep_until"] > time.time()
    write(town, A.format(text="first"), B)
    restored = apply(town, OPTS).plan.as_json()
    assert (
        restored["summary"] == "1 to create, 0 to change, 0 to delete; 1 restored from tombstones"
    )
    assert [a["op"] for a in restored["actions"]] == ["restore_task"]
    assert json.dumps(restored)  # plain JSON


def test_retry_names_a_deleted_task_and_the_deleted_upstream(town: CountingSession) -> None:
    write(town, A.format(text="first"), B)
    apply(town, OPTS)
    verbs.assign(town, "dev", "after a", task_id="later", after="a", save=False, opts=OPTS)
    write(town, B)
    apply(town, OPTS)
    with pytest.raises(TtError, match="'a', which was deleted from the files") as waits:
        verbs.retry(town, "later")
    assert "put 'a' back in tasks.toml" in str(waits.value.hint)
    with pytest.raises(NotFound, match="'a' was deleted from the files") as gone:
        verbs.retry(town, "a")
    assert "restored as it was" in str(gone.value.hint)


def test_a_deleted_id_taken_by_a_no_save_task_is_not_listed_as_deleted(
    town: CountingSession,
) -> None:
    write(town, A.format(text="first"), B)
    apply(town, OPTS)
    write(town, B)
    apply(town, OPTS)
    assert [r["id"] for r in deleted_report(town.store, town.paths.logs_dir, 60.0)] == ["a"]
    verbs.assign(town, "dev", "again", task_id="a", after=None, save=False, opts=OPTS)
    assert deleted_report(town.store, town.paths.logs_dir, 60.0) == []


def test_a_town_emptied_and_filled_again_restores_its_tasks_not_recreates_them(
    town: CountingSession,
) -> None:
    """The first apply of a town without tasks is written as it is planned (`_new_tasks`): a
    town emptied (every task pruned) and filled again takes that path, and must still find the
    tombstones."""
    store = town.store
    write(town, A.format(text="first"), B)
    apply(town, OPTS)
    run(store, "a")
    history = store.attempt_history("a")
    write(town)
    emptied = apply(town, ApplyOptions(start_agents=False, allow_empty=True))
    assert sorted(ops(emptied.plan.actions)) == [("delete_task", "a"), ("delete_task", "b")]
    assert store.task_ids() == []

    # Filled again from a checkout that keeps no snapshot of the last apply (another machine,
    # a fresh clone): no incremental plan, a town without tasks, the streaming path.
    snapshot.path(town.paths).unlink(missing_ok=True)
    write(town, A.format(text="first"), B)
    result = apply(town, OPTS)
    assert ops(result.plan.actions) == [("restore_task", "a"), ("restore_task", "b")]
    rec = store.task_hash("a")
    assert (rec["state"], rec["result"], rec["attempt"]) == ("completed", "done well", "1")
    assert store.attempt_history("a") == history
    assert store.task_hash("b")["state"] == "ready"
    assert store.client.lrange(store.keys.queue("dev"), 0, -1) == ["b"]
    assert deleted_report(store, town.paths.logs_dir, 7 * 86400) == []
    assert apply(town, OPTS).plan.is_empty  # what was remembered is what Redis holds
