"""Node records on Redis, mixed into `Store`: a `tt node run` process registers its node, renews
its lease and leaves (`lua/node.lua`: one live process per node name), and `tt node drain` marks
it draining; the applied roster a node without the town's files runs by (`record_roster`);
the leader's placement of agents on nodes (two hashes, written together with their events);
what a node's pass reads of its own agents, in one round trip (`node_read`), never the others'.
No redis import: it uses the client `Store` owns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..plan.placement import Placed
from ..spec.desired import Desired
from ..spec.rosterjson import roster_digest, roster_json
from .scripts import Scripted


@dataclass(frozen=True)
class NodeRead:
    """One node pass's reads (`NodeOps.node_read`): of the names it was asked about only."""

    state: str  # its node record's state ('' when it has none)
    suspended: bool  # the town is suspended
    digest: str | None  # the applied roster's digest (`roster_digest`)
    indexed: frozenset[str]  # the agents whose record names the node (`keys.node_agents`)
    placed: Placed  # the leader's placement of the names asked (`placing`), only theirs
    records: dict[str, dict[str, str]]  # the registered agents' records, of the names asked
    beats: dict[str, bool]  # their heartbeat leases alive


class NodeOps(Scripted):
    def register_node(
        self, name: str, instance: str, lease: float, fields: dict[str, str]
    ) -> dict[str, str] | None:
        """Take node `name`'s lease and write its record (state ready); None when taken, else
        the record of the live process that holds the name (refused)."""
        got = self._node("register", name, instance, lease, json.dumps(fields))
        if got == 1:
            return None
        flat = [str(x) for x in got]
        return dict(zip(flat[::2], flat[1::2], strict=True))

    def node_beat(self, name: str, instance: str, lease: float) -> bool:
        """Renew the lease; False when another process has taken the name since."""
        return bool(self._node("beat", name, instance, lease))

    def leave_node(self, name: str, instance: str) -> bool:
        """State stopped and the lease dropped (a node stopped on purpose)."""
        return bool(self._node("leave", name, instance, 0))

    def drain_node(self, name: str) -> bool:
        """State draining; False when no node of that name ever registered."""
        return bool(self._node("drain", name, "", 0))

    def node_records(self) -> dict[str, dict[str, str]]:
        """Every registered node's record, with `lease` ('1' while its lease lives)."""
        names = sorted(self.client.smembers(self.keys.nodes))
        if not names:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for n in names:
            pipe.hgetall(self.keys.node(n))
        records = pipe.execute()
        leases = self.client.mget([self.keys.node_lease(n) for n in names])
        return {
            n: {**rec, "lease": "1" if held is not None else ""}
            for n, rec, held in zip(names, records, leases, strict=True)
        }

    def record_roster(self, desired: Desired) -> bool:
        """The applied roster (`rosterjson`), written when its digest changed; True then.
        `LeaderFenced` (nothing written) for a store whose leader epoch is no longer current."""
        text = roster_json(desired)
        digest = roster_digest(text)
        if self.client.hget(self.keys.roster, "digest") == digest:
            return False
        with self._writes() as pipe:  # (fenced as the apply's other writes: a deposed leader's
            pipe.hset(self.keys.roster, mapping={"digest": digest, "json": text})  # is refused)
        return True

    def roster_digest(self) -> str | None:
        """The digest of the recorded roster (one HGET: a node looks at each pass)."""
        found = self.client.hget(self.keys.roster, "digest")
        return None if found is None else str(found)

    def roster_record(self) -> tuple[str, str] | None:
        """(digest, JSON) of the roster the last apply recorded; None when no apply did."""
        digest, text = self.client.hmget(self.keys.roster, ["digest", "json"])
        return None if digest is None or text is None else (str(digest), str(text))

    def placement(self) -> Placed:
        """The leader's last placement: instance → node, and instance → why it fits nowhere."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.placement)
        pipe.hgetall(self.keys.unplaced)
        nodes, unplaced = pipe.execute()
        return Placed(nodes, unplaced)

    def node_read(self, node: str, placing: Sequence[str], agents: Sequence[str]) -> NodeRead:
        """What node `node`'s pass reads, in one pipelined round trip: its state, the town's
        suspension, the roster's digest, its index of agents, the placement of `placing`, and
        the records and heartbeat leases of `agents` (as `agent_records` has them: a name not
        registered has none). Its cost grows with the names asked, not with the town."""
        k = self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(k.node(node), "state")
        pipe.get(k.suspended)
        pipe.hget(k.roster, "digest")
        pipe.smembers(k.node_agents(node))
        if placing:
            pipe.hmget(k.placement, list(placing))
            pipe.hmget(k.unplaced, list(placing))
        if agents:
            pipe.execute_command("SMISMEMBER", k.agents, *agents)  # (the lean client too)
            for n in agents:
                pipe.hgetall(k.agent(n))
            pipe.execute_command("MGET", *(k.heartbeat(n) for n in agents))  # (a cluster too)
        got = pipe.execute()
        state, suspended, digest, indexed = got[:4]
        rest = got[4:]
        nodes, unplaced = (rest[0], rest[1]) if placing else ([], [])
        rest = rest[2:] if placing else rest
        registered, records = (rest[0], rest[1:-1]) if agents else ([], [])
        held = rest[-1] if agents else []
        return NodeRead(
            state=str(state or ""),
            suspended=suspended is not None,
            digest=None if digest is None else str(digest),
            indexed=frozenset(str(n) for n in indexed),
            placed=Placed(
                {n: str(v) for n, v in zip(placing, nodes, strict=True) if v is not None},
                {n: str(v) for n, v in zip(placing, unplaced, strict=True) if v is not None},
            ),
            records={
                n: dict(r) for n, r, on in zip(agents, records, registered, strict=True) if on
            },
            beats={n: v is not None for n, v in zip(agents, held, strict=True)},
        )

    def index_node_agents(self, node: str) -> int:
        """A node process's one full read, at its start: the agents whose record names it join
        its index (records written before the index was kept). Returns how many joined."""
        names = sorted(self.client.smembers(self.keys.agents))
        if not names:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for n in names:
            pipe.hget(self.keys.agent(n), "node")
        mine = [n for n, at in zip(names, pipe.execute(), strict=True) if at == node]
        return int(self.client.sadd(self.keys.node_agents(node), *mine)) if mine else 0

    def write_placement(self, placed: Placed, events: list[tuple[str, dict[str, str]]]) -> None:
        """Replace the placement, with its events, in one MULTI (fenced for a leader)."""
        with self._writes() as pipe:
            pipe.delete(self.keys.placement)
            pipe.delete(self.keys.unplaced)  # one key a command: a cluster pipeline routes by key
            if placed.nodes:
                pipe.hset(self.keys.placement, mapping=dict(placed.nodes))
            if placed.unschedulable:
                pipe.hset(self.keys.unplaced, mapping=dict(placed.unschedulable))
            for etype, fields in events:
                self._xadd(pipe, etype, **fields)

    def _node(self, op: str, name: str, instance: str, lease: float, fields: str = "{}") -> Any:
        return self._run("node", op, name, instance, str(int(lease * 1000)), fields)
