"""Tinytown commands that tt does not run as such: each says in one line what tt does instead
(issue #20). They take any arguments Tinytown's pages give them, so that no user meets click's
`No such command` or a suggestion of an unrelated option. `tt bootstrap` succeeds: there is
nothing to bootstrap."""

from __future__ import annotations

import click

from reconciler.errors import TtError

from .common import echo

ANY_ARGS = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}

# Tinytown's command → what tt does instead, in one line.
REFUSALS = {
    "mission": (
        "tt has no mission mode yet: write the issues' work as tasks in tasks.toml "
        '(tt assign AGENT "..." adds one) and tt apply'
    ),
    "auth": (
        'tt needs no API keys of its own: the town\'s Redis is local (redis = "embedded") or '
        "named by a URL in town.toml; agents' CLIs keep their own logins"
    ),
    "migrate": (
        "tt keeps tasks in tasks.toml, not in Redis keys to migrate: tt init imports a "
        "tinytown.toml, and tt sync pull writes the tasks' states back to tasks.toml"
    ),
    "towns": (
        "a tt town is a folder with town.toml; tt status --town DIR shows one, and TT_TOWN "
        "or the nearest town.toml picks the current one"
    ),
    "reset": (
        "tt resets from the files: empty tasks.toml (or remove agents from town.toml) and "
        "tt apply --allow-empty; tt down stops the town and keeps its data"
    ),
}


def register(group: click.Group) -> None:
    for name, message in REFUSALS.items():
        group.add_command(_refusal(name, message))
    group.add_command(bootstrap)


def _refusal(name: str, message: str) -> click.Command:
    def run(args: tuple[str, ...]) -> None:
        raise TtError(message)

    return click.Command(
        name,
        callback=run,
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        context_settings=ANY_ARGS,
        help=f"Tinytown's `tt {name}`: says what tt does instead.",
        hidden=True,
    )


@click.command(context_settings=ANY_ARGS, hidden=True)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bootstrap(args: tuple[str, ...]) -> None:
    """Tinytown's `tt bootstrap`: nothing to do in tt."""
    echo(
        "tt needs no bootstrap: its Redis (Valkey) ships in the wheel and starts with the town; "
        "agents' CLIs are installed as usual (tt validate says which one is missing)"
    )
