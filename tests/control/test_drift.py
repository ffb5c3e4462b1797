"""Drift on fakeredis: what `tt retry` and `tt assign --no-save` leave is read as drift until the
files speak for the task again; `self_heal = false` keeps an apply and the fleet from undoing
drift (a hand cancel, a hand stop) while the default heals it; the loop's `town.drift` event."""

from __future__ import annotations

import functools
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.control import fleet, verbs
from reconciler.control.apply import ApplyOptions, apply
from reconciler.control.drift import DriftWatch, drift_count, read_drift
from reconciler.control.session import Session
from reconciler.plan.drift import DriftKind
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.control.test_fleet import Spawner
from tests.redis_fixtures import fake_store, town_name  # noqa: F401

TASKS = '[[tasks]]\nid = "a"\ndescription = "first"\nagent = "dev"\n'
OPTS = ApplyOptions(start_agents=False)


def town_toml(self_heal: bool | None, suspended: bool = True) -> str:
    heal = "" if self_heal is None else f"self_heal = {str(self_heal).lower()}\n"
    parked = "suspended = true\n" if suspended else ""
    return f'[town]\nname = "unit"\n{heal}\n[agents.dev]\nmodel = "sim"\n{parked}'


def session_on(root: Path, store: Store, self_heal: bool | None, tasks: str = TASKS) -> Session:
    (root / "town.toml").write_text(town_toml(self_heal))
    (root / "tasks.toml").write_text(tasks)
    s = Session(TownPaths(root))
    s.__dict__["store"] = store
    return s


def found(s: Session) -> list[tuple[DriftKind, str]]:
    return [(i.kind, i.object) for i in read_drift(s.store, s.desired()).items]


def fail(store: Store, tid: str, s: Session) -> None:
    assert store.claim(tid, "dev", "tok") is not None
    store.fail(tid, "tok", "boom", True, s.desired().town.policy)


def test_a_hand_retry_and_a_no_save_task_are_drift_until_the_files_speak(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
) -> None:
    s = session_on(tmp_path, fake_store, None)
    apply(s, OPTS)
    assert found(s) == []
    fail(fake_store, "a", s)
    assert found(s) == []  # a failure is what the files' run gave: not drift
    assert verbs.retry(s, "a").value == "ready"
    verbs.assign(s, "dev", "by hand", task_id="extra", after=None, save=False, opts=OPTS)
    assert found(s) == [(DriftKind.CLI_TASK, "task extra"), (DriftKind.RETRIED, "task a")]
    assert (tmp_path / "tasks.toml").read_text() == TASKS  # neither touched the file
    # The file changes the task: it speaks for it again (the marker goes with the rewrite).
    (tmp_path / "tasks.toml").write_text(TASKS.replace("first", "first, again"))
    apply(s, OPTS)
    assert found(s) == [(DriftKind.CLI_TASK, "task extra")]


def test_a_retry_that_edits_the_file_is_not_drift(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
) -> None:
    s = session_on(tmp_path, fake_store, None, TASKS + 'status = "cancelled"\n')
    apply(s, OPTS)
    verbs.retry(s, "a")
    assert 'status = "pending"' in (tmp_path / "tasks.toml").read_text()
    apply(s, OPTS)
    assert found(s) == []


@pytest.mark.parametrize("self_heal", [None, False], ids=["default", "self_heal-false"])
def test_a_task_cancelled_in_redis_is_left_only_under_self_heal_false(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    self_heal: bool | None,
) -> None:
    s = session_on(tmp_path, fake_store, self_heal)
    apply(s, OPTS)
    fake_store.upsert_tasks([{"mode": "cancel", "id": "a"}], 0)  # by hand, not in the file
    assert found(s) == [(DriftKind.CANCELLED, "task a")]
    assert drift_count(fake_store, s.desired()) == (None if self_heal is None else 1)
    result = apply(s, OPTS)
    state = fake_store.task_hash("a")["state"]
    if self_heal is None:
        assert state == "ready" and not result.plan.is_empty
        assert found(s) == []
    else:
        assert state == "cancelled" and result.plan.is_empty
        assert found(s) == [(DriftKind.CANCELLED, "task a")]
        # A change of the files is still applied.
        (tmp_path / "tasks.toml").write_text(TASKS + TASKS.replace('"a"', '"b"'))
        apply(s, OPTS)
        assert fake_store.task_hash("b")["state"] == "ready"


