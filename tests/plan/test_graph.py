"""The task graph: targets, parents, groups (sequential too), backlog, depends_on, order, cycles."""

from __future__ import annotations

import dataclasses
import heapq
import random

import pytest

from reconciler.plan.graph import BACKLOG, Graph, TaskKind, build_graph, graph_of
from reconciler.spec.cycles import find_cycles
from reconciler.spec.desired import AgentSpec, Desired, TaskSpec, TownSettings
from reconciler.spec.loader import waits_for

AGENTS = (
    AgentSpec("architect", "claude", role="architect"),
    AgentSpec("developer", "claude"),
    AgentSpec("worker", "claude", replicas=3),
    AgentSpec("tester", "claude", role="qa"),
)


def graph(
    *tasks: TaskSpec, default_agent: str | None = None, default_role: str | None = None
) -> Graph:
    return build_graph(
        Desired(
            town=TownSettings("t"),
            agents=AGENTS,
            tasks=tasks,
            default_agent=default_agent,
            default_role=default_role,
        )
    )


@pytest.mark.parametrize(
    ("task", "defaults", "target", "kind"),
    [
        (TaskSpec("a", agent="developer"), {}, "developer", TaskKind.WORK),
        (TaskSpec("a", agent="worker"), {}, "worker", TaskKind.WORK),
        (TaskSpec("a", agent="worker-2"), {}, "worker-2", TaskKind.WORK),
        (TaskSpec("a", role="qa"), {}, "%qa", TaskKind.WORK),
        (TaskSpec("a", agent="developer", role="qa"), {}, "developer", TaskKind.WORK),
        (TaskSpec("a"), {"default_agent": "developer"}, "developer", TaskKind.WORK),
        (TaskSpec("a"), {"default_agent": "worker"}, "worker", TaskKind.WORK),
        (TaskSpec("a"), {"default_role": "qa"}, "%qa", TaskKind.WORK),
        (TaskSpec("a", role="architect"), {"default_agent": "worker"}, "%architect", TaskKind.WORK),
        (TaskSpec("a"), {}, BACKLOG, TaskKind.BACKLOG),
    ],
)
def test_target_of_a_task(
    task: TaskSpec, defaults: dict[str, str], target: str, kind: TaskKind
) -> None:
    node = graph(task, **defaults).nodes["a"]
    assert (node.target, node.kind, node.deps) == (target, kind, ())


def test_pipeline_parent_that_works_runs_first() -> None:
    g = graph(
        TaskSpec("design", agent="architect"),
        TaskSpec("implement", agent="developer", parent="design"),
        TaskSpec("test", agent="tester", parent="implement"),
    )
    assert {i: n.deps for i, n in g.nodes.items()} == {
        "design": (),
        "implement": ("design",),
        "test": ("implement",),
    }
    assert g.dependents == {"design": ("implement",), "implement": ("test",)}
    assert g.order == ("design", "implement", "test")


def test_group_waits_for_its_children_which_run_in_parallel() -> None:
    g = graph(
        TaskSpec("epic"),
        TaskSpec("login", agent="developer", parent="epic"),
        TaskSpec("logout", agent="worker", parent="epic"),
        TaskSpec("release", agent="developer", depends_on=("epic",)),
    )
    epic = g.nodes["epic"]
    assert (epic.kind, epic.target, epic.deps, epic.children) == (
        TaskKind.GROUP,
        "",
        ("login", "logout"),
        ("login", "logout"),
    )
    assert g.nodes["login"].deps == () and g.nodes["logout"].deps == ()
    assert g.nodes["release"].deps == ("epic",)
    assert g.order.index("epic") > max(g.order.index("login"), g.order.index("logout"))
    assert g.dependents["login"] == ("epic",) and g.dependents["epic"] == ("release",)


def test_sequential_group_chains_its_children_in_file_order() -> None:
    g = graph(
        TaskSpec("epic", sequential=True),
        TaskSpec("one", agent="developer", parent="epic"),
        TaskSpec("two", agent="developer", parent="epic"),
        TaskSpec("three", agent="developer", parent="epic", depends_on=("one",)),
    )
    assert g.nodes["one"].deps == ()
    assert g.nodes["two"].deps == ("one",)
    assert g.nodes["three"].deps == ("one", "two")  # depends_on first, then the sequence; deduped
    assert g.nodes["epic"].deps == ("one", "two", "three")
    assert g.order == ("one", "two", "three", "epic")


