"""Removing one `[[tasks]]` table (`tt backlog remove`): its own comment lines go with it, the
other tasks' comments and every other line stay byte-identical; a layout the text edit does not
recognise falls back to tomlkit's edit; an unknown id changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import edit
from reconciler.edit.remove import remove_task_text
from reconciler.errors import NotFound
from reconciler.town import TownPaths

TASKS = """\
# The work.
[meta]
description = "x"

# the first one
[[tasks]]
id = "a"   # inline
description = "A"

# about b
[[tasks]]
id = "b"
# inside b
description = "B"

# about c
[[tasks]]
id = "c"
description = \"\"\"
C
# not a comment: inside the string
\"\"\"

# the end of the file
"""


def test_a_middle_task_goes_with_its_own_comment_only() -> None:
    assert remove_task_text(TASKS, "b") == TASKS.replace(
        '# about b\n[[tasks]]\nid = "b"\n# inside b\ndescription = "B"\n\n', ""
    )


def test_the_first_and_the_last_task() -> None:
    assert remove_task_text(TASKS, "a") == TASKS.replace(
        '# the first one\n[[tasks]]\nid = "a"   # inline\ndescription = "A"\n\n', ""
    )
    last = remove_task_text(TASKS, "c")
    assert last is not None and last.endswith('description = "B"\n\n# the end of the file\n')
    assert "# about c" not in last and "inside the string" not in last


def test_unknown_id_or_a_layout_it_does_not_know_gives_none() -> None:
    assert remove_task_text(TASKS, "zzz") is None
    assert remove_task_text("  [[tasks]]\n  id = 'a'\n", "a") is None  # indented header
    assert remove_task_text("[[tasks]\n", "a") is None  # not TOML


def test_remove_task_edits_the_file_and_refuses_an_unknown_id(tmp_path: Path) -> None:
    paths = TownPaths(tmp_path)
    (tmp_path / "tasks.toml").write_text(TASKS)
    edit.remove_task(paths, "b")
    assert (tmp_path / "tasks.toml").read_text() == remove_task_text(TASKS, "b")
    before = (tmp_path / "tasks.toml").read_text()
    with pytest.raises(NotFound, match="no task with id 'bb'"):
        edit.remove_task(paths, "bb")
    assert (tmp_path / "tasks.toml").read_text() == before


def test_an_indented_layout_goes_through_tomlkit(tmp_path: Path) -> None:
    (tmp_path / "tasks.toml").write_text(
        "  [[tasks]]\n  id = 'a'\n  description = 'A'\n\n  [[tasks]]\n  id = 'b'\n"
        "  description = 'B'\n"
    )
    edit.remove_task(TownPaths(tmp_path), "a")
    assert "id = 'a'" not in (tmp_path / "tasks.toml").read_text()
    assert "  id = 'b'\n" in (tmp_path / "tasks.toml").read_text()


PACKED = """\
[[tasks]]
id = "a"
description = "A"
# a's own note, right under its lines

[[tasks]]
id = "b"
description = "B"
# b's own note
[[tasks]]
id = "c"
description = "C"
"""


def test_comments_directly_under_a_table_are_that_tables() -> None:
    # b goes with its note; a's note (directly under a's lines) stays with a
    assert remove_task_text(PACKED, "b") == PACKED.replace(
        '[[tasks]]\nid = "b"\ndescription = "B"\n# b\'s own note\n', ""
    )
    # c's header follows b's note directly: that note is b's, it stays
    assert remove_task_text(PACKED, "c") == PACKED.replace(
        '[[tasks]]\nid = "c"\ndescription = "C"\n', ""
    )
    # a goes with its note; the blank line under it is kept once
    assert remove_task_text(PACKED, "a") == PACKED.replace(
        '[[tasks]]\nid = "a"\ndescription = "A"\n# a\'s own note, right under its lines\n\n', ""
    )
