"""The last clean apply, kept in `.tt/`: what an incremental apply starts from.

It holds the fingerprint and clean digest that apply recorded in Redis, its task tables
(`loader.Reuse`) and every task's clean row (`cleanstate`). It is a cache, never a source of
truth: `load` returns it only when it is intact and names the fingerprint Redis records as
clean, and `incremental` uses it only after Redis has proven, by walking its tasks, that they
still have the recorded digest. Missing, unreadable or stale: a full apply. Plain values in
`marshal` (no pickle: loading it runs no code), checked by a CRC.
"""

from __future__ import annotations

import marshal
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..spec.loader import Reuse
from ..store.cleanrows import Row
from ..town import TownPaths

FILE = "applied.snapshot"
# Bump when what is stored, or how, changes; another version of tt starts afresh.
FORMAT = f"tt-snapshot/2/{__version__}".encode()


@dataclass(frozen=True)
class Snapshot:
    fingerprint: str  # `controller.clean_fingerprint` of the files applied
    digest: str  # the clean digest recorded with it (`TaskOps.store_clean`)
    reuse: Reuse  # their task tables (and [meta] defaults)
    rows: tuple[Row, ...]  # every task's clean row in Redis then (`cleanstate.Row`)


def path(paths: TownPaths) -> Path:
    return paths.state_dir / FILE


def load(paths: TownPaths, fingerprint: str) -> Snapshot | None:
    """The snapshot of the apply that recorded `fingerprint`, if one is here and intact."""
    try:
        blob = path(paths).read_bytes()
    except OSError:
        return None
    head, _, body = blob.partition(b"\n")
    if head != FORMAT or len(body) < 4 or zlib.crc32(body[4:]) != int.from_bytes(body[:4], "big"):
        return None
    try:
        values = marshal.loads(body[4:])
        fp, digest, town, ids, tables, defaults, rows = values
        snap = Snapshot(fp, digest, Reuse(town, ids, tables, tuple(defaults)), rows)
    except (EOFError, ValueError, TypeError):  # damaged, or not what this version writes
        return None
    if snap.fingerprint != fingerprint or len(ids) != len(tables):
        return None
    if not all(isinstance(i, str) for i in ids) or not all(isinstance(t, bytes) for t in tables):
        return None  # a well-formed blob of the wrong content: never trusted
    return snap


def save(paths: TownPaths, snap: Snapshot) -> None:
    """Write atomically (a reader sees the old snapshot or the new one); best effort: a town
    whose `.tt` cannot be written is applied in full each time."""
    reuse = snap.reuse
    values = (snap.fingerprint, snap.digest, reuse.town_digest, reuse.ids, reuse.tables)
    body = marshal.dumps((*values, reuse.defaults, snap.rows))
    target = path(paths)
    tmp = target.with_name(f".{FILE}.{os.getpid()}")  # (tempfile costs ~5 ms to import)
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(FORMAT + b"\n" + zlib.crc32(body).to_bytes(4, "big") + body)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError:
        return
