"""Node records on Redis, mixed into `Store`: a `tt node run` process registers its node, renews
its lease and leaves (`lua/node.lua`: one live process per node name), and `tt node drain` marks
it draining; the applied roster a node without the town's files runs by (`record_roster`);
the leader's placement of agents on nodes (two hashes, written together with their events).
No redis import: it uses the client `Store` owns.
"""

from __future__ import annotations

import json
from typing import Any

from ..plan.placement import Placed
from ..spec.desired import Desired
from ..spec.rosterjson import roster_digest, roster_json
from .scripts import Scripted


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
