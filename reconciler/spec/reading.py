"""The bytes of a town file: read, within the size limits, decoded as UTF-8, digested.

What is wrong is reported as a `Problem` on the whole file (path `$`). Nothing here parses TOML
or knows what a town file should say (that is `loader`'s).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import Problem
from .bounds import MAX_FILE_BYTES, MAX_FILE_VALUES


def read(path: Path, problems: list[Problem], *, required: bool) -> tuple[str, str] | None:
    """(text, sha256 of the bytes), or None with a problem (or silently, for a missing optional)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if required:
            problems.append(
                Problem(path.name, "$", "file not found", hint="run `tt init` to create a town")
            )
        return None
    except OSError as e:
        problems.append(Problem(path.name, "$", f"cannot read it: {e.strerror or e}"))
        return None
    if too_large(path.name, raw, problems):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        problems.append(
            Problem(path.name, "$", f"not UTF-8 text (byte {e.start} is {raw[e.start]:#04x})", line)
        )
        return None
    return text, sha256(raw)


def encoded(name: str, text: str, problems: list[Problem]) -> bytes | None:
    """`text` as UTF-8, or None with a problem: a lone surrogate (an undecodable byte of a
    command-line argument, as Python passes it on) has no UTF-8 form."""
    try:
        return text.encode()
    except UnicodeEncodeError as e:
        line = text.count("\n", 0, e.start) + 1
        problems.append(Problem(name, "$", f"not UTF-8 text (character {e.start})", line))
        return None


def too_large(name: str, raw: bytes | None, problems: list[Problem]) -> bool:
    """Whether the file is over `MAX_FILE_BYTES`, or `MAX_FILE_VALUES` (then it is not parsed:
    the parser keeps ~180 bytes per value, 370 MB for `tags = [1, 1, ...]` in 4 MB)."""
    if raw is None:
        return False
    if len(raw) > MAX_FILE_BYTES:
        size = f"{len(raw) / 2**20:.1f} MiB, more than a town file may be "
        limit = f"{MAX_FILE_BYTES // 2**20} MiB"
    else:
        # Every value of a TOML file but the first of a line or array follows a newline or a
        # comma: their count bounds the number of values (commas in strings count too).
        values = raw.count(b"\n") + raw.count(b",")
        if values <= MAX_FILE_VALUES:
            return False
        size, limit = (
            f"{values:,} lines and commas, more than a town file may have ",
            (f"{MAX_FILE_VALUES:,}"),
        )
    problems.append(
        Problem(
            name,
            "$",
            f"the file is too large to check: {size}({limit})",
            hint="split the work over several towns, or shorten the longest texts",
        )
    )
    return True


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()
