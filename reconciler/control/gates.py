"""`tt approve` and `tt reject`: a person's word on a task awaiting approval (`approve = true`,
or a manual gate). They act on what is running (Redis), like `tt retry` of a failed task: the
files do not change (a task completed by approval is written back by `tt sync pull` as any
other completion). The transitions are Lua scripts (`approve.lua`, `reject.lua`).
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from ..errors import TtError
from ..plan.state import TaskState
from .session import Session
from .verbs import _existing


@dataclass(frozen=True)
class Decision:
    task: str
    by: str
    state: TaskState  # what the task is now: completed, ready (runs again / merges), failed


def person(by: str | None) -> str:
    """Who decides: `--by NAME`, else the OS user."""
    if by is not None and by.strip():
        return by.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment nor the password database
        return "unknown"


def approve(s: Session, task_id: str, *, comment: str = "", by: str | None = None) -> Decision:
    """Let a task awaiting approval go on: completed (its dependents released), or, when its
    [git] commit still waits to be merged, back to its queue to merge it."""
    _existing(s, task_id)
    who = person(by)
    done, state = s.store.approve(task_id, who, comment)
    if not done:
        raise _not_awaiting(task_id, state, "approved")
    return Decision(task_id, who, TaskState(state))


def reject(s: Session, task_id: str, reason: str, *, by: str | None = None) -> Decision:
    """Reopen a task awaiting approval: it runs again with `reason` in its prompt, counting
    against its retries (failed, `rejected: REASON`, when they are spent; a gate fails)."""
    if not reason.strip():
        raise TtError("a rejection needs a reason: the next attempt is told it", hint=_HINT)
    _existing(s, task_id)
    who = person(by)
    done, state = s.store.reject(task_id, who, reason.strip(), s.settings.policy)
    if not done:
        raise _not_awaiting(task_id, state, "rejected")
    return Decision(task_id, who, TaskState(state))


_HINT = 'tt reject TASK --reason "what to change"'


def _not_awaiting(task_id: str, state: str, verb: str) -> TtError:
    return TtError(
        f"task '{task_id}' is {state or 'unknown'}, not awaiting approval: only a task awaiting "
        f"approval can be {verb}",
        hint="tt status lists the tasks awaiting approval",
    )
