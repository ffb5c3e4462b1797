"""Custody of work products (`[git]`): `tt worktrees` lists every task worktree, branch and kept
ref with its task's state; `tt gc` removes what holds nothing unmerged and says why the rest
stays."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.errors import TtError
from reconciler.work.remote import WORKSPACE_ENV

from .common import echo, emit_json, output_option, session, town_option

if TYPE_CHECKING:
    from reconciler.work.custody import Custody, Product


def register(group: click.Group) -> None:
    group.add_command(worktrees)
    group.add_command(gc)


def _custody(town_dir: str | None, workspace: str | None) -> Custody:
    """The town's custody; Redis is opened only once there is a work product to judge.
    `workspace`: a node's own clone (`tt node run --workspace DIR`), whose repository holds
    the task worktrees kept under the town folder's `.tt/`."""
    from dataclasses import replace

    from reconciler.nodes.where import checked_workspace
    from reconciler.work.custody import open_custody

    s = session(town_dir)
    desired = s.desired()
    if desired.git is None:
        raise TtError(
            f"{s.paths.town_file} has no [git] table: add [git] to town.toml to give each "
            "task a branch and worktree"
        )
    git = desired.git
    if workspace:
        git = replace(git, repo=str(checked_workspace(workspace)))
    return open_custody(s.paths.state_dir, s.paths.root, desired.town.name, git, lambda: s.store)


workspace_option = click.option(
    "--workspace",
    "workspace",
    metavar="DIR",
    envvar=WORKSPACE_ENV,
    default=None,
    help="A node's own clone (tt node run --workspace DIR): judge the worktrees of its "
    f"repository (default: ${WORKSPACE_ENV}, set for a node's agents).",
)


@click.command()
@town_option
@workspace_option
@output_option
def worktrees(town_dir: str | None, workspace: str | None, output: str) -> None:
    """Every task worktree, branch and kept ref: state, changes, commits, merged or not."""
    custody = _custody(town_dir, workspace)
    rows = custody.inventory()
    if output == "json":
        emit_json({"base": custody.git.base, "worktrees": [r.as_json() for r in rows]})
        return
    if not rows:
        echo("no worktrees or branches of tasks")
        return
    from .render import table

    root = custody.layout.state_dir.parent  # the town folder
    table(
        ["TASK", "NODE", "PATH", "BRANCH", "STATE", "DIRTY", "AHEAD/BEHIND", "MERGED", "GC"],
        [_cells(r, root) for r in rows],
        fit_last=True,
    )


def _cells(r: Product, root: Path) -> list[object]:
    path = "-"
    if r.path is not None:
        path = str(r.path.relative_to(root)) if r.path.is_relative_to(root) else str(r.path)
        path += " (folder deleted)" if r.missing else " (not a worktree)" if r.stray else ""
    counts = "-" if r.ahead is None else f"{r.ahead}/{r.behind}"
    gc_cell = f"keep: {r.reason}" if r.reason else "safe to remove"
    if not r.path and not r.branch:
        gc_cell = f"kept refs: {', '.join(k.rsplit('/', 1)[-1] for k in r.kept)}"
    return [
        r.task,
        r.node or "-",
        path,
        r.branch or "-",
        r.state,
        "-" if r.dirty is None else r.dirty,
        counts,
        "yes" if r.merged else "no",
        gc_cell,
    ]


@click.command()
@town_option
@workspace_option
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@click.option(
    "--force",
    is_flag=True,
    help="Also remove unmerged or changed work of finished tasks, saved first under "
    "refs/tt/<town>/<task>/salvage (never a task that may still run).",
)
@output_option
def gc(
    town_dir: str | None, workspace: str | None, dry_run: bool, force: bool, output: str
) -> None:
    """Remove the worktrees and branches that hold nothing unmerged; list the rest and why."""
    actions = _custody(town_dir, workspace).gc(dry_run=dry_run, force=force)
    if output == "json":
        emit_json({"dry_run": dry_run, "force": force, "actions": [a.as_json() for a in actions]})
        return
    if not actions:
        echo("nothing to collect: no worktrees or branches of tasks")
    for a in actions:
        echo(a.line())
