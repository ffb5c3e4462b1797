"""`touches` globs: which pairs can match a common path (exactly: never a missed overlap, never
an invented one), which paths a task's globs cover, and a town's overlaps task by task."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler.plan.touches import (
    DSTAR,
    STAR,
    TouchIndex,
    common_path,
    matches,
    outside,
    overlap,
    parse,
)
from reconciler.spec.desired import TaskSpec


@pytest.mark.parametrize(
    ("a", "b", "common"),
    [
        ("src/auth/**", "src/**/*.py", True),
        ("src/auth/**", "docs/auth.md", False),
        ("docs/*.md", "docs/auth.md", True),
        ("docs/*.md", "docs/auth.txt", False),
        ("src/auth", "src/auth/login.py", True),  # a folder covers its files
        ("src/auth", "src/authz/login.py", False),
        ("a/*/b", "a/**/b", True),
        ("a/*/b", "a/c/d", False),  # `*` is one segment
        ("a/*/b", "a/b", True),  # `a/b` covers `a/b/b`
        ("a/**/b", "a/b", True),  # `**` may be none
        ("*.md", "docs/a.md", False),  # anchored at the top
        ("**/*.md", "docs/a.md", True),
        ("[a-c]x", "[!b]x", True),
        ("[b]x", "[!b]x", False),
        ("[^b]x", "bx", False),
        ("**", "anything/at/all", True),
        (".", "x", True),  # the repository itself
        ("./src//a", "src/a", True),
        ("a?c", "ab", False),
        ("a\\*", "a*", True),  # an escaped star is a star
        ("a\\*", "ab", False),
        ("[z-a]", "*", False),  # a reversed range holds nothing
        ("x[", "x[", True),  # unterminated: literal
        ("*a*", "*b*", True),
        ("a*", "*b", True),
        ("a*", "b*", False),
        ("a**b", "acb", True),  # `**` within a segment is a `*`
    ],
)
def test_pairs(a: str, b: str, common: bool) -> None:
    found = common_path(a, b)
    assert (found is not None) is common
    assert (common_path(b, a) is not None) is common
    if found is not None:  # the path it names is one both cover
        assert matches([a], found) and matches([b], found)


def test_sets_overlap_when_any_pair_does() -> None:
    assert overlap(["docs/auth.md", "src/auth/**"], ["tests/**", "src/auth/x.py"])
    assert not overlap(["docs/auth.md", "src/auth/**"], ["tests/**", "README.md"])
    assert not overlap([], ["**"])


def test_matches_and_outside() -> None:
    globs = ["src/auth/**", "docs/auth.md"]
    assert matches(globs, "src/auth/login.py")
    assert matches(globs, "src/auth/deep/er/x")
    assert matches(globs, "docs/auth.md")
    assert not matches(globs, "docs/auth.md.bak") and not matches(globs, "src/authz.py")
    assert outside(globs, ["src/auth/a.py", "README.md", "docs/x.md"]) == ["README.md", "docs/x.md"]
    assert not matches([], "x")


def test_parse_shapes() -> None:
    a, b = ((ord("a"), ord("a")),), ((ord("b"), ord("b")),)
    assert parse("a/**/**/b") == ((a,), DSTAR, (b,), DSTAR)  # `**/**` is one `**`
    assert parse("**") == (DSTAR,)
    assert parse("a")[-1] is DSTAR
    assert parse("*x")[0] == (STAR, ((120, 120),))


def test_index_finds_overlaps_in_file_order() -> None:
    tasks = [
        TaskSpec("plain"),
        TaskSpec("auth", touches=("src/auth/**", "docs/auth.md")),
        TaskSpec("docs", touches=("docs/*.md",)),
        TaskSpec("py", touches=("src/**/*.py",)),
        TaskSpec("ui", touches=("src/ui/**",)),
        TaskSpec("all", touches=("**/*.md",)),
    ]
    index = TouchIndex(tasks)
    assert index.overlaps("auth") == ("docs", "py", "all")
    assert index.overlaps("docs") == ("auth", "all")
    assert index.overlaps("ui") == ("py", "all")  # src/ui/x.md: "all" covers it
    assert index.overlaps("plain") == ()
    assert index.overlaps("missing") == ()
    for tid in index.touches:  # the relation is symmetric
        for other in index.overlaps(tid):
            assert tid in index.overlaps(other)


# -- properties ----------------------------------------------------------------------------------
_SEGMENTS = st.sampled_from(
    ["a", "b", "ab", "*", "?", "a*", "*b", "[ab]", "[!a]", "[^b]*", "a?", "**", ".", "[a-b]x"]
)
GLOBS = st.lists(_SEGMENTS, min_size=1, max_size=4).map("/".join)
PATHS = st.lists(st.text("ab.x", min_size=1, max_size=3), min_size=1, max_size=5).map("/".join)


@settings(max_examples=300, deadline=None)
@given(GLOBS, GLOBS, PATHS)
@example("a/*/b", "a/**/b", "a/x/b")
@example("*", "a/b", "a/b")
def test_a_path_both_match_means_overlap(a: str, b: str, path: str) -> None:
    if matches([a], path) and matches([b], path):
        assert common_path(a, b) is not None


@st.composite
def glob_and_member(draw: st.DrawFn) -> tuple[str, str]:
    """A glob and a path it matches, built segment by segment from the glob's own pieces."""
    glob = draw(GLOBS)
    names: list[str] = []
    for seg in parse(glob):
        if seg is DSTAR:
            names.extend(draw(st.lists(st.text("abx", min_size=1, max_size=2), max_size=2)))
            continue
        text = ""
        for token in seg:
            if token is STAR:
                text += draw(st.text("abx.", max_size=2))
            else:
                lo, hi = draw(st.sampled_from(token))
                text += chr(draw(st.integers(lo, min(hi, lo + 200))))
        if text in ("", ".", ".."):
            return glob, ""  # no path: a segment is never empty, `.` or `..`
        names.append(text)
    return glob, "/".join(names)


@settings(max_examples=300, deadline=None)
@given(glob_and_member(), GLOBS)
def test_never_a_missed_overlap(member: tuple[str, str], other: str) -> None:
    glob, path = member
    if not path:
        return
    assert matches([glob], path)  # the matcher agrees with the parse
    if matches([other], path):
        assert common_path(glob, other) is not None
        assert overlap([glob], [other])


@settings(max_examples=300, deadline=None)
@given(GLOBS, GLOBS)
def test_never_an_invented_overlap(a: str, b: str) -> None:
    found = common_path(a, b)
    if found is not None:
        assert found and "//" not in found
        assert matches([a], found) and matches([b], found)
    assert (found is None) is (common_path(b, a) is None)


@settings(max_examples=300, deadline=None)
@given(st.text("ab*?[]!-", min_size=1, max_size=6), st.text("ab[]!-", min_size=1, max_size=4))
def test_one_segment_matches_as_fnmatch(glob: str, name: str) -> None:
    # fnmatch reads a class as git does, but for `[^...]` (literal there) and `\` (no escape).
    assert matches([glob], name) is fnmatch.fnmatchcase(name, glob)
