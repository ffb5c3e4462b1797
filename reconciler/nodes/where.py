"""Which town a node serves and from where: the town's folder (`--town DIR`, TT_TOWN, the
nearest town.toml), or, without its files, its Redis and name (`--redis URL --town-name T`:
`control/remote.py`), its state kept in the node's folder (`--workspace DIR`, else here); and
the node's own clone of the `[git]` repository (`--workspace`: `work/remote.py`).

Checks the flags before anything connects; a town with no applied state, and a town with `[git]`
for a node without `--workspace`, are refused before anything is written.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..agents.gitwork import without_workspace
from ..control.remote import RemoteSession
from ..control.session import Session
from ..errors import TtError, ValidationFailed
from ..git.repo import repository_of
from ..town import TownPaths
from ..work.remote import WORKSPACE_ENV


def node_session(
    town_dir: str | None,
    redis: str | None,
    town_name: str | None,
    workspace: str | None = None,
    name: str = "?",
) -> Session:
    """The node's session. `workspace`: the node's own clone of the `[git]` repository (its
    agents work there, `work/remote.py`), also the folder a node without the town's files keeps
    its `.tt/` in (else the current folder)."""
    folder = checked_workspace(workspace) if workspace is not None else None
    if redis is None and town_name is None:
        s = Session.find(town_dir)
        if folder is not None:
            os.environ[WORKSPACE_ENV] = str(folder)  # (its agents inherit it)
        else:
            _needs_workspace(s, name)
        return s
    if town_dir is not None:
        raise TtError(
            "--town and --redis/--town-name: a node reads the town's files or reaches the "
            "town through Redis, not both",
            hint="drop --town (no files here), or drop --redis and --town-name",
        )
    if redis is None:
        raise TtError(
            f"--town-name {town_name}: which Redis holds the town? give --redis URL too",
            hint="tt node run --name N --redis redis://HOST:6379/0 --town-name T",
        )
    if town_name is None:
        raise TtError(
            "--redis without --town-name: a Redis may hold several towns; name this one",
            hint="tt node run --name N --redis URL --town-name T",
        )
    root = (folder or Path(os.getcwd())).expanduser().resolve()
    s = RemoteSession(TownPaths(root), redis, town_name)
    s.node = name
    s.check_applied()  # (nothing is written for a town that was never applied there)
    if folder is None:
        _needs_workspace(s, name)
    s.export_env()
    if folder is not None:
        os.environ[WORKSPACE_ENV] = str(folder)
    return s


def _needs_workspace(s: Session, node: str) -> None:
    """A town with `[git]` needs the node's own clone (`--workspace`): refused before anything
    is written. (A `[git]` an apply adds later fails the node's attempts, saying the same.)"""
    try:
        git = s.desired().git
    except ValidationFailed:
        return  # (invalid files: the node's passes report them; its attempts refuse then)
    if git is not None:
        raise without_workspace(node)


def checked_workspace(given: str) -> Path:
    """`--workspace DIR`, checked: the top of a git work tree (a clone; the node clones none:
    it knows the remote's name, not its URL)."""
    folder = Path(given).expanduser().resolve()
    repo = repository_of(folder) if folder.is_dir() else None
    if repo is None or repo.top.resolve() != folder:
        raise TtError(
            f"--workspace {given}: not the top folder of a git clone",
            hint="clone the town's repository there first (git clone URL DIR): the node works "
            "in it and pushes task branches to [git] push",
        )
    return folder
