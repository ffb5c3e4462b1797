"""Desired-state verbs: plan (`tt diff` is in cmd_drift.py), apply, sync, assign, cancel, retry,
kill, restart, unlock, down (`tt spawn`: cmd_spawn.py). Each parses, calls one engine function,
renders."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconciler.errors import EXIT_CHANGES, EXIT_OK

from .applyrender import fleet_lines, markdown, render, say_refusal
from .common import echo, one_shot, output_option, resolve_town, session, town_option

if TYPE_CHECKING:
    from reconciler.control.apply import ApplyOptions

F = TypeVar("F", bound=Callable[..., Any])

PLAN_LOCK_WAIT = 10.0  # control.applylock's, for help texts (tests/cli/test_plan_lock.py)
_OPTION_KEYS = frozenset({"prune", "allow_empty", "rerun_changed", "model", "lock_timeout"})
_fleet_lines = fleet_lines  # the name other verbs' modules import it by


def register(group: click.Group) -> None:
    for cmd in (
        plan,
        apply_cmd,
        sync,
        assign,
        cancel,
        retry,
        kill,
        restart,
        unlock,
        down,
    ):
        group.add_command(cmd)


def apply_options(f: F) -> F:
    """Options shared by every command that ends in an apply."""
    for opt in reversed(
        [
            click.option(
                "--prune/--no-prune",
                default=True,
                show_default=True,
                help="Delete file-owned objects that left the files.",
            ),
            click.option(
                "--allow-empty", is_flag=True, help="Allow deleting every managed object."
            ),
            click.option(
                "--rerun-changed", is_flag=True, help="Re-run completed tasks whose spec changed."
            ),
            click.option(
                "--model", "model", default=None, help="Run every agent on this model (e.g. sim)."
            ),
            click.option(
                "--lock-timeout",
                type=float,
                default=None,
                help="Seconds to wait for another apply's lock [default: 0; with --dry-run, "
                f"which writes nothing: {PLAN_LOCK_WAIT:g}].",
            ),
        ]
    ):
        f = opt(f)
    return f


def _opts(command: str, **kw: Any) -> ApplyOptions:
    from reconciler.control.apply import ApplyOptions

    if unknown := set(kw) - _OPTION_KEYS - {"dry_run", "adopt"}:  # never dropped unseen
        raise TypeError(f"_opts: unknown options {sorted(unknown)}")
    lock_timeout = kw.get("lock_timeout")
    if lock_timeout is None:  # a plan waits out a running apply; an apply fails at once
        lock_timeout = PLAN_LOCK_WAIT if kw.get("dry_run") else 0.0
    return ApplyOptions(
        dry_run=kw.get("dry_run", False),
        prune=kw.get("prune", True),
        allow_empty=kw.get("allow_empty", False),
        rerun_changed=kw.get("rerun_changed", False),
        model=kw.get("model"),
        lock_timeout=lock_timeout,
        command=command,
        adopt=kw.get("adopt", False),
    )


def _diff(
    town_dir: str | None, output: str, detailed: bool, placement: bool = False, **kw: Any
) -> int:
    one_shot()  # (first: the collector's sweeps during the imports would free nothing)
    from reconciler.control.apply import apply

    opts = _opts("tt plan", dry_run=True, **kw)
    s = session(town_dir, lean=True)
    result = apply(s, opts)
    if output == "markdown":
        markdown(result, opts, s.store.town)
    else:
        rows = _placement(s) if placement else None
        render(result, output, dry_run=True, placement=rows)
        say_refusal(result, opts, output)
    return EXIT_CHANGES if detailed and not result.plan.is_empty else EXIT_OK


def _placement(s: Any) -> list[dict[str, Any]] | None:
    """Where each agent will run (`tt plan`), when the town uses nodes."""
    from reconciler.control.placing import plan_placement

    return plan_placement(s.store, s.desired())


def _diff_options(f: F) -> F:
    f = click.option(
        "--detailed-exitcode",
        "detailed",
        is_flag=True,
        help="Exit 2 when there are changes, 0 when none.",
    )(f)
    f = click.option("--prune/--no-prune", default=True, show_default=True)(f)
    f = click.option("--rerun-changed", is_flag=True)(f)
    f = click.option(
        "--lock-timeout",
        type=float,
        default=PLAN_LOCK_WAIT,
        show_default=True,
        help="Seconds to wait for a running apply (a watcher's pass) before failing.",
    )(f)
    f = click.option(
        "-o",
        "--output",
        "--format",
        "output",
        type=click.Choice(["text", "json", "markdown"]),
        default="text",
        show_default=True,
        help="Output format (markdown: for a pull request comment).",
    )(f)
    return town_option(f)


@click.command()
@click.option("--init", "init_", is_flag=True, help="Write a starter tasks.toml instead.")
@_diff_options
def plan(init_: bool, town_dir: str | None, output: str, detailed: bool, **kw: Any) -> int:
    """Show what `tt apply` would change (nothing is written)."""
    if init_:
        from reconciler.edit.scaffold import HasTasks, starter_tasks

        try:
            echo(f"wrote {starter_tasks(session(town_dir).paths)}")
        except HasTasks as e:  # what --init is for is there: a tasks.toml to edit
            echo(f"{e.message}: kept as is (edit it; tt plan shows what it asks for)")
        return EXIT_OK
    return _diff(town_dir, output, detailed, placement=True, **kw)  # the _diff_options


@click.command("apply")
@click.option("--dry-run", is_flag=True, help="Plan only; write nothing.")
@click.option(
    "--detailed-exitcode", "detailed", is_flag=True, help="Exit 2 when something changed."
)
@click.option(
    "--wait",
    is_flag=True,
    help="Then reconcile until every task is terminal (0 / 1 / 3), or only tasks "
    "awaiting approval are left (4).",
)
@click.option("--timeout", default=None, help="With --wait: give up after this long (e.g. 30m).")
@click.option(
    "--junit",
    "junit",
    default=None,
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=str),
    help="With --wait: write a JUnit XML report (a test case per task) to FILE.",
)
@click.option("--adopt", is_flag=True, help="Manage the town from this folder from now on.")
@apply_options
@town_option
@output_option
def apply_cmd(
    dry_run: bool,
    detailed: bool,
    wait: bool,
    timeout: str | None,
    junit: str | None,
    town_dir: str | None,
    output: str,
    **kw: Any,
) -> int:
    """Make Redis (and the agent processes) match town.toml and tasks.toml.

    With --wait, where $GITHUB_STEP_SUMMARY is set, a Markdown summary of the run is appended
    to that file."""
    one_shot()  # (first: the collector's sweeps during the imports would free nothing)
    from reconciler.control.apply import apply
    from reconciler.control.session import Session

    if junit is not None and not (wait and not dry_run):
        raise click.UsageError("--junit reports a run: use it with --wait")
    if junit is not None and not os.path.isdir(os.path.dirname(os.path.abspath(junit))):
        raise click.BadParameter(f"no folder to write {junit} in", param_hint="--junit")
    opts = _opts("tt apply", dry_run=dry_run, **kw)
    s = Session.find(town_dir, lean=True, adopt=opts.adopt)
    mark = None
    if wait and not dry_run:
        from .applywait import wait_mark

        mark = wait_mark(s)
    result = apply(s, opts)
    if not (wait and output == "json"):
        render(result, output, dry_run=dry_run)
    if dry_run:
        say_refusal(result, opts, output)
    if mark is not None:
        from .applywait import wait_and_list

        return wait_and_list(town_dir, timeout, kw.get("model"), output, mark, junit)
    return EXIT_CHANGES if detailed and not result.plan.is_empty else EXIT_OK


@click.group(invoke_without_command=True)
@click.pass_context
@town_option
def sync(ctx: click.Context, town_dir: str | None) -> None:
    """`sync push` (the default) applies the files; `sync pull` writes states back."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(sync_push, town_dir=town_dir)


