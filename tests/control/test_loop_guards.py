"""The loop's guards against a file caught mid-save, on fakeredis (one pass at a time): a changed
file is applied only once it reads the same twice `settle` apart, and a pass that would prune
more than half of the tasks (or more than `[town] max_prune`) waits until the files have been
stable for `guard_window`, then applies and records `apply.guarded`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from reconciler.control.apply import ApplyOptions
from reconciler.control.loop import Loop, LoopOptions
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.control.test_apply import TOWN, CountingSession
from tests.redis_fixtures import fake_store, town_name  # noqa: F401


def tasks(*ids: str) -> str:
    return "".join(f'[[tasks]]\nid = "{t}"\ndescription = "do {t}"\nagent = "dev"\n\n' for t in ids)


class Passes:
    """A loop on a fake store whose passes the test runs itself, and what it reported."""

    def __init__(self, session: CountingSession, **opts: float) -> None:
        self.reports: list[tuple[str, dict[str, str]]] = []
        options = LoopOptions(apply=ApplyOptions(start_agents=False), watch_files=False, **opts)
        self.loop = Loop(session, options, lambda kind, f: self.reports.append((kind, f)))
        self.store = session.store
        self.root = session.paths.root

    def save(self, text: str) -> None:
        (self.root / "tasks.toml").write_text(text)

    def full_pass(self) -> None:
        self.loop.wake.clear()
        self.loop._full_pass()

    def ids(self) -> list[str]:
        return self.store.task_ids()

    def events(self, etype: str) -> list[dict[str, str]]:
        return [f for _, f in self.store.events_since("0", block_ms=None) if f["type"] == etype]


@pytest.fixture
def passes(tmp_path: Path, fake_store: Store) -> Passes:  # noqa: F811
    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_text(tasks("a", "b", "c", "d"))
    p = Passes(CountingSession(TownPaths(tmp_path), fake_store), guard_window=0.4, settle=0.1)
    p.full_pass()
    assert p.ids() == ["a", "b", "c", "d"]
    return p


def test_a_file_that_changes_during_the_settle_wait_is_not_applied(passes: Passes) -> None:
    passes.save(tasks("a", "b", "c", "d", "e"))
    # A writer still at work: the file reads differently `settle` later.
    writer = threading.Timer(0.03, passes.save, args=(tasks("a", "b", "c", "d", "e", "f"),))
    writer.start()
    passes.full_pass()
    writer.join()
    assert passes.ids() == ["a", "b", "c", "d"]  # neither version was applied
    assert passes.loop.wake.is_set()  # it looks again at once
    passes.full_pass()  # settled now
    assert passes.ids() == ["a", "b", "c", "d", "e", "f"]


def test_a_settled_file_that_does_not_parse_is_reported_and_changes_nothing(
    passes: Passes,
) -> None:
    passes.save(tasks("a", "b") + '[[tasks]]\nid = "c"\ndescription = "do')
    passes.full_pass()
    assert passes.ids() == ["a", "b", "c", "d"]
    assert [k for k, _ in passes.reports].count("invalid") == 1


class CountingStop(threading.Event):
    """The loop's stop event, counting the waits made on it (the settle wait is one)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return super().wait(timeout)


def test_files_already_applied_are_not_waited_for(passes: Passes) -> None:
    # Asserted by the waits made, not by the clock (the suite runs under a CPU hog).
    stop = CountingStop()
    passes.loop.saves.stop = stop
    passes.full_pass()  # a resync: the files are those it applied
    assert passes.loop.saves.settle not in stop.waits, stop.waits  # no settle wait
    passes.save(tasks("a", "b", "c", "d", "e"))
    passes.full_pass()  # changed files: read twice `settle` apart, then applied
    assert passes.loop.saves.settle in stop.waits
    assert passes.ids() == ["a", "b", "c", "d", "e"]


def test_a_pass_that_prunes_more_than_half_waits_until_the_files_are_stable(
    passes: Passes,
) -> None:
    passes.save(tasks("a"))  # a truncated save: three of four tasks would go
    before = time.monotonic()
    passes.full_pass()
    after = time.monotonic()
    assert passes.ids() == ["a", "b", "c", "d"]  # held
    assert passes.loop.saves.until is not None
    # Healing meanwhile goes by the files last applied, not by the held ones.
    good = passes.loop.good
    assert good is not None and good.task_ids() == ("a", "b", "c", "d")
    assert [k for k, _ in passes.reports][-1] == "guarded"
    assert passes.events("apply.guarded") == []
    # Its next look is when the window (0.4 s) from the files' first sight ends.
    assert before + 0.4 <= passes.loop.saves.until <= after + 0.4
    time.sleep(0.45)
    passes.full_pass()
    assert passes.ids() == ["a"]  # stable for the window: applied (as tombstones)
    [event] = passes.events("apply.guarded")
    assert (event["deleted"], event["tasks"]) == ("3", "4")
    assert float(event["stable"]) >= 0.4
    assert passes.loop.saves.until is None
    assert passes.store.client.zcard(passes.store.keys.deleted) == 3


def test_a_guarded_save_completed_in_time_deletes_nothing(passes: Passes) -> None:
    passes.save(tasks("a"))
    passes.full_pass()
    assert passes.loop.saves.until is not None
    passes.save(tasks("a", "b", "c", "d", "e"))  # the writer finished
    passes.full_pass()
    assert passes.ids() == ["a", "b", "c", "d", "e"]
    assert passes.events("apply.guarded") == []
    assert passes.events("task.deleted") == []
    assert passes.loop.saves.until is None


def test_a_pass_that_prunes_half_or_less_applies_at_once(passes: Passes) -> None:
    passes.save(tasks("a", "b"))  # two of four: not more than half
    passes.full_pass()
    assert passes.ids() == ["a", "b"]
    assert passes.events("apply.guarded") == []


def test_max_prune_guards_below_half(tmp_path: Path, fake_store: Store) -> None:  # noqa: F811
    (tmp_path / "town.toml").write_text(
        TOWN.replace('name = "unit"', 'name = "unit"\nmax_prune = 2')
    )
    ids = [f"t{i}" for i in range(10)]
    (tmp_path / "tasks.toml").write_text(tasks(*ids))
    p = Passes(CountingSession(TownPaths(tmp_path), fake_store), guard_window=0.3, settle=0.05)
    p.full_pass()
    p.save(tasks(*ids[:7]))  # three of ten: fewer than half, more than max_prune
    p.full_pass()
    assert len(p.ids()) == 10 and p.loop.saves.until is not None
    p.save(tasks(*ids[:8]))  # two: within max_prune
    p.full_pass()
    assert p.ids() == ids[:8]
