"""A town's identity: the source that manages it, recorded in Redis by its first apply.

The source is the git remote of the town's folder plus the folder's path inside the repository
(every clone of the repository is the same source: `git.normalize_remote`), else the host and
the folder's absolute path. A command from a folder of another source under the same town name
on the same Redis is refused before it reads or writes anything; `tt apply --adopt` records the
new source. Folders found to be the source are noted in the record, so git runs once per folder.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from .. import git
from ..errors import TtError, mask_url
from ..town import TownPaths

FOLDER_PREFIX = "folder:"


class SourceStore(Protocol):
    town: str
    url: str

    def town_source(self) -> dict[str, str]: ...
    def claim_source(
        self, key: str, fields: dict[str, str], folder: str, *, adopt: bool
    ) -> dict[str, str]: ...


class TownClaimed(TtError):
    """The town name is managed from another source on this Redis: nothing was done."""


@dataclass(frozen=True)
class Source:
    """Where a town is managed from: a git checkout's remote and folder, or a path."""

    key: str  # compared: one spelling for every clone (`git:HOST/PATH:DIR`, `path:HOST:/DIR`)
    shown: str  # what people read: the remote as configured (password masked) and the dir


def source_of(paths: TownPaths, host: str | None = None) -> Source:
    """The source of the town folder `paths.root` (runs git)."""
    found = git.checkout_of(paths.root)
    if found is not None and found.remote:
        inside = f":{found.prefix}" if found.prefix else ""
        key = f"git:{git.normalize_remote(found.remote)}{inside}"
        return Source(key, f"{mask_url(found.remote)}{inside}")
    host = host or socket.gethostname()
    return Source(f"path:{host}:{paths.root}", f"{host}:{paths.root}")


class Identity:
    """One folder's view of its town's identity (one per `Session`)."""

    def __init__(self, paths: TownPaths) -> None:
        self.paths = paths
        self.host = socket.gethostname()
        self.folder = f"{FOLDER_PREFIX}{self.host}:{paths.root}"

    @cached_property
    def source(self) -> Source:
        return source_of(self.paths, self.host)

    def check(self, store: SourceStore) -> None:
        """Refuse (`TownClaimed`) when the town is recorded as managed from another source.
        A town with no record yet passes: its first apply records it (`claim`)."""
        record = store.town_source()
        if not record.get("key") or record.get(self.folder):
            return
        self._claim(store, adopt=False)

    def claim(self, store: SourceStore, *, adopt: bool = False) -> bool:
        """For an apply, under the apply lock: record this folder's source if none is (or, with
        `adopt`, in place of another); refuse when another source is recorded. True when the
        town was moved here from another source."""
        record = store.town_source()
        if not adopt and record.get("key") and record.get(self.folder):
            return False
        before = record.get("key")
        self._claim(store, adopt=adopt)
        return adopt and bool(before) and before != self.source.key

    def _claim(self, store: SourceStore, *, adopt: bool) -> None:
        fields = {"source": self.source.shown, "by": f"{self.host}:{os.getpid()}"}
        fields["first_folder"] = f"{self.host}:{self.paths.root}"
        record = store.claim_source(self.source.key, fields, self.folder, adopt=adopt)
        if record.get("key") != self.source.key:
            raise refused(store, record, self.paths)


def refused(store: SourceStore, record: dict[str, str], paths: TownPaths) -> TownClaimed:
    since = float(record.get("recorded_at") or 0)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(since)) if since else "?"
    return TownClaimed(
        f"town '{store.town}' on {mask_url(store.url)} is managed from "
        f"{record.get('source', '?')}; this folder is {paths.root} (use another [town] name, or "
        "tt apply --adopt to move it here)",
        hint=f"recorded {when} from {record.get('first_folder', '?')}",
    )
