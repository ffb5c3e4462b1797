"""`tt diff`: the same as `tt plan`; `tt diff --drift` lists what differs in Redis from what the
files ask for without a file change (tasks made with --no-save or retried by hand, agents
stopped by hand, records edited in Redis). Parses, calls one engine function, renders."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from reconciler.errors import EXIT_CHANGES, EXIT_OK

from .cmd_apply import _diff, _diff_options
from .common import echo, emit_json, session

if TYPE_CHECKING:
    from reconciler.plan.drift import Drift


def register(group: click.Group) -> None:
    group.add_command(diff_cmd)


@click.command("diff")
@click.option(
    "--drift",
    is_flag=True,
    help="List drift: what differs in Redis without a file change (2 with --detailed-exitcode).",
)
@_diff_options
def diff_cmd(drift: bool, town_dir: str | None, output: str, detailed: bool, **kw: Any) -> int:
    """The same as `tt plan`; with --drift, what differs in Redis without a file change
    (as text for -o markdown)."""
    if not drift:
        return _diff(town_dir, output, detailed, **kw)  # the _diff_options
    from reconciler.control.drift import read_drift

    s = session(town_dir)
    desired = s.desired()
    found = read_drift(s.store, desired)
    if output == "json":
        emit_json(found.as_json() | {"self_heal": desired.town.policy.self_heal})
    else:
        _render(found, desired.town.policy.self_heal)
    return EXIT_CHANGES if detailed and found.items else EXIT_OK


def _render(found: Drift, self_heal: bool) -> None:
    if found.changed_files:
        names = " and ".join(found.changed_files)
        echo(f"note: {names} changed since the last apply: their differences are `tt plan`'s")
    lines = [f"  {i.kind.value:<14} {i.object}: {i.detail}" for i in found.items]
    if lines:
        echo("\n".join(lines))
    if not found.items:
        echo("No drift.")
        return
    if self_heal:
        heal = "the next pass undoes what it can; --no-save tasks and retries stay"
    else:
        heal = "self_heal = false: left as it is"
    echo(f"Drift: {len(found.items)} items ({heal})")
