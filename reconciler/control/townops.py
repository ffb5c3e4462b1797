"""The town's operations as one facade, each returning plain JSON-ready values: the shapes of the
CLI's `-o json` (`tt status`, `tt list`, `tt show`, `tt graph`, `tt plan`, `tt apply`,
`tt events`), built here once so the CLI, the HTTP API (`reconciler/api`) and the MCP server
cannot drift apart. Each takes a `Session` and calls the engine (reports, verbs, apply); the
same rule as the CLI holds: what should exist is edited in the files, what runs in Redis.
No rendering, no printing; errors are the engine's `TtError`s, with the CLI's messages.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import NotFound, TtError
from ..spec import loader
from ..spec.events import event_json
from ..spec.names import RESERVED_AGENT_NAMES, did_you_mean
from ..store.mail import KINDS, mailbox
from . import verbs
from .apply import SUSPENDED, ApplyOptions, ApplyResult
from .apply import apply as run_apply
from .session import Session

LOG_TAIL = 50  # lines of a task's latest log in `task`
EVENT_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")
ID_MOST = 2**64 - 1  # the largest part of a Redis stream id
EVENTS_MOST = 100_000  # what `tt events` reads back at most


def town_status(s: Session, *, deep: bool = False) -> dict[str, Any]:
    """`tt status -o json` (README "Status JSON"); `deep`: `tt status --deep -o json`."""
    from .report import status_report

    report = status_report(s.store, loader.check(s.files_paths()).desired, s.paths)
    if deep:
        from .deep import deep_rows

        report["deep"] = deep_rows(s.store, report["agents"], s.paths.logs_dir)
    return report


def agents(s: Session) -> list[dict[str, Any]]:
    """`tt list -o json`: one row per agent instance."""
    from .report import agents_report

    return agents_report(s.store, s.desired())


def tasks(s: Session) -> list[dict[str, Any]]:
    """The `tasks` of `tt status -o json`: one row per task in file order."""
    from .report import tasks_report

    desired = loader.check(s.files_paths()).desired
    return tasks_report(s.store, git=desired is None or desired.git is not None)


def task(s: Session, task_id: str, *, tail: int = LOG_TAIL) -> dict[str, Any]:
    """`tt show TASK -o json`: the task, its attempts, git; and `log_tail`, the last `tail`
    non-empty lines of its latest log ([] when it has none)."""
    from .deep import tail as tail_of
    from .workreport import show_report

    report = show_report(s.store, s.paths, loader.check(s.files_paths()).desired, task_id)
    report["log_tail"] = tail_of(Path(report["log"]), tail) if report["log"] else []
    return report


def graph(s: Session) -> dict[str, Any]:
    """`tt graph -o json` (version 1): the task DAG with each task's state."""
    from ..plan.dag import dag_report

    desired = s.desired()
    records = {r["id"]: r for r in s.store.task_records()}
    return dag_report(desired, records, desired.town.name)


def apply_json(result: ApplyResult) -> dict[str, Any]:
    """`tt apply -o json` / `tt plan -o json`: the plan (version 1, `Plan.as_json`), whether it
    was applied, the generation and the agents started or stopped."""

    data = result.plan.as_json()
    data.update(
        {
            "applied": result.applied,
            "suspended": result.held == SUSPENDED,
            "generation": result.generation,
            "agents": [
                {"agent": c.agent, "action": c.action, "detail": c.detail} for c in result.fleet
            ],
        }
    )
    return data


def plan(s: Session, *, prune: bool = True, rerun_changed: bool = False) -> dict[str, Any]:
    """`tt plan -o json`: what `tt apply` would change; nothing is written."""
    from .apply import ApplyOptions, apply
    from .applylock import PLAN_LOCK_WAIT

    opts = ApplyOptions(
        dry_run=True,
        prune=prune,
        rerun_changed=rerun_changed,
        command="tt plan",
        lock_timeout=PLAN_LOCK_WAIT,
    )
    return apply_json(apply(s, opts))


def apply(s: Session, opts: ApplyOptions) -> dict[str, Any]:
    """`tt apply -o json`."""

    return apply_json(run_apply(s, opts))


def event_key(value: str, what: str = "after") -> tuple[int, int]:
    """An event id as (milliseconds, sequence), for ordering; a TtError naming `what` for a
    value that is no event id (Redis' parts are unsigned 64-bit numbers)."""
    if EVENT_ID.match(value):
        ms, _, seq = value.partition("-")
        key = (int(ms), int(seq or 0))
        if max(key) <= ID_MOST:
            return key
    raise TtError(
        f"{what} = {value[:40]!r} is not an event id",
        hint="an id like 1765100000000-0, as events carry it",
    )


