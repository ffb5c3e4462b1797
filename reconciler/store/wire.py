"""The socket level of the lean client (`leanclient`): RESP2 over a unix or TCP socket, AUTH and
SELECT on connect, replies parsed by hiredis and decoded as UTF-8, error replies sorted as
redis-py sorts them, and the errors met, which `client.translate` turns into the project's own.
No redis import; only `client` and `leanclient` use it (the store's one door to Redis).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis


class WireError(Exception):
    """An error met by the lean client (the counterpart of redis-py's `RedisError`)."""


class ConnectionFailed(WireError):  # refused, dropped, or the server is loading its data
    pass


class TimedOut(WireError):
    pass


class AuthFailed(WireError):
    pass


class WatchFailed(WireError):  # a WATCHed key moved: the MULTI did not run
    pass


class ReplyError(WireError):
    """The server refused one command (`-ERR ...`)."""


class NoScript(ReplyError):  # EVALSHA of a script the server has not loaded
    pass


class Raw(Exception):
    """An error reply as hiredis hands it over, sorted by `error`."""


# Error codes redis-py strips from the message (its `BaseParser.EXCEPTION_CLASSES`), so the
# text a person reads is the same whichever client met it.
_CODES = frozenset(
    [
        "ERR",
        "OOM",
        "WRONGPASS",
        "EXECABORT",
        "LOADING",
        "NOSCRIPT",
        "READONLY",
        "NOAUTH",
        "NOPERM",
        "ASK",
        "TRYAGAIN",
        "MOVED",
        "CLUSTERDOWN",
        "CROSSSLOT",
        "MASTERDOWN",
    ]
)
_AUTH_ERRS = frozenset(
    {
        "invalid password",
        "Client sent AUTH, but no password is set",
        "AUTH <password> called without any password configured for the default user. "
        "Are you sure your configuration is correct?",
    }
)


def error(message: str) -> WireError:
    code, _, rest = message.partition(" ")
    if code not in _CODES:
        return ReplyError(message)
    if code in ("WRONGPASS", "NOAUTH") or (code == "ERR" and rest in _AUTH_ERRS):
        return AuthFailed(rest)
    if code == "LOADING" or (code == "ERR" and rest == "max number of clients reached"):
        return ConnectionFailed(rest)
    return NoScript(rest) if code == "NOSCRIPT" else ReplyError(rest)


@dataclass(frozen=True)
class Spec:
    """Where a server is and how to log in: a unix socket `path`, else `host`:`port`."""

    path: str | None = None
    host: str = ""
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_url(url: str) -> Spec | None:
    """The `Spec` of a plain redis:// or unix:// URL; None for anything else (rediss://, other
    query options, a malformed URL): redis-py connects to those and says what is wrong."""
    try:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if not set(query) <= {"db", "password"} or parts.fragment:
            return None
        db = query.get("db", "0")
        password = query.get("password") or (unquote(parts.password) if parts.password else None)
        username = unquote(parts.username) if parts.username else None
        if parts.scheme == "unix" and parts.path and not parts.hostname:
            return Spec(path=unquote(parts.path), db=int(db), username=username, password=password)
        path = parts.path.strip("/")
        if parts.scheme != "redis" or not parts.hostname or (path and not path.isdigit()):
            return None
        db = path or db
        return Spec(None, parts.hostname, parts.port or 6379, int(db), username, password)
    except ValueError:  # a port or db that is not a number
        return None


def pack(args: Iterable[object]) -> list[bytes]:
    out: list[bytes] = []
    for arg in args:
        if isinstance(arg, str):
            raw = arg.encode()
        elif isinstance(arg, bytes):
            raw = arg
        elif isinstance(arg, bool):
            raise TypeError("a bool is not a Redis value; send '0' or '1'")
        elif isinstance(arg, int):
            raw = b"%d" % arg
        elif isinstance(arg, float):
            raw = repr(arg).encode()
        else:
            raise TypeError(f"a {type(arg).__name__} is not a Redis value")
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return [b"*%d\r\n" % len(out), *out]


class Connection:
    """One socket: connected, logged in and on its database when made."""

    def __init__(self, spec: Spec, timeout: float | None, connect_timeout: float) -> None:
        self.spec = spec
        self.sock: socket.socket | None = None
        self.reader = hiredis.Reader(replyError=Raw, encoding="utf-8", errors="strict")
        where = spec.path or f"{spec.host}:{spec.port}"
        try:
            if spec.path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(connect_timeout)
                try:
                    sock.connect(spec.path)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((spec.host, spec.port), connect_timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except TimeoutError:
            raise TimedOut("Timeout connecting to server") from None
        except OSError as e:
            raise ConnectionFailed(f"Error {e.errno} connecting to {where}. {e.strerror}.") from e
        sock.settimeout(timeout)
        self.sock = sock
        try:
            if spec.password is not None:
                login = [spec.username] if spec.username else []
                self.call("AUTH", *login, spec.password)
            if spec.db:
                self.call("SELECT", spec.db)
        except BaseException:
            self.disconnect()
            raise

    def call(self, *args: object) -> Any:
        self.send_command(*args)
        return self.read_response()

    def send_command(self, *args: object, **options: object) -> None:
        """(`options`: redis-py's, such as `check_health`; this connection has no such checks.)"""
        self.send_packed(pack(args))

    def send_packed(self, chunks: list[bytes]) -> None:
        if self.sock is None:
            raise ConnectionFailed("Connection closed.")
        try:
            self.sock.sendall(b"".join(chunks))
        except TimeoutError:
            self.disconnect()
            raise TimedOut("Timeout writing to socket") from None
        except OSError as e:
            self.disconnect()
            raise ConnectionFailed(f"Error {e.errno} while writing to socket. {e.strerror}.") from e

    def read_response(self) -> Any:
        """The next reply; an error reply is raised (after it was read whole)."""
        reply = self.read_raw()
        if isinstance(reply, Raw):
            raise error(str(reply))
        return reply

    def read_raw(self) -> Any:
        try:
            return self._read()
        except hiredis.ProtocolError as e:  # not a Redis server talking
            self.disconnect()
            raise WireError(f"Protocol error: {e}") from None

    def _read(self) -> Any:
        reply = self.reader.gets()
        while reply is False:
            if self.sock is None:
                raise ConnectionFailed("Connection closed.")
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                self.disconnect()
                raise TimedOut("Timeout reading from socket") from None
            except OSError as e:
                self.disconnect()
                raise ConnectionFailed(f"Error while reading from socket: {e.strerror}") from e
            if not chunk:
                self.disconnect()
                raise ConnectionFailed("Connection closed by server.")
            self.reader.feed(chunk)
            reply = self.reader.gets()
        return reply

    def disconnect(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()
        self.reader = hiredis.Reader(replyError=Raw, encoding="utf-8", errors="strict")


class Pool:
    """Idle connections, reused; one broken (disconnected) is dropped on release."""

    def __init__(self, spec: Spec, timeout: float | None, connect_timeout: float) -> None:
        self.spec, self.timeout, self.connect_timeout = spec, timeout, connect_timeout
        self.idle: list[Connection] = []

    def get_connection(self, *_: object) -> Connection:
        if self.idle:
            return self.idle.pop()
        return Connection(self.spec, self.timeout, self.connect_timeout)

    def release(self, conn: Connection) -> None:
        if conn.sock is not None and conn not in self.idle:
            self.idle.append(conn)

    def disconnect(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.disconnect()