def test_sequential_on_a_working_task_changes_nothing() -> None:
    g = graph(
        TaskSpec("lead", agent="architect", sequential=True),
        TaskSpec("a", agent="developer", parent="lead"),
        TaskSpec("b", agent="developer", parent="lead"),
    )
    assert g.nodes["a"].deps == ("lead",) and g.nodes["b"].deps == ("lead",)
    assert g.nodes["lead"].children == ()


def test_nested_groups_and_a_default_agent_that_turns_groups_into_work() -> None:
    tasks = (
        TaskSpec("program"),
        TaskSpec("epic", parent="program"),
        TaskSpec("story", agent="developer", parent="epic"),
    )
    g = graph(*tasks)
    assert g.nodes["program"].deps == ("epic",) and g.nodes["epic"].deps == ("story",)
    assert g.nodes["story"].deps == ()
    assert [g.nodes[i].kind for i in ("program", "epic")] == [TaskKind.GROUP] * 2
    # With a default agent every task does work, so `parent` means "after the parent".
    g = graph(*tasks, default_agent="developer")
    assert g.nodes["epic"].deps == ("program",) and g.nodes["story"].deps == ("epic",)
    assert g.order == ("program", "epic", "story")


def test_fan_in_and_depending_on_a_group() -> None:
    g = graph(
        TaskSpec("a", agent="developer"),
        TaskSpec("b", agent="developer"),
        TaskSpec("merge", agent="developer", depends_on=("a", "b")),
    )
    assert g.nodes["merge"].deps == ("a", "b")
    assert g.dependents == {"a": ("merge",), "b": ("merge",)}


def test_backlog_is_a_task_with_no_target_and_no_children() -> None:
    g = graph(TaskSpec("triage"), TaskSpec("later", depends_on=("triage",)))
    assert [(n.kind, n.target) for n in g.nodes.values()] == [(TaskKind.BACKLOG, BACKLOG)] * 2
    assert g.nodes["later"].deps == ("triage",)


def test_unknown_references_self_references_and_duplicates_are_ignored() -> None:
    # The loader reports these; the graph must still be buildable (e.g. for `tt validate`).
    g = graph(
        TaskSpec("a", agent="developer", parent="nope", depends_on=("a", "ghost")),
        TaskSpec("a", agent="tester"),
        TaskSpec("b", agent="developer", parent="b"),
    )
    assert list(g.nodes) == ["a", "b"]
    assert g.nodes["a"].target == "developer" and g.nodes["a"].deps == ()
    assert g.nodes["b"].deps == ()


def test_topological_order_puts_dependencies_first_even_against_file_order() -> None:
    tasks = [TaskSpec(f"t{i}", agent="developer", depends_on=(f"t{i + 1}",)) for i in range(9)]
    g = graph(*tasks, TaskSpec("t9", agent="developer"))
    assert g.order == tuple(f"t{i}" for i in reversed(range(10)))


def _heap_order(g: Graph) -> tuple[str, ...]:
    """The order as defined: Kahn's algorithm with every ready task on one heap, the first
    in the file first; what a cycle holds, after, in file order. (A part, `graph_of`, waits
    only for what it holds.)"""
    left = {i: sum(d in g.nodes for d in n.deps) for i, n in g.nodes.items()}
    heap = [(n.index, i) for i, n in g.nodes.items() if not left[i]]
    heapq.heapify(heap)
    out: list[str] = []
    while heap:
        _, tid = heapq.heappop(heap)
        out.append(tid)
        for kid in g.dependents.get(tid, ()):
            left[kid] -= 1
            if left[kid] == 0:
                heapq.heappush(heap, (g.nodes[kid].index, kid))
    rest = sorted((i for i in g.nodes if i not in set(out)), key=lambda i: g.nodes[i].index)
    return (*out, *rest)


