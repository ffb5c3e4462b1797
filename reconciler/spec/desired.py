"""The desired state: what town.toml and tasks.toml ask for, as frozen, typed values.

Built only by `loader` (after validation); consumed by `plan`, `control` and `agents`.
No I/O here. `TaskSpec.spec_hash()` is what tells a changed task from an unchanged one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from enum import Enum
from operator import attrgetter
from typing import Any

from .gitsettings import GitSettings
from .modelspec import ModelSpec as ModelSpec
from .modelspec import OutputMode as OutputMode
from .modelspec import PromptMode as PromptMode
from .notifyrules import NotifyRule


class RestartPolicy(str, Enum):
    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    NEVER = "never"


class Placement(str, Enum):
    """How a pool's replicas share the nodes they may run on (`plan/placement.py`)."""

    SPREAD = "spread"  # each on the node with the fewest of the pool, then the fewest agents
    PACK = "pack"  # filling the node with the most agents first, within its slots


class Directive(str, Enum):
    """What a task's `status` in the file asks for. Other status values are informational."""

    PENDING = "pending"
    DONE = "done"
    CANCELLED = "cancelled"


DIRECTIVES = {
    "pending": Directive.PENDING,
    "completed": Directive.DONE,
    "done": Directive.DONE,
    "cancelled": Directive.CANCELLED,
}


def directive_of(status: str | None) -> Directive:
    """`pending` (or absent or informational) runs; `completed`/`done` count as done."""
    if status is None:
        return Directive.PENDING
    return DIRECTIVES.get(status.lower(), Directive.PENDING)


@dataclass(frozen=True)
class AgentSpec:
    """One agent (or pool) of town.toml's roster, validated."""

    name: str
    model: str
    role: str | None = None
    replicas: int = 1
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    env_from: tuple[str, ...] = ()
    workdir: str | None = None
    timeout: float | None = None
    restart: RestartPolicy = RestartPolicy.ALWAYS
    # Tasks a process finishes before it exits cleanly (Tinytown's --max-rounds); then
    # `restart` decides: only `always` starts it again (see `control.heal.rounds_spent`).
    max_rounds: int | None = None
    suspended: bool = False
    nickname: str | None = None  # a display name; like `parent`, no part of the spec hash
    parent: str | None = None  # the agent that spawned it (Tinytown's --parent): recorded only
    node: str | None = None
    # Placement on a ready node whose labels include these (sorted pairs; never with `node`),
    # and how a pool's replicas share the eligible nodes: spread | pack (`plan/placement.py`).
    # Neither is part of the spec hash: placement moves an agent, it does not restart it.
    node_labels: tuple[tuple[str, str], ...] = ()
    placement: Placement = Placement.SPREAD
    # The model inherits tt's whole environment instead of the declared variables (its own
    # `inherit_env`, else [town]'s).
    inherit_env: bool = False
    # USD its attempts (all replicas) may cost; reached: it starts no new attempt. Kept in
    # Redis by apply, no part of the spec hash (raising it must not restart the agent).
    budget_usd: float | None = None
    # False: a retry never resumes the previous attempt's session (`agents.resume`).
    resume: bool = True
    # No output and no file change for this long: the attempt is stalled (None: [town]'s).
    stall_after: float | None = None

    def instances(self) -> tuple[str, ...]:
        """Process names: `worker` with replicas = 3 runs as worker, worker-2, worker-3. The first
        is the agent's own name whatever the count, so scaling 1→2 keeps it and adds worker-2,
        and 3→1 stops the highest-numbered two: a scale never renames a running instance."""
        return (self.name, *(f"{self.name}-{i}" for i in range(2, self.replicas + 1)))

    def spec_hash(self) -> str:
        """Changes to what the process runs with (drift restarts the agent)."""
        data = {
            "model": self.model,
            "role": self.role,
            "args": list(self.args),
            "env": [list(kv) for kv in self.env],
            "env_from": list(self.env_from),
            "workdir": self.workdir,
            "timeout": self.timeout,
            "node": self.node,
        }
        # Only when set: the hashes of agents recorded before stay equal.
        if self.inherit_env:
            data["inherit_env"] = True
        if not self.resume:
            data["resume"] = False
        if self.stall_after is not None:
            data["stall_after"] = self.stall_after
        return _digest(data)


