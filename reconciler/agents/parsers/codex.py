"""`codex exec --json`: JSONL events on stdout (`thread.started` with the thread id, the
`item.completed` items, `turn.completed` with its usage, `turn.failed` and `error` with a
message). Codex gives tokens but no price: cost stays null. Its input count includes the cached
part (`cached_input_tokens`), shown as cache_read.
"""

from __future__ import annotations

from ..exitclass import ExitClass
from .base import Parsed, Tokens, add, count, events, failure_class, text_of, unreadable


def parse(stdout: str, stderr: str, returncode: int | None) -> Parsed:
    seen = events(stdout)
    if not seen:
        return unreadable(stdout, stderr, returncode, "codex-jsonl")
    session: str | None = None
    answer = ""
    error: str | None = None
    failed = False
    turns = 0
    tokens = Tokens()
    for e in seen:
        kind = e.get("type")
        if kind == "thread.started":
            session = text_of(e.get("thread_id")) or session
        elif kind == "item.completed":
            item = e.get("item")
            if isinstance(item, dict) and item.get("type") == "agent_message":
                answer = text_of(item.get("text")) or answer
        elif kind == "turn.completed":
            turns += 1
            usage = e.get("usage")
            if isinstance(usage, dict):
                tokens = Tokens(
                    input=add(tokens.input, count(usage.get("input_tokens"))),
                    output=add(tokens.output, count(usage.get("output_tokens"))),
                    cache_read=add(tokens.cache_read, count(usage.get("cached_input_tokens"))),
                )
        elif kind == "turn.failed":
            failed = True
            err = e.get("error")
            error = text_of(err.get("message")) if isinstance(err, dict) else None
            error = error or "codex reported a failed turn"
        elif kind == "error":
            error = text_of(e.get("message")) or error  # a retry may follow: not final alone
    if not failed and returncode == 0 and turns:
        return Parsed(answer, ExitClass.SUCCESS, session, tokens, None, turns)
    if not failed and returncode == 0:
        return unreadable(stdout, stderr, returncode, "codex-jsonl")
    message = error or stderr.strip() or f"codex exited with code {returncode}"
    return Parsed(message, failure_class(message), session, tokens, None, turns or None)
