"""The lean client (`store/leanclient.py` over `store/wire.py`) against real Valkey and Redis: each
command, pipeline and script gives what redis-py gives, its errors become the same messages, what
it does not serve is passed on to redis-py, and `tt apply` runs without importing redis-py."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import LeaderFenced, RedisFailed, RedisUnavailable
from reconciler.store import leanclient, wire
from reconciler.store.client import Store, connect, mask_url, translate
from reconciler.town import TownPaths
from tests.redis_fixtures import (  # noqa: F401
    flush_town,
    redis_url,
    server_url,
    system_redis_url,
    town_name,
    valkey_url,
)
from tests.towngen import tasks_toml, town_toml

pytestmark = pytest.mark.integration


@pytest.fixture
def pair(server_url: str, town_name: str) -> Iterator[tuple[Store, Store]]:  # noqa: F811
    """(lean, redis-py) stores of one town on one server; the town's keys deleted after."""
    lean, full = Store.open(server_url, town_name, lean=True), Store.open(server_url, town_name)
    try:
        yield lean, full
    finally:
        flush_town(full.client, town_name)
        lean.close()
        full.close()


def test_parse_url_takes_plain_urls_and_leaves_the_rest_to_redis_py() -> None:
    assert wire.parse_url("unix:///tmp/x/redis.sock") == wire.Spec(path="/tmp/x/redis.sock")
    assert wire.parse_url("unix:///s.sock?db=3&password=p%40w") == wire.Spec(
        path="/s.sock", db=3, password="p@w"
    )
    assert wire.parse_url("redis://al%3Ai:p%2Fw@Example.org/9") == wire.Spec(
        None, "example.org", 6379, 9, "al:i", "p/w"
    )
    assert wire.parse_url("redis://:pw@127.0.0.1:7000") == wire.Spec(
        None, "127.0.0.1", 7000, 0, None, "pw"
    )
    for other in (
        "rediss://:pw@h:6380/0",  # TLS: redis-py
        "redis://h:6379/0?socket_timeout=3",  # options the lean client does not know
        "redis://h:notaport/0",  # malformed: redis-py words the error
        "redis://h/zero",
        "unix://host/path.sock",
        "embedded",
    ):
        assert wire.parse_url(other) is None, other


def test_store_open_lean_uses_redis_py_where_the_lean_client_cannot(
    valkey_url: str,  # noqa: F811
) -> None:
    with Store.open(valkey_url, "t", lean=True) as store:
        assert isinstance(store.client, leanclient.Client)
    with pytest.raises(Exception, match="invalid Redis URL redis://:\\*\\*\\*\\*@h"):
        Store.open("redis://:secret@h:notaport/0", "t", lean=True)


def test_commands_reply_as_redis_py_does(pair: tuple[Store, Store]) -> None:
    lean, full = pair
    k = lean.keys
    results = []
    for store, tag in ((lean, "a"), (full, "b")):
        c = store.client
        key = k.prefix + tag
        results.append(
            [
                c.set(key + ":s", "v", px=60000),
                c.set(key + ":s", "w", nx=True),
                c.get(key + ":s"),
                c.get(key + ":missing"),
                c.mget([key + ":s", key + ":missing"]),
                c.hset(key + ":h", mapping={"a": "1", "b": 2, "c": 1.5}),
                c.hset(key + ":h", "d", "é"),
                c.hsetnx(key + ":h", "a", "x"),
                c.hget(key + ":h", "d"),
                c.hmget(key + ":h", "a", "z"),
                c.hmget(key + ":h", ["b", "c"]),
                c.hgetall(key + ":h"),
                c.hgetall(key + ":none"),
                c.sadd(key + ":set", "x", "y"),
                c.srem(key + ":set", "y"),
                c.smembers(key + ":set"),
                c.rpush(key + ":l", "1", "2", "3"),
                c.lrem(key + ":l", 0, "2"),
                c.ltrim(key + ":l", 0, 5),
                c.lrange(key + ":l", 0, -1),
                c.execute_command("ZADD", key + ":z", 2, "two", 1.5, "one"),
                c.zrange(key + ":z", 0, -1),
                c.zrange(key + ":z", 0, 0, withscores=True),
                c.zcard(key + ":z"),
                c.zcard(key + ":missing"),
                c.execute_command("SORT", key + ":l", "BY", "nosort", "GET", "#"),
                len(c.xadd(key + ":e", {"type": "x"}, maxlen=10, approximate=True)) > 2,
                c.delete(key + ":s", key + ":missing"),
                c.script_load("return 1"),
                c.register_script("return {KEYS[1], ARGV[1]}")(keys=["k"], args=[7]),
                c.ping(),
            ]
        )
    assert results[0] == results[1]


