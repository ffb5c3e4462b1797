"""Whether two tasks' `touches` can match a common path (they must then never run at once), and
whether a path is covered by a task's `touches` (files changed outside them are reported).

Pure: strings in, answers out. A glob is relative to the repository: `/`-separated segments,
`**` alone any number of segments (none too), `*` any characters within a segment, `?` one,
`[...]` a class (`[!...]` or `[^...]` negated, ranges `a-z`; unterminated: a literal `[`), `\\x`
the character x; `.` and empty segments are dropped. It is anchored at the repository's top
(`*.md` is the top folder's), and, as in .gitignore, a glob that names a folder covers what is
in it: `src/auth` covers `src/auth/login.py`.

Exact, not heuristic: two globs overlap when the intersection of their languages is not empty,
decided on the product of the two as automata (over segments, `**` a star; within a segment over
characters, each class an interval set of code points), so it never says "no" for globs that
share a path, nor "yes" for globs that share none (`common_path` returns the path it found).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

from ..spec.desired import TaskSpec

# A set of characters: sorted disjoint (first, last) code point intervals, never holding '/'.
Chars = tuple[tuple[int, int], ...]
# A segment's pattern: each token a set of characters (one character of it) or STAR (None: any
# run of characters). A glob: its segments, DSTAR (None) for `**`.
Token = Chars | None
Segment = tuple[Token, ...]
Glob = tuple[Segment | None, ...]
STAR: Token = None
DSTAR: Segment | None = None

_SLASH = ord("/")
_TOP = 0x10FFFF
ANY: Chars = ((0, _SLASH - 1), (_SLASH + 1, _TOP))
_ANY_SEGMENT: Segment = (STAR,)
_PLAIN = re.compile(r"[^*?\[\\]+")  # a segment of literal characters only


# -- character sets ------------------------------------------------------------------------------
def _merged(ranges: Iterable[tuple[int, int]]) -> Chars:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return _intersect(tuple(out), ANY)


def _intersect(a: Chars, b: Chars) -> Chars:
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _complement(a: Chars) -> Chars:
    out: list[tuple[int, int]] = []
    start = 0
    for lo, hi in a:
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= _TOP:
        out.append((start, _TOP))
    return _intersect(tuple(out), ANY)


def _pick(chars: Chars) -> str:
    """A character of `chars`, a readable one where it can (for the paths `common_path` shows)."""
    for c in "x0_":
        if any(lo <= ord(c) <= hi for lo, hi in chars):
            return c
    return chr(chars[0][0])


# -- parsing -------------------------------------------------------------------------------------
def _class(text: str, at: int) -> tuple[Chars, int] | None:
    """The class opening at `text[at]` ('[') and the index after it; None if unterminated."""
    j = at + 1
    negate = j < len(text) and text[j] in "!^"
    j += negate
    ranges: list[tuple[int, int]] = []
    first = True
    while j < len(text):
        c = text[j]
        if c == "]" and not first:
            chars = _merged(ranges)
            return (_complement(chars) if negate else chars), j + 1
        first = False
        if c == "\\" and j + 1 < len(text):
            j += 1
            c = text[j]
        j += 1
        if j + 1 < len(text) and text[j] == "-" and text[j + 1] != "]":
            last = text[j + 1]
            j += 2
            if last == "\\" and j < len(text):
                last = text[j]
                j += 1
            if ord(last) >= ord(c):  # a reversed range holds nothing (as git's wildmatch)
                ranges.append((ord(c), ord(last)))
        else:
            ranges.append((ord(c), ord(c)))
    return None


def _segment(text: str) -> Segment:
    out: list[Token] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "*":
            if not out or out[-1] is not STAR:  # `**` within a segment is a `*`
                out.append(STAR)
            i += 1
            continue
        if c == "?":
            out.append(ANY)
            i += 1
            continue
        if c == "[":
            found = _class(text, i)
            if found is not None:
                out.append(found[0])
                i = found[1]
                continue
        elif c == "\\" and i + 1 < len(text):
            i += 1
            c = text[i]
        out.append(((ord(c), ord(c)),))
        i += 1
    return tuple(out)


def _parts(glob: str) -> list[str]:
    return [p for p in glob.split("/") if p not in ("", ".")]


@lru_cache(maxsize=4096)
def parse(glob: str) -> Glob:
    """`glob` as segments, ending in `**` (a folder covers its files)."""
    out: list[Segment | None] = []
    for part in _parts(glob):
        seg = DSTAR if part == "**" else _segment(part)
        if not (seg is DSTAR and out and out[-1] is DSTAR):
            out.append(seg)
    if not out or out[-1] is not DSTAR:
        out.append(DSTAR)
    return tuple(out)


# -- intersection --------------------------------------------------------------------------------
State = tuple[int, int, bool]


def _walk(
    a: Sequence[object], b: Sequence[object], star: object, meet: Callable[[Any, Any], str | None]
) -> list[str] | None:
    """The labels along a shortest walk through the product of two patterns' automata that
    reads something and ends at both ends, or None. A `star` element repeats (or is skipped);
    `meet(x, y)` is what one step reading `x` and `y` together reads, None when nothing."""
    start: State = (0, 0, False)
    came: dict[State, tuple[State, str] | None] = {start: None}
    todo = deque([start])
    while todo:
        state = todo.popleft()
        i, j, read = state
        if i == len(a) and j == len(b) and read:
            labels = []
            back = came[state]
            while back is not None:
                labels.append(back[1])
                back = came[back[0]]
            return labels[::-1]
        moves: list[tuple[State, str]] = []
        if i < len(a) and a[i] is star:
            moves.append(((i + 1, j, read), ""))
        if j < len(b) and b[j] is star:
            moves.append(((i, j + 1, read), ""))
        if i < len(a) and j < len(b):
            label = meet(a[i], b[j])
            if label is not None:
                step = (i if a[i] is star else i + 1, j if b[j] is star else j + 1, True)
                moves.append((step, label))
        for nxt, label in moves:
            if nxt not in came:
                came[nxt] = (state, label)
                todo.append(nxt)
    return None


def _meet_chars(ta: Token, tb: Token) -> str | None:
    chars = _intersect(ANY if ta is None else ta, ANY if tb is None else tb)
    return _pick(chars) if chars else None


@lru_cache(maxsize=65536)
def _common_segment(a: Segment, b: Segment) -> str | None:
    """A non-empty segment (no '/') both `a` and `b` match, or None (their character
    automata walked together)."""
    labels = _walk(a, b, STAR, _meet_chars)
    return None if labels is None else "".join(labels)


def _meet_segments(sa: Segment | None, sb: Segment | None) -> str | None:
    return _common_segment(_ANY_SEGMENT if sa is None else sa, _ANY_SEGMENT if sb is None else sb)


@lru_cache(maxsize=65536)
def common_path(a: str, b: str) -> str | None:
    """A path both globs match, or None when there is none (their segment automata walked
    together, `**` the repeating element)."""
    labels = _walk(parse(a), parse(b), DSTAR, _meet_segments)
    return None if labels is None else "/".join(x for x in labels if x)


def overlap(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether a glob of `a` and one of `b` match a common path."""
    return any(common_path(x, y) is not None for x in a for y in b)


