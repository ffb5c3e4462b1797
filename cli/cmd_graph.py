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
    from reconciler.plan.dag import dag_report
    from reconciler.plan.graphtext import render

    s = session(town_dir)
    desired = s.desired()
    records = {r["id"]: r for r in s.store.task_records()}
    report = dag_report(desired, records, desired.town.name)
    echo(render(report, output, width=shutil.get_terminal_size((100, 24)).columns))
