"""`tt nodes` and `tt node drain`: the nodes as Redis records them (`store/nodes.py`), each with
its state (`plan.nodes.node_state`), the agents the leader placed on it and those running there.
"""

from __future__ import annotations

import time
from typing import Any

from ..control.session import Session
from ..errors import NotFound
from ..plan.nodes import heartbeat_age, node_state
from ..plan.placement import where
from ..spec.desired import Desired


def nodes_report(
    s: Session, desired: Desired | None, now: float | None = None
) -> list[dict[str, Any]]:
    """One row per registered node, and one per node the files name that never registered."""
    now = time.time() if now is None else now
    store = s.store
    nodes = store.node_records()
    placed: dict[str, list[str]] = {}
    at = where(desired, store.placement()) if desired is not None else {}
    for agent, node in at.items():
        if node:  # the leader's placement (a pin not placed yet: on its node)
            placed.setdefault(node, []).append(agent)
    agents = store.agent_records()
    beats = store.heartbeat_alive(list(agents))
    rows = []
    for name in sorted(set(nodes) | set(placed)):
        rec = nodes.get(name)
        running = sorted(n for n, r in agents.items() if r.get("node") == name and beats.get(n))
        labels = dict(p.split("=", 1) for p in (rec or {}).get("labels", "").split(",") if p)
        rows.append(
            {
                "name": name,
                "host": rec.get("host") if rec else None,
                "pid": int(rec["pid"]) if rec and rec.get("pid", "").isdigit() else None,
                "state": node_state(rec) if rec else "unregistered",
                "placed": sorted(placed.get(name, [])),
                "running": running,
                "slots": int(rec.get("slots") or 0) if rec else None,
                "labels": labels,
                "heartbeat_age": heartbeat_age(rec, now) if rec else None,
                "version": rec.get("version") if rec else None,
            }
        )
    return rows


def drain(s: Session, name: str) -> None:
    """Node `name` drains: its agents finish their running task and claim nothing new."""
    if not s.store.drain_node(name):
        known = ", ".join(sorted(s.store.node_records())) or "none"
        raise NotFound(f"no node '{name}' registered (nodes: {known})", hint="tt nodes")
