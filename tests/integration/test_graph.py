"""`tt graph` on a sim town (issue 12, point 1): the DAG before the apply (every task
`unapplied`) and after the run (every state as `tt status` shows it), in each output form."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_agents import Town, town  # noqa: F401

pytestmark = [pytest.mark.integration]

TASKS = """
[[tasks]]
id = "design"
description = "Design the thing"
agent = "dev"

[[tasks]]
id = "epic"
description = "The work"

[[tasks]]
id = "build"
description = "Build it"
agent = "dev"
parent = "epic"
depends_on = ["design"]

[[tasks]]
id = "broken"
description = "[sim:fail] this one fails"
agent = "dev"
parent = "epic"
retries = 0

[[tasks]]
id = "ship"
description = "Ship it"
agent = "dev"
depends_on = ["epic"]
"""


def test_graph_shows_the_dag_before_and_after_a_run(town: Town) -> None:  # noqa: F811
    (town.root / "town.toml").write_text('[town]\nname = "graph"\n\n[agents.dev]\nmodel = "sim"\n')
    (town.root / "tasks.toml").write_text(TASKS)
    before = json.loads(town.tt("graph", "-o", "json").stdout)
    assert {t["state"] for t in before["tasks"]} == {"unapplied"}
    town.tt("apply", "--wait", "--timeout", "60s", check=False)

    after = json.loads(town.tt("graph", "-o", "json").stdout)
    states = {t["id"]: t["state"] for t in after["tasks"]}
    status = {t["id"]: t["state"] for t in town.status()["tasks"]}
    assert states == status
    assert states["design"] == "completed" and states["broken"] == "failed"
    assert states["ship"] == "upstream_failed"
    assert {(e["from"], e["to"]) for e in after["edges"]} == {("design", "build"), ("epic", "ship")}

    text = town.tt("graph").stdout.splitlines()
    assert text[0].startswith("town graph: 5 tasks (")
    assert any(ln.startswith("  ✗ broken") and "failed" in ln for ln in text), text
    mermaid = town.tt("graph", "-o", "mermaid").stdout
    assert mermaid.startswith("flowchart TD\n") and ":::s_failed" in mermaid
    dot = town.tt("graph", "-o", "dot").stdout
    assert dot.startswith('digraph "graph" {') and '"design" -> "build";' in dot


def test_tasks_only_redis_holds_are_in_the_graph(town: Town) -> None:  # noqa: F811
    """Review of issue 12, finding 9: `tt assign --no-save` tasks (tasks.toml untouched) are
    nodes too, in every form, with the edge their `--after` makes."""
    (town.root / "town.toml").write_text('[town]\nname = "graph"\n\n[agents.dev]\nmodel = "sim"\n')
    (town.root / "tasks.toml").write_text(TASKS.split('[[tasks]]\nid = "epic"')[0])
    town.tt("apply", "--wait", "--timeout", "60s")
    town.tt("assign", "dev", "loose work", "--id", "loose", "--after", "design", "--no-save")
    town.wait_states({"loose": "completed"})
    assert "loose" not in (town.root / "tasks.toml").read_text()
    report = json.loads(town.tt("graph", "-o", "json").stdout)
    states = {t["id"]: t["state"] for t in report["tasks"]}
    assert states == {t["id"]: t["state"] for t in town.status()["tasks"]}
    loose = next(t for t in report["tasks"] if t["id"] == "loose")
    assert loose["description"] == "loose work" and loose["agent"] == "dev"
    assert {"from": "design", "to": "loose", "kind": "parent"} in report["edges"]
    assert report["counts"] == {"completed": 2}
    assert any("loose" in line for line in town.tt("graph").stdout.splitlines())
    assert '"loose"' in town.tt("graph", "-o", "dot").stdout
