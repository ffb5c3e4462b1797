"""Read-outs of a town for people and scripts: `tt status` and `tt list` (stable JSON shapes).

Reads Redis through the store and the roster through the desired state; writes nothing.
The JSON shape of `status` is documented in README.md ("Status JSON") and must stay stable.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..agents.models import OVERRIDE_ENV
from ..plan.health import Health, town_health
from ..plan.nodes import unschedulable
from ..plan.placement import where
from ..plan.state import TaskState
from ..spec.desired import Desired
from ..store.client import Store
from ..town import TownPaths
from .drift import drift_count
from .limits import limits_report
from .syncstatus import attempt_text, sync_report

STATES = [s.value for s in TaskState]
AWAITING = TaskState.AWAITING_APPROVAL.value


def _num(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def running_model(
    configured: str | None, rec: dict[str, str], live: bool, override: str | None
) -> tuple[str | None, str | None]:
    """(the model that runs, the override when it differs from town.toml's `configured`). A live
    agent runs what its process registered at start (it read TT_MODEL_OVERRIDE then); one that
    is not running would run this process's override, else its own model."""
    runs = rec.get("model") if live and rec.get("model") else (override or configured)
    return runs, runs if runs and configured and runs != configured else None


def agents_report(
    store: Store,
    desired: Desired | None,
    now: float | None = None,
    override: str | None = None,
) -> list[dict[str, Any]]:
    """One row per agent instance. `override`: the model every agent started by this process
    would run (`--model`); default TT_MODEL_OVERRIDE."""
    now = time.time() if now is None else now
    override = override or os.environ.get(OVERRIDE_ENV) or None
    records = store.agent_records()
    beats = store.heartbeat_alive(list(records))
    nodes = store.node_records()
    placed = store.placement()
    at = where(desired, placed) if desired is not None else {}
    roster: dict[str, dict[str, Any]] = {}
    if desired is not None:
        for a in desired.agents:
            for name in a.instances():
                roster[name] = {
                    "model": a.model,
                    "role": a.role,
                    "suspended": a.suspended,
                    "node": at.get(name) or None,
                    "nowhere": at.get(name, "") is None and not a.suspended,
                }
    rows = []
    for name in sorted(set(records) | set(roster)):
        rec = records.get(name, {})
        spec = roster.get(name, {})
        beat = _num(rec.get("heartbeat_at"))
        state = rec.get("state") or "stopped"
        reason = rec.get("reason") or None
        problem = unschedulable(spec.get("node"), nodes)
        if spec.get("nowhere"):  # the leader found no node for it (slots, labels, none ready)
            problem = placed.unschedulable.get(name) or "not placed yet"
        if problem and not beats.get(name):
            # Placed on a node that never registered, or is dead, stopped or draining, or on
            # none: no process runs it, and none will until a node serves (`tt node run`).
            state, reason = "unschedulable", problem
        elif spec.get("suspended"):
            state = "suspended" if state in ("stopped", "") else state
        elif rec and not beats.get(name) and state not in ("stopped", "quarantined", "backoff"):
            state = "dead" if rec.get("pid") and state != "starting" else state
        configured = spec.get("model") or rec.get("configured_model") or rec.get("model")
        runs, overridden = running_model(configured, rec, bool(beats.get(name)), override)
        rows.append(
            {
                "name": name,
                "model": runs,
                "configured_model": configured,
                "model_override": overridden,
                "role": spec.get("role"),
                "state": state,
                "pid": int(rec["pid"]) if rec.get("pid", "").isdigit() else None,
                "host": rec.get("host"),
                # The node it is placed on (None: the controller's host), else where it ran.
                "node": spec.get("node") if name in roster else rec.get("node") or None,
                "task": rec.get("task") or None,
                "heartbeat_age": None if beat is None else round(now - beat, 1),
                "restarts": int(rec.get("restarts", "0") or 0),
                "in_roster": name in roster,
                "reason": reason,
            }
        )
    return rows


def tasks_report(store: Store, git: bool = False) -> list[dict[str, Any]]:
    """One row per task in file order. `git` (`[git]` is on): `branch`, `commit` (its head),
    `merged_commit`, `worktree` (null once removed) from the task's record, and `merging`
    ({position: 1-based or null, waiting: the reason or null}) for a running task whose commit
    is on its way into base; all null otherwise. The git fields come in the same read as the
    rest (one round trip per batch); the merge queue is read once, only when a task merges."""
    rows = []
    for rec in store.task_records():
        attempt = int(rec.get("attempt", "0") or 0)
        rows.append(
            {
                "id": rec.get("id"),
                "state": rec.get("state"),
                "agent": rec.get("assignee") or None,
                "target": rec.get("target") or None,
                "kind": rec.get("kind"),
                "source": rec.get("source"),
                "attempts": attempt,
                "created_at": _num(rec.get("created_at")),
                "started_at": _num(rec.get("started_at")),
                "finished_at": _num(rec.get("finished_at")),
                "next_attempt_at": _num(rec.get("next_attempt_at")),
                "deps_left": int(rec.get("deps_left", "0") or 0),
                "upstream": rec.get("upstream") or None,
                # held back: a task whose `touches` overlap its own runs or goes first, or
                # "budget" (retrying: its own max_cost_usd is reached; see `limits_report`)
                "waiting_for": (rec.get("waiting_for") or None)
                if rec.get("state") in ("ready", "retrying")
                else None,
                "result": rec.get("result") or None,
                "error": rec.get("error") or None,
                "approval": approval_cells(rec),
                **_git_cells(rec, git),
            }
        )
    if git and any(r["merging"] for r in rows):
        queue = {tid: n for n, tid in enumerate(store.merge_queue(), 1)}
        for r in rows:
            if r["merging"]:
                r["merging"]["position"] = queue.get(r["id"])
    return rows


def approval_cells(rec: dict[str, str]) -> dict[str, Any] | None:
    """A task with `approve` (or a gate): when it began to await approval (null unless it
    does), who approved it, when and with what comment, who rejected it last, when and why
    (`approve.lua`, `reject.lua`); null for a task without approval."""
    if rec.get("approve") != "1" and rec.get("kind") != "gate":
        return None
    awaiting = rec.get("state") == TaskState.AWAITING_APPROVAL.value
    return {
        "awaiting_since": _num(rec.get("awaiting_since")) if awaiting else None,
        "approved_by": rec.get("approved_by") or None,
        "approved_at": _num(rec.get("approved_at")),
        "comment": rec.get("approval_comment") or None,
        "rejected_by": rec.get("rejected_by") or None,
        "rejected_at": _num(rec.get("rejected_at")),
        "rejection": rec.get("rejection") or None,
    }


def _git_cells(rec: dict[str, str], git: bool) -> dict[str, Any]:
    if not git:
        return dict.fromkeys(("branch", "commit", "merged_commit", "worktree", "merging"))
    tree = rec.get("git_tree") or None
    stage = rec.get("git_stage")
    merging = rec.get("state") == "running" and stage in ("committed", "queued", "waiting")
    return {
        "branch": rec.get("git_branch") or None,
        "commit": rec.get("git_head") or None,
        "merged_commit": rec.get("git_merged") or None,
        "worktree": tree if tree and os.path.isdir(tree) else None,
        "merging": {
            "position": None,
            "waiting": (rec.get("git_note") or "") if stage == "waiting" else None,
        }
        if merging
        else None,
    }


def status_report(
    store: Store, desired: Desired | None, paths: TownPaths | None = None
) -> dict[str, Any]:
    """`tt status`; with the files invalid (`desired` None), git fields as the records hold.
    With the town's `paths`: whether its files are those applied (`syncstatus`), and whether
    the newest attempt failed after the applied revision (which degrades the health)."""
    sync = sync_report(store, paths) if paths is not None else {}
    tasks = tasks_report(store, git=desired is None or desired.git is not None)
    counts = Counter(t["state"] for t in tasks)
    agents = agents_report(store, desired)
    suspended, failed = store.is_suspended(), newest_failed(store)
    health = town_health(
        agents, counts, suspended=suspended, newest_invalid=failed, fetch_failing=failing(store)
    )
    out: dict[str, Any] = {
        "town": store.town,
        "host": socket.gethostname(),
        **sync,
        "agents": agents,
        "tasks": tasks,
        "counts": {s: counts.get(s, 0) for s in STATES} | {"total": len(tasks)},
        "awaiting_approval": [t["id"] for t in tasks if t["state"] == AWAITING],
        "health": health.as_json(),
        **limits_report(store, desired, tasks),
    }
    drift = drift_count(store, desired)  # only under [town] self_heal = false: left, not healed
    if drift is not None:
        out["drift"] = drift
    return out


def health_report(
    store: Store,
    desired: Desired | None,
    agents: list[dict[str, Any]] | None = None,
    counts: Mapping[str, int] | None = None,
) -> Health:
    """The town's health without reading every task (their states are counted in Redis):
    `tt list` and the reconcile loop. `agents`: the rows of `agents_report`, `counts` the
    tasks by state, if read already."""
    rows = agents_report(store, desired) if agents is None else agents
    suspended, failed, fetch = store.is_suspended(), newest_failed(store), failing(store)
    counts = store.state_counts() if counts is None else counts
    return town_health(
        rows, counts, suspended=suspended, newest_invalid=failed, fetch_failing=fetch
    )


def newest_failed(store: Store) -> bool:
    """Whether the newest attempt to apply the files (the revision records) failed after the
    revision applied last: invalid files, a refused plan (`syncstatus.attempt_text`)."""
    applied, attempted, _ = store.revisions()
    return attempt_text({"revision": applied, "attempted_revision": attempted}) is not None


def failing(store: Store) -> str | None:
    """The branch the town follows while fetching it fails (`control/follow.py`), else None."""
    follow = store.revisions()[2]
    return follow if follow and (store.follow_state() or {}).get("error") else None


def deleted_report(store: Store, logs: Path, keep_deleted: float) -> list[dict[str, Any]]:
    """One row per tombstone (a task pruned from the files, kept `keep_deleted`), oldest first:
    its state, attempts, result and error as they were, when it was pruned, until when it is
    kept, and the logs of its attempts that are still on disk (`tt status --deleted`)."""
    rows = []
    for rec in store.tombstone_records():
        deleted_at = _num(rec.get("deleted_at")) or 0.0
        paths = []
        for a in rec["history"]:
            agent, attempt = a.get("agent"), a.get("attempt")
            log = logs / str(agent) / f"{rec['id']}-{attempt}.log"
            if agent and attempt is not None and log.is_file():
                paths.append(str(log))
        rows.append(
            {
                "id": rec["id"],
                "state": rec.get("state") or "blocked",
                "agent": rec.get("assignee") or None,
                "attempts": int(rec.get("attempt", "0") or 0),
                "result": rec.get("result") or None,
                "error": rec.get("error") or None,
                "finished_at": _num(rec.get("finished_at")),
                "deleted_at": deleted_at,
                "keep_until": deleted_at + keep_deleted,
                "logs": paths,
            }
        )
    return rows
