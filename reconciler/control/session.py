"""One `tt` command's view of its town: paths, settings, desired state and a lazy store.

Commands build a `Session` once and pass it to engine functions, so each file is read and the
Redis connection is opened at most once per process, and only when a command needs it. Opening
it checks the town's identity (`identity`): no command acts on a town managed from another
source, unless it is the apply that adopts it.
"""

from __future__ import annotations

from functools import cached_property

from ..errors import ValidationFailed
from ..spec import loader
from ..spec.desired import Desired, TownSettings
from ..store.client import Store, connect
from ..town import TownPaths, find_town
from .identity import Identity


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

    def desired(self) -> Desired:
        """Read and validate both files now (they may have changed since the last call)."""
        desired = self.validate().desired
        assert desired is not None  # validate raises otherwise
        return desired

    def validate(self, reuse: loader.Reuse | None = None) -> loader.Validation:
        """`desired` with what a next check may reuse; `ValidationFailed` when invalid."""
        result = loader.check(self.paths, reuse)
        if result.desired is None:
            raise ValidationFailed(list(result.problems))
        return result

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
