"""`tt serve`: check who may connect (`auth`), open the town once, and run the app on uvicorn
until interrupted. The token's value is read from the environment, never from a file.
"""

from __future__ import annotations

from collections.abc import Callable

from ..control.session import Session
from . import auth


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
    app = auth.Guard(build(base), token, auth.own_origins(host, port))
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
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
