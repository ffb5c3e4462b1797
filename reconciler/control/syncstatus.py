"""Whether the files on disk are those applied: `tt status`'s first line and its `sync` keys.

Reads the revisions `revision.py` recorded and the files' digests now; runs no git and writes
nothing. The line is built from parts (`line_parts`) that other read-outs (health) add to.
"""

from __future__ import annotations

import time
from typing import Any

from ..store.client import Store
from ..town import TownPaths
from .revision import FILES, Revision, file_digests

SEPARATOR = " · "


def sync_report(store: Store, paths: TownPaths) -> dict[str, Any]:
    """`sync` (synced, out_of_sync, unknown), the files changed since the applied revision,
    `revision` and `attempted_revision` as recorded (null before the first)."""
    applied, attempted, follow = store.revisions()
    if follow:  # the branch is the truth: the local files are not what is compared
        return {**followed(store, follow, applied), "attempted_revision": attempted}
    changed: list[str] = []
    if applied is None:
        sync = "unknown"
    else:
        now = file_digests(paths)
        recorded = applied.get("digests") or {}
        changed = [name for name in FILES if recorded.get(name) != now[name]]
        sync = "out_of_sync" if changed else "synced"
    return {
        "sync": sync,
        "out_of_sync_files": changed,
        "revision": applied,
        "attempted_revision": attempted,
        "follow": None,
    }


def followed(store: Store, branch: str, applied: Revision | None) -> dict[str, Any]:
    """`sync_report` of a town that follows `branch`: synced when the applied revision is the
    branch's commit as last fetched."""
    state = store.follow_state() or {}
    head = state.get("head")
    sync = "unknown" if applied is None or not head else "out_of_sync"
    if applied is not None and head and applied.get("sha") == head:
        sync = "synced"
    follow = {"branch": branch, "head": head, "checked_at": state.get("checked_at")}
    follow["error"] = state.get("error")
    return {"sync": sync, "out_of_sync_files": [], "revision": applied, "follow": follow}


def ago(then: float | None, now: float | None = None) -> str:
    if then is None:
        return "at an unknown time"
    seconds = max(0.0, (time.time() if now is None else now) - then)
    if seconds < 5:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def _where(rev: Revision) -> str:
    """`3f9c2ab (main)`, `3f9c2ab` (no branch known)."""
    branch = rev.get("branch")
    return f"{rev.get('short')}{f' ({branch})' if branch else ''}"


def sync_text(report: dict[str, Any], now: float | None = None) -> str:
    """The sync part of the status line."""
    rev: Revision | None = report.get("revision")
    if report.get("follow"):
        return _follow_text(report, rev, now)
    if rev is None:
        return "sync unknown: no applied revision recorded yet (tt apply records one)"
    when = ago(rev.get("at"), now)
    changed = report.get("out_of_sync_files") or []
    if changed:
        files = " and ".join(changed)
        if rev.get("sha") and not rev.get("dirty"):
            since = str(rev["short"])
        elif rev.get("sha"):
            since = f"the edits applied on top of {rev['short']} {when}"
        else:
            since = f"applied {when}"
        return f"OutOfSync: {files} changed since {since}"
    if rev.get("sha") and rev.get("dirty"):
        return f"applied uncommitted edits on top of {_where(rev)} {when}"
    if rev.get("sha"):
        return f"synced to {_where(rev)} {when}"
    return f"synced (files unchanged since applied {when})"


def _follow_text(report: dict[str, Any], rev: Revision | None, now: float | None) -> str:
    follow = report["follow"]
    branch, head = follow["branch"], follow.get("head")
    note = f"following {branch} (edits of the local files are not applied)"
    if follow.get("error"):
        note += f"{SEPARATOR}fetch failing: {follow['error']}"
    if rev is None or not rev.get("sha"):
        what = f"{branch} is at {head[:7]}" if head else f"{branch} not fetched yet"
        return f"sync unknown: no commit of {branch} applied yet ({what}){SEPARATOR}{note}"
    if report.get("sync") == "synced":
        return f"synced to {rev['short']} ({branch}) {ago(rev.get('at'), now)}{SEPARATOR}{note}"
    where = f"{branch} is at {head[:7]}" if head else f"{branch} not fetched yet"
    return f"OutOfSync: {where}, applied {_where(rev)}{SEPARATOR}{note}"


def line_parts(report: dict[str, Any], now: float | None = None) -> list[str]:
    """The status line's parts, joined with `SEPARATOR`: the sync, then what others append."""
    return [sync_text(report, now)]


def attempt_text(report: dict[str, Any], now: float | None = None) -> str | None:
    """A line on the newest attempt when it failed after the applied revision, else None."""
    tried: Revision | None = report.get("attempted_revision")
    rev: Revision | None = report.get("revision")
    if not tried or tried.get("result", "ok") == "ok":
        return None
    if rev is not None and float(rev.get("at") or 0) > float(tried.get("at") or 0):
        return None
    problems = tried.get("problems") or []
    first = str(problems[0]).splitlines()[0] if problems else ""
    what = f"{tried.get('by', '?')}, {ago(tried.get('at'), now)}"
    return f"newest attempt ({what}) was {tried['result']}: {first}".rstrip(": ")
