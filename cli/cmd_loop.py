"""The reconcile loop verbs: `tt conductor` / `tt watch` (forever) and `tt wait` (until done)."""

from __future__ import annotations

import contextlib
import faulthandler
import io
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from reconciler.errors import EXIT_OK, EXIT_TIMEOUT

from .common import echo, emit_json, output_option, town_option, use_color

if TYPE_CHECKING:
    from reconciler.control.follow import Target
    from reconciler.control.loop import LoopResult
    from reconciler.control.session import Session


def register(group: click.Group) -> None:
    group.add_command(conductor)
    group.add_command(watch)
    group.add_command(wait)
    group.add_command(refresh)


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
    follow: tuple[str | None, str | None] = (None, None),
) -> int:
    from reconciler.control.apply import ApplyOptions
    from reconciler.control.loop import Loop, LoopOptions
    from reconciler.control.session import Session

    # `kill -QUIT PID` (Ctrl-\ in a terminal) prints every thread's stack to stderr and the
    # loop goes on, as a JVM or Go program does: how a loop that seems stuck is looked into.
    with contextlib.suppress(io.UnsupportedOperation, ValueError):  # stderr with no fd (a test)
        faulthandler.register(signal.SIGQUIT, all_threads=True)
    s = Session.find(town_dir)
    target = None if until_done else _target(s, *follow)
    opts = LoopOptions(
        apply=ApplyOptions(model=model, command=command),
        until_done=until_done,
        timeout=timeout,
        events_after=events_after,
        watch_files=target is None,  # following: the branch is the truth, not the local files
        follow=target,
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


def _target(s: Session, branch: str | None, interval: str | None) -> Target | None:
    """--follow and --interval, else [town] follow and follow_interval of the local town.toml."""
    from reconciler.control.follow import Target
    from reconciler.spec.durations import parse_duration
    from reconciler.spec.towncheck import FOLLOW_INTERVAL, branch_problem

    if branch is not None and (bad := branch_problem(branch)):
        raise click.BadParameter(f"{branch!r} is not a branch: {bad}", param_hint="--follow")
    branch = branch or s.settings.follow
    if interval is not None and branch is None:
        raise click.BadParameter("only with --follow (or [town] follow)", param_hint="--interval")
    if branch is None:
        return None
    seconds = s.settings.follow_interval
    if interval is not None:
        low, high = FOLLOW_INTERVAL
        try:
            seconds = parse_duration(interval)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--interval") from None
        if not low <= seconds <= high:
            raise click.BadParameter("must be between 1s and 1d", param_hint="--interval")
    return Target(branch, seconds)


def failure(r: dict[str, str]) -> str:
    """Why a task counts as failed: its error, or the task upstream that stops it."""
    if r.get("state") == "upstream_failed":
        what = {"cancelled": "was cancelled", "": "was deleted"}.get(
            r.get("upstream_state", ""), "failed"
        )
        return f"upstream_failed: {r.get('upstream')} {what}"
    return (r.get("error") or "").strip()[:300]


def render_result(result: LoopResult, output: str) -> None:
    from reconciler.control.outcome import awaiting_only

    awaiting = awaiting_only(list(result.unfinished))
    if output == "json":
        emit_json(
            {
                "exit_code": result.exit_code,
                "outcome": {0: "completed", 1: "failed", 3: "timeout", 4: "awaiting_approval"}.get(
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
                "awaiting_approval": [r["id"] for r in awaiting],
            }
        )
        return
    for r in result.failed:
        echo(f"failed: {r['id']}: {failure(r)}", err=True)
    if result.exit_code == EXIT_TIMEOUT:
        for r in result.unfinished:
            echo(f"still {r.get('state')}: {r['id']}", err=True)
    for r in awaiting:
        echo(f"awaiting approval: {r['id']} (tt approve {r['id']})", err=True)
    summary = ", ".join(f"{n} {st}" for st, n in sorted(result.counts.items()))
    echo(
        f"done: {summary}" if result.exit_code == EXIT_OK else f"result: {summary}",
        err=result.exit_code != EXIT_OK,
    )


def follow_options(f: Callable[..., int]) -> Callable[..., int]:
    f = click.option(
        "--interval",
        default=None,
        metavar="DURATION",
        help="How often to fetch the followed branch (default: [town] follow_interval, 30s).",
    )(f)
    return click.option(
        "--follow",
        "follow",
        default=None,
        metavar="[REMOTE/]BRANCH",
        help="Apply the town's files as they are at this branch's newest commit (fetched "
        "every --interval; tt refresh fetches at once), not the local files. "
        "Default: [town] follow.",
    )(f)


@click.command()
@click.option("--model", default=None, help="Run every agent on this model (e.g. sim).")
@follow_options
@town_option
def conductor(
    model: str | None, follow: str | None, interval: str | None, town_dir: str | None
) -> int:
    """Run the reconcile loop in the foreground: apply the files, keep agents running, heal.

    Ctrl-C stops the loop and leaves the agents running."""
    return _run(town_dir, model, False, None, follow=(follow, interval))


@click.command()
@click.option("--model", default=None, help="Run every agent on this model (e.g. sim).")
@follow_options
@town_option
def watch(model: str | None, follow: str | None, interval: str | None, town_dir: str | None) -> int:
    """The same loop as `tt conductor`: apply every saved edit of the town files (or, with
    --follow, every new commit of a branch)."""
    return _run(town_dir, model, False, None, command="tt watch", follow=(follow, interval))


@click.command()
@town_option
def refresh(town_dir: str | None) -> None:
    """Ask the town's watcher to fetch the branch it follows and reconcile now."""
    from reconciler.control.follow import refresh as ask

    from .common import session

    echo(ask(session(town_dir)))


@click.command()
@click.argument("agent", required=False)
@click.option(
    "--timeout", type=str, default=None, help="Give up after this long (300 = seconds, 30m)."
)
@click.option("--model", default=None, help="Run every agent on this model (e.g. sim).")
@town_option
@output_option
def wait(
    agent: str | None, timeout: str | None, model: str | None, town_dir: str | None, output: str
) -> int:
    """Reconcile until every task is terminal: exit 0 all completed, 1 any failed, 3 timeout.

    With AGENT (Tinytown's form): wait until that agent is idle (exit 0), or 3 on timeout."""
    if agent is not None:
        from reconciler.control.lifecycle import wait_idle

        from .common import echo, session

        seconds = None if timeout is None else _seconds(timeout)
        if wait_idle(session(town_dir), agent, seconds):
            echo(f"{agent} is idle")
            return 0
        echo(f"{agent} is still busy after {timeout}")
        return 3
    return wait_for(town_dir, timeout, model, output)


def _seconds(timeout: str) -> float:
    from reconciler.spec.durations import parse_duration

    try:
        return float(timeout) if timeout.replace(".", "", 1).isdigit() else parse_duration(timeout)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--timeout") from None


def wait_for(
    town_dir: str | None,
    timeout: str | None,
    model: str | None,
    output: str,
    events_after: str | None = None,
) -> int:

    seconds = None if timeout is None else _seconds(timeout)
    return _run(town_dir, model, True, seconds, output, events_after, "tt wait")
