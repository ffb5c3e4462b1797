"""What a check of tasks.toml may take from the last valid check of the same town (`Reuse`):
the tables found again word for word keep their own checks and their specs.

`parse_tasks` parses the file (only its changed tables when `Reuse` holds their text, see
`pieces`), finds the tables `Reuse` holds and runs the schema on the others. It decides no
verdict on a whole file: `taskcheck` checks what spans tables (duplicates, references, cycles)
every time, and every doubt here means parsing and checking the file as from scratch.
"""

from __future__ import annotations

import marshal
from dataclasses import dataclass, field
from typing import Any

from . import pieces
from .desired import TaskSpec
from .schemacheck import check_schema, fast_check
from .tomldoc import TomlDoc


@dataclass(frozen=True)
class Reuse:
    """The task tables of a valid tasks.toml, checked under the town.toml of digest
    `town_digest`. A table's own checks (schema, name, agent and role, fields) depend only on
    it and on the roster, so a later check under the same roster does not repeat them for a
    table found again word for word. Never a verdict on a whole file: the checks across tables
    (duplicates, references, cycles) and of everything else run every time."""

    town_digest: str
    ids: tuple[str, ...]  # the task ids, in file order
    # Each one's table: its `table_key`, or with `pieced` its text (`pieces`, proven).
    tables: tuple[bytes | str | None, ...]
    defaults: tuple[str | None, str | None] = (None, None)  # [meta] default_agent, _role
    # `TaskSpec.fields()` of each one's spec (never changed: copied to make a spec).
    specs: tuple[dict[str, Any], ...] = ()
    pieced: bool = False


def table_key(table: dict[str, Any]) -> bytes | None:
    """A parsed table's exact value as bytes: types count (`true` is not `1`, `1.0` is not `1`,
    though Python finds them equal), and so does key order. None where a value has no such
    encoding (a TOML date in an informational field): that table is always checked."""
    try:
        return marshal.dumps(table, 2)  # version 2: no back-references, the same bytes each time
    except ValueError:
        return None


@dataclass
class Parsed:
    """tasks.toml parsed for `taskcheck.check_tasks` (see its parameters)."""

    data: dict[str, Any] | None  # None: not TOML (reported)
    keys: list[bytes | str | None] | None = None  # each table's key (`Reuse.tables`)
    pieced: bool = False  # the keys are the tables' texts
    known: dict[int, int] = field(default_factory=dict)  # file index -> position in `Reuse`
    intact: bool = False
    acyclic: bool = False
    typed: bool = False
    reused: dict[int, TaskSpec] = field(default_factory=dict)


def parse_tasks(doc: TomlDoc, town_digest: str, reuse: Reuse | None) -> Parsed:
    """Parse and schema-check tasks.toml, reporting on `doc`; `reuse`, a previous valid check
    of the town (taken only under the same town.toml)."""
    usable = reuse if reuse is not None and reuse.town_digest == town_digest else None
    if usable is not None and usable.pieced and len(usable.specs) == len(usable.ids):
        edited = _parse_edit(doc, usable)
        if edited is not None:
            return edited
    data, cut = pieces.parse_whole(doc)
    if data is None:
        return Parsed(None)
    parsed = Parsed(data, list(cut) if cut is not None else None, cut is not None)
    if usable is not None and usable.pieced == parsed.pieced:
        # (Keys of another kind find nothing: this check's keys serve the next one.)
        parsed.keys, parsed.known, parsed.intact = _known_tables(data, usable, parsed.keys)
        ids = _ids(data)
        parsed.acyclic = ids is not None and _same_edges(data, usable, parsed.known, ids)
    # The schema's rules for a task table are its own: the known ones passed already.
    known = parsed.known
    parsed.typed = bool(known) and fast_check("tasks")(_unknown_part(data, known))
    parsed.typed = parsed.typed or check_schema(doc, "tasks", data)
    if parsed.typed:
        parsed.reused = _reused_specs(usable, known)
    return parsed


