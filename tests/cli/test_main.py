"""The `tt` group loads a command's module only when it runs (or help lists it): the map of
commands to modules is complete, and a command imports no other command module."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from cli.main import COMMANDS, cli

ROOT = Path(__file__).parents[2]


def test_every_command_is_mapped_to_the_module_that_registers_it() -> None:
    registered: dict[str, str] = {}
    for path in sorted((ROOT / "cli").glob("cmd_*.py")):
        group = click.Group()
        importlib.import_module(f"cli.{path.stem}").register(group)
        registered.update(dict.fromkeys(group.commands, path.stem))
    assert registered == COMMANDS


def test_help_lists_every_command_and_a_typo_gets_a_suggestion() -> None:
    listed = CliRunner().invoke(cli, ["--help"]).output
    for name in COMMANDS:
        # Hidden: `agent` (run by the supervisor) and Tinytown's commands that say the tt way.
        assert name in listed or name == "agent" or COMMANDS[name] == "cmd_tinytown"
    typo = CliRunner().invoke(cli, ["lst"])
    assert "No such command 'lst'. Did you mean 'list'?" in typo.output


def test_a_command_imports_only_its_own_module(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from cli.main import main\n"
        f"sys.argv = ['tt', 'validate', '--town', {str(tmp_path)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('cli.cmd_')))\n"
    )
    (tmp_path / "town.toml").write_text('[town]\nname = "lazy"\n')
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "['cli.cmd_validate']", done.stderr
