"""`tt node run` (the node process), `tt node drain`, `tt nodes`: agents on several nodes."""

from __future__ import annotations

import sys
import time

import click

from .common import echo, emit_json, output_option, session, town_option


def register(group: click.Group) -> None:
    for cmd in (node, nodes):
        group.add_command(cmd)


@click.group()
def node() -> None:
    """Run a node (the agents placed on it with `node = "N"`), or drain one."""


@node.command("run")
@click.option("--name", "name", required=True, help="The node's name (agents pin it: node = N).")
@click.option("--slots", type=int, default=0, show_default=True, help="Capacity, recorded.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="A label (repeat).")
@click.option("--lease", type=float, default=10.0, show_default=True, help="Node lease, seconds.")
@click.option(
    "--interval", type=float, default=1.0, show_default=True, help="Seconds between passes."
)
@click.option(
    "--redis",
    "redis",
    metavar="URL",
    default=None,
    help="The town's Redis, for a node without the town's files (with --town-name).",
)
@click.option("--town-name", "town_name", default=None, help="The town's name (with --redis).")
@click.option(
    "--workspace",
    "workspace",
    metavar="DIR",
    default=None,
    help="The node's own clone of the [git] repository: task branches pushed to [git] push.",
)
@town_option
def node_run(
    name: str,
    slots: int,
    labels: tuple[str, ...],
    lease: float,
    interval: float,
    redis: str | None,
    town_name: str | None,
    workspace: str | None,
    town_dir: str | None,
) -> int:
    """Run node NAME in the foreground: register it, keep its lease, and start, adopt and stop
    the agents placed on it. Ctrl-C stops its agents (their tasks go back) and leaves.
    Without the town's files: --redis URL --town-name T (the roster the last apply recorded)."""
    from reconciler.nodes.run import NodeOptions, NodeRun, check_options, parse_labels
    from reconciler.nodes.where import node_session

    opts = NodeOptions(name, slots, parse_labels(labels), lease, interval)
    check_options(opts)  # (before anything connects)
    run = NodeRun(node_session(town_dir, redis, town_name, workspace, name), opts, _report)
    return run.run()


def _report(kind: str, detail: str) -> None:
    echo(f"{time.strftime('%H:%M:%S')} {kind:6} {detail}")
    sys.stdout.flush()


@node.command("drain")
@click.argument("name")
@town_option
def node_drain(name: str, town_dir: str | None) -> None:
    """Drain node NAME: its agents finish their running task, claim nothing new and exit."""
    from reconciler.nodes.view import drain

    drain(session(town_dir), name)
    echo(f"node {name} draining: its agents finish their tasks and claim nothing new")


@click.command()
@town_option
@output_option
def nodes(town_dir: str | None, output: str) -> None:
    """The nodes: host, state (ready, draining, dead, stopped), agents placed and running,
    slots, labels, heartbeat age."""
    from reconciler.errors import ValidationFailed
    from reconciler.nodes.view import nodes_report

    s = session(town_dir)
    try:
        desired = s.desired()
    except ValidationFailed:
        desired = None  # the nodes as Redis has them; no agents placed from the files
    rows = nodes_report(s, desired)
    if output == "json":
        emit_json(rows)
        return
    if not rows:
        echo("No nodes. Start one with: tt node run --name NAME")
        return
    from .render import table

    table(
        ["NODE", "HOST", "STATE", "PLACED", "RUNNING", "SLOTS", "LABELS", "HEARTBEAT"],
        [
            [
                r["name"],
                r["host"] or "-",
                r["state"],
                len(r["placed"]),
                len(r["running"]),
                r["slots"] if r["slots"] else "-",
                ",".join(f"{k}={v}" for k, v in r["labels"].items()) or "-",
                "-" if r["heartbeat_age"] is None else f"{r['heartbeat_age']}s",
            ]
            for r in rows
        ],
    )
