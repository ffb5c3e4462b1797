"""`tt plan --format markdown` on plain values: the summary, a list per kind of change, the
plan's lines in a fenced diff block, Markdown's own characters escaped, the empty plan."""

from __future__ import annotations

from reconciler.plan.actions import ChangedAfterDone, CreateAgent, DeleteTask, Plan
from reconciler.plan.diff import diff
from reconciler.plan.render import render_lines, render_markdown
from reconciler.plan.state import Observed
from reconciler.spec.desired import AgentSpec, Desired, TaskSpec, TownSettings


def test_a_plan_in_markdown_has_its_summary_lists_and_text() -> None:
    desired = Desired(
        town=TownSettings("t"),
        agents=(AgentSpec("dev", "claude"),),
        tasks=(TaskSpec("build_all", "Build", agent="dev"),),
    )
    plan = diff(desired, Observed(), 0.0)
    plan = Plan(
        (
            *plan.actions,
            DeleteTask("old", was_running=False),
            ChangedAfterDone("x", ("description",)),
        )
    )
    text = render_markdown(plan, "shop", ("⚠️ a note",))
    assert text.splitlines()[:4] == [
        "### `tt plan`: town `shop`",
        "",
        "**2 to create, 0 to change, 1 to delete; 1 changed after done**",
        "> ⚠️ a note",
    ]
    assert (
        "**Create** (2)\n\n- `+` agent dev (claude)\n- `+` task build\\_all (ready → dev)\n" in text
    )
    assert "**Delete** (1)\n\n- `-` task old\n" in text
    assert "**Note** (1)\n\n- `!` task x: changed after done (description)" in text
    assert "**Change**" not in text
    fenced = "```diff\n" + "\n".join(render_lines(plan)) + "\n```"
    assert fenced in text
    assert text.rstrip().endswith("</details>")


def test_an_empty_plan_says_no_changes() -> None:
    text = render_markdown(Plan(()), "shop")
    assert text == "### `tt plan`: town `shop`\n\n**No changes.** The town matches its files.\n"


def test_a_plan_line_holding_a_fence_gets_a_longer_one() -> None:
    plan = Plan((CreateAgent("a", AgentSpec("a", "m```x")),))
    text = render_markdown(plan, "t")
    assert "````diff\n+ agent a (m```x)\n````" in text
    assert "- `+` agent a (m\\`\\`\\`x)" in text
