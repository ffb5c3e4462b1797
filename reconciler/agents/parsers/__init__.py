"""parsers: read a model CLI's own output (`output = "…"` of its model) into a `Parsed`: the
result, native session id, tokens, cost and the CLI's own exit signals. Pure functions of the
run's output; they start nothing and decide no task's fate (the runner does, with `judge`).
"""

from __future__ import annotations

from collections.abc import Callable

from ...spec.desired import OutputMode
from . import claude, codex, copilot, gemini
from .base import Parsed, Tokens

__all__ = ["PARSERS", "Parsed", "Tokens", "parse"]

PARSERS: dict[OutputMode, Callable[[str, str, int | None], Parsed]] = {
    OutputMode.CLAUDE_JSON: claude.parse,
    OutputMode.CODEX_JSONL: codex.parse,
    OutputMode.GEMINI_JSON: gemini.parse,
    OutputMode.COPILOT_JSONL: copilot.parse,
}


def parse(mode: OutputMode, stdout: str, stderr: str, returncode: int | None) -> Parsed | None:
    """What the CLI's JSON says; None in text mode (its stdout is the result as it is)."""
    fn = PARSERS.get(mode)
    return None if fn is None else fn(stdout, stderr, returncode)
