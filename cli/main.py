"""`tt` entry point: the command group and the one place where engine errors become output."""

from __future__ import annotations

import importlib
import os
import sys

import click

from reconciler import __version__
from reconciler.control.gcpause import gc_paused
from reconciler.errors import EXIT_ERROR, TtError

from .common import PROGRAM, echo

# The module that registers each command, imported when the command runs or help lists it:
# not every module for every command (cmd_agents and cmd_server alone take ~20 ms to import,
# a fifth of what `tt apply` spends on imports). tests/cli/test_main.py holds this complete.
COMMANDS = {
    **dict.fromkeys(["init"], "cmd_init"),
    **dict.fromkeys(["validate"], "cmd_validate"),
    **dict.fromkeys(["schema"], "cmd_schema"),
    **dict.fromkeys(
        ["plan", "apply", "sync", "assign", "cancel", "retry", "kill"],
        "cmd_apply",
    ),
    **dict.fromkeys(["restart", "unlock", "down"], "cmd_apply"),
    **dict.fromkeys(["spawn"], "cmd_spawn"),
    **dict.fromkeys(["diff"], "cmd_drift"),
    **dict.fromkeys(["status"], "cmd_status"),
    **dict.fromkeys(["show"], "cmd_show"),
    **dict.fromkeys(["graph"], "cmd_graph"),
    **dict.fromkeys(["approve", "reject"], "cmd_gates"),
    **dict.fromkeys(["mcp"], "cmd_mcp"),
    **dict.fromkeys(["merge"], "cmd_merge"),
    **dict.fromkeys(["conductor", "watch", "wait", "refresh"], "cmd_loop"),
    **dict.fromkeys(["list", "send", "inbox", "logs", "events", "agent", "task"], "cmd_agents"),
    **dict.fromkeys(["server"], "cmd_server"),
    **dict.fromkeys(["worktrees", "gc"], "cmd_work"),
    **dict.fromkeys(["history", "rollback"], "cmd_gitops"),
    **dict.fromkeys(["suspend", "resume"], "cmd_suspend"),
    **dict.fromkeys(["start", "stop", "save", "restore", "recover", "reclaim"], "cmd_lifecycle"),
    **dict.fromkeys(["prune", "interrupt", "close", "tasks"], "cmd_lifecycle"),
    **dict.fromkeys(["mission", "auth", "migrate", "towns", "reset"], "cmd_tinytown"),
    **dict.fromkeys(["bootstrap"], "cmd_tinytown"),
    **dict.fromkeys(["backlog"], "cmd_backlog"),
    **dict.fromkeys(["config"], "cmd_config"),
    **dict.fromkeys(["usage", "resume-provider"], "cmd_usage"),
    **dict.fromkeys(["serve"], "cmd_serve"),
    **dict.fromkeys(["node", "nodes"], "cmd_node"),
}


class Commands(click.Group):
    """The `tt` group, loading each command's module on first use (`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            # An unknown name loads them all: click suggests the closest one it knows. With no
            # cycle collector meanwhile: the objects an import makes all live on, and its
            # sweeps over them would free nothing.
            with gc_paused():
                names = [COMMANDS[cmd_name]] if cmd_name in COMMANDS else set(COMMANDS.values())
                for module in names:
                    importlib.import_module(f"{__package__}.{module}").register(self)
        return self.commands.get(cmd_name)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tt")
def cli() -> None:
    """Tinytown: a declarative reconciler for teams of AI coding agents.

    A town is a folder with town.toml (the agents) and tasks.toml (the work).
    """


def main(argv: list[str] | None = None) -> None:
    try:
        rv = cli.main(args=argv, prog_name="tt", standalone_mode=False)
    except TtError as e:
        echo(f"error: {e.message}", err=True)
        if e.hint:
            echo(f"hint: {e.hint}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:
        # A file system refusal the engine did not word itself (a folder where a file should
        # be, a path under /proc, a full disk): one line naming the path, never a traceback.
        if e.filename is None:
            raise
        echo(f"error: {e.filename}: {e.strerror or e}", err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(rv if isinstance(rv, int) else 0)


def run() -> None:
    """The `tt` program: `main`, then a fast exit. A command that held 10,000 tasks would spend
    ~50 ms freeing them one by one at interpreter teardown, for nothing (mypy's --fast-exit does
    the same). Output is flushed first; nothing of tt's waits for atexit (no handler exists)."""
    PROGRAM["exits_after_command"] = True
    try:
        main()
        code: object = 0
    except SystemExit as e:
        code = e.code
    if code is not None and not isinstance(code, int):
        echo(code, err=True)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a closed pipe: nothing more to say there
            code = code or 1
    os._exit(code or 0)
