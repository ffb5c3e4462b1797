"""`tt suspend` / `tt resume`: the whole town stops taking work and starts again. Each edits
`[town] suspend` in town.toml and applies (the files say what should be; Redis follows)."""

from __future__ import annotations

import click

from .common import echo, session, town_option


def register(group: click.Group) -> None:
    group.add_command(suspend)
    group.add_command(resume)


@click.command()
@town_option
def suspend(town_dir: str | None) -> None:
    """Suspend the town: no agent takes a new task, nothing is applied, started or healed.

    Running tasks finish. Sets `suspend = true` in [town]; `tt resume` removes it."""
    from reconciler.control import verbs

    from .cmd_apply import _opts

    s = session(town_dir)
    result, already = verbs.suspend(s, _opts("tt suspend"))
    name = s.store.town
    if already:
        echo(f"town '{name}' is suspended already (tt resume to resume it)")
    else:
        echo(f"suspended town '{name}': running tasks finish, nothing new starts (tt resume)")
    if not result.plan.is_empty:
        echo(f"waiting for tt resume: {result.plan.summary()}")


@click.command()
@click.argument("agent", required=False)
@town_option
def resume(agent: str | None, town_dir: str | None) -> None:
    """Resume a suspended town: agents take tasks again and what waited is applied.

    With AGENT (Tinytown's form): resume that agent only (`suspended` out of its town.toml
    entry; `tt interrupt AGENT` suspends it)."""
    from reconciler.control import verbs

    if agent is not None:
        from .cmd_lifecycle import suspend_agent

        suspend_agent(town_dir, agent, False, "tt resume")
        return

    from .cmd_apply import _fleet_lines, _opts

    s = session(town_dir)
    result, was = verbs.resume(s, _opts("tt resume"))
    name = s.store.town
    echo(f"resumed town '{name}'" if was else f"town '{name}' was not suspended")
    _fleet_lines(result.fleet)
    if not result.plan.is_empty:
        echo(f"Applied: {result.plan.summary()}")
