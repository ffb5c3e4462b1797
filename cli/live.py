"""The live view on a TTY (`tt conductor`, `tt watch`, `tt wait`, `apply --wait`): a progress bar,
the agents, the unfinished tasks and the latest events, redrawn a few times a second."""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.control.session import Session


class LiveReport:
    def __init__(self, session: Session) -> None:
        from rich.live import Live

        self.s = session
        self.lines: collections.deque[str] = collections.deque(maxlen=8)
        self.live = Live(get_renderable=self._render, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveReport:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.__exit__(*exc)

    def __call__(self, kind: str, fields: dict[str, str]) -> None:
        from .common import printable
        from .events import QUIET, event_line

        stamp = time.strftime("%H:%M:%S")
        if kind == "event":
            if fields.get("type", "?") not in QUIET:
                self.lines.append(printable(event_line(fields))[:160])
        else:
            detail = fields.get("detail") or fields.get("holder", "")
            who = f" {fields['agent']}" if fields.get("agent") else ""
            line = f"{stamp} {kind}{who}: {detail.splitlines()[0] if detail else ''}"
            self.lines.append(printable(line))

    def _render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        from reconciler.control.report import status_report
        from reconciler.errors import RedisUnavailable

        from .common import printable

        def cell(value: object) -> Text:  # as written: control characters and [markup] shown
            return Text(printable(str(value)))

        try:
            report = status_report(self.s.store, None)
        except RedisUnavailable as e:  # Redis restarting: show it, keep the view alive
            return cell(f"waiting for Redis: {e}")
        counts = report["counts"]
        total, done = counts["total"], counts["completed"]
        bar = ProgressBar(total=max(total, 1), completed=done, width=40)
        head = Text(
            f" {done}/{total} completed, {counts['running']} running, "
            f"{counts['failed'] + counts['upstream_failed']} failed, {counts['retrying']} retrying"
        )
        agents = Table("agent", "state", "task", box=None, header_style="bold")
        for a in report["agents"]:
            agents.add_row(cell(a["name"]), cell(a["state"]), cell(a["task"] or "-"))
        tasks = Table("task", "state", "agent", "attempts", box=None, header_style="bold")
        for t in [t for t in report["tasks"] if t["state"] != "completed"][:12]:
            who = t["agent"] or t["target"] or "-"
            tasks.add_row(cell(t["id"]), cell(t["state"]), cell(who), cell(t["attempts"]))
        return Group(bar, head, agents, tasks, Text("\n".join(self.lines)))
