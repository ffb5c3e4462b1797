"""`tt assign`'s append as text: the same bytes tomlkit's edit writes, without tomlkit's parse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomlkit

from reconciler import edit
from reconciler.edit import tasks as task_edits
from reconciler.edit.append import append_task_text
from reconciler.town import TownPaths
from tests.towngen import tasks_toml

TOWN = '[town]\nname = "demo"\n\n[agents.dev]\nmodel = "sim"\n'

COMMENTED = """\
# Auth pipeline.  Comments, odd spacing and quoting are kept.
[meta]
description = "Auth API"   # shown by tt status

[[tasks]]
id = "design"
description = 'Design it'
status = "pending"    # run it

# Step 2.
[[tasks]]   # the last one
id="build"
parent = "design"
# trailing comment, last line of the file
"""

# Each layout the text path takes, with what tomlkit's edit made of it before.
LAYOUTS = {
    "comments and a trailing comment": COMMENTED,
    "no final newline": '[[tasks]]\nid = "a"',
    "a trailing comment without newline": '[[tasks]]\nid = "a"\n# done',
    "ends with a blank line": '[[tasks]]\nid = "a"\n\n',
    "ends with blank lines and spaces": '[[tasks]]\nid = "a"\n\n  \n\n',
    "dense": '[[tasks]]\nid = "a"\n[[tasks]]\nid = "b"\n',
    "crlf": '[[tasks]]\r\nid = "a"\r\n\r\n[[tasks]]\r\nid = "b"\r\n',
    "crlf without final newline": '[[tasks]]\r\nid = "a"',
}

# Layouts where only tomlkit knows where the table goes or how its header is spelled.
TOMLKIT_LAYOUTS = {
    "a table after the tasks": '[[tasks]]\nid = "a"\n\n[meta]\ndescription = "x"\n',
    "a sub-table of the last task": '[[tasks]]\nid = "a"\n[tasks.env]\nX = "1"\n',
    "spaced header": '[[ tasks ]]\nid = "a"\n',
    "indented headers": '  [[tasks]]\n  id = "a"\n',
    "a header inside a string": '[[tasks]]\nid = "a"\ndescription = """\n[[tasks]]\n"""\n',
    "no tasks yet": '[meta]\ndescription = "x"\n',
    "inline tasks": 'tasks = [{ id = "a" }]\n',
}

KINDS_OF_TASK: list[dict[str, Any]] = [
    {"description": "Review the API"},
    {
        "description": 'Step one\nStep "two"',
        "agent": "dev",
        "task_id": "steps",
        "extra": {"tags": ["x", "y"], "retries": 1, "depends_on": ["a"]},
    },
    {"description": "windows\r\nline ends"},
]


def town_with(tmp_path: Path, tasks: str) -> TownPaths:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_bytes(tasks.encode())
    return TownPaths(tmp_path)


def append_both_ways(
    tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch, **kw: Any
) -> tuple[tuple[str, bytes], tuple[str, bytes], bool]:
    """(id, bytes) written by the text path and by tomlkit's edit, and whether text was used."""
    taken: list[bool] = []

    def spy(text: str, new_table: Any) -> Any:
        result = append_task_text(text, new_table)
        taken.append(result is not None)
        return result

    fast = town_with(tmp_path / "fast", text)
    with monkeypatch.context() as m:
        m.setattr(task_edits, "append_task_text", spy)
        fast_id = edit.append_task(fast, **kw)
    slow = town_with(tmp_path / "slow", text)
    with monkeypatch.context() as m:
        m.setattr(task_edits, "append_task_text", lambda text, new_table: None)
        slow_id = edit.append_task(slow, **kw)
    return (
        (fast_id, fast.tasks_file.read_bytes()),
        (slow_id, slow.tasks_file.read_bytes()),
        taken == [True],
    )


def test_append_keeps_comments_and_adds_one_blank_line_after_a_trailing_comment(
    tmp_path: Path,
) -> None:
    town = town_with(tmp_path, COMMENTED)
    assert edit.append_task(town, description="Ship it", agent="dev", after="build") == (
        "t-ship-it"
    )
    assert town.tasks_file.read_text() == COMMENTED + (
        '\n[[tasks]]\nid = "t-ship-it"\ndescription = "Ship it"\nagent = "dev"\n'
        'status = "pending"\nparent = "build"\n'
    )


@pytest.mark.parametrize("kw", KINDS_OF_TASK, ids=["plain", "fields", "crlf-text"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_text_append_writes_what_tomlkits_edit_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, kw: dict[str, Any]
) -> None:
    fast, slow, used_text = append_both_ways(tmp_path, LAYOUTS[layout], monkeypatch, **kw)
    assert used_text
    assert fast == slow


@pytest.mark.parametrize("layout", TOMLKIT_LAYOUTS)
def test_layouts_the_text_path_declines_get_tomlkits_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    text = TOMLKIT_LAYOUTS[layout]
    if layout == "inline tasks":
        with pytest.raises(Exception, match="not an array of tables"):
            edit.append_task(town_with(tmp_path, text), description="B")
        return
    fast, slow, used_text = append_both_ways(tmp_path, text, monkeypatch, description="B")
    assert not used_text
    assert fast == slow


def test_crlf_file_stays_crlf(tmp_path: Path) -> None:
    town = town_with(tmp_path, '[[tasks]]\r\nid = "a"\r\n')
    edit.append_task(town, description="Two\nlines")
    raw = town.tasks_file.read_bytes()
    assert raw.count(b"\n") == raw.count(b"\r\n")
    assert raw.endswith(b'status = "pending"\r\n')


def test_a_big_file_is_appended_to_without_parsing_it_with_tomlkit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = tasks_toml(2000, backlog=20)
    town = town_with(tmp_path, text)
    parse = tomlkit.parse

    def small_only(source: str) -> Any:
        assert len(source) < 1000, "tomlkit parsed the whole file"
        return parse(source)

    monkeypatch.setattr(tomlkit, "parse", small_only)
    new_id = edit.append_task(town, description="Backlog item", validate=lambda a, b: None)
    assert town.tasks_file.read_text() == text + (
        f'\n[[tasks]]\nid = "{new_id}"\ndescription = "Backlog item"\nstatus = "pending"\n'
    )
