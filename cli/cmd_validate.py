"""`tt validate [FILE...] [--town DIR] [-o text|json]`: check town.toml and tasks.toml, change
nothing.

Thin: `loader.check` does the work; this module only renders its report and picks the exit code.
FILE arguments (a town.toml, a tasks.toml or a town folder: what a pre-commit hook passes) check
the town of each, once per folder; a folder without town.toml is skipped with a note, a path
that does not exist is refused.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.errors import EXIT_ERROR, EXIT_OK, TtError, ValidationFailed

from .common import echo, emit_json, output_option, resolve_town, town_option

if TYPE_CHECKING:
    from reconciler.errors import Problem
    from reconciler.spec.loader import Validation
    from reconciler.town import TownPaths


def register(group: click.Group) -> None:
    group.add_command(validate)


@click.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=str))
@town_option
@output_option
def validate(files: tuple[str, ...], town_dir: str | None, output: str) -> int:
    """Check the town's files (syntax, schema, names, references, cycles); change nothing.

    FILE...: check the town of each town.toml or tasks.toml given (its folder), as a
    pre-commit hook passes them."""
    from reconciler.spec.loader import check

    if files and town_dir is not None:
        raise click.UsageError("give the town once: FILE... or --town")
    if files:
        return _validate_files(files, output)
    result = check(resolve_town(town_dir))
    if output == "json":
        emit_json(_json(result, list(result.problems)))
        return EXIT_OK if result.valid else EXIT_ERROR
    if not result.valid:
        raise ValidationFailed(list(result.problems))
    echo(_valid_line(result))
    return EXIT_OK


def _json(result: Validation, problems: list[Problem]) -> dict[str, object]:
    return {
        "valid": result.valid,
        "town": result.town,
        "agents": result.agents,
        "tasks": result.tasks,
        "problems": [p.as_dict() for p in problems],
    }


def _valid_line(result: Validation, where: str = "") -> str:
    return (
        f"✓ town '{result.town}'{where} is valid: {_count(result.agents, 'agent')}, "
        f"{_count(result.tasks, 'task')}"
    )


def _towns(files: tuple[str, ...]) -> tuple[list[TownPaths], list[Path]]:
    """The town folder of each argument (a file's folder, or the folder itself), each once, and
    the folders that hold no town.toml (not a tt town: a tasks.toml of something else). A path
    that does not exist is refused: checking nothing must not pass as a check."""
    from reconciler.town import TownPaths

    folders: dict[Path, None] = {}
    for name in files:
        path = Path(name)
        if not path.exists():
            raise TtError(
                f"{name}: no such file or folder",
                hint="give a town.toml, a tasks.toml or a town folder",
            )
        folders[path if path.is_dir() else path.parent] = None
    towns = [TownPaths(folder) for folder in folders]
    return [t for t in towns if t.town_file.exists()], [
        t.root for t in towns if not t.town_file.exists()
    ]


def _validate_files(files: tuple[str, ...], output: str) -> int:
    """Every town the files belong to; problems name the file by its path as given. A folder
    without town.toml is not a town: skipped, with a note (a pre-commit hook matches any
    tasks.toml of the repository)."""
    from reconciler.spec.loader import check

    problems: list[Problem] = []
    reports: list[dict[str, object]] = []
    towns, others = _towns(files)
    for folder in others:
        reports.append({"folder": str(folder), "skipped": "no town.toml: not a tt town"})
        if output != "json":
            echo(f"- {folder}: skipped, no town.toml there (not a tt town)")
    for paths in towns:
        result = check(paths)
        mine = [_under(paths.root, p) for p in result.problems]
        problems += mine
        reports.append({"folder": str(paths.root), **_json(result, mine)})
        if result.valid and output != "json":
            echo(_valid_line(result, f" ({paths.root})"))
    if output == "json":
        emit_json({"valid": not problems, "towns": reports})
        return EXIT_ERROR if problems else EXIT_OK
    if problems:
        raise ValidationFailed(problems)
    return EXIT_OK


def _under(folder: Path, p: Problem) -> Problem:
    return p if str(folder) in ("", ".") else dataclasses.replace(p, file=str(folder / p.file))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
