"""Seeing work products (issue 11, point 8) on real git repositories and fakeredis: `tt show`'s
report, the status rows' git fields and `merging` place, `tt merge` of a manual-mode task, and
the merged commits an `apply --wait` lists."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.agents.gitwork import Checks
from reconciler.control.manualmerge import merge_task
from reconciler.control.report import status_report, tasks_report
from reconciler.control.session import Session
from reconciler.control.workreport import merged_since, show_report
from reconciler.errors import NotFound, TtError
from reconciler.spec import loader
from reconciler.spec.desired import Desired
from reconciler.spec.gitsettings import MergeMode
from reconciler.store.client import Store
from reconciler.town import TownPaths
from reconciler.work import WorkProducts
from tests.work.gitrepo import git, log_subjects, make_repo, running_task
from tests.work.test_products import attempt

TASKS = "".join(f'[[tasks]]\nid = "{t}"\ndescription = "do {t}"\nagent = "dev"\n\n' for t in "abc")


def town(repo: Path, name: str, git_table: str | None) -> Desired:
    """town.toml and tasks.toml in the repository's top folder (the town is the repo)."""
    table = f"\n[git]\n{git_table}\n" if git_table is not None else ""
    (repo / "town.toml").write_text(
        f'[town]\nname = "{name}"\n\n[agents.dev]\nmodel = "sim"\nsuspended = true\n{table}'
    )
    (repo / "tasks.toml").write_text(TASKS)
    desired = loader.check(TownPaths(repo)).desired
    assert desired is not None
    return desired


def session(repo: Path, store: Store) -> Session:
    s = Session(TownPaths(repo))
    s.__dict__["store"] = store  # the fake store, no identity check
    return s


def stops_after(n: int) -> Callable[[], bool]:
    calls = iter(range(n + 1))
    return lambda: next(calls, n) >= n


def test_show_of_a_merged_task(tmp_path: Path, fake_store: Store, town_name: str) -> None:
    repo = make_repo(tmp_path / "r")
    desired = town(repo, town_name, "")
    assert desired.git is not None
    wp = WorkProducts(repo / ".tt", repo, town_name, desired.git, fake_store, Checks())
    running_task(fake_store, "a", "t1")
    running_task(fake_store, "b", "t2")
    started = wp.start("a", 1, "t1")
    (started.tree / "src").mkdir()
    (started.tree / "src" / "a.txt").write_text("alpha\n")
    log = repo / ".tt" / "logs" / "dev" / "a-1.log"
    log.parent.mkdir(parents=True)
    log.write_text("model output\n")
    assert attempt(wp, "b", "t2", {"b.txt": "b\n"}).ok  # type: ignore[attr-defined]
    assert wp.finish("a", 1, "t1", "do a", "did a", lambda: False).ok  # rebased onto b
    assert fake_store.complete("a", "t1", "did a")

    r = show_report(fake_store, TownPaths(repo), desired, "a")
    assert (r["state"], r["result"], r["log"], r["description"]) == (
        "completed",
        "did a",
        str(log),
        "do a",
    )
    assert [(a["attempt"], a["agent"], a["outcome"], a["log"]) for a in r["attempts"]] == [
        (1, "dev", "completed", str(log))
    ]
    g = r["git"]
    main = git(repo, "rev-parse", "main")
    assert g["merged_commit"] == main and g["stage"] == "merged" and g["base_commit"] == main
    assert g["branch"] == f"tt/{town_name}/a" and g["branch_exists"] is False
    assert g["worktree"] is None and g["commits_ahead"] == 0 and g["queue_position"] is None
    assert g["files_changed"] == ["src/a.txt"]
    assert [c["subject"] for c in g["commits"]] == ["a: do a"]
    assert "src/a.txt" in g["diffstat"] and "1 insertion" in g["diffstat"]
    assert g["error"] is None


def test_show_of_a_fast_forwarded_task_knows_its_commits_from_where_it_started(
    tmp_path: Path, fake_store: Store, town_name: str
) -> None:
    repo = make_repo(tmp_path / "r")
    desired = town(repo, town_name, "")
    assert desired.git is not None
    wp = WorkProducts(repo / ".tt", repo, town_name, desired.git, fake_store, Checks())
    start = git(repo, "rev-parse", "main")
    running_task(fake_store, "a", "t1")
    assert attempt(wp, "a", "t1", {"a.txt": "a\n"}).ok  # type: ignore[attr-defined]
    assert fake_store.git_record("a")["git_base"] == start  # where its branch started
    g = show_report(fake_store, TownPaths(repo), desired, "a")["git"]
    assert g["merged_commit"] == git(repo, "rev-parse", "main")
    assert g["files_changed"] == ["a.txt"]  # as recorded when it was committed
    assert [c["subject"] for c in g["commits"]] == ["a: do a"] and "a.txt" in g["diffstat"]


