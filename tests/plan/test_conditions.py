"""`run_if` and approval gates as pure rules: what a waiting task is by its dependencies
(`plan.conditions.readiness`), how the store model settles gates and skipped tasks, what the
graph makes of a gate, and what the files accept."""

from __future__ import annotations

import pytest

from reconciler.plan.conditions import readiness
from reconciler.plan.graph import TaskKind, build_graph, graph_of
from reconciler.plan.model import StoreModel
from reconciler.plan.state import ObservedTask, TaskState
from reconciler.spec.desired import AgentSpec, Desired, TaskSpec, TownSettings
from tests.spec.test_loader import TOWN, load_texts, problems_of

C, F, X = TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED
B, R, RUN = TaskState.BLOCKED, TaskState.READY, TaskState.RUNNING
UF, S, AW = TaskState.UPSTREAM_FAILED, TaskState.SKIPPED, TaskState.AWAITING_APPROVAL


@pytest.mark.parametrize(
    ("deps", "success", "failure", "always"),
    [
        ((), R, S, R),  # nothing to wait for: nothing failed
        ((C, C), R, S, R),
        ((C, RUN), B, B, B),
        ((F, RUN), UF, B, B),  # success gives up at once; the others wait for all to end
        ((F, C), UF, R, R),
        ((X,), UF, R, R),  # cancelled counts as failed
        ((UF,), UF, R, R),  # so does a dependency that cannot run
        ((None,), UF, R, R),  # and one pruned from the files
        ((S, C), S, S, R),  # what needs a skipped task is skipped (GitHub Actions' rule)
        ((S, F), UF, R, R),
        ((AW,), B, B, B),  # awaiting approval is not done: dependents wait
        ((TaskState.RETRYING,), B, B, B),
    ],
)
def test_readiness_by_run_if(
    deps: tuple[TaskState | None, ...], success: TaskState, failure: TaskState, always: TaskState
) -> None:
    assert readiness("success", deps) is success
    assert readiness("failure", deps) is failure
    assert readiness("always", deps) is always


@pytest.mark.parametrize(
    ("deps", "want"),
    [
        ((C, S), R),  # a failure handler not needed: the group completes
        ((S, S), S),  # every member skipped: so is the group
        ((S, RUN), B),
        ((S, F), UF),
        ((C, C), R),
    ],
)
def test_a_group_counts_a_skipped_member_as_done(
    deps: tuple[TaskState | None, ...], want: TaskState
) -> None:
    assert readiness("success", deps, group=True) is want


def _task(
    tid: str, state: TaskState, *deps: str, kind: TaskKind = TaskKind.WORK, run_if: str = "success"
) -> ObservedTask:
    return ObservedTask(tid, state, kind=kind, deps=deps, run_if=run_if)


def test_model_skips_a_cleanup_and_runs_it_when_its_parent_failed() -> None:
    m = StoreModel(
        [
            _task("build", RUN),
            _task("cleanup", B, "build", run_if="failure"),
            _task("report", B, "cleanup"),
            _task("notify", B, "build", run_if="always"),
        ]
    )
    m._complete("build")
    assert (m.state["cleanup"], m.state["report"], m.state["notify"]) == (S, S, R)
    m.state["build"] = F
    m._release("build")  # a re-run that failed: the skip is undone, the cleanup runs
    assert (m.state["cleanup"], m.state["report"], m.state["notify"]) == (R, B, R)
    assert m.queued["cleanup"] and m.queued["notify"]


def test_model_completes_a_group_whose_failure_handler_was_skipped() -> None:
    m = StoreModel(
        [
            _task("build", RUN),
            _task("cleanup", B, "build", run_if="failure"),
            _task("stage", B, "build", "cleanup", kind=TaskKind.GROUP),
            _task("deploy", B, "stage"),
        ]
    )
    m._complete("build")
    assert (m.state["cleanup"], m.state["stage"], m.state["deploy"]) == (S, C, R)


