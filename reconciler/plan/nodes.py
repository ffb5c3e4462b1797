"""What a node's record says, on plain values: its state (ready, draining, dead, stopped) and
why an agent placed on a node cannot run there (`unschedulable`). Pure: the caller reads the
records (`store/nodes.py`, each with `lease` '1' while the node's lease lives) and the clock.
"""

from __future__ import annotations

from collections.abc import Mapping

READY, DRAINING, DEAD, STOPPED = "ready", "draining", "dead", "stopped"


def node_state(rec: Mapping[str, str]) -> str:
    """stopped (it left on purpose), dead (its lease expired without leaving: a host or a
    process that died), draining (`tt node drain`), else ready."""
    if rec.get("state") == STOPPED:
        return STOPPED
    if not rec.get("lease"):
        return DEAD
    return DRAINING if rec.get("state") == DRAINING else READY


def unschedulable(node: str | None, nodes: Mapping[str, Mapping[str, str]]) -> str | None:
    """Why an agent placed on `node` has no process to run it, None when its node is ready.
    (A pinned agent is never moved; the others are placed elsewhere by `plan.placement`.)"""
    if node is None:
        return None
    rec = nodes.get(node)
    if rec is None:
        return f"node {node} not registered"
    state = node_state(rec)
    return None if state == READY else f"node {node} {state}"


def heartbeat_age(rec: Mapping[str, str], now: float) -> float | None:
    beat = rec.get("heartbeat_at", "")
    try:
        return round(now - float(beat), 1)
    except ValueError:
        return None
