"""The verbs behind `tt spawn/kill/assign/cancel/retry/restart/sync pull/suspend/resume` (`tt down`:
`down`).

Verbs that change what should exist edit the files (through `edit`, validated by the loader,
so an invalid result changes nothing) and then apply; verbs that act on what is running talk to
Redis only. Each returns plain values for the CLI to render.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time

from .. import edit
from ..errors import Conflict, NotFound, TtError, ValidationFailed
from ..plan.actions import Plan
from ..plan.graph import TaskKind
from ..plan.state import Source, TaskState, task_spec_from_json
from ..spec import loader
from ..spec.desired import AgentSpec, Directive, TaskSpec
from ..spec.names import RESERVED_AGENT_NAMES, did_you_mean, is_valid_name
from . import fleet
from .apply import INVALID, ApplyOptions, ApplyResult, apply
from .execute import task_record
from .session import Session
from .tolerant import no_new_problem

# A verb that edited a file waits this long for a running apply (the watcher's, another verb's)
# instead of failing: the edit is made, so giving up would leave the file and Redis apart.
EDIT_LOCK_WAIT = 60.0


def _apply_edit(s: Session, opts: ApplyOptions) -> ApplyResult:
    return apply(s, dataclasses.replace(opts, lock_timeout=max(opts.lock_timeout, EDIT_LOCK_WAIT)))


def spawn(
    s: Session,
    name: str,
    model: str,
    *,
    role: str | None,
    replicas: int,
    opts: ApplyOptions,
    extra: dict[str, object] | None = None,
) -> tuple[ApplyResult, bool]:
    """Add agent NAME to town.toml and apply: (the apply, whether the agent already existed
    with this spec, so that the file was not changed). `extra`: more fields of the agent
    (Tinytown's nickname, parent)."""
    if name.lower() in RESERVED_AGENT_NAMES:
        raise TtError(
            f"'{name}' is a reserved name (a mailbox), not an agent name", hint="pick another name"
        )
    try:
        existing = s.desired().agent(name)
    except ValidationFailed:  # not valid yet (point 2): add_agent refuses a name it has
        existing = None
    if existing is not None:
        # The tutorial spawns `reviewer` twice: the same spec again is a no-op, not an error.
        if (existing.model, existing.role, existing.replicas) == (model, role, replicas):
            return _apply_edit(s, opts), True
        raise TtError(
            f"agent '{name}' already exists in town.toml as {agent_summary(existing)}",
            hint=f"edit [agents.{name}] in town.toml, or `tt kill {name}` first",
        )
    fields: dict[str, object] = {"model": model}
    if role:
        fields["role"] = role
    if replicas != 1:
        fields["replicas"] = replicas
    fields.update({k: v for k, v in (extra or {}).items() if v is not None})
    edit.add_agent(s.edit_paths(), name, fields, validate=no_new_problem(s.paths))
    return _apply_if_valid(s, opts), False


def _apply_if_valid(s: Session, opts: ApplyOptions) -> ApplyResult:
    """The apply of a saved edit, or, while the files are still invalid, none: a result held
    INVALID with the number of problems left (the edit added none of them)."""
    try:
        return _apply_edit(s, opts)
    except ValidationFailed as e:
        return ApplyResult(Plan(), False, 0, held=INVALID, problems=len(e.problems))


def agent_summary(agent: AgentSpec) -> str:
    """`model sim, role reviewer, 3 replicas` in words: no Python reprs in a message."""
    parts = [f"model {agent.model}", f"role {agent.role}" if agent.role else "no role"]
    parts.append(f"{agent.replicas} replica{'s' if agent.replicas != 1 else ''}")
    return ", ".join(parts)


def kill(s: Session, name: str, opts: ApplyOptions, *, remove: bool = False) -> ApplyResult:
    """`tt kill NAME`: Tinytown's meaning, the agent stops and is kept (`suspended = true` in
    town.toml, comments kept); `remove`: its table deleted, refused while a task names it."""
    if not remove:
        from .lifecycle import set_agent_suspended

        return set_agent_suspended(s, name, True, opts)[0]
    desired = s.desired()
    agent = desired.agent(name)
    names = {name, *(agent.instances() if agent else ())}
    naming = [t.id for t in desired.tasks if t.agent in names]
    if naming:
        shown = ", ".join(naming[:5]) + (f" and {len(naming) - 5} more" if len(naming) > 5 else "")
        raise TtError(
            f"agent '{name}' is named by tasks in tasks.toml: {shown}",
            hint=f"tt kill {name} (without --remove) stops it and keeps it; or give those "
            "tasks another agent first",
        )
    edit.remove_agent(s.edit_paths(), name, validate=loader.validate_texts)
    # Removing the last agent empties the roster on purpose; an emptied tasks.toml still stops it.
    return _apply_edit(s, dataclasses.replace(opts, allow_empty_roster=True))


def suspend(s: Session, opts: ApplyOptions) -> tuple[ApplyResult, bool]:
    """`tt suspend`: `[town] suspend = true` in town.toml, then apply, which suspends the town
    (no agent claims a task; running attempts finish) and applies nothing. Returns the apply and
    whether the town was suspended already (the file unchanged)."""
    changed = edit.set_town_fields(
        s.edit_paths(), {"suspend": True}, validate=loader.validate_texts
    )
    return _apply_edit(s, opts), not changed


def resume(s: Session, opts: ApplyOptions) -> tuple[ApplyResult, bool]:
    """`tt resume`: `suspend` out of [town], then apply, which resumes the town (the tasks agents
    took meanwhile back at the head of their queues) and applies what waited. Returns the apply
    and whether the town was suspended in the files."""
    changed = edit.set_town_fields(
        s.edit_paths(), {"suspend": None}, validate=loader.validate_texts
    )
    return _apply_edit(s, opts), changed


def assign(
    s: Session,
    agent: str,
    description: str,
    *,
    task_id: str | None,
    after: str | None,
    save: bool,
    opts: ApplyOptions,
) -> tuple[str, ApplyResult | None]:
    """Append a task for `agent` (a name, a replica or a pool) and apply it. With save=False
    the task lives only in Redis (source `cli`, never pruned)."""
    if not description.strip():
        raise TtError(
            "a task needs a description: it is what its agent is asked to do",
            hint='tt assign AGENT "what to do"',
        )
    desired = s.desired()
    names = {n for a in desired.agents for n in (a.name, *a.instances())}
    if agent not in names:
        raise NotFound(
            f"no agent '{agent}' in town.toml",
            hint=did_you_mean(agent, names) or "tt spawn NAME --model M",
        )
    taken = set(s.store.task_ids())
    if save:
        tid = edit.append_task(
            s.edit_paths(),
            description=description,
            agent=agent,
            task_id=task_id,
            after=after,
            taken=taken,
            validate=loader.validate_texts,
        )
        return tid, _apply_edit(s, opts)
    tid = task_id or edit.new_task_id(description, taken | set(desired.task_ids()))
    if not is_valid_name(tid) or tid in taken or tid in desired.task_ids():
        raise TtError(f"task id '{tid}' is invalid or already taken")
    if after is not None and after not in taken:
        raise NotFound(f"no task '{after}' to run after", hint=did_you_mean(after, taken))
    spec = TaskSpec(id=tid, description=description, agent=agent, parent=after)
    record = task_record(
        spec,
        kind=TaskKind.WORK,
        target=agent,  # an agent's queue is its name, a pool's too
        deps=(after,) if after else (),
        order=time.time(),
        source=Source.CLI,
    )
    s.store.upsert_tasks([record], 0)
    return tid, None


def cancel(s: Session, task_id: str, opts: ApplyOptions) -> ApplyResult | None:
    if task_id in s.desired().task_ids():
        edit.set_task_status(s.edit_paths(), task_id, "cancelled", validate=loader.validate_texts)
        return _apply_edit(s, opts)
    _existing(s, task_id)
    s.store.upsert_tasks([{"mode": "cancel", "id": task_id}], 0)
    return None


def retry(s: Session, task_id: str) -> TaskState:
    """Re-run a failed, completed or cancelled task with a fresh retry budget."""
    rec = _existing(s, task_id)
    state = TaskState(rec.get("state") or "blocked")
    if state is TaskState.UPSTREAM_FAILED:
        upstream = rec.get("upstream", "")
        if not s.store.task_hash(upstream):
            raise TtError(
                f"task '{task_id}' is upstream_failed: it waits for '{upstream}', which was "
                "deleted from the files",
                hint=f"put '{upstream}' back in tasks.toml (tt status --deleted shows it)",
            )
        raise Conflict(
            f"task '{task_id}' is upstream_failed: it waits for '{upstream}', which did not "
            "complete; retrying that task runs this one after it",
            hint=f"tt retry {upstream}",
        )
    if state is TaskState.SKIPPED:
        waits = json.loads(rec.get("deps") or "[]")
        which = waits[0] if len(waits) == 1 else f"one of {', '.join(waits)}"
        raise TtError(
            f"task '{task_id}' is skipped: its run_if ({rec.get('run_if') or 'success'}) says it "
            "does not run, as what it waits for ended; retrying that task settles this one again",
            hint=f"tt retry {which}",
        )
    if not state.is_terminal and state is not TaskState.RETRYING:
        raise Conflict(
            f"task '{task_id}' is {state.value}; only a failed, completed or "
            "cancelled task can be retried"
        )
    spec = next((t for t in s.desired().tasks if t.id == task_id), None)
    by_hand = spec is not None and spec.directive is Directive.PENDING
    if spec is not None and not by_hand:
        # The file cancels or completes it: pending again there, or the next apply undoes this.
        edit.set_task_status(s.edit_paths(), task_id, "pending", validate=loader.validate_texts)
    spec = spec or task_spec_from_json(rec.get("spec"))
    if spec is None:
        raise TtError(f"task '{task_id}' has no readable spec in Redis")
    record = task_record(
        dataclasses.replace(spec, status=None),
        kind=TaskKind(rec.get("kind") or "work"),
        target=rec.get("target", ""),
        deps=tuple(json.loads(rec.get("deps") or "[]")),
        order=float(rec.get("order") or 0),
        source=Source(rec.get("source") or "file"),
        mode="rerun",
        after=rec.get("after", ""),
    )
    if by_hand:  # no file asked for this run: drift (`plan.drift`) until the files re-run it
        record["by"] = "tt retry"
    s.store.upsert_tasks([record], 0)
    return TaskState(s.store.task_hash(task_id).get("state") or TaskState.BLOCKED)


def _existing(s: Session, task_id: str) -> dict[str, str]:
    rec = s.store.task_hash(task_id)
    if not rec and s.store.is_tombstone(task_id):
        raise NotFound(
            f"task '{task_id}' was deleted from the files (kept as a tombstone)",
            hint=f"put '{task_id}' back in tasks.toml: it is restored as it was",
        )
    if not rec:
        ids = s.store.task_ids()
        raise NotFound(f"no task '{task_id}'", hint=did_you_mean(task_id, ids))
    return rec


def sync_pull(s: Session) -> list[str]:
    """Write each task's actual state into tasks.toml as its `status` (only that field)."""
    states = {r["id"]: r.get("state", "") for r in s.store.task_records()}
    mapping = {"blocked": "pending", "ready": "pending"}
    updates = {tid: {"status": mapping.get(st, st)} for tid, st in states.items() if st}
    return edit.write_back(s.edit_paths(), updates)


@dataclasses.dataclass(frozen=True)
class Restarted:
    agent: str
    old_pid: str  # "" when it was not running
    fleet: list[fleet.FleetChange]

    @property
    def new_pid(self) -> str:
        started = [c for c in self.fleet if c.agent == self.agent and c.action == "started"]
        return started[0].detail.removeprefix("pid ") if started else ""


def restart(s: Session, name: str) -> Restarted:
    """Stop agent NAME's process (its task goes back to its queue) and start it again."""
    records = s.store.agent_records()
    if name not in records:
        raise NotFound(
            f"no agent '{name}' is known",
            hint=did_you_mean(name, records) or "tt list shows the agents; tt spawn NAME adds one",
        )
    rec = records[name]
    old_pid = ""
    if rec.get("pid", "").isdigit() and fleet.local_alive(rec, socket.gethostname()):
        fleet.stop_agent(s.store, name, rec, "restarted by tt restart", grace=0, term_grace=10.0)
        old_pid = rec["pid"]
    # Asked for by a person: no crash backoff or quarantine stands in the way (nor a stop by
    # hand that `self_heal = false` leaves: `stopped_by` names tt).
    why = "restarted by tt restart"
    s.store.set_agent(name, {"state": "stopped", "reason": why, "stopped_by": why})
    return Restarted(name, old_pid, fleet.ensure(s.paths, s.desired(), s.store))
