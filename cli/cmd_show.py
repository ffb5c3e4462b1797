"""`tt show TASK`: one task in full: its state, attempts and log and, under `[git]`, its branch,
commits, diffstat and merge (`control/workreport.py` reads; this module renders)."""

from __future__ import annotations

import time
from typing import Any

import click

from .common import echo, emit_json, output_option, session, town_option


def register(group: click.Group) -> None:
    group.add_command(show)


@click.command()
@click.argument("task_id", metavar="TASK")
@town_option
@output_option
def show(task_id: str, town_dir: str | None, output: str) -> None:
    """A task: state, attempts, log; its branch, commits, diffstat and merge under [git]."""
    from reconciler.control import townops

    report = townops.task(session(town_dir), task_id)
    if output == "json":
        emit_json(report)
        return
    _text(report)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts)) if ts else "-"


def _first(text: str | None, width: int = 100) -> str:
    return (str(text or "").splitlines() or [""])[0][:width]


def _text(r: dict[str, Any]) -> None:
    git = r["git"]
    state = str(r["state"])
    if git and state == "running" and git["stage"] in ("committed", "queued", "waiting"):
        from .render import ordinal

        at = git["queue_position"]
        state = f"running: merging ({ordinal(at)} in queue)" if at else "running: merging"
    lines = [("task", r["id"]), ("state", state), ("agent", r["agent"] or r["target"] or "-")]
    if r["description"]:
        lines.append(("description", _first(r["description"])))
    if r["upstream"]:
        lines.append(("upstream", r["upstream"]))
    if r.get("waiting_for"):
        lines.append(("waits for", r["waiting_for"]))
    lines += [("result", _first(r["result"])), ("error", _first(r["error"]))]
    lines += _approval_lines(r.get("approval"))
    lines.append(("log", r["log"] or "-"))
    for key, value in lines:
        if value:
            echo(f"{key + ':':<13}{value}")
    echo(f"{'attempts:':<13}{len(r['attempts'])}")
    for a in r["attempts"]:
        why = _first(a["error"] or a["reason"], 60)
        echo(
            f"  {a['attempt']}  {a['agent'] or '-'}  {a['exit_class'] or a['outcome']}  "
            f"{_when(a['finished_at'] or a['started_at'])}{_costs(a)}" + (f"  {why}" if why else "")
        )
    if git:
        _git_text(git)


def _approval_lines(ap: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not ap:
        return []
    out = []
    if ap["awaiting_since"]:
        out.append(("approval", f"awaiting since {_when(ap['awaiting_since'])}"))
    if ap["approved_by"]:
        said = f": {_first(ap['comment'], 80)}" if ap["comment"] else ""
        out.append(("approved", f"by {ap['approved_by']} at {_when(ap['approved_at'])}{said}"))
    if ap["rejected_by"]:
        why = _first(ap["rejection"], 80)
        out.append(("rejected", f"by {ap['rejected_by']} at {_when(ap['rejected_at'])}: {why}"))
    return out


def _costs(a: dict[str, Any]) -> str:
    """An attempt's duration, tokens and cost, where its CLI told them ("" where not)."""
    parts = []
    if a["duration_s"] is not None:
        parts.append(f"{a['duration_s']:.1f}s")
    t = a["tokens"]
    if t["input"] is not None or t["output"] is not None:
        cached = f" (+{t['cache_read']} cached)" if t["cache_read"] else ""
        parts.append(f"{t['input'] or 0} in{cached} / {t['output'] or 0} out")
    if a["cost_usd"] is not None:
        parts.append(f"${a['cost_usd']:.4f}")
    if a["session_id"]:
        parts.append(f"session {a['session_id']}")
    if a.get("resumed_from"):
        parts.append(f"resumed from {a['resumed_from']}")
    if a.get("resume_rejected"):
        parts.append(f"resume of {a['resume_rejected']} refused: ran fresh")
    return "".join(f"  {p}" for p in parts)


def _git_text(g: dict[str, Any]) -> None:
    echo("git:")
    exists = {True: "", False: " (deleted)", None: ""}[g["branch_exists"]]
    rows = [("branch", f"{g['branch']}{exists}")]
    stage = g["stage"] or "-"
    rows.append(("stage", f"{stage}: {g['note']}" if g["note"] else stage))
    if g["base"]:
        ahead = (
            f" ({g['commits_ahead']} ahead, {g['commits_behind']} behind)"
            if g["commits_ahead"] is not None
            else ""
        )
        rows.append(("base", f"{g['base']} at {(g['base_commit'] or '-')[:12]}{ahead}"))
    rows.append(("head", g["head"] or "-"))
    rows.append(("merged", g["merged_commit"] or "-"))
    tree = g["worktree"] or "-"
    if g["uncommitted"]:
        tree += f" ({len(g['uncommitted'])} uncommitted)"
    rows.append(("worktree", tree))
    if g["check_log"]:
        rows.append(("check log", g["check_log"]))
    if g["error"]:
        rows.append(("git said", g["error"]))
    for key, value in rows:
        echo(f"  {key + ':':<11}{value}")
    for title, items in (
        ("files changed", g["files_changed"]),
        ("outside touches", g["files_outside"]),
        ("conflicts", g["conflicts"]),
    ):
        if items:
            echo(f"  {title} ({len(items)}): " + ", ".join(items[:20]))
    if g["commits"]:
        echo(f"  commits ({len(g['commits'])}):")
        for c in g["commits"]:
            echo(f"    {c['commit'][:7]} {c['subject']}")
    if g["diffstat"]:
        echo("  diffstat:")
        for line in g["diffstat"].splitlines():
            echo(f"   {line}")