def _parse_edit(doc: TomlDoc, reuse: Reuse) -> Parsed | None:
    """`parse_tasks` parsing only the tables whose text `reuse` lacks, or None when anything
    needs the whole file (an invalid or unusual text, a duplicate id, a schema error: each is
    worded by the check from scratch)."""
    specs = reuse.specs
    texts = {text: j for j, text in enumerate(reuse.tables) if isinstance(text, str)}
    blank = {j for j, fields in enumerate(specs) if not fields["description"].strip()}
    got = pieces.parse_edit(doc.text, texts, blank)
    if got is None:
        return None
    data, cut, known = got
    tables = data["tasks"]
    ids = [specs[known[i]]["id"] if i in known else t.get("id") for i, t in enumerate(tables)]
    if len(set(ids)) != len(ids) or not fast_check("tasks")(_unknown_part(data, known)):
        return None
    intact = len(known) == len(reuse.ids) or set(ids).issuperset(reuse.ids)
    acyclic = _same_edges(data, reuse, known, ids)
    reused = _reused_specs(reuse, known)
    return Parsed(data, list(cut), True, known, intact, acyclic, True, reused)


def _ids(data: dict[str, Any]) -> list[Any] | None:
    raw = data.get("tasks")
    if not isinstance(raw, list):
        return None
    return [e.get("id") if isinstance(e, dict) else None for e in raw]


def _known_tables(
    data: dict[str, Any], reuse: Reuse, keys: list[bytes | str | None] | None
) -> tuple[list[bytes | str | None] | None, dict[int, int], bool]:
    """The key of each task table (`keys`, else its `table_key`), the file indices of those
    `reuse` holds word for word with their positions there (a key is the whole table, its id
    included: equal keys, equal tables), and whether every task id of `reuse` is still here."""
    raw = data.get("tasks")
    if not isinstance(raw, list):
        return None, {}, False
    before: dict[bytes | str | None, int] = {
        key: j for j, key in enumerate(reuse.tables) if key is not None
    }
    if keys is None:
        keys = [table_key(entry) if isinstance(entry, dict) else None for entry in raw]
    known = {i: j for i, key in enumerate(keys) if (j := before.get(key)) is not None}
    if len(known) == len(reuse.ids):
        return keys, known, True  # every table of `reuse` is here, so every one of its ids
    ids = {entry.get("id") for entry in raw if isinstance(entry, dict)}
    return keys, known, ids.issuperset(reuse.ids)


def _reused_specs(reuse: Reuse | None, known: dict[int, int]) -> dict[int, TaskSpec]:
    """The specs of the known tables (file index -> spec), as `reuse` holds them."""
    if reuse is None or len(reuse.specs) != len(reuse.ids):
        return {}
    specs = reuse.specs
    checked = TaskSpec.checked
    return {i: checked(specs[j].copy()) for i, j in known.items()}


def _same_edges(data: dict[str, Any], reuse: Reuse, known: dict[int, int], ids: list[Any]) -> bool:
    """Whether the tasks can have no cycle, as in the file `reuse` came from: they wait for
    each other as there, but for the tasks removed. No task added, the same [meta] defaults,
    every table found changed the same as before in what decides its waits (`taskcheck.edges`:
    parent, depends_on, sequential, approve, and whether it names an agent or a role). (A
    removal adds no wait but in a sequential group, where the next member now waits for the
    one before the removed: a path that was there already. A move is not the same: it
    reorders a group.)"""
    meta = data.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    if (meta.get("default_agent"), meta.get("default_role")) != reuse.defaults:
        return False
    raw = data.get("tasks")
    if not isinstance(raw, list) or len(raw) > len(reuse.ids):
        return False  # not a list, or a task added
    if len(reuse.specs) != len(reuse.ids):
        return False
    positions = list(known.values())
    if len(known) == len(raw) and positions == sorted(positions):
        return True  # every table found unchanged, in the same order: the file's waits
    at = {tid: j for j, tid in enumerate(reuse.ids)}
    kept = set(ids)
    # Sequential groups order their members by file position: a move may add a wait.
    if [t for t in ids if t in at] != [t for t in reuse.ids if t in kept]:
        return False
    for i, entry in enumerate(raw):
        if i in known:
            continue
        j = at.get(ids[i])
        if j is None or not isinstance(entry, dict):
            return False
        old = TaskSpec.checked(reuse.specs[j].copy())
        deps = entry.get("depends_on", [])
        if (
            entry.get("parent") != old.parent
            or not isinstance(deps, list)
            or tuple(deps) != old.depends_on
            or (entry.get("sequential") is True) != old.sequential
            or (entry.get("approve") is True) != old.approve
            or bool(entry.get("agent")) != bool(old.agent)
            or bool(entry.get("role")) != bool(old.role)
        ):
            return False
    return True


def _unknown_part(data: dict[str, Any], known: dict[int, int]) -> dict[str, Any]:
    """`data` without its known task tables (what is left for the schema check)."""
    raw = data["tasks"]
    return {**data, "tasks": [t for i, t in enumerate(raw) if i not in known]}
