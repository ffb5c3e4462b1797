"""`diff(desired, observed, now) -> Plan`: what must change in Redis for it to match the files.

Pure: no Redis, processes, files or clock (`now` is the caller's). The plan is an ordered tuple
of small frozen action records (`actions`) that `apply` executes, dry-run renders (`render`) and CI
reads (`Plan.as_json`). It never executes anything and never decides process liveness (fleet).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ..spec.desired import Desired, Directive, TaskSpec
from .actions import (
    JSON_VERSION,
    OPS,
    Action,
    CancelTask,
    ChangedAfterDone,
    CompleteTask,
    CreateAgent,
    CreateTask,
    DeleteAgent,
    DeleteTask,
    Orphan,
    OrphanAgent,
    Plan,
    Requeue,
    RerunTask,
    RestoreTask,
    UpdateAgent,
    UpdateTask,
    action_json,
    spec_changed,
)
from .agentdiff import AGENT_DRIFT_FIELDS, AGENT_OTHER_FIELDS, agent_actions
from .changes import TASK_FIELDS, changed_task_fields
from .graph import Graph, Node, TaskKind, build_graph, made
from .model import StoreModel, repair_reason
from .render import render_lines
from .state import (
    TERMINAL,
    WAITING,
    Observed,
    ObservedTask,
    Source,
    TaskState,
)

# The plan's public names, wherever they are defined: callers import them all from here.
__all__ = [
    "AGENT_DRIFT_FIELDS",
    "AGENT_OTHER_FIELDS",
    "JSON_VERSION",
    "OPS",
    "TASK_FIELDS",
    "Action",
    "CancelTask",
    "ChangedAfterDone",
    "CompleteTask",
    "CreateAgent",
    "CreateTask",
    "DeleteAgent",
    "DeleteTask",
    "Orphan",
    "OrphanAgent",
    "Plan",
    "Requeue",
    "RerunTask",
    "RestoreTask",
    "UpdateAgent",
    "UpdateTask",
    "action_json",
    "changed_task_fields",
    "diff",
    "render_lines",
    "task_actions",
]

# -- diff ----------------------------------------------------------------------------------------

_WAITING_OR_READY = (*WAITING, TaskState.READY)
# A cancel leaves these as they are: a skipped task does not run anyway, and cancelling it would
# fail what waits for it (lua/upsert_tasks.lua `cancel`).
_NOTHING_TO_CANCEL = (*TERMINAL, TaskState.SKIPPED)


def diff(
    desired: Desired,
    observed: Observed,
    now: float,
    *,
    prune: bool = True,
    rerun_changed: bool = False,
    graph: Graph | None = None,
) -> Plan:
    """The plan that makes `observed` match `desired`; empty (`is_empty`) when it already does.

    `graph` (`graph.graph_of`) limits the task actions to its nodes: an incremental apply
    passes the few tasks it knows may differ, with `observed` holding them and what they wait
    for. Every task of `observed` that the files define is then left alone unless in `graph`.

    Order: agents (create, update, delete), then per task in topological order its create (or
    restore from a tombstone), update, re-run or changed-after-done, then cancels, completes,
    deletes and dispatch repairs. `now` only dates how long a pruned task is kept as a
    tombstone (`DeleteTask.keep_until`); which actions a plan holds depends only on the two
    states (reproducible dry-runs, idempotent applies).
    """
    agents = agent_actions(desired, observed, prune)
    tasks = list(
        task_actions(
            desired,
            observed,
            prune=prune,
            rerun_changed=rerun_changed,
            graph=graph,
            keep_until=now + desired.town.policy.keep_deleted,
        )
    )
    every_task = not desired.tasks and any(isinstance(a, DeleteTask) for a in tasks)
    every_agent = not desired.agents and any(isinstance(a, DeleteAgent) for a in agents)
    return Plan(tuple(agents + tasks), every_task or every_agent, every_task)


def task_actions(
    desired: Desired,
    observed: Observed,
    *,
    prune: bool = True,
    rerun_changed: bool = False,
    graph: Graph | None = None,
    keep_until: float | None = None,
) -> Iterator[Action]:
    """`diff`'s task actions, in its order, each planned as it is asked for: a caller may act on
    the first while the rest are planned (`apply` writes the tasks of a new town so, Redis
    running one batch while the next is planned). Still pure: planning reads only its inputs.
    `keep_until` dates the tombstone of each pruned task (`diff` passes now + keep_deleted)."""
    if graph is None:
        graph = build_graph(desired)
    return _TaskPlanner(desired, graph, observed, prune, rerun_changed, keep_until).actions()


class _TaskPlanner(StoreModel):
    """Plans task actions while replaying their effect on a small model of the store (states,
    stored deps, `children:` sets, queued flags), so every record's state and deps_left are what
    executing it in plan order yields, and repairs are planned only for what is still wrong."""

    def __init__(
        self,
        desired: Desired,
        graph: Graph,
        observed: Observed,
        prune: bool,
        rerun: bool,
        keep_until: float | None = None,
    ) -> None:
        self.graph, self.observed, self.prune, self.rerun = graph, observed, prune, rerun
        self.keep_until = keep_until
        self.specs = {t.id: t for t in reversed(desired.tasks)}  # first definition wins
        # Tasks this plan creates: settled as created and again by every cascade after, so
        # no repair can apply to them (`_repairs` looks at the others only). This holds as the
        # graph is acyclic (the loader rejects cycles) and `graph.order` puts what a task
        # waits for before it.
        self.created: set[str] = set()
        super().__init__(observed.tasks.values())

    def actions(self) -> Iterator[Action]:
        completes: list[str] = []
        cancels: list[str] = []
        for tid in self.graph.order:
            spec, node = self.specs[tid], self.graph.nodes[tid]
            seen = self.observed.tasks.get(tid)
            if seen is None:
                seen = self.observed.tombstones.get(tid)
                if seen is None:
                    yield self._create(spec, node)
                    continue
                yield self._restore(seen, node)
            directive = spec.directive
            action = self._update(spec, node, seen, directive)
            if action is not None:
                yield action
            state = self.state[tid]
            if directive is Directive.DONE and state is not TaskState.COMPLETED:
                completes.append(tid)
            elif directive is Directive.CANCELLED and state not in _NOTHING_TO_CANCEL:
                cancels.append(tid)
        # Cancels before completes: a completion cascade must not queue (or complete, for a
        # group) a task the file cancels, and a worker must never get to claim it in between.
        for tid in cancels:
            if self.state[tid] not in _NOTHING_TO_CANCEL:
                yield CancelTask(tid, self.state[tid])
                self._unqueue(tid)
                self.state[tid] = TaskState.CANCELLED
                self._release(tid)
        for tid in completes:
            # A group marked done may already have completed with its last child, above.
            if self.state[tid] is not TaskState.COMPLETED:
                yield CompleteTask(tid, self.state[tid])
                self._unqueue(tid)
                self._complete(tid)
        yield from self._removals()
        yield from self._repairs()

    # -- per task -------------------------------------------------------------------------------
    def _create(self, spec: TaskSpec, node: Node) -> CreateTask:
        tid = node.id
        self._store(tid, node, spec.run_if)
        self.queued[tid] = False
        self.created.add(tid)
        states = [self.state.get(d) for d in node.deps]  # (for deps_left and its verdict)
        left = len(states) - states.count(TaskState.COMPLETED)
        directive = Directive.PENDING if spec.status is None else spec.directive
        if directive is Directive.PENDING:
            state = self._settle(tid, states)
        elif directive is Directive.DONE:
            self._complete(tid)
            state = TaskState.COMPLETED
        else:
            state = self.state[tid] = TaskState.CANCELLED
            self._release(tid)  # a task of the CLI may already wait for this id
        return made(
            CreateTask,
            {
                "spec": spec,
                "source": Source.FILE,
                "kind": node.kind,
                "state": state,
                "deps": node.deps,
                "deps_left": left,
                "target": node.target,
                "order": float(node.index),
                "after": node.after,
            },
        )

    def _restore(self, tomb: ObservedTask, node: Node) -> RestoreTask:
        """Mirrors upsert_tasks.lua `restore`: the record as pruned, settled again unless it
        had finished or awaits approval, and what waits for it settled again."""
        tid = tomb.id
        before = TaskState.READY if tomb.state is TaskState.RUNNING else tomb.state
        self.state[tid], self.queued[tid], self.kind[tid] = before, False, tomb.kind
        self.deps[tid] = tomb.deps
        if tomb.after:
            self.after[tid] = tomb.after
        if tomb.run_if != "success":
            self.run_if[tid] = tomb.run_if
        for d in tomb.deps:
            self.children.setdefault(d, set()).add(tid)
        if before not in TERMINAL and before is not TaskState.AWAITING_APPROVAL:
            self._settle(tid)  # (awaiting approval: its work is done, a person's word is next)
        self._release(tid)
        return RestoreTask(
            tid,
            before,
            self.state[tid],
            tomb.spec_hash,
            tomb.deps,
            tomb.target,
            float(node.index),
            tomb.after,
        )

    def _update(
        self, spec: TaskSpec, node: Node, seen: ObservedTask, directive: Directive
    ) -> Action | None:
        tid, state = node.id, self.state[node.id]
        changed = changed_task_fields(seen, spec, node)
        pending = directive is Directive.PENDING
        if pending and state is TaskState.CANCELLED:
            # The file no longer says cancelled: "pending" means run it.
            return self._rerun(spec, node, changed, "no longer cancelled in tasks.toml")
        if not changed:
            return None
        if pending and state is TaskState.COMPLETED and spec_changed(changed):
            if self.rerun:
                return self._rerun(spec, node, changed, "changed after done")
            return ChangedAfterDone(tid, changed)
        self._store(tid, node, spec.run_if)
        new_state: TaskState | None = None
        if pending and state in _WAITING_OR_READY:
            self._unqueue(tid)
            new_state = self._settle(tid)
        elif pending and state is TaskState.AWAITING_APPROVAL:
            after = self.recheck_awaiting(tid, seen.kind is not TaskKind.GATE, spec.approve)
            new_state = after if after is not state else None
        return UpdateTask(
            tid,
            spec,
            changed,
            node.kind,
            state,
            new_state,
            node.deps,
            self._left(tid),
            node.target,
            seen.target,
            float(node.index),
            node.after,
        )

    def _rerun(
        self, spec: TaskSpec, node: Node, changed: tuple[str, ...], reason: str
    ) -> RerunTask:
        before = self.state[node.id]
        self._store(node.id, node, spec.run_if)
        self._unqueue(node.id)
        left = self._left(node.id)
        new_state = self._settle(node.id)
        self._release(node.id)  # what waited for it as failed or cancelled waits again
        return RerunTask(
            node.id,
            spec,
            changed,
            reason,
            node.kind,
            before,
            new_state,
            node.deps,
            left,
            node.target,
            float(node.index),
            node.after,
        )

    def _removals(self) -> list[Action]:
        gone = [
            t
            for t in self.observed.tasks.values()
            if t.id not in self.specs and t.source is Source.FILE
        ]
        gone.sort(key=lambda t: (t.order, t.id))
        if not self.prune:
            return [Orphan(t.id) for t in gone]
        for t in gone:
            for d in self.deps.pop(t.id, ()):
                self.children.get(d, set()).discard(t.id)
            del self.state[t.id]
        for t in gone:  # what waits for it (a task of the CLI) is upstream_failed now
            self._release(t.id)
        return [DeleteTask(t.id, t.state is TaskState.RUNNING, self.keep_until) for t in gone]

    def _repairs(self) -> list[Action]:
        """Tasks still ready-but-unqueued, blocked-with-nothing-left, or in the wrong one of
        blocked / upstream_failed / skipped (a town written before that state existed) after
        all above. The tasks this plan created are settled already (see `created`)."""
        others = sorted(
            (t for t in self.observed.tasks.values() if t.id not in self.specs),
            key=lambda t: (t.order, t.id),
        )
        nodes, created = self.graph.nodes, self.created
        targets = {t.id: t.target for t in others}
        out: list[Action] = []
        for tid in (*self.graph.order, *(t.id for t in others)):
            if tid in created:
                continue
            state = self.state.get(tid)
            if state is TaskState.READY and not self.queued[tid]:
                reason = "ready but in no queue"
            elif state in WAITING and (should := self._verdict(tid)) is not state:
                reason = repair_reason(state, should, self.run_if.get(tid, "success"))
            elif state is TaskState.AWAITING_APPROVAL and (reason := self._wrongly_awaits(tid)):
                new_state = self.recheck_awaiting(tid, True, False)
                out.append(Requeue(tid, _target(tid, nodes, targets), state, new_state, reason))
                continue
            else:
                continue
            self._unqueue(tid)
            new_state = self._settle(tid)
            out.append(Requeue(tid, _target(tid, nodes, targets), state, new_state, reason))
        return out

    def _wrongly_awaits(self, tid: str) -> str:
        """Why `tid` should not await approval ('' when it should): a group or a backlog task
        (a gate edited so by a tt that did not recheck it), a gate whose dependencies are not
        all completed, a work task of the files without `approve`."""
        kind = self.kind[tid]
        if kind in (TaskKind.GROUP, TaskKind.BACKLOG):
            return f"a {kind.value} task does not await approval"
        if kind is TaskKind.GATE:
            if self._verdict(tid) is TaskState.AWAITING_APPROVAL:
                return ""
            return "a task this gate waits for is not completed"
        spec = self.specs.get(tid)
        if spec is not None and not spec.approve:
            return "its spec no longer asks for approval"
        return ""


def _target(tid: str, nodes: Mapping[str, Node], others: dict[str, str]) -> str:
    """The queue of a task to repair: its node's, or the stored one of a task the files do not
    define (a task of the CLI)."""
    node = nodes.get(tid)
    return node.target if node is not None else others[tid]
