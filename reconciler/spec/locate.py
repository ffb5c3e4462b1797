"""JSON paths into TOML text: the line of `$.tasks[2].agent`, and how such a path is written.

For error messages only, best effort: it scans table headers and keys line by line with regular
expressions. It never parses values (tomllib does) and never judges whether a document is valid.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

Key = str | int
JsonPath = tuple[Key, ...]


def json_path(path: JsonPath) -> str:
    """`("tasks", 2, "agent")` → `$.tasks[2].agent`; keys that are not bare words are quoted."""
    out = "$"
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        elif re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]*", key):
            out += f".{key}"
        else:
            out += f"[{json.dumps(key)}]"
    return out


_BARE = r"[A-Za-z0-9_-]+"
# Unrolled ("normal* (special normal*)*"): `(?:a|b)*` keeps a backtracking mark per character,
# ~120 bytes each, so a 3 MB string took ~350 MB and 2 s to match; this takes 18 MB and 0.08 s.
_QUOTED = r'"[^"\\]*(?:\\.[^"\\]*)*"|\'[^\']*\''
_DOTTED = rf"(?:{_BARE}|{_QUOTED})(?:\s*\.\s*(?:{_BARE}|{_QUOTED}))*"
_AOT_LINE = re.compile(rf"\s*\[\[\s*({_DOTTED})\s*\]\]\s*(?:#.*)?$")
_TABLE_LINE = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]\s*(?:#.*)?$")
_KEY_LINE = re.compile(rf"\s*({_DOTTED})\s*=")
_KEY_PART = re.compile(rf"{_BARE}|{_QUOTED}")
_QUOTED_RE = re.compile(_QUOTED)
_SPECIAL = re.compile(r"[\"'#\[\]{}]")


def _split_key(dotted: str) -> tuple[str, ...]:
    parts = []
    for part in _KEY_PART.findall(dotted):
        if part.startswith('"'):
            try:
                parts.append(json.loads(part))
            except ValueError:  # a TOML-only escape such as \U0001F600: close enough here
                parts.append(part[1:-1])
        elif part.startswith("'"):
            parts.append(part[1:-1])
        else:
            parts.append(part)
    return tuple(parts)


class _Value:
    """Whether a value continues on the next lines (multi-line string, array or inline table)."""

    def __init__(self) -> None:
        self.string: str | None = None
        self.depth = 0

    @property
    def open(self) -> bool:
        return self.string is not None or self.depth > 0

    def feed(self, text: str) -> None:
        i, n = 0, len(text)
        while i < n:
            if self.string is not None:
                end = text.find(self.string, i)
                if end < 0:
                    return
                i, self.string = end + 3, None
                continue
            # Straight to the next character that matters (a 2-million-item array of numbers
            # is a few jumps, not a Python step per character).
            found = _SPECIAL.search(text, i)
            if found is None:
                return
            i = found.start()
            c = text[i]
            if c == "#":
                return
            if text.startswith('"""', i) or text.startswith("'''", i):
                self.string, i = text[i : i + 3], i + 3
            elif c in "\"'":
                match = _QUOTED_RE.match(text, i)
                i = match.end() if match else n
            else:
                self.depth += 1 if c in "[{" else -1
                i += 1


class LineIndex:
    """`index_lines`, read only as far as needed: a lookup scans on until the path shows up
    (the first lines of a 20,000-task file answer without reading the rest)."""

    def __init__(self, text: str) -> None:
        self.lines: dict[JsonPath, int] = {}
        self._scan: Iterator[None] | None = _scan(text, self.lines)

    def get(self, path: JsonPath) -> int | None:
        while path not in self.lines and self._scan is not None:
            if next(self._scan, False) is False:
                self._scan = None
        return self.lines.get(path)


def index_lines(text: str) -> dict[JsonPath, int]:
    """The line of every table header and key, by JSON path (arrays of tables get their index).

    Dotted keys and inline tables resolve to their key's line, values spanning lines to their
    first line; a caller looking up a deeper path falls back to its nearest indexed parent."""
    lines: dict[JsonPath, int] = {}
    for _ in _scan(text, lines):
        pass
    return lines


def _scan(text: str, lines: dict[JsonPath, int]) -> Iterator[None]:
    """Fill `lines` (see `index_lines`), yielding after each line of `text`."""
    current: dict[JsonPath, int] = {}  # index of the last [[x]] seen, per resolved array path
    prefix: JsonPath = ()
    value = _Value()

    def resolve(raw: tuple[str, ...]) -> JsonPath:
        out: list[Key] = []
        for part in raw:
            out.append(part)
            if tuple(out) in current:
                out.append(current[tuple(out)])
        return tuple(out)

    def mark(path: JsonPath, lineno: int) -> None:
        for end in range(1, len(path) + 1):
            lines.setdefault(path[:end], lineno)

    # TOML counts lines by "\n" only; str.splitlines() would also split on \x0c, \u2028 ...
    for lineno, line in enumerate(text.split("\n"), 1):
        if value.open:
            value.feed(line)
            yield None
            continue
        if match := _AOT_LINE.match(line):
            raw = _split_key(match.group(1))
            array = (*resolve(raw[:-1]), raw[-1])
            current[array] = current.get(array, -1) + 1
            prefix = (*array, current[array])
            mark(prefix, lineno)
        elif match := _TABLE_LINE.match(line):
            prefix = resolve(_split_key(match.group(1)))
            mark(prefix, lineno)
        elif match := _KEY_LINE.match(line):
            mark((*prefix, *_split_key(match.group(1))), lineno)
            value.feed(line[match.end() :])
        yield None
