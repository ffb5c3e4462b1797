"""`tt config [KEY] [VALUE]`: Tinytown's settings as they live in tt, in town.toml (issue #20):
`default_cli` is `[town] default_model`, `agent_clis.NAME` is `[models.NAME]`. Reading prints
them; writing edits town.toml (validated, comments kept); nothing else holds settings."""

from __future__ import annotations

import shlex

import click

from reconciler.errors import TtError

from .common import echo, session, town_option

DEFAULT_KEYS = ("default_cli", "default_model")


def register(group: click.Group) -> None:
    group.add_command(config)


@click.command()
@click.argument("key", required=False)
@click.argument("value", required=False)
@town_option
def config(key: str | None, value: str | None, town_dir: str | None) -> None:
    """Show or set the town's default model (Tinytown's default_cli) and custom model CLIs
    (agent_clis.NAME "command --flags"), in town.toml."""
    from reconciler import edit
    from reconciler.spec import loader

    s = session(town_dir)
    if key is None:
        desired = s.desired()
        echo(f"default_model = {desired.town.default_model}")
        for m in desired.models:
            echo(f"models.{m.name} = {shlex.join(m.command)}")
        return
    if key in DEFAULT_KEYS:
        if value is None:
            echo(s.desired().town.default_model)
            return
        edit.set_town_fields(
            s.edit_paths(), {"default_model": value}, validate=loader.validate_texts
        )
        echo(f"set [town] default_model = {value!r} in town.toml (tt spawn NAME uses it)")
        return
    prefix, _, name = key.partition(".")
    if prefix in ("agent_clis", "models") and name:
        if value is None:
            found = [m for m in s.desired().models if m.name == name]
            if not found:
                raise TtError(f"no [models.{name}] in town.toml", hint=f'tt config {key} "CMD"')
            echo(shlex.join(found[0].command))
            return
        fields = {"command": shlex.split(value), "prompt": "arg"}
        edit.set_model(s.edit_paths(), name, fields, validate=loader.validate_texts)
        echo(f"set [models.{name}] in town.toml (tt spawn NAME --model {name} uses it)")
        return
    raise TtError(
        f"unknown setting '{key}': tt config knows default_cli (default_model) and "
        "agent_clis.NAME; everything else is in town.toml"
    )
