"""What no model process could be given is rejected by validation, with file:line and field: a NUL
byte in any string (or key) of either file, an agent's workdir that exists and is not a folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.spec import loader
from tests.spec.test_loader import problems_of, write_town

TOWN = '[town]\nname = "nul"\n\n[agents.dev]\nmodel = "sim"\n'
TASKS = '[[tasks]]\nid = "a"\ndescription = "fine"\nagent = "dev"\n'


@pytest.mark.parametrize("escape", ["\\u0000", "\\U00000000", "\\x00"])
def test_a_nul_byte_in_a_task_description_is_rejected_with_its_line(escape: str) -> None:
    tasks = TASKS + f'\n[[tasks]]\nid = "b"\ndescription = "bad {escape} text"\nagent = "dev"\n'
    (p,) = problems_of(TOWN, tasks)
    assert p.render().startswith("tasks.toml:8: $.tasks[1].description: contains a NUL byte")


def test_a_nul_byte_in_town_toml_strings_and_keys_is_rejected_everywhere() -> None:
    town = (
        '[town]\nname = "nul"\n\n'
        '[agents.dev]\nmodel = "sim"\nargs = ["--x", "a\\u0000"]\n'
        'env = { "K\\u0000" = "v", OK = "a\\u0000b" }\n'
    )
    found = {p.render().split(" (")[0] for p in problems_of(town, TASKS)}
    assert "town.toml:6: $.agents.dev.args[1]: contains a NUL byte" in found
    assert any(f.startswith("town.toml:7: $.agents.dev.env") and "key" in f for f in found)
    assert "town.toml:7: $.agents.dev.env.OK: contains a NUL byte" in found


def test_an_escaped_backslash_before_u0000_is_no_nul() -> None:
    tasks = TASKS.replace("fine", "a path like C:\\\\u0000 is text")
    assert loader.check_texts(TOWN, tasks).valid


def test_a_workdir_that_is_a_file_is_rejected_with_its_line(tmp_path: Path) -> None:
    town = TOWN + 'workdir = "src"\n'
    paths = write_town(tmp_path / "t", town, TASKS)
    assert loader.check(paths).valid  # missing: made when the agent first runs a model
    (paths.root / "src").write_text("not a folder")
    result = loader.check(paths)
    (p,) = result.problems
    assert not result.valid
    assert p.render().startswith("town.toml:6: $.agents.dev.workdir: 'src' exists and is not")
    (paths.root / "src").unlink()
    (paths.root / "src").mkdir()
    assert loader.check(paths).valid
