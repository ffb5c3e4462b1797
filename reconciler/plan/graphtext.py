"""`tt graph`'s renderings of a DAG report (`dag.dag_report`): text for a terminal, Mermaid (for
Markdown: GitHub renders it) and Graphviz DOT. Pure: the report in, lines out.

Groups are subgraphs (nested as the file nests them), edges are labelled by kind unless they are
`depends_on`, backlog tasks (no agent; any idle agent claims them) stand apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Fill colours per state, shared by Mermaid and DOT (light, so the black label reads).
COLOURS = {
    "completed": "#b7e4c7",
    "running": "#a9d6f5",
    "ready": "#e9ecef",
    "blocked": "#f8f9fa",
    "retrying": "#ffe8a1",
    "awaiting_approval": "#fff3bf",
    "failed": "#f5b7b1",
    "upstream_failed": "#f9d5b5",
    "cancelled": "#ced4da",
    "skipped": "#dee2e6",
    "unapplied": "#ffffff",
}
# One-character marks per state for the text form.
MARKS = {
    "completed": "✓",
    "running": "▶",
    "ready": "○",
    "blocked": "·",
    "retrying": "↻",
    "awaiting_approval": "?",
    "failed": "✗",
    "upstream_failed": "✗",
    "cancelled": "-",
    "skipped": "»",
    "unapplied": "◌",
}

Report = Mapping[str, Any]


def _members(report: Report, group: str | None) -> list[dict[str, Any]]:
    """The tasks directly in `group` (None: at the top, backlog apart), in file order."""
    return [
        t
        for t in report["tasks"]
        if t["group"] == group and (group is not None or t["kind"] != "backlog")
    ]


def _incoming(report: Report) -> dict[str, list[tuple[str, str]]]:
    into: dict[str, list[tuple[str, str]]] = {}
    for e in report["edges"]:
        into.setdefault(e["to"], []).append((e["from"], e["kind"]))
    return into


# -- text ---------------------------------------------------------------------------------------


def text_lines(report: Report, width: int = 100) -> list[str]:
    """A terminal's view: one line per task (mark, id, state, agent, what it waits for), the
    members of a group indented under it, the backlog last; each line cut to `width`."""
    into = _incoming(report)
    counts = ", ".join(f"{n} {state}" for state, n in sorted(report["counts"].items()))
    total = len(report["tasks"])
    head = f"town {report['town']}: {total} task{'s' * (total != 1)} ({counts or 'none'})"
    lines = [_cut(head, width)]

    def line(t: Mapping[str, Any], depth: int) -> str:
        mark = MARKS.get(t["state"], "•")
        kind = f" ({t['kind']})" if t["kind"] in ("group", "gate") else ""
        name = f"{'  ' * depth}{mark} {t['id']}{kind}"
        after = into.get(t["id"], [])
        waits = "  ← " + ", ".join(_dep(d, k) for d, k in after) if after else ""
        state = t["state"] + (f" ({t['upstream']})" if t.get("upstream") else "")
        return _cut(f"{name:<30} {state:<18} {t['agent'] or '-':<14}{waits}".rstrip(), width)

    def walk(group: str | None, depth: int) -> None:
        for t in _members(report, group):
            lines.append(line(t, depth))
            if t["kind"] == "group":
                walk(t["id"], depth + 1)

    walk(None, 0)
    backlog = [t for t in report["tasks"] if t["kind"] == "backlog"]
    if backlog:
        lines.append("backlog (any idle agent):")
        lines.extend(line(t, 1) for t in backlog)
    return lines


def _dep(dep: str, kind: str) -> str:
    return dep if kind == "depends_on" else f"{dep} ({kind})"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


# -- Mermaid ------------------------------------------------------------------------------------


def mermaid_lines(report: Report) -> list[str]:
    """A `flowchart TD`: node ids n0, n1, … (task ids may hold characters Mermaid reads as
    syntax), labels quoted, a class per state."""
    ids = {t["id"]: f"n{i}" for i, t in enumerate(report["tasks"])}
    out = ["flowchart TD"]

    def label(t: Mapping[str, Any]) -> str:
        text = f"{t['id']}<br/>{t['state']}" + (f"<br/>{t['agent']}" if t["agent"] else "")
        return '"' + text.replace('"', "#quot;") + '"'

    def walk(group: str | None, depth: int) -> None:
        pad = "  " * depth
        for t in _members(report, group):
            if t["kind"] == "group":
                out.append(f"{pad}subgraph {ids[t['id']]}[{label(t)}]")
                walk(t["id"], depth + 1)
                out.append(f"{pad}end")
            elif t["kind"] == "gate":  # a person's checkpoint: a hexagon
                out.append(f"{pad}{ids[t['id']]}{{{{{label(t)}}}}}:::{_css(t['state'])}")
            else:
                out.append(f"{pad}{ids[t['id']]}[{label(t)}]:::{_css(t['state'])}")

    walk(None, 1)
    backlog = [t for t in report["tasks"] if t["kind"] == "backlog"]
    if backlog:
        out.append('  subgraph backlog["backlog (any idle agent)"]')
        out.extend(f"    {ids[t['id']]}[{label(t)}]:::{_css(t['state'])}" for t in backlog)
        out.append("  end")
    for e in report["edges"]:
        arrow = "-->" if e["kind"] == "depends_on" else f"-. {e['kind']} .->"
        out.append(f"  {ids[e['from']]} {arrow} {ids[e['to']]}")
    for state in sorted({t["state"] for t in report["tasks"]}):
        fill = COLOURS.get(state, "#ffffff")
        out.append(f"  classDef {_css(state)} fill:{fill},stroke:#495057,color:#000")
    return out


def _css(state: str) -> str:
    return "s_" + "".join(c if c.isalnum() else "_" for c in state)


# -- DOT ----------------------------------------------------------------------------------------


def dot_lines(report: Report) -> list[str]:
    """A Graphviz `digraph`: groups as clusters holding a node of their own (edges to a group
    end there), every id quoted."""
    out = [
        f"digraph {_q(report['town'] or 'tasks')} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]

    def node(t: Mapping[str, Any], pad: str) -> str:
        text = f"{t['id']}\\n{t['state']}" + (f"\\n{t['agent']}" if t["agent"] else "")
        shape = {"group": ", shape=tab", "gate": ", shape=hexagon"}.get(t["kind"], "")
        fill = COLOURS.get(t["state"], "#ffffff")
        return f'{pad}{_q(t["id"])} [label={_q(text, raw=True)}, fillcolor="{fill}"{shape}];'

    def walk(group: str | None, depth: int) -> None:
        pad = "  " * depth
        for t in _members(report, group):
            if t["kind"] == "group":
                out.append(f"{pad}subgraph {_q('cluster_' + t['id'])} {{")
                out.append(f"{pad}  label={_q(t['id'])};")
                out.append(node(t, pad + "  "))
                walk(t["id"], depth + 1)
                out.append(f"{pad}}}")
            else:
                out.append(node(t, pad))

    walk(None, 1)
    backlog = [t for t in report["tasks"] if t["kind"] == "backlog"]
    if backlog:
        out.append('  subgraph "cluster_backlog" {')
        out.append('    label="backlog (any idle agent)"; style=dashed;')
        out.extend(node(t, "    ") for t in backlog)
        out.append("  }")
    for e in report["edges"]:
        style = "" if e["kind"] == "depends_on" else f" [style=dashed, label={_q(e['kind'])}]"
        out.append(f"  {_q(e['from'])} -> {_q(e['to'])}{style};")
    out.append("}")
    return out


def _q(text: str, raw: bool = False) -> str:
    """A DOT quoted string (`raw`: its `\\n` escapes kept)."""
    body = text.replace('"', '\\"') if raw else text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{body}"'


def render(report: Report, form: str, width: int = 100) -> str:
    if form == "json":
        return json.dumps(report, indent=2)
    lines = {"mermaid": mermaid_lines, "dot": dot_lines}.get(form)
    return "\n".join(lines(report) if lines else text_lines(report, width))
