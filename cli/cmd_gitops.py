"""The applied revisions: `tt history` (the last applies that changed something or failed) and
`tt rollback REV` (the files of an earlier commit, written back and applied)."""

from __future__ import annotations

from typing import Any

import click

from reconciler.errors import TtError

from .common import echo, emit_json, one_shot, output_option, session, town_option


def register(group: click.Group) -> None:
    group.add_command(history)
    group.add_command(rollback)


def revision_cell(entry: dict[str, Any]) -> str:
    """`3f9c2ab (main)`, `3f9c2ab+dirty (main)`, or the files' digests outside git."""
    if not entry.get("sha"):
        digests = entry.get("digests") or {}
        return "files " + "/".join(str(d)[:7] for d in digests.values())
    dirty = "+dirty" if entry.get("dirty") else ""
    branch = f" ({entry['branch']})" if entry.get("branch") else ""
    return f"{entry.get('short') or str(entry['sha'])[:7]}{dirty}{branch}"


@click.command()
@click.option("-n", "--limit", type=click.IntRange(min=1), default=None, help="At most N.")
@click.option("--agent", default=None, hidden=True, help="Tinytown's: see tt events --agent.")
@town_option
@output_option
def history(limit: int | None, agent: str | None, town_dir: str | None, output: str) -> None:
    """The last 20 applies that changed something or failed, newest first (1 = newest).

    Tinytown's `tt history` (the event stream as a chat) is `tt events` in tt."""
    from reconciler.control.syncstatus import ago

    if agent is not None:
        raise TtError(
            f"tt history lists applies; {agent}'s events (Tinytown's history) are "
            f"tt events --agent {agent}"
        )
    s = session(town_dir)
    entries = s.store.history()[:limit]
    if output == "json":
        emit_json({"town": s.store.town, "history": entries})
        return
    if not entries:
        echo("no applies recorded yet")
        return
    from .render import table

    table(
        ["#", "WHEN", "BY", "RESULT", "REVISION", "CREATED", "CHANGED", "DELETED", "TOOK"],
        [
            [
                n,
                ago(e.get("at")),
                e.get("by", "?"),
                e.get("result", "?"),
                revision_cell(e),
                e.get("created", 0),
                e.get("changed", 0),
                e.get("deleted", 0),
                f"{float(e.get('seconds') or 0):.2f}s",
            ]
            for n, e in enumerate(entries, 1)
        ],
    )


@click.command()
@click.argument("rev")
@click.option("--force", is_flag=True, help="Overwrite uncommitted edits of the town files.")
@click.option("--model", "model", default=None, help="Run every agent on this model (e.g. sim).")
@town_option
def rollback(rev: str, force: bool, model: str | None, town_dir: str | None) -> None:
    """Write town.toml and tasks.toml as they were at REV and apply them.

    REV is a history index (`tt history`: 1 = newest) or a commit. Refused while the town
    follows a branch: `git revert` there instead."""
    from reconciler.control.apply import ApplyOptions
    from reconciler.control.rollback import rollback as do_rollback

    one_shot()
    opts = ApplyOptions(model=model, command="tt rollback")
    done = do_rollback(session(town_dir), rev, opts, force=force)
    short = done.commit[:7]
    if done.discarded:
        echo(f"discarded uncommitted edits of {' and '.join(done.discarded)} (--force)")
    if done.saved is not None:
        echo(f"kept a copy of the files it overwrote in {done.saved}")
    if done.written:
        echo(f"wrote {' and '.join(done.written)} as at {short} (git diff shows the rollback)")
    else:
        echo(f"the files already are those of {short}")
    plan = done.result.plan
    echo(f"rolled back to {short}: " + ("nothing to change" if plan.is_empty else plan.summary()))
