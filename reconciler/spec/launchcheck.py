"""What no model process could be given, rejected when the files are checked rather than at each
attempt: a NUL byte in any string of the files (argv, environment and names end at one), and an
agent's workdir that exists but is not a folder. It changes nothing and starts nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .locate import JsonPath
from .tomldoc import TomlDoc

# A raw NUL is a TOML syntax error: only an escape puts one in a string (TOML 1.1 adds \x00).
_NUL_ESCAPE = re.compile(r"\\(?:u0000|U00000000|x00)")
NUL_HINT = "no process can be given a NUL byte; remove the \\u0000"
WORKTREE = "worktree"


def check_nul(doc: TomlDoc, data: dict[str, Any]) -> None:
    """Report every key and string value of `data` that holds a NUL byte (file:line, path)."""
    # The common case: no backslash at all (one memchr over the text, ~0.03 ms for 10,000
    # tasks), else no NUL escape (a regex scan), and no walk.
    if "\\" not in doc.text or not _NUL_ESCAPE.search(doc.text):
        return
    stack: list[tuple[JsonPath, Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if "\0" in value:
                doc.report(path, "contains a NUL byte", hint=NUL_HINT)
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\0" in key:
                    doc.report((*path, key), "the key contains a NUL byte", hint=NUL_HINT)
                stack.append(((*path, key), item))
        elif isinstance(value, list):
            stack.extend(((*path, i), item) for i, item in enumerate(value))


def check_workdirs(doc: TomlDoc, root: Path, data: dict[str, Any]) -> None:
    """Report each agent whose `workdir` names something that exists and is not a folder (a
    missing one is made when the agent first runs a model). On the parsed town.toml, so it is
    told beside the file's other problems."""
    agents = data.get("agents")
    for name, entry in agents.items() if isinstance(agents, dict) else ():
        wd = entry.get("workdir") if isinstance(entry, dict) else None
        if not isinstance(wd, str) or not wd or wd == WORKTREE:
            continue
        try:
            wrong = (root / wd).exists() and not (root / wd).is_dir()
        except (OSError, ValueError):  # a name the system refuses (too long, a NUL): not here
            continue
        if wrong:
            doc.report(
                ("agents", name, "workdir"),
                f"'{wd}' exists and is not a folder",
                hint="name a folder, or a path that does not exist yet",
            )
