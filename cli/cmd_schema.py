"""`tt schema [town|tasks] [--path]`: the JSON Schemas tt ships (the ones it validates with and
`tt init`'s `#:schema` lines name), printed or located, for editors and other tools."""

from __future__ import annotations

import click

from .common import echo

WHICH = ("town", "tasks")


def register(group: click.Group) -> None:
    group.add_command(schema)


@click.command()
@click.argument("which", required=False, type=click.Choice(WHICH))
@click.option("--path", "path_only", is_flag=True, help="Print the schema file's path instead.")
@click.option("--uri", is_flag=True, help="Print its file:// URL (a #:schema line's).")
def schema(which: str | None, path_only: bool, uri: bool) -> None:
    """Print the JSON Schema of town.toml or tasks.toml (--path: where it is installed).

    Without WHICH: the path of each."""
    from reconciler.spec.schemacheck import schema_dir

    for name in (which,) if which else WHICH:
        path = (schema_dir() / f"{name}.schema.json").resolve()
        if which is None:
            echo(f"{name}.toml: {path.as_uri() if uri else path}")
        elif path_only or uri:
            echo(path.as_uri() if uri else str(path))
        else:
            echo(path.read_text(encoding="utf-8"), nl=False)
