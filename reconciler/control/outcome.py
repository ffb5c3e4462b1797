"""What a loop says of the town: who leads (`holder_words`), and whether every task has finished
and which failed (`outcome`, for `tt wait` / `apply --wait`). Plain values; no Redis."""

from __future__ import annotations

from ..errors import EXIT_AWAITING, EXIT_ERROR, EXIT_OK
from ..plan.state import FAILURES, TERMINAL, TaskState

# The events after which `tt wait` looks again whether every task has finished (or awaits a
# person's approval).
DONE_EVENTS = (
    "task.completed",
    "task.failed",
    "task.cancelled",
    "task.upstream_failed",
    "task.skipped",
    "task.awaiting_approval",
)
_TERMINAL = {s.value for s in TERMINAL} | {TaskState.SKIPPED.value}
_FAILURES = {s.value for s in FAILURES}


def holder_words(holder: str | None) -> str:
    """`host vm, pid 29847` from a lease holder id `vm:29847:f8caeb27`."""
    if not holder:
        return "its lease just ended"
    parts = holder.split(":")
    return f"host {parts[0]}, pid {parts[1]}" if len(parts) >= 2 else holder


def outcome(
    records: list[dict[str, str]],
) -> tuple[bool, list[dict[str, str]], list[dict[str, str]]]:
    """(all finished, failed tasks, unfinished tasks). A task upstream_failed can never run as
    things stand: it is finished, and counts as failed (with `upstream_state`: what became of
    the task it names). Skipped (its `run_if`) is finished, not failed. Unfinished: neither
    terminal nor upstream_failed."""
    state = {r["id"]: r.get("state", "") for r in records}
    finished = {*_TERMINAL, TaskState.UPSTREAM_FAILED.value}
    done = all(s in finished for s in state.values())
    failed = [
        {**r, "upstream_state": state.get(r.get("upstream", ""), "")}
        if state[r["id"]] == TaskState.UPSTREAM_FAILED.value
        else r
        for r in records
        if state[r["id"]] in _FAILURES
    ]
    unfinished = [r for r in records if state[r["id"]] not in finished]
    return done, failed, unfinished


AWAITING = TaskState.AWAITING_APPROVAL.value
# What may still move without a person (a task awaiting approval does not).
_MOVING = {s.value for s in (TaskState.READY, TaskState.RUNNING, TaskState.RETRYING)}


def awaiting_only(unfinished: list[dict[str, str]]) -> list[dict[str, str]]:
    """The tasks awaiting approval when nothing else can go on without a person: every
    unfinished task awaits approval or is blocked (behind one); else []."""
    if any(r.get("state") in _MOVING for r in unfinished):
        return []
    return [r for r in unfinished if r.get("state") == AWAITING]


def settled(
    records: list[dict[str, str]],
) -> tuple[int | None, list[dict[str, str]], list[dict[str, str]]]:
    """(the exit code of `tt wait` when it is over, else None; failed; unfinished): over when
    every task finished (1 when one failed), or when only a person's `tt approve` moves the
    rest on (`awaiting_only`: 4, or 1 when a task failed)."""
    done, failed, unfinished = outcome(records)
    if done:
        return (EXIT_ERROR if failed else EXIT_OK), failed, unfinished
    if awaiting_only(unfinished):
        return (EXIT_ERROR if failed else EXIT_AWAITING), failed, unfinished
    return None, failed, unfinished
