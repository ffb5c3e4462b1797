"""`diff` on plain values: every file rule, prune and ownership, repairs, agents, idempotence.

`simulate` below is a second, independent model of what executing a plan does to the store
(the semantics of reconciler/store/lua): it checks each record's stated outcome as it goes, and lets
the property tests prove that applying a plan leaves nothing to plan.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import pytest

from reconciler.plan.diff import (
    AGENT_DRIFT_FIELDS,
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
    diff,
    render_lines,
)
from reconciler.plan.graph import BACKLOG, TaskKind, build_graph, graph_of, touched_by
from reconciler.plan.state import (
    AgentState,
    Observed,
    ObservedAgent,
    ObservedTask,
    Source,
    TaskState,
    agent_spec_from_json,
    agent_spec_json,
    task_spec_from_json,
)
from reconciler.spec.cycles import find_cycles
from reconciler.spec.desired import (
    AgentSpec,
    Desired,
    Directive,
    RestartPolicy,
    TaskSpec,
    TownSettings,
)

B, R, RUN, RET, C, F, X, UF = (
    TaskState.BLOCKED,
    TaskState.READY,
    TaskState.RUNNING,
    TaskState.RETRYING,
    TaskState.COMPLETED,
    TaskState.FAILED,
    TaskState.CANCELLED,
    TaskState.UPSTREAM_FAILED,
)
AGENTS = (
    AgentSpec("architect", "claude", role="architect"),
    AgentSpec("developer", "claude"),
    AgentSpec("reviewer", "claude", role="review"),
    AgentSpec("worker", "claude", replicas=2),
)
PIPELINE = (
    TaskSpec("design", "Design the auth API", agent="architect"),
    TaskSpec("implement", "Implement it", agent="developer", parent="design"),
    TaskSpec("test", "Test it", agent="reviewer", parent="implement"),
)


def town(
    *tasks: TaskSpec,
    agents: tuple[AgentSpec, ...] = AGENTS,
    default_agent: str | None = None,
) -> Desired:
    return Desired(town=TownSettings("t"), agents=agents, tasks=tasks, default_agent=default_agent)


def observed(
    desired: Desired,
    states: Mapping[str, TaskState] | None = None,
    *,
    extra: Iterable[ObservedTask] = (),
) -> Observed:
    """What Redis holds after `desired` was applied and tasks moved to `states` (default: what
    the first apply makes them). Built by hand, not with `diff`, so tests do not assume it."""
    g = build_graph(desired)
    specs = {t.id: t for t in desired.tasks}
    tasks: dict[str, ObservedTask] = {}
    for tid in g.order:
        node, spec = g.nodes[tid], specs[tid]
        state = (states or {}).get(tid)
        if state is None:
            done = all(tasks[d].state is C for d in node.deps)
            waiting = UF if any(tasks[d].state in (F, X, UF) for d in node.deps) else B
            state = {Directive.DONE: C, Directive.CANCELLED: X}.get(
                spec.directive, (C if node.kind is TaskKind.GROUP else R) if done else waiting
            )
        tasks[tid] = ObservedTask(
            tid,
            state,
            spec_hash=spec.spec_hash(),
            spec_json=spec.canonical_json(),  # as `store.observed.read_observed` reads it
            kind=node.kind,
            target=node.target,
            deps=node.deps,
            deps_left=sum(1 for d in node.deps if tasks[d].state is not C),
            order=float(node.index),
            queued=state is R,
            after=node.after,
        )
    for t in extra:
        tasks[t.id] = t
    roster = {
        name: ObservedAgent(
            name,
            AgentState.IDLE,
            base=a.name,
            spec_hash=a.spec_hash(),
            spec=agent_spec_from_json(agent_spec_json(a)),
            suspended=a.suspended,
            alive=True,
        )
        for a in desired.agents
        for name in a.instances()
    }
    return Observed(tasks=tasks, agents=roster)


def task_actions(plan: Plan) -> list[Any]:
    return [a for a in plan.actions if not isinstance(a, CreateAgent)]


def with_task(obs: Observed, tid: str, **changes: object) -> Observed:
    return replace(obs, tasks={**obs.tasks, tid: replace(obs.tasks[tid], **changes)})  # type: ignore[arg-type]


# -- simulate: executing a plan against an in-memory store -------------------------------------


class Store:
    def __init__(self, obs: Observed, now: float) -> None:
        self.tasks = dict(obs.tasks)
        self.agents = dict(obs.agents)
        self.tombstones = dict(obs.tombstones)
        self.now = now

    def set(self, tid: str, **changes: object) -> None:
        self.tasks[tid] = replace(self.tasks[tid], **changes)  # type: ignore[arg-type]

    def left(self, tid: str) -> int:
        return sum(
            1 for d in self.tasks[tid].deps if getattr(self.tasks.get(d), "state", None) != C
        )

    def failed_upstream(self, tid: str) -> bool:
        """A dependency failed, was cancelled, or does not exist (pruned)."""
        return any(
            getattr(self.tasks.get(d), "state", None) in (F, X, UF, None)
            for d in self.tasks[tid].deps
        )

    def waits_as(self, tid: str) -> TaskState:
        """What a waiting task is, its dependencies being what they are (lua/lib.lua)."""
        if self.failed_upstream(tid):
            return UF
        if self.left(tid):
            return B
        return C if self.tasks[tid].kind is TaskKind.GROUP else R

    def settle(self, tid: str) -> None:
        before, after = self.tasks[tid].state, self.waits_as(tid)
        if after is C:
            self.complete(tid)
            return
        self.set(tid, state=after, deps_left=self.left(tid), queued=after is R)
        if (before is UF) != (after is UF):
            self.release(tid)

    def complete(self, tid: str) -> None:
        self.set(tid, state=C, queued=False, finished_at=self.now)
        self.release(tid)

    def fail(self, tid: str) -> None:
        self.set(tid, state=F, queued=False, error="boom")
        self.release(tid)

    def release(self, tid: str) -> None:
        todo = [tid]
        while todo:
            cur = todo.pop()
            for kid in [t.id for t in self.tasks.values() if cur in t.deps]:
                before = self.tasks[kid].state
                if before not in (B, UF):
                    continue
                after = self.waits_as(kid)
                self.set(kid, state=after, deps_left=self.left(kid), queued=after is R)
                if after is C:
                    self.set(kid, finished_at=self.now)
                if after is not before and (after is not R or before is UF):
                    todo.append(kid)

    def write(
        self,
        tid: str,
        spec: TaskSpec,
        kind: TaskKind,
        target: str,
        deps: tuple[str, ...],
        after: str = "",
    ):  # type: ignore[no-untyped-def]
        self.set(
            tid,
            spec=task_spec_from_json(spec.canonical_json()),
            spec_hash=spec.spec_hash(),
            source=Source.FILE,
            kind=kind,
            target=target,
            deps=deps,
            after=after,
        )


def simulate(obs: Observed, plan: Plan, now: float = 1000.0) -> Observed:
    """Execute `plan` in order, asserting each record's stated outcome."""
    s = Store(obs, now)
    pruned: list[str] = []  # lua/delete_tasks.lua releases their dependents after all of them
    for a in plan.actions:
        if not isinstance(a, DeleteTask):
            for tid in pruned:
                s.release(tid)
            pruned.clear()
        if isinstance(a, CreateAgent):
            assert a.name not in s.agents
            s.agents[a.name] = ObservedAgent(
                a.name,
                AgentState.STARTING,
                base=a.spec.name,
                spec_hash=a.spec.spec_hash(),
                spec=a.spec,
                suspended=a.spec.suspended,
            )
        elif isinstance(a, UpdateAgent):
            s.agents[a.name] = replace(
                s.agents[a.name],
                spec=a.spec,
                spec_hash=a.spec.spec_hash(),
                suspended=a.spec.suspended,
                source=Source.FILE,
            )
        elif isinstance(a, DeleteAgent):
            del s.agents[a.name]
        elif isinstance(a, CreateTask):
            assert a.id not in s.tasks
            s.tasks[a.id] = ObservedTask(a.id, B, order=a.order, created_at=now)
            s.write(a.id, a.spec, a.kind, a.target, a.deps, a.after)
            assert s.left(a.id) == a.deps_left
            if a.spec.directive is Directive.DONE:
                s.complete(a.id)
            elif a.spec.directive is Directive.CANCELLED:
                s.set(a.id, state=X)
                s.release(a.id)
            else:
                s.settle(a.id)
            assert s.tasks[a.id].state is a.state, a
        elif isinstance(a, UpdateTask):
            before = s.tasks[a.id].state
            assert before is a.state
            s.write(a.id, a.spec, a.kind, a.target, a.deps, a.after)
            if a.spec.directive is Directive.PENDING and before in (B, R, UF):
                s.settle(a.id)
            assert s.tasks[a.id].state is (a.new_state or before), a
            assert s.left(a.id) == a.deps_left
        elif isinstance(a, RerunTask):
            s.write(a.id, a.spec, a.kind, a.target, a.deps, a.after)
            s.set(a.id, error=None, finished_at=None, queued=False)
            assert s.left(a.id) == a.deps_left
            s.settle(a.id)
            assert s.tasks[a.id].state is a.new_state, a
            s.release(a.id)
        elif isinstance(a, CompleteTask):
            assert s.tasks[a.id].state is a.state and a.state is not C
            s.complete(a.id)
        elif isinstance(a, CancelTask):
            assert s.tasks[a.id].state is a.state and not a.state.is_terminal
            s.set(a.id, state=X, queued=False, finished_at=now)
            s.release(a.id)
        elif isinstance(a, DeleteTask):
            gone = s.tasks.pop(a.id)
            assert a.was_running == (gone.state is RUN)
            # kept as a tombstone; a running attempt is handed back (lua/delete_tasks.lua)
            s.tombstones[a.id] = replace(gone, state=R if gone.state is RUN else gone.state)
            pruned.append(a.id)
        elif isinstance(a, RestoreTask):
            assert a.id not in s.tasks
            tomb = s.tombstones.pop(a.id)
            assert tomb.state is a.state
            s.tasks[a.id] = replace(tomb, order=a.order, queued=False)
            if not a.state.is_terminal:
                s.settle(a.id)
            s.release(a.id)
            assert s.tasks[a.id].state is a.new_state, a
        elif isinstance(a, Requeue):
            assert s.tasks[a.id].state is a.state and a.state in (B, R, UF)
            s.set(a.id, queued=False)
            s.settle(a.id)
            assert s.tasks[a.id].state is a.new_state, a
        else:
            assert not a.write
    for tid in pruned:
        s.release(tid)
    return Observed(s.tasks, s.agents, obs.generation + 1, tombstones=s.tombstones)


