"""The notifier's stream-id arithmetic (a cursor placed just before the oldest event kept)."""

from __future__ import annotations

from reconciler.control.notifier import MAX_SEQ, following, preceding, stream_id


def test_the_ids_next_to_an_id_in_both_directions() -> None:
    assert following("5-3") == (5, 4) and following(f"5-{MAX_SEQ}") == (6, 0)
    assert preceding("5-3") == "5-2" and preceding("6-0") == f"5-{MAX_SEQ}"
    for eid in ("7-0", "7-1", f"7-{MAX_SEQ}"):
        assert following(preceding(eid)) == stream_id(eid)
