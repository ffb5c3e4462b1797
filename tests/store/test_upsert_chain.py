"""An apply's batches of task records, two in flight (`TaskOps.upsert_batches`): each runs only
after the one before it ran whole (lua/upsert_tasks.lua `chain`), on fakeredis with Lua."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from reconciler.errors import RedisFailed
from reconciler.store.client import Store
from reconciler.store.tasks import _upsert_args
from tests.redis_fixtures import flush_town


@pytest.fixture
def ops(fake_store: Store) -> Store:
    return fake_store


def rec(tid: str, deps: tuple[str, ...] = (), order: float = 0.0) -> dict[str, object]:
    made: dict[str, object] = {
        "mode": "upsert",
        "id": tid,
        "spec": json.dumps({"id": tid, "description": f"do {tid}"}),
        "hash": "h",
        "target": "dev",
        "order": order,
        "directive": "pending",
    }
    if deps:
        made["deps"] = list(deps)
    return made


def run(ops: Store, records: list[dict[str, object]], chain: str) -> int:
    return int(ops._run("upsert_tasks", 1, *_upsert_args(records, chain)))


def exists(ops: Store, tid: str) -> bool:
    return bool(ops.client.exists(ops.keys.task(tid)))


def test_a_batch_runs_only_after_the_one_before_it_in_its_chain(ops: Store) -> None:
    with pytest.raises(redis.ResponseError, match="TTCHAIN"):
        run(ops, [rec("b")], "tok:1")  # its batch 0 never ran
    assert not exists(ops, "b")
    assert run(ops, [rec("a")], "tok:0") == 1
    with pytest.raises(redis.ResponseError, match="TTCHAIN"):
        run(ops, [rec("c")], "tok:2")  # batch 1 of the chain did not run
    with pytest.raises(redis.ResponseError, match="TTCHAIN"):
        run(ops, [rec("c")], "other:1")  # another apply's chain
    assert not exists(ops, "c")
    assert run(ops, [rec("b", deps=("a",))], "tok:1") == 1
    assert run(ops, [rec("c", deps=("b",))], "tok:2") == 1
    assert run(ops, [rec("d")], "") == 1  # a call on its own (a verb's) is in no chain
    assert all(exists(ops, t) for t in "abcd")


class Logged:
    """A connection that logs each call sent and each reply read, in order."""

    def __init__(self, conn: Any, log: list[str]) -> None:
        self.conn, self.log = conn, log

    def send_command(self, *args: Any, **options: Any) -> None:
        self.log.append(str(args[0]))
        self.conn.send_command(*args, **options)

    def read_response(self) -> Any:
        self.log.append("read")
        return self.conn.read_response()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def logged(ops: Store, log: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    pool = ops.client.connection_pool
    real = pool.get_connection
    monkeypatch.setattr(pool, "get_connection", lambda *a: Logged(real(*a), log))
    monkeypatch.setattr(pool, "release", lambda conn: None)


def test_the_next_batch_is_sent_before_the_last_reply_is_read(
    ops: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    log: list[str] = []
    logged(ops, log, monkeypatch)
    batches = [[rec("a")], [rec("b", deps=("a",))], [rec("c", deps=("b",)), rec("d")]]
    assert ops.upsert_batches(iter(batches), 1) == 4
    # (after loading the script) three calls, the next one sent before each reply is read
    assert log[2:] == ["EVALSHA", "EVALSHA", "read", "EVALSHA", "read", "read", "HDEL", "read"]
    assert ops.client.hget(ops.keys.meta, "upsert_chain") is None  # (gone with the apply)
    assert ops.client.hget(ops.keys.task("c"), "state") == "blocked"
    assert ops.client.hget(ops.keys.task("a"), "state") == "ready"


def test_a_batch_that_fails_midway_stops_the_one_sent_after_it(
    ops: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch 0 fails at its second record (no target: the script errs after writing the first,
    which Redis keeps); batch 1, already sent, creates nothing: its task would wait for one
    that batch 0 never wrote, and would have been made upstream_failed for it."""
    log: list[str] = []
    logged(ops, log, monkeypatch)
    broken = {k: v for k, v in rec("x").items() if k != "target"}
    batches = [[rec("a"), broken], [rec("y", deps=("x",))]]
    with pytest.raises(RedisFailed):
        ops.upsert_batches(iter(batches), 1)
    # The second reply is left unread (its connection closed): that batch refused to run.
    assert log[2:] == ["EVALSHA", "EVALSHA", "read"]
    assert exists(ops, "a") and not exists(ops, "y")
    assert ops.client.hget(ops.keys.meta, "upsert_chain") is None


@pytest.mark.parametrize("lean", [False, True])
def test_a_health_check_never_takes_a_batch_reply_in_flight(
    server_url: str, town_name: str, lean: bool
) -> None:
    """With `health_check_interval` in the URL (redis-py's, which the lean client leaves to
    it), a send after the interval would PING and read the reply of the batch in flight as
    its own: the batches are sent without that check. Real servers (Valkey, the system's)."""
    sep = "&" if "?" in server_url else "?"
    store = Store.open(f"{server_url}{sep}health_check_interval=1", town_name, lean=lean)

    def batches() -> Iterator[list[dict[str, object]]]:
        yield [rec("a")]
        time.sleep(1.2)  # past the interval since the last reply read
        yield [rec("b", deps=("a",))]
        yield [rec("c", deps=("b",))]

    try:
        assert store.upsert_batches(batches(), 1) == 3
        states = [store.client.hget(store.keys.task(t), "state") for t in "abc"]
        assert states == ["ready", "blocked", "blocked"]
        assert store.client.hget(store.keys.meta, "upsert_chain") is None
    finally:
        flush_town(store.client, town_name)
        store.close()