# -- matching ------------------------------------------------------------------------------------
def _token_re(token: Token) -> str:
    if token is STAR:
        return "[^/]*"
    if not token:
        return "(?!)"
    return "[" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in token) + "]"


@lru_cache(maxsize=4096)
def _regex(glob: str) -> re.Pattern[str]:
    """`glob` as a regular expression over a path with a '/' after each segment."""
    body = "".join(
        "(?:[^/]+/)*" if seg is None else "".join(map(_token_re, seg)) + "/" for seg in parse(glob)
    )
    return re.compile(body, re.S)


def matches(globs: Sequence[str], path: str) -> bool:
    """Whether a glob of `globs` covers `path` (relative to the repository, '/'-separated)."""
    text = "/".join(_parts(path)) + "/"
    return any(_regex(g).fullmatch(text) for g in globs)


def outside(globs: Sequence[str], paths: Iterable[str]) -> list[str]:
    """Those of `paths` no glob of `globs` covers, in their order."""
    return [p for p in paths if not matches(globs, p)]


# -- a town's tasks ------------------------------------------------------------------------------
def _lead(glob: str) -> str | None:
    """The glob's first segment when it is literal (only globs with the same one, or a wild one,
    can overlap it), else None."""
    parts = _parts(glob)
    if not parts or parts[0] == "**" or not _PLAIN.fullmatch(parts[0]):
        return None
    return parts[0]


class TouchIndex:
    """The tasks of a town with `touches`, asked task by task which of them may touch a common
    path with it: an apply asks only for the tasks it writes, so tasks without `touches` cost
    nothing, and globs are compared only with those of the same literal first segment, or wild
    ones."""

    def __init__(self, tasks: Iterable[TaskSpec]) -> None:
        self.touches: dict[str, tuple[str, ...]] = {}
        self.order: dict[str, int] = {}
        self._by_lead: dict[str, set[str]] = {}
        self._wild: set[str] = set()
        self._pairs: dict[tuple[tuple[str, ...], tuple[str, ...]], bool] = {}
        for n, t in enumerate(tasks):
            if not t.touches or t.id in self.touches:
                continue  # (a duplicate id: the first definition counts, as for the plan)
            self.touches[t.id], self.order[t.id] = t.touches, n
            for g in t.touches:
                lead = _lead(g)
                if lead is None:
                    self._wild.add(t.id)
                else:
                    self._by_lead.setdefault(lead, set()).add(t.id)

    def overlaps(self, tid: str) -> tuple[str, ...]:
        """The other tasks whose `touches` can match a path `tid`'s can, in file order."""
        mine = self.touches.get(tid)
        if not mine:
            return ()
        seen: set[str] = set(self._wild)
        for g in mine:
            lead = _lead(g)
            if lead is None:
                seen.update(self.touches)
                break
            seen.update(self._by_lead.get(lead, ()))
        seen.discard(tid)
        found = [o for o in seen if self._overlap(mine, self.touches[o])]
        return tuple(sorted(found, key=self.order.__getitem__))

    def _overlap(self, a: tuple[str, ...], b: tuple[str, ...]) -> bool:
        """`overlap`, once per pair of distinct glob lists (tasks often share theirs)."""
        key = (a, b) if a <= b else (b, a)
        known = self._pairs.get(key)
        if known is None:
            known = self._pairs[key] = overlap(a, b)
        return known