@dataclass(frozen=True)
class TaskSpec:
    """One task of tasks.toml, validated: the fields that define its work and its status."""

    id: str
    description: str = ""
    agent: str | None = None
    role: str | None = None
    status: str | None = None
    parent: str | None = None
    depends_on: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    retries: int | None = None
    timeout: float | None = None
    priority: int = 0
    sequential: bool = False
    # Globs of the paths the task may change, relative to the [git] repository.
    touches: tuple[str, ...] = ()
    # A person's word before it counts as done (`tt approve`); with no agent, a manual gate.
    approve: bool = False
    # When it runs, by how its dependencies ended: success | failure | always (`RUN_IF`).
    run_if: str = "success"
    # USD its attempts may cost together; reached: no new attempt starts (it waits, `budget`).
    max_cost_usd: float | None = None
    # No output and no file change for this long: the attempt is stalled (None: its agent's).
    stall_after: float | None = None

    @classmethod
    def checked(cls, fields: dict[str, Any]) -> TaskSpec:
        """The spec of `fields` (every field, each of its type: what the loader checked),
        built in one step: the frozen dataclass's __init__ sets its 15 fields one
        `object.__setattr__` at a time, ~4 µs a spec, 40 ms of a 10,000-task apply; this
        takes ~1 µs. Equal to `TaskSpec(**fields)` (tests/spec/test_reuse.py)."""
        spec = object.__new__(cls)
        object.__setattr__(spec, "__dict__", fields)
        return spec

    def fields(self) -> dict[str, Any]:
        """Every field by name: plain values (`marshal` stores them); `checked` of a copy of
        it is this spec again. (Its __dict__ less the cached JSON and hash: ~4x faster than
        reading each field, for the 10,000 specs an apply's snapshot keeps.)"""
        made = self.__dict__.copy()
        made.pop("_json", None)
        made.pop("_hash", None)
        if len(made) != len(TASK_FIELDS):  # (never: every field is set, nothing else kept)
            return dict(zip(TASK_FIELDS, _VALUES(self), strict=True))
        return made

    @property
    def directive(self) -> Directive:
        return directive_of(self.status)

    def as_dict(self) -> dict[str, object]:
        """The fields that define the work; `status` is excluded (it is a directive), and
        `touches`, `approve`, `run_if` and `stall_after` are there only when set (not their
        defaults): the hashes of tasks recorded before stay equal."""
        data: dict[str, object] = {
            "id": self.id,
            "description": self.description,
            "agent": self.agent,
            "role": self.role,
            "parent": self.parent,
            "depends_on": list(self.depends_on),
            "tags": list(self.tags),
            "retries": self.retries,
            "timeout": self.timeout,
            "priority": self.priority,
            "sequential": self.sequential,
        }
        if self.touches:
            data["touches"] = list(self.touches)
        if self.approve:
            data["approve"] = True
        if self.run_if != RUN_IF_DEFAULT:
            data["run_if"] = self.run_if
        if self.max_cost_usd is not None:
            data["max_cost_usd"] = self.max_cost_usd
        if self.stall_after is not None:
            data["stall_after"] = self.stall_after
        return data

    def canonical_json(self) -> str:
        """`as_dict` as compact JSON with sorted keys: what Redis stores, what is hashed.
        Computed once per spec (an apply of 10,000 tasks needs it in the plan and the write);
        kept in the instance's __dict__, which the dataclass's eq and repr ignore."""
        cached: str | None = self.__dict__.get("_json")
        if cached is None:
            cached = _spec_json(self)
            object.__setattr__(self, "_json", cached)
        return cached

    def spec_hash(self) -> str:
        cached: str | None = self.__dict__.get("_hash")
        if cached is None:
            cached = _hash(self.canonical_json())
            object.__setattr__(self, "_hash", cached)
        return cached


@dataclass(frozen=True)
class Policy:
    """Self-healing knobs, from `[town]` (all durations in seconds)."""

    heartbeat: float = 2.0
    lease: float = 10.0
    retries: int = 2
    retry_backoff: float = 5.0
    retry_backoff_max: float = 300.0
    restart_backoff: float = 10.0
    restart_backoff_max: float = 300.0
    crash_loop_deaths: int = 5
    crash_loop_window: float = 30.0
    quarantine: float = 300.0
    resync: float = 30.0
    task_timeout: float = 1800.0
    # An attempt with no output and no file change in its folder for this long is stalled:
    # killed with its tree and retried (resumed). An agent's or task's `stall_after` overrides.
    stall_after: float = 600.0
    # A pruned task's record is kept this long as a tombstone: its id back in the files restores
    # it (a torn save, a `git revert` of a deletion) instead of running it again.
    keep_deleted: float = 7 * 86400.0
    # A loop's pass that would prune more than this many tasks (or more than half of them) waits
    # until the files have been stable for a longer window (`apply.guarded`).
    max_prune: int = 100
    # False: drift (what differs in Redis without a file change: agents stopped by hand, tasks
    # edited there) is reported and left as it is; the files' own changes are still applied.
    self_heal: bool = True
    # A usage or rate limit pauses its provider at least this long (until the reset its message
    # names, if later), doubling at each limit in a row up to the max (a success starts it
    # over); no pause lasts longer than `limit_pause_max`, whatever reset was named.
    limit_backoff: float = 300.0
    limit_backoff_max: float = 3600.0
    limit_pause_max: float = 86400.0


# The default of [town] max_agents: the most agents a town runs, replicas counted.
MAX_AGENTS = 256