def assert_consistent(desired: Desired, obs: Observed, prune: bool) -> None:
    """Invariant 1 and the file directives, on a state a plan has just been applied to."""
    for t in obs.tasks.values():
        assert (t.state is R) == t.queued, t
        dep_states = [getattr(obs.tasks.get(d), "state", None) for d in t.deps]
        if t.state is B:
            assert any(d is not C for d in dep_states), t
        if t.state in (B, UF):
            # upstream_failed exactly when a task it waits for failed, was cancelled or is gone
            assert (t.state is UF) == any(d in (F, X, UF, None) for d in dep_states), t
    for spec in desired.tasks:
        t = obs.tasks[spec.id]
        if spec.directive is Directive.DONE:
            assert t.state is C
        elif spec.directive is Directive.CANCELLED:
            assert t.state.is_terminal
        else:
            assert t.state is not X
    if prune:
        ids = set(desired.task_ids())
        assert all(t.id in ids for t in obs.tasks.values() if t.source is Source.FILE)
        names = {n for a in desired.agents for n in a.instances()}
        assert all(a.name in names for a in obs.agents.values() if a.source is Source.FILE)


def converge(desired: Desired, obs: Observed, **flags: bool) -> Observed:
    plan = diff(desired, obs, 1000.0, **flags)
    after = simulate(obs, plan)
    again = diff(desired, after, 1000.0, **flags)
    assert again.is_empty, render_lines(again)
    assert_consistent(desired, after, flags.get("prune", True))
    return after


# -- new tasks ------------------------------------------------------------------------------------


def test_new_pipeline() -> None:
    plan = diff(town(*PIPELINE), Observed(), 0.0)
    assert [(a.name, a.spec.name) for a in plan.actions if isinstance(a, CreateAgent)] == [
        ("architect", "architect"),
        ("developer", "developer"),
        ("reviewer", "reviewer"),
        ("worker", "worker"),
        ("worker-2", "worker"),
    ]
    assert [(a.id, a.state, a.deps, a.deps_left, a.target) for a in task_actions(plan)] == [
        ("design", R, (), 0, "architect"),
        ("implement", B, ("design",), 1, "developer"),
        ("test", B, ("implement",), 1, "reviewer"),
    ]
    assert render_lines(plan)[-3:] == [
        "+ task design (ready → architect)",
        "+ task implement (blocked → developer)",
        "+ task test (blocked → reviewer)",
    ]
    converge(town(*PIPELINE), Observed())


