"""Name rules shared by the loader, the CLI and key building.

Names and ids become Redis keys and file paths, so they are checked before any use.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

# \Z, not $: `$` also matches before a final newline, and "abc\n" passed as a name.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}\Z")
RESERVED_AGENT_NAMES = frozenset({"conductor", "supervisor"})


NAME_RULE = (
    "use lowercase letters, digits, '.', '_' and '-' (at most 63, starting with a letter or digit)"
)


def is_valid_name(name: str) -> bool:
    return bool(NAME_RE.match(name)) and ".." not in name


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid name or id (None when it is): the one wording of the rule."""
    if is_valid_name(name):
        return None
    if len(name) > 63:
        return f"it is {len(name)} characters long, at most 63"
    if ".." in name and NAME_RE.match(name):
        return "'..' is not allowed"
    return NAME_RULE


def slug(text: str, fallback: str = "") -> str:
    """A valid name made of free text ("My Repo@main" → "my-repo-main"), else `fallback`."""
    s = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    s = re.sub(r"-{2,}", "-", s).replace("..", ".")
    s = s[:63].rstrip("-._")
    return s if is_valid_name(s) else fallback


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint like "did you mean 'developer'?" or None when nothing is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None
