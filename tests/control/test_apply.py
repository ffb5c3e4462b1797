"""control.apply on fakeredis: the no-op fast path gives the same answer as planning, a repair
is never skipped, and the apply lock of a dead process does not block the next apply."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from reconciler.control import fingerprint as fingerprint_mod
from reconciler.control.apply import ApplyOptions, apply
from reconciler.control.execute import task_record
from reconciler.control.session import Session
from reconciler.errors import TtError, ValidationFailed
from reconciler.plan.diff import CreateAgent, CreateTask, Requeue, UpdateTask
from reconciler.plan.graph import TaskKind
from reconciler.plan.state import Source
from reconciler.spec.desired import TaskSpec
from reconciler.spec.loader import Reuse, Validation
from reconciler.store.client import Store
from reconciler.store.observed import read_observed
from reconciler.town import TownPaths
from tests.redis_fixtures import fake_store, town_name  # noqa: F401

TOWN = '[town]\nname = "unit"\n\n[agents.dev]\nmodel = "sim"\nsuspended = true\n'
TASKS = """\
[[tasks]]
id = "a"
description = "first"
agent = "dev"

[[tasks]]
id = "b"
description = "second"
agent = "dev"
depends_on = ["a"]

[[tasks]]
id = "loose"
description = "anyone"
"""
OPTS = ApplyOptions(start_agents=False)


class CountingSession(Session):
    """A session on a given store that counts how often the files were loaded and planned."""

    def __init__(self, paths: TownPaths, store: Store) -> None:
        super().__init__(paths)
        self.__dict__["store"] = store
        self.loads = 0

    def validate(self, reuse: Reuse | None = None) -> Validation:
        self.loads += 1
        return super().validate(reuse)


@pytest.fixture
def session(tmp_path: Path, fake_store: Store) -> CountingSession:  # noqa: F811
    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_text(TASKS)
    return CountingSession(TownPaths(tmp_path), fake_store)


def test_task_record_hash_is_the_specs_own_hash() -> None:
    spec = TaskSpec(id="x", description="d é", depends_on=("a", "b"), tags=("T",), retries=2)
    record = task_record(
        spec, kind=TaskKind.WORK, target="dev", deps=("a",), order=1.0, source=Source.FILE
    )
    assert record["hash"] == spec.spec_hash()


def test_an_unchanged_town_is_answered_without_planning(session: CountingSession) -> None:
    first = apply(session, OPTS)
    assert first.applied and not first.plan.is_empty
    loads = session.loads
    again = apply(session, OPTS)
    assert again.plan.is_empty and again.applied and again.generation == first.generation
    assert session.loads == loads  # tasks.toml was not even parsed
    dry = apply(session, ApplyOptions(dry_run=True, start_agents=False))
    assert dry.plan.is_empty and not dry.applied


def test_a_task_without_a_description_is_refused_and_nothing_is_written(
    session: CountingSession,
) -> None:
    tasks = session.paths.tasks_file
    tasks.write_text(tasks.read_text().replace('description = "second"\n', ""))
    with pytest.raises(ValidationFailed) as caught:
        apply(session, OPTS)
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.path) == ("tasks.toml", 7, "$.tasks[1].description")
    assert problem.message == "task 'b' has no description"
    assert session.store.client.keys("*") == []


def test_a_changed_file_is_planned(session: CountingSession) -> None:
    apply(session, OPTS)
    tasks = session.paths.tasks_file
    tasks.write_text(tasks.read_text().replace('"second"', '"second, edited"'))
    result = apply(session, OPTS)
    [update] = result.plan.actions
    assert isinstance(update, UpdateTask) and update.changed_fields == ("description",)
    assert apply(session, OPTS).plan.is_empty


def test_a_ready_task_out_of_its_queue_is_requeued_even_with_unchanged_files(
    session: CountingSession,
) -> None:
    apply(session, OPTS)
    store = session.store
    store.client.lrem(store.keys.queue("dev"), 0, "a")  # popped by an agent that then died
    result = apply(session, OPTS)
    assert [type(a) for a in result.plan.actions] == [Requeue]
    assert store.client.lrange(store.keys.queue("dev"), 0, -1) == ["a"]
    assert apply(session, OPTS).plan.is_empty


def test_a_task_blocked_behind_a_failed_one_is_repaired_even_with_unchanged_files(
    session: CountingSession,
) -> None:
    apply(session, OPTS)
    store = session.store
    # A town written before upstream_failed existed: `a` failed, `b` was left blocked.
    store.client.lrem(store.keys.queue("dev"), 0, "a")
    store.client.hset(store.keys.task("a"), "state", "failed")
    result = apply(session, OPTS)
    assert [(type(a), a.id) for a in result.plan.actions] == [(Requeue, "b")]
    b = store.client.hgetall(store.keys.task("b"))
    assert (b["state"], b["upstream"]) == ("upstream_failed", "a")
    assert apply(session, OPTS).plan.is_empty
    # ...and the other way: nothing upstream failed any more.
    store.client.hset(store.keys.task("a"), "state", "running")
    assert [type(a) for a in apply(session, OPTS).plan.actions] == [Requeue]
    assert store.client.hget(store.keys.task("b"), "state") == "blocked"
    assert apply(session, OPTS).plan.is_empty


def test_a_lost_task_or_agent_record_is_recreated(session: CountingSession) -> None:
    apply(session, OPTS)
    store = session.store
    store.client.delete(store.keys.task("loose"))
    store.client.zrem(store.keys.tasks, "loose")
    store.client.lrem(store.keys.queue("*backlog"), 0, "loose")
    assert [a.id for a in apply(session, OPTS).plan.actions if isinstance(a, CreateTask)] == [
        "loose"
    ]
    store.forget_agent("dev")
    assert [type(a) for a in apply(session, OPTS).plan.actions] == [CreateAgent]
    assert apply(session, OPTS).plan.is_empty


def test_task_writers_outside_apply_make_the_next_apply_plan(session: CountingSession) -> None:
    apply(session, OPTS)
    store = session.store
    spec = TaskSpec(id="hotfix", description="now", agent="dev")
    store.upsert_tasks(
        [task_record(spec, kind=TaskKind.WORK, target="dev", deps=(), order=9, source=Source.CLI)],
        0,
    )
    loads = session.loads
    assert apply(session, OPTS).plan.is_empty  # a cli task is not the files' business...
    assert session.loads == loads + 1  # ...but it was looked at, not assumed
    assert "hotfix" in read_observed(store).tasks


def test_a_plan_with_notes_is_not_remembered_as_clean(session: CountingSession) -> None:
    apply(session, OPTS)
    tasks = session.paths.tasks_file
    tasks.write_text(tasks.read_text().split('[[tasks]]\nid = "loose"')[0])
    kept = apply(session, ApplyOptions(prune=False, start_agents=False))
    assert [a.op for a in kept.plan.actions] == ["orphan_task"]
    # Asked again, prune on: the orphan is deleted, not skipped as "up to date".
    pruned = apply(session, OPTS)
    assert [a.op for a in pruned.plan.actions] == ["delete_task"]


def test_an_edited_ready_task_keeps_its_place_in_its_queue(session: CountingSession) -> None:
    tasks = session.paths.tasks_file
    tasks.write_text(
        tasks.read_text() + '\n[[tasks]]\nid = "c"\ndescription = "third"\nagent = "dev"\n'
    )
    apply(session, OPTS)
    store = session.store
    queue = store.keys.queue("dev")
    assert store.client.lrange(queue, 0, -1) == ["a", "c"]
    tasks.write_text(tasks.read_text().replace('"first"', '"first, edited"'))
    apply(session, OPTS)
    assert store.client.lrange(queue, 0, -1) == ["a", "c"]
    tasks.write_text(tasks.read_text().replace('"third"\n', '"third"\npriority = 1\n'))
    apply(session, OPTS)
    assert store.client.lrange(queue, 0, -1) == ["c", "a"]  # a priority jumps the line
    assert apply(session, OPTS).plan.is_empty


def holder(pid: int) -> dict[str, object]:
    return {"token": "t", "host": socket.gethostname(), "pid": pid, "command": "tt apply"}


def test_the_lock_of_a_dead_apply_is_taken_over(session: CountingSession) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    store = session.store
    assert store.try_lock(holder(dead.pid), 60) is None
    assert apply(session, OPTS).applied
    assert store.client.get(store.keys.apply_lock) is None
    events = [f for _, f in store.client.xrange(store.keys.events)]
    assert any(e["type"] == "apply.lock_recovered" for e in events)


def test_the_lock_of_a_live_apply_is_respected(session: CountingSession) -> None:
    store = session.store
    assert store.try_lock(holder(os.getpid()), 60) is None
    with pytest.raises(TtError, match=rf"holds the town's lock: tt apply \(pid {os.getpid()} "):
        apply(session, OPTS)
    current = json.loads(store.client.get(store.keys.apply_lock))
    assert current["token"] == "t"  # untouched
    assert store.client.zcard(store.keys.tasks) == 0


def test_a_lock_of_another_host_is_never_taken_over(session: CountingSession) -> None:
    store = session.store
    assert store.try_lock({**holder(999_999_999), "host": "elsewhere"}, 60) is None
    with pytest.raises(TtError, match="on elsewhere"):
        apply(session, OPTS)


def test_clean_fingerprint_matches_the_loaders_digests(session: CountingSession) -> None:
    desired = session.desired()
    fingerprint, town_text = fingerprint_mod.file_fingerprint(session.paths)
    assert fingerprint == fingerprint_mod.clean_fingerprint(dict(desired.digests))
    assert town_text == TOWN
    session.paths.tasks_file.unlink()
    fingerprint, _ = fingerprint_mod.file_fingerprint(session.paths)
    assert fingerprint == fingerprint_mod.clean_fingerprint(dict(session.desired().digests))


def test_an_emptied_roster_may_be_allowed_alone_an_emptied_tasks_file_never(
    session: CountingSession,
) -> None:
    apply(session, OPTS)
    roster_only = ApplyOptions(start_agents=False, allow_empty_roster=True)
    (session.paths.tasks_file).write_text("")
    with pytest.raises(TtError, match="refusing to apply"):
        apply(session, roster_only)  # `tt kill` of the last agent with a truncated tasks.toml
    assert {r["id"] for r in session.store.task_records()} == {"a", "b", "loose"}
    (session.paths.tasks_file).write_text(TASKS.replace('agent = "dev"\n', ""))
    (session.paths.town_file).write_text('[town]\nname = "unit"\n')
    with pytest.raises(TtError, match="refusing to apply"):
        apply(session, OPTS)
    done = apply(session, roster_only)
    assert done.plan.counts() == {"delete_agent": 1, "update_task": 2}
