"""`copilot --output-format json`: JSONL events on stdout, errors included (stderr is empty):
`assistant.message` (`data.content`), `session.error` (`data.message`), and a final `result`
with `exitCode` and `sessionId`. Its `usage` holds premium requests, not tokens or dollars:
tokens come only from `assistant.usage` events where the CLI writes them, cost stays null.
"""

from __future__ import annotations

from typing import Any

from ..exitclass import ExitClass
from .base import Parsed, Tokens, add, count, events, failure_class, text_of, unreadable


def parse(stdout: str, stderr: str, returncode: int | None) -> Parsed:
    seen = events(stdout)
    if not seen:
        return unreadable(stdout, stderr, returncode, "copilot-jsonl")
    session: str | None = None
    answer = ""
    error: str | None = None
    exit_code: int | None = None
    tokens = Tokens()
    done = False
    for e in seen:
        data: dict[str, Any] = e["data"] if isinstance(e.get("data"), dict) else {}
        session = text_of(e.get("sessionId")) or text_of(data.get("sessionId")) or session
        kind = e.get("type")
        if kind == "assistant.message":
            answer = text_of(data.get("content")) or answer
        elif kind == "assistant.usage":
            tokens = Tokens(
                input=add(tokens.input, count(data.get("inputTokens"))),
                output=add(tokens.output, count(data.get("outputTokens"))),
                cache_read=add(tokens.cache_read, count(data.get("cacheReadTokens"))),
                cache_write=add(tokens.cache_write, count(data.get("cacheWriteTokens"))),
            )
        elif kind == "session.error":
            error = text_of(data.get("message")) or "copilot reported a session error"
        elif kind == "result":
            done = True
            code = e.get("exitCode")
            exit_code = code if isinstance(code, int) and not isinstance(code, bool) else None
    if not done:
        return unreadable(stdout, stderr, returncode, "copilot-jsonl")
    if error is None and returncode == 0 and exit_code in (0, None):
        return Parsed(answer, ExitClass.SUCCESS, session, tokens)
    message = error or stderr.strip()[-2000:] or f"copilot exited with code {exit_code}"
    return Parsed(message, failure_class(message), session, tokens)
