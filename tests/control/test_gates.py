"""Approval gates and `run_if` through `apply` on fakeredis (the plan and the Lua scripts
together): regression tests of the review of issue #15. Each runs a town's files, plays the
agents' part by hand (claim, complete) and checks the states a person would see."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.control.apply import ApplyOptions, ApplyResult, apply
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.control.test_apply import TOWN, CountingSession
from tests.redis_fixtures import fake_store, town_name  # noqa: F401

OPTS = ApplyOptions(start_agents=False)


@pytest.fixture
def town(tmp_path: Path, fake_store: Store) -> CountingSession:  # noqa: F811
    (tmp_path / "town.toml").write_text(TOWN)
    return CountingSession(TownPaths(tmp_path), fake_store)


def tasks(s: CountingSession, text: str) -> ApplyResult:
    s.paths.tasks_file.write_text(text)
    return apply(s, OPTS)


def run(store: Store, tid: str, result: str = "done") -> None:
    """What an agent does with `tid`: claim it out of its queue and complete it."""
    store.client.lrem(store.keys.queue("dev"), 0, tid)
    attempt = store.task_hash(tid).get("attempt", "0")
    assert store.claim(tid, "dev", f"tok-{tid}-{attempt}") is not None
    assert store.complete(tid, store.task_hash(tid)["token"], result)


def states(store: Store, *ids: str) -> dict[str, str | None]:
    return {t: store.task_hash(t).get("state") for t in ids}


GROUPED = """
[[tasks]]
id = "stage1"
description = "stage one"

[[tasks]]
id = "build"
description = "build"
agent = "dev"
parent = "stage1"

[[tasks]]
id = "cleanup"
description = "clean up after a failed build"
agent = "dev"
parent = "stage1"
depends_on = ["build"]
run_if = "failure"

[[tasks]]
id = "deploy"
description = "deploy"
agent = "dev"
depends_on = ["stage1"]
"""


def test_a_group_whose_failure_handler_was_skipped_completes(town: CountingSession) -> None:
    tasks(town, GROUPED)
    run(town.store, "build")
    assert states(town.store, "cleanup", "stage1", "deploy") == {
        "cleanup": "skipped",
        "stage1": "completed",
        "deploy": "ready",
    }
    assert apply(town, OPTS).plan.is_empty  # and the plan agrees


A_APPROVE = '[[tasks]]\nid = "a"\ndescription = "build"\nagent = "dev"\napprove = true\n'
B = '[[tasks]]\nid = "b"\ndescription = "deploy"\nagent = "dev"\nparent = "a"\n'


def test_a_task_awaiting_approval_is_restored_awaiting_not_re_run(town: CountingSession) -> None:
    store = town.store
    tasks(town, A_APPROVE + "\n" + B)
    run(store, "a", "my work")
    tasks(town, '[[tasks]]\nid = "c"\ndescription = "x"\nagent = "dev"\n')  # a, b pruned
    result = tasks(town, A_APPROVE + "\n" + B)
    (restored,) = [a for a in result.plan.actions if a.op == "restore_task" and a.id == "a"]
    assert restored.new_state.value == "awaiting_approval"
    assert states(store, "a", "b") == {"a": "awaiting_approval", "b": "blocked"}
    assert "a" not in store.client.lrange(store.keys.queue("dev"), 0, -1)
    assert store.task_hash("a")["result"] == "my work"
    assert apply(town, OPTS).plan.is_empty