def test_model_gate_awaits_approval_and_holds_its_dependents() -> None:
    m = StoreModel(
        [
            _task("build", RUN),
            _task("go", B, "build", kind=TaskKind.GATE),
            _task("deploy", B, "go"),
        ]
    )
    m._complete("build")
    assert (m.state["go"], m.state["deploy"]) == (AW, B)
    assert not m.queued.get("go")  # never queued: no agent runs a gate
    m._complete("go")  # approved
    assert m.state["deploy"] is R


def _desired(*tasks: TaskSpec) -> Desired:
    return Desired(town=TownSettings("t"), agents=(AgentSpec("dev", "sim"),), tasks=tasks)


def test_a_gate_without_agent_holds_the_tasks_naming_it_as_parent() -> None:
    tasks = (
        TaskSpec("build", "Build", agent="dev"),
        TaskSpec("go", approve=True, parent="build"),
        TaskSpec("deploy", "Deploy", agent="dev", parent="go"),
        TaskSpec("epic"),  # a group, for contrast: its children do not wait for it
        TaskSpec("part", "Part", agent="dev", parent="epic"),
    )
    g = build_graph(_desired(*tasks))
    assert (g.nodes["go"].kind, g.nodes["go"].target, g.nodes["go"].deps) == (
        TaskKind.GATE,
        "",
        ("build",),
    )
    assert g.nodes["deploy"].deps == ("go",)
    assert g.nodes["epic"].kind is TaskKind.GROUP and g.nodes["part"].deps == ()
    assert graph_of(_desired(*tasks), ["go", "deploy"]).nodes == {
        k: g.nodes[k] for k in ("go", "deploy")
    }


def test_approve_and_run_if_change_the_spec_hash_only_when_set() -> None:
    plain = TaskSpec("a", "A", agent="dev")
    assert "approve" not in plain.canonical_json() and "run_if" not in plain.canonical_json()
    gated = TaskSpec("a", "A", agent="dev", approve=True, run_if="always")
    assert (
        '"approve":true' in gated.canonical_json() and '"run_if":"always"' in gated.canonical_json()
    )
    assert gated.spec_hash() != plain.spec_hash()


GATED = """\
[[tasks]]
id = "build"
description = "Build"
agent = "developer"

[[tasks]]
id = "go"
parent = "build"
approve = true

[[tasks]]
id = "cleanup"
description = "Clean up"
agent = "developer"
depends_on = ["build"]
run_if = "failure"
"""


def test_files_accept_a_gate_without_description_and_run_if() -> None:
    desired = load_texts(TOWN, GATED)
    specs = {t.id: t for t in desired.tasks}
    assert specs["go"].approve and specs["go"].description == ""
    assert specs["cleanup"].run_if == "failure" and specs["build"].run_if == "success"


def test_bad_run_if_and_approve_are_reported_with_line_and_field() -> None:
    bad = GATED.replace('run_if = "failure"', 'run_if = "failed"').replace(
        "approve = true", 'approve = "yes"'
    )
    found = {p.path: p for p in problems_of(tasks=bad)}
    assert set(found) == {"$.tasks[1].approve", "$.tasks[2].run_if"}, [
        p.render() for p in found.values()
    ]
    assert found["$.tasks[1].approve"].line == 9
    assert found["$.tasks[2].run_if"].line == 16
    assert "success" in found["$.tasks[2].run_if"].message
    assert "expected true or false" in found["$.tasks[1].approve"].message


def _seen(spec: TaskSpec, state: TaskState, *deps: str) -> ObservedTask:
    return ObservedTask(
        spec.id,
        state,
        spec_hash=spec.spec_hash(),
        spec_json=spec.canonical_json(),
        target="dev",
        deps=deps,
        run_if=spec.run_if,
        queued=state is R,
    )


