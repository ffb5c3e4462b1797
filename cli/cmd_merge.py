"""`tt merge TASK`: a manual-mode task's branch merged into base through the merge queue."""

from __future__ import annotations

import click

from reconciler.errors import EXIT_ERROR, EXIT_OK

from .common import echo, session, town_option


def register(group: click.Group) -> None:
    group.add_command(merge)


@click.command()
@click.argument("task_id", metavar="TASK")
@town_option
def merge(task_id: str, town_dir: str | None) -> int:
    """Merge a completed task's branch into base (for [git] merge = "manual")."""
    from reconciler.control.manualmerge import merge_task

    done = merge_task(session(town_dir), task_id)
    if done.ok:
        again = " (already)" if done.already else ""
        echo(f"merged {done.task} as {done.commit} into {done.base}{again}")
        return EXIT_OK
    echo(f"{done.task} not merged into {done.base}: {done.text}", err=True)
    if done.log:
        echo(f"the check's log: {done.log}", err=True)
    return EXIT_ERROR
