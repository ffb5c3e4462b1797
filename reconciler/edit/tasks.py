"""The tasks.toml edits: append a task, set a task's status, write states back; readable ids.

Each goes through one `transaction`; the new `[[tasks]]` table follows the file's blank-line
convention and every other line stays byte-identical.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping
from pathlib import Path

import tomlkit
from tomlkit.items import AoT, Table
from tomlkit.toml_document import TOMLDocument

from ..errors import NotFound, TtError
from ..spec.names import did_you_mean, is_valid_name, name_problem
from ..town import TownPaths
from .append import append_task_text
from .remove import remove_task_text
from .transaction import Validate, edit_tasks, mutated, transact
from .values import ends_blank, set_fields, table_of

GENERATED_ID_MAX = 48  # readable in `tt status` tables, and a "-N" suffix still fits in 63


def append_task(
    paths: TownPaths,
    *,
    description: str,
    agent: str | None = None,
    role: str | None = None,
    task_id: str | None = None,
    after: str | None = None,
    extra: Mapping[str, object] | None = None,
    taken: Collection[str] = (),
    validate: Validate | None = None,
) -> str:
    """Append a pending `[[tasks]]` entry and return its id.

    `after` becomes its `parent`; `extra` adds other fields (tags, depends_on, retries, ...).
    A generated id also avoids `taken` (e.g. ids of tasks that live only in Redis).
    """
    path = paths.tasks_file

    def new_table(ids: list[str]) -> tuple[str, Table]:
        if task_id is None:
            new_id = new_task_id(description, {*ids, *taken})
        elif not is_valid_name(task_id):
            raise TtError(f"invalid task id {task_id!r}: {name_problem(task_id)}")
        elif task_id in ids:
            raise TtError(
                f"{path}: a task with id {task_id!r} already exists",
                hint="choose another id, or leave it out to get a generated one",
            )
        else:
            new_id = task_id
        if after is not None and after not in ids:
            raise NotFound(f"{path}: no task {after!r} to run after", did_you_mean(after, ids))
        fields: dict[str, object] = {
            "id": new_id,
            "description": description,
            "agent": agent,
            "role": role,
            "status": "pending",
            "parent": after,
        }
        for key, value in (extra or {}).items():
            if key in fields:
                raise ValueError(f"extra field {key!r} has its own parameter")
            fields[key] = value
        return new_id, table_of(fields)

    def mutate(doc: TOMLDocument) -> str:
        tasks = _tasks(doc, path)
        new_id, table = new_table([str(t["id"]) for t in tasks if "id" in t])
        existing = doc.get("tasks")
        if isinstance(existing, AoT):
            if len(existing):
                # One blank line between tasks, unless the last one already ends with one.
                last = existing[-1].as_string()
                blank = "\n" if last.endswith("\n") else "\n\n"
                table.trivia.indent = "" if ends_blank(last) else blank
            existing.append(table)
        else:
            aot = tomlkit.aot()
            aot.append(table)
            doc.add("tasks", aot)
        return new_id

    def change(text: str) -> tuple[str, str]:
        # The common case, a file whose tasks come last, without tomlkit's parse of it all.
        return append_task_text(text, new_table) or mutated(path, text, mutate)

    return transact(paths, "tasks", change, validate)


def set_task_status(
    paths: TownPaths, task_id: str, status: str, validate: Validate | None = None
) -> None:
    """Set `status = STATUS` on one task (e.g. "cancelled"); an unknown id is a `NotFound`."""
    path = paths.tasks_file
    edit_tasks(
        paths, lambda doc: set_fields(_task(doc, path, task_id), {"status": status}), validate
    )


def remove_task(paths: TownPaths, task_id: str, validate: Validate | None = None) -> None:
    """Delete one task's `[[tasks]]` table (with the comments right above it); every other
    line stays as it was. An unknown id is a `NotFound`."""
    path = paths.tasks_file

    def mutate(doc: TOMLDocument) -> None:
        table = _task(doc, path, task_id)
        aot = doc["tasks"]
        assert isinstance(aot, AoT)
        del aot[next(i for i, t in enumerate(aot) if t is table)]

    def change(text: str) -> tuple[str, None]:
        new = remove_task_text(text, task_id)
        return (new, None) if new is not None else mutated(path, text, mutate)

    transact(paths, "tasks", change, validate)


def write_back(
    paths: TownPaths,
    updates: Mapping[str, Mapping[str, object]],
    validate: Validate | None = None,
) -> list[str]:
    """`tt sync pull`: set the given fields of each task in place (None removes the field).

    Ids that are not in the file (tasks created with --no-save) are skipped. Every other line
    stays byte-identical. Returns the ids whose entry changed.
    """
    path = paths.tasks_file

    def mutate(doc: TOMLDocument) -> list[str]:
        # reversed(): with a duplicate id (invalid anyway) the first entry wins, as in _task.
        by_id = {str(t["id"]): t for t in reversed(_tasks(doc, path)) if "id" in t}
        return [i for i, fields in updates.items() if i in by_id and set_fields(by_id[i], fields)]

    return edit_tasks(paths, mutate, validate)


def new_task_id(description: str, taken: Collection[str]) -> str:
    """A readable id from free text, unique among `taken`: "Build the UI" → "t-build-the-ui"."""
    # NFKD splits accents off their letters, so "Café" becomes "cafe" instead of "caf".
    text = unicodedata.normalize("NFKD", description.replace("'", "").replace("’", ""))
    words = re.findall(r"[a-z0-9]+", text.encode("ascii", "ignore").decode().lower())
    room = GENERATED_ID_MAX - len("t-")
    slug = ""
    for word in words:
        longer = f"{slug}-{word}" if slug else word
        if len(longer) > room:
            break
        slug = longer
    base = "t-" + (slug or (words[0][:room] if words else "task"))
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _tasks(doc: TOMLDocument, path: Path) -> list[Table]:
    tasks = doc.get("tasks")
    if tasks is None:
        return []
    if not isinstance(tasks, AoT):
        raise TtError(
            f"{path}: `tasks` is not an array of tables, so tt cannot edit it",
            hint="write each task as a [[tasks]] section, as in Tinytown's files",
        )
    return list(tasks)


def _task(doc: TOMLDocument, path: Path, task_id: str) -> Table:
    tasks = _tasks(doc, path)
    for task in tasks:
        if task.get("id") == task_id:
            return task
    ids = [str(t["id"]) for t in tasks if "id" in t]
    raise NotFound(f"{path}: no task with id {task_id!r}", did_you_mean(task_id, ids))
