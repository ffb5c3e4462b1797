"""`tt schema [town|tasks] [--path | --uri]`, and the `#:schema` line of the files `tt init`
writes: it names that schema, is a comment to TOML, and the template checks still pass."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cli.main import cli
from reconciler.spec.schemacheck import schema_dir


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


def test_init_files_start_with_the_schema_directive(tmp_path: Path) -> None:
    run("init", str(tmp_path), "--name", "edited")
    for which in ("town", "tasks"):
        first = (tmp_path / f"{which}.toml").read_text().splitlines()[0]
        assert first == f"#:schema {run('schema', which, '--uri').strip()}"
        assert first.startswith("#:schema file:///") and first.endswith(f"/{which}.schema.json")
    assert (
        run("validate", "--town", str(tmp_path)) == "✓ town 'edited' is valid: 0 agents, 0 tasks\n"
    )
    # Tinytown's next step: a starter task appended below the template, the directive kept
    assert run("plan", "--init", "--town", str(tmp_path)) == f"wrote {tmp_path / 'tasks.toml'}\n"
    assert (tmp_path / "tasks.toml").read_text().startswith("#:schema file:///")
    assert "1 task" in run("validate", "--town", str(tmp_path))
    # tt plan --init where tasks.toml is missing writes it whole, directive first
    (tmp_path / "tasks.toml").unlink()
    run("plan", "--init", "--town", str(tmp_path))
    assert (tmp_path / "tasks.toml").read_text().startswith("#:schema file:///")


def test_an_edit_keeps_the_directive(tmp_path: Path) -> None:
    run("init", str(tmp_path), "--name", "edited")
    before = (tmp_path / "town.toml").read_text().splitlines()[0]
    from reconciler import edit
    from reconciler.town import TownPaths

    edit.add_agent(TownPaths(tmp_path), "dev", {"model": "sim"})
    assert (tmp_path / "town.toml").read_text().splitlines()[0] == before
