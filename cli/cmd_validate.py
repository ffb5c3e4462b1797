"""`tt validate [--town DIR] [-o text|json]`: check town.toml and tasks.toml, change nothing.

Thin: `loader.check` does the work; this module only renders its report and picks the exit code.
"""

from __future__ import annotations

import click

from reconciler.errors import EXIT_ERROR, EXIT_OK, ValidationFailed

from .common import echo, emit_json, output_option, resolve_town, town_option


def register(group: click.Group) -> None:
    group.add_command(validate)


@click.command()
@town_option
@output_option
def validate(town_dir: str | None, output: str) -> int:
    """Check the town's files (syntax, schema, names, references, cycles); change nothing."""
    from reconciler.spec.loader import check

    result = check(resolve_town(town_dir))
    if output == "json":
        emit_json(
            {
                "valid": result.valid,
                "town": result.town,
                "agents": result.agents,
                "tasks": result.tasks,
                "problems": [p.as_dict() for p in result.problems],
            }
        )
        return EXIT_OK if result.valid else EXIT_ERROR
    if not result.valid:
        raise ValidationFailed(list(result.problems))
    echo(
        f"✓ town '{result.town}' is valid: {_count(result.agents, 'agent')}, "
        f"{_count(result.tasks, 'task')}"
    )
    return EXIT_OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
