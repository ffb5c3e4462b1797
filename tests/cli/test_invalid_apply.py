"""Invalid files have no side effects: `tt apply` on them starts no server and writes nothing,
and reports every problem of both files exactly as `tt validate` does."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from reconciler import server
from reconciler.town import TownPaths

TOWN = '[town]\nname = "broken"\n\n[agents.x]\nmodel = "nomodel"\nreplicas = 0\n'
TASKS = '[[tasks]]\nid = "a"\ndescription = ""\nagent = "nobody"\nretries = -1\n'


def tt(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(list(args))
    out, err = capsys.readouterr()
    return int(caught.value.code or 0), out, err


def test_an_invalid_apply_starts_nothing_and_lists_what_validate_lists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_text(TASKS)
    paths = TownPaths(tmp_path)
    try:
        v_code, _, v_err = tt(capsys, "validate", "--town", str(tmp_path))
        for verb in (["apply"], ["sync", "push"], ["apply", "--wait"]):
            code, out, err = tt(capsys, *verb, "--town", str(tmp_path))
            assert (code, out) == (v_code, ""), (verb, err)
            assert err == v_err, verb  # the same five problems, worded the same
            assert not server.is_running(paths), verb
            assert not (paths.state_dir / "valkey.pid").exists(), verb
    finally:
        server.stop(paths)
    assert v_code == 1 and v_err.count("\n") == 6, v_err  # a summary line and five problems


def test_git_and_touches_problems_read_the_same_in_validate_plan_and_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    town = '[town]\nname = "gitty"\n\n[agents.dev]\nmodel = "sim"\n\n[git]\nbase = "a b"\n'
    tasks = '[[tasks]]\nid = "a"\nagent = "dev"\ndescription = "d"\ntouches = ["../x"]\n'
    (tmp_path / "town.toml").write_text(town)
    (tmp_path / "tasks.toml").write_text(tasks)
    paths = TownPaths(tmp_path)
    try:
        v_code, _, v_err = tt(capsys, "validate", "--town", str(tmp_path))
        assert v_code == 1 and v_err.splitlines() == [
            "error: 2 problems in the town files; nothing was changed",
            'town.toml:8: $.git.base: invalid branch name "a b": a git ref name cannot contain '
            "a space",
            "tasks.toml:5: $.tasks[0].touches[0]: invalid glob \"../x\": a '..' segment would "
            "leave the repository",
        ]
        for verb in (["plan"], ["apply", "--dry-run"], ["apply"]):
            code, out, err = tt(capsys, *verb, "--town", str(tmp_path))
            assert (code, out, err) == (v_code, "", v_err), verb
            assert not server.is_running(paths), verb
    finally:
        server.stop(paths)
