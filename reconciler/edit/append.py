"""Appending one `[[tasks]]` table to tasks.toml as text, without a tomlkit parse of the file.

tomlkit needs seconds to parse (and re-parse, to check its rendering) a 10,000-task file; rtoml
reads it in tens of milliseconds. The new table is still rendered by tomlkit (for its escaping)
and goes where tomlkit's edit would put it, with the same blank line. A layout this does not
recognise returns None, and the caller makes tomlkit's own edit instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import rtoml
import tomlkit
from tomlkit.items import Table

from .values import ends_blank

R = TypeVar("R")

# A `[[tasks]]` header line, however spaced (a quoted or dotted spelling is left to tomlkit).
TASKS_HEADER = re.compile(r"^([ \t]*)(\[\[[ \t]*tasks[ \t]*\]\])[ \t]*(?:#[^\r\n]*)?\r?$", re.M)
ANY_HEADER = re.compile(r"^[ \t]*\[", re.M)


def append_task_text(
    text: str, new_table: Callable[[list[str]], tuple[R, Table]]
) -> tuple[str, R] | None:
    """`text` with the table `new_table(existing ids)` appended to its tasks, or None when the
    file's layout is one only tomlkit's edit handles (or its text is not valid TOML).

    `new_table` may raise (a duplicate id, an unknown parent): nothing is written then.
    """
    data = loads(text)
    tasks = data.get("tasks") if data is not None else None
    if data is None or not isinstance(tasks, list) or not tasks:
        return None  # no tasks yet, or not an array of tables: tomlkit words the problem
    headers = list(TASKS_HEADER.finditer(text))
    # As many header lines as tasks: then none of them is text inside a multi-line string, and
    # the last one is the last task's. tomlkit copies an indented or spaced header's spelling.
    if len(headers) != len(tasks) or any(m.group(1) or m.group(2) != "[[tasks]]" for m in headers):
        return None
    if ANY_HEADER.search(text, headers[-1].end()):
        return None  # a table after the last task (or text that looks like one): tomlkit places it
    ids = [str(t["id"]) for t in tasks if isinstance(t, dict) and "id" in t]
    result, table = new_table(ids)
    # One blank line between tasks, unless the file already ends with one (as tomlkit's edit).
    gap = "" if ends_blank(text) else "\n" if text.endswith("\n") else "\n\n"
    new = text + gap + _render(table)
    # Read back: the old data with exactly the new task at the end, or tomlkit's edit decides.
    if loads(new) != {**data, "tasks": [*tasks, table.unwrap()]}:
        return None
    return new, result


def _render(table: Table) -> str:
    doc = tomlkit.document()
    aot = tomlkit.aot()
    aot.append(table)
    doc.add("tasks", aot)
    return doc.as_string()


def loads(text: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = rtoml.loads(text)
    except (ValueError, RecursionError):
        return None
    return data
