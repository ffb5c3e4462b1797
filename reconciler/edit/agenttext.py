"""Tidy placement of agent tables: insert or remove `[agents.NAME]` by editing the text.

tomlkit files the comment lines above a header under the previous table, so its own insert and
delete would orphan or lose them. These helpers edit the text at table boundaries found by
tomlkit, and `tidy_or_plain` keeps their result only when it reads back as the plain edit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Item, Table
from tomlkit.toml_document import TOMLDocument

from .transaction import parse, render
from .values import ends_blank, table_of


class _Untidy(Exception):
    """The file's layout is one the text edit does not handle; use tomlkit's own edit."""


_MARK = re.compile("\x00(\\d+)\x00")


def tidy_or_plain(
    path: Path, text: str, tidy: Callable[[], str], plain: Callable[[TOMLDocument], None]
) -> str:
    """The text `tidy()` makes when it reads back as `plain` applied to the parsed text;
    otherwise the rendering of that plain edit."""
    doc = parse(path, text)
    plain(doc)
    try:
        candidate = tidy()
        if tomlkit.parse(candidate).unwrap() == doc.unwrap():
            return candidate
    except (_Untidy, TOMLKitError):
        pass
    return render(path, doc)


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


def insert_agent_text(text: str, name: str, fields: Mapping[str, object]) -> str:
    """`text` with `[agents.NAME]` after the last agent (or after [town]), above the comment
    lines that introduce the next table. Raises `_Untidy` for layouts it does not handle."""
    block = tomlkit.dumps({"agents": {name: table_of(fields)}})
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
    gap = "\n" if above == 0 or ends_blank(text[:above]) else ""
    return head + gap + block + text[content_end:at] + text[at:]


def remove_agent_text(text: str, name: str) -> str:
    """`text` without `[agents.NAME]`, its sub-tables and its heading comments. Raises
    `_Untidy` when the agent is inline, dotted or scattered over the file."""
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
