"""`tt apply --wait` after its apply: the reconcile loop until every task is terminal, then, under
`[git]`, the commits this wait merged into base (`merged: TASK SHA7 SUBJECT`, in the order the
tasks completed; text output only: with `-o json` stdout holds the loop's JSON alone); then the
CI reports: a JUnit XML file (`--junit FILE`) and, where `$GITHUB_STEP_SUMMARY` names a file, a
Markdown summary appended to it (`cireport.py`)."""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .common import echo

if TYPE_CHECKING:
    from reconciler.control.session import Session


@dataclass(frozen=True)
class Mark:
    event: str  # the newest event before the apply: the progress shows what follows
    since: float  # unix seconds: a task completed from then on was completed by this wait


def wait_mark(s: Session) -> Mark:
    """Where the wait starts: before the apply writes, so that a claim made at once (by an
    agent already running) is shown too. Checked first: invalid files start nothing."""
    s.validate()
    return Mark(s.store.last_event_id(), time.time())


def wait_and_list(
    town_dir: str | None,
    timeout: str | None,
    model: str | None,
    output: str,
    mark: Mark,
    junit: str | None = None,
) -> int:
    from .cmd_loop import wait_for

    gc.enable()  # a loop that may run for hours
    code = wait_for(town_dir, timeout, model, output, mark.event)
    if output != "json":
        list_merged(town_dir, mark.since)
    write_reports(town_dir, code, junit, os.environ.get(STEP_SUMMARY) or None, output)
    return code


STEP_SUMMARY = "GITHUB_STEP_SUMMARY"


def write_reports(
    town_dir: str | None, code: int, junit: str | None, summary: str | None, output: str
) -> None:
    """The JUnit file (written whole) and the step summary (appended), when asked for; one that
    cannot be written is an error on stderr, not the exit code (the run's stands)."""
    if junit is None and summary is None:
        return
    from reconciler.control.runreport import run_report
    from reconciler.control.session import Session

    from .cireport import junit_xml, step_summary

    s = Session.find(town_dir)
    try:
        report = run_report(s.store)
    finally:
        s.close()
    if junit is not None and _write(junit, "w", junit_xml(report), "the JUnit report"):
        echo(f"wrote {junit}", err=output == "json")
    if summary is not None:
        _write(summary, "a", step_summary(report, code) + "\n", f"${STEP_SUMMARY}")


def _write(path: str, mode: str, text: str, what: str) -> bool:
    """Write (or append) `text`; a file that cannot be written is told on stderr and the run's
    exit code stands: the result of an hour of agents' work is not lost to a bad path."""
    try:
        with open(path, mode, encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        echo(f"error: cannot write {what} to {path}: {e.strerror or e}", err=True)
        return False
    return True


def list_merged(town_dir: str | None, since: float) -> None:
    from reconciler.control.session import Session
    from reconciler.control.workreport import merged_since
    from reconciler.spec.loader import check

    s = Session.find(town_dir)
    try:
        desired = check(s.files_paths()).desired
        if desired is None or desired.git is None:
            return
        for m in merged_since(s.store, s.paths, desired, since):
            echo(f"merged: {m['id']} {m['commit'][:7]} {m['subject']}".rstrip())
    finally:
        s.close()
