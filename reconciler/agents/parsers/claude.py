"""`claude -p --output-format stream-json --verbose` (the preset): JSONL events on stdout, the
`system` `init` event (its session id) first, an `assistant` event per message block (each with
the message's `usage`), tool results, and a final `result` object; also `--output-format json`,
that result object alone. Also when it fails.

Its own signals: `is_error` (true even with `subtype: "success"`: "Not logged in"), the error
subtypes (`error_max_turns`, `error_during_execution`), and the message in `result`, on stdout
(stderr is empty). Cost is `total_cost_usd`; tokens are `usage`. A run cut off before its result
(a timeout, a stall, a kill) still tells its session and the tokens of the messages streamed so
far; its cost is unknown (null: never estimated).
"""

from __future__ import annotations

from typing import Any

from ..exitclass import ExitClass
from .base import (
    Parsed,
    Tokens,
    add,
    count,
    events,
    failure_class,
    last_document,
    money,
    text_of,
    unreadable,
)


def parse(stdout: str, stderr: str, returncode: int | None) -> Parsed:
    seen = events(stdout)
    doc = next((e for e in reversed(seen) if e.get("type") == "result"), None)
    if doc is None:
        doc = last_document(stdout)  # `--output-format json`, maybe pretty-printed
    if doc is None or doc.get("type") != "result":
        return _cut_off(seen, unreadable(stdout, stderr, returncode, "claude-json"))
    subtype = str(doc.get("subtype") or "")
    result = text_of(doc.get("result")) or ""
    is_error = doc.get("is_error") is True
    if is_error or subtype != "success" or returncode != 0:
        message = result or f"claude reported {subtype or 'an error'}"
        # Only an error result is claude's own message; otherwise `result` is the model's.
        cls = failure_class(message) if is_error else ExitClass.FAILED
    else:
        message, cls = result, ExitClass.SUCCESS
    return Parsed(
        text=message,
        exit_class=cls,
        session_id=text_of(doc.get("session_id")) or _session(seen),
        tokens=_tokens(doc.get("usage")),
        cost_usd=money(doc.get("total_cost_usd", doc.get("cost_usd"))),
        turns=count(doc.get("num_turns")),
    )


def _tokens(usage: Any) -> Tokens:
    usage = usage if isinstance(usage, dict) else {}
    return Tokens(
        input=count(usage.get("input_tokens")),
        output=count(usage.get("output_tokens")),
        cache_read=count(usage.get("cache_read_input_tokens")),
        cache_write=count(usage.get("cache_creation_input_tokens")),
    )


def _session(seen: list[dict[str, Any]]) -> str | None:
    return next((s for e in seen if (s := text_of(e.get("session_id")))), None)


def _cut_off(seen: list[dict[str, Any]], failed: Parsed) -> Parsed:
    """A stream with no result: what it told so far (session, the tokens of each message once:
    claude repeats a message's usage on each of its blocks), cost unknown."""
    usage: dict[str, Any] = {}
    for e in seen:
        message = e.get("message")
        if e.get("type") == "assistant" and isinstance(message, dict):
            usage[str(message.get("id") or len(usage))] = message.get("usage")
    tokens = Tokens()
    for u in usage.values():
        t = _tokens(u)
        tokens = Tokens(
            add(tokens.input, t.input),
            add(tokens.output, t.output),
            add(tokens.cache_read, t.cache_read),
            add(tokens.cache_write, t.cache_write),
        )
    turns = len(usage) or None
    return Parsed(failed.text, failed.exit_class, _session(seen), tokens, None, turns, True)
