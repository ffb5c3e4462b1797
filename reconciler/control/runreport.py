"""What a run did, task by task, for CI reports (`tt apply --wait --junit`, the GitHub step
summary): each task's state, agent, duration, cost and attempts, from the task records and
their attempt ledger (`agents/ledger.py`) in Redis.

Reads only; plain dicts out, rendered by the CLI (JUnit XML, Markdown). A number a CLI did
not tell stays None, never estimated (as in `tt show`).
"""

from __future__ import annotations

import time
from typing import Any

from ..store.client import Store
from .workreport import ledger_fields

ERROR_TAIL = 4000  # characters of a task's error kept in a report
REJECTED = "rejected: "  # how lua/reject.lua words a rejection in the task's error


def _num(value: object) -> float | None:
    try:
        return float(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _attempt(a: dict[str, Any]) -> dict[str, Any]:
    ledger = ledger_fields(a)
    started, finished = _num(a.get("started_at")), _num(a.get("finished_at"))
    duration = _num(ledger["duration_s"])
    if duration is None and started is not None and finished is not None:
        duration = max(0.0, finished - started)
    return {
        "attempt": a.get("attempt"),
        "agent": a.get("agent") or None,
        "outcome": a.get("outcome") or None,
        "exit_class": ledger["exit_class"],
        "duration_s": duration,
        "cost_usd": _num(ledger["cost_usd"]),
        "error": (str(a.get("error") or "") or None),
    }


def rejected(rec: dict[str, str]) -> bool:
    """The task failed by a person's `tt reject` (reject.lua: its retries were spent, or a
    gate): its error is still the rejection's, which a later attempt's failure would replace."""
    reason = rec.get("rejection") or ""
    return rec.get("state") == "failed" and bool(reason) and rec.get("error") == REJECTED + reason


def run_report(store: Store, now: float | None = None) -> dict[str, Any]:
    """The town's tasks in file order. Keys (stable; only ever added to):

    `town`, `generated_at` (unix seconds), `tasks`: one per task: `id`, `state`, `kind`,
    `agent` (who ran it last, else its target), `upstream`, `run_if`, `rejected` (it failed
    because a person rejected it: `tt reject` of a gate or of a task out of retries), `error`
    (its tail), `duration_s`
    (from its first attempt's start to its end, or to now while it runs; None when it never
    started), `cost_usd` (the sum over the attempts that told one; None when none did), and
    `attempts` (`attempt`, `agent`, `outcome`, `exit_class`, `duration_s`, `cost_usd`,
    `error`), oldest first.
    """
    now = time.time() if now is None else now
    tasks = []
    records = store.task_records()
    histories = store.attempt_histories([r["id"] for r in records])
    for rec in records:
        history = [dict(a) for a in histories.get(rec["id"], [])]
        attempts = [_attempt(a) for a in history]
        started = [s for s in (_num(a.get("started_at")) for a in history) if s is not None]
        start = min(started) if started else _num(rec.get("started_at"))
        end = _num(rec.get("finished_at")) if rec.get("state") != "running" else now
        costs = [a["cost_usd"] for a in attempts if a["cost_usd"] is not None]
        tasks.append(
            {
                "id": rec["id"],
                "state": rec.get("state") or "blocked",
                "kind": rec.get("kind") or "work",
                "agent": rec.get("assignee") or rec.get("target") or None,
                "upstream": rec.get("upstream") or None,
                "run_if": rec.get("run_if") or "success",
                "rejected": rejected(rec),
                "error": (rec.get("error") or "")[-ERROR_TAIL:] or None,
                "duration_s": None if start is None or end is None else max(0.0, end - start),
                "cost_usd": sum(costs) if costs else None,
                "attempts": attempts,
            }
        )
    return {"town": store.town, "generated_at": now, "tasks": tasks}
