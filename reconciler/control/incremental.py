"""An apply that reads and plans only the tasks an edit touched, when Redis proves it may.

Its base is the snapshot of the last clean apply (`snapshot`). Redis first walks every task
(`lua/clean.lua`, the check of the no-op fast path): their definitions must still have the
digest recorded with that snapshot and none may need a repair, so every task the edit did not
touch is as a full plan would leave it. A definition rewritten by hand, a task lost, a ready
task out of its queue: the walk fails and the caller plans in full. Otherwise `plan.diff` runs
on the touched tasks (`graph.touched_by`) with them and what they wait for read in one call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..plan.graph import Graph, graph_of, touched_by
from ..plan.state import Observed
from ..spec.desired import Desired
from ..spec.loader import Validation
from ..store.cleanrows import Row
from ..store.client import Store
from ..store.coordination import PendingCheck
from ..store.observed import observe
from ..town import TOWN_FILE
from .snapshot import Snapshot

# Past this many changed tasks a full plan costs about the same, and reads more simply.
MAX_CHANGED = 1000


@dataclass(frozen=True)
class Edit:
    """The tasks an edit may change the plan of, and those it removed."""

    touched: frozenset[str]  # tasks of the files whose node or spec may have changed
    removed: tuple[str, ...]


def edit_of(checked: Validation, base: Snapshot) -> Edit | None:
    """What the files `checked` change from those of `base`; None when it is not a small edit
    of the task list alone (town.toml, [meta] defaults or the order of tasks changed)."""
    desired, now = checked.desired, checked.reuse()  # (a check of texts has no keys yet)
    if desired is None or now is None or len(now.tables) != len(desired.tasks):
        return None
    keys = now.tables
    if dict(desired.digests).get(TOWN_FILE) != base.reuse.town_digest:
        return None  # the roster decides every task's target
    if (desired.default_agent, desired.default_role) != base.reuse.defaults:
        return None
    old_ids, new_ids = base.reuse.ids, desired.task_ids()
    if checked.reused is base.reuse:  # the check found which tables `base` holds
        changed = [new_ids[i] for i in checked.fresh]
    else:
        unchanged = set(base.reuse.tables)
        unchanged.discard(None)
        # A table's key is all of it, its id included: a key found again is that task as it was.
        changed = [tid for tid, key in zip(new_ids, keys, strict=True) if key not in unchanged]
    if len(changed) > MAX_CHANGED:
        return None
    kept = set(new_ids)
    removed = tuple(tid for tid in old_ids if tid not in kept)
    if len(changed) + len(removed) > MAX_CHANGED:
        return None
    # A task moved in the file may reorder a sequential group: planned in full.
    was = set(old_ids)
    if [t for t in new_ids if t in was] != [t for t in old_ids if t in kept]:
        return None
    at = {tid: j for j, tid in enumerate(old_ids)}
    specs = base.reuse.specs
    parents = [specs[at[tid]]["parent"] for tid in (*changed, *removed) if tid in at]
    return Edit(frozenset(touched_by(desired, changed, parents)), removed)


def observe_edit(
    store: Store, desired: Desired, base: Snapshot, edit: Edit, early: PendingCheck | None = None
) -> tuple[Observed, list[Row], Graph] | None:
    """The observed state of the edit's tasks, of every task waiting on them (a change of state
    travels to those: released, failed upstream, repaired), and of what all of them wait for;
    every task's clean row; and the graph to plan. None unless Redis is still exactly as
    `base` recorded it, or when too many tasks wait on the edit: then plan in full.
    `early`: the check, sent before the caller took the apply lock; it stands if the clean
    mark is still `base`'s now (every task writer clears it; an apply records its own)."""
    if early is not None and early.fingerprint == base.fingerprint:
        ok, recorded = store.clean_check_answer(early)
        ok = ok and store.clean_mark() == (base.fingerprint, base.digest)
    else:
        ok, _, recorded = store.check_clean_digest(base.fingerprint, record=False)
    if not ok or recorded != base.digest:
        return None
    waiting = store.waiting_on([*edit.touched, *edit.removed], MAX_CHANGED)
    if waiting is None:
        return None
    graph = graph_of(desired, {*edit.touched, *waiting})  # (ids the files lack are left out)
    wanted = {*graph.nodes, *edit.removed, *waiting}
    for node in graph.nodes.values():
        wanted.update(node.deps)
    # A task the files do not define (removed but kept with --no-prune, or of the CLI) is
    # settled on what it waits for as stored.
    stored = wanted - {*graph.nodes}
    for tid, _, _, deps, _ in base.rows if stored else ():
        if deps and tid in stored:
            wanted.update(json.loads(deps))
    observed, _ = observe(store, sorted(wanted))
    return observed, list(base.rows), graph
