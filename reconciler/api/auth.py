"""Who may talk to `tt serve`: the token (TT_API_TOKEN, else the variable `[serve] token_env`
names), the rule that only loopback may run without one, the bearer check (constant time) and
the origin check of write requests (no cross-site request from a browser). An ASGI middleware;
no Redis, no files but the token's environment variable.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from ..errors import TtError

ENV_TOKEN = "TT_API_TOKEN"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


def is_loopback(host: str) -> bool:
    """`localhost`, 127.0.0.0/8, ::1 (a bracketed IPv6 literal too)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_of(token_env: str | None, environ: MutableMapping[str, str] | None = None) -> str | None:
    """The configured token: TT_API_TOKEN, else the variable `[serve] token_env` names; None
    when neither is set. A variable named but empty is an error (a token nobody can send)."""
    env = os.environ if environ is None else environ
    for name in (ENV_TOKEN, token_env):
        if name and name in env:
            value = env[name].strip()
            if not value:
                raise TtError(
                    f"{name} is set but empty: an API token must not be empty",
                    hint=f"export {name}=$(openssl rand -hex 32), or unset it",
                )
            return value
    return None


def check_bind(host: str, token: str | None, token_env: str | None) -> None:
    """Refuse to serve beyond loopback without a token."""
    if token is None and not is_loopback(host):
        where = f"{ENV_TOKEN} or {token_env}" if token_env else ENV_TOKEN
        raise TtError(
            f"refusing to serve on {host} without a token: anyone who reaches it could run "
            "the town",
            hint=f'set {where} to a secret (or `[serve] token_env = "NAME"` in town.toml), '
            "or serve on 127.0.0.1",
        )


def own_origins(host: str, port: int) -> frozenset[str]:
    """The `host[:port]` forms (`authority`) a browser page served by this server, bound to
    `host` and `port` (the real port, once bound), has as its origin."""
    names = {host, *LOOPBACK_NAMES} if is_loopback(host) else {host}
    return frozenset(authority(n, port) for n in names)


def authority(host: str, port: int | None) -> str:
    """`host[:port]` as compared, scheme-insensitive: lowercase, IPv6 bracketed, the web's
    default ports (80, 443) left out (a TLS proxy's `https://name` is the `name` it forwards)."""
    host = host.strip("[]").lower()
    shown = f"[{host}]" if ":" in host else host
    return shown if port in (None, 80, 443) else f"{shown}:{port}"


def _origin(value: str) -> str:
    """The authority of an Origin (`scheme://host[:port]`); "" for none (`null`, garbage)."""
    parts = urlsplit(value)
    try:
        return authority(parts.hostname, parts.port) if parts.hostname else ""
    except ValueError:
        return ""


def _host(value: str) -> str:
    """The authority of a Host header (`host[:port]`)."""
    return _origin("http://" + value) if value else ""


# On every answer: no page of another site may frame the dashboard (clickjacking its buttons),
# load anything but this server's own files into it, or have a file sniffed as another type.
SECURITY_HEADERS = (
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
)

# The dashboard's static files (`reconciler/api/static`), served without a token.
DASHBOARD = frozenset({"/", "/index.html", "/app.js", "/app.css"})


class Guard:
    """The ASGI middleware in front of every route: a bearer token when one is configured (401
    otherwise); without one, a `Host` that is loopback (so a page that rebinds its DNS name to
    127.0.0.1 reads nothing); for a write (POST), an `Origin`, if sent, of this server (403).
    `origins`: this server's own `host:port` forms (`own_origins`)."""

    def __init__(self, app: ASGIApp, token: str | None, origins: frozenset[str]) -> None:
        self.app = app
        self.token = token.encode("utf-8", "surrogateescape") if token is not None else None
        self.origins = origins

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *SECURITY_HEADERS]
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["method"] in SAFE_METHODS and scope["path"] in DASHBOARD:
            # The dashboard's own files hold no data (a browser cannot send a token when it
            # opens a page): its script sends the token with each /v1 request.
            await self.app(scope, receive, send_guarded)
            return
        refusal = self.refusal(scope["method"], headers)
        if refusal is None:
            await self.app(scope, receive, send_guarded)
            return
        status, message, hint = refusal
        body = json.dumps({"error": message, "hint": hint}).encode()
        extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
        await send_guarded(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def refusal(self, method: str, headers: dict[str, str]) -> tuple[int, str, str] | None:
        """(status, message, hint) of a refused request, None for one let through."""
        if self.token is not None:
            scheme, _, given = headers.get("authorization", "").partition(" ")
            # The header's bytes as sent (decoded as latin-1 above) against the token's UTF-8.
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode("latin-1"), self.token
            ):
                return (
                    401,
                    "missing or wrong API token",
                    "send the header Authorization: Bearer $TT_API_TOKEN",
                )
        else:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if host and not is_loopback(name):
                return (403, f"host {host[:80]!r} is not this server's", "use 127.0.0.1")
        origin = headers.get("origin")
        if method not in SAFE_METHODS and origin is not None:
            # A page of this server: under the name it was reached by (the Host the browser
            # sent: behind a proxy, with TLS or not; without a token a loopback one, checked
            # above), or under one of the names it is bound to.
            own = self.origins | {_host(headers.get("host", ""))}
            if _origin(origin) not in own - {""}:
                return (
                    403,
                    f"cross-site request refused: origin {origin[:80]!r} is not this server's",
                    "write requests come from this server's own pages or from non-browser clients",
                )
        return None