def test_show_without_git_and_of_an_unknown_task(
    tmp_path: Path, fake_store: Store, town_name: str
) -> None:
    root = tmp_path / "t"
    root.mkdir()
    desired = town(root, town_name, None)
    running_task(fake_store, "a", "t1")
    r = show_report(fake_store, TownPaths(root), desired, "a")
    assert r["git"] is None and r["state"] == "running" and r["log"] is None
    assert [(a["attempt"], a["outcome"]) for a in r["attempts"]] == [(1, "running")]
    assert fake_store.fail("a", "t1", "boom", True, desired.town.policy) == "failed"
    r = show_report(fake_store, TownPaths(root), desired, "a")
    assert r["error"] == "boom" and r["attempts"][0]["error"] == "boom"
    with pytest.raises(NotFound, match="no task named bb") as caught:
        show_report(fake_store, TownPaths(root), desired, "bb")
    assert caught.value.hint == "did you mean 'b'?"


def test_a_task_waiting_in_the_queue_shows_merging_with_its_place_and_why(
    tmp_path: Path, fake_store: Store, town_name: str
) -> None:
    repo = make_repo(tmp_path / "r", {"app.txt": "one\n"})
    desired = town(repo, town_name, "")
    assert desired.git is not None
    wp = WorkProducts(repo / ".tt", repo, town_name, desired.git, fake_store, Checks())
    running_task(fake_store, "a", "t1")
    (wp.start("a", 1, "t1").tree / "app.txt").write_text("two\n")
    (repo / "app.txt").write_text("mine\n")  # the user's checkout of main: local changes
    done = wp.finish("a", 1, "t1", "do a", "did a", stops_after(1))
    assert done.stopped and fake_store.merge_queue() == ["a"]

    rows = {t["id"]: t for t in tasks_report(fake_store, git=True)}
    merging = rows["a"]["merging"]
    assert merging["position"] == 1
    assert merging["waiting"].startswith(f"base checked out with local changes at {repo}")
    assert rows["a"]["branch"] == f"tt/{town_name}/a"
    assert rows["a"]["commit"] == git(repo, "rev-parse", f"tt/{town_name}/a")
    assert rows["a"]["worktree"] == str(wp.layout.tree("a")) and rows["a"]["merged_commit"] is None
    running_task(fake_store, "b", "t2")
    rows = {t["id"]: t for t in tasks_report(fake_store, git=True)}
    assert rows["b"]["merging"] is None and rows["b"]["branch"] is None
    # without [git] the same keys are there, null
    plain = status_report(fake_store, Desired(town=desired.town, agents=desired.agents))
    assert {k: plain["tasks"][0][k] for k in ("branch", "commit", "worktree", "merging")} == {
        "branch": None,
        "commit": None,
        "worktree": None,
        "merging": None,
    }
    g = show_report(fake_store, TownPaths(repo), desired, "a")["git"]
    assert (g["stage"], g["queue_position"], g["commits_ahead"]) == ("waiting", 1, 1)
    assert g["note"] == merging["waiting"] and g["worktree"] == str(wp.layout.tree("a"))


def manual_town(
    tmp_path: Path, store: Store, name: str, table: str = 'merge = "manual"'
) -> tuple[Path, WorkProducts]:
    repo = make_repo(tmp_path / "r", {"app.txt": "one\n"})
    desired = town(repo, name, table)
    assert desired.git is not None
    wp = WorkProducts(repo / ".tt", repo, name, desired.git, store, Checks())
    return repo, wp


def test_tt_merge_merges_a_manual_task_through_the_queue(
    tmp_path: Path, fake_store: Store, town_name: str
) -> None:
    repo, wp = manual_town(tmp_path, fake_store, town_name)
    assert wp.git.merge == MergeMode.MANUAL
    running_task(fake_store, "a", "t1")
    assert attempt(wp, "a", "t1", {"a.txt": "alpha\n"}).ok  # type: ignore[attr-defined]
    assert fake_store.complete("a", "t1", "did a")
    assert log_subjects(repo) == ["start"]  # manual: nothing merged by completing
    branch = f"tt/{town_name}/a"
    # the reviewer adds a commit to the branch: it merges too
    tree = wp.layout.tree("a")
    (tree / "review.txt").write_text("ok\n")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "review fix")

    done = merge_task(session(repo, fake_store), "a")
    assert done.ok and done.base == "main" and done.commit == git(repo, "rev-parse", "main")
    assert log_subjects(repo)[:3] == ["review fix", "a: do a", "start"]
    rec = fake_store.git_record("a")
    assert rec["state"] == "completed" and rec["git_stage"] == "merged"
    assert "git_manual" not in rec and fake_store.merge_queue() == []
    assert not tree.exists() and git(repo, "branch", "--list", branch) == ""
    again = merge_task(session(repo, fake_store), "a")
    assert again.ok and again.already and again.commit == done.commit


