"""Town-wide records on Redis, mixed into `Store`: the leader lease and its fencing epoch, the
apply lock (with compare-and-set takeover of a dead holder), the no-op fast path's clean mark,
the meta hash, and reading the event stream. No redis import: it uses the client `Store` owns.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .cleanrows import Row, digests
from .scripts import Scripted, lua_source


class TownOps(Scripted):
    # -- leadership ----------------------------------------------------------------------------
    def hold_leader(self, holder: str, lease: float) -> tuple[int, int]:
        got = self._run("leader", holder, int(lease * 1000))
        return int(got[0]), int(got[1])

    def leader_holder(self) -> str | None:
        """Who holds the leader lease now (`host:pid:id`), if anyone."""
        holder = self.client.get(self.keys.leader)
        return None if holder is None else str(holder)

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

    def lock_holder(self) -> dict[str, object] | None:
        """Who holds the apply lock now (None: nobody)."""
        current = self.client.get(self.keys.apply_lock)
        return None if current is None else dict(json.loads(current))

    def lock_lease_left(self) -> float:
        """Seconds the apply lock's lease still runs (0: no lock, or one without a lease)."""
        left = int(self.client.pttl(self.keys.apply_lock))
        return max(0.0, left / 1000)

    def unlock(self, token: str) -> bool:
        return bool(self._run("unlock", self.keys.apply_lock, token))

    def force_unlock(self) -> dict[str, object] | None:
        """`tt unlock --force`: remove the lock whoever holds it; returns who held it."""
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

    def clean_mark(self) -> tuple[str | None, str | None]:
        """The fingerprint and digest recorded as clean, as they are now (no walk)."""
        fingerprint, digest = self.client.hmget(self.keys.meta, "clean", "clean_state")
        return fingerprint, digest

    def check_clean(self, fingerprint: str, *, record: bool) -> tuple[bool, int]:
        """`lua/clean.lua`: (still clean, generation); with `record`, remember this state."""
        ok, generation, _ = self.check_clean_digest(fingerprint, record=record)
        return ok, generation

    def check_clean_digest(self, fingerprint: str, *, record: bool) -> tuple[bool, int, str]:
        """`check_clean` and the digest recorded with the fingerprint ('' if none)."""
        ok, generation, digest = self._run("clean", fingerprint, "record" if record else "check")
        return bool(ok), int(generation), str(digest or "")

    def clean_check_sent(self, fingerprint: str) -> PendingCheck:
        """`check_clean_digest(fingerprint)` sent now, answered by `clean_check_answer`: Redis
        walks the tasks while the caller works (an incremental apply checks the files
        meanwhile). Its own connection: `clean_check_done` gives it back, answered or not."""
        if self.cluster:  # no connection of its own: answered now
            ok, _, digest = self.check_clean_digest(fingerprint, record=False)
            return PendingCheck(fingerprint, None, (ok, digest))
        sha = self.client.script_load(lua_source("clean"))  # so EVALSHA cannot meet NOSCRIPT
        pool = self.client.connection_pool
        try:
            conn = pool.get_connection()
        except TypeError:  # redis-py < 5.3 wants a command name
            conn = pool.get_connection("EVALSHA")
        pending = PendingCheck(fingerprint, conn)
        try:
            argv = (self.keys.prefix, repr(time.time()), self.fence, fingerprint, "check")
            conn.send_command("EVALSHA", sha, 1, self.keys.meta, *argv)
        except BaseException:
            self.clean_check_done(pending)
            raise
        return pending

    def clean_check_answer(self, pending: PendingCheck) -> tuple[bool, str]:
        """(clean, digest recorded with the fingerprint) of a check sent before."""
        if pending.answer is None:
            conn, pending.conn = pending.conn, None
            if conn is None:
                raise RuntimeError("a pending clean check is answered once")
            try:
                ok, _, digest = conn.read_response()
                pending.answer = bool(ok), str(digest or "")
            except BaseException:
                conn.disconnect()  # whatever went wrong, a reply may be left: not reused
                raise
            finally:
                self.client.connection_pool.release(conn)
        return pending.answer

    def clean_check_done(self, pending: PendingCheck) -> None:
        """Give a sent check's connection back; one never answered is closed (its reply would
        confuse the next user)."""
        conn, pending.conn = pending.conn, None
        if conn is not None:
            conn.disconnect()
            self.client.connection_pool.release(conn)

    def store_clean(self, fingerprint: str, rows: Iterable[Row]) -> str:
        """Record `fingerprint` as clean with the digest of `rows`, the tasks as the caller's
        apply left them (`cleanrows`), without walking them; returns the digest recorded. The
        next check walks the tasks and compares: a wrong digest costs a full plan, never a
        skipped one."""
        sha1, size = digests(rows)
        return str(self._run("clean", fingerprint, "store", sha1, size)[2])

    def read_meta(self) -> dict[str, str]:
        return dict(self.client.hgetall(self.keys.meta))

    def write_meta(self, fields: dict[str, str]) -> None:
        with self._writes() as pipe:
            pipe.hset(self.keys.meta, mapping=fields)

    # -- the town's source -----------------------------------------------------------------
    def town_source(self) -> dict[str, str]:
        """Where the town is managed from ({} before its first apply): `key`, `source`, and a
        `folder:HOST:PATH` field for each folder found to be that source."""
        return dict(self.client.hgetall(self.keys.source))

    def claim_source(
        self, key: str, fields: dict[str, str], folder: str, *, adopt: bool
    ) -> dict[str, str]:
        """`lua/claim_source.lua`: record `key` as the town's source if none is (or in place of
        another with `adopt`), note `folder` if it is that source; the record afterwards."""
        flat = self._run(
            "claim_source", key, json.dumps(fields), folder, "adopt" if adopt else "claim"
        )
        return dict(zip(flat[::2], flat[1::2], strict=True))

    # -- events ---------------------------------------------------------------------------
    def last_event_id(self) -> str:
        """The id of the newest event ("0-0" when there is none): a cursor for `events_since`."""
        last = self.client.xrevrange(self.keys.events, "+", "-", count=1)
        return str(last[0][0]) if last else "0-0"

    def events_since(
        self, last_id: str = "-", count: int = 1000, block_ms: int | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        """Events after `last_id` (exclusive), oldest first; with `block_ms`, wait for new ones."""
        if block_ms is None:
            start = "-" if last_id == "-" else f"({last_id}"
            return [(i, f) for i, f in self.client.xrange(self.keys.events, start, "+", count)]
        got = self.blocking.xread({self.keys.events: last_id}, count=count, block=block_ms)
        return [(i, f) for _, entries in got for i, f in entries] if got else []


@dataclass
class PendingCheck:
    """One `lua/clean.lua` check in flight (`TownOps.clean_check_sent`)."""

    fingerprint: str
    conn: Any  # its connection until answered or done
    answer: tuple[bool, str] | None = None