@pytest.fixture
def spawner() -> Iterator[Spawner]:
    s = Spawner()
    try:
        yield s
    finally:
        s.stop_all()


@pytest.mark.parametrize("self_heal", [None, False], ids=["default", "self_heal-false"])
def test_an_agent_stopped_by_hand_is_restarted_only_by_default(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    spawner: Spawner,
    self_heal: bool | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every start of this test is a sleeping process (`tt restart` included), never an agent.
    monkeypatch.setattr(fleet, "ensure", functools.partial(fleet.ensure, spawn=spawner))
    s = session_on(tmp_path, fake_store, self_heal)
    (tmp_path / "town.toml").write_text(town_toml(self_heal, suspended=False))
    apply(s, OPTS)  # its record, no process
    desired = s.desired()
    # What a worker writes when a person stops it (SIGTERM): stopped, its pid gone.
    gone = {"pid": "99999999", "pid_start": "1", "host": socket.gethostname(), "spawn": "s0"}
    fake_store.set_agent("dev", {**gone, "state": "stopped"})
    assert found(s) == [(DriftKind.AGENT_STOPPED, "agent dev")]
    changes = fleet.ensure(s.paths, desired, fake_store)
    if self_heal is None:
        assert [c.action for c in changes] == ["started"]
        assert fake_store.agent_records()["dev"]["stopped_by"] == ""
        assert found(s) == []
    else:
        assert changes == [] and spawner.started == []
        # `tt restart` is a person's word: it starts the agent whatever self_heal says.
        restarted = verbs.restart(s, "dev")
        assert restarted.new_pid == str(spawner.started[0][0])
        assert found(s) == []


def test_tts_own_stop_is_not_a_stop_by_hand(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    spawner: Spawner,
) -> None:
    s = session_on(tmp_path, fake_store, False)
    (tmp_path / "town.toml").write_text(town_toml(False, suspended=False))
    [_] = fleet.ensure(s.paths, s.desired(), fake_store, spawn=spawner)
    rec = fake_store.agent_records()["dev"]
    fleet.stop_agent(fake_store, "dev", rec, "tt down", grace=0, term_grace=1.0)
    fake_store.set_agent("dev", {"state": "stopped"})  # what the worker writes as it exits
    assert fake_store.agent_records()["dev"]["stopped_by"] == "tt down"
    assert found(s) == []


def test_the_loop_tells_town_drift_when_the_set_of_items_changes(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
) -> None:
    s = session_on(tmp_path, fake_store, False)
    apply(s, OPTS)
    reports: list[tuple[str, dict[str, str]]] = []
    watch = DriftWatch()

    def check() -> list[dict[str, str]]:
        watch.check(fake_store, s.desired(), lambda kind, f: reports.append((kind, f)))
        return [f for _, f in fake_store.events_since("-") if f["type"] == "town.drift"]

    assert check() == []  # no drift: nothing said
    fake_store.upsert_tasks([{"mode": "cancel", "id": "a"}], 0)
    [event] = check()
    assert event["count"] == "1" and event["items"].startswith("task a: cancelled in Redis")
    assert len(check()) == 1  # the same set again: said once
    verbs.retry(s, "a")  # back to ready: the files' state, but a hand retry now
    events = check()
    assert len(events) == 2 and "re-run by tt retry" in events[-1]["items"]
    assert [kind for kind, _ in reports] == ["drift", "drift"]
