"""control.apply into a town without tasks (fakeredis): the tasks are written batch by batch as
they are planned, and what is planned, refused and stored is what the whole plan would be."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.control import apply as controller
from reconciler.control import snapshot
from reconciler.control.apply import ApplyOptions, apply
from reconciler.control.execute import BATCH
from reconciler.control.session import Session
from reconciler.errors import TtError
from reconciler.plan.actions import Action, CreateTask, DeleteAgent
from reconciler.plan.diff import diff
from reconciler.spec import loader
from reconciler.store.client import Store
from reconciler.store.observed import read_observed
from reconciler.town import TownPaths
from tests.redis_fixtures import fake_store, town_name  # noqa: F401
from tests.towngen import tasks_toml, town_toml

OPTS = ApplyOptions(start_agents=False)
# Beside the generated graph: file directives, and tasks that wait for a cancelled one.
EXTRA = """
[[tasks]]
id = "gone"
description = "cancelled in the file"
agent = "dev"
status = "cancelled"

[[tasks]]
id = "after-gone"
description = "waits for a cancelled task"
agent = "dev"
depends_on = ["gone"]

[[tasks]]
id = "old"
description = "done before"
agent = "dev"
status = "completed"

[[tasks]]
id = "after-old"
description = "its dependency is done"
agent = "dev"
depends_on = ["old", "t-0-3"]
"""


def session_on(store: Store, root: Path, tasks: str, town: str = "") -> Session:
    (root / "town.toml").write_text(town or town_toml(store.town))
    (root / "tasks.toml").write_text(tasks)
    session = Session(TownPaths(root))
    session.__dict__["store"] = store
    return session


def test_a_new_town_gets_the_whole_plan_and_the_states_it_planned(
    fake_store: Store,  # noqa: F811
    tmp_path: Path,
) -> None:
    session = session_on(fake_store, tmp_path, tasks_toml(1200, backlog=5) + EXTRA)
    expected = diff(loader.load(session.paths), read_observed(fake_store), time.time())
    result = apply(session, OPTS)
    assert result.plan == expected
    assert result.generation == 1
    stored = read_observed(fake_store).tasks
    planned = {a.id: a for a in result.plan.actions if isinstance(a, CreateTask)}
    assert len(planned) == len(stored) == 1204
    assert {tid: t.state for tid, t in stored.items()} == {
        tid: a.state for tid, a in planned.items()
    }
    assert {stored["gone"].state.value, stored["after-gone"].state.value} == {
        "cancelled",
        "upstream_failed",
    }
    # Remembered as clean: the rows made batch by batch digest as Redis walks its tasks.
    fingerprint = fake_store.clean_fingerprint()
    assert fingerprint is not None and fake_store.check_clean(fingerprint, record=False)[0]
    assert apply(session, OPTS).plan.is_empty


def test_batches_are_written_while_the_rest_is_planned(
    fake_store: Store,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = session_on(fake_store, tmp_path, tasks_toml(3 * BATCH))
    stored_when_planned: list[int] = []
    plan_tasks = controller.task_actions

    def watched(*args: object, **kwargs: object) -> Iterator[Action]:
        for action in plan_tasks(*args, **kwargs):  # type: ignore[arg-type]
            stored_when_planned.append(fake_store.client.zcard(fake_store.keys.tasks))
            yield action

    monkeypatch.setattr(controller, "task_actions", watched)
    apply(session, OPTS)
    assert len(stored_when_planned) == 3 * BATCH
    assert stored_when_planned[0] == 0
    # While the third batch is planned, the first has been written (the second is in flight).
    assert stored_when_planned[2 * BATCH + 1] >= BATCH


def test_a_new_town_that_would_delete_every_agent_is_refused_before_any_write(
    fake_store: Store,  # noqa: F811
    tmp_path: Path,
) -> None:
    session = session_on(fake_store, tmp_path, "")
    apply(session, OPTS)  # the agent `dev`, no tasks
    bare = f'[town]\nname = "{fake_store.town}"\n'
    session = session_on(fake_store, tmp_path, tasks_toml(10, backlog=10), town=bare)
    with pytest.raises(TtError, match="refusing to apply"):
        apply(session, OPTS)
    assert fake_store.task_ids() == []
    result = apply(session, ApplyOptions(start_agents=False, allow_empty=True))
    assert result.plan.deletes_everything
    assert any(isinstance(a, DeleteAgent) for a in result.plan.actions)
    assert len(fake_store.task_ids()) == 10


def test_the_snapshot_is_made_while_redis_runs_the_last_batches(
    fake_store: Store,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its specs are marshalled once every batch is sent and before the last replies are read
    (Redis runs those batches meanwhile); `save` then finds them made, and the snapshot kept
    is the one an incremental apply starts from."""
    session = session_on(fake_store, tmp_path, tasks_toml(2 * BATCH))
    log: list[str] = []
    pool = fake_store.client.connection_pool
    real_get = pool.get_connection

    class Logged:
        def __init__(self, conn: Any) -> None:
            self.conn = conn

        def send_command(self, *args: Any, **options: Any) -> None:
            # (a batch: its place in the apply's chain of batches, `TOKEN:N`, after the fence)
            chain = str(args[8]) if len(args) > 8 else ""
            batch = args[0] == "EVALSHA" and re.fullmatch(r"[0-9a-f]{12}:\d+", chain)
            log.append("batch" if batch else str(args[0]))
            self.conn.send_command(*args, **options)

        def read_response(self) -> Any:
            log.append("read")
            return self.conn.read_response()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.conn, name)

    marshal_chunks = snapshot._chunked

    def chunked(name: str, values: tuple[Any, ...]) -> tuple[bytes, ...]:
        log.append(f"chunk {name}")
        return marshal_chunks(name, values)

    monkeypatch.setattr(pool, "get_connection", lambda *a: Logged(real_get(*a)))
    monkeypatch.setattr(snapshot, "_chunked", chunked)
    apply(session, OPTS)
    last_send = max(i for i, entry in enumerate(log) if entry == "batch")
    ahead = log.index("chunk specs")
    assert log.count("batch") == 2 and last_send < ahead
    assert log[ahead + 1 : ahead + 4] == ["read", "read", "HDEL"]
    kept = snapshot.load(session.paths, fake_store.clean_fingerprint() or "")
    assert kept is not None and len(kept.reuse.specs) == 2 * BATCH