def test_fan_in_counts_only_dependencies_not_yet_completed() -> None:
    tasks = (
        TaskSpec("a", agent="developer"),
        TaskSpec("b", agent="worker", status="done"),
        TaskSpec("c", agent="developer"),
        TaskSpec("merge", agent="reviewer", depends_on=("a", "b", "c")),
    )
    before = observed(town(*tasks[:2]), {"a": C})  # a completed, b and c new
    plan = diff(town(*tasks), before, 0.0)
    created = {a.id: a for a in task_actions(plan) if isinstance(a, CreateTask)}
    assert (created["c"].state, created["merge"].state, created["merge"].deps_left) == (R, B, 1)
    assert [a.id for a in task_actions(plan)] == ["c", "merge"]  # b: already completed
    fresh = diff(town(*tasks), Observed(), 0.0)
    assert [(a.id, a.state, a.deps_left) for a in task_actions(fresh)] == [
        ("a", R, 0),
        ("b", C, 0),
        ("c", R, 0),
        ("merge", B, 2),
    ]


def test_backlog_task_goes_to_the_backlog_queue() -> None:
    [a] = task_actions(diff(town(TaskSpec("triage", "Sort the issues")), Observed(), 0.0))
    assert isinstance(a, CreateTask)
    assert (a.kind, a.target, a.state) == (TaskKind.BACKLOG, BACKLOG, R)
    assert render_lines(Plan((a,))) == ["+ task triage (ready → *backlog)"]


EPIC = (
    TaskSpec("epic", "Auth"),
    TaskSpec("login", agent="developer", parent="epic"),
    TaskSpec("logout", agent="worker", parent="epic"),
    TaskSpec("release", agent="reviewer", depends_on=("epic",)),
)


def test_group_children_run_in_parallel_and_the_group_waits_for_them() -> None:
    plan = diff(town(*EPIC), Observed(), 0.0)
    assert [(a.id, a.kind, a.state, a.deps, a.target) for a in task_actions(plan)] == [
        ("login", TaskKind.WORK, R, (), "developer"),
        ("logout", TaskKind.WORK, R, (), "worker"),
        ("epic", TaskKind.GROUP, B, ("login", "logout"), ""),
        ("release", TaskKind.WORK, B, ("epic",), "reviewer"),
    ]
    assert "+ task epic (group, blocked)" in render_lines(plan)


def test_sequential_group_runs_children_one_after_another() -> None:
    tasks = (replace(EPIC[0], sequential=True), *EPIC[1:3])
    plan = diff(town(*tasks), Observed(), 0.0)
    assert [(a.id, a.state, a.deps) for a in task_actions(plan)] == [
        ("login", R, ()),
        ("logout", B, ("login",)),
        ("epic", B, ("login", "logout")),
    ]


def test_group_whose_children_are_all_done_is_created_completed() -> None:
    tasks = (
        EPIC[0],
        replace(EPIC[1], status="done"),
        replace(EPIC[2], status="completed"),
        EPIC[3],
    )
    plan = diff(town(*tasks), Observed(), 0.0)
    assert [(a.id, a.state) for a in task_actions(plan)] == [
        ("login", C),
        ("logout", C),
        ("epic", C),
        ("release", R),
    ]
    assert render_lines(plan)[-4:] == [
        "+ task login (completed)",
        "+ task logout (completed)",
        "+ task epic (group, completed)",
        "+ task release (ready → reviewer)",
    ]
    # The same when the children were completed by agents before the group appeared.
    before = observed(town(*EPIC[1:3]), {"login": C, "logout": C})
    plan = diff(town(*EPIC), before, 0.0)
    assert [(a.id, a.state) for a in task_actions(plan)] == [("epic", C), ("release", R)]


# -- the status directive -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "created"),
    [
        (None, R),
        ("pending", R),
        ("completed", C),
        ("done", C),
        ("DONE", C),
        ("cancelled", X),
        ("running", R),  # informational (tt sync pull wrote it)
        ("failed", R),
        ("in-progress", R),
    ],
)
def test_status_of_a_new_task(status: str | None, created: TaskState) -> None:
    spec = TaskSpec("a", agent="developer", status=status)
    [a] = task_actions(diff(town(spec), Observed(), 0.0))
    assert isinstance(a, CreateTask) and a.state is created
    converge(town(spec), Observed())


@pytest.mark.parametrize(
    ("status", "state", "expected"),
    [
        ("done", R, [("complete_task", R)]),
        ("completed", RUN, [("complete_task", RUN)]),
        ("done", F, [("complete_task", F)]),
        ("done", X, [("complete_task", X)]),
        ("done", C, []),
        ("cancelled", B, [("cancel_task", B)]),
        ("cancelled", R, [("cancel_task", R)]),
        ("cancelled", RUN, [("cancel_task", RUN)]),
        ("cancelled", RET, [("cancel_task", RET)]),
        ("cancelled", C, []),
        ("cancelled", F, []),
        ("cancelled", X, []),
        ("running", R, []),
        ("running", RUN, []),
        ("failed", RUN, []),
        ("failed", F, []),
        ("pending", F, []),
        ("pending", RUN, []),
        ("pending", C, []),
        ("pending", X, [("rerun_task", X)]),  # no longer cancelled in the file: run it
    ],
)
def test_status_of_an_existing_task(
    status: str, state: TaskState, expected: list[tuple[str, TaskState]]
) -> None:
    spec = TaskSpec("a", agent="developer", status=status)
    before = observed(town(spec), {"a": state})
    plan = diff(town(spec), before, 0.0)
    assert [(a.op, a.state) for a in plan.actions] == expected  # type: ignore[union-attr]
    converge(town(spec), before)


def test_marking_done_releases_dependents_and_cancelling_a_running_task_says_so() -> None:
    tasks = (
        TaskSpec("a", agent="developer", status="done"),
        TaskSpec("b", agent="developer", parent="a"),
    )
    before = observed(town(*tasks), {"a": RUN, "b": B})
    plan = diff(town(*tasks), before, 0.0)
    assert plan.actions == (CompleteTask("a", RUN),)
    assert simulate(before, plan).tasks["b"].state is R
    assert render_lines(plan) == [
        "~ task a: completed (marked done in file) — its running attempt's result will be ignored"
    ]
    cancel = (replace(tasks[0], status="cancelled"), tasks[1])
    plan = diff(town(*cancel), before, 0.0)
    assert render_lines(plan) == [
        "~ task a: cancelled (cancelled in file) — its running attempt will be stopped"
    ]
    # What waits for a cancelled task can never run as things stand.
    assert simulate(before, plan).tasks["b"].state is UF


@pytest.mark.parametrize(
    ("group_status", "expected", "group_after"),
    [
        # The group completes with its last child: no second completion of it.
        ("done", [("complete_task", "login"), ("complete_task", "logout")], C),
        # Cancels come first, so the children's completion cannot complete a cancelled group.
        (
            "cancelled",
            [("cancel_task", "epic"), ("complete_task", "login"), ("complete_task", "logout")],
            X,
        ),
    ],
)
def test_a_group_and_its_children_marked_in_the_same_edit(
    group_status: str, expected: list[tuple[str, str]], group_after: TaskState
) -> None:
    before = observed(town(*EPIC))
    edited = (
        replace(EPIC[0], status=group_status),
        replace(EPIC[1], status="done"),
        replace(EPIC[2], status="done"),
        EPIC[3],
    )
    plan = diff(town(*edited), before, 0.0)
    assert [(a.op, a.id) for a in plan.actions] == expected  # type: ignore[union-attr]
    after = converge(town(*edited), before)
    assert after.tasks["epic"].state is group_after
    assert after.tasks["release"].state is (R if group_after is C else UF)


