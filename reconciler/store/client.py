"""The town's Redis connection: which server (TT_REDIS_URL, town.toml, the embedded one) and how.

The only module that imports redis, and only inside functions (the import costs 120+ ms, and
`tt --help` and file-only commands must not pay it); `tt apply` asks for a `lean` store, whose
client (`leanclient`, over `wire`) needs no redis-py for what an apply runs. An unreachable
server becomes one `RedisUnavailable` line naming the password-masked URL and the cause, never
a traceback, whichever client met it.
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .. import server
from ..errors import RedisFailed, RedisUnavailable, TtError, mask_url
from ..town import TownPaths
from .agentrecords import AgentOps
from .coordination import TownOps
from .keys import Keys
from .limits import LimitOps
from .mail import MailOps
from .nodes import NodeOps
from .notifications import NotifyOps
from .revisions import RevisionOps
from .scripts import FENCED_REPLY, ErrorTypes, fenced
from .suspension import SuspendOps
from .tasks import TaskOps
from .tombstones import TombstoneOps
from .turn import TurnOps
from .url import EMBEDDED, ENV_URL, configured
from .workproducts import WorkOps

__all__ = ["ENV_URL", "Store", "configured", "connect", "is_embedded", "translate"]

CONNECT_TIMEOUT = 2.0
PROBE_TIMEOUT = 2.0  # connect() answers within ~3 s even when the server hangs
COMMAND_TIMEOUT = 10.0
RETRIES = 3  # reconnects after a dropped connection (a restarted server), not after timeouts


def is_embedded(redis_setting: str, paths: TownPaths) -> bool:
    """Whether this process uses the town's own server (also when an agent was handed its URL)."""
    value = configured(redis_setting)
    return value == EMBEDDED or value == server.url(paths)


def connect(redis_setting: str, paths: TownPaths, town: str, *, lean: bool = False) -> Store:
    """The town's `Store`, checked to answer; raises `RedisUnavailable` within ~3 s otherwise."""
    value = configured(redis_setting)
    if value == EMBEDDED:
        # ensure_running has just seen it answer PING: no second probe.
        return Store.open(server.ensure_running(paths), town, probe=False, lean=lean)
    return Store.open(value, town, lean=lean)


class Store(
    TaskOps,
    TombstoneOps,
    TurnOps,
    AgentOps,
    MailOps,
    TownOps,
    WorkOps,
    RevisionOps,
    SuspendOps,
    LimitOps,
    NotifyOps,
    NodeOps,
):
    """One town's view of Redis: the clients, its `Keys`, and (mixed in) the operations on
    tasks, agents' turns, agents, mail and the town's shared records.

    `client` runs commands (short timeouts); `blocking` serves BLPOP-style waits, which must not
    time out on the socket before the server's own timeout.
    """

    def __init__(
        self, client: Any, town: str, url: str, blocking: Any = None, *, cluster: bool = False
    ) -> None:
        self.client = client
        self.blocking = client if blocking is None else blocking
        self.keys = Keys(town)
        self.town = town
        self.url = url
        self.cluster = cluster
        self._scripts: dict[str, Any] = {}
        if "reconciler.store.leanclient" in sys.modules:
            from . import leanclient, wire

            if isinstance(client, leanclient.Client):
                self.errors = ErrorTypes(wire.WatchFailed, wire.ReplyError, wire.NoScript)
                return
        import redis  # a redis-py client exists: redis is imported already

        self.errors = ErrorTypes(
            watch=redis.WatchError,
            response=redis.ResponseError,
            no_script=redis.exceptions.NoScriptError,
        )

    @classmethod
    def open(cls, url: str, town: str, *, probe: bool = True, lean: bool = False) -> Store:
        """Clients for `url` (RESP2, decoded strings); with `probe`, check it answers first.
        `lean`: the lean client where it can serve `url` (redis:// and unix://, hiredis).
        The probe also tells a node of a Redis Cluster: its clients are then redis-py's
        cluster clients, which follow the town's slot (MOVED, ASK) from node to node."""
        if probe and _probe(url, lean):
            with _unavailable(url):
                return cls(
                    _cluster(url, COMMAND_TIMEOUT), town, url, _cluster(url, None), cluster=True
                )
        if lean:
            store = _open_lean(url, town)
            if store is not None:
                return store
        client = _redis_py(url, COMMAND_TIMEOUT, RETRIES)
        return cls(client, town, url, _redis_py(url, None, RETRIES))

    @classmethod
    def from_client(cls, client: Any, town: str, url: str = "fake://") -> Store:
        """A store over an existing client (fakeredis in unit tests)."""
        return cls(client, town, url)

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def ping(self) -> bool:
        return bool(self.client.ping())

    def server_info(self) -> dict[str, Any]:
        """INFO's default sections as redis-py parses them (versions, memory, clients...); on
        a cluster, those of the node that holds the town's slot."""
        if self.cluster:
            node = self.client.get_node_from_key(self.keys.meta)
            info: dict[str, Any] = self.client.info(target_nodes=node)
            return info
        info = self.client.info()
        return info

    def close(self) -> None:
        if self._lane is not None:
            self._lane.drop()
        self.client.close()
        if self.blocking is not self.client:
            self.blocking.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_lean(url: str, town: str) -> Store | None:
    """`Store.open` on lean clients, each passing what it does not serve to a redis-py client
    made on first use; None where they cannot serve `url` (redis-py then connects)."""
    client = functools.partial(_lean, url, retries=RETRIES, fallback=True)
    first = client(COMMAND_TIMEOUT)
    if first is None:
        return None
    return Store(first, town, url, client(None))


