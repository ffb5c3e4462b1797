"""The plan model with tombstones, on plain values: tasks removed from the files and put back
(the same spec, or a changed one) are restored as they were, the plan states exactly what
executing it yields (the in-memory store of test_plan mirrors lua/), nothing is left to plan,
a finished task is never re-run by a restore, and an incremental plan equals the full one."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from reconciler.plan.diff import RerunTask, RestoreTask, diff
from reconciler.plan.graph import graph_of, touched_by
from reconciler.plan.state import Observed, TaskState
from reconciler.spec.desired import Directive
from tests.plan.test_plan import C, F, advance, converge, random_town


@pytest.mark.parametrize("seed", range(40))
def test_tasks_removed_and_put_back_are_restored_as_they_were(seed: int) -> None:
    rng = random.Random(seed)
    desired = random_town(rng, rng.randint(5, 30))
    obs = converge(desired, Observed())
    for _ in range(6):
        obs = advance(obs, rng)
        obs = converge(desired, obs)
        # A torn save, a deleted block, a bad merge: some tasks leave the file...
        gone = {t.id for t in desired.tasks if rng.random() < 0.4}
        kept = tuple(
            replace(
                t,
                parent=None if t.parent in gone else t.parent,
                depends_on=tuple(d for d in t.depends_on if d not in gone),
            )
            for t in desired.tasks
            if t.id not in gone
        )
        before = {tid: obs.tasks[tid].state for tid in gone}
        obs = converge(replace(desired, tasks=kept), obs)
        assert gone <= set(obs.tombstones)
        if rng.random() < 0.5:
            obs = advance(obs, rng)  # the others work on meanwhile
            obs = converge(replace(desired, tasks=kept), obs)
        # ...and come back (a revert), some of them reworded.
        reworded = {tid for tid in gone if rng.random() < 0.3}
        back = replace(
            desired,
            tasks=tuple(
                replace(t, description=t.description + " v2") if t.id in reworded else t
                for t in desired.tasks
            ),
        )
        rerun = rng.random() < 0.3
        plan = diff(back, obs, 0.0, rerun_changed=rerun)
        restores = {a.id: a for a in plan.actions if isinstance(a, RestoreTask)}
        assert set(restores) == gone
        reruns = {a.id for a in plan.actions if isinstance(a, RerunTask)}
        specs = {t.id: t for t in back.tasks}
        for tid, was in before.items():
            tomb = obs.tombstones[tid]  # as pruned (the pruning plan may have moved it first)
            assert restores[tid].state is tomb.state is not TaskState.RUNNING
            assert tomb.state is C if was is C else True
            same = obs.tombstones[tid].spec_hash == specs[tid].spec_hash()
            if was is C and same:
                assert tid not in reruns  # completed work is never run again by a restore
        obs = converge(back, obs, rerun_changed=rerun)
        for tid, was in before.items():
            pending = specs[tid].directive is Directive.PENDING
            if was in (C, F) and tid not in reruns and pending:
                assert obs.tasks[tid].state is was  # as it was pruned
        assert not obs.tombstones.keys() & {t.id for t in back.tasks}
        desired = back


@pytest.mark.parametrize("seed", range(30))
def test_a_restore_planned_on_the_touched_tasks_is_the_full_plan(seed: int) -> None:
    """An incremental apply reads the tombstones of the touched ids the store has no task of:
    its plan holds the actions of a full plan."""
    rng = random.Random(seed)
    desired = random_town(rng, rng.randint(5, 30))
    obs = converge(desired, Observed())
    obs = converge(desired, advance(obs, rng))
    gone = {t.id for t in desired.tasks if rng.random() < 0.3 and not t.depends_on}
    gone -= {t.parent for t in desired.tasks if t.parent}
    gone -= {d for t in desired.tasks for d in t.depends_on}
    kept = replace(desired, tasks=tuple(t for t in desired.tasks if t.id not in gone))
    obs = converge(kept, obs)
    if diff(kept, obs, 0.0).actions:
        return  # notes left: never clean, never incremental
    focus = touched_by(desired, sorted(gone), [])
    kids: dict[str, set[str]] = {}
    for t in obs.tasks.values():
        for d in t.deps:
            kids.setdefault(d, set()).add(t.id)
    waiting: set[str] = set()
    step = set(focus)
    while step:
        step = {k for s in step for k in kids.get(s, ())} - waiting
        waiting |= step
    graph = graph_of(desired, focus | (waiting & {t.id for t in desired.tasks}))
    wanted = {*graph.nodes, *waiting} | {d for n in graph.nodes.values() for d in n.deps}
    part = replace(obs, tasks={i: t for i, t in obs.tasks.items() if i in wanted})
    full = diff(desired, obs, 0.0)
    some = diff(desired, part, 0.0, graph=graph)
    assert sorted(map(repr, some.actions)) == sorted(map(repr, full.actions))
    assert {a.id for a in full.actions if isinstance(a, RestoreTask)} == gone
