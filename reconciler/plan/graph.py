"""The task graph the files describe: per task its kind, its queue target and what it waits for.

Pure: built from `Desired` alone (no Redis, no clock). It encodes the fixed semantics of `parent`,
groups, `sequential`, backlog and `depends_on` (DESIGN.md "Files"); it does not validate (the
loader reports unknown ids and cycles) and every algorithm is iterative (10,000-long chains).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from ..spec.desired import AgentSpec, Desired, TaskSpec

# Queue targets that are not an agent instance's own name (the characters are not valid in names).
POOL_PREFIX = "@"  # a pool: any replica of the agent
ROLE_PREFIX = "%"  # a role: any agent with it
BACKLOG = "*backlog"  # any idle agent


class TaskKind(str, Enum):
    WORK = "work"  # has a worker target: an agent, a pool, a role
    GROUP = "group"  # no target, named as parent: completes when its children complete
    BACKLOG = "backlog"  # no target and no children: any idle agent may claim it


@dataclass(frozen=True)
class Node:
    id: str
    kind: TaskKind
    target: str  # queue target (`keys.Keys.queue`); "" for a group, which is never queued
    deps: tuple[str, ...]  # ids this task waits for, without duplicates
    children: tuple[str, ...]  # for a group: the tasks naming it as parent, in file order
    index: int  # position in tasks.toml


@dataclass(frozen=True)
class Graph:
    nodes: Mapping[str, Node]
    dependents: Mapping[str, tuple[str, ...]]  # reverse edges: Redis `children:ID` sets
    order: tuple[str, ...]  # topological (dependencies first), ties broken by file order

    def waits(self) -> dict[str, tuple[str, ...]]:
        return {i: n.deps for i, n in self.nodes.items()}


def agent_target(name: str, agents: Mapping[str, AgentSpec]) -> str:
    """Queue of `agent = NAME`: a pool `@NAME` when NAME has replicas, else NAME itself (an agent
    or one replica such as worker-2, which listens on its own queue)."""
    spec = agents.get(name)
    if spec is not None and spec.replicas > 1:
        return POOL_PREFIX + name
    return name


def task_target(task: TaskSpec, desired: Desired, agents: Mapping[str, AgentSpec]) -> str | None:
    """Where the task's work goes: its agent, its role, the default agent, the default role."""
    if task.agent:
        return agent_target(task.agent, agents)
    if task.role:
        return ROLE_PREFIX + task.role
    if desired.default_agent:
        return agent_target(desired.default_agent, agents)
    if desired.default_role:
        return ROLE_PREFIX + desired.default_role
    return None


def build_graph(desired: Desired) -> Graph:
    agents = {a.name: a for a in desired.agents}
    index: dict[str, int] = {}
    specs: list[TaskSpec] = []
    for spec in desired.tasks:
        if spec.id not in index:  # duplicates are the loader's to report; the first one wins
            index[spec.id] = len(specs)
            specs.append(spec)
    targets = [task_target(s, desired, agents) for s in specs]

    waits: list[list[str]] = [[] for _ in specs]
    children: dict[str, list[str]] = {}
    for i, spec in enumerate(specs):
        p = spec.parent
        if p is not None and p != spec.id and p in index:
            if targets[index[p]] is not None:
                waits[i].append(p)  # a working parent runs first
            else:
                children.setdefault(p, []).append(spec.id)  # a group does not hold its children
        waits[i].extend(d for d in spec.depends_on if d != spec.id and d in index)
    for group, kids in children.items():
        g = index[group]
        waits[g].extend(kids)
        if specs[g].sequential:
            for before, after in itertools.pairwise(kids):
                waits[index[after]].append(before)

    nodes: dict[str, Node] = {}
    for i, spec in enumerate(specs):
        target = targets[i]
        members = tuple(children.get(spec.id, ()))
        if target is not None:
            kind = TaskKind.WORK
        elif members:
            kind, target = TaskKind.GROUP, ""
        else:
            kind, target = TaskKind.BACKLOG, BACKLOG
        nodes[spec.id] = Node(spec.id, kind, target, tuple(dict.fromkeys(waits[i])), members, i)

    dependents: dict[str, list[str]] = {}
    for node in nodes.values():
        for d in node.deps:
            dependents.setdefault(d, []).append(node.id)
    return Graph(
        nodes=nodes,
        dependents={k: tuple(v) for k, v in dependents.items()},
        order=_topological(nodes, dependents),
    )


def _topological(nodes: Mapping[str, Node], dependents: Mapping[str, list[str]]) -> tuple[str, ...]:
    """Kahn's algorithm with a heap on file position, so the order is stable and readable.
    Tasks caught in a cycle (only possible on unvalidated input) follow, in file order."""
    left = {i: len(n.deps) for i, n in nodes.items()}
    heap = [(n.index, i) for i, n in nodes.items() if not n.deps]
    heapq.heapify(heap)
    out: list[str] = []
    while heap:
        _, tid = heapq.heappop(heap)
        out.append(tid)
        for dep in dependents.get(tid, ()):
            left[dep] -= 1
            if left[dep] == 0:
                heapq.heappush(heap, (nodes[dep].index, dep))
    if len(out) < len(nodes):
        placed = set(out)
        out.extend(sorted((i for i in nodes if i not in placed), key=lambda i: nodes[i].index))
    return tuple(out)
