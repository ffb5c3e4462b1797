"""`tt serve`: check who may connect (`auth`), open the town once, and run the app on uvicorn
until interrupted. The token's value is read from the environment, never from a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from ..control.session import Session
from . import auth

TICK = 1.0  # seconds between the server's checks for a stop signal (uvicorn's own: 0.1)
# Seconds the open requests (event streams) get to end once stopping; then they are cancelled.
GRACE = 2


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server waking once a second, not ten times (idle CPU, issue 12's goal of
        0.2 % of a core): each wake updates the Date header and checks for a stop. A stop
        signal also sets `stopping`, which ends the event streams (they never end otherwise)."""

        stopping: threading.Event

        async def main_loop(self) -> None:
            while not await self.on_tick(0):  # 0: a tick that updates the Date header
                await asyncio.sleep(TICK)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            self.stopping.set()
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            """uvicorn raises the stop signal again once stopped (exit 130, or killed by
            SIGTERM); a stop asked for is a clean exit (0), as `tt conductor`'s."""
            with super().capture_signals():
                yield
                self._captured_signals.clear()

    return Server


def serve(
    town_dir: str | None,
    host: str,
    port: int,
    *,
    say: Callable[[str], None] = print,
) -> None:
    """Serve the town until SIGINT/SIGTERM. Refuses (TtError) a non-loopback `host` without a
    token, before anything listens."""
    base = Session.find(town_dir)
    token_env = base.settings.serve_token_env
    token = auth.token_of(token_env)
    auth.check_bind(host, token, token_env)
    import uvicorn

    from .app import build

    base.store  # noqa: B018  (opened now: a town that cannot be reached fails before serving)
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
    server = _server_class()(config)
    server.stopping = stopping
    shown = f"[{host}]" if ":" in host else host
    where = f"http://{shown}:{port}"
    say(
        f"serving town {base.settings.name or base.store.town} on {where}/v1 "
        f"({'token required' if token else 'no token: loopback only'}); Ctrl-C stops"
    )
    try:
        server.run()
    finally:
        base.close()
