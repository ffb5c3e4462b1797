"""One `tt` command's view of its town: paths, settings, desired state and a lazy store.

Commands build a `Session` once and pass it to engine functions, so each file is read and the
Redis connection is opened at most once per process, and only when a command needs it. Opening
it checks the town's identity (`identity`): no command acts on a town managed from another
source, unless it is the apply that adopts it. A town that follows a branch (`follow.py`) runs
the private copy of the branch's newest valid commit: the desired state is read from that copy
(`files_paths`), and a change of the local files is refused (`edit_paths`).
"""

from __future__ import annotations

import time
from functools import cached_property

from ..errors import ValidationFailed
from ..spec import loader
from ..spec.desired import Desired, TownSettings
from ..store.client import Store, connect
from ..town import TownPaths, find_town
from .followcopy import CopyPaths, Following, copy_paths
from .identity import Identity

ROSTER_WAIT = 10.0  # how long an agent's start waits for an invalid town.toml to be saved whole

SHARED = ("settings", "store")  # what `Session.reading` shares (cached properties)


class Session:
    """`lean`: the store's client is the lean one where it can be (`store.client.connect`): for
    a command whose Redis work is an apply, which then needs no redis-py import. `adopt`: `tt
    apply --adopt`, whose apply records this folder as the town's source (no check first)."""

    def __init__(self, paths: TownPaths, *, lean: bool = False, adopt: bool = False) -> None:
        self.paths = paths
        self.lean = lean
        self.adopt = adopt
        self.identity = Identity(paths)

    @classmethod
    def find(cls, town_dir: str | None, *, lean: bool = False, adopt: bool = False) -> Session:
        return cls(find_town(town_dir), lean=lean, adopt=adopt)

    @cached_property
    def settings(self) -> TownSettings:
        return loader.load_settings(self.paths)

    @cached_property
    def store(self) -> Store:
        store = connect(self.settings.redis, self.paths, self.settings.name, lean=self.lean)
        if not self.adopt:
            try:
                self.identity.check(store)
            except BaseException:
                store.close()
                raise
        return store

    def reading(self, paths: TownPaths) -> Session:
        """A session of the same town (its store and settings) whose desired state is read from
        `paths` (a followed commit's files being checked)."""
        other = Session(paths, lean=self.lean, adopt=self.adopt)
        other.__dict__.update({k: v for k, v in self.__dict__.items() if k in SHARED})
        return other

    def sharing(self) -> Session:
        """A fresh session of the same town over this one's store: a long-lived server (`tt
        serve`) reads the files anew for each request, over one Redis connection pool."""
        other = Session(self.paths, lean=self.lean, adopt=self.adopt)
        other.__dict__["store"] = self.store
        return other

    def follows(self) -> str | None:
        """The branch the town follows (`tt watch --follow`), None when it follows none."""
        return self.store.revisions()[2]

    def files_paths(self) -> TownPaths:
        """Where the desired state of what runs is read from: the followed copy while the town
        follows a branch and a commit of it was staged, else the local files. Asks Redis only
        when such a copy exists (a town that never followed reads no more than its files)."""
        if isinstance(self.paths, CopyPaths):
            return self.paths
        copy = copy_paths(self.paths)
        if copy is None or self.follows() is None:
            return self.paths
        return copy

    def edit_paths(self) -> TownPaths:
        """The local files, for a verb that edits or applies them: `Following` while the town
        follows a branch (the watcher would undo the change, or the change would undo the
        branch's)."""
        if (branch := self.follows()) is not None:
            raise Following(branch)
        return self.paths

    def stale(self, digest: str | None) -> bool:
        """Whether the desired state moved without a file event, given the recorded roster's
        digest just read (`remote.RemoteSession`: the roster in Redis); files are watched
        instead."""
        return False

    def desired(self) -> Desired:
        """Read and validate both files now (they may have changed since the last call)."""
        desired = self.validate().desired
        assert desired is not None  # validate raises otherwise
        return desired

    def roster(self, wait: float = ROSTER_WAIT) -> Desired:
        """What an agent process runs by: town.toml alone (`loader.check_roster`), read again
        while it is invalid for up to `wait` seconds (a save in progress), then
        `ValidationFailed`."""
        deadline = time.monotonic() + wait
        while True:
            result = loader.check_roster(self.files_paths())
            if result.desired is not None:
                return result.desired
            if time.monotonic() >= deadline:
                raise ValidationFailed(list(result.problems))
            time.sleep(0.2)

    def validate(self, reuse: loader.Reuse | None = None) -> loader.Validation:
        """`desired` with what a next check may reuse; `ValidationFailed` when invalid."""
        result = loader.check(self.files_paths(), reuse)
        if result.desired is None:
            raise ValidationFailed(list(result.problems))
        return result

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
