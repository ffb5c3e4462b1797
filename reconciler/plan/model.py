"""A small model of a town's tasks in Redis (states, stored deps, `children:` sets, queued
flags) that replays what the Lua transitions do: `plan.diff` plans on it, so each record states
what executing it in plan order yields. It mirrors lua/lib.lua (settle, complete, release,
unqueue, upstream); tests hold the two to each other. Pure: plain values only.
"""

from __future__ import annotations

from collections.abc import Iterable

from .conditions import readiness
from .graph import Node, TaskKind
from .state import WAITING, ObservedTask, TaskState

# A change into or out of these changes what their dependents are too (lib.lua `release`).
_CASCADING = (TaskState.UPSTREAM_FAILED, TaskState.SKIPPED)
# The ends of settling that leave the dependents waiting as they were.
_HOLDING = (TaskState.READY, TaskState.AWAITING_APPROVAL)


class StoreModel:
    def __init__(self, tasks: Iterable[ObservedTask]) -> None:
        self.state: dict[str, TaskState] = {}
        self.queued: dict[str, bool] = {}
        self.kind: dict[str, TaskKind] = {}
        self.deps: dict[str, tuple[str, ...]] = {}
        self.run_if: dict[str, str] = {}
        self.after: dict[str, str] = {}  # `Node.after`, where set
        self.children: dict[str, set[str]] = {}
        for t in tasks:
            self.state[t.id], self.queued[t.id] = t.state, t.queued
            self.kind[t.id], self.deps[t.id] = t.kind, t.deps
            if t.run_if != "success":
                self.run_if[t.id] = t.run_if
            if t.after:
                self.after[t.id] = t.after
            for d in t.deps:
                self.children.setdefault(d, set()).add(t.id)

    def _store(self, tid: str, node: Node, run_if: str = "success") -> None:
        children = self.children
        old = self.deps.get(tid)
        if old is not None:
            for d in old:
                children.get(d, set()).discard(tid)
        self.deps[tid], self.kind[tid] = node.deps, node.kind
        if node.after:
            self.after[tid] = node.after
        elif old is not None:
            self.after.pop(tid, None)
        if run_if != "success":
            self.run_if[tid] = run_if
        elif old is not None:
            self.run_if.pop(tid, None)  # (a task new to the model has neither)
        for d in node.deps:
            kids = children.get(d)
            if kids is None:
                children[d] = {tid}
            else:
                kids.add(tid)

    def _left(self, tid: str) -> int:
        deps = self.deps[tid]
        if not deps:
            return 0
        state = self.state
        return len(deps) - [state.get(d) for d in deps].count(TaskState.COMPLETED)

    def _unqueue(self, tid: str) -> None:
        self.queued[tid] = False

    def _verdict(self, tid: str, states: list[TaskState | None] | None = None) -> TaskState:
        """What the task is, its dependencies being as they are (lib.lua `readiness`): a ready
        group is completed, a ready gate awaits approval. `states`: its dependencies' states,
        when the caller has them."""
        state, kind = self.state, self.kind[tid]
        deps = [state.get(d) for d in self.deps[tid]] if states is None else states
        before = self.after.get(tid)
        if before is not None and state.get(before) is TaskState.SKIPPED:
            # only ordered after it (a sequential group): a member skipped counts as done
            deps = [TaskState.COMPLETED if d == before else state.get(d) for d in self.deps[tid]]
        after = readiness(self.run_if.get(tid, "success"), deps, kind is TaskKind.GROUP)
        if after is TaskState.READY and kind is TaskKind.GROUP:
            return TaskState.COMPLETED
        if after is TaskState.READY and kind is TaskKind.GATE:
            return TaskState.AWAITING_APPROVAL
        return after

    def _settle(self, tid: str, states: list[TaskState | None] | None = None) -> TaskState:
        before = self.state.get(tid)
        after = self._verdict(tid, states)
        if after is TaskState.COMPLETED:
            self._complete(tid)
            return after
        self.state[tid] = after
        if after is TaskState.READY:
            self.queued[tid] = True
        if before is not after and (before in _CASCADING or after in _CASCADING):
            self._release(tid)
        return after

    def _awaiting_gate(self, tid: str) -> bool:
        """A gate awaiting approval: settled again when what it waits for changes (ready.lua
        `waits`), so a re-run upstream blocks it again."""
        awaiting = self.state.get(tid) is TaskState.AWAITING_APPROVAL
        return awaiting and self.kind[tid] is TaskKind.GATE

    def recheck_awaiting(self, tid: str, ran: bool, approve: bool) -> TaskState:
        """`tid` awaits approval and its spec was rewritten (ready.lua `recheck_awaiting`): a
        work task whose model ran (`ran`) awaits on while it has `approve` and completes once
        not; anything else (a gate, a group, a backlog task, a gate given an agent) settles."""
        if self.kind[tid] is TaskKind.WORK and ran:
            if not approve:
                self._complete(tid)
            return self.state[tid]
        return self._settle(tid)

    def _complete(self, tid: str) -> None:
        self.state[tid] = TaskState.COMPLETED
        self._release(tid)

    def _release(self, tid: str) -> None:
        """`tid` changed state: settle again what waits for it, and onwards where that changed."""
        stack = [tid]
        while stack:
            for kid in self.children.get(stack.pop(), ()):
                before = self.state.get(kid)
                if before not in WAITING and not self._awaiting_gate(kid):
                    continue
                after = self._verdict(kid)
                if after is TaskState.READY:
                    self.queued[kid] = True
                if after is not before:
                    self.state[kid] = after
                    # Onwards unless it became ready (or awaits approval): what waits for such
                    # a task stays blocked; but leaving upstream_failed or skipped changes
                    # theirs too (lib.lua release).
                    if after not in _HOLDING or before in _CASCADING:
                        stack.append(kid)


def repair_reason(state: TaskState, should: TaskState, run_if: str) -> str:
    """Why a waiting task is settled again: what it should be, by its dependencies."""
    if should is TaskState.UPSTREAM_FAILED:
        return "a task it waits for failed or was cancelled"
    if should is TaskState.SKIPPED:
        return f"run_if = {run_if}: its dependencies ended so that it does not run"
    if should is TaskState.BLOCKED:
        if state is TaskState.UPSTREAM_FAILED:
            return "no task it waits for failed"
        return "a task it waits for is not finished"
    if run_if == "success":
        return "every dependency is completed"
    return "every dependency has ended"
