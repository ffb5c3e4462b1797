"""Options shared by every command, and the output helpers (human or `-o json`).

`echo` is the one way text reaches the terminal: whatever tt prints may hold what a model wrote
or a file said (results, errors, log tails, event fields, messages), so every control character
is made visible first (`printable`); JSON escapes them itself.
"""

from __future__ import annotations

import gc
import json
import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconciler.town import TownPaths, find_town

if TYPE_CHECKING:
    from reconciler.control.session import Session

F = TypeVar("F", bound=Callable[..., Any])

# Set by `cli.main.run`, the `tt` program, whose process ends (os._exit) once its command
# returned; not when a command is invoked in a longer-lived process (a test's CliRunner).
PROGRAM = {"exits_after_command": False}


def one_shot() -> None:
    """In the `tt` program, whose process ends right after the command, no cycle collector: an
    apply pauses it for the pass and turns it back on at the end, which walks the pass's
    objects once more (~15 ms for 10,000 tasks) to free nothing. `apply --wait` turns it back
    on for its loop."""
    if PROGRAM["exits_after_command"]:
        gc.disable()


def town_option(f: F) -> F:
    return click.option(
        "-t",  # Tinytown's short form
        "--town",
        "town_dir",
        type=click.Path(file_okay=False, path_type=str),
        default=None,
        help="Town folder (default: $TT_TOWN, else the nearest town.toml upward).",
    )(f)


def output_option(f: F) -> F:
    return click.option(
        "-o",
        "--output",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Output format.",
    )(f)


def session(town_dir: str | None, *, lean: bool = False, adopt: bool = False) -> Session:
    """The town's `Session` (imported here lazily: it pulls in the loader); `lean` for a
    command whose Redis work is an apply, `adopt` for `tt apply --adopt` (`Session`)."""
    from reconciler.control import remote
    from reconciler.control.session import Session

    # An agent of a node without the town's files (or a model inside one): TT_TOWN_NAME.
    found = remote.from_env(town_dir)
    return found if found is not None else Session.find(town_dir, lean=lean, adopt=adopt)


def resolve_town(town_dir: str | None) -> TownPaths:
    return find_town(town_dir)


def emit_json(data: object) -> None:
    # json.dumps writes every control character (and all non-ASCII) as a \\u escape.
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def use_color() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


# C0 controls but \t and \n, DEL, and C1 controls (U+0080-U+009F: 0x9b is a one-byte CSI on
# terminals that read 8-bit controls). ESC is one of them, so no sequence survives: OSC 52
# clipboard writes, title changes, OSC 8 links, CSI cursor moves, SGR colours; CR cannot
# overwrite a line, nor backspace erase one.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with every terminal control character but newline and tab shown as `\\xNN`
    (ESC as `\\x1b`): what a person sees is what was written, and nothing acts on the
    terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def echo(text: object = "", *, err: bool = False, nl: bool = True) -> None:
    """`click.echo` of `printable(text)`: the only place the CLI prints text."""
    click.echo(printable(str(text)), err=err, nl=nl)
