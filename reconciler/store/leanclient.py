"""A lean Redis client for `tt apply`: redis-py's `Redis` API (decode_responses, protocol 2)
for the commands, pipelines, scripts and connections the apply path runs, over `wire`.

It exists because importing redis-py costs ~120 ms, an eighth of applying 10,000 tasks. Any
other redis-py method is passed on to a redis-py client that `client` (the one door to Redis,
the only user of this module) makes on first use.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .wire import (
    Connection,
    ConnectionFailed,
    NoScript,
    Pool,
    Raw,
    ReplyError,
    Spec,
    WatchFailed,
    WireError,
    error,
    pack,
)

Callback = Callable[[Any], Any] | None


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _scored(flat: list[str]) -> list[tuple[str, float]]:
    return [(m, float(s)) for m, s in zip(flat[::2], flat[1::2], strict=True)]


def _ok(reply: Any) -> bool | None:
    return True if reply == "OK" else None


class Commands:
    """The commands, as redis-py's methods of the same names; `_command` runs or queues one."""

    def _command(self, callback: Callback, *args: object) -> Any:
        raise NotImplementedError

    def execute_command(self, *args: object) -> Any:
        return self._command(None, *args)

    def get(self, name: str) -> Any:
        return self._command(None, "GET", name)

    def set(
        self, name: str, value: object, *, ex: int | None = None, px: int | None = None,
        nx: bool = False, xx: bool = False,
    ) -> Any:  # fmt: skip
        args: list[object] = ["SET", name, value]
        args += ["EX", ex] if ex is not None else []
        args += ["PX", px] if px is not None else []
        args += ["NX"] if nx else ["XX"] if xx else []
        return self._command(_ok, *args)

    def mget(self, keys: Sequence[str], *more: str) -> Any:
        return self._command(None, "MGET", *keys, *more)

    def delete(self, *names: str) -> Any:
        return self._command(None, "DEL", *names)

    def hget(self, name: str, key: str) -> Any:
        return self._command(None, "HGET", name, key)

    def hmget(self, name: str, keys: Sequence[str] | str, *more: str) -> Any:
        keys = [keys] if isinstance(keys, str) else list(keys)
        return self._command(None, "HMGET", name, *keys, *more)

    def hgetall(self, name: str) -> Any:
        return self._command(_pairs, "HGETALL", name)

    def hset(
        self, name: str, key: str | None = None, value: object = None,
        mapping: Mapping[str, object] | None = None,
    ) -> Any:  # fmt: skip
        args: list[object] = [key, value] if key is not None else []
        for k, v in (mapping or {}).items():
            args += [k, v]
        return self._command(None, "HSET", name, *args)

    def hsetnx(self, name: str, key: str, value: object) -> Any:
        return self._command(None, "HSETNX", name, key, value)

    def sadd(self, name: str, *values: object) -> Any:
        return self._command(None, "SADD", name, *values)

    def srem(self, name: str, *values: object) -> Any:
        return self._command(None, "SREM", name, *values)

    def smembers(self, name: str) -> Any:
        return self._command(set, "SMEMBERS", name)

    def lpush(self, name: str, *values: object) -> Any:
        return self._command(None, "LPUSH", name, *values)

    def rpush(self, name: str, *values: object) -> Any:
        return self._command(None, "RPUSH", name, *values)

    def lrange(self, name: str, start: int, end: int) -> Any:
        return self._command(None, "LRANGE", name, start, end)

    def lrem(self, name: str, count: int, value: object) -> Any:
        return self._command(None, "LREM", name, count, value)

    def ltrim(self, name: str, start: int, end: int) -> Any:
        return self._command(_ok, "LTRIM", name, start, end)

    def zcard(self, name: str) -> Any:
        return self._command(None, "ZCARD", name)

    def zrange(self, name: str, start: int, end: int, *, withscores: bool = False) -> Any:
        if withscores:
            return self._command(_scored, "ZRANGE", name, start, end, "WITHSCORES")
        return self._command(None, "ZRANGE", name, start, end)

    def xadd(
        self, name: str, fields: Mapping[str, object], id: str = "*",
        maxlen: int | None = None, approximate: bool = True,
    ) -> Any:  # fmt: skip
        args: list[object] = ["XADD", name]
        if maxlen is not None:
            args += ["MAXLEN", "~", maxlen] if approximate else ["MAXLEN", maxlen]
        args.append(id)
        for k, v in fields.items():
            args += [k, v]
        return self._command(None, *args)

    def script_load(self, source: str) -> Any:
        return self._command(None, "SCRIPT", "LOAD", source)

    def ping(self) -> Any:
        return self._command(lambda r: r == "PONG", "PING")