def _lean(url: str, timeout: float | None, retries: int, fallback: bool) -> Any:
    """A lean client for `url`, or None where it cannot serve it (no hiredis, rediss://)."""
    try:
        from . import leanclient, wire
    except ImportError:  # no hiredis
        return None
    spec = wire.parse_url(url)
    if spec is None:
        return None
    later = functools.partial(_redis_py, url, timeout, retries) if fallback else None
    return leanclient.Client(
        spec, timeout=timeout, connect_timeout=CONNECT_TIMEOUT, retries=retries, fallback=later
    )


def _probe(url: str, lean: bool) -> bool:
    """Check that `url` answers (`RedisUnavailable` within ~3 s otherwise) and say whether it
    is a node of a Redis Cluster: `INFO cluster`, the probe's one round trip. Its own client:
    no retries and a short read timeout, so a dead or hung server is reported in seconds."""
    check = _lean(url, PROBE_TIMEOUT, 0, False) if lean else None
    if check is None:
        check = _redis_py(url, PROBE_TIMEOUT, 0)
    try:
        with _unavailable(url):
            try:
                reply = check.execute_command("INFO", "cluster")
            except Exception as e:
                if _kind(e) != "reply" or not str(e).startswith(("NOPERM", "ERR unknown")):
                    raise
                check.ping()  # a user that may not run INFO: a server it may use all the same
                return False
    finally:
        check.close()
    if isinstance(reply, dict):  # redis-py parses INFO; the lean client hands the text over
        return str(reply.get("cluster_enabled", "")) == "1"
    return "cluster_enabled:1" in str(reply)


def _cluster(url: str, timeout: float | None) -> Any:
    """redis-py's cluster client for `url`, a node of the cluster (RESP2, decoded strings): it
    learns the slots from that node and follows MOVED and ASK; a node that does not answer is
    retried RETRIES times (a failover), then `RedisUnavailable` names it."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    if not url.startswith(("redis://", "rediss://")):
        raise TtError(
            f"{mask_url(url)} is a node of a Redis Cluster: a cluster is reached over TCP",
            hint="use redis://HOST:PORT (or rediss://) of any of its nodes",
        )
    if not hasattr(redis.cluster, "TransactionStrategy"):  # MULTI/EXEC and WATCH on a cluster
        raise TtError(
            f"{mask_url(url)} is a Redis Cluster and redis-py {redis.__version__} has no "
            "transactions on a cluster",
            hint="upgrade redis-py (pip install -U redis)",
        )
    try:
        return redis.RedisCluster.from_url(
            url,
            protocol=2,
            decode_responses=True,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=timeout,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), RETRIES),
        )
    except ValueError as e:
        raise TtError(f"invalid Redis URL {mask_url(url)}: {e}") from None


def _redis_py(url: str, timeout: float | None, retries: int) -> Any:
    """A redis-py client for `url` (RESP2, decoded strings), reconnecting `retries` times."""
    import redis
    from redis.backoff import ExponentialBackoff, NoBackoff
    from redis.retry import Retry

    backoff = ExponentialBackoff(cap=1.0, base=0.05) if retries else NoBackoff()
    try:
        return redis.Redis.from_url(
            url,
            protocol=2,  # redis-py 8 defaults to RESP3, whose reply shapes differ
            decode_responses=True,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=timeout,
            retry=Retry(backoff, retries, supported_errors=(redis.ConnectionError,)),
        )
    except ValueError as e:  # redis-py's verdict on a malformed URL
        raise TtError(f"invalid Redis URL {mask_url(url)}: {e}") from None


@contextmanager
def _unavailable(url: str) -> Iterator[None]:
    """Turn redis-py's errors into the project's own (`translate`)."""
    try:
        yield
    except TtError:
        raise
    except Exception as e:
        error = translate(e, url)
        if error is None:
            raise
        raise error from e


def translate(error: BaseException, url: str) -> TtError | None:
    """The one place Redis clients' errors become the project's own: `RedisUnavailable` for a
    server that cannot be reached (refused, dropped, timed out, loading its data: wait it out),
    `LeaderFenced` for lib.lua's refusal of a stale leader epoch, `RedisFailed` for any other
    answer that is an error. None for what is not a Redis client's (redis-py's or the lean
    one's). Checked without importing a client first: one never imported raised nothing."""
    kind = _kind(error)
    if kind is None:
        return None
    where = mask_url(url)
    if kind == "auth":
        return RedisUnavailable(
            f"cannot reach Redis at {where}: authentication failed ({error})",
            hint=f"check the user and password in the URL ({ENV_URL} or [town] redis)",
        )
    if kind == "timeout":
        return RedisUnavailable(
            f"cannot reach Redis at {where}: no answer (timed out)",
            hint="is the host reachable and the server healthy?",
        )
    # Every node of a cluster down: redis-py's topology refresh names the last node it tried.
    all_down = kind == "cluster" and _NODE.search(str(error)) and "refused" in str(error)
    if all_down:
        kind = "connection"
    if kind == "cluster":  # no node answers for the slot, or the slot moved and moved on
        return RedisUnavailable(
            f"cannot use the Redis Cluster at {where}: {error}",
            hint="are its nodes running and every slot served (CLUSTER INFO: cluster_state:ok)?",
        )
    if kind == "connection":  # a server loading its data (LOADING) too
        node = _NODE.search(str(error))  # a cluster's node other than the URL's
        if node and node[1] not in url:
            where += f" (node {node[1]})"
        cause = "Connection refused" if all_down else _cause(error)
        return RedisUnavailable(
            f"cannot reach Redis at {where}: {cause}",
            hint=f"is the server running? (the URL comes from {ENV_URL} or [town] redis)",
        )
    if kind == "reply" and _MOVING in str(error).lower():  # lib.lua's probe: no write yet
        why = f"the town's slot is moving between nodes ({error})"
        hint = "a reshard under way: it passes; try again"
        return RedisUnavailable(f"cannot use the Redis Cluster at {where}: {why}", hint=hint)
    if str(error).startswith(FENCED_REPLY):
        return fenced(str(error)[len(FENCED_REPLY) :].strip())
    if kind == "watch":
        return fenced("the leader epoch moved under its writes")
    # A reply that is not Redis (another service on the port) or a refusal such as NOPERM.
    return RedisFailed(
        f"cannot use Redis at {where}: {error}",
        hint="is it a Redis server, and may this user run the command?",
    )