# -- changes to existing tasks --------------------------------------------------------------------


def test_changed_after_done_is_reported_not_rerun() -> None:
    before = observed(town(*PIPELINE), {"design": C, "implement": C, "test": R})
    edited = (replace(PIPELINE[0], description="Design the auth API, with OAuth"), *PIPELINE[1:])
    plan = diff(town(*edited), before, 0.0)
    assert plan.actions == (ChangedAfterDone("design", ("description",)),)
    assert plan.is_empty and plan.changes == ()
    assert render_lines(plan) == [
        "! task design: changed after done (description) — not re-run; "
        "use tt retry design or --rerun-changed"
    ]
    rerun = diff(town(*edited), before, 0.0, rerun_changed=True)
    [a] = rerun.actions
    assert isinstance(a, RerunTask)
    assert (a.id, a.changed_fields, a.state, a.new_state) == ("design", ("description",), C, R)
    assert "its completed dependents are not re-run" in render_lines(rerun)[0]
    after = converge(town(*edited), before, rerun_changed=True)
    assert after.tasks["implement"].state is C and after.tasks["test"].state is R


def test_update_of_a_ready_task_moves_it_to_its_new_queue() -> None:
    before = observed(town(*PIPELINE))
    edited = (replace(PIPELINE[0], agent="worker", description="Design v2"), *PIPELINE[1:])
    plan = diff(town(*edited), before, 0.0)
    [a] = plan.actions
    assert isinstance(a, UpdateTask)
    assert (a.changed_fields, a.state, a.new_state, a.old_target, a.target) == (
        ("description", "agent", "target"),
        R,
        R,
        "architect",
        "worker",
    )
    assert render_lines(plan) == ["~ task design: description, agent (moves architect → worker)"]
    assert converge(town(*edited), before).tasks["design"].target == "worker"


def test_dependency_changes_recount_a_blocked_task() -> None:
    before = observed(town(*PIPELINE), {"design": C, "implement": R, "test": B})
    edited = (*PIPELINE[:2], replace(PIPELINE[2], parent=None, depends_on=("design",)))
    [a] = diff(town(*edited), before, 0.0).actions
    assert isinstance(a, UpdateTask)
    assert (a.changed_fields, a.deps, a.deps_left, a.new_state) == (
        ("parent", "depends_on", "deps"),
        ("design",),
        0,
        R,
    )
    assert render_lines(Plan((a,))) == ["~ task test: parent, depends_on (blocked → ready)"]


@pytest.mark.parametrize(
    ("state", "note"),
    [
        (RUN, "(running: takes effect on the next attempt)"),
        (RET, "(retrying: takes effect on the next attempt)"),
        (F, "(failed: tt retry design to run it with the new spec)"),
    ],
)
def test_spec_change_of_a_running_retrying_or_failed_task_keeps_its_state(
    state: TaskState, note: str
) -> None:
    before = observed(town(*PIPELINE), {"design": state})
    edited = (replace(PIPELINE[0], description="Design v2"), *PIPELINE[1:])
    plan = diff(town(*edited), before, 0.0)
    [a] = plan.actions
    assert isinstance(a, UpdateTask) and (a.state, a.new_state) == (state, None)
    assert render_lines(plan) == [f"~ task design: description {note}"]
    assert converge(town(*edited), before).tasks["design"].state is state


def test_a_new_default_agent_moves_tasks_whose_spec_did_not_change() -> None:
    tasks = (TaskSpec("triage"), TaskSpec("done-before", status="done"))
    before = observed(town(*tasks))
    plan = diff(town(*tasks, default_agent="worker"), before, 0.0)
    assert [(a.id, a.changed_fields, a.new_state) for a in plan.actions] == [  # type: ignore[union-attr]
        ("triage", ("kind", "target"), R),
        ("done-before", ("kind", "target"), None),
    ]
    assert render_lines(plan)[0] == "~ task triage: kind, target (moves *backlog → worker)"
    converge(town(*tasks, default_agent="worker"), before)


def test_a_file_task_adopts_a_cli_task_of_the_same_id() -> None:
    spec = TaskSpec("hotfix", "Fix it", agent="developer")
    before = with_task(observed(town(spec)), "hotfix", source=Source.CLI)
    [a] = diff(town(spec), before, 0.0).actions
    assert isinstance(a, UpdateTask) and a.changed_fields == ("source",)
    assert converge(town(spec), before).tasks["hotfix"].source is Source.FILE


def test_an_unreadable_stored_spec_falls_back_to_the_hash() -> None:
    before = with_task(observed(town(*PIPELINE)), "design", spec=None, spec_json="{not json")
    assert diff(town(*PIPELINE), before, 0.0).is_empty
    before = with_task(before, "design", spec_hash="0" * 16)
    [a] = diff(town(*PIPELINE), before, 0.0).actions
    assert isinstance(a, UpdateTask) and a.changed_fields == ("spec",)


# -- prune and ownership --------------------------------------------------------------------------


def test_prune_deletes_file_tasks_that_left_the_file() -> None:
    before = observed(town(*PIPELINE), {"design": C, "implement": RUN, "test": B})
    plan = diff(town(PIPELINE[0]), before, 0.0)
    # Each is kept as a tombstone for the town's keep_deleted (7 days) from the plan's `now`.
    week = 7 * 86400.0
    assert plan.actions == (DeleteTask("implement", True, week), DeleteTask("test", False, week))
    until = time.strftime("%Y-%m-%dT%H:%M", time.localtime(week))  # local time, to the minute
    assert render_lines(plan) == [
        f"- task implement (running: its attempt will be stopped; kept as tombstone until {until})",
        f"- task test (kept as tombstone until {until})",
    ]
    assert not plan.deletes_everything
    converge(town(PIPELINE[0]), before)


def test_without_prune_they_are_reported_as_orphans() -> None:
    before = observed(town(*PIPELINE))
    plan = diff(town(PIPELINE[0]), before, 0.0, prune=False)
    assert plan.actions == (Orphan("implement"), Orphan("test"))
    assert plan.is_empty
    assert render_lines(plan)[0] == "? task implement: not in tasks.toml (use --prune to delete)"


@pytest.mark.parametrize("prune", [True, False])
def test_cli_tasks_are_never_pruned_nor_reported(prune: bool) -> None:
    cli = ObservedTask("adhoc", R, source=Source.CLI, target="developer", queued=True)
    before = observed(town(*PIPELINE), extra=[cli])
    assert diff(town(*PIPELINE), before, 0.0, prune=prune).actions == ()
    assert all(
        getattr(a, "id", None) != "adhoc" for a in diff(town(), before, 0.0, prune=prune).actions
    )


