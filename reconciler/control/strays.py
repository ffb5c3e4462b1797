"""A place's stray agent processes: ones it started (its run folder registers each with the place
that started it, `rundir`) that the agent's record no longer names (the place was cut off past
the lease, the leader recorded the death and the agent started anew, maybe on another node).
They are stopped by signal (SIGTERM, then SIGKILL): no control request, which the agent's live
process would read. Nothing here decides placement or writes the agent's record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .. import rundir
from ..agents.supervisor import is_alive, stop_process
from ..town import TownPaths


def stop_strays(
    paths: TownPaths,
    place: str | None,
    host: str,
    records: Mapping[str, Mapping[str, str]],
    fresh: Callable[[str], Mapping[str, str]],
    grace: float,
) -> list[tuple[str, int, str]]:
    """Stop this place's registered agent processes that their record does not name; each
    stopped as (agent, pid, what the record names instead). `fresh` reads one agent's record
    now (a start by another `tt` since `records` was read registers only after its record
    names it)."""
    key, out = place or "", []
    for reg in rundir.registered(paths, rundir.AGENT):
        if reg.node != key or _names(records.get(reg.name, {}), reg, host, key):
            continue
        if not is_alive(reg.pid, reg.start or None):
            continue
        rec = fresh(reg.name)
        if _names(rec, reg, host, key):
            continue
        stop_process(reg.pid, reg.start or None, grace)
        rundir.unregister(paths, rundir.AGENT, reg.name, reg.pid)
        now = f"node {rec['node']}" if rec.get("node") else "the controller's host"
        out.append((reg.name, reg.pid, now if rec.get("pid") else "no process"))
    return out


def _names(rec: Mapping[str, str], reg: rundir.Registered, host: str, place: str) -> bool:
    """Whether the record names the registered process (its pid, on this host, this place)."""
    same = rec.get("pid") == str(reg.pid) and rec.get("host") == host
    return same and rec.get("node", "") == place
