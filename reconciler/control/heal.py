"""Self-healing decisions on plain records: is an agent dead, when may it restart, is it in a
crash loop, which running attempts has no agent.
Pure: the caller supplies liveness (pid check, heartbeat lease) and the clock.

A clean exit (the worker wrote state `stopped`: `tt kill`, a drain) is never counted as a crash.
Five deaths within 30 s of start put an agent in quarantine for 5 minutes (Gastown's rule);
otherwise a crashed agent restarts at once the first time, then with backoff 10 s doubling to 5 min.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..agents.rounds import MAX_ROUNDS
from ..plan.nodes import DEAD, STOPPED, node_state
from ..spec.desired import Policy, RestartPolicy

PARKED = frozenset({"stopped", "backoff", "quarantined"})


def is_dead(rec: Mapping[str, str], *, local: bool, pid_alive: bool, lease_alive: bool) -> bool:
    """An agent with a process that should be running but is gone (pid on this host) or silent
    (no heartbeat lease, for another host). Never-started and parked agents are not dead."""
    if not rec.get("pid") or rec.get("state", "") in PARKED:
        return False
    return not pid_alive if local else not lease_alive


def on_death(
    rec: Mapping[str, str],
    now: float,
    policy: Policy,
    restart: RestartPolicy,
    node_lost: str = "",
) -> dict[str, str]:
    """The record fields to write for an agent found dead. `node_lost`: the node it ran on is
    gone (dead or stopped): the agent did not crash, so the death counts toward no crash loop
    (`node_deaths` records it) and it restarts at once on its next node."""
    if node_lost:
        fields = {"pid": "", "task": "", "died_at": repr(now)}
        fields["node_deaths"] = str(int(rec.get("node_deaths") or 0) + 1)
        if restart is RestartPolicy.NEVER:
            return fields | {
                "state": "stopped",
                "reason": f"node {node_lost} lost (restart = never)",
            }
        return fields | {
            "state": "backoff",
            "restart_after": repr(now),
            "reason": f"node {node_lost} lost; restart now",
        }
    spawned = float(rec.get("spawned_at") or 0)
    quick = now - spawned <= policy.crash_loop_window
    deaths = int(rec.get("quick_deaths") or 0) + 1 if quick else 1
    fields = {
        "quick_deaths": str(deaths if quick else 0),
        "pid": "",
        "task": "",
        "died_at": repr(now),
    }
    if restart is RestartPolicy.NEVER:
        return fields | {"state": "stopped", "reason": "exited (restart = never)"}
    if quick and deaths >= policy.crash_loop_deaths:
        until = now + policy.quarantine
        reason = f"{deaths} deaths within {policy.crash_loop_window:g}s of start"
        return fields | {"state": "quarantined", "quarantined_until": repr(until), "reason": reason}
    # The first death (or one after a long life) restarts at once; each further quick death
    # waits restart_backoff, doubling, up to restart_backoff_max.
    delay = (
        0.0
        if deaths <= 1
        else min(policy.restart_backoff * 2 ** (deaths - 2), policy.restart_backoff_max)
    )
    return fields | {
        "state": "backoff",
        "restart_after": repr(now + delay),
        "reason": f"died; restart in {delay:g}s",
    }


def node_lost(node: Mapping[str, str] | None, now: float) -> bool:
    """Whether a silent agent's node went with it: the node is dead or stopped, or it missed
    two renewals of its lease (it renews four times a lease: a node cut off with its agents
    whose lease has not lapsed yet)."""
    if node is None or node_state(node) in (DEAD, STOPPED):
        return True
    lease = float(node.get("lease_s") or 0)
    return bool(lease) and now - float(node.get("heartbeat_at") or 0) > lease / 2


def silent(rec: Mapping[str, str], now: float, lease: float) -> bool:
    """No sign of life for longer than `lease`: its last heartbeat (or its start, for one that
    has not beaten yet) is older. A process just spawned on a node is not taken for dead."""
    last = max(float(rec.get(k) or 0) for k in ("heartbeat_at", "spawned_at", "started_at"))
    return now - last > lease


def start_pending(rec: Mapping[str, str], now: float, grace: float) -> bool:
    """A start another `tt` claimed (state `starting`, no pid recorded yet) less than `grace`
    seconds ago: not to be started again. After `grace` the starter is taken for dead."""
    if rec.get("state") != "starting" or rec.get("pid"):
        return False
    return now - float(rec.get("spawned_at") or 0) < grace


def rounds_spent(rec: Mapping[str, str], restart: RestartPolicy) -> bool:
    """A worker that exited cleanly after its `max_rounds` tasks, to be left stopped: only
    `restart = always` starts it again (with fresh rounds). It did not fail, so `on-failure`
    leaves it, as Tinytown leaves such an agent stopped until `tt restart NAME`."""
    stopped = rec.get("state") == "stopped" and rec.get("stopped_by") == MAX_ROUNDS
    return stopped and restart is not RestartPolicy.ALWAYS


def may_start(rec: Mapping[str, str], now: float) -> bool:
    state = rec.get("state", "")
    if state == "quarantined":
        return now >= float(rec.get("quarantined_until") or 0)
    if state == "backoff":
        return now >= float(rec.get("restart_after") or 0)
    return True


def next_wakeup(records: Mapping[str, Mapping[str, str]]) -> float | None:
    """The earliest time a parked agent may start again (a timer for the loop)."""
    times = [
        float(r.get("quarantined_until") or r.get("restart_after") or 0)
        for r in records.values()
        if r.get("state") in ("backoff", "quarantined")
    ]
    return min(times) if times else None


def orphaned(
    tasks: Iterable[Mapping[str, str]], agents: Mapping[str, Mapping[str, str]]
) -> list[tuple[str, str, str]]:
    """Running attempts that no agent is working on: (task id, attempt token, assignee).

    A claim marks the task running and its agent's `task` in one script, and only the end of
    that attempt (or a new process of the agent) clears it; so an attempt whose agent names
    another task, or no task, was lost (its agent died before its death was recorded, or the
    claim landed after). `tasks` must be read BEFORE `agents`: then a claim made in between shows
    in the agents' read and is never taken for an orphan.
    """
    out = []
    for t in tasks:
        token = t.get("token", "")
        if t.get("state") != "running" or not token:
            continue
        who = t.get("assignee", "")
        if agents.get(who, {}).get("task") != t.get("id"):
            out.append((t.get("id", ""), token, who))
    return out
