"""`tt serve`: check who may connect (`auth`), listen, open the town once, and run the app on
uvicorn until interrupted. The token's value is read from the environment, never from a file;
on loopback with none configured, a token is made for the run (printed in the dashboard's URL)
unless `--no-token`. The port is bound before anything is printed: a port in use is one error
line, and `--port 0` serves (and says) the free port it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn

from ..control.session import Session
from ..errors import TtError
from . import auth
from .app import build

TICK = 1.0  # seconds between the server's checks for a stop signal (uvicorn's own: 0.1)
# Seconds the open requests (event streams) get to end once stopping; then they are cancelled.
GRACE = 2


class Server(uvicorn.Server):
    """uvicorn's server waking once a second, not ten times (idle CPU, issue 12's goal of
    0.2 % of a core): each wake updates the Date header and checks for a stop. A stop signal
    also sets `stopping`, which ends the event streams (they never end otherwise)."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    async def main_loop(self) -> None:
        while not await self.on_tick(0):  # 0: a tick that updates the Date header
            await asyncio.sleep(TICK)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stopping.set()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn raises the stop signal again once stopped (exit 130, or killed by SIGTERM);
        a stop asked for is a clean exit (0), as `tt conductor`'s."""
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port` (0: a free port); a TtError naming both if it cannot."""
    name = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in name else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((name, port))
    except OSError as e:
        sock.close()
        raise TtError(
            f"cannot listen on {_shown(host)}:{port}: {e.strerror or e}",
            hint="another program holds that port: pick another with --port (0: any free one)"
            if e.errno in (98, 48)  # EADDRINUSE on Linux, macOS
            else "check --host: an address of this machine",
        ) from None
    return sock


def _shown(host: str) -> str:
    host = host.strip("[]")
    return f"[{host}]" if ":" in host else host


def serve(
    town_dir: str | None,
    host: str,
    port: int,
    *,
    no_token: bool = False,
    say: Callable[[str], None] = print,
) -> None:
    """Serve the town until SIGINT/SIGTERM. Refuses (TtError) a non-loopback `host` without a
    token, and a port it cannot bind, before anything listens or is printed."""
    base = Session.find(town_dir)
    token_env = base.settings.serve_token_env
    token = auth.token_of(token_env)
    made = token is None and not no_token and auth.is_loopback(host)
    if made:
        token = secrets.token_urlsafe(32)
    auth.check_bind(host, token, token_env)
    base.store  # noqa: B018  (opened now: a town that cannot be reached fails before serving)
    sock = listen(host, port)
    port = int(sock.getsockname()[1])
    stopping = threading.Event()
    app = auth.Guard(build(base, stopping), token, auth.own_origins(host, port))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=GRACE,
    )
    server = Server(config, stopping)
    where = f"http://{_shown(host)}:{port}"
    town = base.settings.name or base.store.town
    if made:
        say(
            f"serving town {town} on {where}/v1 with a token made for this run "
            f"(Authorization: Bearer {token}; --no-token serves loopback without one)\n"
            f"dashboard: {where}/#token={token}\nCtrl-C stops"
        )
    else:
        rule = "token required" if token else "no token: loopback only"
        say(f"serving town {town} on {where}/v1 ({rule}); dashboard: {where}/; Ctrl-C stops")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        base.close()
