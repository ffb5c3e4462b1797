"""Tinytown's `tt backlog list | add | claim | remove` in tt's terms. The backlog is what the
files already say it is (DESIGN.md "Files"): the tasks of tasks.toml that name no agent or role,
with no [meta] default to give them one and no children (a group); any idle agent may claim one.

`add` appends such a task, `claim` writes `agent = AGENT` on one, `remove` deletes its table;
each edits tasks.toml (comments kept, validated first: a refused edit changes nothing) and then
applies. `list` reads the files and the tasks' states in Redis. No click here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import edit
from ..errors import NotFound, TtError
from ..plan.graph import TaskKind, build_graph
from ..spec import loader
from ..spec.desired import Desired, TaskSpec
from ..spec.names import did_you_mean
from .apply import ApplyOptions, ApplyResult
from .session import Session
from .verbs import _apply_edit

DONE = frozenset({"completed", "cancelled"})


@dataclass(frozen=True)
class Item:
    id: str
    description: str
    tags: tuple[str, ...]
    state: str  # in Redis; "new" when not applied yet
    agent: str | None  # the agent running or that ran it (its claim in Redis), if any


def backlog_ids(desired: Desired) -> list[str]:
    """The ids of the backlog's tasks, in file order."""
    graph = build_graph(desired)
    return [t.id for t in desired.tasks if graph.nodes[t.id].kind is TaskKind.BACKLOG]


def items(s: Session) -> list[Item]:
    """`tt backlog list`: the backlog's tasks, in file order, with their states."""
    desired = s.desired()
    ids = backlog_ids(desired)
    specs = {t.id: t for t in desired.tasks}
    rows = {r[0]: r for r in s.store.task_rows(["state", "assignee"], ids=ids)} if ids else {}
    return [
        Item(
            id=i,
            description=specs[i].description,
            tags=specs[i].tags,
            state=(rows[i][1] if i in rows else None) or "new",
            agent=(rows[i][2] if i in rows else None) or None,
        )
        for i in ids
    ]


def add(
    s: Session, text: str, tags: tuple[str, ...], task_id: str | None, opts: ApplyOptions
) -> tuple[str, ApplyResult]:
    """`tt backlog add TEXT`: a task without agent appended to tasks.toml, then applied."""
    if not text.strip():
        raise TtError(
            "a backlog task needs a description: what the agent that claims it is asked to do",
            hint='tt backlog add "what to do"',
        )
    desired = s.desired()
    default = desired.default_agent or (desired.default_role and f"role {desired.default_role}")
    if default:
        field = "default_agent" if desired.default_agent else "default_role"
        raise TtError(
            f"tasks.toml's [meta] {field} gives every task without an agent to {default}: "
            "this town has no backlog",
            hint=f'tt assign AGENT "{text}" gives it to an agent; or remove {field} from [meta]',
        )
    extra: dict[str, object] = {"tags": list(tags)} if tags else {}
    tid = edit.append_task(
        s.edit_paths(),
        description=text,
        task_id=task_id,
        extra=extra,
        taken=set(s.store.task_ids()),
        validate=loader.validate_texts,
    )
    return tid, _apply_edit(s, opts)


def _backlog_task(desired: Desired, task_id: str) -> None:
    """That `task_id` is a backlog task of tasks.toml, else a clear error."""
    ids = backlog_ids(desired)
    if task_id in ids:
        return
    spec = next((t for t in desired.tasks if t.id == task_id), None)
    if spec is None:
        raise NotFound(
            f"no task '{task_id}' in tasks.toml",
            hint=did_you_mean(task_id, desired.task_ids()) or "tt backlog list shows the backlog",
        )
    raise TtError(
        f"task '{task_id}' is not in the backlog: {_owner(desired, spec)}",
        hint="tt backlog list shows the backlog; tt assign gives a new task to an agent",
    )


def _owner(desired: Desired, spec: TaskSpec) -> str:
    """Why a task of tasks.toml is not a backlog task (`plan.graph.build_graph`'s order)."""
    if spec.agent:
        return f"agent = '{spec.agent}'"
    if spec.role:
        return f"role = '{spec.role}'"
    if desired.default_agent or desired.default_role:
        return "[meta] default"
    if spec.approve:
        return "an approval gate (approve = true and no agent: tt approve moves it on)"
    return "a group (other tasks name it as parent)"


def claim(s: Session, task_id: str, agent: str, opts: ApplyOptions) -> ApplyResult:
    """`tt backlog claim ID AGENT`: `agent = AGENT` on the backlog task in tasks.toml, then
    applied (it moves to that agent's queue, or runs there next if it was waiting)."""
    desired = s.desired()
    names = {n for a in desired.agents for n in (a.name, *a.instances())}
    _backlog_task(desired, task_id)
    if agent not in names:
        raise NotFound(
            f"no agent '{agent}' in town.toml",
            hint=did_you_mean(agent, names) or "tt spawn NAME --model M adds one",
        )
    state = s.store.task_hash(task_id).get("state", "")
    if state in DONE:
        raise TtError(
            f"task '{task_id}' is {state} already: there is nothing to claim",
            hint=f"tt retry {task_id} runs it again",
        )
    edit.write_back(s.edit_paths(), {task_id: {"agent": agent}}, validate=loader.validate_texts)
    return _apply_edit(s, opts)


def remove(s: Session, task_id: str, opts: ApplyOptions) -> ApplyResult:
    """`tt backlog remove ID`: the backlog task's table deleted from tasks.toml, then applied
    (the task is pruned: kept as a tombstone for [town] keep_deleted)."""
    desired = s.desired()
    _backlog_task(desired, task_id)
    edit.remove_task(s.edit_paths(), task_id, validate=loader.validate_texts)
    return _apply_edit(s, opts)
