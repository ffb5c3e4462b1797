"""tasks.toml as text cut at its `[[tasks]]` lines: what lets a check of an edited file parse
only the task tables whose text changed.

A piece is the text of one task table: what follows one `[[tasks]]` line up to the next.
`parse_whole` parses a file and proves, where it can, that each piece is exactly its table;
`parse_edit` parses only the pieces a previous proof does not hold, and proves the rest of the
cut again. Either returns None
rather than guess: the caller then parses the file whole. No rule about what is valid here.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

import rtoml

from .tomldoc import TomlDoc

HEADER = "\n[[tasks]]\n"
# Never a key of a valid task (the schema allows no other), and not one a user would write.
_MARK = "__tt_piece_index__"


def split(text: str) -> tuple[str, list[str]]:
    """(the text before the first `[[tasks]]` line, the text after each one)."""
    parts = ("\n" + text).split(HEADER)
    return parts[0][1:], parts[1:]


def parse_whole(doc: TomlDoc) -> tuple[dict[str, Any] | None, list[str] | None]:
    """`doc.parse()` and, when proven, each task table's piece (in table order).

    A text with no multi-line string (no triple quote) has no line inside a string, and a
    `[[tasks]]` line anywhere else in a valid file is a header (in an array or an inline table
    it would not parse): one piece per table proves the cut. Otherwise each cut is marked by a
    key `_MARK = i` put right after its line, in the same parse: a line cut inside a string
    puts its key in that string, and then some table lacks its key. Both ways, the text
    before the first cut parsing alone to all but the tasks proves that no piece holds
    another table (a [meta] after a task, say), so each piece is its table's text alone."""
    text = doc.text
    before, bodies = split(text)
    if bodies and ('"""' in text or "'''" in text):
        marked = "".join(
            [before, *(f"{HEADER}{_MARK} = {i}\n{body}" for i, body in enumerate(bodies))]
        )
        data = _loads(marked)
        if data is not None and _unmarked(data, len(bodies)) and _alone(before, data):
            return data, bodies
        return doc.parse(), None
    data = doc.parse()
    if data is None or not bodies:
        return data, None
    tables = data.get("tasks")
    if isinstance(tables, list) and len(tables) == len(bodies) and _alone(before, data):
        return data, bodies
    return data, None


def parse_edit(
    text: str, known: Mapping[str, int], blank: AbstractSet[int]
) -> tuple[dict[str, Any], list[str], dict[int, int]] | None:
    """The data of `text`, its pieces, and the table positions whose piece `known` holds (->
    its value there), parsing only the other pieces; or None (parse it whole).

    `known`: pieces proven before (`parse_whole` or this), each standing for its table; its
    table is given as {} (the caller has what it needs from that check), but for the values
    in `blank`: the caller may need those tables themselves. Each other piece must
    parse alone to one task table, and the text before the cut to no task: then each line
    cut was a `[[tasks]]` header, as every known piece also parses alone."""
    before, bodies = split(text)
    data = _loads(before)
    if data is None or "tasks" in data:
        return None
    tables: list[dict[str, Any]] = []
    found: dict[int, int] = {}
    for i, body in enumerate(bodies):
        j = known.get(body)
        if j is not None:
            found[i] = j
            if j not in blank:
                tables.append({})
                continue
        one = _loads("[[tasks]]\n" + body)
        table = one.get("tasks") if one is not None and len(one) == 1 else None
        if not isinstance(table, list) or len(table) != 1 or not isinstance(table[0], dict):
            return None
        tables.append(table[0])
    data["tasks"] = tables
    return data, bodies, found


def _loads(text: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = rtoml.loads(text)
    except (ValueError, RecursionError):
        return None
    return data


def _unmarked(data: dict[str, Any], count: int) -> bool:
    """Whether table i carries `_MARK = i` for every i < count, and no other table is there
    (the marks are taken out: `data` is then the file's own parse)."""
    tables = data.get("tasks")
    if not isinstance(tables, list) or len(tables) != count:
        return False
    ok = True
    for i, table in enumerate(tables):
        if not isinstance(table, dict) or table.pop(_MARK, None) != i:
            ok = False
    return ok


def _alone(before: str, data: dict[str, Any]) -> bool:
    """Whether the text before the first cut is, parsed alone, all of `data` but its tasks:
    no piece holds a table other than its own (a [meta] after a task, say)."""
    head = _loads(before)
    return head is not None and head == {k: v for k, v in data.items() if k != "tasks"}
