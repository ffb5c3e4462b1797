"""What a notification says: the one-line summary of an event (`{summary}`, Slack's text) and a
command's argv with its placeholders filled in. Plain values, no I/O: what the sinks send is
decided here and tested on plain fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ..spec.notifyrules import PLACEHOLDERS

PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
MAX_SUMMARY = 400  # characters: a chat line, a notification bubble
# C0 and C1 controls (U+009B is a terminal's CSI), the marks, embeddings, overrides and
# isolates of bidirectional text (they show a line turned around), and line separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]+")
# Slack reads `<...>` as a mention or link and `&` as an entity: escaped as its docs say.
_SLACK = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})

Words = Callable[[dict[str, str]], str]


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


def _error(f: dict[str, str]) -> str:
    return f": {_first_line(f['error'])}" if f.get("error") else ""


def _attempt(f: dict[str, str]) -> str:
    return f"attempt {f['attempt']}" if f.get("attempt") else "its attempt"


def _by(f: dict[str, str]) -> str:
    return f" by {f['by']}" if f.get("by") else ""


def _said(f: dict[str, str], key: str) -> str:
    return f": {_first_line(f[key])}" if f.get(key) else ""


def _why(f: dict[str, str]) -> str:
    return f" ({_first_line(f['reason'])})" if f.get("reason") else ""


def _final(f: dict[str, str]) -> str:
    said = [
        f"{f[s]} {s}"
        for s in ("completed", "failed", "cancelled", "upstream_failed", "skipped")
        if f.get(s)
    ]
    return f"all {f.get('count', '?')} tasks finished" + (f" ({', '.join(said)})" if said else "")


# The events people are most often told of, in words; any other type is told by its fields.
WORDS: dict[str, Words] = {
    "task.failed": lambda f: f"task {f.get('task')} failed after {_attempt(f)}{_error(f)}",
    "task.retrying": lambda f: f"task {f.get('task')} {_attempt(f)} failed, retrying{_error(f)}",
    "task.completed": lambda f: f"task {f.get('task')} completed",
    "task.cancelled": lambda f: f"task {f.get('task')} cancelled{_why(f)}",
    "task.upstream_failed": lambda f: (
        f"{f.get('count', '?')} task(s) cannot run, {f.get('upstream')} failed: {f.get('tasks')}"
    ),
    "task.awaiting_approval": lambda f: (
        f"task {f.get('task')} awaits approval (tt approve {f.get('task')})"
    ),
    "task.approved": lambda f: f"task {f.get('task')} approved{_by(f)}{_said(f, 'comment')}",
    "task.rejected": lambda f: f"task {f.get('task')} rejected{_by(f)}{_why(f)}",
    "town.completed": _final,
    "budget.exhausted": lambda f: (
        f"budget {f.get('scope')} exhausted: spent {f.get('spent')} of {f.get('limit')}"
    ),
    "provider.paused": lambda f: f"provider {f.get('provider')} paused{_why(f)}",
    "agent.exited": lambda f: f"agent {f.get('agent')} exited{_why(f)}",
    "town.health": lambda f: (
        f"health {f.get('was') or '?'} → {f.get('state')}: {f.get('reasons', '')}"
    ),
}
_SKIPPED = frozenset({"type", "ts"})


def summary(town: str, fields: dict[str, str]) -> str:
    """`[tt demo] task build failed after attempt 3: not logged in`: one line, no control
    characters, at most `MAX_SUMMARY` characters."""
    etype = fields.get("type", "?")
    words = WORDS.get(etype)
    if words is not None:
        text = words(fields)
    else:
        rest = " ".join(
            f"{k}={_first_line(v)}" for k, v in fields.items() if k not in _SKIPPED and v
        )
        text = f"{etype} {rest}".rstrip()
    line = _CONTROL.sub(" ", f"[tt {town}] {text}")
    return line if len(line) <= MAX_SUMMARY else line[: MAX_SUMMARY - 1] + "…"


def slack_text(said: str) -> str:
    """A summary as Slack's `text`: `&`, `<` and `>` escaped, so no text of a task or of an
    error mentions a channel or shows as a link."""
    return said.translate(_SLACK)


def fill(argv: Sequence[str], fields: dict[str, str], said: str) -> list[str]:
    """`argv` with `{event}`, `{task}`, `{agent}` and `{summary}` replaced in each argument, in
    one pass (a value holding `{task}` stays as it is); other braces are left alone. Each
    argument stays one argument: nothing is split or given to a shell."""
    values = {
        "event": fields.get("type", ""),
        "task": fields.get("task", ""),
        "agent": fields.get("agent", ""),
        "summary": said,
    }
    return [PLACEHOLDER.sub(lambda m: values[m.group(1)], arg) for arg in argv]
