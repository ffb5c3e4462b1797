"""What the run report says of a rejected task: failed by a person's `tt reject` only while its
error is still the rejection's (a later attempt's own failure replaces it)."""

from __future__ import annotations

from reconciler.control.runreport import rejected


def test_a_task_failed_by_rejection_is_told_from_one_failed_later() -> None:
    rec = {"state": "failed", "rejection": "no changelog", "error": "rejected: no changelog"}
    assert rejected(rec)
    assert not rejected({**rec, "error": "boom"})  # rejected once, then its model failed
    assert not rejected({**rec, "state": "ready"})  # reopened: not failed
    assert not rejected({"state": "failed", "error": "rejected: by hand"})  # no rejection field
