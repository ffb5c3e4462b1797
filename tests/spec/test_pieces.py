"""`pieces`: a tasks.toml is cut into its tables' texts only where that is proven, and a parse
of the changed pieces alone is the parse of the whole file."""

from __future__ import annotations

import random

import pytest
import rtoml

from reconciler.spec import pieces
from reconciler.spec.tomldoc import TomlDoc
from tests.towngen import tasks_toml

TEXT = (
    '# a plan\n[meta]\ndescription = "cut"\n\n'
    '[[tasks]]\nid = "a"\ndescription = """two\nlines"""\n\n'
    '[[tasks]]\nid = "b"\ndepends_on = [\n  "a",\n]\n[tasks.extra]\nx = 1\n\n'
    '[[tasks]]\nid = "c"'
)


PLAIN = TEXT.replace('"""two\nlines"""', '"two lines"')  # no multi-line string: no marks


def whole(text: str) -> tuple[object, list[str] | None]:
    return pieces.parse_whole(TomlDoc("tasks.toml", text, "-"))


@pytest.mark.parametrize("text", [TEXT, PLAIN])
def test_a_plain_file_is_cut_into_its_tables(text: str) -> None:
    data, cut = whole(text)
    assert data == rtoml.loads(text)
    assert cut is not None and len(cut) == 3
    for body, table in zip(cut, rtoml.loads(text)["tasks"], strict=True):
        assert rtoml.loads("[[tasks]]\n" + body) == {"tasks": [table]}


@pytest.mark.parametrize(
    "text",
    [
        TEXT.replace('"""two\nlines"""', '"""two\n\n[[tasks]]\nid = "x"\n"""'),  # in a string
        TEXT.replace("'''", "").replace('"""two\nlines"""', "'''\n[[tasks]]\n'''"),
        TEXT.replace('[[tasks]]\nid = "c"', '[other]\ny = 2\n\n[[tasks]]\nid = "c"'),
        TEXT.replace('[[tasks]]\nid = "b"', '[[ tasks ]]\nid = "b0"\n\n[[tasks]]\nid = "b"'),
        TEXT.replace("\n", "\r\n"),
        TEXT.replace('id = "c"', 'id = "c"\n__tt_piece_index__ = 2'),
        PLAIN.replace('[[tasks]]\nid = "c"', '[other]\ny = 2\n\n[[tasks]]\nid = "c"'),
        PLAIN.replace('[[tasks]]\nid = "b"', '[[ tasks ]]\nid = "b0"\n\n[[tasks]]\nid = "b"'),
        PLAIN.replace('[[tasks]]\nid = "b"', '[["tasks"]]\nid = "b0"\n\n[[tasks]]\nid = "b"'),
        PLAIN.replace("# a plan\n[meta]", '# a plan\n[[ tasks ]]\nid = "z"\n[meta]'),
        PLAIN.replace("\n", "\r\n"),
    ],
)
def test_a_cut_that_is_not_proven_is_not_made(text: str) -> None:
    data, cut = whole(text)
    assert data == rtoml.loads(text)  # the file's own parse all the same
    assert cut is None


def test_an_invalid_file_is_reported_as_by_its_own_parse() -> None:
    doc = TomlDoc("tasks.toml", TEXT + '\n[[tasks]]\nid = "d', "-")
    data, cut = pieces.parse_whole(doc)
    assert data is None and cut is None
    assert doc.problems[0].message.startswith("invalid TOML")


def test_an_edit_parses_only_the_changed_pieces_as_the_whole_parse() -> None:
    """Random edits of a generated file: what `parse_edit` returns is the whole file's parse,
    with {} for each table known by its text (the callers have those), or None."""
    rng = random.Random(7)
    base = tasks_toml(60, backlog=3)
    _, cut = whole(base)
    assert cut is not None
    known = {body: j for j, body in enumerate(cut)}
    edits = [
        lambda t: t.replace('description = "task 3', 'description = "task three', 1),
        lambda t: t + '\n[[tasks]]\nid = "new"\ndescription = "n"\n',
        lambda t: t.replace('[[tasks]]\nid = "t-0-4"', '[[tasks]]\nid = "t-0-4b"', 1),
        lambda t: t.replace('tags = ["generated", "epic-0"]\n', "", 1),
        lambda t: t.replace('description = "task 5', 'description = """x\n[[tasks]]\n"""', 1),
        lambda t: t.replace('description = "task 6', 'description = "unterminated', 1),
        lambda t: t.replace('[[tasks]]\nid = "t-0-8"', '[meta]\n[[tasks]]\nid = "t-0-8"', 1),
        lambda t: t.replace('[[tasks]]\nid = "t-0-9"', '[[tasks]]\n[[tasks]]\nid = "t-0-9"', 1),
    ]
    results = set()
    for _ in range(60):
        text = base
        for edit in rng.sample(edits, rng.randint(1, 3)):
            text = edit(text)
        got = pieces.parse_edit(text, known, set())
        try:
            expected = rtoml.loads(text)
        except ValueError:
            expected = None
        results.add(got is None)
        if got is None:
            continue
        data, cut_now, found = got
        assert expected is not None
        tables = expected["tasks"]
        assert [t for i, t in enumerate(tables) if i not in found] == [
            t for i, t in enumerate(data["tasks"]) if i not in found
        ]
        assert all(
            data["tasks"][i] == {} and tables[i] == rtoml.loads("[[tasks]]\n" + cut[j])["tasks"][0]
            for i, j in found.items()
        )
        assert {k: v for k, v in data.items() if k != "tasks"} == {
            k: v for k, v in expected.items() if k != "tasks"
        }
        assert len(cut_now) == len(tables)
    assert results == {True, False}  # both outcomes were met
