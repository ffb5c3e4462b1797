"""Where each agent instance runs, decided by the leader on plain values: the instances that need a
node (pinned by `node`, selecting by `node_labels`, or every one under `[town] local_agents =
false`), the nodes (state, slots, labels) and the current placement → instance → node, or why
it fits nowhere. Pure and deterministic (ties by name); stable: an instance stays on its node
while that node is ready (or its own process still beats), eligible and within its slots, so
a node joining moves nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..spec.desired import AgentSpec, Desired, Placement
from .nodes import READY, node_state


@dataclass(frozen=True)
class Want:
    """An instance to place: its agent (pool), replica index, pin or selector, and policy."""

    instance: str
    agent: str
    index: int = 1
    node: str | None = None  # pinned: only this node, and never moved
    labels: tuple[tuple[str, str], ...] = ()
    placement: Placement = Placement.SPREAD


@dataclass(frozen=True)
class NodeInfo:
    """A node as placement sees it: its state, slots and labels."""

    name: str
    state: str  # ready | draining | dead | stopped (`plan.nodes.node_state`)
    slots: int = 0  # agents it runs at most; 0: not said (no limit)
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Placed:
    """Where each agent instance runs, and which fit nowhere (and why)."""

    nodes: Mapping[str, str]  # instance → node
    unschedulable: Mapping[str, str]  # instance → why it fits nowhere


def needs_node(agent: AgentSpec, local_agents: bool) -> bool:
    """Whether the agent's instances are placed on nodes (else: the controller's host)."""
    return agent.node is not None or bool(agent.node_labels) or not local_agents


def wants(desired: Desired) -> tuple[Want, ...]:
    """The instances to place: those of the agents that need a node, not suspended (a
    suspended agent runs nowhere and holds no slot)."""
    out = []
    for a in desired.agents:
        if a.suspended or not needs_node(a, desired.town.local_agents):
            continue
        for i, name in enumerate(a.instances(), 1):
            out.append(Want(name, a.name, i, a.node, a.node_labels, a.placement))
    return tuple(out)


def node_infos(records: Mapping[str, Mapping[str, str]]) -> dict[str, NodeInfo]:
    """The nodes as `store.node_records()` gives them (labels as `k=v,k2=v2`)."""
    out = {}
    for name, rec in records.items():
        slots = rec.get("slots", "")
        labels = dict(p.split("=", 1) for p in rec.get("labels", "").split(",") if "=" in p)
        out[name] = NodeInfo(name, node_state(rec), int(slots) if slots.isdigit() else 0, labels)
    return out


def selector_text(labels: Iterable[tuple[str, str]]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels)


def no_room(want: Want) -> str:
    """Why an instance that may run on any node with its labels fits none."""
    with_labels = f" with node_labels {selector_text(want.labels)}" if want.labels else ""
    return f"no ready node{with_labels} and a free slot"


def place(
    wanted: Iterable[Want],
    nodes: Mapping[str, NodeInfo],
    current: Mapping[str, str],
    beating: Iterable[str] = (),
) -> Placed:
    """Each wanted instance → a node, or the reason it fits nowhere. In order: the pinned
    instances (those already on their node first; a pin waits for its node, whatever its
    state, unless the node is full of pins), then the others that keep their `current` node
    (it is ready, or its process still beats: `beating`, instances whose heartbeat lease
    lives; eligible and not full: a pin takes the slot of a movable instance, which moves),
    then the rest by agent and replica, each on an eligible ready node with a free
    slot: spread = the fewest of its pool there, then the fewest agents, then the name; pack =
    the most of its pool, then the most agents, then the name."""
    todo = sorted(wanted, key=lambda w: (w.agent, w.index))
    alive = frozenset(beating)
    load: dict[str, int] = {}  # node → instances placed on it
    pool: dict[tuple[str, str], int] = {}  # (node, agent) → its instances there
    out: dict[str, str] = {}
    why: dict[str, str] = {}

    def free(node: str) -> bool:
        info = nodes.get(node)
        return info is None or not info.slots or load.get(node, 0) < info.slots

    def put(w: Want, node: str) -> None:
        out[w.instance] = node
        load[node] = load.get(node, 0) + 1
        pool[node, w.agent] = pool.get((node, w.agent), 0) + 1

    def fits(w: Want, node: str, held: bool = False) -> bool:
        """Whether `w` may run on `node`; `held`: it runs there now, and a node late with its
        lease (dead, draining) keeps it while its own process beats (moving it would hand
        its task back though its lease never lapsed)."""
        if w.node is not None:
            return node == w.node
        info = nodes.get(node)
        if info is None or (info.state != READY and not (held and w.instance in alive)):
            return False
        return all(info.labels.get(k) == v for k, v in w.labels)

    pins = [w for w in todo if w.node is not None]
    # Pins first (those already on their node before new ones): a pin is never starved by
    # movable replicas, which move instead.
    for w in sorted(pins, key=lambda w: current.get(w.instance) != w.node):
        assert w.node is not None
        if free(w.node):
            put(w, w.node)
        else:
            slots = nodes[w.node].slots
            why[w.instance] = f"node {w.node} has no free slot ({slots} slots)"
    for w in todo:  # stable: what runs where it may stays there
        node = current.get(w.instance)
        if w.node is None and node is not None and fits(w, node, held=True) and free(node):
            put(w, node)
    for w in todo:
        if w.instance in out or w.node is not None:
            continue
        eligible = [n for n in sorted(nodes) if fits(w, n) and free(n)]
        if not eligible:
            why[w.instance] = no_room(w)
            continue
        sign = -1 if w.placement is Placement.PACK else 1
        best = min(
            eligible, key=lambda n: (sign * pool.get((n, w.agent), 0), sign * load.get(n, 0), n)
        )
        put(w, best)
    return Placed(out, why)


def where(desired: Desired, placed: Placed | None = None) -> dict[str, str | None]:
    """Instance → where it runs: '' the controller's host, a node's name, None nowhere (a
    suspended agent of the nodes, or one the leader found no node for). A pinned instance the
    leader has not placed yet (no leader since it was added) waits on its pin."""
    decided = placed or Placed({}, {})
    out: dict[str, str | None] = {}
    for a in desired.agents:
        local = not needs_node(a, desired.town.local_agents)
        for name in a.instances():
            if local:
                out[name] = ""
            elif a.suspended or name in decided.unschedulable:
                out[name] = None
            elif a.node is not None:
                out[name] = a.node
            else:
                out[name] = decided.nodes.get(name)
    return out
