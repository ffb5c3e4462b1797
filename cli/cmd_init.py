"""`tt init [DIR] [--name NAME] [--force]`."""

from __future__ import annotations

from pathlib import Path

import click

from .common import echo


def register(group: click.Group) -> None:
    group.add_command(init)


@click.command()
@click.argument("directory", required=False, default=".", type=click.Path(file_okay=False))
@click.option("--name", help="Town name (default: the folder, or repo-branch in git).")
@click.option("--force", is_flag=True, help="Overwrite existing town.toml / tasks.toml.")
@click.option(
    "-t",
    "--town",
    "town_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="The town's folder (Tinytown's form of DIRECTORY).",
)
def init(directory: str, name: str | None, force: bool, town_dir: str | None) -> None:
    """Create town.toml and tasks.toml in DIRECTORY (default: here)."""
    from reconciler.edit.scaffold import init_town

    if town_dir is not None and directory != ".":
        raise click.UsageError("give the folder once: DIRECTORY or --town")
    result = init_town(Path(town_dir or directory), name, force=force)
    if result.imported_from:
        echo(f"Imported {result.imported_from.name} (Tinytown)")
    for path in result.written:
        echo(f"wrote {path}")
    echo(f"Town '{result.name}' is ready. Next: tt spawn NAME --model MODEL")
