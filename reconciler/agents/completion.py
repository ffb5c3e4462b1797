"""`tt task complete ID`: a model (inside its agent) or a person completes the current attempt
of a task, through the store's fenced scripts. It runs no model and claims nothing.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import TtError


class CompletionStore(Protocol):
    def current_token(self, task_id: str) -> str | None: ...
    def complete(self, task_id: str, token: str, result: str) -> bool: ...
    def note_git(self, task_id: str, token: str, **fields: str) -> bool: ...


def complete_current(
    store: CompletionStore, task_id: str, result: str, token: str | None, deferred: bool = False
) -> bool:
    """`tt task complete ID`: a model (inside its agent: TT_ATTEMPT_TOKEN) or a person completes
    the current attempt; the model process's later exit then changes nothing. `deferred` ([git]
    work products, from inside the agent): the result is kept for the attempt, which completes
    once its work is committed and merged (a task completed before would hand its dependents a
    base without its code)."""
    current = store.current_token(task_id)
    if token is not None and token != current:
        # A late result of an older attempt: rejected by the store, which writes `task.stale`
        # as for a stale exit, so every rejected result leaves the same trace.
        store.complete(task_id, token, result)
        raise TtError(f"attempt token does not match the current attempt of '{task_id}'")
    if current is None:
        raise TtError(f"task '{task_id}' is not running", hint="tt status shows its state")
    if deferred and token is not None:
        return store.note_git(task_id, token, git_told=result or " ")
    return store.complete(task_id, current, result)
