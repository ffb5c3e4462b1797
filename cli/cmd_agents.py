"""Agent verbs that act on what is running: list, send, inbox, logs, events, agent run, task."""

from __future__ import annotations

import json
import os
import time

import click

from reconciler.errors import NotFound, TtError
from reconciler.store.mail import heading

from .common import echo, emit_json, output_option, session, town_option


def register(group: click.Group) -> None:
    for cmd in (list_agents, send, inbox, logs, events, agent, task):
        group.add_command(cmd)


@click.command("list")
@town_option
@output_option
def list_agents(town_dir: str | None, output: str) -> None:
    """The agents: model, role, state, pid, current task, heartbeat age, restarts."""
    from reconciler.control import townops

    s = session(town_dir)
    rows = townops.agents(s)
    if output == "json":
        emit_json(rows)
        return
    from reconciler.control.report import health_report

    from .render import health_line, model_cell, table

    health = health_line(health_report(s.store, s.desired(), rows).as_json())
    if not rows:
        echo("No agents. Add one with: tt spawn NAME --model MODEL")
        echo(health)
        return

    # A NODE column once an agent runs on a node (`tt node run`): "-" is the controller's host.
    nodes = any(r["node"] for r in rows)
    node = ["NODE"] if nodes else []
    table(
        [
            "AGENT",
            "MODEL",
            "ROLE",
            "STATE",
            *node,
            "PID",
            "TASK",
            "HEARTBEAT",
            "RESTARTS",
            "REASON",
        ],
        [
            [
                r["name"],
                model_cell(r),
                r["role"] or "-",
                r["state"],
                *([r["node"] or "-"] if nodes else []),
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


@click.command()
@click.argument("agent")
@click.argument("message")
@click.option("--urgent", is_flag=True, help="Deliver before every normal message.")
@click.option("--from", "sender", default="conductor", show_default=True, help="Sender name.")
@click.option(
    "--query", "kind", flag_value="query", help="A question to answer (Tinytown's kinds)."
)
@click.option("--info", "kind", flag_value="info", help="For information: no answer expected.")
@click.option("--ack", "kind", flag_value="ack", help="An acknowledgement.")
@town_option
def send(
    agent: str, message: str, urgent: bool, sender: str, kind: str | None, town_dir: str | None
) -> None:
    """Send MESSAGE to AGENT (kept until read; urgent ones first). Its kind (--query, --info,
    --ack) is kept on the message: the agent's prompt and `tt inbox` show it. conductor and
    supervisor are one mailbox, the one a person reads."""
    from reconciler.control.townops import send_message

    sent = os.environ.get("TT_AGENT", sender)
    to = send_message(
        session(town_dir), agent, message, urgent=urgent, kind=kind or "", sender=sent
    )["to"]
    echo(f"{'urgent ' if urgent else ''}{kind + ' ' if kind else ''}message sent to {to}")


@click.command()
@click.argument("agent", required=False)
@click.option("-a", "--all", "every", is_flag=True, help="Every agent's inbox and the mailbox.")
@click.option(
    "--take",
    is_flag=True,
    help="Take the messages (mark them read), as the agent itself does; default when TT_AGENT "
    "is AGENT.",
)
@click.option("--peek", is_flag=True, help="Only look, even as the agent itself (the default).")
@town_option
@output_option
def inbox(
    agent: str | None, every: bool, take: bool, peek: bool, town_dir: str | None, output: str
) -> None:
    """Show AGENT's messages (conductor and supervisor are mailboxes too); those the agent took
    and has not answered yet come first, and stay its to answer. Looking leaves them for the
    agent; the agent itself (TT_AGENT) or --take takes them. --all: every inbox, peeked."""
    if take and peek:
        raise click.UsageError("--take and --peek exclude each other")
    s = session(town_dir)
    if every or agent is None:
        if not every:
            raise TtError("tt inbox needs an agent", hint="tt inbox AGENT, or tt inbox --all")
        names = [n for a in s.desired().agents for n in a.instances()] + ["conductor"]
        for name in names:
            n = len(s.store.unanswered(name)) + len(s.store.peek_messages(name))
            echo(f"{name}: {n} message{'s' if n != 1 else ''}")
        return
    from reconciler.control.townops import mailbox_of

    to = mailbox_of(s, agent)
    take = take or (not peek and os.environ.get("TT_AGENT") == to)
    pending = s.store.unanswered(to)
    msgs = pending + (s.store.take_messages(to) if take else s.store.peek_messages(to))
    if output == "json":
        emit_json(
            [
                {"from": m.sender, "text": m.text, "urgent": m.urgent, "ts": m.ts, "kind": m.kind}
                for m in msgs
            ]
        )
        return
    if not msgs:
        echo(f"No messages for {to}.")
    for m in msgs:
        stamp = time.strftime("%H:%M:%S", time.localtime(m.ts)) if m.ts else "--:--:--"
        echo(f"{stamp} {heading(m)}: {m.text}")


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
@click.option("-n", "--last", "--count", "last", type=int, default=50, show_default=True)
@click.option("-a", "--agent", "agent", default=None, help="Only the events of this agent.")
@click.option("--mission", default=None, hidden=True, help="Tinytown's: tt has no missions.")
@town_option
@output_option
def events(
    follow: bool,
    last: int,
    agent: str | None,
    mission: str | None,
    town_dir: str | None,
    output: str,
) -> None:
    """The town's event stream: claims, completions, failures, messages, restarts."""
    if mission is not None:
        raise TtError("tt has no missions: tt events --agent NAME shows one agent's events")
    from reconciler.control.townops import event_entries

    s = session(town_dir)
    entries = event_entries(s, last=last, agent=agent)
    cursor = entries[-1][0] if entries else "$"
    while True:
        for eid, fields in entries:
            _print_event(eid, fields, output)
        if not follow:
            return
        entries = s.store.events_since(cursor, block_ms=5000)
        if entries:
            cursor = entries[-1][0]
        if agent is not None:
            entries = [e for e in entries if e[1].get("agent") == agent]


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
    return run_agent(s.paths, s.roster(), name, s.store)


@click.group()
def task() -> None:
    """Act on one task from inside an agent (or by hand)."""


@task.command("show")
@click.argument("task_id")
@town_option
@click.pass_context
def task_show(ctx: click.Context, task_id: str, town_dir: str | None) -> None:
    """The same as `tt show TASK`."""
    from .cmd_show import show

    ctx.invoke(show, task_id=task_id, town_dir=town_dir, output="text")


@task.command("list")
@click.option("--state", default=None, help="Only the tasks in this state.")
@town_option
def task_list(state: str | None, town_dir: str | None) -> None:
    """Every task: state and agent (`tt status` shows progress)."""
    for rec in session(town_dir).store.task_records():
        if state is None or rec.get("state") == state:
            echo(f"{rec['id']}: {rec.get('state', '')}, agent {rec.get('target') or '(backlog)'}")


@task.command("current")
@click.argument("agent", required=False)
@town_option
def task_current(agent: str | None, town_dir: str | None) -> None:
    """AGENT's current task (default: $TT_AGENT)."""
    name = agent or os.environ.get("TT_AGENT") or ""
    records = session(town_dir).store.agent_records()
    if name not in records:
        raise NotFound(f"no agent '{name}' is known", hint="tt task current AGENT; tt list")
    current = records[name].get("task") or ""
    echo(f"{name}: {current}" if current else f"{name} has no current task")


@task.command("complete")
@click.argument("task_id")
@click.option("--result", default="", help="The result passed to dependent tasks.")
@town_option
def task_complete(task_id: str, result: str, town_dir: str | None) -> None:
    """Complete the current attempt of TASK_ID with RESULT."""
    from reconciler.agents.completion import complete_current

    s = session(town_dir)
    token = os.environ.get("TT_ATTEMPT_TOKEN") if os.environ.get("TT_TASK") == task_id else None
    git = s.desired().git is not None
    if git and token is None:
        raise TtError(
            f"task '{task_id}' completes once its work is committed and merged ([git] is on)",
            hint=f"let its attempt finish; tt cancel {task_id} stops it; tt show {task_id}",
        )
    deferred = git
    if not complete_current(s.store, task_id, result, token, deferred):
        raise TtError(f"task '{task_id}' was not completed (its attempt is no longer current)")
    if deferred:
        echo(f"task {task_id}: result recorded; it completes once its work is merged")
    else:
        echo(f"task {task_id} completed")
