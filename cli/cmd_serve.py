"""`tt serve`: the HTTP control plane (`reconciler/api`): the `/v1` JSON API, the live event
stream and `/metrics`. Its web stack is imported only here, so every other command stays fast."""

from __future__ import annotations

import click

from reconciler.errors import TtError

from .common import echo, town_option


def register(group: click.Group) -> None:
    group.add_command(serve)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8321,
    show_default=True,
    help="Port to listen on (0: any free one, printed).",
)
@click.option(
    "--no-token",
    "no_token",
    is_flag=True,
    help="On loopback with no token configured, serve without one (any local user may then "
    "act on the town) instead of making one for the run.",
)
@town_option
def serve(host: str, port: int, no_token: bool, town_dir: str | None) -> None:
    """Serve the town over HTTP: the /v1 JSON API, live events (SSE), /metrics and the dashboard
    at /. A token is needed: TT_API_TOKEN, or the variable [serve] token_env names; on loopback
    without one, a token is made for the run and printed with the dashboard's URL."""
    try:
        from reconciler.api.serve import serve as run
    except ImportError as e:
        raise TtError(
            f"tt serve needs its web stack: {e.name or e} is not installed",
            hint="pip install 'tinytown[serve]'",
        ) from None
    run(town_dir, host, port, no_token=no_token, say=echo)