def test_plan_repairs_and_updates_by_run_if() -> None:
    from reconciler.plan.diff import Requeue, UpdateTask, diff
    from reconciler.plan.state import Observed

    build = TaskSpec("build", "Build", agent="dev")
    cleanup = TaskSpec("cleanup", "Clean", agent="dev", depends_on=("build",), run_if="failure")
    notify = TaskSpec("notify", "Tell", agent="dev", depends_on=("build",), run_if="always")
    # Left blocked after their dependency failed (a crash between two writes): repaired.
    seen = Observed(
        tasks={
            "build": _seen(build, F),
            "cleanup": _seen(cleanup, B, "build"),
            "notify": _seen(notify, B, "build"),
        }
    )
    plan = diff(_desired(build, cleanup, notify), seen, 0.0)
    repairs = {a.id: (a.new_state, a.reason) for a in plan.actions if isinstance(a, Requeue)}
    assert repairs == {
        "cleanup": (R, "every dependency has ended"),
        "notify": (R, "every dependency has ended"),
    }
    # A skipped cleanup whose run_if becomes "always" runs; the plan says so.
    seen = Observed(tasks={"build": _seen(build, C), "cleanup": _seen(cleanup, S, "build")})
    always = TaskSpec("cleanup", "Clean", agent="dev", depends_on=("build",), run_if="always")
    actions = diff(_desired(build, always), seen, 0.0).actions
    (update,) = [a for a in actions if a.op.endswith("_task") or a.op == "requeue"]
    assert isinstance(update, UpdateTask)
    assert (update.changed_fields, update.state, update.new_state) == (("run_if",), S, R)


def test_model_blocks_an_awaiting_gate_again_when_its_upstream_reruns() -> None:
    m = StoreModel(
        [
            _task("build", C),
            _task("go", AW, "build", kind=TaskKind.GATE),
            _task("deploy", B, "go"),
        ]
    )
    m.state["build"] = R  # `tt retry build`
    m._release("build")
    assert (m.state["go"], m.state["deploy"]) == (B, B)
    m._complete("build")
    assert m.state["go"] is AW


def test_render_names_what_a_repair_or_an_edit_made_of_a_task() -> None:
    from reconciler.plan.diff import Plan, Requeue, UpdateTask, render_lines

    lines = render_lines(
        Plan(
            (
                Requeue("cleanup", "dev", B, S, "run_if = failure: …"),
                Requeue("go", "", B, AW, "every dependency is completed"),
                Requeue("a", "dev", AW, C, "its spec no longer asks for approval"),
                UpdateTask(
                    "go",
                    TaskSpec("go", approve=True),
                    ("approve",),
                    TaskKind.GATE,
                    B,
                    AW,
                    (),
                    0,
                    "",
                    "dev",
                    0.0,
                ),
            )
        )
    )
    assert lines == [
        "~ task cleanup: skipped (run_if = failure: …)",
        "~ task go: awaits approval (every dependency is completed)",
        "~ task a: completed (its spec no longer asks for approval)",
        "~ task go: approve (→ approval gate; blocked → awaiting_approval)",
    ]


MEANINGLESS = """\
[[tasks]]
id = "stage"
run_if = "failure"

[[tasks]]
id = "build"
description = "Build"
agent = "developer"
parent = "stage"

[[tasks]]
id = "go"
approve = true
sequential = true
parent = "build"

[[tasks]]
id = "deploy"
description = "Deploy"
agent = "developer"
parent = "go"
"""


def test_run_if_on_a_group_and_sequential_on_a_gate_are_refused() -> None:
    found = {p.path: p for p in problems_of(tasks=MEANINGLESS)}
    assert set(found) == {"$.tasks[0].run_if", "$.tasks[2].sequential"}, [
        p.render() for p in found.values()
    ]
    assert found["$.tasks[0].run_if"].line == 3
    assert "it is a group" in found["$.tasks[0].run_if"].message
    assert found["$.tasks[2].sequential"].line == 14
    assert "is an approval gate" in found["$.tasks[2].sequential"].message
    # on a member of the group, and without sequential on the gate, the same file is valid
    fixed = MEANINGLESS.replace('run_if = "failure"\n', "").replace("sequential = true\n", "")
    assert [t.id for t in load_texts(TOWN, fixed).tasks] == ["stage", "build", "go", "deploy"]