@dataclass(frozen=True)
class TownSettings:
    """`[town]` of town.toml, validated."""

    name: str
    redis: str = "embedded"
    default_model: str = "claude"
    policy: Policy = field(default_factory=Policy)
    inherit_env: bool = False
    max_agents: int = MAX_AGENTS
    suspend: bool = False  # `tt suspend`: nothing applied, started or claimed
    follow: str | None = None  # [REMOTE/]BRANCH a watch loop follows (`control/follow.py`)
    follow_interval: float = 30.0
    budget_usd: float | None = None  # USD every attempt of the town may cost together
    budget_hard: bool = False  # reached: running attempts under it are killed too
    # [serve] token_env: the variable holding `tt serve`'s API token (its name, never its value)
    serve_token_env: str | None = None
    # False: agents with neither `node` nor `node_labels` are placed on the ready nodes too,
    # never run on the controller's host (`plan/placement.py`).
    local_agents: bool = True


@dataclass(frozen=True)
class Desired:
    """Everything the two files ask for, validated."""

    town: TownSettings
    agents: tuple[AgentSpec, ...] = ()
    models: tuple[ModelSpec, ...] = ()
    tasks: tuple[TaskSpec, ...] = ()
    description: str | None = None
    default_agent: str | None = None
    digests: tuple[tuple[str, str], ...] = ()
    # Role of tasks that name neither an agent nor a role ([meta] default_role in tasks.toml).
    default_role: str | None = None
    # [git] of town.toml: None = work products off (no branch, worktree or merge per task).
    git: GitSettings | None = None
    # [[notify]] of town.toml: who is told of which events (`control/notifier.py`).
    notify: tuple[NotifyRule, ...] = ()

    def agent(self, name: str) -> AgentSpec | None:
        for a in self.agents:
            if a.name == name:
                return a
        return None

    def task_ids(self) -> tuple[str, ...]:
        """The tasks' ids in file order; made once (an apply asks ~3 times), kept in the
        instance's __dict__, which the dataclass's eq and repr ignore."""
        ids: tuple[str, ...] | None = self.__dict__.get("_ids")
        if ids is None:
            ids = tuple(map(_ID, self.tasks))
            object.__setattr__(self, "_ids", ids)
        return ids


# `run_if`: runs when every dependency completed (success), when one failed, was cancelled or
# could not run (failure), or when all of them ended, however (always).
RUN_IF = ("success", "failure", "always")
RUN_IF_DEFAULT = "success"

_ID = attrgetter("id")
TASK_FIELDS = tuple(f.name for f in fields(TaskSpec))
# The fields `as_dict` may hold (all but `status`), in its order: what defines the work.
WORK_FIELDS = tuple(f for f in TASK_FIELDS if f != "status")
_VALUES = attrgetter(*TASK_FIELDS)

# One encoder for every digest: `json.dumps` with options builds a new one per call, a third of
# the cost of encoding 10,000 specs.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _digest(data: object) -> str:
    return _hash(_ENCODER.encode(data))


_quote = json.encoder.encode_basestring_ascii  # json's own (C) string encoder


def _spec_json(spec: TaskSpec) -> str:
    """`_ENCODER.encode(spec.as_dict())` written out for the types a spec holds (~2x faster
    on 10,000 specs): its keys in sorted order, each value as json writes it. Any other type
    goes to json itself. tests/spec/test_reuse.py holds the two equal: the stored spec hashes
    depend on every byte."""
    agent, role, parent, retries = spec.agent, spec.role, spec.parent, spec.retries
    if (
        type(spec.priority) is not int
        or not (retries is None or type(retries) is int)
        or not (spec.timeout is None or type(spec.timeout) is float)
        or not (spec.stall_after is None or type(spec.stall_after) is float)
        or type(spec.sequential) is not bool
        or spec.approve
        or spec.run_if != RUN_IF_DEFAULT
        or spec.max_cost_usd is not None
    ):
        return _ENCODER.encode(spec.as_dict())
    try:
        return (
            f'{{"agent":{"null" if agent is None else _quote(agent)},'
            f'"depends_on":[{",".join(map(_quote, spec.depends_on))}],'
            f'"description":{_quote(spec.description)},"id":{_quote(spec.id)},'
            f'"parent":{"null" if parent is None else _quote(parent)},'
            f'"priority":{int.__repr__(spec.priority)},'
            f'"retries":{"null" if retries is None else int.__repr__(retries)},'
            f'"role":{"null" if role is None else _quote(role)},'
            f'"sequential":{"true" if spec.sequential else "false"},'
            f"{_stall_json(spec.stall_after)}"
            f'"tags":[{",".join(map(_quote, spec.tags))}],'
            f'"timeout":{"null" if spec.timeout is None else _ENCODER.encode(spec.timeout)}'
            f"{_touches_json(spec.touches)}}}"
        )
    except TypeError:  # a value that is not a string where one was expected
        return _ENCODER.encode(spec.as_dict())


def _touches_json(touches: tuple[str, ...]) -> str:
    """The last key of the sorted JSON, written only when set (see `TaskSpec.as_dict`)."""
    return f',"touches":[{",".join(map(_quote, touches))}]' if touches else ""


def _stall_json(stall_after: float | None) -> str:
    """The key between `sequential` and `tags` in sorted order, written only when set."""
    return "" if stall_after is None else f'"stall_after":{_ENCODER.encode(stall_after)},'


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
