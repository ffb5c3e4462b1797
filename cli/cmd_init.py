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
    root = Path(town_dir or directory)
    name = _town_name(name)
    if not force and _is_town(root, name):
        return
    result = init_town(root, name, force=force)
    if result.imported_from:
        echo(f"Imported {result.imported_from.name} (Tinytown)")
        for line in result.dropped:
            echo(f"  {line}")
    for path in result.written:
        echo(f"wrote {path}")
    echo(f"Town '{result.name}' is ready. Next: tt spawn NAME --model MODEL")


def _town_name(name: str | None) -> str | None:
    """Tinytown takes a display name (`--name "My Awesome Project"`): tt names the town by its
    slug and says so; a name with no usable slug is left for init_town to refuse."""
    from reconciler.edit.scaffold import slug
    from reconciler.spec.names import is_valid_name

    if name is None or is_valid_name(name) or not is_valid_name(slug(name)):
        return name
    echo(f"town name '{slug(name)}' (from '{name}': names are lowercase words and dashes)")
    return slug(name)


def _is_town(root: Path, name: str | None) -> bool:
    """`tt init` again where this town is (Tinytown's init finds an existing town): nothing to
    write. True when it said so; another name or an unreadable town.toml is init_town's case."""
    from reconciler.errors import TtError
    from reconciler.spec import loader
    from reconciler.town import TownPaths

    paths = TownPaths(root.resolve())
    if not paths.town_file.is_file():
        return False
    try:
        existing = loader.load_settings(paths).name
    except TtError:
        return False
    if name not in (None, existing):
        return False
    echo(f"town '{existing}' is here already; nothing written (tt apply runs it)")
    return True
