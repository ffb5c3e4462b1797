"""The task graph the files describe: per task its kind, its queue target and what it waits for.

Pure: built from `Desired` alone (no Redis, no clock). It encodes the fixed semantics of `parent`,
groups, `sequential`, backlog and `depends_on` (DESIGN.md "Files"); it does not validate (the
loader reports unknown ids and cycles) and every algorithm is iterative (10,000-long chains).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from operator import attrgetter
from typing import Any, TypeVar

from ..spec.desired import Desired, TaskSpec

_T = TypeVar("_T")

# Queue targets that are not an agent instance's own name (the characters are not valid in names).
ROLE_PREFIX = "%"  # a role: any agent with it
BACKLOG = "*backlog"  # any idle agent


class TaskKind(str, Enum):
    WORK = "work"  # has a worker target: an agent, a pool, a role
    GROUP = "group"  # no target, named as parent: completes when its children complete
    BACKLOG = "backlog"  # no target and no children: any idle agent may claim it
    # No target and `approve`: a manual checkpoint. It runs no model: once what it waits for
    # completed it awaits a person's `tt approve`; the tasks naming it as parent wait for it.
    GATE = "gate"


@dataclass(frozen=True)
class Node:
    """One task in the graph: its kind, queue target and what it waits for."""

    id: str
    kind: TaskKind
    target: str  # queue target (`keys.Keys.queue`); "" for a group or gate, never queued
    deps: tuple[str, ...]  # ids this task waits for, without duplicates
    children: tuple[str, ...]  # for a group: the tasks naming it as parent, in file order
    index: int  # position in tasks.toml
    # In a sequential group: the member before it, when it waits for that one only to run after
    # it (not named in its own depends_on); "" otherwise. Skipped, it counts as done.
    after: str = ""


def made(cls: type[_T], fields: dict[str, Any]) -> _T:
    """`cls(**fields)` for a frozen dataclass `cls` and every one of its fields, in one step:
    its __init__ sets them one `object.__setattr__` at a time (~2-3 us for a node or an action;
    a 10,000-task plan builds 20,000). tests/plan/test_graph.py holds the two equal."""
    made = object.__new__(cls)
    object.__setattr__(made, "__dict__", fields)
    return made


@dataclass(frozen=True)
class Graph:
    """Every task's node, the reverse edges, and an order that puts dependencies first."""

    nodes: Mapping[str, Node]
    dependents: Mapping[str, tuple[str, ...]]  # reverse edges: Redis `children:ID` sets
    order: tuple[str, ...]  # topological (dependencies first), ties broken by file order

    def waits(self) -> dict[str, tuple[str, ...]]:
        return {i: n.deps for i, n in self.nodes.items()}


def task_target(task: TaskSpec, desired: Desired) -> str | None:
    """Where the task's work goes: its agent, its role, the default agent, the default role.
    An agent's queue is its name whatever its replicas: every replica of a pool listens on the
    pool's queue (the first replica's own) and worker-2 also on its own, so a scale is never a
    change of any task's target."""
    return _target(task, _default_target(desired))


def _default_target(desired: Desired) -> str | None:
    """Where a task naming neither an agent nor a role goes: the default agent, else role."""
    if desired.default_agent:
        return desired.default_agent
    return ROLE_PREFIX + desired.default_role if desired.default_role else None


def _target(task: TaskSpec, default: str | None) -> str | None:
    if task.agent:
        return task.agent
    return ROLE_PREFIX + task.role if task.role else default


def build_graph(desired: Desired) -> Graph:
    index: dict[str, int] = {}
    specs: list[TaskSpec] = []
    for spec in desired.tasks:
        if spec.id not in index:  # duplicates are the loader's to report; the first one wins
            index[spec.id] = len(specs)
            specs.append(spec)
    default = _default_target(desired)  # (once, not per task)
    targets = [_target(s, default) for s in specs]

    waits: list[list[str]] = [[] for _ in specs]
    children: dict[str, list[str]] = {}
    for i, spec in enumerate(specs):
        p, tid = spec.parent, spec.id
        if p is not None and p != tid and p in index:
            if targets[index[p]] is not None or specs[index[p]].approve:
                waits[i].append(p)  # a working parent (or a gate) runs first
            else:
                children.setdefault(p, []).append(tid)  # a group does not hold its children
        for d in spec.depends_on:
            if d != tid and d in index:
                waits[i].append(d)
    ordered: dict[int, str] = {}  # a sequential member's position -> the member before it
    for group, kids in children.items():
        g = index[group]
        waits[g].extend(kids)
        if specs[g].sequential:
            for before, after in itertools.pairwise(kids):
                waits[index[after]].append(before)
                if before not in specs[index[after]].depends_on:
                    ordered[index[after]] = before

    nodes: dict[str, Node] = {}
    for i, spec in enumerate(specs):
        target, wait = targets[i], waits[i]
        members = tuple(children[spec.id]) if spec.id in children else ()
        if target is not None:
            kind = TaskKind.WORK
        elif spec.approve:
            kind, target = TaskKind.GATE, ""
        elif members:
            kind, target = TaskKind.GROUP, ""
        else:
            kind, target = TaskKind.BACKLOG, BACKLOG
        nodes[spec.id] = made(
            Node,
            {
                "id": spec.id,
                "kind": kind,
                "target": target,
                "deps": tuple(dict.fromkeys(wait)) if len(wait) > 1 else tuple(wait),
                "children": members,
                "index": i,
                "after": ordered.get(i, ""),
            },
        )

    dependents: dict[str, list[str]] = {}
    for node in nodes.values():
        for d in node.deps:
            dependents.setdefault(d, []).append(node.id)
    return Graph(
        nodes=nodes,
        dependents={k: tuple(v) for k, v in dependents.items()},
        order=_topological(nodes, dependents),
    )


