"""What tt prints of a model's or a file's text acts on no terminal: every control character but
newline and tab is shown as `\\xNN`, at the one place the CLI prints (`cli.common.echo`)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from cli.common import printable
from cli.events import event_line

ROOT = Path(__file__).parents[2]

HOSTILE = {
    "osc52 clipboard": ("\x1b]52;c;cm0gLXJmIH4=\x07", "\\x1b]52;c;cm0gLXJmIH4=\\x07"),
    "title change": ("\x1b]0;pwned\x1b\\", "\\x1b]0;pwned\\x1b\\"),
    "osc8 hyperlink": (
        "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
        "\\x1b]8;;https://evil.example\\x1b\\click\\x1b]8;;\\x1b\\",
    ),
    "csi clear screen": ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),
    "sgr colour": ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    "c1 csi": ("\x9b2J", "\\x9b2J"),
    "c1 osc": ("\x9d0;t\x9c", "\\x9d0;t\\x9c"),
    "bare esc": ("a\x1bb", "a\\x1bb"),
    "carriage return": ("ok\rFAILED", "ok\\x0dFAILED"),
    "backspace and bell": ("x\x08\x07", "x\\x08\\x07"),
    "nul and del": ("\x00\x7f", "\\x00\\x7f"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_control_sequences_are_shown_not_obeyed(name: str) -> None:
    raw, shown = HOSTILE[name]
    assert printable(raw) == shown
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in printable(raw))


def test_newline_tab_and_ordinary_text_pass_as_they_are() -> None:
    text = "line 1\n\tindented — ünïcode ✓ [bold]not markup[/bold] \\x1b literal\n"
    assert printable(text) == text


def test_an_event_line_of_a_hostile_result_prints_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli.common import echo

    echo(event_line({"type": "task.failed", "ts": "1", "error": "\x1b]52;c;eA==\x07boom"}))
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "error=\\x1b]52;c;eA==\\x07boom" in out


def test_the_cli_prints_only_through_echo_or_json() -> None:
    """No `click.echo`, `click.secho`, `print` or rich `print` of text anywhere in cli/ but the
    one door (`common.echo`, and `emit_json`, whose JSON escapes control characters)."""
    offenders = []
    for path in sorted((ROOT / "cli").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = (
                f"{f.value.id}.{f.attr}"
                if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                else getattr(f, "id", "")
            )
            if name in ("click.echo", "click.secho", "print") and path.name != "common.py":
                offenders.append(f"{path.name}:{node.lineno} {name}")
    assert offenders == []


def test_json_output_escapes_control_characters() -> None:
    assert "\x1b" not in json.dumps({"result": "\x1b]52;c;eA==\x07\x9b"})


def test_a_rich_table_on_a_tty_shows_cells_as_written(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The coloured table (a TTY without NO_COLOR) goes through rich: its cells are escaped
    too, and a result's `[bold]` is text, not markup."""
    from cli import render

    monkeypatch.setattr(render, "use_color", lambda: True)
    render.table(["TASK", "INFO"], [["t", "\x1b]0;pwned\x07[bold]x[/bold]"]])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07[bold]x[/bold]" in out
