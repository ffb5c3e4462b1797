"""Removing one `[[tasks]]` table from tasks.toml as text (`tt backlog remove`), with the
comment lines written right above its header and every other line byte-identical.

tomlkit keeps the comments above a table header in the table before it, so deleting a table
there takes the next task's comment along and leaves its own behind. Here a table is its header,
its lines up to its last key/value line and the comment lines directly after those (no blank
line between), and the comment lines directly above its header when a blank line (or the start
of the file) comes before them; comment lines directly after the lines of the table before are
that table's, and comments after a blank line below it are the next table's or the file's: both
stay. The result is read back (rtoml): the old data less exactly that task, or None and tomlkit's
edit decides.
"""

from __future__ import annotations

from .append import ANY_HEADER, TASKS_HEADER, loads


def remove_task_text(text: str, task_id: str) -> str | None:
    """`text` without the first task whose id is `task_id`, or None when the layout is one only
    tomlkit's edit handles (or the text is not valid TOML, or has no such task)."""
    data = loads(text)
    tasks = data.get("tasks") if data is not None else None
    if data is None or not isinstance(tasks, list):
        return None
    index = next(
        (i for i, t in enumerate(tasks) if isinstance(t, dict) and t.get("id") == task_id), None
    )
    headers = list(TASKS_HEADER.finditer(text))
    if index is None or len(headers) != len(tasks):
        return None
    if any(m.group(1) or m.group(2) != "[[tasks]]" for m in headers):
        return None
    lines = text.splitlines(keepends=True)
    first = text.count("\n", 0, headers[index].start())  # the header's line
    after = ANY_HEADER.search(text, headers[index].end())
    stop = text.count("\n", 0, after.start()) if after else len(lines)  # the next header's line
    start = first
    while start > 0 and _is_comment(lines[start - 1]):
        start -= 1
    if start > 0 and lines[start - 1].strip():
        start = first  # they follow the table before's lines directly: that table's
    end = first + 1  # one past its last key/value line
    for n in range(first + 1, stop):
        if lines[n].strip() and not _is_comment(lines[n]):
            end = n + 1
    while end < stop and _is_comment(lines[end]):
        end += 1  # its own trailing comments, directly after its lines
    # No double blank line where it was: a blank above it and below it become one (and the
    # file does not start with one).
    if start == 0 or not lines[start - 1].strip():
        while end < len(lines) and not lines[end].strip():
            end += 1
    new = "".join(lines[:start] + lines[end:])
    if loads(new) != {**data, "tasks": tasks[:index] + tasks[index + 1 :]}:
        return None
    return new


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")
