"""The reconcile loop verbs: `tt conductor` / `tt watch` (forever) and `tt wait` (until done)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from reconciler.errors import EXIT_OK, EXIT_TIMEOUT

from .common import echo, emit_json, output_option, town_option, use_color

if TYPE_CHECKING:
    from reconciler.control.loop import LoopResult


def register(group: click.Group) -> None:
    group.add_command(conductor)
    group.add_command(watch)
    group.add_command(wait)


class LineReport:
    """One line per change (not a TTY) — also used on a TTY, where lines scroll above. With
    `json_output` stdout holds only the final JSON: events are left out, the rest goes to
    stderr."""

    def __init__(self, json_output: bool = False) -> None:
        self.quiet_events = self.to_stderr = json_output

    def __call__(self, kind: str, fields: dict[str, str]) -> None:
        from .events import QUIET, event_line

        stamp = time.strftime("%H:%M:%S")
        if kind == "event":
            if not self.quiet_events and fields.get("type", "?") not in QUIET:
                echo(event_line(fields))
        elif kind == "invalid":
            echo(f"{stamp} files are invalid; keeping the last good state:", err=True)
            echo(fields.get("detail", ""), err=True)
        else:
            who = f" {fields['agent']}" if fields.get("agent") else ""
            detail = fields.get("detail") or fields.get("holder", "")
            echo(f"{stamp} {kind}{who}: {detail}", err=self.to_stderr)


def _run(
    town_dir: str | None,
    model: str | None,
    until_done: bool,
    timeout: float | None,
    output: str = "text",
    events_after: str | None = None,
    command: str = "tt conductor",
) -> int:
    from reconciler.control.apply import ApplyOptions
    from reconciler.control.loop import Loop, LoopOptions
    from reconciler.control.session import Session

    s = Session.find(town_dir)
    opts = LoopOptions(
        apply=ApplyOptions(model=model, command=command),
        until_done=until_done,
        timeout=timeout,
        events_after=events_after,
    )
    try:
        if use_color() and output != "json":
            from .live import LiveReport

            with LiveReport(s) as live:
                result = Loop(s, opts, live).run()
        else:
            result = Loop(s, opts, LineReport(json_output=output == "json")).run()
    except KeyboardInterrupt:
        echo("stopped (agents keep running; `tt down` stops them)", err=True)
        return EXIT_OK
    if until_done:
        render_result(result, output)
    return result.exit_code


def failure(r: dict[str, str]) -> str:
    """Why a task counts as failed: its error, or the task upstream that stops it."""
    if r.get("state") == "upstream_failed":
        what = {"cancelled": "was cancelled", "": "was deleted"}.get(
            r.get("upstream_state", ""), "failed"
        )
        return f"upstream_failed: {r.get('upstream')} {what}"
    return (r.get("error") or "").strip()[:300]


def render_result(result: LoopResult, output: str) -> None:
    if output == "json":
        emit_json(
            {
                "exit_code": result.exit_code,
                "outcome": {0: "completed", 1: "failed", 3: "timeout"}.get(
                    result.exit_code, "error"
                ),
                "counts": result.counts,
                "failed": [
                    {
                        "id": r["id"],
                        "state": r.get("state"),
                        "error": r.get("error") or None,
                        "upstream": r.get("upstream") or None,
                        "reason": failure(r) or None,
                    }
                    for r in result.failed
                ],
                "unfinished": [{"id": r["id"], "state": r.get("state")} for r in result.unfinished],
            }
        )
        return
    for r in result.failed:
        echo(f"failed: {r['id']}: {failure(r)}", err=True)
    if result.exit_code == EXIT_TIMEOUT:
        for r in result.unfinished:
            echo(f"still {r.get('state')}: {r['id']}", err=True)
    summary = ", ".join(f"{n} {st}" for st, n in sorted(result.counts.items()))
    echo(
        f"done: {summary}" if result.exit_code == EXIT_OK else f"result: {summary}",
        err=result.exit_code != EXIT_OK,
    )


@click.command()
@click.option("--model", default=None, help="Run every agent on this model (e.g. sim).")
@town_option
def conductor(model: str | None, town_dir: str | None) -> int:
    """Run the reconcile loop in the foreground: apply the files, keep agents running, heal.

    Ctrl-C stops the loop and leaves the agents running."""
    return _run(town_dir, model, False, None)


@click.command()
@click.option("--model", default=None, help="Run every agent on this model (e.g. sim).")
@town_option
def watch(model: str | None, town_dir: str | None) -> int:
    """The same loop as `tt conductor`: apply every saved edit of the town files."""
    return _run(town_dir, model, False, None, command="tt watch")


@click.command()
@click.option("--timeout", type=str, default=None, help="Give up after this long (e.g. 30m).")
@click.option("--model", default=None, help="Run every agent on this model (e.g. sim).")
@town_option
@output_option
def wait(timeout: str | None, model: str | None, town_dir: str | None, output: str) -> int:
    """Reconcile until every task is terminal: exit 0 all completed, 1 any failed, 3 timeout."""
    return wait_for(town_dir, timeout, model, output)


def wait_for(
    town_dir: str | None,
    timeout: str | None,
    model: str | None,
    output: str,
    events_after: str | None = None,
) -> int:
    from reconciler.spec.durations import parse_duration

    seconds = None
    if timeout is not None:
        try:
            seconds = parse_duration(timeout)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--timeout") from None
    return _run(town_dir, model, True, seconds, output, events_after, "tt wait")
