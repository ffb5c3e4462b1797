"""`tt approve TASK` and `tt reject TASK --reason TEXT`: a person's word on a task awaiting
approval (`control/gates.py` acts; this module renders)."""

from __future__ import annotations

import click

from .common import echo, emit_json, output_option, session, town_option


def register(group: click.Group) -> None:
    group.add_command(approve)
    group.add_command(reject)


_BY = click.option("--by", default=None, metavar="NAME", help="Who decides (default: the OS user).")


@click.command()
@click.argument("task_id", metavar="TASK")
@click.option("--comment", default="", metavar="TEXT", help="Kept with the approval.")
@_BY
@town_option
@output_option
def approve(task_id: str, comment: str, by: str | None, town_dir: str | None, output: str) -> None:
    """Let a task awaiting approval go on (completed, or into the [git] merge queue)."""
    from reconciler.control.gates import approve as do_approve

    d = do_approve(session(town_dir), task_id, comment=comment, by=by)
    if output == "json":
        emit_json({"task": d.task, "approved_by": d.by, "state": d.state.value})
        return
    then = "completed" if d.state.value == "completed" else "queued to merge its work"
    echo(f"approved {d.task} (by {d.by}): {then}")


@click.command()
@click.argument("task_id", metavar="TASK")
@click.option("--reason", required=True, metavar="TEXT", help="Why; the next attempt is told.")
@_BY
@town_option
@output_option
def reject(task_id: str, reason: str, by: str | None, town_dir: str | None, output: str) -> None:
    """Reopen a task awaiting approval, with the reason in its next prompt (counts as a retry)."""
    from reconciler.control.gates import reject as do_reject

    d = do_reject(session(town_dir), task_id, reason, by=by)
    if output == "json":
        emit_json({"task": d.task, "rejected_by": d.by, "state": d.state.value})
        return
    then = "it runs again" if d.state.value == "ready" else f"it is {d.state.value}"
    echo(f"rejected {d.task} (by {d.by}): {then}")
