"""When a waiting task may run, by how its dependencies are and its `run_if`: the one rule that
lua/ready.lua's `readiness` mirrors (tests hold the two to each other). Pure: states in, a state
out; a dependency that does not exist (pruned) is `None`.
"""

from __future__ import annotations

from collections.abc import Iterable

from .state import FAILED_UPSTREAM, TaskState

# How a dependency may have ended: it will not change without a person's word or a file edit.
ENDED = frozenset(
    {
        TaskState.COMPLETED,
        TaskState.FAILED,
        TaskState.CANCELLED,
        TaskState.UPSTREAM_FAILED,
        TaskState.SKIPPED,
    }
)


def readiness(run_if: str, deps: Iterable[TaskState | None], group: bool = False) -> TaskState:
    """What a waiting task is, its dependencies being in `deps`: READY (the caller completes a
    group and makes a gate await approval), BLOCKED, UPSTREAM_FAILED or SKIPPED.

    success (the default): ready once all completed; upstream_failed as soon as one failed, was
      cancelled or cannot run (upstream_failed, pruned); skipped when all ended and one of
      them was skipped (what needs a task that did not run does not run: GitHub Actions' rule).
    failure: once all ended, ready if one failed (as above), else skipped.
    always: ready once all ended, however.
    A group (`group`, always run_if success) ends with its members: a skipped one counts as
    done (a failure handler not needed), so it completes once all ended and none failed, and
    is skipped only when every one was skipped.
    """
    failed = opened = skipped = done = False
    for s in deps:
        if s is None or s in FAILED_UPSTREAM:
            failed = True
        elif s not in ENDED:
            opened = True
        elif s is TaskState.SKIPPED:
            skipped = True
        else:
            done = True
    if run_if == "failure":
        return TaskState.BLOCKED if opened else TaskState.READY if failed else TaskState.SKIPPED
    if run_if == "always":
        return TaskState.BLOCKED if opened else TaskState.READY
    if failed:
        return TaskState.UPSTREAM_FAILED
    if opened:
        return TaskState.BLOCKED
    return TaskState.SKIPPED if skipped and not (group and done) else TaskState.READY
