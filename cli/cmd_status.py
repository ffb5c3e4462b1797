"""`tt status`: the agents, the tasks (with why each waits or failed) and the progress."""

from __future__ import annotations

import time
from typing import Any

import click

from .common import echo, emit_json, output_option, session, town_option


def register(group: click.Group) -> None:
    group.add_command(status)


@click.command()
@town_option
@output_option
def status(town_dir: str | None, output: str) -> None:
    """Agents, tasks and progress."""
    from reconciler.control.report import status_report
    from reconciler.spec.loader import check

    s = session(town_dir)
    report = status_report(s.store, check(s.paths).desired)
    if output == "json":
        emit_json(report)
        return
    from .render import model_cell, progress_line, table

    agents = report["agents"]
    if agents:
        table(
            ["AGENT", "MODEL", "STATE", "TASK"],
            [[a["name"], model_cell(a), a["state"], a["task"] or "-"] for a in agents],
        )
        echo()
    tasks = report["tasks"]
    states = {t["id"]: t["state"] for t in tasks}
    if tasks:
        table(
            ["TASK", "STATE", "AGENT", "ATTEMPTS", "INFO"],
            [
                [
                    t["id"],
                    t["state"],
                    t["agent"] or t["target"] or "-",
                    t["attempts"],
                    _info(t, states),
                ]
                for t in tasks
            ],
        )
        echo()
    echo(progress_line(report["counts"]))


def _info(t: dict[str, Any], states: dict[str, str]) -> str:
    if t["state"] == "failed" and t["error"]:
        return str(t["error"]).splitlines()[0][:100]
    if t["state"] == "retrying" and t["next_attempt_at"]:
        return f"next attempt in {max(0, t['next_attempt_at'] - time.time()):.0f}s: " + (
            str(t["error"] or "").splitlines()[0][:60] if t["error"] else ""
        )
    if t["state"] == "blocked":
        return f"waiting for {t['deps_left']}"
    if t["state"] == "upstream_failed":
        what = "was cancelled" if states.get(t["upstream"]) == "cancelled" else "failed"
        return f"upstream {t['upstream']} {what}: tt retry {t['upstream']}"
    return ""
