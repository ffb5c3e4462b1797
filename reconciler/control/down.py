"""`tt down`: stop the town's watchers, its agents of this host and its embedded server, and
keep it down until the next `tt apply` / `tt conductor` (data is kept).

Order matters: the down mark and the `town.down` event first (every loop exits on one of them
and no longer restarts anything), then the loops of this host are waited for (and signalled if
they linger), then the agents, then the server. It works from the state folder alone
(`rundir`): with town.toml invalid or unreadable it uses the town as last applied, and with the
town's Redis away it stops the agents and loops whose pid files this host's `.tt/` holds.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field

from .. import rundir, server
from ..agents.supervisor import is_alive, stop_process, terminate
from ..errors import TtError
from ..store.client import Store, connect, is_embedded
from ..town import TownPaths
from . import fleet
from .identity import Identity

WATCHER_GRACE = 5.0  # a loop sees the event within ~1 s, the mark within a heartbeat
AGENT_GRACE = 10.0


@dataclass
class DownResult:
    watchers: list[int] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    server_stopped: bool = False
    redis_problem: str | None = None  # why Redis was not used (away, town.toml unreadable)


def down(paths: TownPaths) -> DownResult:
    result = DownResult()
    store = _store(paths, result)  # raises TownClaimed before anything is done
    # Found before the mark and the event: a loop that sees them exits (and unregisters) at once.
    watchers = _live_watchers(paths)
    rundir.mark_down(paths)
    try:
        if store is not None:
            store.event("town.down", by=f"{socket.gethostname()}:{os.getpid()}")
        result.watchers = _stop_watchers(paths, watchers)
        if store is not None:
            result.agents = _stop_recorded(store)
        result.agents += _stop_registered(paths, set(result.agents))
    finally:
        if store is not None:
            store.close()
    # The embedded server: found by its own pid file, whatever town.toml says.
    result.server_stopped = server.stop(paths)
    return result


def _town(paths: TownPaths) -> tuple[str, str] | None:
    """(name, Redis setting): town.toml's, else the last apply's (town.toml unreadable)."""
    from ..spec import loader

    try:
        settings = loader.load_settings(paths)
        return settings.name, settings.redis
    except TtError:
        return rundir.recorded_town(paths)


def _store(paths: TownPaths, result: DownResult) -> Store | None:
    town = _town(paths)
    if town is None:
        result.redis_problem = "town.toml cannot be read and no apply recorded the town here"
        return None
    name, redis = town
    try:
        if is_embedded(redis, paths) and not server.is_running(paths):
            return None  # never start a server in order to stop it
        store = connect(redis, paths, name)
    except TtError as e:  # away, or a URL that cannot be used: the pid files still serve
        result.redis_problem = e.message
        return None
    try:
        Identity(paths).check(store)
    except BaseException:
        store.close()
        raise
    return store


def _live_watchers(paths: TownPaths) -> list[rundir.Registered]:
    """The loops of this host that run now (pid files of dead ones are removed)."""
    mine = os.getpid()
    found = []
    for w in rundir.registered(paths, rundir.WATCHER):
        if w.pid != mine and is_alive(w.pid, w.start or None):
            found.append(w)
        else:
            rundir.unregister(paths, rundir.WATCHER, w.name, w.pid)  # stale: it died
    return found


def _stop_watchers(paths: TownPaths, found: list[rundir.Registered]) -> list[int]:
    """Wait for the loops found to exit on the mark or event; signal those that do not."""
    deadline = time.monotonic() + WATCHER_GRACE
    while time.monotonic() < deadline and any(is_alive(w.pid, w.start or None) for w in found):
        time.sleep(0.05)
    for w in found:
        terminate(w.pid, w.start or None, 3.0)  # nothing to do for one that exited
        rundir.unregister(paths, rundir.WATCHER, w.name, w.pid)
    return sorted(w.pid for w in found)


def _stop_recorded(store: Store) -> list[str]:
    """The agents Redis says run on this host: asked to stop, then signalled."""
    stopped = []
    for name, rec in store.agent_records().items():
        if fleet.local_alive(rec, socket.gethostname()):
            fleet.stop_agent(store, name, rec, "tt down", grace=0, term_grace=AGENT_GRACE)
            store.set_agent(name, {"state": "stopped", "task": ""})
            stopped.append(name)
    return stopped


def _stop_registered(paths: TownPaths, done: set[str]) -> list[str]:
    """The agents whose pid files `.tt/run` holds (all of them when Redis is away)."""
    stopped = []
    for agent in rundir.registered(paths, rundir.AGENT):
        if agent.name not in done and is_alive(agent.pid, agent.start or None):
            stop_process(agent.pid, agent.start or None, AGENT_GRACE)
            stopped.append(agent.name)
        rundir.unregister(paths, rundir.AGENT, agent.name, agent.pid)
    return stopped