@pytest.mark.parametrize(
    ("desired", "obs", "prune", "everything"),
    [
        (town(agents=AGENTS), observed(town(*PIPELINE)), True, True),  # truncated tasks.toml
        (town(agents=AGENTS), observed(town(*PIPELINE)), False, False),
        (town(PIPELINE[0]), observed(town(*PIPELINE)), True, False),
        (town(*PIPELINE, agents=()), observed(town(*PIPELINE)), True, True),  # empty roster
        (
            town(agents=AGENTS),
            Observed(tasks={"x": ObservedTask("x", R, source=Source.CLI, queued=True)}),
            True,
            False,
        ),
        (town(agents=AGENTS), Observed(), True, False),
    ],
)
def test_a_plan_deleting_everything_is_flagged(
    desired: Desired, obs: Observed, prune: bool, everything: bool
) -> None:
    assert diff(desired, obs, 0.0, prune=prune).deletes_everything is everything


# -- dispatch repair ------------------------------------------------------------------------------


def test_ready_task_in_no_queue_is_requeued() -> None:
    before = with_task(observed(town(*PIPELINE)), "design", queued=False)
    plan = diff(town(*PIPELINE), before, 0.0)
    assert plan.actions == (Requeue("design", "architect", R, R, "ready but in no queue"),)
    assert render_lines(plan) == ["~ task design: requeued → architect (ready but in no queue)"]
    converge(town(*PIPELINE), before)


def test_blocked_task_whose_dependencies_completed_is_released() -> None:
    # A crash between completing `design` and releasing `implement`.
    before = observed(town(*PIPELINE), {"design": C, "implement": B, "test": B})
    plan = diff(town(*PIPELINE), before, 0.0)
    assert plan.actions == (
        Requeue("implement", "developer", B, R, "every dependency is completed"),
    )
    converge(town(*PIPELINE), before)


def test_ready_task_whose_dependency_is_not_completed_is_blocked_again() -> None:
    # `tt retry design` re-ran the dependency of a task that was ready but lost from its queue.
    before = observed(town(*PIPELINE), {"design": R, "implement": R, "test": B})
    before = with_task(before, "implement", queued=False)
    plan = diff(town(*PIPELINE), before, 0.0)
    assert plan.actions == (Requeue("implement", "developer", R, B, "ready but in no queue"),)
    assert render_lines(plan) == [
        "~ task implement: blocked again, a dependency is not completed (ready but in no queue)"
    ]


def test_stuck_group_completes_and_releases_its_dependents_once() -> None:
    before = observed(town(*EPIC), {"login": C, "logout": C, "epic": B, "release": B})
    plan = diff(town(*EPIC), before, 0.0)
    assert plan.actions == (Requeue("epic", "", B, C, "every dependency is completed"),)
    assert render_lines(plan) == ["~ task epic: completed (group: every dependency is completed)"]
    assert simulate(before, plan).tasks["release"].state is R


def test_no_repair_for_what_the_plan_releases_anyway() -> None:
    tasks = (replace(PIPELINE[0], status="done"), *PIPELINE[1:])
    before = observed(town(*tasks), {"design": R, "implement": B, "test": B})
    plan = diff(town(*tasks), before, 0.0)
    assert plan.actions == (CompleteTask("design", R),)


def test_blocked_tasks_behind_a_failed_one_are_upstream_failed_after_one_repair() -> None:
    # A town written before upstream_failed: a failed task's dependents were left blocked.
    before = observed(town(*PIPELINE), {"design": F, "implement": B, "test": B})
    plan = diff(town(*PIPELINE), before, 0.0)
    assert plan.actions == (
        Requeue("implement", "developer", B, UF, "a task it waits for failed or was cancelled"),
    )
    assert render_lines(plan) == [
        "~ task implement: upstream_failed (a task it waits for failed or was cancelled)"
    ]
    after = converge(town(*PIPELINE), before)
    assert [after.tasks[t].state for t in ("implement", "test")] == [UF, UF]  # the chain too


def test_an_upstream_failed_task_whose_upstream_was_retried_waits_again() -> None:
    before = observed(town(*PIPELINE), {"design": R, "implement": UF, "test": UF})
    plan = diff(town(*PIPELINE), before, 0.0)
    assert plan.actions == (
        Requeue("implement", "developer", UF, B, "no task it waits for failed"),
    )
    assert [simulate(before, plan).tasks[t].state for t in ("implement", "test")] == [B, B]


def test_new_tasks_under_a_failed_one_are_created_upstream_failed() -> None:
    before = observed(town(PIPELINE[0]), {"design": F})
    plan = diff(town(*PIPELINE), before, 0.0)
    assert [(a.id, a.state) for a in plan.actions] == [("implement", UF), ("test", UF)]
    assert render_lines(plan) == [
        "+ task implement (upstream_failed)",
        "+ task test (upstream_failed)",
    ]
    converge(town(*PIPELINE), before)


def test_an_upstream_failed_task_the_file_cancels_is_cancelled() -> None:
    before = observed(town(*PIPELINE), {"design": F})
    assert before.tasks["implement"].state is UF
    tasks = (PIPELINE[0], replace(PIPELINE[1], status="cancelled"), PIPELINE[2])
    plan = diff(town(*tasks), before, 0.0)
    assert plan.actions == (CancelTask("implement", UF),)
    after = converge(town(*tasks), before)
    assert [after.tasks[t].state for t in ("implement", "test")] == [X, UF]


def test_cli_tasks_are_repaired_too() -> None:
    cli = ObservedTask("adhoc", B, source=Source.CLI, target="developer", deps=("design",))
    before = observed(town(*PIPELINE), {"design": C, "implement": R}, extra=[cli])
    plan = diff(town(*PIPELINE), before, 0.0)
    assert plan.actions == (Requeue("adhoc", "developer", B, R, "every dependency is completed"),)


# -- agents ---------------------------------------------------------------------------------------


def roster(*agents: AgentSpec) -> Desired:
    return town(agents=agents)


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (2, 3, [("create_agent", "worker-3")]),
        (3, 2, [("delete_agent", "worker-3")]),
        # A scale changes only what must change (#18): 1→2 keeps `worker` and adds worker-2,
        # 3→1 stops the highest-numbered two.
        (1, 2, [("create_agent", "worker-2")]),
        (2, 1, [("delete_agent", "worker-2")]),
        (3, 1, [("delete_agent", "worker-2"), ("delete_agent", "worker-3")]),
        (3, 3, []),
    ],
)
@pytest.mark.parametrize("prune", [True, False])
def test_replicas_scale_up_and_down(
    before: int, after: int, expected: list[tuple[str, str]], prune: bool
) -> None:
    old = roster(AgentSpec("worker", "claude", replicas=before))
    new = roster(AgentSpec("worker", "claude", replicas=after))
    plan = diff(new, observed(old), 0.0, prune=prune)
    assert [(a.op, a.name) for a in plan.actions] == expected  # type: ignore[union-attr]
    if after < before and after > 1:
        assert render_lines(plan) == ["- agent worker-3 (scaled to 2 replica(s))"]
    converge(new, observed(old), prune=prune)


