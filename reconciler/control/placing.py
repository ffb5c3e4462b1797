"""The leader's placement step, run at the start of each fleet pass of the controller that leads
(a fenced store; other passes read the last placement): read the nodes and the last placement,
decide (`plan/placement.py`, pure), and write the placement with an event per agent moved or
found unschedulable, only when it changed. Node processes read what it
wrote (`store.placement`); nothing here starts or stops a process (`fleet` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..plan.nodes import READY, unschedulable
from ..plan.placement import Placed, needs_node, node_infos, place, wants, where
from ..spec.desired import Desired

PLACED_EVENT = "agent.placed"  # node processes wake on it (and on `agent.unschedulable`)
UNSCHEDULABLE_EVENT = "agent.unschedulable"


class PlacementStore(Protocol):
    fence: str  # 'e:N': the leader of epoch N (its writes are refused once deposed); '': not

    def node_records(self) -> dict[str, dict[str, str]]: ...
    def heartbeat_alive(self, names: list[str]) -> dict[str, bool]: ...
    def placement(self) -> Placed: ...
    def write_placement(self, placed: Placed, events: list[tuple[str, dict[str, str]]]) -> None: ...


def preview(
    store: PlacementStore,
    desired: Desired,
    records: Mapping[str, Mapping[str, str]],
    node_records: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[Placed, Placed]:
    """(the last placement, the one the leader would decide now from the same reads);
    `node_records`: the nodes' records when the caller read them already."""
    last = store.placement()
    wanted = wants(desired)
    if not wanted and not last.nodes and not last.unschedulable:
        return last, last  # no agent needs a node (nothing read of the nodes)
    # Where each instance is now: its placement, else the node its record says it ran under.
    current = {n: r["node"] for n, r in records.items() if r.get("node") and r.get("pid")}
    current.update(last.nodes)
    nodes = node_infos(store.node_records() if node_records is None else node_records)
    # An instance on a node not ready (late with its lease, draining) stays while it beats.
    held = [w.instance for w in wanted if nodes.get(current.get(w.instance, "")) is not None]
    held = [n for n in held if nodes[current[n]].state != READY]
    beats = store.heartbeat_alive(held) if held else {}
    return last, place(wanted, nodes, current, [n for n, up in beats.items() if up])


def decide(
    store: PlacementStore, desired: Desired, records: Mapping[str, Mapping[str, str]]
) -> Placed:
    """Decide the placement and write it if it changed (the controller's fleet pass)."""
    last, new = preview(store, desired, records)
    if new != last:
        store.write_placement(new, changes(last, new))
    return new


def acted_on(
    store: PlacementStore, desired: Desired, records: Mapping[str, Mapping[str, str]]
) -> Placed:
    """The placement a controller's pass acts on. Only the leader (a store fenced by its epoch)
    decides and writes it; any other pass (a one-shot `tt apply`, `tt restart`, a watcher that
    does not lead) reads the last one written, never writing back a stale one (`tt plan`
    previews without writing)."""
    if store.fence:
        return decide(store, desired, records)
    return store.placement()


def changes(last: Placed, new: Placed) -> list[tuple[str, dict[str, str]]]:
    events = []
    for name, node in sorted(new.nodes.items()):
        if last.nodes.get(name) != node:
            events.append((PLACED_EVENT, {"agent": name, "node": node}))
            prior = last.nodes.get(name)
            if prior:
                events[-1][1]["from"] = prior
    for name, why in sorted(new.unschedulable.items()):
        if last.unschedulable.get(name) != why:
            events.append((UNSCHEDULABLE_EVENT, {"agent": name, "reason": why}))
    return events


def placement_rows(
    desired: Desired, placed: Placed, nodes: Mapping[str, Mapping[str, str]]
) -> list[dict[str, Any]]:
    """Where each agent instance runs (`tt plan`): `node` (None: the controller's host) and
    `unschedulable` (why it runs nowhere, None when it runs), in roster order."""
    at = where(desired, placed)
    rows = []
    for a in desired.agents:
        for name in a.instances():
            node = at.get(name)
            on_node = needs_node(a, desired.town.local_agents)
            if a.suspended:
                why = None
            elif node is None:
                why = placed.unschedulable.get(name) or "not placed yet"
            else:
                why = unschedulable(node, nodes) if on_node else None
            rows.append(
                {
                    "agent": name,
                    "node": (node or None) if on_node else None,
                    "suspended": a.suspended,
                    "unschedulable": why,
                }
            )
    return rows


def uses_nodes(desired: Desired, nodes: Mapping[str, object]) -> bool:
    """Whether placement is worth showing: an agent needs a node, or a node registered."""
    return bool(nodes) or any(needs_node(a, desired.town.local_agents) for a in desired.agents)


def plan_placement(store: Any, desired: Desired) -> list[dict[str, Any]] | None:
    """`tt plan`'s placement rows (nothing written), or None when the town uses no node."""
    nodes = store.node_records()
    if not uses_nodes(desired, nodes):
        return None
    _, new = preview(store, desired, store.agent_records(), nodes)
    return placement_rows(desired, new, nodes)


def placement_text(row: Mapping[str, Any]) -> str:
    """One row of `placement_rows` in words (`tt plan`)."""
    if row["suspended"]:
        return "suspended"
    if row["unschedulable"]:
        return f"unschedulable ({row['unschedulable']})"
    return f"node {row['node']}" if row["node"] else "the controller's host"
