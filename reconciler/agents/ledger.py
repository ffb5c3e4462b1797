"""The ledger entry of one attempt: what ran (agent, model, node), how it ended (exit code and
class), how long, and what the CLI told (native session id, tokens, cost, turns, result, error).

Built from plain values by `entry`; the worker sends it with the attempt's report (the store
adds it to the task's attempt history) and mirrors it as JSON beside the attempt's log
(`TASK-ATTEMPT.json`, 0600). It decides nothing: the verdict is made before.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .exitclass import ExitClass, classify_error
from .parsers.base import NO_TOKENS, Tokens

RESULT_CHARS = 4000  # of the result kept in the record (the task keeps its whole result)
ERROR_CHARS = 4000


@dataclass(frozen=True)
class RunFacts:
    """What one run of a model's process showed: its exit code and duration, and what its
    CLI's JSON said (None where the CLI said nothing, or in text mode)."""

    exit_code: int | None = None
    duration_s: float | None = None
    session_id: str | None = None
    tokens: Tokens = NO_TOKENS
    cost_usd: float | None = None
    turns: int | None = None
    # The session it went on with (a retry that resumed), and one its CLI refused (it then
    # ran fresh, in the same attempt).
    resumed_from: str | None = None
    resume_rejected: str | None = None
    workdir: str | None = None  # the folder it ran in (a resume must run in the same one)


def exit_class_of(ok: bool, text: str, given: ExitClass | None) -> ExitClass:
    """The class of an attempt: the one its run was given, else from its error text."""
    if given is not None:
        return given
    return ExitClass.SUCCESS if ok else classify_error(text)


def entry(
    *,
    task_id: str,
    attempt: int,
    agent: str,
    model: str,
    node: str,
    ok: bool,
    text: str,
    exit_class: ExitClass,
    facts: RunFacts | None,
    started_at: float,
    finished_at: float,
) -> dict[str, Any]:
    """The attempt's record, as JSON-ready values (keys only ever added to)."""
    f = facts or RunFacts()
    return {
        "task": task_id,
        "attempt": attempt,
        "agent": agent,
        "model": model,
        "node": node,
        "exit_code": f.exit_code,
        "exit_class": exit_class.value,
        "duration_s": f.duration_s,
        "session_id": f.session_id,
        "tokens": f.tokens.as_dict(),
        "cost_usd": f.cost_usd,
        "turns": f.turns,
        "resumed_from": f.resumed_from,
        "resume_rejected": f.resume_rejected,
        "workdir": f.workdir,
        "result": text[-RESULT_CHARS:] if ok else None,
        "error": None if ok else text[-ERROR_CHARS:],
        "started_at": started_at,
        "finished_at": finished_at,
    }


# What the store's own record already holds (its outcome, error and times, in its own clock).
STORE_OWNS = ("started_at", "finished_at", "error", "task")


def detail(record: dict[str, Any]) -> str:
    """The record as sent with the attempt's report: what the store does not write itself."""
    return json.dumps({k: v for k, v in record.items() if k not in STORE_OWNS})


def write_beside(log_path: Path, record: dict[str, Any]) -> Path | None:
    """Mirror the record as `TASK-ATTEMPT.json` beside the attempt's log, private as the log
    (0600). None when it cannot be written: the record in Redis still holds it."""
    path = log_path.with_suffix(".json")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        with open(os.open(path, flags, 0o600), "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
    except OSError:
        return None
    return path


class Ended(Protocol):
    """How an attempt ended (`prompt.Verdict`)."""

    @property
    def ok(self) -> bool: ...
    @property
    def text(self) -> str: ...
    @property
    def exit_class(self) -> ExitClass | None: ...
    @property
    def facts(self) -> RunFacts | None: ...


def settle(
    verdict: Ended,
    log_dir: Path,
    started_at: float,
    task_id: str,
    attempt: int,
    agent: str,
    model: str,
    node: str | None,
) -> str:
    """The attempt's record (`node` None: this host), mirrored beside its log in `log_dir`;
    returns what its report carries."""
    record = entry(
        task_id=task_id,
        attempt=attempt,
        agent=agent,
        model=model,
        node=node or socket.gethostname(),
        ok=verdict.ok,
        text=verdict.text,
        exit_class=exit_class_of(verdict.ok, verdict.text, verdict.exit_class),
        facts=verdict.facts,
        started_at=started_at,
        finished_at=time.time(),
    )
    write_beside(log_dir / f"{task_id}-{attempt}.log", record)
    return detail(record)
