"""Agent verbs that act on what is running: list, send, inbox, logs, events, agent run, task."""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

import click

from reconciler.errors import NotFound, TtError
from reconciler.spec.names import RESERVED_AGENT_NAMES, did_you_mean

from .common import echo, emit_json, output_option, session, town_option

if TYPE_CHECKING:
    from reconciler.control.session import Session


def register(group: click.Group) -> None:
    for cmd in (list_agents, send, inbox, logs, events, agent, task):
        group.add_command(cmd)


@click.command("list")
@town_option
@output_option
def list_agents(town_dir: str | None, output: str) -> None:
    """The agents: model, role, state, pid, current task, heartbeat age, restarts."""
    from reconciler.control.report import agents_report, health_report

    s = session(town_dir)
    desired = s.desired()
    rows = agents_report(s.store, desired)
    if output == "json":
        emit_json(rows)
        return
    from .render import health_line, model_cell, table

    health = health_line(health_report(s.store, desired, rows).as_json())
    if not rows:
        echo("No agents. Add one with: tt spawn NAME --model MODEL")
        echo(health)
        return

    table(
        ["AGENT", "MODEL", "ROLE", "STATE", "PID", "TASK", "HEARTBEAT", "RESTARTS", "REASON"],
        [
            [
                r["name"],
                model_cell(r),
                r["role"] or "-",
                r["state"],
                r["pid"] or "-",
                r["task"] or "-",
                "-" if r["heartbeat_age"] is None else f"{r['heartbeat_age']}s",
                r["restarts"],
                r["reason"] or "-",
            ]
            for r in rows
        ],
        fit_last=True,
    )
    echo()
    echo(health)


def _mailbox(s: Session, name: str) -> str:
    lowered = name.lower()
    if lowered in RESERVED_AGENT_NAMES:
        return lowered
    names = [n for a in s.desired().agents for n in (a.name, *a.instances())]
    if name not in names:
        raise NotFound(f"no agent '{name}' in town.toml", hint=did_you_mean(name, names))
    return name


@click.command()
@click.argument("agent")
@click.argument("message")
@click.option("--urgent", is_flag=True, help="Deliver before every normal message.")
@click.option("--from", "sender", default="conductor", show_default=True, help="Sender name.")
@town_option
def send(agent: str, message: str, urgent: bool, sender: str, town_dir: str | None) -> None:
    """Send MESSAGE to AGENT (kept until read; urgent ones first)."""
    s = session(town_dir)
    to = _mailbox(s, agent)
    s.store.send(to, os.environ.get("TT_AGENT", sender), message, urgent=urgent)
    echo(f"{'urgent ' if urgent else ''}message sent to {to}")


@click.command()
@click.argument("agent")
@click.option(
    "--take",
    is_flag=True,
    help="Take the messages (mark them read), as the agent itself does; default when TT_AGENT "
    "is AGENT.",
)
@click.option("--peek", is_flag=True, help="Only look, even as the agent itself (the default).")
@town_option
@output_option
def inbox(agent: str, take: bool, peek: bool, town_dir: str | None, output: str) -> None:
    """Show AGENT's messages (conductor and supervisor are mailboxes too); those the agent took
    and has not answered yet come first, and stay its to answer. Looking leaves them for the
    agent; the agent itself (TT_AGENT) or --take takes them."""
    if take and peek:
        raise click.UsageError("--take and --peek exclude each other")
    s = session(town_dir)
    to = _mailbox(s, agent)
    take = take or (not peek and os.environ.get("TT_AGENT") == to)
    pending = s.store.unanswered(to)
    msgs = pending + (s.store.take_messages(to) if take else s.store.peek_messages(to))
    if output == "json":
        emit_json(
            [{"from": m.sender, "text": m.text, "urgent": m.urgent, "ts": m.ts} for m in msgs]
        )
        return
    if not msgs:
        echo(f"No messages for {to}.")
    for m in msgs:
        stamp = time.strftime("%H:%M:%S", time.localtime(m.ts)) if m.ts else "--:--:--"
        echo(f"{stamp} {'URGENT ' if m.urgent else ''}{m.sender}: {m.text}")


@click.command()
@click.argument("agent", metavar="NAME")
@click.argument("task_id", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing as the log grows.")
@town_option
def logs(agent: str, task_id: str | None, follow: bool, town_dir: str | None) -> None:
    """Show AGENT's log, or its latest attempt of TASK_ID; `tt logs TASK` shows the latest
    attempt of that task, whichever agent ran it."""
    from reconciler.control.logs import log_file

    path = log_file(session(town_dir), agent, task_id)
    with open(path, "rb") as f:
        while True:
            chunk = f.read()
            if chunk:
                echo(chunk.decode(errors="replace"), nl=False)
            elif not follow:
                return
            else:
                time.sleep(0.2)


@click.command()
@click.option("--follow", is_flag=True, help="Keep printing new events.")
@click.option("-n", "--last", "last", type=int, default=50, show_default=True)
@town_option
@output_option
def events(follow: bool, last: int, town_dir: str | None, output: str) -> None:
    """The town's event stream: claims, completions, failures, messages, restarts."""
    s = session(town_dir)
    entries = s.store.events_since("-", count=100000)[-last:] if last else []
    cursor = entries[-1][0] if entries else "$"
    while True:
        for eid, fields in entries:
            _print_event(eid, fields, output)
        if not follow:
            return
        entries = s.store.events_since(cursor, block_ms=5000)
        if entries:
            cursor = entries[-1][0]


def _print_event(eid: str, fields: dict[str, str], output: str) -> None:
    from .events import event_json, event_line

    if output == "json":
        echo(json.dumps(event_json(eid, fields)))
    else:
        echo(event_line(fields))


@click.group(hidden=True)
def agent() -> None:
    """The worker process of an agent (started by tt, not by people)."""


@agent.command("run")
@click.argument("name")
@town_option
def agent_run(name: str, town_dir: str | None) -> int:
    """Run the worker loop of agent NAME in the foreground."""
    from reconciler.agents.worker import run_agent

    s = session(town_dir)
    return run_agent(s.paths, s.desired(), name, s.store)


@click.group()
def task() -> None:
    """Act on one task from inside an agent (or by hand)."""


@task.command("complete")
@click.argument("task_id")
@click.option("--result", default="", help="The result passed to dependent tasks.")
@town_option
def task_complete(task_id: str, result: str, town_dir: str | None) -> None:
    """Complete the current attempt of TASK_ID with RESULT."""
    from reconciler.agents.worker import complete_current

    s = session(town_dir)
    token = os.environ.get("TT_ATTEMPT_TOKEN") if os.environ.get("TT_TASK") == task_id else None
    deferred = token is not None and s.desired().git is not None
    if not complete_current(s.store, task_id, result, token, deferred):
        raise TtError(f"task '{task_id}' was not completed (its attempt is no longer current)")
    if deferred:
        echo(f"task {task_id}: result recorded; it completes once its work is merged")
    else:
        echo(f"task {task_id} completed")