_NODE = re.compile(r"connecting to ([^\s/]+:\d+)")  # redis-py's wording: "connecting to H:P."
_MOVING = "attempted to access a non local key"  # a script's, its slot migrating away


def _kind(error: BaseException) -> str | None:
    """auth, timeout, connection, cluster, watch or reply: what a client's error says; None when
    it is not a Redis client's."""
    if "reconciler.store.wire" in sys.modules:
        from . import wire

        if isinstance(error, wire.WireError):
            for kind, types in (
                ("auth", wire.AuthFailed),
                ("timeout", wire.TimedOut),
                ("connection", wire.ConnectionFailed),
                ("watch", wire.WatchFailed),
            ):
                if isinstance(error, types):
                    return kind
            return "reply"
    if "redis" not in sys.modules:
        return None
    import redis

    cluster = (
        redis.exceptions.RedisClusterException,  # not a RedisError: no node reached at all
        redis.exceptions.ClusterError,  # CLUSTERDOWN, MASTERDOWN, out of redirects
        redis.exceptions.AskError,  # MOVED too: a redirect the client could not follow
        redis.exceptions.TryAgainError,  # a multi-key command during a slot's migration
    )
    if isinstance(error, cluster):
        return "cluster"
    if not isinstance(error, redis.RedisError):
        return None
    for kind, rtypes in (
        ("auth", redis.AuthenticationError),
        ("timeout", redis.TimeoutError),
        ("connection", redis.ConnectionError),  # BusyLoadingError too
        ("watch", redis.WatchError),
    ):
        if isinstance(error, rtypes):
            return kind
    return "reply"


def _cause(e: BaseException) -> str:
    """The OS reason (`Connection refused`) rather than redis-py's wording around it."""
    inner = e.__context__
    while inner is not None:
        if isinstance(inner, OSError) and inner.strerror:
            return inner.strerror
        inner = inner.__context__
    return str(e)


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A public operation of `Store` that raises only the project's errors (`translate`)."""

    @functools.wraps(fn)
    def operation(self: Store, *args: Any, **kwargs: Any) -> Any:
        with _unavailable(self.url):
            return fn(self, *args, **kwargs)

    return operation


# Every public operation mixed into Store goes through the door: above the store, nothing
# catches redis-py's errors or `Exception` to sort them.
for _name in dir(Store):
    _fn = getattr(Store, _name)
    if not _name.startswith("_") and inspect.isfunction(_fn):
        setattr(Store, _name, _guard(_fn))