@pytest.mark.parametrize("seed", range(40))
def test_the_order_is_kahns_with_one_heap_on_file_position(seed: int) -> None:
    """`_topological` walks the file with a cursor and heaps only what became ready behind it:
    the same order as one heap of every ready task, on random towns (groups, sequential ones,
    parents, dependencies either way, cycles too) and on parts of them (`graph_of`)."""
    rng = random.Random(seed)
    n = rng.randint(1, 60)
    ids = [f"t{i}" for i in range(n)]
    tasks = []
    for i, tid in enumerate(ids):
        agent = None if rng.random() < 0.25 else "developer"
        parent = rng.choice(ids) if rng.random() < 0.4 else None
        deps = tuple(rng.sample(ids, rng.randint(0, 3)))
        if seed % 2 == 0:  # half of the towns have no cycle through depends_on
            deps = tuple(d for d in deps if int(d[1:]) < i)
        grouped = rng.random() < 0.3
        tasks.append(TaskSpec(tid, agent=agent, parent=parent, depends_on=deps, sequential=grouped))
    g = graph(*tasks)
    assert g.order == _heap_order(g)
    d = Desired(town=TownSettings("t"), agents=AGENTS, tasks=tuple(tasks))
    part = graph_of(d, rng.sample(ids, rng.randint(1, n)))
    assert part.order == _heap_order(part)


def test_ten_thousand_long_chains_need_no_recursion() -> None:
    n = 10_000
    forward = [TaskSpec("t0", agent="developer")] + [
        TaskSpec(f"t{i}", agent="developer", parent=f"t{i - 1}") for i in range(1, n)
    ]
    assert graph(*forward).order[-1] == f"t{n - 1}"
    backward = [TaskSpec(f"t{i}", agent="developer", depends_on=(f"t{i + 1}",)) for i in range(n)]
    g = graph(*backward[:-1], TaskSpec(f"t{n - 1}", agent="developer"))
    assert g.order[0] == f"t{n - 1}" and g.order[-1] == "t0"
    assert find_cycles(g) == []
    ring = {f"t{i}": (f"t{(i + 1) % n}",) for i in range(n)}
    [cycle] = find_cycles(ring)
    assert len(cycle) == n and cycle[0] == "t0" and cycle[1] == "t1"


def test_find_cycles_reports_one_readable_cycle_per_knot() -> None:
    g = graph(
        TaskSpec("epic"),
        TaskSpec("child", agent="developer", parent="epic", depends_on=("epic",)),
        TaskSpec("x", agent="developer", depends_on=("y",)),
        TaskSpec("y", agent="developer", depends_on=("z",)),
        TaskSpec("z", agent="developer", depends_on=("x",)),
        TaskSpec("fine", agent="developer", depends_on=("x",)),
    )
    assert find_cycles(g) == [("epic", "child"), ("x", "y", "z")]
    # Cycles are unvalidated input only, but the order still lists every task once.
    assert sorted(g.order) == sorted(g.nodes)


@pytest.mark.parametrize(
    ("waits", "cycles"),
    [
        ({"a": ("b",), "b": ()}, []),
        ({"a": ("a",)}, [("a",)]),
        ({"a": ("b",), "b": ("a", "c"), "c": ("b",)}, [("a", "b")]),
        ({"a": ("ghost",)}, []),
    ],
)
def test_find_cycles_on_a_plain_mapping(
    waits: dict[str, tuple[str, ...]], cycles: list[tuple[str, ...]]
) -> None:
    assert find_cycles(waits) == cycles


def test_agrees_with_the_loaders_reading_of_the_files() -> None:
    """`loader.waits_for` encodes the same semantics for validation: both must agree."""
    rng = random.Random(7)
    for _ in range(50):
        tasks = []
        for i in range(30):
            tasks.append(
                TaskSpec(
                    f"t{i}",
                    agent=rng.choice([None, None, "developer", "worker", "worker-1"]),
                    parent=f"t{rng.randrange(i)}" if i and rng.random() < 0.5 else None,
                    depends_on=tuple(
                        f"t{j}" for j in rng.sample(range(i), min(i, 2)) if rng.random() < 0.3
                    ),
                    sequential=rng.random() < 0.3,
                )
            )
        d = Desired(
            town=TownSettings("t"),
            agents=AGENTS,
            tasks=tuple(tasks),
            default_agent=rng.choice([None, None, "developer"]),
        )
        g = build_graph(d)
        assert {i: set(w) for i, w in waits_for(d).items()} == {
            i: set(n.deps) for i, n in g.nodes.items()
        }
        for tid in g.order:
            for dep in g.nodes[tid].deps:
                assert g.order.index(dep) < g.order.index(tid) or find_cycles(g)


