"""How an apply's result reads (`tt plan`, `tt diff`, `tt apply`, `tt sync push` and the verbs
that apply): the plan's lines or JSON, the agents started or stopped, the closing summary, the
note that `tt apply` would refuse a plan, and the plan as Markdown (`--format markdown`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .common import echo, emit_json

if TYPE_CHECKING:
    from reconciler.control.apply import ApplyOptions, ApplyResult
    from reconciler.control.fleet import FleetChange


def render(
    result: ApplyResult,
    output: str,
    *,
    dry_run: bool,
    placement: list[dict[str, Any]] | None = None,
) -> None:
    """`placement` (`tt plan` of a town that uses nodes): where each agent will run."""
    from reconciler.control.apply import SUSPENDED
    from reconciler.plan.diff import render_lines

    if output == "json":
        from reconciler.control.townops import apply_json

        data = apply_json(result)
        emit_json(data if placement is None else {**data, "placement": placement})
        return
    lines = list(render_lines(result.plan))
    if lines:  # one write: a 10,000-task plan is 10,000 lines
        echo("\n".join(lines))
    fleet_lines(result.fleet)
    if placement is not None:
        from reconciler.control.placing import placement_text

        echo("Placement:")
        width = max((len(r["agent"]) for r in placement), default=0)
        for r in placement:
            echo(f"  {r['agent']:{width}}  {placement_text(r)}")
    if result.held == SUSPENDED:  # a plan computed, not applied
        echo(f"Town suspended: nothing applied ({result.plan.summary()}); tt resume applies it")
    elif result.plan.is_empty:
        echo("Everything up to date" if not dry_run else "No changes.")
    else:
        verb = "Plan" if dry_run else "Applied"
        echo(f"{verb}: {result.plan.summary()}")


def markdown(result: ApplyResult, opts: ApplyOptions, town: str) -> None:
    """`tt plan --format markdown`: the plan for a pull request comment or a job summary."""
    from reconciler.control.apply import REFUSAL, SUSPENDED, refused
    from reconciler.plan.render import render_markdown

    notes = []
    if refused(result.plan, opts):
        notes.append(
            f"⚠️ tt apply would refuse this plan: {REFUSAL.removeprefix('refusing to apply: ')}"
        )
    if result.held == SUSPENDED:
        notes.append("The town is suspended: tt apply plans but applies nothing until tt resume.")
    echo(render_markdown(result.plan, town, tuple(notes)), nl=False)


def say_refusal(result: ApplyResult, opts: ApplyOptions, output: str) -> None:
    """After a dry run's plan: that `tt apply` would refuse it (exit code unchanged)."""
    from reconciler.control.apply import REFUSAL, REFUSAL_HINT, refused

    if output != "json" and refused(result.plan, opts):
        echo(
            f"note: tt apply would refuse this plan: {REFUSAL.removeprefix('refusing to apply: ')}"
        )
        echo(f"hint: {REFUSAL_HINT}")


def fleet_lines(changes: Iterable[FleetChange]) -> None:
    for c in changes:
        echo(f"  agent {c.agent} {c.action}{': ' + c.detail if c.detail else ''}")
