"""`tt spawn NAME`: add an agent to town.toml and start it, with Tinytown's options (issue #20): the
model defaults to the town's `default_model` (Tinytown's `default_cli`), `-c`/`--cli` is
`-m`/`--model`; `--nickname`, `--parent` and `--max-rounds` (`max_rounds`: the agent exits after
N tasks, and is started again per its `restart`) are kept in the agent's town.toml entry."""

from __future__ import annotations

import click

from .common import echo, session, town_option


def register(group: click.Group) -> None:
    group.add_command(spawn)


@click.command()
@click.argument("name")
@click.option(
    "-m",
    "-c",
    "--model",
    "--cli",
    "model",
    default=None,
    help="Model preset or [models.X] (default: [town] default_model).",
)
@click.option("--role", help="Role tasks may target instead of the name.")
@click.option("--replicas", type=int, default=1, show_default=True)
@click.option("--nickname", default=None, help="A display name (kept in town.toml).")
@click.option("--parent", default=None, help="The agent that spawned it (kept in town.toml).")
@click.option(
    "--max-rounds",
    type=click.IntRange(1, 1_000_000),
    default=None,
    help="Exit after N tasks; restart = always starts it again (kept as max_rounds).",
)
@click.option("--foreground", is_flag=True, help="Then follow the agent's log here.")
@town_option
def spawn(
    name: str,
    model: str | None,
    role: str | None,
    replicas: int,
    nickname: str | None,
    parent: str | None,
    max_rounds: int | None,
    foreground: bool,
    town_dir: str | None,
) -> None:
    """Add agent NAME to town.toml and start it."""
    from reconciler.control.verbs import spawn as do_spawn
    from reconciler.spec import loader

    from .cmd_apply import _fleet_lines, _opts

    s = session(town_dir)
    model = model or loader.load_settings(s.paths).default_model
    extra: dict[str, object] = {"nickname": nickname, "parent": parent, "max_rounds": max_rounds}
    result, existed = do_spawn(
        s, name, model, role=role, replicas=replicas, opts=_opts("tt spawn"), extra=extra
    )
    from reconciler.control.apply import INVALID

    if existed:
        echo(f"{name} already exists ({model}); nothing changed in town.toml")
    elif result.held == INVALID:
        n = result.problems
        echo(
            f"saved {name} ({model}) in town.toml; the town is not valid yet: {n} "
            f"problem{'s' if n != 1 else ''} (run tt validate); it applies once valid"
        )
        return
    else:
        echo(f"spawned {name} ({model})")
    _fleet_lines(result.fleet)
    if foreground:
        from .cmd_agents import logs

        click.get_current_context().invoke(
            logs, agent=name, task_id=None, follow=True, town_dir=town_dir
        )
