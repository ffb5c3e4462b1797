"""CI renderings of a run (`control/runreport.run_report`): a JUnit XML report (`tt apply
--wait --junit FILE`) and the Markdown summary appended to `$GITHUB_STEP_SUMMARY`.

JUnit: one <testsuite> per town, one <testcase> per task (classname = the town, name = the task
id): <failure> for a failed task (its exit class, or `rejected`, and error tail), <skipped> for
one cancelled, never run because an upstream task failed, skipped by its `run_if`, or awaiting
approval, <error> for one still unfinished when the wait gave up; <system-out> lists its
attempts. Text from models goes through `printable` (and `_xml`), so no character XML 1.0
cannot hold (control characters, lone surrogates, U+FFFE, U+FFFF) reaches the file.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

from .common import printable

# JUnit <skipped>: never ran (and will not as things stand), or waits for a person's word.
SKIPPED = ("cancelled", "upstream_failed", "skipped", "awaiting_approval")
# Finished: nothing more happens without a person's word or a file edit (`tt wait`'s view).
FINISHED = ("completed", "cancelled", "skipped")
ICONS = {
    "completed": "✅",
    "failed": "❌",
    "upstream_failed": "⏭️",
    "skipped": "⏩",
    "awaiting_approval": "⏸️",
    "cancelled": "⏹️",
    "running": "🔄",
    "retrying": "🔁",
}
OUTCOMES = {0: "completed", 1: "failed", 3: "timed out", 4: "awaiting approval"}


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 60:
        return f"{value:.1f}s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def cost(value: float | None) -> str:
    return "–" if value is None else f"${value:.4f}"


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:200]


def why(task: dict[str, Any]) -> str:
    """Why a task did not complete, in one line."""
    if task["state"] == "upstream_failed":
        return f"upstream_failed: {task['upstream'] or '?'} did not complete"
    if task["state"] == "cancelled":
        return "cancelled"
    if task["state"] == "skipped":
        run_if = task.get("run_if") or "success"
        if run_if == "success":
            return "run_if = success: a task it waits for was skipped"
        return f"run_if = {run_if}: not run, as its dependencies ended"
    if task["state"] == "awaiting_approval":
        return f"awaiting approval: tt approve {task['id']}"
    return _first_line(task["error"] or "") or task["state"]


def attempt_lines(task: dict[str, Any]) -> list[str]:
    lines = []
    for a in task["attempts"]:
        parts = [
            f"attempt {a['attempt']}",
            f"agent {a['agent'] or '-'}",
            f"exit {a['exit_class'] or a['outcome'] or '-'}",
            seconds(a["duration_s"]),
        ]
        if a["cost_usd"] is not None:
            parts.append(cost(a["cost_usd"]))
        lines.append(", ".join(parts))
    return lines


def junit_xml(report: dict[str, Any]) -> str:
    """The JUnit XML document of `report` (one testsuite: the town)."""
    town = str(report["town"])
    tasks = report["tasks"]
    counts = Counter(_verdict(t) for t in tasks)
    total = sum(t["duration_s"] or 0.0 for t in tasks)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(report["generated_at"]))
    summary = {
        "tests": str(len(tasks)),
        "failures": str(counts["failure"]),
        "errors": str(counts["error"]),
        "skipped": str(counts["skipped"]),
        "time": f"{total:.3f}",
    }
    root = ET.Element("testsuites", {"name": "tt", **summary})
    suite = ET.SubElement(root, "testsuite", {"name": town, **summary, "timestamp": stamp})
    for t in tasks:
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": town, "name": t["id"], "time": f"{t['duration_s'] or 0.0:.3f}"},
        )
        verdict = _verdict(t)
        if verdict == "failure":
            last = t["attempts"][-1]["exit_class"] if t["attempts"] else None
            kind = "rejected" if t.get("rejected") else last or t["state"]
            node = ET.SubElement(case, "failure", {"message": _xml(why(t)), "type": kind})
            node.text = _xml(t["error"] or why(t))
        elif verdict == "skipped":
            ET.SubElement(case, "skipped", {"message": _xml(why(t))})
        elif verdict == "error":
            ET.SubElement(
                case,
                "error",
                {"message": f"not finished: {t['state']}", "type": "unfinished"},
            )
        lines = attempt_lines(t)
        if lines:
            ET.SubElement(case, "system-out").text = _xml("\n".join(lines))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


# What XML 1.0 cannot hold beyond the control characters `printable` shows: lone surrogates
# (a model's broken UTF-16) and the non-characters U+FFFE, U+FFFF.
_NOT_XML = re.compile(r"[\ud800-\udfff\ufffe\uffff]")


def _xml(text: str) -> str:
    """`text` for the JUnit file: every character XML 1.0 forbids shown as an escape."""
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", printable(text))


def _verdict(task: dict[str, Any]) -> str:
    state = task["state"]
    if state == "completed":
        return "passed"
    if state == "failed":
        return "failure"
    return "skipped" if state in SKIPPED else "error"


def _cell(text: str) -> str:
    return printable(text).replace("|", "\\|").replace("\n", " ")


def _fenced(text: str) -> str:
    """`text` in a code fence longer than any run of backticks in it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{printable(text.rstrip())}\n{fence}"


def step_summary(report: dict[str, Any], exit_code: int, command: str = "tt apply --wait") -> str:
    """The Markdown of a run for GitHub's job summary: a headline, a table of the tasks (state,
    agent, attempts, duration, cost where a CLI told one) and the error of each failed task."""
    tasks = report["tasks"]
    outcome = OUTCOMES.get(exit_code, "error")
    if exit_code == 0 and any(t["state"] not in FINISHED for t in tasks):
        outcome = "stopped before the end"  # the wait was interrupted (Ctrl-C, a signal)
    icon = {"completed": "✅", "failed": "❌", "awaiting approval": "⏸️"}.get(outcome, "⚠️")
    counts = Counter(t["state"] for t in tasks)
    spent = [t["cost_usd"] for t in tasks if t["cost_usd"] is not None]
    facts = [f"{len(tasks)} task{'' if len(tasks) == 1 else 's'}"]
    facts.append(", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none")
    if spent:
        facts.append(f"cost {cost(sum(spent))} (as the CLIs told it)")
    lines = [
        f"### {icon} `{command}`: town `{_cell(str(report['town']))}` {outcome}",
        "",
        " · ".join(facts),
        "",
        "| task | state | agent | attempts | duration | cost |",
        "|---|---|---|---:|---:|---:|",
    ]
    for t in tasks:
        state = f"{ICONS.get(t['state'], '⏳')} {t['state']}"
        lines.append(
            f"| `{_cell(t['id'])}` | {state} | {_cell(t['agent'] or '–')} | "
            f"{len(t['attempts'])} | {seconds(t['duration_s'])} | {cost(t['cost_usd'])} |"
        )
    waiting = [t["id"] for t in tasks if t["state"] == "awaiting_approval"]
    if waiting:
        names = ", ".join(f"`{_cell(w)}`" for w in waiting)
        how = "`tt approve TASK` or `tt reject TASK --reason …`"
        lines += ["", f"Awaiting approval: {names} ({how})"]
    for t in tasks:
        if t["state"] in ("failed", "upstream_failed"):
            lines += [
                "",
                f"<details><summary>{t['state']}: <code>{t['id']}</code>: "
                f"{_cell(why(t)).replace('<', '&lt;')}</summary>",
                "",
                _fenced(t["error"] or why(t)),
                "",
                "</details>",
            ]
    return "\n".join(lines) + "\n"
