"""The state folder's record of this host's side of a town (what `tt down` works from)."""

from __future__ import annotations

import stat
from pathlib import Path

from reconciler import rundir
from reconciler.town import TownPaths


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_pid_files_name_their_process_and_only_it_removes_them(tmp_path: Path) -> None:
    paths = TownPaths(tmp_path)
    rundir.register(paths, rundir.AGENT, "worker-1", 4242, "777")
    rundir.register(paths, rundir.WATCHER, "99", 99, "1")
    [agent] = rundir.registered(paths, rundir.AGENT)
    assert (agent.name, agent.pid, agent.start, agent.node) == ("worker-1", 4242, "777", "")
    # An agent started by a node names it (a node stops only the strays it started).
    rundir.register(paths, rundir.AGENT, "w", 5, "", "gpu-1")
    [w, _] = rundir.registered(paths, rundir.AGENT)  # (by name)
    assert (w.name, w.pid, w.start, w.node) == ("w", 5, "", "gpu-1")
    rundir.unregister(paths, rundir.AGENT, "w", 5)
    assert [w.pid for w in rundir.registered(paths, rundir.WATCHER)] == [99]
    assert mode(agent.path) == 0o600 and mode(agent.path.parent) == 0o700
    rundir.unregister(paths, rundir.AGENT, "worker-1", 1)  # another process: its file stays
    assert rundir.registered(paths, rundir.AGENT) != []
    rundir.unregister(paths, rundir.AGENT, "worker-1", 4242)
    assert rundir.registered(paths, rundir.AGENT) == []
    (paths.state_dir / "run" / "agent.junk.pid").write_text("not a pid")
    assert rundir.registered(paths, rundir.AGENT) == []  # a damaged file is skipped


def test_the_town_as_last_applied_is_kept_privately(tmp_path: Path) -> None:
    paths = TownPaths(tmp_path)
    assert rundir.recorded_town(paths) is None
    rundir.remember_town(paths, "shop", "redis://:pw@host:6379/0")
    assert rundir.recorded_town(paths) == ("shop", "redis://:pw@host:6379/0")
    assert mode(paths.state_dir / rundir.TOWN_RECORD) == 0o600
    (paths.state_dir / rundir.TOWN_RECORD).write_text("{broken")
    assert rundir.recorded_town(paths) is None


def test_the_down_mark(tmp_path: Path) -> None:
    paths = TownPaths(tmp_path)
    assert not rundir.is_down(paths)
    rundir.mark_down(paths)
    assert rundir.is_down(paths)
    rundir.clear_down(paths)
    rundir.clear_down(paths)  # twice: no error
    assert not rundir.is_down(paths)
