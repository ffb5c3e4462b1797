"""Name rules shared by the loader, the CLI and key building.

Names and ids become Redis keys and file paths, so they are checked before any use.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
RESERVED_AGENT_NAMES = frozenset({"conductor", "supervisor"})


def is_valid_name(name: str) -> bool:
    return bool(NAME_RE.match(name)) and ".." not in name


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint like "did you mean 'developer'?" or None when nothing is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None
