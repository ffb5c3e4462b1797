"""Dependency cycles in a wait-for mapping (`id -> ids it waits for`): one readable cycle per knot.

Pure and iterative (10,000-long chains). The loader checks the files with it before a `Desired`
exists; `plan.graph.Graph` offers the same mapping through `waits()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol


class HasWaits(Protocol):
    def waits(self) -> Mapping[str, Sequence[str]]: ...


def find_cycles(graph: HasWaits | Mapping[str, Sequence[str]]) -> list[tuple[str, ...]]:
    """One shortest cycle per strongly connected component of the wait-for edges.

    Each cycle starts at its member that comes first (file order for a graph, mapping order
    otherwise) and lists the tasks in wait order: `("a", "b")` means a waits for b waits for a.
    A plain mapping `id -> ids it waits for` is accepted so the loader can check before `Desired`
    exists; edges to unknown ids are ignored.
    """
    waits = graph if isinstance(graph, Mapping) else graph.waits()
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
