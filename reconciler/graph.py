"""The task graph the files describe: per task its kind, its queue target and what it waits for.

Pure: built from `Desired` alone (no Redis, no clock). It encodes the fixed semantics of `parent`,
groups, `sequential`, backlog and `depends_on` (DESIGN.md "Files"); it does not validate (the
loader reports unknown ids and cycles) and every algorithm is iterative (10,000-long chains).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from .keys import BACKLOG, POOL_PREFIX, ROLE_PREFIX
from .spec import AgentSpec, Desired, TaskSpec


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


def find_cycles(graph: Graph | Mapping[str, Sequence[str]]) -> list[tuple[str, ...]]:
    """One shortest cycle per strongly connected component of the wait-for edges.

    Each cycle starts at its member that comes first (file order for a `Graph`, mapping order
    otherwise) and lists the tasks in wait order: `("a", "b")` means a waits for b waits for a.
    A plain mapping `id -> ids it waits for` is accepted so the loader can check before `Desired`
    exists; edges to unknown ids are ignored.
    """
    waits = graph.waits() if isinstance(graph, Graph) else graph
    ids = list(waits)
    pos = {tid: i for i, tid in enumerate(ids)}
    edges = [[pos[d] for d in waits[tid] if d in pos] for tid in ids]
    cycles: list[tuple[str, ...]] = []
    for component in _strongly_connected(edges):
        if len(component) < 2 and component[0] not in edges[component[0]]:
            continue
        start = min(component)
        path = _cycle_through(start, edges, set(component))
        cycles.append(tuple(ids[i] for i in path))
    cycles.sort(key=lambda c: pos[c[0]])
    return cycles


def _strongly_connected(edges: Sequence[Sequence[int]]) -> Iterable[list[int]]:
    """Tarjan's algorithm with an explicit stack instead of recursion."""
    counter = 0
    order = [-1] * len(edges)
    low = [0] * len(edges)
    on_stack = [False] * len(edges)
    stack: list[int] = []
    for root in range(len(edges)):
        if order[root] != -1:
            continue
        work = [(root, 0)]
        while work:
            node, k = work.pop()
            if k == 0:
                order[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack[node] = True
            descended = False
            while k < len(edges[node]):
                nxt = edges[node][k]
                k += 1
                if order[nxt] == -1:
                    work.append((node, k))
                    work.append((nxt, 0))
                    descended = True
                    break
                if on_stack[nxt]:
                    low[node] = min(low[node], order[nxt])
            if descended:
                continue
            if low[node] == order[node]:
                component: list[int] = []
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    component.append(member)
                    if member == node:
                        break
                yield component
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])


def _cycle_through(start: int, edges: Sequence[Sequence[int]], members: set[int]) -> list[int]:
    """A shortest path start → … → start inside one component (breadth-first)."""
    came_from: dict[int, int] = {}
    frontier = [start]
    while frontier:
        following: list[int] = []
        for node in frontier:
            for nxt in edges[node]:
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return path[::-1]
                if nxt in members and nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start]
