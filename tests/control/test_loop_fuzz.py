"""Property: the reconcile loop survives whatever is saved while it runs.

One `Loop` (the conductor's, on fakeredis) lives through every example: each example saves
mutated town.toml / tasks.toml texts (tests/spec/fuzzdocs.py) and wakes it for a pass, as a save
does. A pass never raises (`retries = nan` saved under a running conductor killed it with
ValueError); a valid pair is applied (Redis holds exactly its tasks) or refused with a report; an
invalid one is reported with file:line and changes nothing in Redis. Agent starts go to a fake
spawner that runs nothing (a pid that cannot exist: above any pid_max).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings

from reconciler.control.apply import ApplyOptions
from reconciler.control.loop import Loop, LoopOptions
from reconciler.spec import loader
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.control.test_apply import CountingSession
from tests.redis_fixtures import fake_store, town_name  # noqa: F401
from tests.spec.fuzzdocs import KILLERS, assert_sound, documents

NO_PID = 2**30  # Linux's pid_max is at most 2**22


def test_the_loop_survives_any_saved_files_and_only_applies_valid_ones(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
) -> None:
    paths = TownPaths(tmp_path)
    paths.town_file.write_text('[town]\nname = "fuzz"\n')
    session = CountingSession(paths, fake_store)
    reports: list[tuple[str, dict[str, str]]] = []
    spawned: list[str] = []

    def spawn(argv: list[str], **_: Any) -> tuple[int, str]:
        spawned.append(argv[-3])
        return NO_PID + len(spawned), ""

    opts = LoopOptions(apply=ApplyOptions(start_agents=False), watch_files=False)
    loop = Loop(session, opts, lambda kind, fields: reports.append((kind, fields)), spawn=spawn)
    assert loop._step(None) is None
    outcomes = {"applied": 0, "invalid": 0, "refused": 0}

    @settings(
        max_examples=60,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(documents())
    @_killers
    def save_and_pass(doc: tuple[str, str | None]) -> None:
        town, tasks = doc
        before = sorted(fake_store.task_ids())
        _save(paths.town_file, town)
        if tasks is None:
            paths.tasks_file.unlink(missing_ok=True)
        else:
            _save(paths.tasks_file, tasks)
        reports.clear()
        loop.wake.set()
        began = time.monotonic()
        assert loop._step(None) is None  # a pass that raised would have ended the conductor
        assert time.monotonic() - began < 15.0

        check = loader.check(paths)
        assert_sound(check.desired, check.problems)
        after = sorted(fake_store.task_ids())
        if check.desired is None:
            assert after == before  # an invalid save changes nothing
            outcomes["invalid"] += 1
            invalid = [f["detail"] for kind, f in reports if kind == "invalid"]
            for detail in invalid:  # reported once per content, with file:line
                first = detail.splitlines()[1]
                assert first.startswith(("town.toml", "tasks.toml")), first
        elif after == sorted(check.desired.task_ids()):
            outcomes["applied"] += 1
        else:
            # Refused as a whole (an apply that would remove every task needs --allow-empty).
            assert after == before
            assert any(kind == "error" for kind, _ in reports), reports
            outcomes["refused"] += 1

    save_and_pass()
    assert outcomes["applied"] >= 5 and outcomes["invalid"] >= 5, outcomes
    assert all(int(p) > NO_PID for p in _pids(fake_store))


def _killers(test: Any) -> Any:
    for doc in KILLERS:
        test = example(doc)(test)
    return test


def _save(path: Path, text: str) -> None:
    """A whole save, as an editor that renames a temporary file makes one (torn saves are
    tests/integration's business)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8", errors="surrogatepass")
    os.replace(tmp, path)


def _pids(store: Store) -> list[str]:
    return [r["pid"] for r in store.agent_records().values() if r.get("pid")]
