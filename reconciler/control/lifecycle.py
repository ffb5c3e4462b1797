"""Tinytown's lifecycle verbs in tt's terms (issue #20): suspend or resume one agent
(`suspended` in town.toml) or set its rounds (`max_rounds`), hand the tasks of stopped agents to
another agent or the backlog (tasks.toml), forget stopped agents the files no longer name, and
one heal pass now.

What should exist is edited in the files and applied; Redis alone is touched only for what the
files do not hold (agent records of agents gone from town.toml). No click here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from .. import edit
from ..errors import NotFound
from ..spec import loader
from ..spec.names import did_you_mean
from .apply import ApplyOptions, ApplyResult
from .session import Session
from .verbs import _apply_edit

STOPPED = frozenset({"stopped", "quarantined", "backoff", "dead", "crashed"})
# (awaiting_approval and skipped need no agent either: a person, or nothing, moves them on)
TERMINAL = frozenset(
    {"completed", "failed", "cancelled", "upstream_failed", "skipped", "awaiting_approval"}
)


def set_agent_suspended(
    s: Session, name: str, suspended: bool, opts: ApplyOptions
) -> tuple[ApplyResult, bool]:
    """`tt interrupt NAME` / `tt resume NAME`: `suspended = true` on the agent in town.toml (or
    the field removed), then apply. Returns the apply and whether the file changed."""
    agent = s.desired().agent(name)
    if agent is None:
        names = [a.name for a in s.desired().agents]
        raise NotFound(
            f"no agent '{name}' in town.toml",
            hint=did_you_mean(name, names) or "tt list shows the agents",
        )
    changed = agent.suspended != suspended
    if changed:
        edit.set_agent_fields(
            s.edit_paths(),
            name,
            {"suspended": True if suspended else None},
            validate=loader.validate_texts,
        )
    return _apply_edit(s, opts), changed


def set_max_rounds(s: Session, name: str, rounds: int, opts: ApplyOptions) -> ApplyResult:
    """`tt restart NAME --rounds N` (Tinytown's): `max_rounds = N` on the agent in town.toml (a
    replica's pool, for a replica), then apply; the restart that follows counts from zero."""
    agent = next((a for a in s.desired().agents if name in a.instances()), None)
    if agent is None:
        names = [a.name for a in s.desired().agents]
        raise NotFound(
            f"no agent '{name}' in town.toml",
            hint=did_you_mean(name, names) or "tt list shows the agents",
        )
    if agent.max_rounds != rounds:
        fields = {"max_rounds": rounds}
        edit.set_agent_fields(s.edit_paths(), agent.name, fields, validate=loader.validate_texts)
    return _apply_edit(s, opts)


@dataclasses.dataclass(frozen=True)
class Orphan:
    task: str
    agent: str
    state: str
    in_file: bool


def orphans(s: Session, only: str | None = None) -> list[Orphan]:
    """Unfinished tasks whose agent is stopped, suspended or gone from town.toml."""
    desired = s.desired()
    records = s.store.agent_records()
    file_ids = set(desired.task_ids())
    suspended = {a.name for a in desired.agents if a.suspended}
    named = {n for a in desired.agents for n in (a.name, *a.instances())}
    found = []
    for rec in s.store.task_records():
        target, state = rec.get("target", ""), rec.get("state", "")
        if not target or state in TERMINAL or (only and target != only):
            continue
        gone = target not in named
        stopped = records.get(target, {}).get("state", "") in STOPPED
        if gone or stopped or target in suspended:
            found.append(Orphan(rec["id"], target, state, rec["id"] in file_ids))
    return found


def reclaim(s: Session, found: list[Orphan], to: str | None, opts: ApplyOptions) -> ApplyResult:
    """Give the file's orphaned tasks to agent `to`, or to the backlog (to=None): their `agent`
    in tasks.toml changed (or removed), then apply."""
    if to is not None and s.desired().agent(to) is None:
        names = [a.name for a in s.desired().agents]
        raise NotFound(f"no agent '{to}' in town.toml", hint=did_you_mean(to, names))
    updates: Mapping[str, Mapping[str, object]] = {
        o.task: {"agent": to} for o in found if o.in_file
    }
    edit.write_back(s.edit_paths(), updates, validate=loader.validate_texts)
    return _apply_edit(s, opts)


def prune(s: Session, every: bool) -> list[str]:
    """Forget the Redis records of agents town.toml no longer names and that are stopped (all of
    them with `every`). An agent of town.toml is never forgotten: the files keep it."""
    named = {n for a in s.desired().agents for n in (a.name, *a.instances())}
    forgotten = []
    for name, rec in sorted(s.store.agent_records().items()):
        if name in named:
            continue
        if every or rec.get("state", "") in STOPPED or not rec.get("pid"):
            s.store.forget_agent(name)
            forgotten.append(name)
    return forgotten


BUSY = frozenset({"working", "starting", "claiming"})


def wait_idle(s: Session, name: str, seconds: float | None, poll: float = 0.2) -> bool:
    """Tinytown's `tt wait AGENT`: until the agent has no task running or waiting in its queue
    (True), or `seconds` passed (False)."""
    import time

    names = {n for a in s.desired().agents for n in (a.name, *a.instances())}
    if name not in names:
        raise NotFound(f"no agent '{name}' in town.toml", hint=did_you_mean(name, names))
    deadline = None if seconds is None else time.monotonic() + seconds
    while True:
        rec = s.store.agent_records().get(name, {})
        waiting = any(
            r.get("target") == name and r.get("state") in {"ready", "running", "claimed"}
            for r in s.store.task_records()
        )
        if rec.get("state", "") not in BUSY and not rec.get("task") and not waiting:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(poll)
