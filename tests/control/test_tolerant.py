"""An edit verb on a town that is not valid yet (control/tolerant.py): the problems the files had
may stay, a new one is refused with only itself named."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.control.tolerant import no_new_problem, problems_of
from reconciler.errors import ValidationFailed
from reconciler.town import TownPaths

TOWN = '[town]\nname = "t"\n\n[agents.architect]\nmodel = "sim"\n'
TASKS = "".join(
    f'[[tasks]]\nid = "{a}-task"\ndescription = "x"\nagent = "{a}"\n\n'
    for a in ("architect", "developer", "tester")
)


@pytest.fixture
def paths(tmp_path: Path) -> TownPaths:
    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_text(TASKS)
    return TownPaths(tmp_path)


def test_the_files_have_two_problems_to_begin_with() -> None:
    found = problems_of(TOWN, TASKS)
    assert len(found) == 2
    assert all("unknown agent" in p.message for p in found)


def test_an_edit_that_fixes_one_problem_passes_with_the_other_left(paths: TownPaths) -> None:
    town = TOWN + '\n[agents.developer]\nmodel = "sim"\n'
    no_new_problem(paths)(town, TASKS)  # raises nothing: 'tester' was unknown before
    assert len(problems_of(town, TASKS)) == 1


def test_an_edit_that_adds_a_problem_is_refused_naming_only_it(paths: TownPaths) -> None:
    town = TOWN + '\n[agents.developer]\nmodel = "sim"\nparent = "archtect"\n'
    with pytest.raises(ValidationFailed) as e:
        no_new_problem(paths)(town, TASKS)
    [problem] = e.value.problems
    assert "unknown agent 'archtect'" in problem.message and problem.hint == (
        "did you mean 'architect'?"
    )


def test_a_valid_town_stays_strict(paths: TownPaths) -> None:
    (paths.tasks_file).write_text("")
    with pytest.raises(ValidationFailed):
        no_new_problem(paths)(TOWN, TASKS)
