"""An agent's placement fields in town.toml, after the schema check: `node` (a node's name, by
the name rule `tt node run` applies), `node_labels` (a table of string values, read as sorted
pairs) and `placement` (spread | pack, only for an agent placed on nodes), and the rule that
relates them to `node` (a pinned agent selects nothing). Reports on the file's `TomlDoc`; decides no
placement (`plan/placement.py` does, in the leader's pass).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .desired import Placement
from .fields import check_name, choice, opt_str, table
from .locate import JsonPath
from .names import is_valid_name
from .tomldoc import TomlDoc


def node(doc: TomlDoc, at: JsonPath, entry: Mapping[str, Any]) -> str | None:
    """`node = "N"`: a name `tt node run --name` accepts (another one could never register)."""
    value = opt_str(entry, "node")
    if value is not None and not check_name(doc, (*at, "node"), value, "node name"):
        return None
    return value


def node_labels(
    doc: TomlDoc, at: JsonPath, entry: Mapping[str, Any]
) -> tuple[tuple[str, str], ...]:
    """`node_labels = {gpu = "1"}` as sorted pairs (a label off the name rule, a value of
    another type or with `,` or `=` the schema has reported: it is dropped)."""
    pairs = [
        (key, value)
        for key, value in table(entry, "node_labels").items()
        if is_valid_name(key) and isinstance(value, str) and "," not in value and "=" not in value
    ]
    if "node_labels" in entry and "node" in entry:
        doc.report(
            (*at, "node_labels"),
            "node and node_labels together: a pinned agent runs on its node, whatever its labels",
            "keep node (pinned) or node_labels (the leader chooses a matching node), not both",
        )
        return ()
    return tuple(sorted(pairs))


def placement(
    doc: TomlDoc, at: JsonPath, entry: Mapping[str, Any], local_agents: bool
) -> Placement:
    """`placement`: spread (the default) or pack; with `node` it would choose among one node,
    and on an agent of the controller's host (neither `node` nor `node_labels`, `[town]
    local_agents` true) among none: refused in both (a value off the enum the schema has
    reported)."""
    value = opt_str(entry, "placement")
    if value is not None and "node" in entry:
        doc.report(
            (*at, "placement"),
            "placement with node: a pinned agent's replicas all run on its node",
            "drop placement, or replace node with node_labels",
        )
    elif value is not None and local_agents and "node_labels" not in entry:
        doc.report(
            (*at, "placement"),
            "placement on an agent placed on no node: it runs on the controller's host",
            "add node_labels, set [town] local_agents = false, or drop placement",
        )
    return choice(Placement, value, Placement.SPREAD)
