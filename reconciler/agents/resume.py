"""A retry that goes on with the CLI's own session: which session (the previous attempt's, when
it was interrupted rather than failed), the short prompt it gets instead of the whole task, the
arguments that carry the session, and whether the CLI refused it (then the attempt runs fresh).

Pure: attempt records, the model and text in, values out. It runs nothing (`attempt.Runner`
does) and decides no task's fate.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..spec.desired import ModelSpec
from ..store.mail import Message, heading
from .exitclass import ExitClass, classify_record

PLACEHOLDER = "{session}"
# What interrupted an attempt (not what the work itself did): worth going on where it stopped.
RESUMABLE = {
    ExitClass.TIMEOUT: "it ran out of time and was stopped",
    ExitClass.STALLED: "it made no progress for a while and was stopped",
    ExitClass.USAGE_LIMIT: "the provider's usage limit was reached",
    ExitClass.RATE_LIMITED: "the provider rate-limited it",
    ExitClass.KILLED: "its agent stopped or died while it ran",
}
# A session id safe as one argv element: no option, no space (CLIs name theirs so).
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


@dataclass(frozen=True)
class Session:
    """The session of one run: `args` carry it to the CLI; `resumed` says it goes on with an
    earlier one (else it is fresh, under an id tt chose, or under none: `id` None)."""

    id: str | None
    args: tuple[str, ...] = ()
    resumed: bool = False
    why: str = ""
    # Where the run it goes on with ran (its record's workdir, node and agent; None: not told):
    # a CLI keeps its sessions per folder and host (`fits`).
    workdir: str | None = None
    node: str | None = None
    agent: str | None = None


NO_SESSION = Session(None)


def fill(template: Sequence[str], session: str) -> tuple[str, ...]:
    return tuple(part.replace(PLACEHOLDER, session) for part in template)


def fresh(model: ModelSpec) -> Session:
    """A new session: under an id of ours where the CLI takes one (`session_args`)."""
    if not model.session_args:
        return NO_SESSION
    chosen = str(uuid.uuid4())
    return Session(chosen, fill(model.session_args, chosen))


def going_on(
    previous: Mapping[str, object] | None, model: ModelSpec, enabled: bool
) -> Session | None:
    """The session a retry resumes: the previous attempt's, when it was interrupted (timeout,
    stall, usage or rate limit, its agent gone), ran this model, named its session, and the
    model can resume (`resume_args`) and the agent lets it (`resume`). Else None: fresh."""
    if not enabled or not model.resume_args or not previous:
        return None
    session = previous.get("session_id")
    if not isinstance(session, str) or not SESSION_ID.fullmatch(session):
        return None
    if previous.get("model") not in (None, model.name):
        return None
    cls = previous.get("exit_class")
    try:
        ended = ExitClass(cls) if isinstance(cls, str) else None
    except ValueError:
        ended = None
    if ended is None:
        outcome, error = previous.get("outcome") or "", previous.get("error") or ""
        ended = classify_record(str(outcome), str(error))
    why = RESUMABLE.get(ended)
    if why is None:
        return None
    where = {k: v for k in WHERE if isinstance(v := previous.get(k), str) and v}
    return Session(session, fill(model.resume_args, session), True, why, **where)


WHERE = ("workdir", "node", "agent")


def fits(session: Session, workdir: str, node: str, agent: str) -> bool:
    """May this run go on with `session`? Only on the same host, in the same folder (a CLI
    finds its sessions by folder: another agent's folder would continue someone else's work),
    or, where the record does not name its folder (an attempt stopped from outside), with the
    same agent."""
    if session.node is not None and session.node != node:
        return False
    if session.workdir is not None:
        return session.workdir == workdir
    return session.agent in (None, agent)


def plan(
    previous: Mapping[str, object] | None,
    model: ModelSpec,
    *,
    task_id: str,
    attempt: int,
    agent: str,
    town: str,
    messages: Sequence[Message] = (),
) -> tuple[Session, str] | None:
    """The session a retry goes on with and its short prompt (`going_on`), or None: fresh."""
    session = going_on(previous, model, True)
    if session is None:
        return None
    told = resume_prompt(
        task_id=task_id, attempt=attempt, why=session.why, agent=agent, town=town, messages=messages
    )
    return session, told


def resume_prompt(
    *,
    task_id: str,
    attempt: int,
    why: str,
    agent: str,
    town: str,
    messages: Sequence[Message] = (),
) -> str:
    """What a resumed session is told: the task and what was done so far are in the session;
    only why it stopped, the messages that came since, and how to finish are new."""
    parts = [
        f"# Task {task_id} (attempt {attempt}): go on",
        f"Your previous attempt at this task was interrupted: {why}. This session holds the "
        "task and what you did so far; go on from where you stopped, and check what is "
        "already done before you redo anything.",
        "",
    ]
    ordered = sorted(messages, key=lambda m: (not m.urgent, m.ts))
    if ordered:
        parts.append("## Messages for you")
        parts += [f"- {heading(m)}: {m.text}" for m in ordered]
        parts.append("")
    parts += [
        "## Town",
        f"You are agent '{agent}' in the Tinytown town '{town}'. When you are done, end with "
        "a short summary of what you did (of the whole task);",
        f"`tt task complete {task_id} --result TEXT` also completes it.",
    ]
    return "\n".join(parts) + "\n"


def rejected(model: ModelSpec, session: Session, ok: bool, text: str) -> bool:
    """The CLI refused to resume `session` (it has no such session): its answer matches the
    model's `resume_rejected`, or, for a model that names none, its error names the session."""
    if ok or not session.resumed or session.id is None:
        return False
    if model.resume_rejected:
        return any(re.search(p, text) for p in model.resume_rejected)
    return session.id in text
