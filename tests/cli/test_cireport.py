"""The CI renderings of a run, on plain values: JUnit XML read back by junitparser (failure,
skipped, error and passed cases, attempts in system-out, control characters from a model made
visible), and the Markdown step summary (table, cost where told, failed tasks' errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from junitparser import Error, Failure, JUnitXml, Skipped

from cli.cireport import junit_xml, step_summary


def attempt(n: int, cls: str, *, cost: float | None = None, dur: float = 2.5) -> dict[str, Any]:
    return {
        "attempt": n,
        "agent": "dev",
        "outcome": "completed" if cls == "success" else "failed",
        "exit_class": cls,
        "duration_s": dur,
        "cost_usd": cost,
        "error": None,
    }


def task(tid: str, state: str, **kw: Any) -> dict[str, Any]:
    return {
        "id": tid,
        "state": state,
        "kind": "work",
        "agent": "dev",
        "upstream": None,
        "error": None,
        "duration_s": 3.0,
        "cost_usd": None,
        "attempts": [],
        **kw,
    }


REPORT = {
    "town": "shop",
    "generated_at": 1_800_000_000.0,
    "tasks": [
        task("design", "completed", attempts=[attempt(1, "success", cost=0.0422)], cost_usd=0.0422),
        task(
            "build",
            "failed",
            error="Traceback...\nboom \x1b[31mred\x1b[0m | pipe",
            attempts=[attempt(1, "failed"), attempt(2, "timeout", cost=0.01)],
            cost_usd=0.01,
        ),
        task("test", "upstream_failed", upstream="build", duration_s=None),
        task("docs", "cancelled", duration_s=None),
        task("ship", "running", attempts=[attempt(1, "success")]),
    ],
}


def test_junit_has_a_case_per_task_with_junit_meanings(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(junit_xml(REPORT))
    xml = JUnitXml.fromfile(str(path))
    (suite,) = list(xml)
    assert (suite.name, suite.tests, suite.failures, suite.skipped, suite.errors) == (
        "shop",
        5,
        1,
        2,
        1,
    )
    cases = {c.name: c for c in suite}
    assert list(cases) == ["design", "build", "test", "docs", "ship"]
    assert all(c.classname == "shop" for c in cases.values())
    assert cases["design"].is_passed
    assert cases["design"].system_out == "attempt 1, agent dev, exit success, 2.5s, $0.0422"
    (failure,) = cases["build"].result
    assert isinstance(failure, Failure)
    assert failure.type == "timeout"  # the last attempt's exit class
    assert failure.message == "Traceback..."
    # the error tail, with the model's escape sequences shown, never written raw into XML
    assert failure.text == "Traceback...\nboom \\x1b[31mred\\x1b[0m | pipe"
    assert cases["build"].system_out.splitlines() == [
        "attempt 1, agent dev, exit failed, 2.5s",
        "attempt 2, agent dev, exit timeout, 2.5s, $0.0100",
    ]
    (skipped,) = cases["test"].result
    assert isinstance(skipped, Skipped)
    assert skipped.message == "upstream_failed: build did not complete"
    assert isinstance(cases["docs"].result[0], Skipped)
    assert cases["docs"].result[0].message == "cancelled"
    (error,) = cases["ship"].result
    assert isinstance(error, Error) and error.message == "not finished: running"
    assert cases["design"].time == 3.0


def test_step_summary_tables_the_run_with_cost_where_told() -> None:
    text = step_summary(REPORT, 1)
    lines = text.splitlines()
    assert lines[0] == "### ❌ `tt apply --wait`: town `shop` failed"
    assert lines[2] == (
        "5 tasks · 1 cancelled, 1 completed, 1 failed, 1 running, 1 upstream_failed · "
        "cost $0.0522 (as the CLIs told it)"
    )
    assert "| task | state | agent | attempts | duration | cost |" in lines
    assert "| `design` | ✅ completed | dev | 1 | 3.0s | $0.0422 |" in lines
    assert "| `test` | ⏭️ upstream_failed | dev | 0 | – | – |" in lines
    assert "| `ship` | 🔄 running | dev | 1 | 3.0s | – |" in lines
    # a failed task's error, fenced, its escape sequences visible
    assert "<details><summary>failed: <code>build</code>: Traceback...</summary>" in lines
    assert "```text\nTraceback...\nboom \\x1b[31mred\\x1b[0m | pipe\n```" in text
    assert "upstream_failed: <code>test</code>: upstream_failed: build did not complete" in text


def test_step_summary_of_a_completed_run_without_costs() -> None:
    report = {**REPORT, "tasks": [REPORT["tasks"][0] | {"cost_usd": None, "attempts": []}]}
    text = step_summary(report, 0)
    assert text.startswith(
        "### ✅ `tt apply --wait`: town `shop` completed\n\n1 task · 1 completed\n"
    )
    assert "cost $" not in text and "<details>" not in text
    assert step_summary(report, 3).startswith("### ⚠️ `tt apply --wait`: town `shop` timed out")
    # a wait stopped by a signal exits 0 with tasks unfinished: not "completed"
    running = {**report, "tasks": [task("a", "running")]}
    assert step_summary(running, 0).startswith(
        "### ⚠️ `tt apply --wait`: town `shop` stopped before the end"
    )


def test_a_pipe_in_a_task_cell_does_not_break_the_table() -> None:
    report = {**REPORT, "tasks": [task("a", "completed", agent="x|y")]}
    assert "| `a` | ✅ completed | x\\|y | 0 | 3.0s | – |" in step_summary(report, 0)


GATED = {
    "town": "shop",
    "generated_at": 1_800_000_000.0,
    "tasks": [
        task("build", "completed", attempts=[attempt(1, "success")]),
        task("cleanup", "skipped", run_if="failure", duration_s=None),
        task("notify", "skipped", duration_s=None),
        task("go", "awaiting_approval", kind="gate", agent=None, duration_s=None),
        task("deploy", "blocked", duration_s=None),
    ],
}


def test_junit_skips_what_run_if_skipped_and_what_awaits_approval(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(junit_xml(GATED))
    (suite,) = list(JUnitXml.fromfile(str(path)))
    assert (suite.failures, suite.skipped, suite.errors) == (0, 3, 1)
    cases = {c.name: c for c in suite}
    (skip,) = cases["cleanup"].result
    assert isinstance(skip, Skipped)
    assert skip.message == "run_if = failure: not run, as its dependencies ended"
    assert cases["notify"].result[0].message == "run_if = success: a task it waits for was skipped"
    (wait,) = cases["go"].result
    assert isinstance(wait, Skipped) and wait.message == "awaiting approval: tt approve go"
    assert isinstance(cases["deploy"].result[0], Error)  # behind the gate: unfinished


def test_junit_types_a_rejection_as_rejected(tmp_path: Path) -> None:
    rejected = task(
        "build",
        "failed",
        error="rejected: no changelog",
        rejected=True,
        attempts=[attempt(1, "success"), attempt(2, "success")],
    )
    path = tmp_path / "junit.xml"
    path.write_text(junit_xml({**GATED, "tasks": [rejected]}))
    (suite,) = list(JUnitXml.fromfile(str(path)))
    (failure,) = next(iter(suite)).result
    assert (failure.type, failure.message) == ("rejected", "rejected: no changelog")


def test_step_summary_of_a_run_stopped_at_a_gate_or_with_skips() -> None:
    text = step_summary(GATED, 4)
    assert text.startswith("### ⏸️ `tt apply --wait`: town `shop` awaiting approval\n")
    assert "| `go` | ⏸️ awaiting_approval | – | 0 | – | – |" in text
    assert "| `cleanup` | ⏩ skipped | dev | 0 | – | – |" in text
    assert "Awaiting approval: `go` (`tt approve TASK` or `tt reject TASK --reason …`)" in text
    # skipped counts as finished: a run that ended with skips completed
    done = {**GATED, "tasks": GATED["tasks"][:3]}
    assert step_summary(done, 0).startswith("### ✅ `tt apply --wait`: town `shop` completed\n")


def test_junit_shows_characters_xml_cannot_hold(tmp_path: Path) -> None:
    broken = task("build", "failed", error="bad \ufffe\uffff and \ud800 half a pair \x00")
    path = tmp_path / "junit.xml"
    path.write_text(junit_xml({**GATED, "tasks": [broken]}), encoding="utf-8")
    (suite,) = list(JUnitXml.fromfile(str(path)))  # a strict XML parser reads it
    (failure,) = next(iter(suite)).result
    assert failure.text == "bad \\ufffe\\uffff and \\ud800 half a pair \\x00"