def random_desired(rng: random.Random, n: int = 30) -> Desired:
    """Random parents (working or groups, sequential or not), depends_on and default agents."""
    tasks = []
    for i in range(n):
        tasks.append(
            TaskSpec(
                f"t{i}",
                agent=rng.choice([None, None, "developer", "worker", "worker-1"]),
                parent=f"t{rng.randrange(i)}" if i and rng.random() < 0.5 else None,
                depends_on=tuple(
                    f"t{j}" for j in rng.sample(range(i), min(i, 2)) if rng.random() < 0.3
                ),
                sequential=rng.random() < 0.3,
            )
        )
    return Desired(
        town=TownSettings("t"),
        agents=AGENTS,
        tasks=tuple(tasks),
        default_agent=rng.choice([None, None, "developer"]),
    )


def test_graph_of_some_tasks_builds_their_nodes_as_the_whole_graph_does() -> None:
    rng = random.Random(11)
    for _ in range(100):
        d = random_desired(rng)
        whole = build_graph(d)
        assert graph_of(d, [t.id for t in d.tasks]).nodes == whole.nodes  # deps in one order
        some = rng.sample([t.id for t in d.tasks], 5)
        part = graph_of(d, [*some, "not-a-task"])
        assert part.nodes == {i: whole.nodes[i] for i in some}
        # Topological among themselves: each after those of them it waits for.
        assert sorted(part.order) == sorted(some)
        for tid in part.order:
            for dep in whole.nodes[tid].deps:
                assert (
                    dep not in some
                    or part.order.index(dep) < part.order.index(tid)
                    or find_cycles(whole)  # random input: a group may wait for its own parent
                )


@pytest.mark.parametrize(
    ("order", "deps"),
    [
        (("first", "inner-kid"), ("first", "inner-kid", "late")),
        (("inner-kid", "first"), ("inner-kid", "late", "first")),
    ],
)
def test_graph_of_a_sequential_group_inside_another(
    order: tuple[str, str], deps: tuple[str, ...]
) -> None:
    """`inner` waits for its members and, as a member of `outer`, for the one before it: in
    the order of whichever group's first member comes first in the file, as build_graph."""
    specs = {
        "first": TaskSpec("first", agent="developer", parent="outer"),
        "inner-kid": TaskSpec("inner-kid", agent="developer", parent="inner"),
    }
    d = Desired(
        town=TownSettings("t"),
        agents=AGENTS,
        tasks=(
            TaskSpec("outer", sequential=True),
            *(specs[o] for o in order),
            TaskSpec("inner", parent="outer", sequential=True),
            TaskSpec("late", agent="developer", parent="inner"),
        ),
    )
    whole = build_graph(d)
    assert whole.nodes["inner"].deps == deps
    assert graph_of(d, ["inner"]).nodes["inner"] == whole.nodes["inner"]


def test_made_is_the_dataclasss_own_construction() -> None:
    """`made` (the planner's fast constructor) must be given, and set, every field."""
    from reconciler.plan.actions import CreateTask
    from reconciler.plan.graph import Node, made
    from reconciler.plan.state import Source, TaskState

    node = {"id": "a", "kind": TaskKind.WORK, "target": "dev", "deps": ("b",), "children": ()}
    node.update(index=3, after="b")
    spec = TaskSpec("a", agent="developer")
    action = {"spec": spec, "source": Source.FILE, "kind": TaskKind.WORK}
    action.update(state=TaskState.READY, deps=(), deps_left=0, target="dev", order=3.0, after="")
    for cls, fields in ((Node, node), (CreateTask, action)):
        assert set(fields) == {f.name for f in dataclasses.fields(cls)}
        fast, slow = made(cls, dict(fields)), cls(**fields)  # type: ignore[operator]
        assert fast == slow and repr(fast) == repr(slow) and hash(fast) == hash(slow)


def test_a_sequential_member_records_the_member_it_runs_after() -> None:
    tasks = (
        TaskSpec("rel", sequential=True),
        TaskSpec("a", "A", agent="dev", parent="rel"),
        TaskSpec("b", "B", agent="dev", parent="rel"),
        TaskSpec("c", "C", agent="dev", parent="rel", depends_on=("b",)),
    )
    desired = Desired(town=TownSettings("t"), agents=(AgentSpec("dev", "sim"),), tasks=tasks)
    g = build_graph(desired)
    # b only runs after a; c needs b (its depends_on): no `after` there
    assert [(g.nodes[t].deps, g.nodes[t].after) for t in "abc"] == [
        ((), ""),
        (("a",), "a"),
        (("b",), ""),
    ]
    assert graph_of(desired, ["b", "c"]).nodes == {t: g.nodes[t] for t in "bc"}
