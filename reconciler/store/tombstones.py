"""Tombstones, mixed into `Store`: the records of pruned tasks (`lua/delete_tasks.lua` renames a
task's hash to `deleted:ID`), read for a plan that would create one of those ids again (it is
restored instead), listed for `tt status --deleted`, and purged after `keep_deleted`.

No redis import: it uses the client `Store` owns. Writing them is `delete_tasks`'s (TaskOps).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .scripts import Scripted

# Per script call: arguments stay well under Redis' limits, replies small.
_BATCH = 2000


class TombstoneOps(Scripted):
    def tombstone_rows(self, fields: Sequence[str], ids: Sequence[str]) -> list[list[Any]]:
        """[id, *values] of `fields` for each of `ids` that has a tombstone (one script call per
        2,000 ids; none read when the town has no tombstone)."""
        n = len(fields)
        out: list[list[Any]] = []
        if len(ids) > _BATCH and not self.client.zcard(self.keys.deleted):
            return out  # (a first apply of many tasks: no ids sent for nothing)
        for start in range(0, len(ids), _BATCH):
            flat = self._run("read_tombstones", n, *fields, *ids[start : start + _BATCH])
            out.extend(flat[k : k + n + 1] for k in range(0, len(flat), n + 1))
        return out

    def is_tombstone(self, task_id: str) -> bool:
        """Whether `task_id` was pruned and is kept as a tombstone."""
        return self.client.zscore(self.keys.deleted, task_id) is not None

    def purge_tombstones(self, cutoff: float) -> int:
        """Drop the tombstones of tasks pruned before `cutoff` (unix seconds), 1,000 a call."""
        return int(self._run("purge_tombstones", repr(cutoff)))

    def tombstone_records(self) -> list[dict[str, Any]]:
        """Every tombstone, oldest first: its stored fields (with `id` and `deleted_at`) and its
        attempt history (`attempts`, JSON records as `attempt_history` gives them)."""
        ids = self.client.zrange(self.keys.deleted, 0, -1)
        pipe = self.client.pipeline(transaction=False)
        for tid in ids:
            pipe.hgetall(self.keys.tombstone(tid))
            pipe.lrange(self.keys.tombstone_attempts(tid), 0, -1)
            pipe.zscore(self.keys.tasks, tid)
        replies = pipe.execute() if ids else []
        out = []
        for i, tid in enumerate(ids):
            fields, history, live = replies[3 * i : 3 * i + 3]
            # (an id a `--no-save` task took since is a task again: not listed as deleted)
            if fields and live is None:
                attempts = [json.loads(x) for x in history]
                out.append({**fields, "id": tid, "history": attempts})
        return out