def touched_by(
    desired: Desired, changed: Iterable[str], parents_before: Iterable[str | None]
) -> set[str]:
    """The tasks whose node (`build_graph`) an edit of the task list may have changed, the
    roster and the [meta] defaults staying the same: the `changed` tasks (added or redefined),
    the parents they and the removed tasks named before (`parents_before`) or name now, and
    every member of those. A node depends on nothing else: its own spec, whether its parent
    works or groups, and in a group its members or, when sequential, the member before it."""
    specs: dict[str, TaskSpec] = {}
    for spec in desired.tasks:
        specs.setdefault(spec.id, spec)
    ids = {tid for tid in changed if tid in specs}
    parents = set(parents_before) | {specs[tid].parent for tid in ids}
    around = ids | {p for p in parents if p is not None and p in specs}
    return around | {spec.id for spec in specs.values() if spec.parent in around}


def graph_of(desired: Desired, ids: Iterable[str]) -> Graph:
    """The nodes of `ids` alone (ids the files do not define are left out), each exactly as
    `build_graph` makes it, ordered after those of them each waits for (file order breaking
    ties): what an incremental plan needs. One pass over the specs finds positions and groups'
    members; no node of the other tasks is built and nothing but `ids` is sorted."""
    index: dict[str, int] = {}
    specs: list[TaskSpec] = []
    for spec in desired.tasks:
        if spec.id not in index:
            index[spec.id] = len(specs)
            specs.append(spec)
    targets: dict[str, str | None] = {}

    def target(tid: str) -> str | None:
        if tid not in targets:
            targets[tid] = task_target(specs[index[tid]], desired)
        return targets[tid]

    named: dict[str, list[str]] = {}  # parent -> the tasks naming it, in file order
    for spec in specs:
        p = spec.parent
        if p is not None and p != spec.id and p in index:
            named.setdefault(p, []).append(spec.id)

    def holds(tid: str) -> bool:  # the tasks naming it as parent wait for it
        return target(tid) is not None or specs[index[tid]].approve

    def members(tid: str) -> list[str]:
        return [] if holds(tid) else named.get(tid, [])

    nodes: dict[str, Node] = {}
    for tid in dict.fromkeys(ids):
        if tid not in index:
            continue
        spec = specs[index[tid]]
        own = target(tid)
        waits: list[str] = []
        p = spec.parent
        group = p if p is not None and p != tid and p in index and not holds(p) else None
        if p is not None and p != tid and p in index and group is None:
            waits.append(p)
        waits.extend(d for d in spec.depends_on if d != tid and d in index)
        # build_graph adds the members of each group, and a sequential group's order, group by
        # group in the order of their first members: the same order here.
        kids = members(tid)
        before: list[str] = []
        group_first = -1  # file position of the first member of this task's group
        if group is not None and specs[index[group]].sequential:
            siblings = named[group]
            at = siblings.index(tid)
            before = siblings[at - 1 : at] if at else []
            group_first = index[siblings[0]]
        if kids and before and group_first < index[kids[0]]:
            waits.extend(before + kids)
        else:
            waits.extend(kids + before)
        if own is not None:
            kind, where = TaskKind.WORK, own
        elif spec.approve:
            kind, where = TaskKind.GATE, ""
        elif kids:
            kind, where = TaskKind.GROUP, ""
        else:
            kind, where = TaskKind.BACKLOG, BACKLOG
        after = before[0] if before and before[0] not in spec.depends_on else ""
        deps = tuple(dict.fromkeys(waits))
        nodes[tid] = Node(tid, kind, where, deps, tuple(kids), index[tid], after)
    dependents: dict[str, list[str]] = {}
    for node in nodes.values():
        for d in node.deps:
            if d in nodes:
                dependents.setdefault(d, []).append(node.id)
    inside = {
        i: Node(
            n.id,
            n.kind,
            n.target,
            tuple(d for d in n.deps if d in nodes),
            n.children,
            n.index,
            n.after,
        )
        for i, n in nodes.items()
    }
    return Graph(
        nodes=nodes,
        dependents={k: tuple(v) for k, v in dependents.items()},
        order=_topological(inside, dependents),
    )


def _topological(nodes: Mapping[str, Node], dependents: Mapping[str, list[str]]) -> tuple[str, ...]:
    """Kahn's algorithm taking the ready task first in the file, so the order is stable and
    readable. Tasks caught in a cycle (only possible on unvalidated input) follow, in file
    order.

    The ready task first in the file is the lower of two: the next ready one at or after a
    cursor that walks the file once, and the top of a heap holding the tasks that became ready
    behind the cursor. Most files name what a task waits for above it, so most tasks leave by
    the cursor and the heap stays small (a heap of every task takes ~2x as long on 10,000)."""
    ranked = sorted(nodes.values(), key=_INDEX)  # (file order already: a pass to check it)
    rank = {n.id: r for r, n in enumerate(ranked)}
    left = [len(n.deps) for n in ranked]
    heap: list[int] = []
    out: list[str] = []
    cursor, total = 0, len(ranked)
    while True:
        while cursor < total and left[cursor]:
            cursor += 1  # not ready yet: it goes to the heap when it is
        if heap and (cursor == total or heap[0] < cursor):
            at = heapq.heappop(heap)
        elif cursor < total:
            at, cursor = cursor, cursor + 1
        else:
            break
        tid = ranked[at].id
        out.append(tid)
        for kid in dependents.get(tid, ()):
            r = rank[kid]
            left[r] -= 1
            if not left[r] and r < cursor:
                heapq.heappush(heap, r)
    if len(out) < total:
        placed = set(out)
        out.extend(n.id for n in ranked if n.id not in placed)
    return tuple(out)


_INDEX = attrgetter("index")
