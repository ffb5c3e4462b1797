"""`tt mcp`: an MCP server over stdio for another agent to run the town
(`reconciler/api/mcptools.py`); `--print-config` prints what registers it."""

from __future__ import annotations

import click

from .common import echo, session, town_option


def register(group: click.Group) -> None:
    group.add_command(mcp)


@click.command()
@town_option
@click.option(
    "--print-config",
    "print_config",
    is_flag=True,
    help="Print what registers this server in the client, then exit.",
)
@click.option(
    "--client",
    type=click.Choice(["claude", "codex"]),
    default="claude",
    show_default=True,
    help="With --print-config: Claude Code's .mcp.json or Codex's config.toml.",
)
def mcp(town_dir: str | None, print_config: bool, client: str) -> None:
    """Serve the town's tools over MCP on stdin/stdout (for Claude Code, Codex, …): status,
    tasks, agents, add/retry/cancel a task, send a message, plan, apply, task logs."""
    try:
        from reconciler.api import mcptools
    except ImportError as e:  # the optional extra is not installed
        from reconciler.errors import TtError

        raise TtError(
            f"tt mcp needs the mcp package ({e.name} is missing)",
            hint="pip install 'tinytown[mcp]'",
        ) from e
    if print_config:
        echo(mcptools.client_config(session(town_dir).paths.root.resolve(), client))
        return
    mcptools.build(town_dir).run("stdio")
