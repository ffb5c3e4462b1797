"""Python values as tomlkit items, and setting fields of a table in place.

Shared by the task and agent edits. A field that already holds an equal value keeps its line
(whatever its spelling); a new one goes after the table's last key, above its trailing comments.
"""

from __future__ import annotations

from collections.abc import Mapping

import tomlkit
from tomlkit.items import AoT, InlineTable, Item, Table


def to_item(value: object, nested: bool = False) -> Item:
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
            inline[str(key)] = to_item(item, nested=True)
        return inline
    if isinstance(value, (list, tuple)):
        array = tomlkit.array()
        for item in value:
            array.append(to_item(item, nested=True))
        return array
    return tomlkit.item(value)


def table_of(fields: Mapping[str, object]) -> Table:
    """A new table with the fields that are not None, in the given order."""
    table = tomlkit.table()
    for key, item in fields.items():
        if item is not None:
            table.raw_append(key, to_item(item))
    return table


def set_fields(table: Table | InlineTable, fields: Mapping[str, object]) -> bool:
    """Set/replace/remove fields in place; True when anything changed."""
    changed = False
    for key, new in fields.items():
        current = table.get(key)
        if new is None:
            if key in table:
                del table[key]
                changed = True
            continue
        item = to_item(new)
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


def _plain(item: object) -> object:
    return item.unwrap() if isinstance(item, Item) else item


def ends_blank(text: str) -> bool:
    """True when the text ends with a blank line (LF or CRLF)."""
    return text.endswith("\n\n") or text.endswith("\n\r\n")
