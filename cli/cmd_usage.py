"""`tt usage`: tokens and USD of the town's attempts, summed per town, agent, model and task;
`tt resume-provider NAME`: end a provider's pause (a usage or rate limit) now."""

from __future__ import annotations

from typing import Any

import click

from .common import echo, emit_json, output_option, session, town_option


def register(group: click.Group) -> None:
    group.add_command(usage)
    group.add_command(resume_provider)


@click.command()
@town_option
@output_option
def usage(town_dir: str | None, output: str) -> None:
    """Tokens and USD of every attempt: the town, then per agent, model and task."""
    from reconciler.control.usage import usage_report
    from reconciler.spec.loader import check

    s = session(town_dir)
    report = usage_report(s.store, check(s.files_paths()).desired)
    if output == "json":
        emit_json(report)
        return
    from .render import table

    rows = [_row("town", report["town"], report["total"])]
    for group, scope in (("agents", "agent"), ("models", "model"), ("tasks", "task")):
        rows += [_row(scope, r["name"], r) for r in report[group]]
    table(
        ["SCOPE", "NAME", "ATTEMPTS", "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE", "USD"],
        rows,
    )
    unknown = report["total"]["unknown_cost"]
    if unknown:
        echo(f"{unknown} attempt(s) of unknown cost (the CLI told none) counted as $0")
    for line in budget_lines(report["budgets"]):
        echo(line)


def _row(scope: str, name: str, r: dict[str, Any]) -> list[object]:
    t = r["tokens"]
    cost = f"{r['cost_usd']:.4f}" + ("*" if r["unknown_cost"] else "")
    return [
        scope,
        name,
        r["attempts"],
        t["input"],
        t["output"],
        t["cache_read"],
        t["cache_write"],
        cost,
    ]


def budget_lines(budgets: dict[str, Any]) -> list[str]:
    """One line per budget set: spent of limit, and whether it is reached."""
    scopes = [("town", budgets["town"])] + [(f"agent {n}", b) for n, b in budgets["agents"].items()]
    lines = []
    for name, b in scopes:
        if b["limit"] is None:
            continue
        reached = ": reached, no new attempt starts" if b["reached"] else ""
        lines.append(f"budget {name}: ${b['spent']:.4f} of ${b['limit']:.4f}{reached}")
    return lines


@click.command("resume-provider")
@click.argument("name")
@town_option
def resume_provider(name: str, town_dir: str | None) -> None:
    """End the pause of provider NAME (a usage or rate limit) now: its agents claim again."""
    from reconciler.control.limits import resume_provider as resume
    from reconciler.spec.loader import check

    s = session(town_dir)
    if resume(s.store, check(s.files_paths()).desired, name):
        echo(f"resumed provider '{name}': its agents take tasks again")
    else:
        echo(f"provider '{name}' was not paused")
