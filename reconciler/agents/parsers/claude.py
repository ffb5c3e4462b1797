"""`claude -p --output-format json`: one result object on stdout, also when it fails.

Its own signals: `is_error` (true even with `subtype: "success"`: "Not logged in"), the error
subtypes (`error_max_turns`, `error_during_execution`), and the message in `result`, on stdout
(stderr is empty). Cost is `total_cost_usd`; tokens are `usage`.
"""

from __future__ import annotations

from ..exitclass import ExitClass
from .base import Parsed, Tokens, count, failure_class, last_document, money, text_of, unreadable


def parse(stdout: str, stderr: str, returncode: int | None) -> Parsed:
    doc = last_document(stdout)
    if doc is None or doc.get("type") != "result":
        return unreadable(stdout, stderr, returncode, "claude-json")
    usage = doc.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    tokens = Tokens(
        input=count(usage.get("input_tokens")),
        output=count(usage.get("output_tokens")),
        cache_read=count(usage.get("cache_read_input_tokens")),
        cache_write=count(usage.get("cache_creation_input_tokens")),
    )
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
        session_id=text_of(doc.get("session_id")),
        tokens=tokens,
        cost_usd=money(doc.get("total_cost_usd", doc.get("cost_usd"))),
        turns=count(doc.get("num_turns")),
    )