@pytest.mark.parametrize(("before", "after"), [(1, 3), (3, 1), (2, 5), (4, 2)])
def test_a_scale_is_never_a_change_to_a_task(before: int, after: int) -> None:
    tasks = (TaskSpec("a", "x", agent="worker"), TaskSpec("b", "y", agent="worker", parent="a"))
    old = town(*tasks, agents=(AgentSpec("worker", "claude", replicas=before),))
    new = town(*tasks, agents=(AgentSpec("worker", "claude", replicas=after),))
    for states in ({}, {"a": TaskState.COMPLETED}):
        plan = diff(new, observed(old, states), 0.0)
        assert {a.op for a in plan.actions} <= {"create_agent", "delete_agent"}, plan
        converge(new, observed(old, states))


def test_agent_changes_name_the_fields_and_whether_a_restart_is_needed() -> None:
    old = roster(AgentSpec("dev", "claude"), AgentSpec("ops", "claude"))
    new = roster(
        AgentSpec("dev", "codex", args=("--fast",)),
        AgentSpec("ops", "claude", suspended=True),
    )
    plan = diff(new, observed(old), 0.0)
    assert plan.actions == (
        UpdateAgent("dev", new.agents[0], ("model", "args"), True),
        UpdateAgent("ops", new.agents[1], ("suspended",), False),
    )
    assert render_lines(plan) == ["~ agent dev: model, args (restart)", "~ agent ops: suspended"]
    converge(new, observed(old))


def test_agents_that_left_the_file_are_pruned_orphaned_or_left_alone() -> None:
    old = observed(roster(AgentSpec("dev", "claude"), AgentSpec("gone", "claude")))
    cli = ObservedAgent("scratch", source=Source.CLI, base="scratch")
    old = replace(old, agents={**old.agents, "scratch": cli})
    new = roster(AgentSpec("dev", "claude"))
    assert diff(new, old, 0.0).actions == (DeleteAgent("gone", "removed from town.toml"),)
    assert diff(new, old, 0.0, prune=False).actions == (OrphanAgent("gone"),)
    assert render_lines(diff(new, old, 0.0, prune=False)) == [
        "? agent gone: not in town.toml (use --prune to delete)"
    ]


def test_restart_fields_are_exactly_what_the_agent_spec_hash_covers() -> None:
    base = AgentSpec("dev", "claude")
    changed: dict[str, Any] = {
        "model": "codex",
        "role": "r",
        "args": ("--x",),
        "env": (("K", "V"),),
        "env_from": ("TOKEN",),
        "workdir": "worktree",
        "timeout": 60.0,
        "node": "host-2",
        "inherit_env": True,
        "resume": False,
        "stall_after": 5.0,
        "restart": RestartPolicy.NEVER,
        "suspended": True,
        "replicas": 2,
    }
    drifting = {
        f for f, v in changed.items() if replace(base, **{f: v}).spec_hash() != base.spec_hash()
    }
    assert drifting == set(AGENT_DRIFT_FIELDS)


def test_an_agent_without_a_decodable_spec_is_compared_by_hash() -> None:
    desired = roster(AgentSpec("dev", "claude"))
    obs = observed(desired)
    obs = replace(obs, agents={"dev": replace(obs.agents["dev"], spec=None)})
    assert diff(desired, obs, 0.0).is_empty
    changed = roster(AgentSpec("dev", "codex"))
    assert diff(changed, obs, 0.0).actions == (
        UpdateAgent("dev", changed.agents[0], ("spec",), True),
    )


# -- plan shape -----------------------------------------------------------------------------------


def test_actions_come_in_a_fixed_order() -> None:
    tasks = (
        TaskSpec("late", agent="developer", depends_on=("early",)),  # file order against topology
        TaskSpec("early", agent="developer"),
        TaskSpec("edited", "v2", agent="developer"),
        TaskSpec("finish", agent="developer", status="done"),
        TaskSpec("stop", agent="developer", status="cancelled"),
    )
    old = (
        TaskSpec("edited", "v1", agent="developer"),
        TaskSpec("finish", agent="developer"),
        TaskSpec("stop", agent="developer"),
        TaskSpec("obsolete", agent="developer"),
        TaskSpec("stuck", agent="developer"),
    )
    before = with_task(observed(town(*old, agents=AGENTS[:3])), "stuck", queued=False)
    plan = diff(town(*tasks, TaskSpec("stuck", agent="developer")), before, 0.0)
    assert [(a.op, getattr(a, "id", getattr(a, "name", ""))) for a in plan.actions] == [
        ("create_agent", "worker"),
        ("create_agent", "worker-2"),
        ("create_task", "early"),
        ("create_task", "late"),
        ("update_task", "edited"),
        ("cancel_task", "stop"),
        ("complete_task", "finish"),
        ("delete_task", "obsolete"),
        ("requeue", "stuck"),
    ]
    assert plan.counts() == {
        "create_agent": 2,
        "create_task": 2,
        "update_task": 1,
        "cancel_task": 1,
        "complete_task": 1,
        "delete_task": 1,
        "requeue": 1,
    }
    assert plan.summary() == "4 to create, 4 to change, 1 to delete"
    # Counted once per plan: a caller changing the dict it got changes no later answer, and the
    # cached count leaves the plan's equality and repr as they were.
    plan.counts()["create_task"] = 99
    assert plan.counts()["create_task"] == 2
    assert plan == Plan(plan.actions) and "_counts" not in repr(plan)


def test_plan_json_is_versioned_and_serialisable() -> None:
    before = observed(town(*PIPELINE), {"design": C})
    edited = (replace(PIPELINE[0], description="v2"), PIPELINE[1], TaskSpec("new", agent="worker"))
    data = diff(town(*edited), before, 0.0, prune=False).as_json()
    assert json.loads(json.dumps(data)) == data
    assert (data["version"], data["empty"], data["deletes_everything"]) == (1, False, False)
    assert data["counts"] == {"create_task": 1, "changed_after_done": 1, "orphan_task": 1}
    ops = {a["op"]: a for a in data["actions"]}
    assert ops["create_task"] == {
        "op": "create_task",
        "write": True,
        "id": "new",
        "spec": {**TaskSpec("new", agent="worker").as_dict(), "status": None},
        "source": "file",
        "kind": "work",
        "state": "ready",
        "deps": [],
        "deps_left": 0,
        "target": "worker",
        "order": 2.0,
        "after": "",
    }
    assert ops["changed_after_done"] == {
        "op": "changed_after_done",
        "write": False,
        "id": "design",
        "changed_fields": ["description"],
    }
    assert ops["orphan_task"] == {"op": "orphan_task", "write": False, "id": "test"}