@sync.command("push")
@apply_options
@town_option
@output_option
def sync_push(town_dir: str | None, output: str = "text", **kw: Any) -> None:
    """Apply tasks.toml and town.toml (repeated pushes never duplicate tasks)."""
    one_shot()
    from reconciler.control.apply import apply

    session_ = session(town_dir, lean=True)
    render(apply(session_, _opts("tt sync push", **kw)), output, dry_run=False)


@sync.command("pull")
@town_option
def sync_pull(town_dir: str | None) -> None:
    """Write each task's actual state into tasks.toml (`status` only; comments survive)."""
    from reconciler.control.verbs import sync_pull as pull

    changed = pull(session(town_dir))
    echo(f"updated {len(changed)} task(s) in tasks.toml" if changed else "tasks.toml is current")


@click.command()
@click.argument("agent")
@click.argument("description")
@click.option("--id", "task_id", help="Task id (default: from the description).")
@click.option("--after", help="Run after this task completed (its parent).")
@click.option("--no-save", is_flag=True, help="Redis only: do not write tasks.toml.")
@apply_options
@town_option
def assign(
    agent: str,
    description: str,
    task_id: str | None,
    after: str | None,
    no_save: bool,
    town_dir: str | None,
    **kw: Any,
) -> None:
    """Give AGENT a task: appended to tasks.toml and applied."""
    from reconciler.control.townops import add_task

    done = add_task(
        session(town_dir),
        agent,
        description,
        task_id=task_id,
        after=after,
        save=not no_save,
        opts=_opts("tt assign", **kw),
    )
    echo(f"assigned {done['id']} to {agent}{' (not saved to tasks.toml)' if no_save else ''}")