class Client(Commands):
    """redis-py's `Redis` for the apply path; `fallback` makes the redis-py client that serves
    every other method (None: there is none, as for a probe)."""

    def __init__(
        self, spec: Spec, *, timeout: float | None, connect_timeout: float, retries: int,
        fallback: Callable[[], Any] | None,
    ) -> None:  # fmt: skip
        self.connection_pool = Pool(spec, timeout, connect_timeout)
        self.retries = retries
        self._fallback = fallback
        self._delegate: Any = None

    def _command(self, callback: Callback, *args: object) -> Any:
        packed = pack(args)
        for failures in range(self.retries + 1):
            conn: Connection | None = None
            try:
                conn = self.connection_pool.get_connection()  # connects when none is idle
                conn.send_packed(packed)
                reply = conn.read_response()
            except ConnectionFailed:  # refused, dropped, or a server loading its data
                if conn is not None:
                    conn.disconnect()
                if failures == self.retries:
                    raise
                time.sleep(min(1.0, 0.05 * 2 ** (failures + 1)))  # redis-py's backoff
                continue
            except ReplyError:  # the server answered: the connection is fine
                if conn is not None:
                    self.connection_pool.release(conn)
                raise
            except BaseException:
                if conn is not None:
                    conn.disconnect()  # interrupted mid-reply: not reused
                raise
            self.connection_pool.release(conn)
            return reply if callback is None else callback(reply)
        raise AssertionError("unreachable")

    def pipeline(self, transaction: bool = True) -> Pipeline:
        return Pipeline(self, transaction)

    def register_script(self, source: str) -> Script:
        return Script(self, source)

    def close(self) -> None:
        self.connection_pool.disconnect()
        if self._delegate is not None:
            self._delegate.close()

    def __getattr__(self, name: str) -> Any:
        make = self.__dict__.get("_fallback")
        if name.startswith("_") or make is None:
            raise AttributeError(name)
        if self._delegate is None:
            self._delegate = make()
        return getattr(self._delegate, name)


class Script:
    """redis-py's `Script`: EVALSHA, loading the source first on a server that lacks it."""

    def __init__(self, client: Client, source: str) -> None:
        self.client, self.source = client, source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def __call__(self, keys: Sequence[object] = (), args: Sequence[object] = ()) -> Any:
        command = ("EVALSHA", self.sha, len(keys), *keys, *args)
        try:
            return self.client.execute_command(*command)
        except NoScript:
            self.client.script_load(self.source)
            return self.client.execute_command(*command)


class Pipeline(Commands):
    """redis-py's `Pipeline`: commands queued and sent at once by `execute` (MULTI/EXEC with
    `transaction`); after `watch`, run one by one on its connection until `multi`."""

    def __init__(self, client: Client, transaction: bool) -> None:
        self.client, self.transaction = client, transaction
        self.queued: list[tuple[list[bytes], Callback]] = []
        self.conn: Connection | None = None
        self.watching = self.explicit_multi = False

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reset()

    def _command(self, callback: Callback, *args: object) -> Any:
        if self.watching and not self.explicit_multi:
            assert self.conn is not None
            reply = self.conn.call(*args)
            return reply if callback is None else callback(reply)
        self.queued.append((pack(args), callback))
        return self

    def watch(self, *names: str) -> None:
        if self.conn is None:
            self.conn = self.client.connection_pool.get_connection()
        self.conn.call("WATCH", *names)
        self.watching = True

    def multi(self) -> None:
        self.explicit_multi = True

    def execute(self) -> list[Any]:
        try:
            if not self.queued:
                return []
            for failures in range(self.client.retries + 1):
                try:
                    return self._send()
                except ConnectionFailed:
                    if self.conn is not None:
                        self.conn.disconnect()
                    self.conn = None
                    if self.watching or failures == self.client.retries:
                        raise
                    time.sleep(min(1.0, 0.05 * 2 ** (failures + 1)))
            raise AssertionError("unreachable")
        finally:
            self.reset()

    def _send(self) -> list[Any]:
        if self.conn is None:
            self.conn = self.client.connection_pool.get_connection()
        conn = self.conn
        chunks = [c for packed, _ in self.queued for c in packed]
        if self.transaction:  # MULTI's +OK and a +QUEUED each, then EXEC's replies
            chunks = [*pack(["MULTI"]), *chunks, *pack(["EXEC"])]
        conn.send_packed(chunks)
        count = len(self.queued) + 2 if self.transaction else len(self.queued)
        try:
            got = [conn.read_raw() for _ in range(count)]
        except BaseException:
            conn.disconnect()  # replies may be left unread: not reused
            raise
        replies = got
        if self.transaction:
            refused = [r for r in got[:-1] if isinstance(r, Raw)]
            if refused:  # EXECABORT: nothing ran; the first refusal says why
                raise error(str(refused[0]))
            replies = got[-1]
            if replies is None:
                raise WatchFailed("Watched variable changed.")
            if isinstance(replies, Raw):
                raise error(str(replies))
        for reply in replies:
            if isinstance(reply, Raw):
                raise error(str(reply))
        return [r if cb is None else cb(r) for r, (_, cb) in zip(replies, self.queued, strict=True)]

    def reset(self) -> None:
        self.queued = []
        conn, self.conn = self.conn, None
        if conn is not None:
            if self.watching and conn.sock is not None:
                try:
                    conn.call("UNWATCH")
                except WireError:
                    conn.disconnect()
            self.client.connection_pool.release(conn)
        self.watching = self.explicit_multi = False
