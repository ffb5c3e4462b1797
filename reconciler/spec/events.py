"""The event stream's vocabulary: every event type tt writes (what a `[[notify]]` rule's `on` may
name) and an event's version-1 JSON form (`tt events -o json`, a webhook's body). Pure: no I/O.
tests/spec/test_notifycheck.py holds the list true to the types the code and Lua scripts write.
"""

from __future__ import annotations

from typing import Any

TOWN_COMPLETED = "town.completed"  # every task of the applied files reached a final state
NOTIFY_FAILED = "notify.failed"  # a notification was not delivered (never a rule's `on`)

EVENT_TYPES: tuple[str, ...] = (
    # tasks
    "tasks.created",
    "task.ready",
    "task.claimed",
    "task.completed",
    "task.retrying",
    "task.failed",
    "task.cancelled",
    "task.upstream_failed",
    "task.skipped",
    "task.deferred",
    "task.deferrals_capped",
    "task.killed",
    "task.handed_back",
    "task.held",
    "task.rerun",
    "task.deleted",
    "task.restored",
    "task.stale",
    "tasks.purged",
    # approvals (`approve = true`)
    "task.awaiting_approval",
    "task.approved",
    "task.rejected",
    # agents and mail
    "agent.spawned",
    "agent.started",
    "agent.exited",
    "agent.stopped",
    "agent.restarted",
    "agent.env_missing",
    "agent.placed",  # the leader placed it on a node (`from`: the node it left)
    "agent.unschedulable",  # the leader found no node for it (`reason`)
    # nodes (`tt node run`, `tt node drain`)
    "node.registered",
    "node.draining",
    "node.stopped",
    "message.sent",
    "message.read",
    "message.answered",
    # the town
    TOWN_COMPLETED,
    "town.adopted",
    "town.down",
    "town.suspended",
    "town.resumed",
    "town.health",
    "town.drift",
    "town.refresh",
    # budgets and providers' limits
    "budget.exhausted",
    "budget.resumed",
    "provider.paused",
    "provider.pause_capped",
    "provider.resumed",
    # applies, revisions, the loop
    "apply",
    "apply.guarded",
    "apply.lock_recovered",
    "config.invalid",
    "revision.invalid",
    "revision.refused",
    "follow.fetch_failed",
    "leader.acquired",
    "leader.fenced",
    "loop.error",
    # work products ([git])
    "git.committed",
    "git.unchanged",
    "git.queued",
    "git.waiting",
    "git.merged",
    "git.conflict",
    "git.check_failed",
    "git.merge_failed",
    "git.outside_touches",
    "git.pushed",
    "git.push_failed",
)

# Types whose events name neither a task nor an agent, and those that name an agent but no task
# (a rule's `tasks` filter lets none of either through, its `agents` filter none of the first).
NO_AGENT = frozenset(
    {
        *(t for t in EVENT_TYPES if t.startswith(("town.", "budget.", "provider.", "leader."))),
        "apply.lock_recovered",
        "config.invalid",
        "follow.fetch_failed",
        "loop.error",
        "tasks.purged",
    }
)
NO_TASK = NO_AGENT | {t for t in EVENT_TYPES if t.startswith("agent.")}
NO_TASK |= {"message.read", "message.answered"}

# Version 1 of the event format for scripts: fields are only ever added. Stored as strings in the
# Redis stream; typed here by name.
COUNTS = frozenset({"count", "ready", "attempt", "pid", "epoch", "generation", "exit_code"})
FLAGS = frozenset({"urgent", "permanent"})
LISTS = {"tasks": " ", "to": ","}
NUMBERS = frozenset({"seconds"})  # a duration (the `apply` event's)


def is_time(key: str) -> bool:
    """`ts` and every `…_at` / `…_until` field hold unix seconds."""
    return key == "ts" or key.endswith(("_at", "_until"))


def event_json(event_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """The event for `-o json` (version 1): `ts` and every `…_at` field an epoch number, counts
    (`count`, `ready`, `attempt`, `pid`, `epoch`, `generation`, `exit_code`) integers, `seconds`
    a number, `urgent` and `permanent` booleans, `tasks` and `to` arrays of names; every other
    field a string."""
    out: dict[str, Any] = {"id": event_id}
    for key, value in fields.items():
        out[key] = _typed(key, value)
    return out


def _typed(key: str, value: str) -> Any:
    if is_time(key):
        seconds = seconds_of(value)
        return value if seconds is None else seconds
    if key in COUNTS:
        try:
            return int(value)
        except ValueError:
            return value  # written by a later tt that changed its meaning: kept as stored
    if key in NUMBERS:
        number = seconds_of(value)
        return value if number is None else number
    if key in FLAGS and value in ("0", "1"):
        return value == "1"
    if key in LISTS:
        return [v for v in value.split(LISTS[key]) if v]
    return value


def seconds_of(value: str) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