def event_entries(
    s: Session, *, after: str | None = None, last: int | None = None, agent: str | None = None
) -> list[tuple[str, dict[str, str]]]:
    """The stored events, oldest first: those after the event id `after` (exclusive), else the
    `last` ones (every one kept: None); only `agent`'s when given."""
    if after is not None:
        event_key(after, "after")
    entries = s.store.events_since(after or "-", count=EVENTS_MOST)
    if agent is not None:
        entries = [e for e in entries if e[1].get("agent") == agent]
    if after is None and last is not None:
        entries = entries[-last:] if last else []
    return entries


def events(
    s: Session, *, after: str | None = None, last: int | None = None, agent: str | None = None
) -> list[dict[str, Any]]:
    """`tt events -o json` (one object per line there; a list here): `event_entries` typed
    (`spec.events.event_json`, version 1)."""
    return [event_json(i, f) for i, f in event_entries(s, after=after, last=last, agent=agent)]


def add_task(
    s: Session,
    agent: str,
    description: str,
    *,
    task_id: str | None = None,
    after: str | None = None,
    save: bool = True,
    opts: ApplyOptions | None = None,
) -> dict[str, Any]:
    """`tt assign`: a task for `agent` appended to tasks.toml and applied (`save` False: in
    Redis only). {id, agent, saved, apply: the apply's JSON or null}."""
    from .apply import ApplyOptions

    opts = opts or ApplyOptions(command="tt assign")
    tid, result = verbs.assign(
        s, agent, description, task_id=task_id, after=after, save=save, opts=opts
    )
    return {
        "id": tid,
        "agent": agent,
        "saved": save,
        "apply": None if result is None else apply_json(result),
    }


def retry(s: Session, task_id: str) -> dict[str, Any]:
    """`tt retry`: re-run a failed, completed or cancelled task. {id, state}."""

    return {"id": task_id, "state": verbs.retry(s, task_id).value}


def cancel(s: Session, task_id: str) -> dict[str, Any]:
    """`tt cancel`: status = "cancelled" in tasks.toml, then applied (a task made with
    --no-save: in Redis). {id, state: its state after (a skipped task stays skipped), apply:
    the apply's JSON or null}."""
    from .apply import ApplyOptions

    result = verbs.cancel(s, task_id, ApplyOptions(command="tt cancel"))
    state = s.store.task_hash(task_id).get("state") or None
    return {
        "id": task_id,
        "state": state,
        "apply": None if result is None else apply_json(result),
    }


def restart_agent(s: Session, name: str) -> dict[str, Any]:
    """`tt restart NAME`: stop its process and start it again. {agent, old_pid, new_pid (null
    where none), fleet: the other agents started or stopped meanwhile}."""

    done = verbs.restart(s, name)
    return {
        "agent": name,
        "old_pid": int(done.old_pid) if done.old_pid else None,
        "new_pid": int(done.new_pid) if done.new_pid.isdigit() else None,
        "fleet": [
            {"agent": c.agent, "action": c.action, "detail": c.detail}
            for c in done.fleet
            if c.agent != name
        ],
    }


def mailbox_of(s: Session, name: str) -> str:
    """The mailbox a message to `name` goes to: an agent instance of town.toml, or the one a
    person reads (conductor and supervisor, any case)."""
    lowered = name.lower()
    if lowered in RESERVED_AGENT_NAMES:
        return mailbox(lowered)
    names = [n for a in s.desired().agents for n in (a.name, *a.instances())]
    if name not in names:
        raise NotFound(f"no agent '{name}' in town.toml", hint=did_you_mean(name, names))
    return name


def send_message(
    s: Session,
    to: str,
    text: str,
    *,
    urgent: bool = False,
    kind: str = "",
    sender: str = "conductor",
) -> dict[str, Any]:
    """`tt send`: a message kept until read (urgent ones first), of a kind (query, info, ack)
    or none. {to: the mailbox, from, urgent, kind}."""
    if kind and kind not in KINDS:
        raise TtError(f"unknown message kind '{kind[:40]}'", hint=f"one of: {', '.join(KINDS)}")
    box = mailbox_of(s, to)
    s.store.send(box, sender, text, urgent=urgent, kind=kind)
    return {"to": box, "from": sender, "urgent": urgent, "kind": kind or None}
