"""A town's health, rolled up from its agents and tasks as plain values: worst wins, `suspended` >
`degraded` > `progressing` > `healthy`, with the reasons a person reads. Pure: what the agents'
and tasks' states are, whether the town is suspended and whether its newest revision is invalid
are the caller's reads (`control/report.py`, the reconcile loop)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any


class HealthState(str, Enum):
    HEALTHY = "healthy"
    PROGRESSING = "progressing"
    DEGRADED = "degraded"
    SUSPENDED = "suspended"


# Agent states that degrade the town: parked after too many quick deaths, or restarting after
# crashes (`control/heal.py`).
SICK_AGENTS = {"quarantined": "quarantined", "backoff": "crash-looping"}
FAILED_TASKS = ("failed", "upstream_failed")
MOVING_TASKS = ("running", "ready", "retrying", "blocked", "awaiting_approval")
NAMED_AGENTS = 3  # more agents in one state than this are counted, not named


@dataclass(frozen=True)
class Health:
    state: HealthState
    reasons: tuple[str, ...] = ()

    def text(self) -> str:
        """`degraded (2 failed tasks, agent dev quarantined)`, or `healthy`."""
        return describe(self.state.value, self.reasons)

    def as_json(self) -> dict[str, Any]:
        return {"state": self.state.value, "reasons": list(self.reasons)}


def describe(state: str, reasons: Iterable[str]) -> str:
    said = ", ".join(reasons)
    return f"{state} ({said})" if said else state


def town_health(
    agents: Iterable[Mapping[str, Any]],
    counts: Mapping[str, int],
    *,
    suspended: bool,
    newest_invalid: bool = False,
    fetch_failing: str | None = None,
) -> Health:
    """The health of a town whose agents are `agents` (rows with `name` and `state`) and whose
    tasks number `counts[state]`; `suspended`: the town is (`tt suspend`); `newest_invalid`: the
    newest revision of its files could not be applied; `fetch_failing`: the branch it follows,
    while fetching it fails."""
    if suspended:
        running = counts.get("running", 0)
        finishing = [_tasks(running, "running", " finishing")] if running else []
        return Health(HealthState.SUSPENDED, ("nothing starts until tt resume", *finishing))
    bad = ["newest revision invalid"] if newest_invalid else []
    bad += [f"fetching {fetch_failing} fails"] if fetch_failing else []
    sick: dict[str, list[str]] = {}
    for a in agents:
        word = SICK_AGENTS.get(str(a.get("state")))
        if word:
            sick.setdefault(word, []).append(str(a.get("name")))
    bad += [_agents(names, word) for word, names in sick.items()]
    bad += [_tasks(counts[s], s) for s in FAILED_TASKS if counts.get(s)]
    if bad:
        return Health(HealthState.DEGRADED, tuple(bad))
    moving = tuple(_tasks(counts[s], s) for s in MOVING_TASKS if counts.get(s))
    if moving:
        return Health(HealthState.PROGRESSING, moving)
    return Health(HealthState.HEALTHY)


def _tasks(n: int, state: str, tail: str = "") -> str:
    return f"{n} {state} task{'' if n == 1 else 's'}{tail}"


def _agents(names: list[str], word: str) -> str:
    names = sorted(names)
    if len(names) > NAMED_AGENTS:
        return f"{len(names)} agents {word}"
    return f"agent{'' if len(names) == 1 else 's'} {', '.join(names)} {word}"
