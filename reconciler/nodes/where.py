"""Which town a node serves and from where: the town's folder (`--town DIR`, TT_TOWN, the
nearest town.toml), or, without its files, its Redis and name (`--redis URL --town-name T`:
`control/remote.py`), its state kept in the node's folder (`--workspace DIR`, else here).

Checks the flags before anything connects; a town with no applied state is refused before
anything is written.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..control.remote import RemoteSession
from ..control.session import Session
from ..errors import TtError
from ..town import TownPaths


def node_session(
    town_dir: str | None, redis: str | None, town_name: str | None, folder: Path | None = None
) -> Session:
    """The node's session; `folder`: where a node without the town's files keeps `.tt/`."""
    if redis is None and town_name is None:
        return Session.find(town_dir)
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
    s.check_applied()  # (nothing is written for a town that was never applied there)
    s.export_env()
    return s
