from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli, main
from reconciler.errors import TtError, ValidationFailed

TOWN = """\
[town]
name = "demo"

[agents.architect]
model = "claude"

[agents.developer]
model = "auggie"
"""

TASKS = """\
[[tasks]]
id = "design"
agent = "architect"
description = "Design the API"

[[tasks]]
id = "implement"
agent = "developer"
parent = "design"
description = "Implement it"
"""

BAD_TASKS = """\
[[tasks]]
id = "design"
agent = "architect"
description = "Design the API"

[[tasks]]
id = "implement"
agent = "devloper"
depnds_on = ["design"]
description = "Implement it"
"""


def make_town(root: Path, tasks: str = TASKS) -> Path:
    (root / "town.toml").write_text(TOWN)
    (root / "tasks.toml").write_text(tasks)
    return root


def test_valid_town_text(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", "--town", str(make_town(tmp_path))])
    assert result.exit_code == 0, result.output
    assert result.output == "✓ town 'demo' is valid: 2 agents, 2 tasks\n"


def test_valid_town_found_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_town(tmp_path)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    monkeypatch.delenv("TT_TOWN", raising=False)
    result = CliRunner().invoke(cli, ["validate"])
    assert result.exit_code == 0, result.output
    assert "town 'demo' is valid" in result.output


def test_valid_town_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", "--town", str(make_town(tmp_path)), "-o", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "valid": True,
        "town": "demo",
        "agents": 2,
        "tasks": 2,
        "problems": [],
    }


def test_invalid_town_text_prints_every_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["validate", "--town", str(make_town(tmp_path, BAD_TASKS))])
    assert caught.value.code == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "error: 2 problems in the town files; nothing was changed",
        "tasks.toml:8: $.tasks[1].agent: unknown agent 'devloper' (did you mean 'developer'?)",
        "tasks.toml:9: $.tasks[1].depnds_on: unknown key 'depnds_on' (did you mean 'depends_on'?)",
    ]


def test_invalid_town_text_raises_validation_failed(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", "--town", str(make_town(tmp_path, BAD_TASKS))])
    assert result.exit_code == 1
    assert isinstance(result.exception, ValidationFailed)
    assert len(result.exception.problems) == 2


def test_invalid_town_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    town = str(make_town(tmp_path, BAD_TASKS))
    result = CliRunner().invoke(
        cli, ["validate", "--town", town, "-o", "json"], standalone_mode=False
    )
    assert result.return_value == 1
    report = json.loads(result.output)
    assert (report["valid"], report["town"], report["agents"], report["tasks"]) == (
        False,
        "demo",
        2,
        2,
    )
    assert report["problems"][0] == {
        "file": "tasks.toml",
        "line": 8,
        "column": None,
        "path": "$.tasks[1].agent",
        "message": "unknown agent 'devloper'",
        "hint": "did you mean 'developer'?",
    }
    assert [p["path"] for p in report["problems"]] == ["$.tasks[1].agent", "$.tasks[1].depnds_on"]
    # Through the real entry point the returned 1 becomes the exit code.
    with pytest.raises(SystemExit) as caught:
        main(["validate", "--town", town, "-o", "json"])
    assert caught.value.code == 1
    assert json.loads(capsys.readouterr().out)["valid"] is False


def test_syntax_error_json_has_line_and_column(tmp_path: Path) -> None:
    town = str(make_town(tmp_path, '[[tasks]]\nid = "a\n'))
    result = CliRunner().invoke(
        cli, ["validate", "--town", town, "-o", "json"], standalone_mode=False
    )
    assert result.return_value == 1
    (problem,) = json.loads(result.output)["problems"]
    assert (problem["file"], problem["line"], problem["column"], problem["path"]) == (
        "tasks.toml",
        2,
        8,
        "$",
    )


def test_no_town_is_an_error_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["validate", "--town", str(tmp_path)])
    assert caught.value.code == 1
    assert "has no town.toml" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("", "no description"),
        ('description = ""', "an empty description"),
        ('description = "  \\n "', "an empty description"),
    ],
)
def test_a_task_that_does_work_needs_a_description(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, found: str
) -> None:
    tasks = TASKS.replace('description = "Implement it"', line)
    with pytest.raises(SystemExit) as caught:
        main(["validate", "--town", str(make_town(tmp_path, tasks))])
    assert caught.value.code == 1
    where = 10 if line else 7  # the description's line, or the task id's where there is none
    assert capsys.readouterr().err.splitlines() == [
        "error: 1 problem in the town files; nothing was changed",
        f"tasks.toml:{where}: $.tasks[1].description: task 'implement' has {found} "
        "(a task that does work needs one: it is what its agent is asked to do)",
    ]


