"""`tt status --deep` (Tinytown's): per agent, its current attempt (task, attempt number, how long
it has run), its heartbeat age, and the last lines of its current or last attempt's log (its own
log when it has run none). Reads the agent rows of `report.agents_report`, the running tasks'
records and the log folder; writes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

TAIL_LINES = 5
TAIL_BYTES = 16384  # read from a log's end: enough for the last lines of any sane log


class TaskReader(Protocol):
    def task_hash(self, task_id: str) -> dict[str, str]: ...


def deep_rows(
    store: TaskReader,
    agents: Sequence[Mapping[str, Any]],
    logs_dir: Path,
    *,
    lines: int = TAIL_LINES,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """One row per agent row: name, state, task, attempt, running_for (seconds, or None),
    heartbeat_age, log (relative to the log folder, or None) and tail (its last `lines`)."""
    now = time.time() if now is None else now
    rows = []
    for a in agents:
        name, task = str(a["name"]), a.get("task") or None
        attempt: int | None = None
        running_for: float | None = None
        if task:
            rec = store.task_hash(task)
            attempt = int(rec.get("attempt") or 0) or None
            started = _num(rec.get("started_at"))
            if rec.get("state") == "running" and started is not None:
                running_for = round(max(0.0, now - started), 1)
        log = _log_of(logs_dir / name, task, attempt)
        rows.append(
            {
                "name": name,
                "state": a.get("state"),
                "task": task,
                "attempt": attempt,
                "running_for": running_for,
                "heartbeat_age": a.get("heartbeat_age"),
                "log": None if log is None else str(log.relative_to(logs_dir)),
                "tail": [] if log is None else tail(log, lines),
            }
        )
    return rows


def _log_of(folder: Path, task: str | None, attempt: int | None) -> Path | None:
    """The current attempt's log; else the newest attempt log; else the agent's own log."""
    if task and attempt:
        current = folder / f"{task}-{attempt}.log"
        if current.is_file():
            return current
    try:
        attempts = [p for p in folder.glob("*.log") if p.name != "agent.log" and p.is_file()]
    except OSError:
        attempts = []
    if attempts:
        return max(attempts, key=lambda p: p.stat().st_mtime)
    own = folder / "agent.log"
    return own if own.is_file() else None


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` non-empty lines of `path` (decoded leniently: a log is for reading)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            data = f.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace").splitlines()
    if size > TAIL_BYTES:
        text = text[1:]  # the first line read is cut
    kept = [line for line in text if line.strip()]
    return kept[-lines:] if lines > 0 else []


def _num(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
