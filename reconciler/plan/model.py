"""A small model of a town's tasks in Redis (states, stored deps, `children:` sets, queued
flags) that replays what the Lua transitions do: `plan.diff` plans on it, so each record states
what executing it in plan order yields. It mirrors lua/lib.lua (settle, complete, release,
unqueue, upstream); tests hold the two to each other. Pure: plain values only.
"""

from __future__ import annotations

from collections.abc import Iterable

from .graph import Node, TaskKind
from .state import FAILED_UPSTREAM, ObservedTask, TaskState

_WAITING = (TaskState.BLOCKED, TaskState.UPSTREAM_FAILED)


class StoreModel:
    def __init__(self, tasks: Iterable[ObservedTask]) -> None:
        self.state: dict[str, TaskState] = {}
        self.queued: dict[str, bool] = {}
        self.kind: dict[str, TaskKind] = {}
        self.deps: dict[str, tuple[str, ...]] = {}
        self.children: dict[str, set[str]] = {}
        for t in tasks:
            self.state[t.id], self.queued[t.id] = t.state, t.queued
            self.kind[t.id], self.deps[t.id] = t.kind, t.deps
            for d in t.deps:
                self.children.setdefault(d, set()).add(t.id)

    def _store(self, tid: str, node: Node) -> None:
        for d in self.deps.get(tid, ()):
            self.children.get(d, set()).discard(tid)
        self.deps[tid], self.kind[tid] = node.deps, node.kind
        for d in node.deps:
            self.children.setdefault(d, set()).add(tid)

    def _left(self, tid: str) -> int:
        return sum(1 for d in self.deps[tid] if self.state.get(d) is not TaskState.COMPLETED)

    def _unqueue(self, tid: str) -> None:
        self.queued[tid] = False

    def _upstream_failed(self, tid: str) -> bool:
        """A dependency failed, was cancelled or does not exist (pruned): lib.lua `upstream`."""
        state = self.state
        return any(d not in state or state[d] in FAILED_UPSTREAM for d in self.deps[tid])

    def _settle(self, tid: str) -> TaskState:
        before = self.state.get(tid)
        if self._upstream_failed(tid):
            self.state[tid] = TaskState.UPSTREAM_FAILED
        elif self._left(tid):
            self.state[tid] = TaskState.BLOCKED
        elif self.kind[tid] is TaskKind.GROUP:
            self._complete(tid)
            return TaskState.COMPLETED
        else:
            self.state[tid], self.queued[tid] = TaskState.READY, True
        if (before is TaskState.UPSTREAM_FAILED) != (self.state[tid] is TaskState.UPSTREAM_FAILED):
            self._release(tid)
        return self.state[tid]

    def _complete(self, tid: str) -> None:
        self.state[tid] = TaskState.COMPLETED
        self._release(tid)

    def _release(self, tid: str) -> None:
        """`tid` changed state: settle again what waits for it, and onwards where that changed."""
        stack = [tid]
        while stack:
            for kid in self.children.get(stack.pop(), ()):
                before = self.state.get(kid)
                if before not in _WAITING:
                    continue
                if self._upstream_failed(kid):
                    after = TaskState.UPSTREAM_FAILED
                elif self._left(kid):
                    after = TaskState.BLOCKED
                elif self.kind[kid] is TaskKind.GROUP:
                    after = TaskState.COMPLETED
                else:
                    after, self.queued[kid] = TaskState.READY, True
                if after is not before:
                    self.state[kid] = after
                    # Onwards unless it became ready: what waits for a ready task stays
                    # blocked; but leaving upstream_failed changes theirs too (lib.lua release).
                    if after is not TaskState.READY or before is TaskState.UPSTREAM_FAILED:
                        stack.append(kid)
