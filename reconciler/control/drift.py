"""Drift read from Redis: `tt diff --drift`, the `drift:` line of `tt status`, and the watch
loop's `town.drift` event under `[town] self_heal = false`.

Reads the records and the liveness of this host's agents, and leaves the judging to the pure
`plan.drift.find_drift`. Never writes a task or an agent: only the `town.drift` event.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from ..plan.drift import Drift, DriftKind, find_drift, stopped_by_hand
from ..spec.desired import Desired
from ..store.client import Store
from ..store.observed import observe, with_changed_specs
from . import atplace, fleet

FIRST_ITEMS = 5  # items a `town.drift` event and a loop's report line name


def read_drift(store: Store, desired: Desired) -> Drift:
    """What differs in Redis from what `desired` (the files) asks for without a file change."""
    tasks = store.task_records()
    agents, should_run, alive = _agents(store, desired)
    observed, _ = observe(store)
    observed = with_changed_specs(store, observed, desired)
    return find_drift(desired, observed, tasks, agents, should_run=should_run, alive=alive)


Agents = tuple[dict[str, dict[str, str]], dict[str, bool], dict[str, bool]]


def _agents(store: Store, desired: Desired) -> Agents:
    """The agent records, which of them this host should run, and which have a live process."""
    agents = store.agent_records()
    host = socket.gethostname()
    beats = store.heartbeat_alive(list(agents))
    alive = {
        name: fleet.local_alive(rec, host) or (rec.get("host") != host and beats.get(name, False))
        for name, rec in agents.items()
    }
    return agents, atplace.desired_instances(desired), alive


def _stopped_by_hand(store: Store, desired: Desired) -> frozenset[str]:
    agents, should_run, alive = _agents(store, desired)
    return frozenset(
        name
        for name, run in should_run.items()
        if run and name in agents and stopped_by_hand(agents[name], alive=alive.get(name, False))
    )


class DriftWatch:
    """The loop's side: after a pass, under `self_heal = false`, a `town.drift` event and a
    report line each time the set of drift items changes (once more when it is gone)."""

    def __init__(self) -> None:
        self.told: frozenset[str] | None = None
        self.stopped: frozenset[str] = frozenset()  # the agents stopped by hand, last read

    def check(
        self,
        store: Store,
        desired: Desired,
        report: Callable[[str, dict[str, str]], None],
        *,
        full: bool = True,
    ) -> None:
        """`full` reads every task; a heal pass (every heartbeat) reads only the agents, and
        reads the rest only when which agents were stopped by hand changed."""
        if desired.town.policy.self_heal:
            self.told = None
            return
        if not full and _stopped_by_hand(store, desired) == self.stopped:
            return
        drift = read_drift(store, desired)
        self.stopped = frozenset(
            i.object.removeprefix("agent ")
            for i in drift.items
            if i.kind is DriftKind.AGENT_STOPPED
        )
        now = frozenset(i.line() for i in drift.items)
        if now == self.told or (self.told is None and not now):
            return
        self.told = now
        first = [i.line() for i in drift.items[:FIRST_ITEMS]]
        more = len(drift.items) - len(first)
        items = "; ".join(first) + (f"; … and {more} more" if more > 0 else "")
        store.event("town.drift", count=str(len(drift.items)), items=items)
        if drift.items:
            detail = f"{len(drift.items)} items left as they are (self_heal = false): {items}"
        else:
            detail = "no drift left"
        report("drift", {"detail": detail})


def drift_count(store: Store, desired: Desired | None) -> int | None:
    """For `tt status`: how many drift items there are under `self_heal = false` (else None)."""
    if desired is None or desired.town.policy.self_heal:
        return None
    return len(read_drift(store, desired).items)
