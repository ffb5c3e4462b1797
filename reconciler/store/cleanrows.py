"""The rows `lua/clean.lua` digests, on the client: per task its id, spec hash, queue target
and deps as stored, in the order of the `tasks` zset.

An apply that leaves nothing to do records the files' fingerprint and this digest; the next
apply of the same files checks them against Redis in one script (the no-op fast path). The
digest is computed here from what the apply read and wrote instead of walking 10,000 tasks in
Redis once more: nothing trusts it blindly, the check walks Redis and compares. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Iterable, Mapping

# id, spec hash, target, deps as stored ('' where absent), order (the zset score)
Row = tuple[str, str, str, str, float]

_COMPACT = json.JSONEncoder(separators=(",", ":"))
_BY_ORDER = operator.itemgetter(4, 0)  # (order, id): the zset's order, in C (10,000 rows)


def row_written(record: Mapping[str, object], old: Row | None) -> Row | None:
    """The row of a task after `lua/upsert_tasks.lua` ran `record` on it (`old`: its row
    before, None when it did not exist). Mirrors the script: a new task's hash has no `deps`
    field when it has none, a rewritten (or restored) one gets '[]'; complete and cancel keep
    the row.
    `tests/store/test_cleanrows.py` holds the two to each other."""
    mode = record.get("mode", "upsert")
    if mode in ("complete", "cancel"):
        return old
    deps = record.get("deps")
    encoded = _COMPACT.encode(deps) if isinstance(deps, list) and deps else ""
    if not encoded and (old is not None or mode != "upsert"):
        encoded = "[]"
    order = record["order"]
    return (
        str(record["id"]),
        str(record["hash"]),
        str(record["target"]),
        encoded,
        float(order) if isinstance(order, (int, float)) else 0.0,
    )


def digests(rows: Iterable[Row]) -> tuple[str, str]:
    """(sha1, size) digests of `rows` as `lua/clean.lua` builds its text: the zset's order is
    score, then id. The size one is what the script computes where Redis has no `sha1hex`
    (fakeredis, in unit tests)."""
    ordered = sorted(rows, key=_BY_ORDER)
    text = "".join(f"{r[0]}|{r[1]}|{r[2]}|{r[3]}\n" for r in ordered).encode()
    return hashlib.sha1(text, usedforsecurity=False).hexdigest(), f"size:{len(text)}"


def rows_after(
    rows: Iterable[Row], records: Iterable[Mapping[str, object]], deleted: Iterable[str]
) -> list[Row]:
    """`rows` after the task `records` of an apply were written and `deleted` pruned."""
    after = RowsAfter(rows)
    after.add(records)
    return after.rows(deleted)


class RowsAfter:
    """`rows_after`, fed the records batch by batch: an apply adds each batch while Redis runs
    it, instead of all of them once Redis is done."""

    def __init__(self, rows: Iterable[Row]) -> None:
        self.by_id = {row[0]: row for row in rows}
        self.before = len(self.by_id)  # how many tasks there were before any record

    def add(self, records: Iterable[Mapping[str, object]]) -> None:
        by_id = self.by_id
        for record in records:
            tid = str(record["id"])
            row = row_written(record, by_id.get(tid))
            if row is not None:
                by_id[tid] = row

    def rows(self, deleted: Iterable[str]) -> list[Row]:
        for tid in deleted:
            self.by_id.pop(tid, None)
        return list(self.by_id.values())
