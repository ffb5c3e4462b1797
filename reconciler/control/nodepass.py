"""What a node's pass reads (`tt node run`, `fleet.ensure` with the node as place): its own agents
only (those the leader's placement puts on it, those pinned to it, and those whose record names
it, so that it stops a stale process of its own), their heartbeat leases, its state, the town's
suspension and the roster's digest: one pipelined round trip (`store.node_read`), a second only
when the placement gave it agents it had not read. Its cost does not grow with the town's other
agents. Reads only: nothing here writes, starts or stops.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ..plan.placement import Placed, needs_node, where
from ..spec.desired import Desired
from ..store.nodes import NodeRead


class NodeReadStore(Protocol):
    def node_read(self, node: str, placing: list[str], agents: list[str]) -> NodeRead: ...


@dataclass(frozen=True)
class NodeView:
    """A node pass's reads: `records` and `beats` of its own agents (the names in `mine`)."""

    state: str
    suspended: bool
    digest: str | None
    placed: Placed  # the placement of the instances that may be on this node
    records: dict[str, dict[str, str]]
    beats: dict[str, bool]
    mine: frozenset[str]  # its own agents: what the next pass reads at once


def candidates(desired: Desired, node: str) -> tuple[set[str], set[str]]:
    """(the instances the leader may place on `node`: of the agents that need a node and are
    pinned to it or to none; those pinned to it)."""
    may: set[str] = set()
    pinned: set[str] = set()
    for a in desired.agents:
        if not needs_node(a, desired.town.local_agents) or a.node not in (None, node):
            continue
        may.update(a.instances())
        if a.node == node:
            pinned.update(a.instances())
    return may, pinned


def read(store: NodeReadStore, desired: Desired, node: str, expect: Iterable[str] = ()) -> NodeView:
    """The node's reads for this pass; `expect`: the agents the last pass found its own."""
    may, pinned = candidates(desired, node)
    guess = pinned | set(expect)
    got = store.node_read(node, sorted(may | guess), sorted(guess))
    placed, records, beats = got.placed, dict(got.records), dict(got.beats)
    at = where(desired, placed)
    mine = {n for n, on in at.items() if on == node} | got.indexed
    # Agents placed here since the last pass (not read yet), and agents of its index whose
    # placement was not read (pinned elsewhere since: placed, or unschedulable).
    unread = sorted(mine - guess)
    unplaced = sorted(got.indexed - may - guess)
    if unread or unplaced:
        more = store.node_read(node, unplaced, unread)
        placed = Placed(
            {**placed.nodes, **more.placed.nodes},
            {**placed.unschedulable, **more.placed.unschedulable},
        )
        records.update(more.records)
        beats.update(more.beats)
    return NodeView(
        state=got.state,
        suspended=got.suspended,
        digest=got.digest,
        placed=placed,
        records={n: r for n, r in records.items() if n in mine},
        beats={n: b for n, b in beats.items() if n in mine},
        mine=frozenset(mine),
    )
