"""The reconcile loop on a suspended town: its passes plan and say so once, apply nothing and
start no agent (a dead one is not restarted); resumed, it applies and heals again. The health
it records follows."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from reconciler.control.apply import ApplyOptions
from reconciler.control.loop import Loop, LoopOptions
from reconciler.control.townwatch import HEALTH_EVERY
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.control.test_apply import TASKS, CountingSession
from tests.redis_fixtures import fake_store, town_name  # noqa: F401

NO_PID = 2**30  # never a live process: each agent started looks dead at the next pass
TOWN = '[town]\nname = "unit"\n{}\n[agents.dev]\nmodel = "sim"\n'


def test_a_suspended_town_is_planned_not_applied_nor_healed(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
) -> None:
    paths = TownPaths(tmp_path)
    paths.town_file.write_text(TOWN.format(""))
    paths.tasks_file.write_text(TASKS)
    reports: list[tuple[str, dict[str, str]]] = []
    spawned: list[str] = []

    def spawn(argv: list[str], **_: Any) -> tuple[int, str]:
        spawned.append(argv[-3])
        return NO_PID + len(spawned), ""

    opts = LoopOptions(apply=ApplyOptions(start_agents=False), watch_files=False)
    session = CountingSession(paths, fake_store)
    loop = Loop(session, opts, lambda kind, fields: reports.append((kind, fields)), spawn=spawn)
    ticks = itertools.count(0.0, HEALTH_EVERY)
    loop.town.clock = lambda: next(ticks)  # the health is read at each pass that may see a change
    assert loop._step(None) is None  # a full pass: applied
    assert loop._step(None) is None  # a heal pass: starts the agent
    assert spawned == ["dev"] and not fake_store.is_suspended()

    paths.town_file.write_text(TOWN.format("suspend = true\n"))
    paths.tasks_file.write_text(TASKS + '\n[[tasks]]\nid = "late"\ndescription = "x"\n')
    for _ in range(3):  # full passes, each followed by a heal pass
        loop.wake.set()
        assert loop._step(None) is None
        assert loop._step(None) is None
    assert fake_store.is_suspended() and "late" not in fake_store.task_ids()
    assert spawned == ["dev"]  # found dead, not restarted
    held = [f["detail"] for kind, f in reports if kind == "suspended"]
    assert held == ["town suspended; not applied: 1 to create, 0 to change, 0 to delete"]
    assert fake_store.client.get(fake_store.keys.health).startswith('{"state": "suspended"')

    paths.town_file.write_text(TOWN.format(""))
    loop.wake.set()
    assert loop._step(None) is None
    assert loop._step(None) is None
    assert not fake_store.is_suspended() and "late" in fake_store.task_ids()
    assert spawned[1:] == ["dev"]  # healed again