@click.command()
@click.argument("task_id")
@town_option
def cancel(task_id: str, town_dir: str | None) -> None:
    """Cancel a task (sets status = "cancelled" in tasks.toml and applies)."""
    from reconciler.control.townops import cancel as do_cancel

    done = do_cancel(session(town_dir), task_id)
    if done["state"] == "skipped":
        echo(f"{task_id} stays skipped: it does not run (its run_if); what waits for it too")
    else:
        echo(f"cancelled {task_id}")


@click.command()
@click.argument("task_id")
@town_option
def retry(task_id: str, town_dir: str | None) -> None:
    """Re-run a failed, completed or cancelled task."""
    from reconciler.control.townops import retry as do_retry

    done = do_retry(session(town_dir), task_id)
    echo(f"{task_id} is {done['state']} again")


@click.command()
@click.argument("name")
@click.option("--remove", is_flag=True, help="Delete it from town.toml (no task may name it).")
@town_option
def kill(name: str, remove: bool, town_dir: str | None) -> None:
    """Stop agent NAME and keep it (suspended = true in town.toml); its task goes back to the
    queue. `tt resume NAME` starts it again."""
    from reconciler.control.verbs import kill as do_kill

    result = do_kill(session(town_dir), name, _opts("tt kill"), remove=remove)
    stopped = any(
        c.action == "stopped" and (c.agent == name or c.agent.startswith(f"{name}-"))
        for c in result.fleet
    )
    note = "" if stopped else " (it was not running)"
    kept = "removed from town.toml" if remove else "suspended in town.toml (tt resume NAME)"
    echo(f"killed {name}: {kept.replace('NAME', name)}{note}")
    _fleet_lines(result.fleet)


@click.command()
@click.argument("name")
@click.option(
    "--rounds", type=click.IntRange(1, 1_000_000), default=None, help="Set its max_rounds first."
)
@click.option("--foreground", is_flag=True, help="Then follow the agent's log here.")
@town_option
def restart(name: str, rounds: int | None, foreground: bool, town_dir: str | None) -> None:
    """Stop agent NAME's process and start it again (with fresh rounds; --rounds N sets its
    max_rounds in town.toml first)."""
    from reconciler.control.lifecycle import set_max_rounds
    from reconciler.control.verbs import restart as do_restart

    if rounds is not None:
        set_max_rounds(session(town_dir), name, rounds, _opts("tt restart"))
    done = do_restart(session(town_dir), name)
    if done.old_pid and done.new_pid:
        echo(f"restarted {name}: pid {done.old_pid} → {done.new_pid}")
    elif done.new_pid:
        echo(f"{name} was not running; started it: pid {done.new_pid}")
    elif done.old_pid:
        echo(f"stopped {name} (pid {done.old_pid}); it is not started here again")
    else:
        echo(f"{name} is not running and is not started here; nothing changed")
    _fleet_lines([c for c in done.fleet if c.agent != name])
    if foreground:
        from .cmd_agents import logs

        click.get_current_context().invoke(logs, agent=name, follow=True, town_dir=town_dir)


@click.command()
@click.option("--force", is_flag=True, help="Remove the lock even if its holder is alive.")
@town_option
def unlock(force: bool, town_dir: str | None) -> None:
    """Remove a stale apply lock (its holder is dead); a live holder's only with --force."""
    from reconciler.control.applylock import unlock as do_unlock

    held = do_unlock(session(town_dir).store, force=force)
    if held is None:
        echo("no lock was held")
    else:
        echo(
            f"removed the lock of {held.get('command')} (pid {held.get('pid')} on "
            f"{held.get('host')})"
        )


@click.command()
@town_option
def down(town_dir: str | None) -> None:
    """Stop the town's watchers, agents and server, until the next `tt apply` / `tt conductor`."""
    from reconciler.control.down import down as do_down

    result = do_down(resolve_town(town_dir))
    if result.redis_problem:
        echo(f"warning: {result.redis_problem}; stopping what .tt/ recorded", err=True)
    lines = [f"stopped watcher pid {p}" for p in result.watchers]
    lines += [f"stopped agent {name}" for name in result.agents]
    echo("\n".join(lines), nl=bool(lines))
    echo("server stopped" if result.server_stopped else "no embedded server was running")
