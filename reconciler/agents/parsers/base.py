"""What a parser reads from a CLI's output (`Parsed`), and the JSON helpers every parser shares.

Pure: strings in, values out. A number the CLI did not give stays None: tokens without a price
give no cost, and nothing is estimated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..exitclass import AUTH, ExitClass, signal_class, stderr_limit

RAW_TAIL = 2000  # what is kept of output that could not be read


@dataclass(frozen=True)
class Tokens:
    input: int | None = None
    output: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return {
            "input": self.input,
            "output": self.output,
            "cache_read": self.cache_read,
            "cache_write": self.cache_write,
        }


NO_TOKENS = Tokens()


@dataclass(frozen=True)
class Parsed:
    """One run as its CLI told it: `text` is the result on success, else the CLI's message
    (or the raw tail of output it could not read); `exit_class` its own verdict."""

    text: str
    exit_class: ExitClass
    session_id: str | None = None
    tokens: Tokens = NO_TOKENS
    cost_usd: float | None = None
    turns: int | None = None
    unreadable: bool = False  # the JSON was missing, unknown or truncated


def count(value: object) -> int | None:
    """A token or turn count: a non-negative int (bools and floats refused), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def money(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return float(value)


def add(a: int | None, b: int | None) -> int | None:
    """Sum of two counts; None only when neither was given."""
    if a is None:
        return b
    return a if b is None else a + b


def text_of(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def last_document(text: str) -> dict[str, Any] | None:
    """The last JSON object in `text`: all of it, else from the last line that opens one
    (a CLI may print warnings before it, and pretty-print it over many lines)."""
    stripped = text.strip()
    if not stripped:
        return None
    candidates = [stripped]
    lines = stripped.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("{")]
    candidates += ["".join(lines[i:]) for i in reversed(starts) if i > 0]
    for candidate in candidates:
        try:
            doc = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(doc, dict):
            return doc
    return None


def events(text: str) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL stream, one a line; other lines are skipped."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


def unreadable(stdout: str, stderr: str, returncode: int | None, what: str) -> Parsed:
    """Output that is not the CLI's JSON: failed, with its raw tail kept. A CLI that failed
    before it wrote any JSON may still have named a login, or a limit on an error line of its
    stderr (its stdout may be the model's words)."""
    raw = (stdout.strip() or stderr.strip() or "(no output)")[-RAW_TAIL:]
    cls = ExitClass.FAILED
    if returncode not in (0, None):
        cls = stderr_limit(stderr) or ExitClass.FAILED
        if cls is ExitClass.FAILED and AUTH.search(f"{stdout}\n{stderr}"):
            cls = ExitClass.AUTH
    return Parsed(f"no readable {what} output: {raw}", cls, unreadable=True)


def failure_class(message: str) -> ExitClass:
    """The class of the error message a CLI's JSON gave (its own words, not the model's)."""
    return signal_class(message) or ExitClass.FAILED
