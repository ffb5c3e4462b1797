"""A node's session (`nodes/where.py`) with `[git]`: a node works in its own clone
(`--workspace`); without one it is refused before anything connects or is written, naming the
flag, and an agent of a node without one (a `[git]` applied after the node started) fails its
attempt saying the same, never merging on its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.agents.gitwork import GitWork
from reconciler.errors import TtError
from reconciler.nodes.where import node_session
from reconciler.spec.loader import check
from reconciler.store.client import Store
from reconciler.store.tasks import Claimed
from reconciler.town import TownPaths
from reconciler.work.remote import WORKSPACE_ENV
from tests.redis_fixtures import fake_store, town_name  # noqa: F401
from tests.work.gitrepo import make_repo

TOWN = '[town]\nname = "n"\n\n[agents.a]\nmodel = "sim"\nnode = "n1"\n'


def town(folder: Path, git: bool) -> Path:
    make_repo(folder)
    (folder / "town.toml").write_text(TOWN + ('\n[git]\nbase = "main"\n' if git else ""))
    (folder / "tasks.toml").write_text("")
    return folder


def test_a_node_of_a_town_with_git_and_no_workspace_is_refused_naming_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    with pytest.raises(TtError, match=r"node n1 runs without --workspace") as refused:
        node_session(str(town(tmp_path / "t", git=True)), None, None, None, "n1")
    assert "tt node run --name n1 --workspace DIR" in (refused.value.hint or "")
    assert not (tmp_path / "t" / ".tt" / "git").exists()  # nothing made
    s = node_session(str(town(tmp_path / "plain", git=False)), None, None, None, "n1")
    assert s.desired().git is None  # without [git]: as before


def test_an_agent_of_a_node_without_a_workspace_fails_its_attempt_and_merges_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_store: Store,  # noqa: F811
) -> None:
    folder = town(tmp_path / "t", git=True)
    desired = check(TownPaths(folder)).desired
    assert desired is not None
    monkeypatch.setenv("TT_NODE", "n1")
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    work = GitWork(TownPaths(folder), desired, fake_store)
    verdict = work.start(Claimed("x", 1, {}, None, (), None), "t1")
    assert not verdict.ok and "runs without --workspace" in verdict.text  # type: ignore[union-attr]
    assert not (folder / ".tt" / "git" / "trees").exists()


def test_a_roster_written_by_a_newer_tt_asks_to_upgrade_tt_on_the_node(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
) -> None:
    from reconciler.control.remote import RemoteSession
    from reconciler.spec.rosterjson import VERSION, roster_json

    desired = check(TownPaths(town(tmp_path / "t", git=False))).desired
    assert desired is not None
    newer = json.loads(roster_json(desired))
    newer["v"] = VERSION + 1
    fake_store.client.hset(
        fake_store.keys.roster, mapping={"digest": "d", "json": json.dumps(newer)}
    )
    s = RemoteSession(TownPaths(tmp_path / "far"), "redis://db:6379/0", fake_store.town)
    s.__dict__["store"] = fake_store
    s.node = "far"
    with pytest.raises(TtError, match="written by a newer tt") as refused:
        s.desired()
    assert refused.value.hint is not None and "upgrade tt on node far" in refused.value.hint
