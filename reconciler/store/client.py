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
import os
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
from .notifications import NotifyOps
from .revisions import RevisionOps
from .scripts import FENCED_REPLY, ErrorTypes, fenced
from .suspension import SuspendOps
from .tasks import TaskOps
from .tombstones import TombstoneOps
from .turn import TurnOps
from .workproducts import WorkOps

ENV_URL = "TT_REDIS_URL"
EMBEDDED = "embedded"
SCHEMES = ("redis", "rediss", "unix")
CONNECT_TIMEOUT = 2.0
PROBE_TIMEOUT = 2.0  # connect() answers within ~3 s even when the server hangs
COMMAND_TIMEOUT = 10.0
RETRIES = 3  # reconnects after a dropped connection (a restarted server), not after timeouts


def configured(redis_setting: str) -> str:
    """What this process should use: `TT_REDIS_URL` if set, else the town's `redis` value."""
    value = os.environ.get(ENV_URL, "").strip() or redis_setting.strip()
    scheme, sep, _ = value.partition("://")
    if value != EMBEDDED and (not sep or scheme not in SCHEMES):
        source = ENV_URL if os.environ.get(ENV_URL, "").strip() else "[town] redis"
        raise TtError(
            f"{source} = {mask_url(value)!r} is neither 'embedded' nor a redis://, rediss:// "
            "or unix:// URL",
            hint="e.g. redis://:PASSWORD@HOST:6379/0, or 'embedded' for the town's own server",
        )
    return value


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
):
    """One town's view of Redis: the clients, its `Keys`, and (mixed in) the operations on
    tasks, agents' turns, agents, mail and the town's shared records.

    `client` runs commands (short timeouts); `blocking` serves BLPOP-style waits, which must not
    time out on the socket before the server's own timeout.
    """

    def __init__(self, client: Any, town: str, url: str, blocking: Any = None) -> None:
        self.client = client
        self.blocking = client if blocking is None else blocking
        self.keys = Keys(town)
        self.town = town
        self.url = url
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
        `lean`: the lean client where it can serve `url` (redis:// and unix://, hiredis)."""
        if lean:
            store = _open_lean(url, town, probe)
            if store is not None:
                return store
        client = _redis_py(url, COMMAND_TIMEOUT, RETRIES)
        blocking = _redis_py(url, None, RETRIES)
        if probe:
            # Its own client: no retries and a short read timeout, so a dead or hung server
            # is reported in seconds; the working clients keep their reconnect retries.
            check = _redis_py(url, PROBE_TIMEOUT, 0)
            try:
                with _unavailable(url):
                    check.ping()
            finally:
                check.close()
        return cls(client, town, url, blocking)

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
        """INFO's default sections as redis-py parses them (versions, memory, clients...)."""
        info: dict[str, Any] = self.client.info()
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


def _open_lean(url: str, town: str, probe: bool) -> Store | None:
    """`Store.open` on lean clients, each passing what it does not serve to a redis-py client
    made on first use; None where they cannot serve `url` (redis-py then connects)."""
    try:
        from . import leanclient, wire
    except ImportError:  # no hiredis
        return None
    spec = wire.parse_url(url)
    if spec is None:
        return None

    def client(timeout: float | None, retries: int, fallback: bool) -> leanclient.Client:
        later = functools.partial(_redis_py, url, timeout, retries) if fallback else None
        return leanclient.Client(
            spec, timeout=timeout, connect_timeout=CONNECT_TIMEOUT, retries=retries, fallback=later
        )

    if probe:
        check = client(PROBE_TIMEOUT, 0, False)
        try:
            with _unavailable(url):
                check.ping()
        finally:
            check.close()
    return Store(client(COMMAND_TIMEOUT, RETRIES, True), town, url, client(None, RETRIES, True))


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
    if kind == "connection":  # a server loading its data (LOADING) too
        return RedisUnavailable(
            f"cannot reach Redis at {where}: {_cause(error)}",
            hint=f"is the server running? (the URL comes from {ENV_URL} or [town] redis)",
        )
    if str(error).startswith(FENCED_REPLY):
        return fenced(str(error)[len(FENCED_REPLY) :].strip())
    if kind == "watch":
        return fenced("the leader epoch moved under its writes")
    # A reply that is not Redis (another service on the port) or a refusal such as NOPERM.
    return RedisFailed(
        f"cannot use Redis at {where}: {error}",
        hint="is it a Redis server, and may this user run the command?",
    )


def _kind(error: BaseException) -> str | None:
    """auth, timeout, connection, watch or reply: what a client's error says; None when it is
    not a Redis client's."""
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
