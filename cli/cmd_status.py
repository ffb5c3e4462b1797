"""`tt status`: the agents, the tasks (with why each waits or failed) and the progress."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from .common import echo, emit_json, output_option, session, town_option

if TYPE_CHECKING:
    from reconciler.control.session import Session


def register(group: click.Group) -> None:
    group.add_command(status)


@click.command()
@town_option
@output_option
@click.option(
    "--deleted",
    is_flag=True,
    help="The tasks pruned from the files, kept as tombstones (`keep_deleted`).",
)
@click.option(
    "--tasks", "by_task", is_flag=True, help="Then the tasks counted per state and agent."
)
@click.option(
    "--deep",
    is_flag=True,
    help="Then per agent: its current attempt, heartbeat and the tail of its latest log.",
)
def status(town_dir: str | None, output: str, deleted: bool, by_task: bool, deep: bool) -> None:
    """Agents, tasks and progress."""
    _status(town_dir, output, deleted, deep)
    if output == "json" or deleted:
        return
    if by_task:
        from collections import Counter

        counts = Counter(
            (r.get("state", "?"), r.get("target") or "(backlog)")
            for r in session(town_dir).store.task_records()
        )
        echo()
        for (state, agent), n in sorted(counts.items()):
            echo(f"{state:16} {agent:20} {n}")


def _show_deep(rows: list[dict[str, Any]]) -> None:
    """Per agent: a line of its attempt and heartbeat, then its log's last lines, indented."""
    from reconciler.spec.durations import format_duration

    for r in rows:
        parts = [f"{r['name']}: {r['state']}"]
        if r["task"]:
            attempt = f", attempt {r['attempt']}" if r["attempt"] else ""
            ran = r["running_for"]
            parts.append(
                f"task {r['task']}{attempt}"
                + (f", running for {format_duration(round(ran))}" if ran is not None else "")
            )
        age = r["heartbeat_age"]
        parts.append("no heartbeat" if age is None else f"heartbeat {age:g}s ago")
        echo(", ".join(parts))
        if r["log"] is None:
            echo("  (no log yet)")
            continue
        echo(f"  {r['log']}:")
        for line in r["tail"]:
            echo(f"    {line}")


def _status(town_dir: str | None, output: str, deleted: bool, deep: bool = False) -> None:
    from reconciler.control import townops

    s = session(town_dir)
    if deleted:
        _deleted(s, output)
        return
    report = townops.town_status(s, deep=deep)
    if output == "json":
        emit_json(report)
        return
    from reconciler.control.syncstatus import SEPARATOR, attempt_text, line_parts

    from .render import health_line, model_cell, progress_line, table

    echo(SEPARATOR.join(line_parts(report)))
    if tried := attempt_text(report):
        echo(tried)
    echo(health_line(report["health"]))
    for line in limit_lines(report):
        echo(line)
    echo()

    agents = report["agents"]
    if agents:
        nodes = any(a["node"] for a in agents)  # a NODE column once an agent runs on one
        table(
            ["AGENT", "MODEL", "STATE", *(["NODE"] if nodes else []), "TASK"],
            [
                [a["name"], model_cell(a), _agent_state(a)]
                + ([a["node"] or "-"] if nodes else [])
                + [a["task"] or "-"]
                for a in agents
            ],
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
                    _state(t),
                    t["agent"] or t["target"] or "-",
                    t["attempts"],
                    _info(t, states),
                ]
                for t in tasks
            ],
        )
        echo()
    if report["awaiting_approval"]:
        echo(f"awaiting approval: {', '.join(report['awaiting_approval'])}")
        echo("  tt approve TASK [--comment TEXT] | tt reject TASK --reason TEXT")
    echo(progress_line(report["counts"]))
    if report.get("drift"):  # [town] self_heal = false: drift is reported, not healed
        echo(f"drift: {report['drift']} items (tt diff --drift)")
    if deep:
        echo()
        _show_deep(report["deep"])