def test_pipelines_reply_as_redis_py_does(pair: tuple[Store, Store]) -> None:
    lean, full = pair
    out = []
    for store, tag in ((lean, "a"), (full, "b")):
        key = store.keys.prefix + tag
        for transaction in (True, False):
            with store.client.pipeline(transaction=transaction) as pipe:
                pipe.sadd(key + ":s", "m").hset(key + ":h", mapping={"f": "1"})
                pipe.hsetnx(key + ":h", "f", "2").smembers(key + ":s").hgetall(key + ":h")
                pipe.lrange(key + ":none", 0, -1).get(key + ":none").delete(key + ":s")
                out.append(pipe.execute())
    assert out[:2] == out[2:]
    assert out[0] == [1, 1, 0, {"m"}, {"f": "1"}, [], None, 1]


def test_an_error_reply_in_a_pipeline_is_raised_and_the_client_goes_on(
    pair: tuple[Store, Store],
) -> None:
    lean, _ = pair
    key = lean.keys.prefix + "str"
    lean.client.set(key, "x")
    for transaction in (True, False):
        pipe = lean.client.pipeline(transaction=transaction)
        pipe.get(key).hget(key, "f")
        with pytest.raises(wire.ReplyError, match="WRONGTYPE"):
            pipe.execute()
        assert lean.client.get(key) == "x"
    with pytest.raises(RedisFailed, match="WRONGTYPE"):
        lean.task_ids() if lean.client.set(lean.keys.tasks, "not a zset") else None


def test_writes_of_a_deposed_leader_are_fenced(pair: tuple[Store, Store]) -> None:
    lean, full = pair
    full.client.set(lean.keys.leader_epoch, "1")
    lean.fence = "e:1"
    lean.write_meta({"x": "1"})  # still the leader: written
    with pytest.raises(LeaderFenced), lean._writes() as pipe:
        full.client.set(lean.keys.leader_epoch, "2")  # a newer leader, between WATCH and EXEC
        pipe.hset(lean.keys.meta, mapping={"x": "2"})
    assert full.client.hget(lean.keys.meta, "x") == "1"
    with pytest.raises(LeaderFenced):
        lean.write_meta({"x": "3"})


def test_a_script_the_server_lost_is_loaded_again(valkey_url: str, town_name: str) -> None:  # noqa: F811
    with Store.open(valkey_url, town_name, lean=True) as store:
        assert store.unlock("nobody") is False
        store.client.execute_command("SCRIPT", "FLUSH")  # the embedded server: ours alone
        assert store.unlock("nobody") is False


def test_other_methods_pass_on_to_redis_py(pair: tuple[Store, Store]) -> None:
    lean, full = pair
    lean.event("test", n="1")
    assert [f["n"] for _, f in lean.events_since()] == ["1"]  # XRANGE: redis-py's
    assert lean.server_info()["redis_version"]  # INFO, parsed by redis-py
    assert lean.pop_work([lean.keys.prefix + "q"], 0.05) is None  # BLPOP on `blocking`
    assert lean.client.xrange(lean.keys.events) == full.client.xrange(full.keys.events)


