"""Tinytown's lifecycle verbs, in tt's meaning (issue #20): start (= apply), stop (= down),
save / restore (= sync pull / sync push), recover (a heal pass now), reclaim, prune, interrupt and
close (one agent suspended in town.toml), tasks (the tasks of tt status). Each parses, calls one
engine function, renders."""

from __future__ import annotations

from typing import Any

import click

from .common import echo, session, town_option


def register(group: click.Group) -> None:
    for cmd in (start, stop, save, restore, recover, reclaim, prune, interrupt, close, tasks):
        group.add_command(cmd)


@click.command()
@town_option
@click.pass_context
def start(ctx: click.Context, town_dir: str | None) -> None:
    """Tinytown's `tt start`: the same as `tt apply` (the files, made real; then it returns)."""
    from .cmd_apply import apply_cmd

    ctx.invoke(apply_cmd, town_dir=town_dir)


@click.command()
@town_option
@click.pass_context
def stop(ctx: click.Context, town_dir: str | None) -> None:
    """Tinytown's `tt stop`: the same as `tt down` (agents, watchers and server stopped)."""
    from .cmd_apply import down

    ctx.invoke(down, town_dir=town_dir)


@click.command()
@town_option
@click.pass_context
def save(ctx: click.Context, town_dir: str | None) -> None:
    """Tinytown's `tt save`: the same as `tt sync pull` (states written to tasks.toml)."""
    from .cmd_apply import sync_pull

    ctx.invoke(sync_pull, town_dir=town_dir)
    echo("tasks.toml and town.toml are the town's saved state: commit them with git")


@click.command()
@town_option
@click.pass_context
def restore(ctx: click.Context, town_dir: str | None) -> None:
    """Tinytown's `tt restore`: the same as `tt sync push` (the files applied to Redis)."""
    from .cmd_apply import sync_push

    ctx.invoke(sync_push, town_dir=town_dir)


@click.command()
@town_option
def recover(town_dir: str | None) -> None:
    """One heal pass now: dead agents restarted, orphaned attempts handed back (an apply)."""
    from reconciler.control.apply import apply

    from .cmd_apply import _fleet_lines, _opts

    result = apply(session(town_dir), _opts("tt recover"))
    _fleet_lines(result.fleet)
    if not result.fleet and result.plan.is_empty:
        echo("nothing to recover: every agent runs as town.toml says")


@click.command()
@click.option("--to", "to", metavar="AGENT", help="Give the tasks to this agent (tasks.toml).")
@click.option("--to-backlog", is_flag=True, help="Take the agent out of the tasks (backlog).")
@click.option("--from", "from_", metavar="AGENT", help="Only the tasks of this agent.")
@town_option
def reclaim(to: str | None, to_backlog: bool, from_: str | None, town_dir: str | None) -> None:
    """Unfinished tasks of stopped, suspended or removed agents: listed, or moved with --to AGENT
    or --to-backlog (their `agent` in tasks.toml changed, then applied)."""
    from reconciler.control import lifecycle

    from .cmd_apply import _opts

    s = session(town_dir)
    found = lifecycle.orphans(s, from_)
    if not found:
        echo("no task waits on a stopped agent")
        return
    for o in found:
        where = "" if o.in_file else " (not in tasks.toml: tt cancel it and assign again)"
        echo(f"{o.task}: {o.state}, agent {o.agent}{where}")
    if to is None and not to_backlog:
        echo("move them with tt reclaim --to AGENT or --to-backlog")
        return
    lifecycle.reclaim(s, found, None if to_backlog else to, _opts("tt reclaim"))
    moved = sum(o.in_file for o in found)
    echo(f"moved {moved} task(s) to {'the backlog' if to_backlog else to} in tasks.toml")


@click.command()
@click.option("--all", "every", is_flag=True, help="Every agent town.toml no longer names.")
@town_option
def prune(every: bool, town_dir: str | None) -> None:
    """Forget stopped agents that town.toml no longer names (their records in Redis)."""
    from reconciler.control import lifecycle

    gone = lifecycle.prune(session(town_dir), every)
    echo("\n".join(f"forgot agent {n}" for n in gone) if gone else "no stopped agent to forget")


def suspend_agent(town_dir: str | None, name: str, suspended: bool, command: str) -> None:
    """Shared by interrupt, close and `tt resume AGENT`."""
    from reconciler.control import lifecycle

    from .cmd_apply import _fleet_lines, _opts

    result, changed = lifecycle.set_agent_suspended(
        session(town_dir), name, suspended, _opts(command)
    )
    if suspended:
        echo(
            f"suspended {name} (suspended = true in town.toml; tt resume {name})"
            if changed
            else f"{name} is suspended already (tt resume {name})"
        )
    else:
        echo(f"resumed {name}" if changed else f"{name} was not suspended")
    _fleet_lines(result.fleet)


@click.command()
@click.argument("agent")
@town_option
def interrupt(agent: str, town_dir: str | None) -> None:
    """Suspend AGENT: `suspended = true` in town.toml; its running task finishes."""
    suspend_agent(town_dir, agent, True, "tt interrupt")


@click.command()
@click.argument("name")
@town_option
def close(name: str, town_dir: str | None) -> None:
    """Tinytown's `tt close AGENT`: suspend it (its running task finishes). A task id: cancel it."""
    s = session(town_dir)
    if s.desired().agent(name) is None and name in s.desired().task_ids():
        from reconciler.control.verbs import cancel

        from .cmd_apply import _opts

        cancel(s, name, _opts("tt close"))
        echo(f"cancelled {name}")
        return
    suspend_agent(town_dir, name, True, "tt close")


@click.command()
@town_option
def tasks(town_dir: str | None, **_: Any) -> None:
    """Every task: state and agent (the task part of `tt status`)."""
    records = session(town_dir).store.task_records()
    if not records:
        echo('no tasks (tt assign AGENT "..." or tasks.toml adds one)')
        return
    for rec in records:
        echo(f"{rec['id']}: {rec.get('state', '')}, agent {rec.get('target') or '(backlog)'}")
