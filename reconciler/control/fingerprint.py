"""The files' fingerprint: which bytes of town.toml and tasks.toml an apply saw.

Parsing and diffing 10,000 tasks takes about a second; a periodic resync or a CI re-run mostly
finds nothing to do. An apply whose plan comes out with no records at all records the files'
fingerprint and a digest of the task definitions (`lua/clean.lua`); every task writer clears
them. The next apply of byte-identical files runs that script instead of planning: it passes
only if Redis still holds those definitions and nothing needs a repair (a ready task outside
its queue, a blocked one with nothing to wait for). Agents are diffed as usual: town.toml is
small. Anything else plans in full, so the result is the same as planning, only sooner.
"""

from __future__ import annotations

import hashlib

from .. import __version__
from ..town import TownPaths

# Part of the recorded fingerprint of a clean town: another version of tt plans afresh.
CLEAN_FORMAT = f"1/{__version__}"


def file_fingerprint(paths: TownPaths) -> tuple[str | None, str | None]:
    """(fingerprint of town.toml + tasks.toml as they are now, town.toml's text); (None, None)
    when a file cannot be read as the loader would (it will report why)."""
    try:
        town_raw = paths.town_file.read_bytes()
        town_text = town_raw.decode("utf-8")
        try:
            tasks_raw = paths.tasks_file.read_bytes()
        except FileNotFoundError:
            tasks_raw = b""
    except (OSError, UnicodeDecodeError):
        return None, None
    digests = {
        "town.toml": hashlib.sha256(town_raw).hexdigest(),
        "tasks.toml": hashlib.sha256(tasks_raw).hexdigest(),
    }
    return clean_fingerprint(digests), town_text


def clean_fingerprint(digests: dict[str, str]) -> str:
    """The same digests the loader records (sha256 of each file's bytes; b"" when absent)."""
    return "/".join((CLEAN_FORMAT, digests.get("town.toml", ""), digests.get("tasks.toml", "")))


def digests_of(fingerprint: str) -> dict[str, str]:
    """The file digests a `clean_fingerprint` was made of."""
    _, town, tasks = fingerprint.rsplit("/", 2)
    return {"town.toml": town, "tasks.toml": tasks}
