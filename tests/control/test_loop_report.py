"""What `tt conductor` says in the foreground: which town it leads and which files it watches,
what it found at its first pass, every applied change in one line; a watcher that does not
lead says it stands by and who leads."""

from __future__ import annotations

from pathlib import Path

from reconciler.control.apply import ApplyOptions
from reconciler.control.loop import MAX_CHANGE_LINES, Loop, LoopOptions, holder_words
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.control.test_apply import TASKS, TOWN, CountingSession
from tests.redis_fixtures import fake_store, town_name  # noqa: F401

Reports = list[tuple[str, dict[str, str]]]


def loop_on(root: Path, store: Store, reports: Reports) -> Loop:
    opts = LoopOptions(apply=ApplyOptions(start_agents=False), watch_files=True)
    session = CountingSession(TownPaths(root), store)
    return Loop(session, opts, lambda kind, fields: reports.append((kind, dict(fields))))


def said(reports: Reports) -> list[str]:
    return [f"{kind}: {fields.get('detail', '')}" for kind, fields in reports]


def test_the_leader_says_what_it_leads_finds_and_changes(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
) -> None:
    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_text(TASKS)
    reports: Reports = []
    loop = loop_on(tmp_path, fake_store, reports)
    assert loop._step(None) is None
    assert said(reports)[:2] == [
        f"leader: leading town 'unit' in {tmp_path}; watching town.toml and tasks.toml",
        "applied: 4 to create, 0 to change, 0 to delete",
    ]
    assert "change: + task a (ready → dev)" in said(reports)

    # An edit of 25 tasks: each change one line, up to 20, then how many more.
    reports.clear()
    extra = "".join(f'\n[[tasks]]\nid = "n{i:02d}"\ndescription = "x"\n' for i in range(25))
    (tmp_path / "tasks.toml").write_text(TASKS + extra)
    loop.wake.set()
    assert loop._step(None) is None
    lines = said(reports)
    assert lines[0] == "applied: 25 to create, 0 to change, 0 to delete"
    changes = [x for x in lines if x.startswith("change: ")]
    assert len(changes) == MAX_CHANGE_LINES + 1
    assert changes[-1] == f"change: … and {25 - MAX_CHANGE_LINES} more (tt status)"


def test_a_new_leader_of_an_applied_town_says_it_is_up_to_date(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
) -> None:
    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_text(TASKS)
    first: Reports = []
    loop = loop_on(tmp_path, fake_store, first)
    assert loop._step(None) is None
    fake_store.resign_leader(loop.holder)
    again: Reports = []
    assert loop_on(tmp_path, fake_store, again)._step(None) is None
    assert "applied: up to date: 1 agents, 3 tasks" in said(again)


def test_a_watcher_that_does_not_lead_says_who_does(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    town_name: str,  # noqa: F811
) -> None:
    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_text(TASKS)
    assert fake_store.hold_leader("otherhost:4242:abcd", 30)[0] == 2
    reports: Reports = []
    loop = loop_on(tmp_path, Store.from_client(fake_store.client, town_name), reports)
    assert loop._step(None) is None
    assert said(reports) == [
        "standby: another watcher leads (host otherhost, pid 4242); following, ready to take over"
    ]
    assert holder_words(None) == "its lease just ended"
