"""Observed state: what Redis holds for a town (tasks, agent instances), as frozen plain values.

`store` builds an `Observed` from one pipelined read; `plan.diff` compares it with `Desired`.
Pure: no Redis, no clock. The JSON codecs here are the one definition of how a spec is stored
beside its hash, so what `store` writes is what it reads back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..spec.desired import AgentSpec, Placement, RestartPolicy, TaskSpec
from .graph import TaskKind


class TaskState(str, Enum):
    BLOCKED = "blocked"
    READY = "ready"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Waits for a task that failed or was cancelled (its `upstream` field names which): it can
    # never run as things stand. Not terminal: it waits, like blocked, and goes back to blocked
    # when that task is retried, re-run or no longer waited for; `tt wait` counts it as failed.
    UPSTREAM_FAILED = "upstream_failed"
    # Its model succeeded (or, a gate, what it waits for completed); it waits for a person's
    # `tt approve` (completed) or `tt reject` (run again). No lease, no queue: nothing is lost.
    AWAITING_APPROVAL = "awaiting_approval"
    # Its `run_if` says it does not run, as its dependencies ended (`plan.conditions`). Decided
    # by them like upstream_failed, it is settled again if they change; it counts as finished.
    SKIPPED = "skipped"

    @property
    def is_terminal(self) -> bool:
        """No attempt will start without a user's word (`tt retry`, a re-run, a file edit)."""
        return self in TERMINAL


TERMINAL = frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED})
# A dependency in one of these makes the tasks waiting for it upstream_failed.
FAILED_UPSTREAM = frozenset({TaskState.FAILED, TaskState.CANCELLED, TaskState.UPSTREAM_FAILED})
# Settled from what the dependencies are (blocked, upstream_failed, skipped): lib.lua `release`.
WAITING = (TaskState.BLOCKED, TaskState.UPSTREAM_FAILED, TaskState.SKIPPED)
# What `tt wait` / `apply --wait` count as failures.
FAILURES = frozenset({TaskState.FAILED, TaskState.UPSTREAM_FAILED})


def is_terminal(state: TaskState | str) -> bool:
    return TaskState(state) in TERMINAL


class AgentState(str, Enum):
    STARTING = "starting"
    IDLE = "idle"
    WORKING = "working"
    STOPPING = "stopping"
    STOPPED = "stopped"
    BACKOFF = "backoff"
    QUARANTINED = "quarantined"


class Source(str, Enum):
    """Who owns an object: the files (prunable) or a `--no-save` CLI verb (never pruned)."""

    FILE = "file"
    CLI = "cli"


@dataclass(frozen=True)
class ObservedTask:
    """One `task:ID` hash, decoded. Times are unix seconds. `store.observed.read_observed` fills
    only what `plan.diff` reads (`OBSERVED_FIELDS`); the rest keep their defaults there."""

    id: str
    state: TaskState
    spec_hash: str = ""
    spec: TaskSpec | None = None  # decoded; None when not decoded, missing or unreadable
    spec_json: str = ""  # as stored (`TaskSpec.canonical_json`); read only when its hash changed
    source: Source = Source.FILE
    kind: TaskKind = TaskKind.WORK
    target: str = ""  # its queue target; "" for a group
    deps: tuple[str, ...] = ()  # the ids it waits for, as stored (its `children:` memberships)
    deps_left: int = 0
    run_if: str = "success"  # `TaskSpec.run_if`, as stored (`run_if`: only when not the default)
    after: str = ""  # `graph.Node.after`, as stored (`after`: only when set)
    order: float = 0.0
    queued: bool = False  # its id is in some ready queue right now
    attempt: int = 0
    assignee: str | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    result: str | None = None
    next_attempt_at: float | None = None


@dataclass(frozen=True)
class ObservedAgent:
    """One agent instance (`agent:NAME` hash plus its heartbeat lease)."""

    name: str  # the instance name: `worker-2`, or `architect` for a single agent
    state: AgentState = AgentState.STOPPED
    base: str | None = None  # the town.toml entry it belongs to; None = the same as `name`
    spec_hash: str = ""
    spec: AgentSpec | None = None
    source: Source = Source.FILE
    suspended: bool = False
    pid: int | None = None
    host: str | None = None
    alive: bool = False  # its heartbeat lease is live
    heartbeat_age: float | None = None  # seconds since the last beat, when known
    task: str | None = None
    restarts: int = 0

    @property
    def base_name(self) -> str:
        return self.base or self.name


@dataclass(frozen=True)
class Observed:
    """What Redis holds of a town, as the planner compares it with the files."""

    tasks: Mapping[str, ObservedTask] = field(default_factory=dict)
    agents: Mapping[str, ObservedAgent] = field(default_factory=dict)
    generation: int = 0  # applies so far (meta hash)
    digests: Mapping[str, str] = field(default_factory=dict)  # file name → sha256 last applied
    # Pruned tasks kept as tombstones (`keep_deleted`), of the ids the files define and Redis
    # has no task of (read only for those): such an id is restored, not created.
    tombstones: Mapping[str, ObservedTask] = field(default_factory=dict)


# -- stored spec JSON ---------------------------------------------------------------------------


def task_spec_from_json(raw: str | None) -> TaskSpec | None:
    """The spec stored as `TaskSpec.canonical_json`; None if absent or unreadable. Keys this
    version does not know are dropped, so a record written by a newer `tt` still decodes."""
    data = _object(raw)
    if data is None or not isinstance(data.get("id"), str):
        return None
    known = TaskSpec.__dataclass_fields__
    try:
        return TaskSpec(**{k: _tuples(v) for k, v in data.items() if k in known})
    except TypeError:
        return None


def agent_spec_json(spec: AgentSpec) -> str:
    data = {
        "name": spec.name,
        "model": spec.model,
        "role": spec.role,
        "replicas": spec.replicas,
        "args": list(spec.args),
        "env": [list(kv) for kv in spec.env],
        "env_from": list(spec.env_from),
        "workdir": spec.workdir,
        "timeout": spec.timeout,
        "restart": spec.restart.value,
        "suspended": spec.suspended,
        "node": spec.node,
    }
    if spec.inherit_env:
        data["inherit_env"] = True
    if spec.max_rounds is not None:  # only when set, as inherit_env
        data["max_rounds"] = spec.max_rounds
    if not spec.resume:
        data["resume"] = False
    if spec.stall_after is not None:
        data["stall_after"] = spec.stall_after
    if spec.node_labels:  # placement (`plan/placement.py`): only when set, as the others
        data["node_labels"] = [list(kv) for kv in spec.node_labels]
    if spec.placement is not Placement.SPREAD:
        data["placement"] = spec.placement.value
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def agent_spec_from_json(raw: str | None) -> AgentSpec | None:
    data = _object(raw)
    if data is None or not isinstance(data.get("name"), str):
        return None
    known = AgentSpec.__dataclass_fields__
    values = {k: _tuples(v) for k, v in data.items() if k in known}
    try:
        values["restart"] = RestartPolicy(values.get("restart", RestartPolicy.ALWAYS.value))
        values["placement"] = Placement(values.get("placement", Placement.SPREAD.value))
        return AgentSpec(**values)
    except (TypeError, ValueError):
        return None


def _object(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _tuples(value: Any) -> Any:
    """JSON arrays back to the tuples frozen specs hold (nested: `env` is pairs)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value
