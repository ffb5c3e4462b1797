"""`tt backlog list | add TEXT | claim ID AGENT | remove ID` (Tinytown's verbs): the tasks of
tasks.toml without an agent, which any idle agent may claim (`control/backlog.py`). Each verb
but `list` edits tasks.toml (comments kept) and applies."""

from __future__ import annotations

from typing import Any

import click

from .applyrender import fleet_lines
from .cmd_apply import _opts
from .common import echo, emit_json, output_option, session, town_option


def register(group: click.Group) -> None:
    group.add_command(backlog)


@click.group(invoke_without_command=True)
@click.pass_context
@town_option
def backlog(ctx: click.Context, town_dir: str | None) -> None:
    """The backlog: tasks of tasks.toml with no agent, for any idle agent (alone: `list`)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_cmd, town_dir=town_dir)


@backlog.command("list")
@town_option
@output_option
def list_cmd(town_dir: str | None, output: str = "text") -> None:
    """The backlog's tasks, in file order, with their states."""
    from reconciler.control.backlog import items

    found = items(session(town_dir))
    if output == "json":
        emit_json({"backlog": [_row(i) for i in found]})
        return
    if not found:
        echo('the backlog is empty (tt backlog add "TEXT" adds a task without agent)')
        return
    width = max(len(i.id) for i in found)
    for i in found:
        tags = f"  [{', '.join(i.tags)}]" if i.tags else ""
        who = f" ({i.agent})" if i.agent and i.state != "ready" else ""
        first = (i.description.splitlines() or [""])[0][:80]
        echo(f"{i.id:<{width}}  {i.state + who:<12}  {first}{tags}")


def _row(i: Any) -> dict[str, Any]:
    return {
        "id": i.id,
        "state": i.state,
        "agent": i.agent,
        "tags": list(i.tags),
        "description": i.description,
    }


def _tags(values: tuple[str, ...]) -> tuple[str, ...]:
    """`--tags a,b --tags c` (Tinytown's comma list, or the option again) → (a, b, c)."""
    return tuple(t.strip() for v in values for t in v.split(",") if t.strip())


@backlog.command("add")
@click.argument("text")
@click.option("--tags", multiple=True, help="Comma-separated tags (Tinytown's form).")
@click.option("--id", "task_id", default=None, help="Task id (default: from the text).")
@town_option
def add(text: str, tags: tuple[str, ...], task_id: str | None, town_dir: str | None) -> None:
    """Add a task without agent to tasks.toml and apply it: any idle agent may claim it."""
    from reconciler.control.backlog import add as do_add

    tid, result = do_add(session(town_dir), text, _tags(tags), task_id, _opts("tt backlog add"))
    echo(f"added {tid} to the backlog")
    fleet_lines(result.fleet)


@backlog.command("claim")
@click.argument("task_id", metavar="ID")
@click.argument("agent")
@town_option
def claim(task_id: str, agent: str, town_dir: str | None) -> None:
    """Give backlog task ID to AGENT: `agent = AGENT` in tasks.toml, then apply."""
    from reconciler.control.backlog import claim as do_claim

    result = do_claim(session(town_dir), task_id, agent, _opts("tt backlog claim"))
    echo(f"{task_id} claimed for {agent}")
    fleet_lines(result.fleet)


@backlog.command("remove")
@click.argument("task_id", metavar="ID")
@town_option
def remove(task_id: str, town_dir: str | None) -> None:
    """Delete backlog task ID from tasks.toml, then apply (kept as a tombstone a while)."""
    from reconciler.control.backlog import remove as do_remove

    result = do_remove(session(town_dir), task_id, _opts("tt backlog remove"))
    echo(f"removed {task_id} from the backlog")
    fleet_lines(result.fleet)
