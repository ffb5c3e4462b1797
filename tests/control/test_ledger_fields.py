"""`tt show`'s ledger fields of a stored attempt: an entry as reported, and a record written
before entries existed, which still reads (its class told by its outcome and error)."""

from __future__ import annotations

from reconciler.control.workreport import ledger_fields

NULL_TOKENS = {"input": None, "output": None, "cache_read": None, "cache_write": None}


def test_a_record_from_before_the_ledger_gets_a_class_and_nulls() -> None:
    old = {"attempt": 1, "agent": "dev", "outcome": "failed", "error": "timed out after 3s"}
    f = ledger_fields(old)
    assert f["exit_class"] == "timeout" and f["tokens"] == NULL_TOKENS
    assert f["cost_usd"] is None and f["session_id"] is None
    assert ledger_fields({"outcome": "completed"})["exit_class"] == "success"
    assert ledger_fields({"outcome": "handed back"})["exit_class"] == "killed"
    assert ledger_fields({"outcome": "running"})["exit_class"] is None


def test_a_reported_entry_is_shown_as_it_is() -> None:
    tokens = {"input": 1, "output": 2, "cache_read": 3, "cache_write": None}
    entry = {"outcome": "failed", "exit_class": "usage_limit", "tokens": tokens, "cost_usd": 0.5}
    f = ledger_fields({**entry, "error": "exit code 1: x"})
    assert (f["exit_class"], f["tokens"], f["cost_usd"]) == ("usage_limit", tokens, 0.5)