def limit_lines(report: dict[str, Any]) -> list[str]:
    """A line per paused provider, and per budget reached."""
    from .cmd_usage import budget_lines

    lines = [
        f"{p['provider']}: paused until {pause_end(p['paused_until'], time.time())}"
        f" ({p['reason']}): tt resume-provider {p['provider']} ends it now"
        for p in report["providers"]
    ]
    reached = [line for line in budget_lines(report["budgets"]) if line.endswith("starts")]
    return lines + reached


def pause_end(until: float, now: float) -> str:
    """When a pause ends, local time: `15:30` today, else with its date (`2026-12-08 15:30`)."""
    end = time.localtime(until)
    if time.strftime("%Y-%m-%d", end) == time.strftime("%Y-%m-%d", time.localtime(now)):
        return time.strftime("%H:%M", end)
    return time.strftime("%Y-%m-%d %H:%M", end)


def _agent_state(a: dict[str, Any]) -> str:
    """Its state; an unschedulable agent's with why (its node never registered, or is dead)."""
    return f"{a['state']} ({a['reason']})" if a["state"] == "unschedulable" else str(a["state"])


def _state(t: dict[str, Any]) -> str:
    """A running task whose commit is on its way into base shows as merging, with its place."""
    merging = t.get("merging")
    if not merging:
        return str(t["state"])
    from .render import ordinal

    at = merging["position"]
    return f"merging ({ordinal(at)} in queue)" if at else "merging"


def _info(t: dict[str, Any], states: dict[str, str]) -> str:
    if t.get("merging") and t["merging"]["waiting"] is not None:
        return f"waiting: {t['merging']['waiting']}"
    if t["state"] == "failed" and t["error"]:
        return str(t["error"]).splitlines()[0][:100]
    if t.get("waiting_for") == "budget":
        return "waits for budget (raise it in the files)"
    if t["state"] == "retrying" and t["next_attempt_at"]:
        return f"next attempt in {max(0, t['next_attempt_at'] - time.time()):.0f}s: " + (
            str(t["error"] or "").splitlines()[0][:60] if t["error"] else ""
        )
    if t["state"] == "ready" and t.get("waiting_for"):
        return f"waits for {t['waiting_for']} (touches overlap)"
    if t["state"] == "blocked":
        return f"waiting for {t['deps_left']}"
    if t["state"] == "awaiting_approval":
        return f"tt approve {t['id']} / tt reject {t['id']} --reason TEXT"
    if t["state"] == "ready" and (t.get("approval") or {}).get("rejection"):
        return f"rejected by {t['approval']['rejected_by']}: {t['approval']['rejection'][:60]}"
    if t["state"] == "upstream_failed":
        up = t["upstream"]
        if up not in states:  # pruned from the files (a tombstone) or gone
            return f"upstream {up} was deleted: put it back in tasks.toml (tt status --deleted)"
        what = "was cancelled" if states.get(up) == "cancelled" else "failed"
        return f"upstream {up} {what}: tt retry {up}"
    return ""


def _deleted(s: Session, output: str) -> None:
    """`tt status --deleted`: the tombstones, oldest first."""
    from reconciler.control.report import deleted_report

    rows = deleted_report(s.store, s.paths.logs_dir, s.settings.policy.keep_deleted)
    if output == "json":
        emit_json({"town": s.store.town, "deleted": rows})
        return
    from .render import table

    if not rows:
        echo("no deleted tasks are kept")
        return

    def when(ts: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts))

    table(
        ["TASK", "STATE", "ATTEMPTS", "DELETED", "KEPT UNTIL", "RESULT"],
        [
            [
                r["id"],
                r["state"],
                r["attempts"],
                when(r["deleted_at"]),
                when(r["keep_until"]),
                (str(r["result"] or r["error"] or "").splitlines() or [""])[0][:60],
            ]
            for r in rows
        ],
    )
    echo()
    echo(
        f"{len(rows)} deleted task(s) kept as tombstones: put an id back in tasks.toml to "
        "restore it as it was (not re-run)"
    )
