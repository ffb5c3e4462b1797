"""One `tt` command's view of its town: paths, settings, desired state and a lazy store.

Commands build a `Session` once and pass it to engine functions, so each file is read and the
Redis connection is opened at most once per process, and only when a command needs it.
"""

from __future__ import annotations

from functools import cached_property

from ..errors import ValidationFailed
from ..spec import loader
from ..spec.desired import Desired, TownSettings
from ..store.client import Store, connect
from ..town import TownPaths, find_town


class Session:
    def __init__(self, paths: TownPaths) -> None:
        self.paths = paths

    @classmethod
    def find(cls, town_dir: str | None) -> Session:
        return cls(find_town(town_dir))

    @cached_property
    def settings(self) -> TownSettings:
        return loader.load_settings(self.paths)

    @cached_property
    def store(self) -> Store:
        return connect(self.settings.redis, self.paths, self.settings.name)

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
