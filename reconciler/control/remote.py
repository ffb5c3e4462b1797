"""A town reached without its files: `tt node run --redis URL --town-name T` and the agents it
starts (they inherit TT_REDIS_URL and TT_TOWN_NAME). The desired state is the roster the
controller's last apply recorded in Redis (`spec/rosterjson.py`), re-read when its digest moves;
the folder (`paths`) holds only this host's state (`.tt/`: logs, worktrees, run records).

It never edits or applies files and never claims the town's source (it is not one).
"""

from __future__ import annotations

import os
import socket
from functools import cached_property
from pathlib import Path

from ..errors import TtError, mask_url
from ..spec.desired import Desired, TownSettings
from ..spec.names import name_problem
from ..spec.rosterjson import NewerRoster, roster_from_json
from ..store.client import Store
from ..store.url import ENV_URL, SCHEMES
from ..town import TownPaths
from .session import ROSTER_WAIT, Session

NAME_ENV = "TT_TOWN_NAME"  # set (with TT_REDIS_URL): the town is reached without its files


def from_env(folder: str | None) -> RemoteSession | None:
    """The remote session TT_TOWN_NAME and TT_REDIS_URL name (an agent of a node without the
    town's files, or a model inside one), in `folder` (else TT_TOWN, else here); None when
    TT_TOWN_NAME is not set."""
    town = os.environ.get(NAME_ENV, "").strip()
    if not town:
        return None
    url = os.environ.get(ENV_URL, "").strip()
    if not url:
        raise TtError(f"{NAME_ENV}={town} is set but {ENV_URL} is not: which Redis holds it?")
    where = folder or os.environ.get("TT_TOWN") or os.getcwd()
    return RemoteSession(TownPaths(Path(where).expanduser().resolve()), url, town)


class RemoteSession(Session):
    def __init__(self, paths: TownPaths, url: str, town: str) -> None:
        if problem := name_problem(town):
            raise TtError(f"--town-name {town!r}: not a valid town name: {problem}")
        scheme, sep, _ = url.strip().partition("://")
        if not sep or scheme not in SCHEMES:
            raise TtError(
                f"--redis {mask_url(url)!r}: not a redis://, rediss:// or unix:// URL (a node "
                "without the town's files needs the URL of the town's Redis)",
                hint="e.g. redis://:PASSWORD@HOST:6379/0",
            )
        super().__init__(paths)
        self.url, self.town = url.strip(), town
        self.node = ""  # the node this session serves (`tt node run --name`), when one does
        self._roster: tuple[str, Desired] | None = None

    @cached_property
    def store(self) -> Store:
        return Store.open(self.url, self.town)  # (no source check: a node is not a source)

    @cached_property
    def settings(self) -> TownSettings:
        return self.desired().town

    def export_env(self) -> None:
        """This process's environment names the town and its Redis: the agents it starts (and
        their models' `tt task complete`) reach the town the same way."""
        os.environ[ENV_URL], os.environ[NAME_ENV] = self.url, self.town

    def check_applied(self) -> None:
        """Refuse a town that no apply recorded a roster for in this Redis (nothing written)."""
        if self.store.roster_record() is None:
            raise TtError(
                f"town {self.town!r} has no applied state on {mask_url(self.url)}: no apply "
                "recorded its roster there",
                hint="check --town-name and --redis, and apply the town from its folder "
                "(tt apply, or a running tt conductor)",
            )

    def desired(self) -> Desired:
        """The roster the last apply recorded (read again only when its digest moved)."""
        found = self.store.roster_record()
        if found is None:
            self.check_applied()
            raise AssertionError  # (check_applied raised)
        digest, text = found
        if self._roster is None or self._roster[0] != digest:
            try:
                self._roster = (digest, roster_from_json(text))
            except NewerRoster as e:
                raise TtError(
                    f"town {self.town!r}: {e}",
                    hint=f"upgrade tt on node {self.node or socket.gethostname()} to the "
                    "controller's version",
                ) from e
            except ValueError as e:
                raise TtError(
                    f"town {self.town!r}: {e}",
                    hint="the town was applied by another version of tt; use the same on nodes",
                ) from e
        return self._roster[1]

    def roster(self, wait: float = ROSTER_WAIT) -> Desired:
        return self.desired()

    def stale(self, digest: str | None) -> bool:
        """The controller applied another roster since the last read (`digest`: the recorded
        one's, read with the rest of a node's pass)."""
        return self._roster is None or digest != self._roster[0]

    def files_paths(self) -> TownPaths:
        return self.paths

    def edit_paths(self) -> TownPaths:
        raise TtError(
            f"town {self.town!r} is reached through Redis here: it has no files to edit",
            hint="edit and apply the town from its folder",
        )

    def follows(self) -> str | None:
        return None
