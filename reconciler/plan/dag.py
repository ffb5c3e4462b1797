"""The task DAG as plain values for people and other programs (`tt graph`, the API's `/v1/graph`):
each task with its kind, state and agent, the groups it sits in, and typed edges.

Pure: `Desired` and the tasks' states in, a JSON-ready dict out (version 1 of the shape, below);
`graphtext` renders it. Edges run from what must finish first to what waits for it:
`depends_on` (the file's own), `parent` (a working parent runs before its child), `sequential`
(the member before, in a sequential group). A group's members are not edges: `group` names the
group a task sits in, and a group's node lists its `children`. Tasks only Redis holds (source
`cli`: `tt assign --no-save`) follow the files' own, with the edges their records keep.

    {"version": 1, "town": "demo",
     "tasks": [{"id", "kind": "work|group|backlog|gate", "state", "agent", "group", "children",
                "description", "upstream"}],            # in file order
     "edges": [{"from", "to", "kind": "depends_on|parent|sequential"}],
     "counts": {"completed": 3, ...}}
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ..spec.desired import Desired, TaskSpec
from .graph import build_graph
from .state import Source, task_spec_from_json

VERSION = 1
UNAPPLIED = "unapplied"  # in the files, not (yet) in Redis


def dag_report(
    desired: Desired, records: Mapping[str, Mapping[str, str]], town: str = ""
) -> dict[str, Any]:
    """The DAG of `desired` with each task's state from `records` (task id → its Redis record:
    `state`, `assignee`, `target`, `upstream`, `source`, `deps`, `spec`); a task without a
    record is `unapplied`; a record of source `cli` not in the files is a node too."""
    graph = build_graph(desired)
    specs: dict[str, TaskSpec] = {}
    for spec in desired.tasks:
        specs.setdefault(spec.id, spec)
    group_of = {kid: n.id for n in graph.nodes.values() for kid in n.children}
    tasks: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    for node in sorted(graph.nodes.values(), key=lambda n: n.index):
        spec, rec = specs[node.id], records.get(node.id, {})
        agent = rec.get("assignee") or spec.agent or (f"role {spec.role}" if spec.role else None)
        tasks.append(
            {
                "id": node.id,
                "kind": node.kind.value,
                "state": rec.get("state") or UNAPPLIED,
                "agent": agent or None,
                "group": group_of.get(node.id),
                "children": list(node.children),
                "description": (spec.description.splitlines() or [""])[0],
                "upstream": rec.get("upstream") or None,
            }
        )
        members = set(node.children)
        for dep in node.deps:
            if dep in members:
                continue  # a group waits for its members: shown as the group, not as edges
            edges.append({"from": dep, "to": node.id, "kind": _edge_kind(spec, dep)})
    tasks_, edges_ = _cli_only(records, specs)
    tasks += tasks_
    edges += edges_
    return {
        "version": VERSION,
        "town": town,
        "tasks": tasks,
        "edges": edges,
        "counts": dict(Counter(t["state"] for t in tasks)),
    }


def _cli_only(
    records: Mapping[str, Mapping[str, str]], in_files: Mapping[str, TaskSpec]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The tasks only Redis holds (`tt assign --no-save`, `POST /v1/tasks` with save false:
    source `cli`), after the files' own, with the edges their records keep."""
    tasks: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    for tid, rec in records.items():
        if rec.get("source") != Source.CLI.value or tid in in_files:
            continue
        spec = task_spec_from_json(rec.get("spec"))
        description = spec.description if spec is not None else ""
        tasks.append(
            {
                "id": tid,
                "kind": rec.get("kind") or "work",
                "state": rec.get("state") or UNAPPLIED,
                "agent": rec.get("assignee") or rec.get("target") or None,
                "group": None,
                "children": [],
                "description": (description.splitlines() or [""])[0],
                "upstream": rec.get("upstream") or None,
            }
        )
        try:
            deps = json.loads(rec.get("deps") or "[]")
        except ValueError:
            deps = []
        for dep in deps if isinstance(deps, list) else []:
            kind = _edge_kind(spec, str(dep)) if spec is not None else "depends_on"
            edges.append({"from": str(dep), "to": tid, "kind": kind})
    return tasks, edges


def _edge_kind(spec: TaskSpec, dep: str) -> str:
    if dep in spec.depends_on:
        return "depends_on"
    if dep == spec.parent:
        return "parent"
    return "sequential"