def test_plans_are_deterministic() -> None:
    rng = random.Random(3)
    desired = random_town(rng, 40)
    obs = advance(converge(desired, Observed()), rng)
    shuffled = list(obs.tasks.items())
    rng.shuffle(shuffled)
    edited = mutate(desired, rng)
    first = diff(edited, obs, 0.0)
    assert diff(edited, replace(obs, tasks=dict(shuffled)), 0.0) == first
    assert diff(edited, obs, 0.0).as_json() == first.as_json()


def test_ten_thousand_unchanged_tasks_plan_nothing() -> None:
    n = 10_000
    tasks = tuple(
        TaskSpec(f"t{i}", f"step {i}", agent="worker", depends_on=(f"t{i - 1}",) if i else ())
        for i in range(n)
    )
    desired = town(*tasks)
    half = {f"t{i}": C for i in range(n // 2)} | {f"t{n // 2}": RUN}
    plan = diff(desired, observed(desired, half), 0.0)
    assert plan.actions == ()


def test_a_stored_spec_is_decoded_only_to_name_what_changed() -> None:
    spec = TaskSpec("a", "old words", agent="developer", tags=("x",))
    desired = town(spec)
    obs = observed(desired)
    assert diff(desired, obs, 0.0).actions == ()
    edited = town(replace(spec, description="new words", priority=2))
    (action,) = diff(edited, obs, 0.0).actions
    assert isinstance(action, UpdateTask)
    assert action.changed_fields == ("description", "priority")
    # Decoded already (as a test or another reader may build it): the same answer.
    seen = obs.tasks["a"]
    decoded = replace(obs, tasks={"a": replace(seen, spec=spec, spec_json="")})
    assert diff(edited, decoded, 0.0).actions == (action,)


def test_touches_set_or_dropped_is_named_as_the_changed_field() -> None:
    """`touches` is in the stored JSON only when set; its change is still named, whether the
    stored spec is decoded from that JSON or already at hand."""
    spec = TaskSpec("a", "words", agent="developer")
    obs = observed(town(spec))
    scoped = replace(spec, touches=("src/**",))
    (action,) = diff(town(scoped), obs, 0.0).actions
    assert isinstance(action, UpdateTask) and action.changed_fields == ("touches",)
    seen = obs.tasks["a"]
    decoded = replace(obs, tasks={"a": replace(seen, spec=spec, spec_json="")})
    assert diff(town(scoped), decoded, 0.0).actions == (action,)
    back = observed(town(scoped))
    (action,) = diff(town(spec), back, 0.0).actions
    assert isinstance(action, UpdateTask) and action.changed_fields == ("touches",)
    assert task_spec_from_json(scoped.canonical_json()) == scoped


def test_the_planner_imports_no_outside_world() -> None:
    code = (
        "import sys, reconciler.plan.diff; "
        "print(' '.join(m for m in ('redis', 'subprocess', 'watchfiles', 'click') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_spec_codecs_round_trip() -> None:
    spec = TaskSpec("a", "d", agent="x", depends_on=("b",), tags=("T",), timeout=1.5, retries=0)
    assert task_spec_from_json(spec.canonical_json()) == replace(spec, status=None)
    assert task_spec_from_json('{"id": "a", "from_the_future": 1}') == TaskSpec("a")
    assert task_spec_from_json("not json") is None and task_spec_from_json(None) is None
    agent = AgentSpec("w", "claude", replicas=2, env=(("K", "V"),), env_from=("TOKEN",))
    assert agent_spec_from_json(agent_spec_json(agent)) == agent
    assert agent_spec_from_json('{"name": "w"}') is None  # model is required


# -- property: applying a plan leaves nothing to plan ---------------------------------------------

WORDS = ("design", "build", "check", "ship", "docs", "fix")


def random_town(rng: random.Random, n: int, start: int = 0) -> Desired:
    tasks = [random_task(rng, f"t{i}", [f"t{j}" for j in range(start, i)]) for i in range(start, n)]
    return acyclic(
        Desired(
            town=TownSettings("t"),
            agents=random_agents(rng),
            tasks=tuple(tasks),
            default_agent=rng.choice([None, None, None, "developer"]),
        )
    )


def random_agents(rng: random.Random) -> tuple[AgentSpec, ...]:
    return (
        AgentSpec("developer", rng.choice(["claude", "codex"])),
        AgentSpec("reviewer", "claude", role="review", suspended=rng.random() < 0.2),
        AgentSpec("worker", "claude", replicas=rng.randint(1, 3)),
    )


def random_task(rng: random.Random, tid: str, earlier: list[str]) -> TaskSpec:
    return TaskSpec(
        tid,
        rng.choice(WORDS),
        agent=rng.choice([None, None, "developer", "worker", "reviewer"]),
        role=rng.choice([None, None, None, "review"]),
        parent=rng.choice(earlier) if earlier and rng.random() < 0.5 else None,
        depends_on=tuple(rng.sample(earlier, min(len(earlier), rng.randint(0, 2)))),
        status=rng.choice([None] * 8 + ["done", "completed", "cancelled", "running", "failed"]),
        sequential=rng.random() < 0.3,
    )


def acyclic(desired: Desired) -> Desired:
    """Drop `depends_on` from tasks caught in cycles (a child depending on its own group...)."""
    while cycles := find_cycles(build_graph(desired)):
        members = {tid for c in cycles for tid in c}
        desired = replace(
            desired,
            tasks=tuple(replace(t, depends_on=()) if t.id in members else t for t in desired.tasks),
        )
        if not find_cycles(build_graph(desired)):
            break
        desired = replace(
            desired,
            tasks=tuple(replace(t, parent=None) if t.id in members else t for t in desired.tasks),
        )
    return desired


def mutate(desired: Desired, rng: random.Random) -> Desired:
    """A user's edit: reword, retarget, re-status, remove and add tasks, rescale agents."""
    tasks = list(desired.tasks)
    for i, t in enumerate(tasks):
        roll = rng.random()
        if roll < 0.1:
            tasks[i] = replace(t, description=t.description + " v2")
        elif roll < 0.15:
            tasks[i] = replace(t, agent=rng.choice([None, "developer", "worker"]))
        elif roll < 0.25:
            tasks[i] = replace(t, status=rng.choice([None, "done", "cancelled", "failed"]))
    removed = {t.id for t in tasks if rng.random() < 0.1}
    tasks = [
        replace(
            t,
            parent=None if t.parent in removed else t.parent,
            depends_on=tuple(d for d in t.depends_on if d not in removed),
        )
        for t in tasks
        if t.id not in removed
    ]
    start = 1 + max((int(t.id[1:]) for t in desired.tasks), default=0)
    ids = [t.id for t in tasks]
    for i in range(start, start + rng.randint(0, 5)):
        tasks.append(random_task(rng, f"t{i}", ids))
        ids.append(f"t{i}")
    return acyclic(
        replace(
            desired,
            tasks=tuple(tasks),
            agents=random_agents(rng) if rng.random() < 0.3 else desired.agents,
            default_agent=rng.choice([desired.default_agent, None, "worker"]),
        )
    )


def advance(obs: Observed, rng: random.Random) -> Observed:
    """Agents work (claim, finish, fail, retry) and crashes leave the store half-written."""
    s = Store(obs, 2000.0)
    for tid in sorted(s.tasks):
        t, roll = s.tasks[tid], rng.random()
        if t.state is R and roll < 0.5:
            s.set(tid, state=RUN, queued=False, attempt=t.attempt + 1)
        elif t.state is RUN and roll < 0.5:
            s.complete(tid)
        elif t.state is RUN and roll < 0.55:
            s.fail(tid) if rng.random() < 0.5 else s.set(tid, state=RET, error="boom")
        elif t.state is RUN and roll < 0.6:
            s.set(tid, state=F, error="boom")  # failed in a town from before upstream_failed
        elif t.state is RET and roll < 0.5:
            s.settle(tid)
        elif t.state is R and roll < 0.6:
            s.set(tid, queued=False)  # crash: ready, never pushed
        elif t.state is RUN and roll < 0.7:
            s.set(tid, state=C)  # crash: completed, dependents never released
    if rng.random() < 0.3 and s.tasks:
        dep = rng.choice(sorted(s.tasks))
        s.tasks["cli-x"] = ObservedTask(
            "cli-x", B, source=Source.CLI, target="developer", deps=(dep,), deps_left=1
        )
        s.settle("cli-x")
    return Observed(s.tasks, s.agents, obs.generation, tombstones=s.tombstones)


@pytest.mark.parametrize("seed", range(40))
def test_applying_a_plan_leaves_nothing_to_plan(seed: int) -> None:
    rng = random.Random(seed)
    desired = random_town(rng, rng.randint(5, 40))
    obs = Observed()
    for _ in range(8):
        prune = rng.random() < 0.8
        rerun = rng.random() < 0.3
        obs = converge(desired, obs, prune=prune, rerun_changed=rerun)
        assert diff(desired, obs, 0.0, prune=prune, rerun_changed=rerun) == diff(
            desired, obs, 0.0, prune=prune, rerun_changed=rerun
        )
        obs = advance(obs, rng)
        if rng.random() < 0.6:
            desired = mutate(desired, rng)


# -- property: a plan of the touched tasks alone is the plan of the whole town ---------------------


def edit_tasks(desired: Desired, rng: random.Random) -> Desired:
    """`mutate` without touching the roster or the default agent (those are planned in full)."""
    edited = mutate(desired, rng)
    return acyclic(replace(edited, agents=desired.agents, default_agent=desired.default_agent))


@pytest.mark.parametrize("seed", range(60))
def test_a_plan_of_the_touched_tasks_is_the_plan_of_the_town(seed: int) -> None:
    """What an incremental apply does (`control.incremental`): when the town is clean (the
    files' plan is empty), diffing an edit on the touched tasks and what they wait for gives
    the task actions of a full diff."""
    rng = random.Random(seed)
    desired = random_town(rng, rng.randint(5, 40))
    obs = converge(desired, Observed())
    compared = 0
    for _ in range(10):
        obs = advance(obs, rng)
        if diff(desired, obs, 0.0).actions:
            obs = converge(desired, obs)  # not clean: an apply plans in full (and cleans)
        edited = edit_tasks(desired, rng)
        if diff(desired, obs, 0.0).actions:  # notes left (changed after done): never clean
            obs, desired = converge(edited, obs), edited
            continue
        before = {t.id: t for t in desired.tasks}
        after = {t.id: t for t in edited.tasks}
        changed = [tid for tid, t in after.items() if before.get(tid) != t]
        removed = [tid for tid in before if tid not in after]
        parents = [before[tid].parent for tid in (*changed, *removed) if tid in before]
        focus = touched_by(edited, changed, parents)
        # Every task waiting on the touched and removed ones (`children:` in Redis), their
        # nodes, and what all of them wait for (`control.incremental.observe_edit`).
        kids: dict[str, set[str]] = {}
        for t in obs.tasks.values():
            for d in t.deps:
                kids.setdefault(d, set()).add(t.id)
        waiting: set[str] = set()
        step = set(focus) | set(removed)
        while step:
            step = {k for s in step for k in kids.get(s, ())} - waiting
            waiting |= step
        graph = graph_of(edited, focus | (waiting & set(after)))
        wanted = {*graph.nodes, *removed, *waiting}
        wanted |= {d for n in graph.nodes.values() for d in n.deps}
        stored = [obs.tasks[t] for t in wanted - set(graph.nodes) if t in obs.tasks]
        wanted |= {d for t in stored for d in t.deps}
        part = replace(obs, tasks={i: t for i, t in obs.tasks.items() if i in wanted})
        for prune in (True, False):
            full = diff(edited, obs, 0.0, prune=prune)
            some = diff(edited, part, 0.0, prune=prune, graph=graph)
            # The same actions; tasks that wait for each other only through untouched ones
            # may come in another order (each is settled on the state of what it waits for).
            assert sorted(map(repr, some.actions)) == sorted(map(repr, full.actions))
            assert some.deletes_everything == full.deletes_everything
        compared += 1
        obs = converge(edited, obs)
        desired = edited
    assert compared


def test_inherit_env_off_leaves_the_recorded_spec_of_an_agent_as_it_was() -> None:
    """Agents recorded before `inherit_env` existed must not all restart: off, it is in neither
    the hash nor the stored spec; on, it round-trips."""
    from reconciler.plan.state import agent_spec_from_json, agent_spec_json

    plain = AgentSpec("dev", "claude", env_from=("TOKEN",))
    assert "inherit_env" not in agent_spec_json(plain)
    inherits = replace(plain, inherit_env=True)
    assert agent_spec_from_json(agent_spec_json(inherits)) == inherits
    assert agent_spec_from_json(agent_spec_json(plain)) == plain


def test_resume_and_stall_after_are_recorded_only_when_set() -> None:
    """Off by default (resume on, no stall_after of its own), an agent's recorded spec is as
    before; set, they round-trip, so a changed one restarts the agent, an unchanged one not."""
    from reconciler.plan.state import agent_spec_from_json, agent_spec_json

    plain = AgentSpec("dev", "claude")
    assert "resume" not in agent_spec_json(plain) and "stall_after" not in agent_spec_json(plain)
    tuned = replace(plain, resume=False, stall_after=120.0)
    assert agent_spec_from_json(agent_spec_json(tuned)) == tuned
    desired = roster(tuned)
    assert diff(desired, observed(desired), 0.0).actions == ()
