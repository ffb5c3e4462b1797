"""Task operations on Redis, mixed into `Store`: the fenced transitions (claim, complete, fail,
hand back, promote), reading tasks, and writing a plan's task records (`lua/upsert_tasks.lua`).

Every transition is one Lua script, checked against the attempt token, so a stale attempt can
never complete or fail a task. No redis import: it uses the client `Store` owns.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..spec.desired import Policy
from .scripts import Scripted, lua_source


@dataclass(frozen=True)
class DepResult:
    """What a task a claimed one depends on produced (its result goes into the prompt)."""

    id: str
    agent: str | None
    result: str


@dataclass(frozen=True)
class Claimed:
    """A task an agent claimed: the attempt, its spec as JSON data, the previous error."""

    task_id: str
    attempt: int
    spec: dict[str, object]
    previous_error: str | None
    deps: tuple[DepResult, ...] = ()  # results of the tasks it depends on
    rejection: str | None = None  # a person's reason for rejecting the previous attempt


# The meta field where an apply's batches record the last of them that ran (upsert_tasks.lua).
CHAIN = "upsert_chain"

# What a missing field of a task hash means (lua/upsert_tasks.lua writes only what differs).
TASK_DEFAULTS = {"kind": "work", "source": "file", "priority": "0", "attempt": "0", "deps": "[]"}


def _upsert_args(records: list[dict[str, object]], chain: str = "") -> list[str]:
    """lua/upsert_tasks.lua's arguments after the generation: the batch's `chain` ('TOKEN:N',
    its place in an apply's batches; '' alone), the records as JSON without their specs, then
    the specs, each its own argument (the k-th where a record says "spec": k). A spec (itself
    JSON) nested in the records' JSON would be escaped here and unescaped by cjson in Redis,
    for every task."""
    specs: list[str] = []
    slim: list[dict[str, object]] = []
    for rec in records:
        spec = rec.get("spec")
        if isinstance(spec, str):
            specs.append(spec)
            rec = {**rec, "spec": len(specs)}
        slim.append(rec)
    return [chain, _RECORDS.encode(slim), *specs]


# The records' JSON: plain trees (no cycle to look for: ~10 % of encoding 10,000 of them).
_RECORDS = json.JSONEncoder(check_circular=False)


class TaskOps(Scripted):
    _sort_denied = False  # this connection's ACL user may not SORT ... GET (see task_rows)

    # -- task transitions -------------------------------------------------------------------
    def claim(self, task_id: str, agent: str, token: str) -> Claimed | None:
        got = self._run("claim", task_id, agent, token)
        if not got:
            return None
        deps = tuple(DepResult(d, agent or None, result) for d, agent, result in json.loads(got[3]))
        spec = json.loads(got[1] or "{}")
        return Claimed(task_id, int(got[0]), spec, got[2] or None, deps, got[4] or None)

    def complete(self, task_id: str, token: str, result: str) -> bool:
        return bool(self._run("complete", task_id, token, result))

    def fail(self, task_id: str, token: str, error: str, permanent: bool, policy: Policy) -> str:
        return str(
            self._run(
                "fail",
                task_id,
                token,
                error,
                "1" if permanent else "0",
                policy.retry_backoff,
                policy.retry_backoff_max,
                random.uniform(0.9, 1.1),
                policy.retries,
            )
        )

    def hand_back(self, task_id: str, token: str, reason: str = "agent stopped") -> bool:
        return bool(self._run("hand_back", task_id, token, reason))

    def approve(self, task_id: str, by: str, comment: str) -> tuple[bool, str]:
        """`lua/approve.lua`: (done, the task's state after, or as it was when not done)."""
        done, state = self._run("approve", task_id, by, comment)
        return bool(done), str(state)

    def reject(self, task_id: str, by: str, reason: str, policy: Policy) -> tuple[bool, str]:
        """`lua/reject.lua`: (done, the task's state after, or as it was when not done)."""
        done, state = self._run("reject", task_id, by, reason, policy.retries)
        return bool(done), str(state)

    def promote_due(self) -> int:
        return int(self._run("promote"))

    def seconds_to_next_timer(self) -> float | None:
        first = self.client.zrange(self.keys.timers, 0, 0, withscores=True)
        return None if not first else max(0.0, float(first[0][1]) - time.time())

    def current_token(self, task_id: str) -> str | None:
        token = self.client.hget(self.keys.task(task_id), "token")
        return str(token) if token else None

    def dep_results(self, task_id: str) -> list[DepResult]:
        deps = json.loads(self.client.hget(self.keys.task(task_id), "deps") or "[]")
        pipe = self.client.pipeline(transaction=False)
        for d in deps:
            pipe.hmget(self.keys.task(d), "result", "assignee", "kind")
        out = []
        for d, (result, assignee, kind) in zip(deps, pipe.execute(), strict=True):
            if kind != "group":
                out.append(DepResult(d, assignee, result or ""))
        return out

    def task_records(self, batch: int = 2000) -> list[dict[str, str]]:
        """Every task hash in file order, read in pipelined batches (one round trip per batch),
        with its id and the defaults of the fields a hash leaves out when they have them."""
        ids = self.client.zrange(self.keys.tasks, 0, -1)
        out: list[dict[str, str]] = []
        for start in range(0, len(ids), batch):
            pipe = self.client.pipeline(transaction=False)
            chunk = ids[start : start + batch]
            for tid in chunk:
                pipe.hgetall(self.keys.task(tid))
            out.extend(
                {**TASK_DEFAULTS, "id": tid, **r}
                for tid, r in zip(chunk, pipe.execute(), strict=True)
                if r
            )
        return out

    def task_rows(
        self, fields: Sequence[str], batch: int = 2000, ids: Sequence[str] | None = None
    ) -> list[list[Any]]:
        """[id, *values] of `fields` for every task in file order, or for `ids` (None where
        absent; tasks without a hash are left out). Every task: one SORT ... GET, which reads
        them all in C; some (or where an ACL user may not SORT with GET): a script per batch."""
        n = len(fields)
        if ids is None and not self._sort_denied:
            pattern = self.keys.task("*") + "->"
            gets = [arg for f in fields for arg in ("GET", pattern + f)]
            try:
                flat = self.client.execute_command(
                    "SORT", self.keys.tasks, "BY", "nosort", "GET", "#", *gets
                )
            except self.errors.response as e:
                # Redis 7 lets SORT read other keys by pattern only with access to all keys: a
                # user restricted to `tt:*` gets "GET option of SORT denied".
                if "denied" not in str(e):
                    raise
                self._sort_denied = True
            else:
                rows = [flat[k : k + n + 1] for k in range(0, len(flat), n + 1)]
                return [row for row in rows if any(v is not None for v in row[1:])]
        if ids is None:
            ids = self.client.zrange(self.keys.tasks, 0, -1)
        out: list[list[Any]] = []
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            flat = self._run("read_tasks", n, *fields, *chunk)
            for k, tid in enumerate(chunk):
                values = flat[k * n : (k + 1) * n]
                if any(v is not None for v in values):
                    out.append([tid, *values])
        return out

    def task_hash(self, task_id: str) -> dict[str, str]:
        """The stored fields of one task ({} when there is no such task)."""
        return dict(self.client.hgetall(self.keys.task(task_id)))

    def task_ids(self) -> list[str]:
        """Every task id in file order (one ZRANGE; no task hash is read)."""
        return list(self.client.zrange(self.keys.tasks, 0, -1))

    def attempt_history(self, task_id: str) -> list[dict[str, object]]:
        return [json.loads(x) for x in self.client.lrange(self.keys.attempts(task_id), 0, -1)]

    def attempt_histories(
        self, ids: Sequence[str], batch: int = 2000
    ) -> dict[str, list[dict[str, object]]]:
        """`attempt_history` of each of `ids`, read in pipelined batches (a CI report's)."""
        out: dict[str, list[dict[str, object]]] = {}
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            pipe = self.client.pipeline(transaction=False)
            for tid in chunk:
                pipe.lrange(self.keys.attempts(tid), 0, -1)
            for tid, found in zip(chunk, pipe.execute(), strict=True):
                out[tid] = [json.loads(x) for x in found]
        return out

    def last_attempt(self, task_id: str) -> dict[str, object] | None:
        """The record of the task's latest finished attempt (None: none yet)."""
        raw = self.client.lindex(self.keys.attempts(task_id), -1)
        record = json.loads(raw) if raw else None
        return record if isinstance(record, dict) else None

    # -- applying a plan ---------------------------------------------------------------------
    def upsert_tasks(self, records: list[dict[str, object]], generation: int) -> int:
        return int(self._run("upsert_tasks", generation, *_upsert_args(records)))

    def upsert_batches(self, batches: Iterable[list[dict[str, object]]], generation: int) -> int:
        """`upsert_tasks` for each batch, in order, on one connection, two calls in flight: a
        batch is sent before the reply to the one before it is read, so Redis runs it while
        this process builds the next (the iterator advanced, its JSON encoded) and neither side
        waits for the other's slower batch. Each batch carries its place in the chain: Redis
        runs it only if the one before it ran whole (lua/upsert_tasks.lua `chain`)."""
        if self.cluster:  # no connection of its own: one call per batch
            return sum(self.upsert_tasks(batch, generation) for batch in batches)
        source = lua_source("upsert_tasks")
        sha = self.client.script_load(source)  # so EVALSHA cannot meet NOSCRIPT below
        pool = self.client.connection_pool
        try:
            conn = pool.get_connection()
        except TypeError:  # redis-py < 5.3 wants a command name
            conn = pool.get_connection("EVALSHA")
        token = os.urandom(6).hex()
        done, in_flight, n = 0, 0, -1
        try:
            for n, batch in enumerate(batches):
                rest = _upsert_args(batch, f"{token}:{n}")
                if in_flight == 2:
                    done += int(conn.read_response())
                    in_flight -= 1
                now = repr(time.time())
                args = (self.keys.meta, self.keys.prefix, now, self.fence, generation, *rest)
                # (no health check: redis-py's PING would read a reply still in flight as
                # its own, and reconnect without it)
                conn.send_command("EVALSHA", sha, 1, *args, check_health=False)
                in_flight += 1
            while in_flight:
                done += int(conn.read_response())
                in_flight -= 1
            if n >= 0:  # the chain's record goes with it (the town's state is its tasks')
                conn.send_command("HDEL", self.keys.meta, CHAIN, check_health=False)
                conn.read_response()
        finally:
            if in_flight:  # an error left a reply unread: this connection cannot be reused
                conn.disconnect()
            pool.release(conn)
        return done

    def delete_tasks(self, ids: list[str]) -> int:
        return int(self._run("delete_tasks", json.dumps(ids)))

    def requeue(self, ids: list[str]) -> int:
        return int(self._run("requeue", json.dumps(ids)))

    def waiting_on(self, ids: Iterable[str], limit: int) -> set[str] | None:
        """Every task that waits for one of `ids`, directly or through others (the `children:`
        sets, one pipelined read per step); None past `limit` tasks."""
        found: set[str] = set()
        step = set(ids)
        while step:
            pipe = self.client.pipeline(transaction=False)
            for tid in sorted(step):
                pipe.smembers(self.keys.children(tid))
            step = {kid for kids in pipe.execute() for kid in kids} - found
            found |= step
            if len(found) > limit:
                return None
        return found

    def held_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of `ids` (ready tasks out of every queue) held back by a task their `touches`
        overlap that is still running or ready (lua/lib.lua `hold`): as good as queued, for
        `wake` puts them back when it leaves those states. Two pipelined reads."""
        pipe = self.client.pipeline(transaction=False)
        for tid in ids:
            pipe.hget(self.keys.task(tid), "waiting_for")
        held = [(tid, other) for tid, other in zip(ids, pipe.execute(), strict=True) if other]
        if not held:
            return set()
        pipe = self.client.pipeline(transaction=False)
        for _, other in held:
            pipe.hget(self.keys.task(other), "state")
        states = pipe.execute()
        return {tid for (tid, _), s in zip(held, states, strict=True) if s in ("running", "ready")}

    def queued_ids(self, targets: list[str]) -> set[str]:
        """Ids currently waiting in the ready queues of `targets` (one pipelined read)."""
        pipe = self.client.pipeline(transaction=False)
        for t in targets:
            pipe.lrange(self.keys.queue(t), 0, -1)
        return {tid for ids in pipe.execute() for tid in ids}
