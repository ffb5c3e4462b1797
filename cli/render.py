"""Terminal rendering: plain aligned tables (rich only on a TTY, where colour helps)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from .common import use_color


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    if use_color():
        from rich.console import Console
        from rich.table import Table

        t = Table(*headers, box=None, header_style="bold", pad_edge=False)
        for row in cells:
            t.add_row(*row)
        Console().print(t)
        return
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def progress_line(counts: dict[str, int]) -> str:
    total = counts.get("total", 0)
    done = counts.get("completed", 0)
    parts = [f"{n} {state}" for state, n in counts.items() if n and state != "total"]
    pct = f"{100 * done // total}%" if total else "0%"
    return f"{done}/{total} tasks completed ({pct})" + (f": {', '.join(parts)}" if parts else "")


def model_cell(row: dict[str, Any]) -> str:
    """The model that runs, and town.toml's when an override replaced it: `sim (claude
    overridden)`."""
    if row.get("model_override"):
        return f"{row['model']} ({row['configured_model']} overridden)"
    return str(row.get("model") or "-")