def test_files_check_the_town_of_each_once(tmp_path: Path) -> None:
    """`tt validate FILE...` (what a pre-commit hook passes): each file's folder is a town,
    checked once; problems name the file by its path."""
    (tmp_path / "good").mkdir()
    (tmp_path / "bad").mkdir()
    good, bad = make_town(tmp_path / "good"), make_town(tmp_path / "bad", BAD_TASKS)
    ok = CliRunner().invoke(cli, ["validate", str(good / "town.toml"), str(good / "tasks.toml")])
    assert ok.exit_code == 0, ok.output
    assert ok.output == f"✓ town 'demo' ({good}) is valid: 2 agents, 2 tasks\n"
    failed = CliRunner().invoke(
        cli, ["validate", str(good / "tasks.toml"), str(bad / "tasks.toml")]
    )
    assert isinstance(failed.exception, ValidationFailed)
    assert [p.render().split(": $")[0] for p in failed.exception.problems] == [
        f"{bad / 'tasks.toml'}:8",
        f"{bad / 'tasks.toml'}:9",
    ]
    args = ["validate", "-o", "json", str(bad / "tasks.toml"), str(good)]
    out = CliRunner().invoke(cli, args, standalone_mode=False)
    assert out.return_value == 1
    data = json.loads(out.output)
    assert data["valid"] is False
    assert [(t["folder"], t["valid"]) for t in data["towns"]] == [
        (str(bad), False),
        (str(good), True),
    ]


def test_files_and_town_together_are_refused(tmp_path: Path) -> None:
    make_town(tmp_path)
    done = CliRunner().invoke(cli, ["validate", "--town", str(tmp_path), "tasks.toml"])
    assert done.exit_code == 2 and "give the town once" in done.output


def test_files_refuse_a_missing_path_and_skip_a_folder_that_is_no_town(tmp_path: Path) -> None:
    """Review of #15: a missing file checked `.` and passed; a tasks.toml of something else
    (no town.toml beside it) blocked the pre-commit hook."""
    (tmp_path / "town").mkdir()
    town = make_town(tmp_path / "town")
    missing = CliRunner().invoke(cli, ["validate", str(tmp_path / "nope" / "tasks.toml")])
    assert isinstance(missing.exception, TtError) and missing.exception.exit_code == 1
    assert str(missing.exception) == f"{tmp_path / 'nope' / 'tasks.toml'}: no such file or folder"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "tasks.toml").write_text("not = 'ours'\n")
    args = ["validate", str(tmp_path / "other" / "tasks.toml"), str(town / "tasks.toml")]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    assert done.output.splitlines() == [
        f"- {tmp_path / 'other'}: skipped, no town.toml there (not a tt town)",
        f"✓ town 'demo' ({town}) is valid: 2 agents, 2 tasks",
    ]
    out = CliRunner().invoke(cli, ["validate", "-o", "json", *args[1:]], standalone_mode=False)
    assert out.return_value == 0
    skipped = json.loads(out.output)["towns"][0]
    assert skipped == {"folder": str(tmp_path / "other"), "skipped": "no town.toml: not a tt town"}
