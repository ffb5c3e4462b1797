"""Task and agent operations on Redis, mixed into `store.Store` (with the mail, `mailstore`).

Every task transition is one Lua script from `reconciler/lua` (the shared `lib.lua` prepended),
fenced by the attempt token; a store that acts as leader (`fence`) also has every script refused
once a newer leader holds the town. This module does not import redis: it uses the client
`Store` owns.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from .agent import Claimed
from .errors import LeaderFenced
from .keys import Keys
from .mailstore import MailOps
from .prompt import DepResult
from .spec import Policy

LUA_DIR = Path(__file__).parent / "lua"
EVENTS_MAXLEN = 10000
FENCED_REPLY = "TTFENCED"  # lib.lua's refusal of a stale leader epoch
# Scripts any process runs whoever leads: taking the lease itself, and the apply lock's own
# compare-and-set (a deposed leader must still release the lock it holds).
UNFENCED = frozenset({"leader", "unlock", "take_over_lock"})

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _fencing(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """Turn lib.lua's refusal of a stale fence into `LeaderFenced`."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if not str(e).startswith(FENCED_REPLY):
                raise
            raise _fenced(str(e)[len(FENCED_REPLY) :].strip()) from e

    return wrapper


def _fenced(detail: str) -> LeaderFenced:
    return LeaderFenced(
        f"a newer leader holds the town: {detail}",
        hint="another `tt watch`/`tt conductor` took over; this one stands by",
    )


@cache
def lua_source(name: str) -> str:
    return (LUA_DIR / "lib.lua").read_text() + "\n" + (LUA_DIR / f"{name}.lua").read_text()


# What a missing field of a task hash means (lua/upsert_tasks.lua writes only what differs).
TASK_DEFAULTS = {"kind": "work", "source": "file", "priority": "0", "attempt": "0", "deps": "[]"}


def _upsert_args(records: list[dict[str, object]]) -> list[str]:
    """lua/upsert_tasks.lua's arguments after the generation: the records as JSON without their
    specs, then the specs, each its own argument (the k-th where a record says "spec": k).
    A spec (itself JSON) nested in the records' JSON would be escaped here and unescaped by
    cjson in Redis, for every task."""
    specs: list[str] = []
    slim: list[dict[str, object]] = []
    for rec in records:
        spec = rec.get("spec")
        if isinstance(spec, str):
            specs.append(spec)
            rec = {**rec, "spec": len(specs)}
        slim.append(rec)
    return [json.dumps(slim), *specs]