def test_tt_merge_reports_a_conflict_and_leaves_base_and_the_branch(
    tmp_path: Path, fake_store: Store, town_name: str
) -> None:
    repo, wp = manual_town(tmp_path, fake_store, town_name)
    running_task(fake_store, "a", "t1")
    assert attempt(wp, "a", "t1", {"app.txt": "alpha\n"}).ok  # type: ignore[attr-defined]
    assert fake_store.complete("a", "t1", "did a")
    (repo / "app.txt").write_text("beta\n")
    git(repo, "commit", "-q", "-am", "theirs")
    base = git(repo, "rev-parse", "main")

    done = merge_task(session(repo, fake_store), "a")
    assert not done.ok and done.text.startswith(f"conflict: tt/{town_name}/a does not apply")
    assert "app.txt" in done.text
    assert git(repo, "rev-parse", "main") == base
    rec = fake_store.git_record("a")
    assert rec["state"] == "completed" and rec["git_stage"] == "conflict"
    assert git(repo, "rev-parse", f"tt/{town_name}/a")  # kept for the fix
    assert "git_manual" not in rec and fake_store.merge_queue() == []


def test_tt_merge_refuses_what_it_cannot_merge(
    tmp_path: Path, fake_store: Store, town_name: str
) -> None:
    repo, _ = manual_town(tmp_path, fake_store, town_name)
    s = session(repo, fake_store)
    running_task(fake_store, "a", "t1")
    with pytest.raises(TtError, match="task a is running, not completed"):
        merge_task(s, "a")
    assert fake_store.complete("a", "t1", "did a")  # completed without ever having a branch
    with pytest.raises(TtError, match=f"task a has no branch: tt/{town_name}/a is not a branch"):
        merge_task(s, "a")
    with pytest.raises(NotFound, match="no task named zz"):
        merge_task(s, "zz")
    town(repo, town_name, "")  # merge = "queue"
    with pytest.raises(TtError, match=r'tt merge is for \[git\] merge = "manual"'):
        merge_task(s, "a")
    town(repo, town_name, None)
    with pytest.raises(TtError, match=r"town.toml has no \[git\] table"):
        merge_task(s, "a")


def test_the_merged_commits_of_a_wait(tmp_path: Path, fake_store: Store, town_name: str) -> None:
    repo = make_repo(tmp_path / "r")
    desired = town(repo, town_name, "")
    assert desired.git is not None
    wp = WorkProducts(repo / ".tt", repo, town_name, desired.git, fake_store, Checks())
    running_task(fake_store, "a", "ta")
    assert attempt(wp, "a", "ta", {"a.txt": "a\n"}).ok  # type: ignore[attr-defined]
    assert fake_store.complete("a", "ta", "did a")
    since = float(fake_store.task_hash("a")["finished_at"]) + 0.001
    for t in ("c", "b"):  # completed in this order
        running_task(fake_store, t, f"t{t}")
        assert attempt(wp, t, f"t{t}", {f"{t}.txt": t}).ok  # type: ignore[attr-defined]
        assert fake_store.complete(t, f"t{t}", "done")
    found = merged_since(fake_store, TownPaths(repo), desired, since)
    assert [(m["id"], m["subject"]) for m in found] == [("c", "c: do c"), ("b", "b: do b")]
    assert found[1]["commit"] == git(repo, "rev-parse", "main")
    plain = Desired(town=desired.town, agents=desired.agents)
    assert merged_since(fake_store, TownPaths(repo), plain, 0.0) == []


def test_tt_merge_that_must_wait_leaves_the_queue_as_it_came(
    tmp_path: Path, fake_store: Store, town_name: str
) -> None:
    repo, wp = manual_town(tmp_path, fake_store, town_name)
    running_task(fake_store, "a", "t1")
    assert attempt(wp, "a", "t1", {"app.txt": "alpha\n"}).ok  # type: ignore[attr-defined]
    assert fake_store.complete("a", "t1", "did a")
    base = git(repo, "rev-parse", "main")
    (repo / "app.txt").write_text("mine\n")  # the user's checkout: local changes it would touch

    done = merge_task(session(repo, fake_store), "a")
    assert not done.ok
    assert done.text.startswith(f"base checked out with local changes at {repo} (app.txt)")
    assert done.text.endswith("run tt merge a again then")
    rec = fake_store.git_record("a")
    assert (rec["state"], rec["git_stage"]) == ("completed", "committed")
    assert fake_store.merge_queue() == [] and git(repo, "rev-parse", "main") == base

    git(repo, "checkout", "-q", "--", "app.txt")  # the user puts the change away
    again = merge_task(session(repo, fake_store), "a")
    assert again.ok and (repo / "app.txt").read_text() == "one\nalpha\n"
