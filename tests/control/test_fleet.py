"""fleet.ensure run twice at once on one dead agent (a watcher's heal pass and `tt restart`, with
no apply lock between them): the death is recorded once and exactly one process starts, at any
interleaving. Fakeredis; the second pass is run at a chosen point of the first (deterministic),
and the started "agents" are real sleeping processes so liveness checks see them."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from reconciler.agents.supervisor import spawn_detached, stop_process
from reconciler.control import fleet, heal
from reconciler.spec import loader
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.redis_fixtures import fake_store, town_name  # noqa: F401

TOWN = '[town]\nname = "race"\n\n[agents.solo]\nmodel = "sim"\n'
# A process of this host that is gone (no such pid), its heartbeat lease not yet expired.
DEAD = {
    **{"spawn": "s0", "pid": "99999999", "pid_start": "1", "instance": "i0"},
    **{"state": "idle", "host": socket.gethostname(), "spawned_at": "1"},
}


class Spawner:
    """Starts a sleeping process in place of an agent; remembers every start."""

    def __init__(self) -> None:
        self.started: list[tuple[int, str]] = []

    def __call__(
        self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path
    ) -> tuple[int, str]:
        sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
        got = spawn_detached(sleeper, cwd=cwd, env=env, log_path=log_path)
        self.started.append(got)
        return got

    def stop_all(self) -> None:
        for pid, start in self.started:
            stop_process(pid, start, 1.0)


class Racing:
    """The store as the first pass sees it: just before its call to `method`, the whole second
    pass runs."""

    def __init__(self, store: Store, method: str, other: Callable[[], object]) -> None:
        self.store, self.method, self.other = store, method, other
        self.url = store.url
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if name != self.method:
            return attr

        def hooked(*args: Any, **kwargs: Any) -> Any:
            if not self.fired:
                self.fired = True
                self.other()
            return attr(*args, **kwargs)

        return hooked


@pytest.fixture
def spawner() -> Iterator[Spawner]:
    s = Spawner()
    try:
        yield s
    finally:
        s.stop_all()


@pytest.mark.parametrize("point", ["agent_records", "record_death", "claim_start"])
def test_two_heals_of_one_dead_agent_start_one_process(
    point: str,
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    spawner: Spawner,
) -> None:
    (tmp_path / "town.toml").write_text(TOWN)
    paths = TownPaths(tmp_path)
    desired = loader.load(paths)
    fake_store.set_agent_spec("solo", base="solo", spec="{}", spec_hash="h", suspended=False)
    fake_store.set_agent("solo", DEAD)
    fake_store.client.set(fake_store.keys.heartbeat("solo"), "i0")  # the dead one's lease

    second: list[fleet.FleetChange] = []
    racing = Racing(
        fake_store,
        point,
        lambda: second.extend(fleet.ensure(paths, desired, fake_store, spawn=spawner)),
    )
    first = fleet.ensure(paths, desired, racing, spawn=spawner)  # type: ignore[arg-type]
    assert racing.fired

    assert len(spawner.started) == 1, (first, second)
    started = [c for c in [*first, *second] if c.action == "started"]
    died = [c for c in [*first, *second] if c.action == "died"]
    assert len(started) == 1 and len(died) == 1, (first, second)
    rec = fake_store.agent_records()["solo"]
    assert rec["pid"] == str(spawner.started[0][0]) and rec["state"] == "starting"
    assert rec["quick_deaths"] == "0" and rec["restarts"] == "1"  # a long life, one restart
    events = [f["type"] for _, f in fake_store.events_since("-")]
    assert events.count("agent.exited") == 1 and events.count("agent.spawned") == 1
    # The dead instance's lease was dropped (it was still its own), so the new one may start.
    assert fake_store.client.get(fake_store.keys.heartbeat("solo")) is None

    # A third pass adopts the live process.
    assert fleet.ensure(paths, desired, fake_store, spawn=spawner) == []
    assert len(spawner.started) == 1


def test_a_start_drops_the_dead_instances_lease_only(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    spawner: Spawner,
) -> None:
    """Another process of the agent (started concurrently) holds the lease: it stays."""
    (tmp_path / "town.toml").write_text(TOWN)
    paths = TownPaths(tmp_path)
    fake_store.set_agent("solo", {**DEAD, "state": "stopped"})
    fake_store.client.set(fake_store.keys.heartbeat("solo"), "someone-else")
    claim = {"spawn": "s1", "state": "starting", "pid": "", "spawned_at": repr(time.time())}
    assert fake_store.claim_start("solo", DEAD, claim)
    assert fake_store.client.get(fake_store.keys.heartbeat("solo")) == "someone-else"
    assert not fake_store.claim_start("solo", DEAD, {"spawn": "s2", "state": "starting"})
    assert fake_store.agent_records()["solo"]["spawn"] == "s1"
    # While that start has not recorded its pid, no other pass starts the agent again.
    desired = loader.load(paths)
    assert fleet.ensure(paths, desired, fake_store, spawn=spawner) == []
    assert spawner.started == []


def test_a_start_claimed_by_a_dead_tt_is_retried_after_the_lease() -> None:
    rec = {"state": "starting", "pid": "", "spawned_at": "100"}
    assert heal.start_pending(rec, 105.0, 10.0)
    assert not heal.start_pending(rec, 111.0, 10.0)
    assert not heal.start_pending({**rec, "pid": "42"}, 105.0, 10.0)
    assert not heal.start_pending({**rec, "state": "idle"}, 105.0, 10.0)


def test_an_agent_that_died_while_suspended_is_recorded_dead_and_not_started(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    spawner: Spawner,
) -> None:
    """Its running task goes back to the queue, and no later pass keeps finding it dead."""
    (tmp_path / "town.toml").write_text(TOWN + "suspended = true\n")
    paths = TownPaths(tmp_path)
    desired = loader.load(paths)
    fake_store.set_agent_spec("solo", base="solo", spec="{}", spec_hash="h", suspended=True)
    fake_store.set_agent("solo", {**DEAD, "state": "working", "task": "t1"})
    [change] = fleet.ensure(paths, desired, fake_store, spawn=spawner)
    assert change.action == "died" and spawner.started == []
    rec = fake_store.agent_records()["solo"]
    assert rec["pid"] == "" and rec["task"] == ""
    assert fleet.ensure(paths, desired, fake_store, spawn=spawner) == []


class EnvSpawner(Spawner):
    """A Spawner that also keeps the environment each agent process was given."""

    def __init__(self) -> None:
        super().__init__()
        self.envs: list[dict[str, str]] = []

    def __call__(
        self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path
    ) -> tuple[int, str]:
        self.envs.append(dict(env))
        return super().__call__(argv, cwd=cwd, env=env, log_path=log_path)


def test_an_agent_whose_env_from_is_missing_is_not_started_and_says_so_once(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
) -> None:
    (tmp_path / "town.toml").write_text(
        '[town]\nname = "envs"\n\n[agents.solo]\nmodel = "claude"\nenv_from = ["DEPLOY_KEY"]\n'
    )
    paths = TownPaths(tmp_path)
    desired = loader.load(paths)
    fake_store.set_agent_spec("solo", base="solo", spec="{}", spec_hash="h", suspended=False)
    spawner = EnvSpawner()
    shell = {"PATH": "/usr/bin", "HOME": "/root", "ANTHROPIC_API_KEY": "k", "AWS_SECRET": "s"}
    try:
        for _ in range(2):  # a second pass finds it again, writes nothing new
            changes = fleet.ensure(paths, desired, fake_store, env=shell, spawn=spawner)
            assert changes == [fleet.FleetChange("solo", "not started", "missing env DEPLOY_KEY")]
        assert spawner.started == []
        rec = fake_store.agent_records()["solo"]
        assert (rec["state"], rec["reason"]) == ("stopped", "missing env DEPLOY_KEY")
        events = [f for _, f in fake_store.events_since("-")]
        assert [(e["type"], e["agent"], e["missing"]) for e in events] == [
            ("agent.env_missing", "solo", "DEPLOY_KEY")
        ]

        # Started from a shell that has it: it starts with the declared variables only.
        changes = fleet.ensure(
            paths, desired, fake_store, env={**shell, "DEPLOY_KEY": "d"}, spawn=spawner
        )
        assert [c.action for c in changes] == ["started"]
        assert set(spawner.envs[0]) == {
            "PATH",
            "HOME",
            "ANTHROPIC_API_KEY",
            "DEPLOY_KEY",
            "TT_TOWN",
        }
        assert fake_store.agent_records()["solo"]["reason"] == ""
    finally:
        spawner.stop_all()


def test_an_agent_running_in_another_folder_is_moved_here(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    spawner: Spawner,
) -> None:
    """A live agent of this host started for another folder (the town was adopted here, or
    applied from another clone) does not serve this town from there: stopped, started here."""
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    (here / "town.toml").write_text(TOWN)
    paths = TownPaths(here)
    desired = loader.load(paths)
    old_pid, old_start = spawner(["sleep"], cwd=elsewhere, env={}, log_path=elsewhere / "agent.log")
    live = {**DEAD, "pid": str(old_pid), "pid_start": old_start, "root": str(elsewhere)}
    fake_store.set_agent_spec("solo", base="solo", spec="{}", spec_hash="h", suspended=False)
    fake_store.set_agent("solo", live)
    changes = fleet.ensure(paths, desired, fake_store, spawn=spawner, stop_grace=0.1)
    assert [c.action for c in changes] == ["stopped", "started"]
    assert "not in the town's folder" in changes[0].detail
    assert not fleet.is_alive(old_pid, old_start)
    rec = fake_store.agent_records()["solo"]
    assert rec["root"] == str(here) and rec["pid"] == str(spawner.started[-1][0])
    # The one started here is adopted by the next pass.
    assert fleet.ensure(paths, desired, fake_store, spawn=spawner) == []


@pytest.mark.parametrize(("restart", "started"), [("always", 1), ("on-failure", 0), ("never", 0)])
def test_an_agent_that_finished_its_rounds_starts_again_only_under_restart_always(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    spawner: Spawner,
    restart: str,
    started: int,
) -> None:
    """A worker's clean exit after max_rounds tasks is no failure: on-failure and never leave it
    stopped (Tinytown's: until tt restart NAME), always starts it with fresh rounds."""
    (tmp_path / "town.toml").write_text(TOWN + f'max_rounds = 2\nrestart = "{restart}"\n')
    paths = TownPaths(tmp_path)
    desired = loader.load(paths)
    assert desired.agents[0].max_rounds == 2
    fake_store.set_agent_spec("solo", base="solo", spec="{}", spec_hash="h", suspended=False)
    spent = {**DEAD, "state": "stopped", "stopped_by": "max_rounds", "rounds": "2"}
    fake_store.set_agent("solo", spent)
    for _ in range(2):  # a later pass decides alike
        fleet.ensure(paths, desired, fake_store, spawn=spawner)
    assert len(spawner.started) == started
    rec = fake_store.agent_records()["solo"]
    assert rec["stopped_by"] == ("" if started else "max_rounds")  # a start clears it
    if not started:
        assert rec["state"] == "stopped"
        # tt restart names itself in stopped_by: then any policy starts it.
        fake_store.set_agent("solo", {"stopped_by": "restarted by tt restart"})
        fleet.ensure(paths, desired, fake_store, spawn=spawner)
        assert len(spawner.started) == 1
