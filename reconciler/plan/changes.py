"""Which fields of a task changed between what Redis holds (`ObservedTask`) and what the files
ask for (`TaskSpec` and its graph `Node`): the names a plan's update names. Pure.
"""

from __future__ import annotations

from operator import attrgetter

from ..spec.desired import WORK_FIELDS, TaskSpec
from .graph import Node
from .state import ObservedTask, Source, task_spec_from_json

# The work-defining fields (`TaskSpec.as_dict`'s, those only written when set included), so a
# field added there is compared too.
TASK_FIELDS = WORK_FIELDS
_task_values = attrgetter(*TASK_FIELDS)


def changed_task_fields(seen: ObservedTask, spec: TaskSpec, node: Node) -> tuple[str, ...]:
    """Spec fields that differ, then derived ones (`kind`, `target`, `deps`: a new default agent
    moves tasks whose spec did not change) and `source`. Specs are told apart by their hash;
    only a changed one's stored spec is decoded, to name the fields (`spec` when it cannot be
    decoded, or was written by a version that hashed it differently)."""
    out: list[str] = []
    if seen.spec_hash != spec.spec_hash():
        stored = seen.spec if seen.spec is not None else task_spec_from_json(seen.spec_json)
        old = _task_values(stored) if stored is not None else None
        new = _task_values(spec)
        fields = [f for f, a, b in zip(TASK_FIELDS, old or new, new, strict=True) if a != b]
        out.extend(fields or ["spec"])
    if seen.kind is not node.kind:
        out.append("kind")
    if seen.target != node.target:
        out.append("target")
    if (seen.deps != node.deps and set(seen.deps) != set(node.deps)) or seen.after != node.after:
        out.append("deps")
    if seen.source is not Source.FILE:
        out.append("source")
    return tuple(out)
