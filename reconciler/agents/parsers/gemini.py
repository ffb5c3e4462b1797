"""`gemini --output-format json`: one object, on stdout on success (`response`, `stats`), on
stderr on failure (`error` with `message` and `code`). Exit 41 means no auth. Gemini gives
tokens per model (`stats.models.*.tokens`) but no price: cost stays null.
"""

from __future__ import annotations

from typing import Any

from ..exitclass import ExitClass
from .base import Parsed, Tokens, add, count, failure_class, last_document, text_of, unreadable

AUTH_EXIT = 41


def parse(stdout: str, stderr: str, returncode: int | None) -> Parsed:
    doc = last_document(stdout)
    err_doc = last_document(stderr)
    if doc is None and err_doc is None:
        if returncode == AUTH_EXIT:
            message = stderr.strip()[-2000:] or "gemini exited 41: no auth method"
            return Parsed(message, ExitClass.AUTH)
        return unreadable(stdout, stderr, returncode, "gemini-json")
    body = doc if doc is not None and ("response" in doc or "error" in doc) else err_doc
    body = body or doc or {}
    session = text_of(body.get("session_id"))
    tokens, turns = _stats(body.get("stats"))
    error = body.get("error")
    if returncode == 0 and error is None and isinstance(body.get("response"), str):
        return Parsed(body["response"], ExitClass.SUCCESS, session, tokens, None, turns)
    message = ""
    if isinstance(error, dict):
        message = text_of(error.get("message")) or ""
    message = message or stderr.strip()[-2000:] or f"gemini exited with code {returncode}"
    code = error.get("code") if isinstance(error, dict) else None
    cls = ExitClass.AUTH if AUTH_EXIT in (returncode, code) else failure_class(message)
    return Parsed(message, cls, session, tokens, None, turns)


def _stats(stats: Any) -> tuple[Tokens, int | None]:
    """Tokens summed over the models a run used (thoughts count as output), and its requests."""
    models = stats.get("models") if isinstance(stats, dict) else None
    tokens, turns = Tokens(), None
    if not isinstance(models, dict):
        return tokens, turns
    for entry in models.values():
        if not isinstance(entry, dict):
            continue
        t = entry.get("tokens")
        if isinstance(t, dict):
            said = add(count(t.get("candidates")), count(t.get("thoughts")))
            tokens = Tokens(
                input=add(tokens.input, count(t.get("prompt"))),
                output=add(tokens.output, said),
                cache_read=add(tokens.cache_read, count(t.get("cached"))),
            )
        api = entry.get("api")
        if isinstance(api, dict):
            turns = add(turns, count(api.get("totalRequests")))
    return tokens, turns
