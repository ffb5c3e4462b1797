"""`tt down` means down (issue 17): with a conductor running it stops the conductor, the agents
and the server, nothing comes back by itself, and `tt apply` brings the town back; it works with
town.toml broken (from `.tt/` alone) and with the town's Redis away (the pid files of `.tt/run`).
Real Valkey (the town's embedded server) and the system Redis, real agent and loop processes."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from reconciler import server
from tests.integration.live import LiveTown, alive, live_town, until
from tests.redis_fixtures import flush_town, system_redis_url  # noqa: F401

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="checks processes through /proc"),
]

TOWN = """\
[town]
name = "{name}"
heartbeat = "0.5s"
lease = "2s"
resync = "2s"
restart_backoff = "0.2s"

[agents.worker]
model = "sim"
replicas = 2
"""
TASKS = '[[tasks]]\nid = "one"\ndescription = "say one"\nagent = "worker"\n'


def started(town: LiveTown) -> dict[str, int]:
    """Both agents running (registered by their own process: past reading town.toml), and
    their pids."""

    def ready() -> dict[str, int] | None:
        live = town.live_agents()
        records = town.agents()
        serving = all(records[n].get("state") in ("idle", "working") for n in live)
        return live if len(live) == 2 and serving else None

    return until(ready, 30, "two live agents")


def nothing_runs(town: LiveTown, pids: list[int], seconds: float) -> None:
    """For `seconds`: none of `pids` alive, no agent and no server of the town started."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert not [p for p in pids if alive(p)]
        assert server.status(town.paths) is None, "the server was started again"
        assert list((town.paths.state_dir / "run").glob("agent.*")) == []
        time.sleep(0.1)


def test_down_with_a_conductor_running_stays_down_until_apply(tmp_path: Path) -> None:
    with live_town(tmp_path / "t") as town:
        town.write(TOWN.format(name="downtown"), TASKS)
        conductor = town.start_watcher("conductor")
        agents = started(town)
        server_pid = town.server_pid()
        until(lambda: list((town.paths.state_dir / "run").glob("watch.*")), 10, "registered")
        town.store.close()
        del town.__dict__["store"]

        t0 = time.monotonic()
        done = town.tt("down")
        assert done.returncode == 0, done.stderr
        assert conductor.wait(timeout=10) == 0  # exited by itself: the town is down
        assert time.monotonic() - t0 < 15
        assert f"stopped watcher pid {conductor.pid}" in done.stdout
        assert "server stopped" in done.stdout
        assert "this loop exits" in town.log_of(conductor)
        nothing_runs(town, [*agents.values(), server_pid], 4.0)

        up = town.tt("apply")
        assert up.returncode == 0, up.stderr
        assert set(started(town)) == {"worker", "worker-2"}
        assert server.status(town.paths) is not None


def test_down_with_a_broken_town_toml(tmp_path: Path) -> None:
    with live_town(tmp_path / "t") as town:
        town.write(TOWN.format(name="broken"), TASKS)
        assert town.tt("apply").returncode == 0
        agents = started(town)
        server_pid = town.server_pid()
        town.store.close()
        del town.__dict__["store"]
        (town.root / "town.toml").write_text("[town\nname = ")  # a syntax error
        assert town.tt("validate").returncode == 1

        done = town.tt("down")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "server stopped" in done.stdout
        assert {f"stopped agent {n}" for n in agents} <= set(done.stdout.splitlines())
        nothing_runs(town, [*agents.values(), server_pid], 1.0)
        (town.root / "town.toml").write_text(TOWN.format(name="broken"))


def test_down_with_the_external_redis_away_stops_what_tt_recorded(
    tmp_path: Path,
    system_redis_url: str,  # noqa: F811
) -> None:
    name = f"down-{uuid.uuid4().hex[:10]}"
    with live_town(tmp_path / "t") as town:
        town.env["TT_REDIS_URL"] = system_redis_url
        town.write(TOWN.format(name=name), TASKS)
        try:
            conductor = town.start_watcher("conductor")
            from reconciler.store.client import Store

            town.__dict__["store"] = Store.open(system_redis_url, name)
            agents = started(town)
            until(lambda: list((town.paths.state_dir / "run").glob("watch.*")), 10, "registered")

            # The town's Redis is away as far as `tt down` can tell: a closed port.
            closed = _closed_port()
            town.env["TT_REDIS_URL"] = f"redis://:hunter2@127.0.0.1:{closed}/0"
            done = town.tt("down")
            assert done.returncode == 0, done.stdout + done.stderr
            assert "cannot reach Redis" in done.stderr and "hunter2" not in done.stderr
            assert f"stopped watcher pid {conductor.pid}" in done.stdout
            assert {f"stopped agent {n}" for n in agents} <= set(done.stdout.splitlines())
            conductor.wait(timeout=10)
            nothing_runs(town, list(agents.values()), 3.0)
            assert town.store.agent_records()  # Redis itself was never touched by down
        finally:
            town.env["TT_REDIS_URL"] = system_redis_url
            town.tt("down")
            flush_town(town.store.client, name)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed once the socket is


def test_a_second_conductor_after_down_brings_the_town_back(tmp_path: Path) -> None:
    with live_town(tmp_path / "t") as town:
        town.write(TOWN.format(name="again"), TASKS)
        assert town.tt("apply").returncode == 0
        started(town)
        town.store.close()
        del town.__dict__["store"]
        assert town.tt("down").returncode == 0
        assert (town.paths.state_dir / "down").exists()
        conductor = town.start_watcher("conductor")
        assert set(started(town)) == {"worker", "worker-2"}
        assert not (town.paths.state_dir / "down").exists()
        assert conductor.poll() is None  # killed by live_town's cleanup
