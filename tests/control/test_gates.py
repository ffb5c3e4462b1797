"""Approval gates and `run_if` through `apply` on fakeredis (the plan and the Lua scripts
together): regression tests of the review of issue #15. Each runs a town's files, plays the
agents' part by hand (claim, complete) and checks the states a person would see."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.control import gates, verbs
from reconciler.control.apply import ApplyOptions, ApplyResult, apply
from reconciler.errors import TtError
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


GATE = '[[tasks]]\nid = "go"\napprove = true\n'
KID = '[[tasks]]\nid = "k"\ndescription = "k"\nagent = "dev"\nparent = "go"\n'


def test_a_gate_edited_into_a_group_completes_with_its_members(town: CountingSession) -> None:
    store = town.store
    tasks(town, GATE + "\n" + KID)
    assert states(store, "go", "k") == {"go": "awaiting_approval", "k": "blocked"}
    tasks(town, '[[tasks]]\nid = "go"\n\n' + KID)  # no approve: a group of k
    assert states(store, "go", "k") == {"go": "blocked", "k": "ready"}
    assert "awaiting_since" not in store.task_hash("go")
    run(store, "k")
    assert states(store, "go")["go"] == "completed"
    assert apply(town, OPTS).plan.is_empty


def test_a_task_whose_approve_is_removed_while_awaiting_completes(town: CountingSession) -> None:
    store = town.store
    tasks(town, A_APPROVE + "\n" + B)
    run(store, "a", "my work")
    result = tasks(town, A_APPROVE.replace("approve = true\n", "") + "\n" + B)
    (update,) = [a for a in result.plan.actions if a.op == "update_task"]
    assert (update.state.value, update.new_state.value) == ("awaiting_approval", "completed")
    assert states(store, "a", "b") == {"a": "completed", "b": "ready"}
    assert store.task_hash("a")["result"] == "my work"  # its model's work is kept, not re-run
    assert apply(town, OPTS).plan.is_empty


def test_a_gate_given_an_agent_runs_before_it_can_be_approved(town: CountingSession) -> None:
    store = town.store
    tasks(town, GATE + "\n" + KID)
    tasks(town, GATE.replace("approve", 'description = "check"\nagent = "dev"\napprove') + KID)
    assert states(store, "go", "k") == {"go": "ready", "k": "blocked"}
    with pytest.raises(TtError, match="ready"):
        gates.approve(town, "go", by="ann")  # no approval without its work
    run(store, "go")
    assert states(store, "go")["go"] == "awaiting_approval"  # its work done: now a person's word


def test_an_awaiting_gate_is_blocked_again_when_its_upstream_reruns(town: CountingSession) -> None:
    store = town.store
    tasks(town, PIPE)
    run(store, "build")
    assert states(store, "gate")["gate"] == "awaiting_approval"
    verbs.retry(town, "build")
    assert states(store, "build", "gate", "deploy") == {
        "build": "ready",
        "gate": "blocked",
        "deploy": "blocked",
    }
    with pytest.raises(TtError, match="blocked"):
        gates.approve(town, "gate", by="ann")  # deploy must not run on the old build
    run(store, "build")
    assert states(store, "gate")["gate"] == "awaiting_approval"
    gates.approve(town, "gate", by="ann")
    assert states(store, "deploy")["deploy"] == "ready"


def test_apply_repairs_what_awaits_approval_though_it_should_not(town: CountingSession) -> None:
    """A town edited by a tt that did not recheck them: a group left awaiting, a gate awaiting
    though what it waits for is not completed."""
    store = town.store
    tasks(town, '[[tasks]]\nid = "go"\n\n' + KID + "\n" + PIPE)
    store.client.hset(store.keys.task("go"), "state", "awaiting_approval")  # a group
    store.client.hset(store.keys.task("gate"), "state", "awaiting_approval")  # build not done
    repairs = {a.id: a for a in apply(town, OPTS).plan.actions if a.op == "requeue"}
    assert {t: (a.new_state.value, a.reason) for t, a in repairs.items()} == {
        "go": ("blocked", "a group task does not await approval"),
        "gate": ("blocked", "a task this gate waits for is not completed"),
    }
    assert states(store, "go", "gate") == {"go": "blocked", "gate": "blocked"}
    assert apply(town, OPTS).plan.is_empty


PIPE = """
[[tasks]]
id = "build"
description = "build"
agent = "dev"

[[tasks]]
id = "gate"
approve = true
parent = "build"

[[tasks]]
id = "deploy"
description = "deploy"
agent = "dev"
parent = "gate"
"""


SEQUENTIAL = """
[[tasks]]
id = "release"
description = "release, step by step"
sequential = true

[[tasks]]
id = "build"
description = "build"
agent = "dev"
parent = "release"

[[tasks]]
id = "cleanup"
description = "clean up after a failed build"
agent = "dev"
parent = "release"
run_if = "failure"

[[tasks]]
id = "publish"
description = "publish"
agent = "dev"
parent = "release"

[[tasks]]
id = "announce"
description = "announce"
agent = "dev"
depends_on = ["cleanup"]
"""


def test_a_sequential_group_runs_on_past_a_skipped_failure_handler(
    town: CountingSession,
) -> None:
    store = town.store
    tasks(town, SEQUENTIAL)
    run(store, "build")
    # publish only runs after cleanup; announce needs it (depends_on): GitHub Actions' rule
    assert states(store, "cleanup", "publish", "announce", "release") == {
        "cleanup": "skipped",
        "publish": "ready",
        "announce": "skipped",
        "release": "blocked",
    }
    run(store, "publish")
    assert states(store, "release")["release"] == "completed"
    assert apply(town, OPTS).plan.is_empty


CLEANUP = """
[[tasks]]
id = "build"
description = "build"
agent = "dev"

[[tasks]]
id = "cleanup"
description = "clean up after a failed build"
agent = "dev"
depends_on = ["build"]
run_if = "failure"

[[tasks]]
id = "report"
description = "report the cleanup"
agent = "dev"
depends_on = ["cleanup"]
"""


def test_cancelling_a_skipped_task_leaves_it_and_what_waits_for_it_skipped(
    town: CountingSession,
) -> None:
    from reconciler.control.outcome import settled

    store = town.store
    tasks(town, CLEANUP)
    run(store, "build")
    assert states(store, "cleanup", "report") == {"cleanup": "skipped", "report": "skipped"}
    verbs.cancel(town, "cleanup", OPTS)
    assert 'status = "cancelled"' in town.paths.tasks_file.read_text()  # the file says so
    assert states(store, "cleanup", "report") == {"cleanup": "skipped", "report": "skipped"}
    assert settled(store.task_records())[0] == 0  # nothing failed: tt wait exits 0
    assert apply(town, OPTS).plan.is_empty


def test_retrying_a_skipped_task_names_what_to_retry(town: CountingSession) -> None:
    tasks(town, CLEANUP)
    run(town.store, "build")
    with pytest.raises(TtError, match="is skipped: its run_if \\(failure\\)") as caught:
        verbs.retry(town, "cleanup")
    assert caught.value.hint == "tt retry build"


def test_claiming_a_gate_from_the_backlog_says_it_is_a_gate(town: CountingSession) -> None:
    from reconciler.control import backlog

    tasks(town, GATE + "\n" + KID)
    with pytest.raises(TtError, match="not in the backlog: an approval gate"):
        backlog.claim(town, "go", "dev", OPTS)
