"""`tt apply --wait` after its apply: the reconcile loop until every task is terminal, then, under
`[git]`, the commits this wait merged into base (`merged: TASK SHA7 SUBJECT`, in the order the
tasks completed; text output only: with `-o json` stdout holds the loop's JSON alone)."""

from __future__ import annotations

import gc
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
    town_dir: str | None, timeout: str | None, model: str | None, output: str, mark: Mark
) -> int:
    from .cmd_loop import wait_for

    gc.enable()  # a loop that may run for hours
    code = wait_for(town_dir, timeout, model, output, mark.event)
    if output != "json":
        list_merged(town_dir, mark.since)
    return code


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
