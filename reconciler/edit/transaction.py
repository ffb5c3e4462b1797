"""The one locked read-modify-write of a town file that every edit goes through.

Under `.tt/edit.lock`: read, change, keep CRLF files CRLF, validate the would-be pair of files with
an injected callable, write atomically. A failed step writes nothing. It knows no TOML layout.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

import tomlkit
from tomlkit.exceptions import ParseError, TOMLKitError
from tomlkit.toml_document import TOMLDocument

from ..errors import TtError
from ..filelock import atomic_write_text, discard_stale_temps, exclusive_lock
from ..town import TownPaths

R = TypeVar("R")
# Called with (town_text, tasks_text) of the would-be files; raises when they are invalid.
Validate = Callable[[str, str], None]

LOCK_FILE = "edit.lock"
BOM = "\ufeff"


def edit_tasks(
    paths: TownPaths, mutate: Callable[[TOMLDocument], R], validate: Validate | None = None
) -> R:
    """Change tasks.toml in place (created when missing) and return what `mutate` returns."""
    path = paths.tasks_file
    return transact(paths, "tasks", lambda text: mutated(path, text, mutate), validate)


def edit_town(
    paths: TownPaths, mutate: Callable[[TOMLDocument], R], validate: Validate | None = None
) -> R:
    """Change town.toml in place and return what `mutate` returns."""
    path = paths.town_file
    return transact(paths, "town", lambda text: mutated(path, text, mutate), validate)


def transact(
    paths: TownPaths,
    which: Literal["town", "tasks"],
    change: Callable[[str], tuple[str, R]],
    validate: Validate | None,
) -> R:
    """Replace one file's text with `change(text)[0]` and return `change(text)[1]`."""
    target, other = (
        (paths.town_file, paths.tasks_file)
        if which == "town"
        else (paths.tasks_file, paths.town_file)
    )
    # One lock for both files: validation reads the pair, so they must not move under it.
    with exclusive_lock(paths.state_dir / LOCK_FILE):
        discard_stale_temps(target)
        old = _read(target)
        if old is None and which == "town":
            raise TtError(
                f"{target} does not exist", hint="run `tt init --name NAME` to create a town"
            )
        # A UTF-8 byte order mark is not TOML (tomlkit reads it as a key): the edit sees the
        # text after it, and the file keeps it.
        bom = BOM if old and old.startswith(BOM) else ""
        new, result = change((old or "")[len(bom) :])
        new = bom + new
        if old and _uses_crlf(old):
            # tomlkit writes new lines with LF; a CRLF file should not end up with both.
            new = re.sub(r"(?<!\r)\n", "\r\n", new)
        if new == (old or ""):
            return result  # nothing to write: keep the mtime, so no watcher wakes up
        if validate is not None:
            other_text = _read(other) or ""
            validate(*((new, other_text) if which == "town" else (other_text, new)))
        atomic_write_text(target, new)
        return result


def _read(path: Path) -> str | None:
    try:
        # Bytes, not read_text(): universal newlines would turn a CRLF file into an LF one.
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as e:
        raise TtError(f"{path}: cannot edit it, it is not UTF-8 text ({e})") from e


def _uses_crlf(text: str) -> bool:
    end = text.find("\n")
    return end > 0 and text[end - 1] == "\r"


def parse(path: Path, text: str) -> TOMLDocument:
    """The file's tomlkit document; invalid TOML is a `TtError` naming file, line and column."""
    try:
        return tomlkit.parse(text)
    except TOMLKitError as e:
        where = f"{path}:{e.line}:{e.col}" if isinstance(e, ParseError) else str(path)
        raise TtError(
            f"{where}: cannot edit it, it is not valid TOML: {e}",
            hint="fix the file first; `tt validate` lists every problem",
        ) from e


def mutated(path: Path, text: str, mutate: Callable[[TOMLDocument], R]) -> tuple[str, R]:
    """The text after `mutate` changed the parsed document in place, and what it returned."""
    doc = parse(path, text)
    result = mutate(doc)
    return render(path, doc), result


def render(path: Path, doc: TOMLDocument) -> str:
    """The document's text, checked to read back as the same data before anything trusts it."""
    text = doc.as_string()
    try:
        same = tomlkit.parse(text).unwrap() == doc.unwrap()
    except TOMLKitError:
        same = False
    if not same:
        raise TtError(
            f"{path}: this edit would not read back as intended (a tomlkit rendering problem); "
            "nothing was changed",
            hint="make the change by hand",
        )
    return text


def replace_files(
    paths: TownPaths, town_text: str, tasks_text: str | None, validate: Validate | None = None
) -> list[str]:
    """Both files' texts replaced as given (`tt rollback`; tasks_text None: no tasks.toml), the
    pair validated first, under the edit lock; each file written atomically, tasks.toml first.
    Returns the names of the files that changed."""
    with exclusive_lock(paths.state_dir / LOCK_FILE):
        if validate is not None:
            validate(town_text, tasks_text or "")
        changed = []
        for path, text in ((paths.tasks_file, tasks_text), (paths.town_file, town_text)):
            discard_stale_temps(path)
            if _read(path) == text:
                continue
            if text is None:
                path.unlink()
            else:
                atomic_write_text(path, text)
            changed.append(path.name)
        return changed
