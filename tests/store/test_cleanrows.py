"""`cleanrows` against the Lua it mirrors: the rows an apply predicts are those Redis holds, and a
digest recorded from them passes the clean check until a definition is rewritten by hand."""

from __future__ import annotations

from typing import Any

from reconciler.store.cleanrows import Row, digests, rows_after
from reconciler.store.client import Store
from reconciler.store.observed import observe
from tests.redis_fixtures import fake_store, town_name  # noqa: F401


def rec(
    tid: str, *, deps: tuple[str, ...] = (), mode: str = "upsert", **extra: Any
) -> dict[str, object]:
    record: dict[str, object] = {
        "mode": mode,
        "id": tid,
        "spec": f'{{"id":"{tid}"}}',
        "hash": f"hash-{tid}-{len(deps)}",
        "target": "dev",
        "order": extra.pop("order", 0),
        "directive": extra.pop("directive", "pending"),
        **extra,
    }
    if deps:
        record["deps"] = list(deps)
    return record


def rows_in(store: Store) -> list[Row]:
    return sorted(observe(store)[1])


def written(store: Store, rows: list[Row], records: list[dict[str, object]]) -> list[Row]:
    store.upsert_tasks(records, 1)
    return sorted(rows_after(rows, records, ()))


def test_predicted_rows_are_the_stored_ones(fake_store: Store) -> None:  # noqa: F811
    rows = written(
        fake_store,
        [],
        [
            rec("a", order=0),
            rec("b", deps=("a",), order=1),
            rec("c", deps=("a", "b"), order=1),  # the same score: ordered by id
            rec("g", order=2, kind="group"),
            rec("done", order=3, directive="done"),
        ],
    )
    assert rows == rows_in(fake_store)
    # Rewrites: deps dropped (stored as '[]'), added, a rerun, a complete, a cancel.
    rows = written(
        fake_store,
        rows,
        [
            rec("b", order=1),
            rec("a", deps=("done",), order=5),
            rec("c", deps=("a",), mode="rerun", order=1),
            {"mode": "complete", "id": "g"},
            {"mode": "cancel", "id": "b"},
        ],
    )
    assert rows == rows_in(fake_store)
    assert ("b", "hash-b-0", "dev", "[]", 1.0) in rows
    fake_store.delete_tasks(["c"])
    assert sorted(rows_after(rows, [], ["c"])) == rows_in(fake_store)


def test_a_recorded_digest_is_checked_against_redis(fake_store: Store) -> None:  # noqa: F811
    rows = written(fake_store, [], [rec("a"), rec("b", deps=("a",), order=1)])
    recorded = fake_store.store_clean("fp", rows)
    assert recorded in digests(rows)  # fakeredis has no sha1hex: its stand-in digest
    ok, _, digest = fake_store.check_clean_digest("fp", record=False)
    assert ok and digest == recorded
    assert not fake_store.check_clean("other", record=False)[0]
    # A definition rewritten by hand: the walk sees it.
    fake_store.client.hset(fake_store.keys.task("b"), "target", "elsewhere")
    assert not fake_store.check_clean("fp", record=False)[0]


def test_a_wrong_digest_only_fails_the_check(fake_store: Store) -> None:  # noqa: F811
    rows = written(fake_store, [], [rec("a")])
    fake_store.store_clean("fp", [*rows, ("ghost", "h", "dev", "", 9.0)])
    assert not fake_store.check_clean("fp", record=False)[0]
