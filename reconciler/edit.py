"""Edits of town.toml and tasks.toml for the CLI verbs that change what should exist.

Each edit is one transaction under `.tt/edit.lock`: read, change with tomlkit (comments, order and
formatting survive), validate with an injected callable, write atomically; a failed step writes
nothing. No Redis, no processes, and no `loader` import: validation is passed in.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Literal, TypeVar

import tomlkit
from tomlkit.exceptions import ParseError, TOMLKitError
from tomlkit.items import AoT, InlineTable, Item, Table
from tomlkit.toml_document import TOMLDocument

from .errors import NotFound, TtError
from .filelock import atomic_write_text, discard_stale_temps, exclusive_lock
from .names import RESERVED_AGENT_NAMES, did_you_mean, is_valid_name
from .town import TownPaths

R = TypeVar("R")
# Called with (town_text, tasks_text) of the would-be files; raises when they are invalid.
Validate = Callable[[str, str], None]

LOCK_FILE = "edit.lock"
GENERATED_ID_MAX = 48  # readable in `tt status` tables, and a "-N" suffix still fits in 63
_NAME_RULE = (
    "use lowercase letters, digits, '.', '_' and '-' (at most 63, starting with a letter or digit)"
)


# -- transactions ------------------------------------------------------------------------------


def edit_tasks(
    paths: TownPaths, mutate: Callable[[TOMLDocument], R], validate: Validate | None = None
) -> R:
    """Change tasks.toml in place (created when missing) and return what `mutate` returns."""
    path = paths.tasks_file
    return _transact(paths, "tasks", lambda text: _mutated(path, text, mutate), validate)


def edit_town(
    paths: TownPaths, mutate: Callable[[TOMLDocument], R], validate: Validate | None = None
) -> R:
    """Change town.toml in place and return what `mutate` returns."""
    path = paths.town_file
    return _transact(paths, "town", lambda text: _mutated(path, text, mutate), validate)


def _transact(
    paths: TownPaths,
    which: Literal["town", "tasks"],
    change: Callable[[str], tuple[str, R]],
    validate: Validate | None,
) -> R:
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
        new, result = change(old or "")
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


def _parse(path: Path, text: str) -> TOMLDocument:
    try:
        return tomlkit.parse(text)
    except TOMLKitError as e:
        where = f"{path}:{e.line}:{e.col}" if isinstance(e, ParseError) else str(path)
        raise TtError(
            f"{where}: cannot edit it, it is not valid TOML: {e}",
            hint="fix the file first; `tt validate` lists every problem",
        ) from e


def _mutated(path: Path, text: str, mutate: Callable[[TOMLDocument], R]) -> tuple[str, R]:
    doc = _parse(path, text)
    result = mutate(doc)
    return _render(path, doc), result


def _render(path: Path, doc: TOMLDocument) -> str:
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


# -- tasks.toml --------------------------------------------------------------------------------


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

    def mutate(doc: TOMLDocument) -> str:
        tasks = _tasks(doc, path)
        ids = [str(t["id"]) for t in tasks if "id" in t]
        if task_id is None:
            new_id = new_task_id(description, {*ids, *taken})
        elif not is_valid_name(task_id):
            raise TtError(f"invalid task id {task_id!r}: {_NAME_RULE}")
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
        table = tomlkit.table()
        for key, value in fields.items():
            if value is not None:
                table.raw_append(key, _value(value))
        existing = doc.get("tasks")
        if isinstance(existing, AoT):
            if len(existing):
                # One blank line between tasks, unless the last one already ends with one.
                last = existing[-1].as_string()
                blank = "\n" if last.endswith("\n") else "\n\n"
                table.trivia.indent = "" if _ends_blank(last) else blank
            existing.append(table)
        else:
            aot = tomlkit.aot()
            aot.append(table)
            doc.add("tasks", aot)
        return new_id

    return edit_tasks(paths, mutate, validate)


def set_task_status(
    paths: TownPaths, task_id: str, status: str, validate: Validate | None = None
) -> None:
    """Set `status = STATUS` on one task (e.g. "cancelled"); an unknown id is a `NotFound`."""
    path = paths.tasks_file
    edit_tasks(
        paths, lambda doc: _set_fields(_task(doc, path, task_id), {"status": status}), validate
    )


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
        return [i for i, fields in updates.items() if i in by_id and _set_fields(by_id[i], fields)]

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


# -- town.toml ---------------------------------------------------------------------------------


def add_agent(
    paths: TownPaths, name: str, fields: Mapping[str, object], validate: Validate | None = None
) -> None:
    """Add `[agents.NAME]` after the last agent; an existing name is refused."""
    _check_agent_name(name)
    path = paths.town_file

    def change(text: str) -> tuple[str, None]:
        agents = _agents(_parse(path, text), path)
        if name in agents:
            raise TtError(
                f"{path}: agent {name!r} already exists",
                hint=f"edit [agents.{name}] in the file, or remove it first (`tt kill {name}`)",
            )

        def plain(doc: TOMLDocument) -> None:
            if "agents" not in doc:
                doc.add("agents", tomlkit.table(is_super_table=True))
            roster = doc["agents"]
            inline = isinstance(roster, InlineTable)
            roster[name] = _value(fields) if inline else _agent_table(fields)

        tidy = _tidy_or_plain(path, text, lambda: _insert_agent_text(text, name, fields), plain)
        return tidy, None

    _transact(paths, "town", change, validate)


def remove_agent(paths: TownPaths, name: str, validate: Validate | None = None) -> None:
    """Remove `[agents.NAME]` with its sub-tables and the comment lines directly above it."""
    path = paths.town_file

    def change(text: str) -> tuple[str, None]:
        _agent(_parse(path, text), path, name)

        def plain(doc: TOMLDocument) -> None:
            del doc["agents"][name]
            if not doc["agents"]:
                del doc["agents"]

        return _tidy_or_plain(path, text, lambda: _remove_agent_text(text, name), plain), None

    _transact(paths, "town", change, validate)


def set_agent_fields(
    paths: TownPaths, name: str, fields: Mapping[str, object], validate: Validate | None = None
) -> None:
    """Set fields of one agent in place (e.g. suspended = true); None removes a field."""
    path = paths.town_file
    edit_town(paths, lambda doc: _set_fields(_agent(doc, path, name), fields), validate)


def _check_agent_name(name: str) -> None:
    if name.lower() in RESERVED_AGENT_NAMES:
        raise TtError(f"{name!r} is a reserved name (a mailbox), not an agent")
    if not is_valid_name(name):
        raise TtError(f"invalid agent name {name!r}: {_NAME_RULE}")


def _agents(doc: TOMLDocument, path: Path) -> Mapping[str, object]:
    agents = doc.get("agents", {})
    if not isinstance(agents, Mapping):
        raise TtError(f"{path}: `agents` is not a table, so tt cannot edit it")
    return agents


def _agent(doc: TOMLDocument, path: Path, name: str) -> Table | InlineTable:
    agents = _agents(doc, path)
    agent = agents.get(name)
    if agent is None:
        raise NotFound(f"{path}: no agent named {name!r}", did_you_mean(name, agents))
    if not isinstance(agent, (Table, InlineTable)):
        raise TtError(f"{path}: agents.{name} is not a table, so tt cannot edit it")
    return agent


def _agent_table(fields: Mapping[str, object]) -> Table:
    table = tomlkit.table()
    for key, value in fields.items():
        if value is not None:
            table.raw_append(key, _value(value))
    return table


# -- values and fields -------------------------------------------------------------------------


def _value(value: object, nested: bool = False) -> Item:
    """A tomlkit item; text with newlines becomes a readable multi-line string."""
    if isinstance(value, Item):
        return value
    if isinstance(value, str):
        # A lone CR cannot stay literal in a multi-line string, and TOML readers may turn a
        # literal CRLF into LF; such text is written escaped on one line instead.
        multiline = not nested and "\n" in value and "\r" not in value
        return tomlkit.string(value, multiline=multiline)
    if isinstance(value, Mapping):
        inline = tomlkit.inline_table()
        for key, item in value.items():
            inline[str(key)] = _value(item, nested=True)
        return inline
    if isinstance(value, (list, tuple)):
        array = tomlkit.array()
        for item in value:
            array.append(_value(item, nested=True))
        return array
    return tomlkit.item(value)


def _set_fields(table: Table | InlineTable, fields: Mapping[str, object]) -> bool:
    """Set/replace/remove fields in place; True when anything changed."""
    changed = False
    for key, value in fields.items():
        current = table.get(key)
        if value is None:
            if key in table:
                del table[key]
                changed = True
            continue
        item = _value(value)
        if current is not None and _plain(current) == _plain(item):
            continue  # equal already: leave the line alone, whatever its spelling
        if key in table:
            table[key] = item  # tomlkit keeps the line's place and its trailing comment
        elif isinstance(table, Table):
            _add_field(table, key, item)
        else:
            table[key] = item
        changed = True
    return changed


def _add_field(table: Table, key: str, item: Item) -> None:
    """Add a key after the table's last key, not after the blank lines and comments that end
    its body (tomlkit's parser files those under the table, but they introduce the next one)."""
    body = table.value.body
    cut = len(body)
    while cut and body[cut - 1][0] is None:
        cut -= 1
    # Only key-less items (whitespace, comments) are detached, so tomlkit's key index holds.
    trailer = body[cut:]
    del body[cut:]
    keyed = [v for k, v in body if k is not None and not isinstance(v, (Table, AoT))]
    if keyed:
        item.trivia.indent = keyed[-1].trivia.indent
    table.raw_append(key, item)
    body.extend(trailer)


def _plain(value: object) -> object:
    return value.unwrap() if isinstance(value, Item) else value


def _ends_blank(text: str) -> bool:
    return text.endswith("\n\n") or text.endswith("\n\r\n")


# -- tidy placement of agent tables ------------------------------------------------------------
#
# tomlkit files the comment lines above a header under the previous table, so its own insert
# and delete would orphan or lose them. These helpers edit the text at table boundaries found by
# tomlkit, and `_tidy_or_plain` keeps their result only when it reads back as the plain edit.


class _Untidy(Exception):
    """The file's layout is one the text edit does not handle; use tomlkit's own edit."""


_MARK = re.compile("\x00(\\d+)\x00")


def _tidy_or_plain(
    path: Path, text: str, tidy: Callable[[], str], plain: Callable[[TOMLDocument], None]
) -> str:
    doc = _parse(path, text)
    plain(doc)
    try:
        candidate = tidy()
        if tomlkit.parse(candidate).unwrap() == doc.unwrap():
            return candidate
    except (_Untidy, TOMLKitError):
        pass
    return _render(path, doc)


def _headers(text: str) -> list[tuple[tuple[str, ...], int]]:
    """Every `[table]` / `[[array]]` header line: its key path and the offset where it starts."""
    doc = tomlkit.parse(text)
    keys: list[tuple[str, ...]] = []

    def visit(body: Iterable[tuple[object, Item]], prefix: tuple[str, ...]) -> None:
        for key, item in body:
            if isinstance(item, AoT):
                tables = list(item)
            elif isinstance(item, Table):
                tables = [item]
            else:
                continue
            for table in tables:
                here = (*prefix, str(getattr(key, "key", key)))
                # NUL cannot occur in TOML text, so the marker is found only where it was put.
                table.trivia.indent = f"\x00{len(keys)}\x00{table.trivia.indent}"
                keys.append(here)
                visit(table.value.body, here)

    visit(doc.body, ())
    marked = doc.as_string()
    if _MARK.sub("", marked) != text:
        raise _Untidy
    found, shift = [], 0
    for m in _MARK.finditer(marked):
        found.append((keys[int(m.group(1))], m.start() - shift))
        shift += len(m.group(0))
    return found


def _lines_before(text: str, end: int, start: int, comment: bool) -> int:
    """Where the run of comment (or blank) lines that ends at `end` begins, not before `start`."""
    pos = end
    while pos > start:
        begin = max(text.rfind("\n", start, pos - 1) + 1, start)
        line = text[begin:pos].strip()
        if not (line.startswith("#") if comment else not line):
            break
        pos = begin
    return pos


def _insert_agent_text(text: str, name: str, fields: Mapping[str, object]) -> str:
    block = tomlkit.dumps({"agents": {name: _agent_table(fields)}})
    headers = _headers(text)
    ours = [i for i, (keys, _) in enumerate(headers) if keys[0] == "agents"]
    if not ours and "agents" in tomlkit.parse(text):
        raise _Untidy  # agents written inline or as dotted keys
    # The first agent goes right after [town], where a reader of the roster looks for it.
    ours = ours or [i for i, (keys, _) in enumerate(headers) if keys[0] == "town"]
    if not ours:
        head = text if not text or text.endswith("\n") else text + "\n"
        return head + ("\n" if head.strip() else "") + block
    last = ours[-1]
    group_start = headers[last][1]
    end = headers[last + 1][1] if last + 1 < len(headers) else len(text)
    # Comment lines right before the next header introduce it, so the new table goes above them.
    at = _lines_before(text, end, group_start, comment=True)
    content_end = _lines_before(text, at, group_start, comment=False)
    head = text[:content_end] if text[:content_end].endswith("\n") else text[:content_end] + "\n"
    # Mirror the file: a blank line before the new header if the last agent has one before its.
    agent_starts = [off for keys, off in headers if keys[0] == "agents" and len(keys) == 2]
    above = _lines_before(text, agent_starts[-1], 0, comment=True) if agent_starts else 0
    gap = "\n" if above == 0 or _ends_blank(text[:above]) else ""
    return head + gap + block + text[content_end:at] + text[at:]


def _remove_agent_text(text: str, name: str) -> str:
    headers = _headers(text)
    mine = [i for i, (keys, _) in enumerate(headers) if keys[:2] == ("agents", name)]
    if not mine or mine != list(range(mine[0], mine[-1] + 1)):
        raise _Untidy  # inline, dotted or scattered over the file
    start = headers[mine[0]][1]
    end = headers[mine[-1] + 1][1] if mine[-1] + 1 < len(headers) else len(text)
    keep = _lines_before(text, end, start, comment=True)  # they introduce what follows
    cut = _lines_before(text, start, 0, comment=True)  # the agent's own heading comments
    if keep == len(text):
        # It was the last thing in the file: drop the blank lines that separated it, too.
        return text[: _lines_before(text, cut, 0, comment=False)]
    return text[:cut] + text[keep:]
