"""Terminal rendering: plain aligned tables (rich only on a TTY, where colour helps)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from typing import Any

from .common import echo, printable, use_color


def table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], *, fit_last: bool = False
) -> None:
    """Columns padded to their widest cell. `fit_last`: the last column (a free text such as a
    reason) is shortened with `…` to what the terminal has left, never below 20 characters."""
    cells = [[printable(str(c)) for c in row] for row in rows]
    if fit_last and cells:
        used = sum(max(len(h), *(len(r[i]) for r in cells)) + 2 for i, h in enumerate(headers[:-1]))
        room = max(20, shutil.get_terminal_size().columns - used)
        for r in cells:
            text = " ".join(r[-1].split())  # one line per row
            r[-1] = text if len(text) <= room else text[: room - 1] + "…"
    if use_color():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        t = Table(*headers, box=None, header_style="bold", pad_edge=False)
        for row in cells:
            t.add_row(*(Text(c) for c in row))  # text as written: no [markup] in a result
        Console().print(t)
        return
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def progress_line(counts: dict[str, int]) -> str:
    total = counts.get("total", 0)
    done = counts.get("completed", 0)
    parts = [f"{n} {state}" for state, n in counts.items() if n and state != "total"]
    pct = f"{100 * done // total}%" if total else "0%"
    return f"{done}/{total} tasks completed ({pct})" + (f": {', '.join(parts)}" if parts else "")


def health_line(health: dict[str, Any]) -> str:
    """`health: degraded (2 failed tasks, agent dev quarantined)`: the town's health
    (`status -o json`'s `health`), one line of `tt status` and `tt list`."""
    from reconciler.plan.health import describe

    return f"health: {describe(health['state'], health['reasons'])}"


def model_cell(row: dict[str, Any]) -> str:
    """The model that runs, and town.toml's when an override replaced it: `sim (claude
    overridden)`."""
    if row.get("model_override"):
        return f"{row['model']} ({row['configured_model']} overridden)"
    return str(row.get("model") or "-")


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 112th."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