class TaskOps(MailOps):
    client: Any
    blocking: Any
    keys: Keys
    url: str
    _scripts: dict[str, Any]
    _sort_denied = False  # this connection's ACL user may not SORT ... GET (see task_rows)
    # '' = unfenced; 'e:N' = this store writes as the leader of epoch N (see lua/lib.lua). Set by
    # the loop from `hold_leader` at each step, cleared when it does not lead.
    fence: str = ""

    def _script(self, name: str) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.client.register_script(lua_source(name))
        return script

    @contextmanager
    def _writes(self) -> Iterator[Any]:
        """A MULTI/EXEC pipeline for writes that are not scripts. A store writing as the leader
        (`fence`) WATCHes the leader epoch: they commit only while it is still its own, else
        `LeaderFenced` and nothing is written (what lib.lua does for the scripts)."""
        with self.client.pipeline(transaction=True) as pipe:
            if self.fence:
                pipe.watch(self.keys.leader_epoch)
                epoch = pipe.get(self.keys.leader_epoch) or "0"
                if self.fence != f"e:{epoch}":
                    raise _fenced(f"{self.fence} is no longer the leader epoch (e:{epoch})")
                pipe.multi()
            yield pipe
            try:
                pipe.execute()
            except Exception as e:  # redis' WatchError: the epoch moved under the writes
                if type(e).__name__ != "WatchError":
                    raise
                raise _fenced(f"{self.fence}: the leader epoch moved") from e

    @_fencing
    def _run(self, name: str, *args: object) -> Any:
        fence = "" if name in UNFENCED else self.fence
        argv = [self.keys.prefix, repr(time.time()), fence, *args]
        return self._script(name)(keys=[self.keys.meta], args=argv)

    # -- agents -----------------------------------------------------------------------------
    def register_agent(self, name: str, fields: dict[str, str]) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(self.keys.agents, name)
        pipe.hset(self.keys.agent(name), mapping=fields)
        pipe.execute()

    def heartbeat(self, name: str, instance: str, lease: float) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.keys.heartbeat(name), instance, px=int(lease * 1000))
        pipe.hset(self.keys.agent(name), "heartbeat_at", repr(time.time()))
        pipe.execute()

    def set_agent(self, name: str, fields: dict[str, str]) -> None:
        with self._writes() as pipe:
            pipe.hset(self.keys.agent(name), mapping=fields)

    def take_instance(self, name: str, instance: str, lease: float) -> bool:
        """Become the one live process of agent `name`; False if another holds a live lease."""
        return bool(
            self.client.set(self.keys.heartbeat(name), instance, px=int(lease * 1000), nx=True)
        )

    def release_instance(self, name: str, instance: str) -> bool:
        return bool(self._run("release_instance", name, instance))

    def agent_records(self) -> dict[str, dict[str, str]]:
        names = sorted(self.client.smembers(self.keys.agents))
        pipe = self.client.pipeline(transaction=False)
        for n in names:
            pipe.hgetall(self.keys.agent(n))
        return dict(zip(names, pipe.execute(), strict=True))

    def heartbeat_alive(self, names: list[str]) -> dict[str, bool]:
        if not names:
            return {}
        values = self.client.mget([self.keys.heartbeat(n) for n in names])
        return {n: v is not None for n, v in zip(names, values, strict=True)}

    def forget_agent(self, name: str) -> None:
        with self._writes() as pipe:
            pipe.srem(self.keys.agents, name)
            pipe.delete(self.keys.agent(name), self.keys.heartbeat(name), self.keys.control(name))

    def request_stop(self, name: str, how: str) -> None:
        with self._writes() as pipe:
            pipe.rpush(self.keys.control(name), how)

    # Compare-and-set writes of the fleet (`lua/agent_cas.lua`): each applies only if the record
    # still shows the process the caller read (its spawn id and pid), so of two `tt` processes
    # healing the same dead agent, one records its death and one starts its next process.
    def record_death(self, name: str, seen: Mapping[str, str], fields: dict[str, str]) -> bool:
        return self._agent_cas(name, seen.get("spawn", ""), seen.get("pid", ""), fields)

    def claim_start(self, name: str, seen: Mapping[str, str], fields: dict[str, str]) -> bool:
        """Claim the start of agent `name`'s next process (`fields` carry a new spawn id); also
        drop the dead process's heartbeat lease, only if still its own, and stale requests."""
        instance = seen.get("instance", "")
        return self._agent_cas(
            name, seen.get("spawn", ""), seen.get("pid", ""), fields, start=True, instance=instance
        )

    def record_spawn(self, name: str, spawn: str, fields: dict[str, str]) -> bool:
        """The pid of the process started under `spawn`, unless another start claimed it since."""
        return self._agent_cas(name, spawn, "*", fields)

    def _agent_cas(
        self,
        name: str,
        spawn: str,
        pid: str,
        fields: dict[str, str],
        *,
        start: bool = False,
        instance: str = "",
    ) -> bool:
        args = (name, spawn, pid, json.dumps(fields), "1" if start else "0", instance)
        return bool(self._run("agent_cas", *args))

    def queue_keys(self, targets: Sequence[str]) -> list[str]:
        return [self.keys.queue(t) for t in targets]

    def bell_key(self, agent: str) -> str:
        return self.keys.bell(agent)

    def control_key(self, agent: str) -> str:
        return self.keys.control(agent)

    def pop_work(self, keys: Sequence[str], timeout: float) -> tuple[str, str] | None:
        got = self.blocking.blpop(list(keys), timeout=timeout)
        return None if got is None else (str(got[0]), str(got[1]))

    # -- task transitions -------------------------------------------------------------------
    def claim(self, task_id: str, agent: str, token: str) -> Claimed | None:
        got = self._run("claim", task_id, agent, token)
        if not got:
            return None
        deps = tuple(DepResult(d, agent or None, result) for d, agent, result in json.loads(got[3]))
        return Claimed(task_id, int(got[0]), json.loads(got[1] or "{}"), got[2] or None, deps)

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

    def promote_due(self) -> int:
        return int(self._run("promote"))

    def seconds_to_next_timer(self) -> float | None:
        first = self.client.zrange(self.keys.timers, 0, 0, withscores=True)
        return None if not first else max(0.0, float(first[0][1]) - time.time())

    def promote_and_next_timer(self) -> float | None:
        """`promote_due` then `seconds_to_next_timer` in one round trip (the worker's loop)."""
        # EVALSHA by hand: a pipeline given the script object checks SCRIPT EXISTS first.
        pipe = self.client.pipeline(transaction=False)
        argv = [self.keys.prefix, repr(time.time()), ""]  # an agent's: unfenced
        pipe.evalsha(self._script("promote").sha, 1, self.keys.meta, *argv)
        pipe.zrange(self.keys.timers, 0, 0, withscores=True)
        promoted, first = pipe.execute(raise_on_error=False)
        if isinstance(promoted, Exception):  # NOSCRIPT (a new server): load it the usual way
            self.promote_due()
            return self.seconds_to_next_timer()
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
            except Exception as e:
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

    def task_ids(self) -> list[str]:
        """Every task id in file order (one ZRANGE; no task hash is read)."""
        return list(self.client.zrange(self.keys.tasks, 0, -1))

    def attempt_history(self, task_id: str) -> list[dict[str, object]]:
        return [json.loads(x) for x in self.client.lrange(self.keys.attempts(task_id), 0, -1)]

    def events_since(
        self, last_id: str = "-", count: int = 1000, block_ms: int | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        """Events after `last_id` (exclusive), oldest first; with `block_ms`, wait for new ones."""
        if block_ms is None:
            start = "-" if last_id == "-" else f"({last_id}"
            return [(i, f) for i, f in self.client.xrange(self.keys.events, start, "+", count)]
        got = self.blocking.xread({self.keys.events: last_id}, count=count, block=block_ms)
        return [(i, f) for _, entries in got for i, f in entries] if got else []

    # -- applying a plan ---------------------------------------------------------------------
    def upsert_tasks(self, records: list[dict[str, object]], generation: int) -> int:
        return int(self._run("upsert_tasks", generation, *_upsert_args(records)))

    @_fencing
    def upsert_batches(self, batches: Iterable[list[dict[str, object]]], generation: int) -> int:
        """`upsert_tasks` for each batch, in order, one at a time; the next batch is built (the
        iterator advanced, its JSON encoded) while Redis runs the previous one: one script
        call in flight on one connection, its reply read before the next call is sent."""
        source = lua_source("upsert_tasks")
        sha = self.client.script_load(source)  # so EVALSHA cannot meet NOSCRIPT below
        pool = self.client.connection_pool
        try:
            conn = pool.get_connection()
        except TypeError:  # redis-py < 5.3 wants a command name
            conn = pool.get_connection("EVALSHA")
        done, in_flight = 0, False
        try:
            for batch in batches:
                rest = _upsert_args(batch)
                if in_flight:
                    done += int(conn.read_response())
                now = repr(time.time())
                args = (self.keys.meta, self.keys.prefix, now, self.fence, generation, *rest)
                conn.send_command("EVALSHA", sha, 1, *args)
                in_flight = True
            if in_flight:
                done += int(conn.read_response())
                in_flight = False
        finally:
            if in_flight:  # an error left a reply unread: this connection cannot be reused
                conn.disconnect()
            pool.release(conn)
        return done

    def delete_tasks(self, ids: list[str]) -> int:
        return int(self._run("delete_tasks", json.dumps(ids)))

    def requeue(self, ids: list[str]) -> int:
        return int(self._run("requeue", json.dumps(ids)))

    def queued_ids(self, targets: list[str]) -> set[str]:
        """Ids currently waiting in the ready queues of `targets` (one pipelined read)."""
        pipe = self.client.pipeline(transaction=False)
        for t in targets:
            pipe.lrange(self.keys.queue(t), 0, -1)
        return {tid for ids in pipe.execute() for tid in ids}

    def set_agent_spec(
        self, name: str, *, base: str, spec: str, spec_hash: str, suspended: bool
    ) -> None:
        fields = {
            "base": base,
            "spec": spec,
            "spec_hash": spec_hash,
            "source": "file",
            "suspended": "1" if suspended else "0",
        }
        with self._writes() as pipe:
            pipe.sadd(self.keys.agents, name)
            pipe.hset(self.keys.agent(name), mapping=fields)
            pipe.hsetnx(self.keys.agent(name), "state", "stopped")

    # -- leadership ----------------------------------------------------------------------------
    def hold_leader(self, holder: str, lease: float) -> tuple[int, int]:
        got = self._run("leader", holder, int(lease * 1000))
        return int(got[0]), int(got[1])

    def resign_leader(self, holder: str) -> None:
        if self.client.get(self.keys.leader) == holder:
            self.client.delete(self.keys.leader)

    # -- the apply lock ------------------------------------------------------------------------
    def try_lock(self, holder: dict[str, object], ttl: float) -> dict[str, object] | None:
        """Take the apply lock (None = taken); else return who holds it (host, pid, command...)."""
        raw = json.dumps(holder)
        if self.client.set(self.keys.apply_lock, raw, nx=True, px=int(ttl * 1000)):
            return None
        current = self.client.get(self.keys.apply_lock)
        if current is None:  # released between our SET and GET: try once more
            return self.try_lock(holder, ttl)
        info: dict[str, object] = json.loads(current)
        return info

    def unlock(self, token: str) -> bool:
        return bool(self._run("unlock", self.keys.apply_lock, token))

    def force_unlock(self) -> dict[str, object] | None:
        """`tt unlock`: remove a stale lock; returns who held it."""
        pipe = self.client.pipeline(transaction=True)
        pipe.get(self.keys.apply_lock)
        pipe.delete(self.keys.apply_lock)
        current, _ = pipe.execute()
        return None if current is None else dict(json.loads(current))

    def take_over_lock(self, stale_token: str, holder: dict[str, object], ttl: float) -> bool:
        """Replace a lock whose holder is dead, if it is still that holder's (compare-and-set)."""
        raw = json.dumps(holder)
        return bool(
            self._run("take_over_lock", self.keys.apply_lock, stale_token, raw, int(ttl * 1000))
        )

    # -- the no-op fast path -------------------------------------------------------------------
    def clean_fingerprint(self) -> str | None:
        """The files' fingerprint recorded by the last apply that left nothing to do, if any."""
        value = self.client.hget(self.keys.meta, "clean")
        return str(value) if value else None

    def check_clean(self, fingerprint: str, *, record: bool) -> tuple[bool, int]:
        """`lua/clean.lua`: (still clean, generation); with `record`, remember this state."""
        ok, generation = self._run("clean", fingerprint, "record" if record else "check")
        return bool(ok), int(generation)

    def read_meta(self) -> dict[str, str]:
        return dict(self.client.hgetall(self.keys.meta))

    def write_meta(self, fields: dict[str, str]) -> None:
        with self._writes() as pipe:
            pipe.hset(self.keys.meta, mapping=fields)

    # -- events ------------------------------------------------------------------------------
    def event(self, etype: str, **fields: str) -> None:
        self._xadd(self.client, etype, **fields)

    def _xadd(self, target: Any, etype: str, **fields: str) -> None:
        body = {"type": etype, "ts": repr(time.time()), **fields}
        target.xadd(self.keys.events, body, maxlen=EVENTS_MAXLEN, approximate=True)
