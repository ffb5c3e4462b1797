"""The last clean apply, kept in `.tt/`: what an incremental apply starts from.

It holds the fingerprint and clean digest that apply recorded in Redis, its task tables (their
texts) with their checked specs (`loader.Reuse`), and every task's clean row (`cleanstate`).
It is a cache: `load` returns it only when it is intact, written by this tt for this tasks
schema and names the fingerprint Redis records as clean; a spec it holds stands only for a
table found again word for word; `incremental` reads Redis through it only after Redis has
proven, by walking its tasks, that they still have the recorded digest. Missing, unreadable
or stale: a full apply. Plain values in `marshal` (no pickle: loading it runs no code),
checked by a CRC.
"""

from __future__ import annotations

import hashlib
import marshal
import operator
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .. import __version__
from ..spec.desired import TASK_FIELDS
from ..spec.loader import Reuse
from ..spec.schemacheck import schema_dir
from ..store.cleanrows import Row
from ..town import TownPaths

FILE = "applied.snapshot"
# Bump when what is stored, or how, changes; another version of tt, another tasks schema or
# another set of task fields (the specs are stored by position) starts afresh.
_LAYOUT = f"tt-snapshot/5/{__version__}/{','.join(TASK_FIELDS)}"


@cache
def _format() -> bytes:
    """The first line of a snapshot: `_LAYOUT` and the digest of the tasks schema, by which
    the tables it holds were found valid."""
    schema = (schema_dir() / "tasks.schema.json").read_bytes()
    return f"{_LAYOUT}/{hashlib.sha256(schema).hexdigest()[:16]}".encode()


@dataclass(frozen=True)
class Snapshot:
    """The last clean apply, as `.tt/applied.snapshot` keeps it."""

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
    if (
        head != _format()
        or len(body) < 4
        or zlib.crc32(body[4:]) != int.from_bytes(body[:4], "big")
    ):
        return None
    try:
        values = marshal.loads(body[4:])
        fp, digest, town, ids, tables, defaults, spec_chunks, pieced, row_chunks = values
        if fp != fingerprint:
            return None
        specs, rows = _unchunked(spec_chunks), _unchunked(row_chunks)
        reuse = Reuse(town, ids, tables, tuple(defaults), specs, pieced is True)
        snap = Snapshot(fp, digest, reuse, rows)
    except (EOFError, ValueError, TypeError):  # damaged, or not what this version writes
        return None
    if not len(ids) == len(tables) == len(specs):
        return None
    width = len(TASK_FIELDS)
    if (
        not all(type(i) is str for i in ids)
        or not all(type(t) is (str if reuse.pieced else bytes) for t in tables)
        or not all(type(v) is dict and len(v) == width for v in specs)
        or not all(v["id"] == i for v, i in zip(specs, ids, strict=True))
    ):
        return None  # a well-formed blob of the wrong content: never trusted
    _loaded["specs"], _loaded["rows"] = (specs, spec_chunks), (rows, row_chunks)
    return snap


def save(paths: TownPaths, snap: Snapshot) -> None:
    """Write atomically (a reader sees the old snapshot or the new one); best effort: a town
    whose `.tt` cannot be written is applied in full each time."""
    reuse = snap.reuse
    values = (snap.fingerprint, snap.digest, reuse.town_digest, reuse.ids, reuse.tables)
    specs, rows = _chunked("specs", reuse.specs), _chunked("rows", snap.rows)
    body = marshal.dumps((*values, reuse.defaults, specs, reuse.pieced, rows))
    target = path(paths)
    tmp = target.with_name(f".{FILE}.{os.getpid()}")  # (tempfile costs ~5 ms to import)
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(_format() + b"\n" + zlib.crc32(body).to_bytes(4, "big") + body)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError:
        return


def preparer(reuse: Callable[[], Reuse | None]) -> Callable[[], None]:
    """What `save` marshals of the files' specs, made ahead (an apply calls it while Redis runs
    its last batch; `save` finds those chunks made): `reuse` gives them."""

    def prepare() -> None:
        try:
            made = reuse()
            if made is not None:
                _chunked("specs", made.specs)
        except Exception:  # (only a head start: `save` does it, or says what failed)
            return

    return prepare


# Specs and rows are marshalled in chunks, so that the save after an edit marshals again only
# the chunks holding what changed: the others are the same objects `load` made (a spec's
# fields are never changed in place), and keep their bytes.
_CHUNK = 500
_loaded: dict[str, tuple[tuple[Any, ...], tuple[bytes, ...]]] = {}


def _unchunked(chunks: tuple[bytes, ...]) -> tuple[Any, ...]:
    if type(chunks) is not tuple or not all(type(c) is bytes for c in chunks):
        raise TypeError("not chunks")
    out: list[Any] = []
    for chunk in chunks:
        part = marshal.loads(chunk)
        if type(part) is not tuple:
            raise TypeError("not a chunk")
        out.extend(part)
    return tuple(out)


def _chunked(name: str, values: tuple[Any, ...]) -> tuple[bytes, ...]:
    old, old_chunks = _loaded.get(name, ((), ()))
    out = []
    for k, start in enumerate(range(0, len(values), _CHUNK)):
        part = values[start : start + _CHUNK]
        before = old[start : start + _CHUNK] if k < len(old_chunks) else ()
        same = len(part) == len(before) and all(map(operator.is_, part, before))
        out.append(old_chunks[k] if same else marshal.dumps(part))
    _loaded[name] = (values, tuple(out))  # (what the next save in this process starts from)
    return tuple(out)
