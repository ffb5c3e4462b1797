"""`tt graph`: the task DAG with each task's state, as text, Mermaid, DOT or JSON
(`reconciler/plan/dag.py` builds it, `graphtext` renders it)."""

from __future__ import annotations

import shutil

import click

from .common import echo, session, town_option


def register(group: click.Group) -> None:
    group.add_command(graph)


@click.command()
@town_option
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "mermaid", "dot", "json"]),
    default="text",
    show_default=True,
    help="text for a terminal; mermaid for Markdown; dot for Graphviz; json (version 1).",
)
def graph(town_dir: str | None, output: str) -> None:
    """The task DAG: groups, parent and depends_on edges, backlog apart, each task's state."""
    from reconciler.control import townops
    from reconciler.plan.graphtext import render

    report = townops.graph(session(town_dir))
    echo(render(report, output, width=shutil.get_terminal_size((100, 24)).columns))
