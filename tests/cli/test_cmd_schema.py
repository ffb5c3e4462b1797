"""`tt schema [town|tasks] [--path | --uri]`, and the `#:schema` line of the files `tt init`
writes: it names that schema, is a comment to TOML, and the template checks still pass."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from reconciler.spec.schemacheck import schema_dir
from tests.work.gitrepo import make_repo


def run(*args: str) -> str:
    done = CliRunner().invoke(cli, list(args))
    assert done.exit_code == 0, done.output
    return done.output


def test_schema_prints_the_schema_and_its_path() -> None:
    for which in ("town", "tasks"):
        installed = (schema_dir() / f"{which}.schema.json").resolve()
        assert json.loads(run("schema", which)) == json.loads(installed.read_text())
        assert run("schema", which, "--path") == f"{installed}\n"
        assert run("schema", which, "--uri") == f"{installed.as_uri()}\n"
    assert run("schema").splitlines() == [
        f"town.toml: {(schema_dir() / 'town.schema.json').resolve()}",
        f"tasks.toml: {(schema_dir() / 'tasks.schema.json').resolve()}",
    ]


def test_schema_of_an_unknown_file_is_refused() -> None:
    done = CliRunner().invoke(cli, ["schema", "roster"])
    assert done.exit_code == 2 and "'town', 'tasks'" in done.output


@pytest.fixture
def vendored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository whose towns live in `towns/` and which commits tt's schemas in `schema/`
    (tt's own checkout is such a repository): tt's schema is inside the town's work tree."""
    repo = make_repo(tmp_path / "repo")
    shutil.copytree(schema_dir(), repo / "schema")
    monkeypatch.setattr("reconciler.edit.scaffold.schema_dir", lambda: repo / "schema")
    (repo / "towns" / "web").mkdir(parents=True)
    return repo / "towns" / "web"


def test_init_files_name_a_schema_in_their_repository_by_a_relative_path(vendored: Path) -> None:
    run("init", str(vendored), "--name", "edited")
    for which in ("town", "tasks"):
        first = (vendored / f"{which}.toml").read_text().splitlines()[0]
        assert first == f"#:schema ../../schema/{which}.schema.json"  # Taplo: from the file
        assert (vendored / first.split()[1]).resolve().is_file()
    assert run("validate", "--town", str(vendored)).startswith("✓ town 'edited' is valid")
    # Tinytown's next step: a starter task appended below the template, the directive kept
    assert run("plan", "--init", "--town", str(vendored)) == f"wrote {vendored / 'tasks.toml'}\n"
    assert (vendored / "tasks.toml").read_text().startswith("#:schema ../../schema/")
    assert "1 task" in run("validate", "--town", str(vendored))
    # tt plan --init where tasks.toml is missing writes it whole, directive first
    (vendored / "tasks.toml").unlink()
    run("plan", "--init", "--town", str(vendored))
    assert (vendored / "tasks.toml").read_text().startswith("#:schema ../../schema/")


def test_init_files_name_no_path_of_one_machine(tmp_path: Path) -> None:
    """Review of #15: a file:// URL of site-packages in a file meant to be committed. Outside
    the schema's work tree (any repository, or none) the directive is left out."""
    outside = make_repo(tmp_path / "repo") / "town"
    for folder in (tmp_path / "plain", outside):
        run("init", str(folder), "--name", "edited")
        for which in ("town", "tasks"):
            text = (folder / f"{which}.toml").read_text()
            assert "#:schema" not in text and "file://" not in text
        assert run("validate", "--town", str(folder)).startswith("✓ town 'edited' is valid")


def test_an_edit_keeps_the_directive(vendored: Path) -> None:
    run("init", str(vendored), "--name", "edited")
    before = (vendored / "town.toml").read_text().splitlines()[0]
    assert before.startswith("#:schema ")
    from reconciler import edit
    from reconciler.town import TownPaths

    edit.add_agent(TownPaths(vendored), "dev", {"model": "sim"})
    assert (vendored / "town.toml").read_text().splitlines()[0] == before
