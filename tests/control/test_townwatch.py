"""The reconcile loop's read of the town's health: recorded in Redis, a `town.health` event only
when it changes (however many passes see the same), read again after an event, not on every
pass."""

from __future__ import annotations

from reconciler.control.townwatch import HEALTH_EVERY, HEALTH_RESYNC, TownWatch
from reconciler.store.client import Store
from tests.redis_fixtures import fake_store, town_name  # noqa: F401
from tests.store.test_transitions import rec


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def health_events(store: Store) -> list[dict[str, str]]:
    return [f for _, f in store.events_since("0") if f["type"] == "town.health"]


def test_the_health_is_an_event_when_it_changes_only(fake_store: Store) -> None:  # noqa: F811
    s, clock, said = fake_store, Clock(), []
    watch = TownWatch(lambda kind, fields: said.append((kind, fields)), clock)
    first = watch.check(s, None)
    assert first is not None and first.text() == "healthy"
    clock.now += HEALTH_RESYNC
    assert watch.check(s, None) is not None  # read again at the resync: the same, no event
    assert [e["state"] for e in health_events(s)] == ["healthy"]

    s.upsert_tasks([rec("a")], 1)  # events: task.ready, ...
    assert watch.check(s, None) is None  # less than HEALTH_EVERY since the last read
    clock.now += HEALTH_EVERY
    assert watch.check(s, None) is not None
    clock.now += HEALTH_EVERY
    assert watch.check(s, None) is not None  # after its own event: read once more, the same
    clock.now += HEALTH_EVERY
    assert watch.check(s, None) is None  # no event since: not read again
    s.set_suspended(True, "tt suspend")
    clock.now += HEALTH_EVERY
    watch.check(s, None)
    clock.now += HEALTH_EVERY
    assert watch.check(s, None) is not None  # after its own event: read once more, the same
    clock.now += HEALTH_EVERY
    assert watch.check(s, None) is None
    events = health_events(s)
    assert [(e["state"], e["was"]) for e in events] == [
        ("healthy", ""),
        ("progressing", "healthy"),
        ("suspended", "progressing"),
    ]
    assert events[1]["reasons"] == "1 ready task"


def test_a_suspension_is_said_once_per_plan(fake_store: Store) -> None:  # noqa: F811
    said: list[tuple[str, dict[str, str]]] = []
    watch = TownWatch(lambda kind, fields: said.append((kind, fields)), Clock())
    watch.held("0 to create, 1 to change, 0 to delete")
    watch.held("0 to create, 1 to change, 0 to delete")
    watch.held("1 to create, 1 to change, 0 to delete")
    assert [f["detail"] for _, f in said] == [
        "town suspended; not applied: 0 to create, 1 to change, 0 to delete",
        "town suspended; not applied: 1 to create, 1 to change, 0 to delete",
    ]
