"""`tt graph`'s report and renderings (plan/dag.py, plan/graphtext.py) on plain values."""

from __future__ import annotations

import json

from reconciler.plan.dag import dag_report
from reconciler.plan.graphtext import dot_lines, mermaid_lines, render, text_lines
from reconciler.spec.desired import AgentSpec, Desired, TaskSpec, TownSettings

DESIRED = Desired(
    town=TownSettings("demo"),
    agents=(AgentSpec("dev", "sim"), AgentSpec("docs", "sim", role="writer")),
    tasks=(
        TaskSpec("design", description="Design it\nin detail", agent="dev"),
        TaskSpec("epic", description="The epic"),
        TaskSpec("impl-a", description="A", agent="dev", parent="epic", depends_on=("design",)),
        TaskSpec("impl-b", description="B", agent="dev", parent="epic"),
        TaskSpec("guide", description="Guide", sequential=True),
        TaskSpec("outline", description="Outline", role="writer", parent="guide"),
        TaskSpec("chapters", description="Chapters", role="writer", parent="guide"),
        TaskSpec("review", description="Review", agent="dev", parent="design"),
        TaskSpec("notes", description="Notes", role="writer", depends_on=("epic", "guide")),
        TaskSpec("chore", description="Any agent"),
    ),
)
RECORDS = {
    "design": {"state": "completed", "assignee": "dev"},
    "impl-a": {"state": "running", "assignee": "dev"},
    "impl-b": {"state": "failed", "assignee": "dev"},
    "notes": {"state": "upstream_failed", "upstream": "impl-b"},
}


def report() -> dict[str, object]:
    return dag_report(DESIRED, RECORDS, "demo")


def test_every_task_in_file_order_with_its_kind_state_agent_and_group() -> None:
    r = report()
    tasks = {t["id"]: t for t in r["tasks"]}  # type: ignore[attr-defined]
    assert [t["id"] for t in r["tasks"]] == [s.id for s in DESIRED.tasks]  # type: ignore[attr-defined]
    assert tasks["design"] | {} == {
        "id": "design",
        "kind": "work",
        "state": "completed",
        "agent": "dev",
        "group": None,
        "children": [],
        "description": "Design it",
        "upstream": None,
    }
    assert tasks["epic"]["kind"] == "group" and tasks["epic"]["children"] == ["impl-a", "impl-b"]
    assert tasks["impl-a"]["group"] == "epic"
    assert tasks["outline"]["agent"] == "role writer"  # not claimed yet: where it will go
    assert tasks["chore"]["kind"] == "backlog" and tasks["chore"]["state"] == "unapplied"
    assert tasks["notes"]["upstream"] == "impl-b"
    assert r["counts"] == {
        "completed": 1,
        "running": 1,
        "failed": 1,
        "upstream_failed": 1,
        "unapplied": 6,
    }
    assert r["version"] == 1 and r["town"] == "demo"


def test_edges_are_typed_and_a_groups_members_are_not_edges() -> None:
    edges = {(e["from"], e["to"], e["kind"]) for e in report()["edges"]}  # type: ignore[attr-defined]
    assert edges == {
        ("design", "impl-a", "depends_on"),
        ("outline", "chapters", "sequential"),
        ("design", "review", "parent"),  # a working parent runs first
        ("epic", "notes", "depends_on"),
        ("guide", "notes", "depends_on"),
    }


def test_text_nests_groups_marks_states_and_puts_the_backlog_apart() -> None:
    lines = text_lines(report(), width=200)
    assert lines[0].startswith("town demo: 10 tasks (1 completed, 1 failed, 1 running")
    by_id = {ln.split()[1]: ln for ln in lines[1:] if not ln.startswith("backlog")}
    assert by_id["design"].startswith("✓ design")
    assert by_id["impl-a"].startswith("  ▶ impl-a") and "← design" in by_id["impl-a"]
    assert "(group)" in by_id["epic"]
    assert "← outline (sequential)" in by_id["chapters"]
    assert "upstream_failed (impl-b)" in by_id["notes"]
    assert lines[-2] == "backlog (any idle agent):" and "chore" in lines[-1]
    assert all(len(ln) <= 40 for ln in text_lines(report(), width=40))


def test_mermaid_uses_safe_ids_subgraphs_and_a_class_per_state() -> None:
    lines = mermaid_lines(report())
    assert lines[0] == "flowchart TD"
    assert '  subgraph n1["epic<br/>unapplied"]' in lines
    assert '    n2["impl-a<br/>running<br/>dev"]:::s_running' in lines
    assert "  n0 --> n2" in lines and "  n5 -. sequential .-> n6" in lines
    assert any(ln.startswith("  classDef s_upstream_failed fill:") for ln in lines)
    assert '  subgraph backlog["backlog (any idle agent)"]' in lines


def test_dot_quotes_ids_and_draws_groups_as_clusters() -> None:
    text = "\n".join(dot_lines(report()))
    assert text.startswith('digraph "demo" {') and text.endswith("}")
    assert 'subgraph "cluster_epic" {' in text
    assert '"epic" [label="epic\\nunapplied", fillcolor="#ffffff", shape=tab];' in text
    assert '"outline" -> "chapters" [style=dashed, label="sequential"];' in text
    assert text.count("{") == text.count("}")


def test_quotes_in_a_town_name_cannot_break_out_of_dot() -> None:
    odd = dag_report(DESIRED, {}, 'a"b')
    assert dot_lines(odd)[0] == 'digraph "a\\"b" {'


def test_json_is_the_report() -> None:
    assert json.loads(render(report(), "json")) == json.loads(json.dumps(report()))


def test_a_gate_is_drawn_as_a_checkpoint() -> None:
    gated = Desired(
        town=TownSettings("demo"),
        agents=(AgentSpec("dev", "sim"),),
        tasks=(
            TaskSpec("build", description="Build", agent="dev"),
            TaskSpec("sign-off", approve=True, depends_on=("build",)),
        ),
    )
    r = dag_report(gated, {"sign-off": {"state": "awaiting_approval"}}, "demo")
    assert [t["kind"] for t in r["tasks"]] == ["work", "gate"]
    assert '  n1{{"sign-off<br/>awaiting_approval"}}:::s_awaiting_approval' in mermaid_lines(r)
    assert any("shape=hexagon" in ln for ln in dot_lines(r))
    assert any(ln.startswith("? sign-off (gate)") for ln in text_lines(r, width=200))
