"""The follower on a real git repository and fakeredis: a local branch's commit staged as the
private copy the loop applies (as that commit, by `follow`), an invalid commit recorded once and
not tried again, a fetch that fails backing off; `CopyPaths`; the status line of a followed town;
`tt refresh`; [town] follow and follow_interval checked like the other [town] fields."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reconciler.control.follow import BY, REFRESH_EVENT, CopyPaths, Follow, Target, refresh
from reconciler.control.loop import LoopOptions
from reconciler.control.report import health_report
from reconciler.control.session import Session
from reconciler.control.syncstatus import sync_report, sync_text
from reconciler.errors import TtError
from reconciler.spec import loader
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.control.test_revision import git

TOWN = '[town]\nname = "f"\n\n[agents.dev]\nmodel = "sim"\n'


def tasks(*ids: str) -> str:
    return "".join(f'[[tasks]]\nid = "{i}"\ndescription = "do {i}"\n\n' for i in ids)


@dataclass
class FakeHost:
    s: Session
    opts: LoopOptions = field(default_factory=LoopOptions)
    wake: threading.Event = field(default_factory=threading.Event)
    said: list[tuple[str, str]] = field(default_factory=list)

    def report(self, kind: str, fields: dict[str, str]) -> None:
        self.said.append((kind, fields.get("detail", "")))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose `town/` holds the files, committed on main and branch `deploy`."""
    repo = tmp_path / "repo"
    (repo / "town").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitignore").write_text(".tt/\n")
    (repo / "town" / "town.toml").write_text(TOWN)
    (repo / "town" / "tasks.toml").write_text(tasks("a"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a")
    git(repo, "branch", "deploy")
    return repo


def commit_on_deploy(repo: Path, text: str) -> str:
    """A commit of tasks.toml on `deploy` made in a worktree: main's checkout stays as it is."""
    wt = repo.parent / "wt"
    if not wt.exists():
        git(repo, "worktree", "add", "-q", str(wt), "deploy")
    (wt / "town" / "tasks.toml").write_text(text)
    git(wt, "commit", "-q", "-am", "edit")
    return git(wt, "rev-parse", "HEAD")


def follower(repo: Path, fake_store: Store, target: str = "deploy") -> tuple[Follow, FakeHost]:
    session = Session(TownPaths(repo / "town"))
    session.__dict__["store"] = fake_store
    follow = Follow(session, Target(target, 1.0), clears=True)
    return follow, FakeHost(session)


def test_a_commit_is_staged_and_an_invalid_one_recorded_once(repo: Path, fake_store: Store) -> None:
    follow, host = follower(repo, fake_store)
    assert host.s.paths.town_file == repo / "town" / ".tt" / "follow" / "town.toml"
    assert host.s.paths.state_dir == repo / "town" / ".tt"
    assert follow.poll(host) and host.wake.is_set()
    head = git(repo, "rev-parse", "deploy")
    assert host.opts.apply.command == BY
    assert host.opts.apply.revision is not None and host.opts.apply.revision["sha"] == head
    assert host.opts.apply.revision["branch"] == "deploy"
    assert [t.id for t in host.s.desired().tasks] == ["a"]
    assert fake_store.revisions()[2] == "deploy"
    assert any("edits of the local files are not applied" in d for _, d in host.said)

    bad = commit_on_deploy(repo, tasks("a") + '[[tasks]]\nid = "b"\n')
    follow.refresh = True
    assert follow.poll(host)
    _, attempted, _ = fake_store.revisions()
    assert attempted is not None and attempted["sha"] == bad and attempted["result"] == "invalid"
    assert "description" in attempted["problems"][0]
    assert [t.id for t in host.s.desired().tasks] == ["a"]  # the last good copy stays
    assert host.opts.apply.revision["sha"] == head
    follow.refresh = True
    follow.poll(host)
    events = [f for _, f in fake_store.events_since("-", count=100)]
    assert [e["type"] for e in events].count("revision.invalid") == 1
    assert [h["result"] for h in fake_store.history()] == ["invalid"]
    restarted, host3 = follower(repo, fake_store)  # a watcher started later
    restarted.poll(host3)
    assert restarted.rejected == bad and host3.opts.apply.revision is not None
    assert host3.opts.apply.revision["sha"] == head  # the copy it resumed, not the invalid one
    assert [h["result"] for h in fake_store.history()] == ["invalid"]

    good = commit_on_deploy(repo, tasks("a", "b"))
    follow.refresh = True
    follow.poll(host)
    assert [t.id for t in host.s.desired().tasks] == ["a", "b"]
    assert host.opts.apply.revision["sha"] == good
    assert (repo / "town" / "tasks.toml").read_text() == tasks("a")  # main's checkout as it was

    # A loop started later resumes the copy as the commit it was staged as.
    again, host2 = follower(repo, fake_store)
    assert again.poll(host2) and host2.opts.apply.revision is not None
    assert host2.opts.apply.revision["sha"] == good


def test_a_failing_fetch_backs_off_and_an_unfollowed_loop_forgets(
    repo: Path, fake_store: Store
) -> None:
    follow, host = follower(repo, fake_store, "nowhere/main")
    assert not follow.poll(host)  # nothing of the branch to apply
    first = follow.backoff
    follow.refresh = True
    follow.poll(host)
    assert (first, follow.backoff) == (1.0, 2.0)
    state = fake_store.follow_state()
    assert state is not None and "nowhere" in state["error"]
    types = [f["type"] for _, f in fake_store.events_since("-", count=100)]
    assert types.count("follow.fetch_failed") == 2
    assert "fetch failing" in sync_text(sync_report(fake_store, TownPaths(repo / "town")))
    health = health_report(fake_store, None)
    assert (health.state.value, health.reasons) == ("degraded", ("fetching nowhere/main fails",))

    plain = Follow(Session(TownPaths(repo / "town")), None, clears=True)
    assert plain.left() is None and plain.poll(host)
    assert fake_store.revisions()[2] is None and fake_store.follow_state() is None


def test_outside_git_following_is_refused(tmp_path: Path) -> None:
    (tmp_path / "town.toml").write_text(TOWN)
    with pytest.raises(TtError, match="not in a git work tree"):
        Follow(Session(TownPaths(tmp_path)), Target("main"), clears=True)


def test_the_status_line_of_a_followed_town() -> None:
    rev = {"sha": "3f9c2ab" + "0" * 33, "short": "3f9c2ab", "branch": "origin/main", "at": 0.0}
    follow = {"branch": "origin/main", "head": rev["sha"], "error": None}
    report = {"sync": "synced", "revision": rev, "follow": follow}
    line = sync_text(report, now=60.0)
    assert line == (
        "synced to 3f9c2ab (origin/main) 1 min ago · following origin/main "
        "(edits of the local files are not applied)"
    )
    moved = {**report, "sync": "out_of_sync", "follow": {**follow, "head": "9" * 40}}
    assert sync_text(moved).startswith("OutOfSync: origin/main is at 9999999, applied 3f9c2ab")


def test_refresh_needs_a_watcher(fake_store: Store, tmp_path: Path) -> None:
    session = Session(TownPaths(tmp_path))
    session.__dict__["store"] = fake_store
    with pytest.raises(TtError, match="no watcher runs"):
        refresh(session)
    fake_store.hold_leader("vm:123:abc", 10.0)
    fake_store.set_follow("origin/main")
    assert (
        refresh(session)
        == "asked the watcher (host vm, pid 123) to fetch origin/main and reconcile now"
    )
    assert [f["type"] for _, f in fake_store.events_since("-", count=10)][-1] == REFRESH_EVENT


def test_follow_settings_are_checked() -> None:
    town = '[town]\nname = "f"\nfollow = "origin/ma..in"\nfollow_interval = "0.5s"\n'
    result = loader.check_texts(town, None)
    assert [(p.line, p.path) for p in result.problems] == [
        (3, "$.town.follow"),
        (4, "$.town.follow_interval"),
    ]
    assert "follow_interval must be between 1s and 1d" in result.problems[1].message
    good = loader.load_texts(
        '[town]\nname = "f"\nfollow = "origin/main"\nfollow_interval = "5s"\n', None
    )
    assert (good.town.follow, good.town.follow_interval) == ("origin/main", 5.0)
    assert CopyPaths(TownPaths(Path("/t")).root, files=Path("/c")).tasks_file == Path(
        "/c/tasks.toml"
    )


def test_the_cli_checks_follow_and_interval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli.inproc import tt

    (tmp_path / "town.toml").write_text(TOWN)
    code, _, err = tt(capsys, "watch", "--interval", "5s", "--town", str(tmp_path))
    assert code == 2 and "only with --follow" in err
    code, _, err = tt(capsys, "watch", "--follow", "main..x", "--town", str(tmp_path))
    assert code == 2 and "is not a branch" in err
    code, _, err = tt(capsys, "conductor", "--follow", "main", "--town", str(tmp_path))
    assert code == 1 and "not in a git work tree" in err


def test_back_at_the_running_commit_is_healthy_and_an_emptying_commit_is_refused_once(
    repo: Path, fake_store: Store
) -> None:
    from dataclasses import replace

    from reconciler.control.apply import apply

    follow, host = follower(repo, fake_store)
    assert follow.poll(host)
    running = git(repo, "rev-parse", "deploy")
    apply(host.s, replace(host.opts.apply, start_agents=False))
    assert (fake_store.revisions()[0] or {}).get("sha") == running

    bad = commit_on_deploy(repo, tasks("a") + '[[tasks]]\nid = "b"\n')
    follow.refresh = True
    follow.poll(host)
    assert "newest revision invalid" in health_report(fake_store, None).reasons
    git(repo.parent / "wt", "reset", "-q", "--hard", running)  # a force-push back
    follow.refresh = True
    follow.poll(host)
    assert "newest revision invalid" not in health_report(fake_store, None).reasons
    assert follow.rejected == bad and host.opts.apply.revision is not None

    emptied = commit_on_deploy(repo, "")
    for _ in range(2):  # fetched again: not planned again
        follow.refresh = True
        follow.poll(host)
    _, attempted, _ = fake_store.revisions()
    assert attempted is not None and (attempted["sha"], attempted["result"]) == (
        emptied,
        "refused",
    )
    assert "stop following and run tt apply --allow-empty" in attempted["problems"][0]
    types = [f["type"] for _, f in fake_store.events_since("-", count=100)]
    assert types.count("revision.refused") == 1
    assert host.opts.apply.revision["sha"] == running  # the copy still holds what runs
    assert [t.id for t in host.s.desired().tasks] == ["a"]
    assert health_report(fake_store, None).state.value == "degraded"  # until the next commit