def test_a_full_apply_on_the_lean_client_stores_what_redis_py_stores(
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    from reconciler.control.apply import ApplyOptions, apply
    from reconciler.control.session import Session

    stored = []
    for lean in (True, False):
        name = f"lean-{int(lean)}-{tmp_path.name[-8:]}".lower().replace("_", "-")
        root = tmp_path / name
        root.mkdir()
        (root / "town.toml").write_text(town_toml(name).replace("embedded", redis_url))
        (root / "tasks.toml").write_text(tasks_toml(60, backlog=3))
        session = Session.find(str(root), lean=lean)
        try:
            first = apply(session, ApplyOptions(start_agents=False)).plan.summary()
            assert first == "61 to create, 0 to change, 0 to delete"
            assert apply(session, ApplyOptions(start_agents=False)).plan.is_empty
            keys = session.store.keys
            tasks = [
                {k: v for k, v in session.store.task_hash(t).items() if not k.endswith("_at")}
                for t in session.store.task_ids()
            ]
            queue = session.store.client.lrange(keys.queue("dev"), 0, -1)
            stored.append((tasks, queue))
        finally:
            flush_town(Store.open(redis_url, name).client, name)
            session.close()
    assert stored[0] == stored[1]


def test_tt_apply_does_not_import_redis_py(valkey_url: str, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "town.toml").write_text(town_toml("noimport").replace("embedded", valkey_url))
    # More tasks than one tombstone read takes (2,000): a first apply that large asks whether
    # the town has any tombstone (ZCARD) instead of sending the ids.
    (tmp_path / "tasks.toml").write_text(tasks_toml(2100))
    code = (
        "import sys\n"
        "from cli.main import main\n"
        f"sys.argv = ['tt', 'apply', '--town', {str(tmp_path)!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('redis imported' if 'redis' in sys.modules else 'no redis')\n"
    )
    try:
        for _ in range(2):  # a first apply, then the no-op one
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip().endswith("no redis"), done.stdout[-300:]
    finally:
        with Store.open(valkey_url, "noimport") as store:
            flush_town(store.client, "noimport")


# -- a server away: the same one line as redis-py's -------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_closed_port_or_socket_is_one_masked_line(tmp_path: Path) -> None:
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(RedisUnavailable) as err:
        Store.open(url, "t", lean=True)
    assert str(err.value) == f"cannot reach Redis at {mask_url(url)}: Connection refused"
    unix = f"unix://{tmp_path}/gone.sock?password=secret"
    with pytest.raises(RedisUnavailable) as err:
        Store.open(unix, "t", lean=True)
    assert str(err.value) == f"cannot reach Redis at {mask_url(unix)}: No such file or directory"
    assert "secret" not in str(err.value)


def test_a_silent_server_times_out_within_3_s(tmp_path: Path) -> None:
    with socket.socket() as listener:  # accepts connections (kernel backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        started = time.monotonic()
        with pytest.raises(RedisUnavailable, match="no answer \\(timed out\\)"):
            connect(
                f"redis://127.0.0.1:{listener.getsockname()[1]}/0",
                TownPaths(tmp_path),
                "t",
                lean=True,
            )
        assert time.monotonic() - started < 3.5


def test_a_service_that_is_not_redis_is_redis_failed() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)

        def answer() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(100)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                time.sleep(0.5)

        thread = threading.Thread(target=answer)
        thread.start()
        with pytest.raises(RedisFailed, match=r"cannot use Redis at .*Protocol error"):
            Store.open(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", "t", lean=True)
        thread.join()


def test_a_server_gone_mid_session_is_redis_unavailable(tmp_path: Path) -> None:
    from reconciler import server

    paths = TownPaths(tmp_path)
    url = server.ensure_running(paths)
    store = Store.open(url, "t", lean=True)
    try:
        assert store.ping()
        server.stop(paths)
        with pytest.raises(RedisUnavailable, match="cannot reach Redis at unix://"):
            store.task_ids()
    finally:
        store.close()
        server.stop(paths)


def test_a_restarted_server_is_reconnected_to(tmp_path: Path) -> None:
    from reconciler import server

    paths = TownPaths(tmp_path)
    url = server.ensure_running(paths)
    store = Store.open(url, "t", lean=True)
    try:
        store.client.set(store.keys.meta, "kept")  # a pooled connection to the first server
        server.stop(paths)
        assert server.ensure_running(paths) == url
        assert store.client.get(store.keys.meta) == "kept"  # AOF: the data survived
    finally:
        store.close()
        server.stop(paths)


def test_a_refused_connection_is_tried_again_as_redis_py_does(
    valkey_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = Store.open(valkey_url, "t", lean=True)
    connect = leanclient.Pool.get_connection
    tries: list[int] = []

    def flaky(pool: leanclient.Pool) -> wire.Connection:
        tries.append(1)
        if len(tries) < 3:  # a server restarting: refused twice
            raise wire.ConnectionFailed("Error 111 connecting to x. Connection refused.")
        return connect(pool)

    monkeypatch.setattr(leanclient.Pool, "get_connection", flaky)
    try:
        assert store.ping() is True
        assert len(tries) == 3
        tries.clear()
        store.client.retries = 1  # fewer retries than refusals: the error is the last one's
        with pytest.raises(RedisUnavailable, match="Connection refused"):
            store.ping()
    finally:
        store.close()


def test_lean_errors_translate_like_redis_pys() -> None:
    url = "redis://:secret@h:1/0"
    cases = [
        (wire.error("WRONGPASS invalid username-password pair"), RedisUnavailable, "authentic"),
        (wire.error("NOAUTH Authentication required."), RedisUnavailable, "authentication"),
        (wire.error("LOADING Redis is loading the dataset"), RedisUnavailable, "cannot reach"),
        (wire.TimedOut("Timeout reading from socket"), RedisUnavailable, "no answer"),
        (wire.error("TTFENCED e:3 is no longer the leader epoch"), LeaderFenced, "newer leader"),
        (wire.WatchFailed("moved"), LeaderFenced, "newer leader"),
        (wire.error("NOPERM no"), RedisFailed, "cannot use Redis at redis://:****@h:1/0: no"),
        (wire.error("ERR unknown command"), RedisFailed, ": unknown command"),
        (wire.error("WRONGTYPE Operation"), RedisFailed, ": WRONGTYPE Operation"),
    ]
    for error, kind, words in cases:
        got = translate(error, url)
        assert type(got) is kind and words in got.message and "secret" not in got.message
    assert isinstance(wire.error("NOSCRIPT No matching script"), wire.NoScript)
