"""Work products on real git repositories (fakeredis for the records): a branch and worktree per
task, the commit of what the model left, the merge queue with checks, conflicts reopened."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from reconciler.spec.gitsettings import GitSettings, MergeMode, OnConflict, Strategy
from reconciler.store.client import Store
from reconciler.work import WorkProducts
from reconciler.work.queue import MergeQueue
from tests.work.gitrepo import git, log_subjects, make_repo, running_task


def never() -> bool:
    return False


def products(
    repo: Path, store: Store, checks: Sequence[str] = (), **git_settings: object
) -> WorkProducts:
    from reconciler.agents.gitwork import Checks

    settings = GitSettings(checks=tuple(checks), **git_settings)  # type: ignore[arg-type]
    return WorkProducts(repo / ".tt", repo, "demo", settings, store, Checks())


def attempt(
    wp: WorkProducts, task: str, token: str, writes: dict[str, str], attempt: int = 1
) -> object:
    """What the worker does for one attempt: start, the 'model' writes files, finish."""
    started = wp.start(task, attempt, token)
    assert started.done is None
    for name, text in writes.items():
        path = started.tree / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(text)
    return wp.finish(task, attempt, token, f"do {task}\nmore", f"did {task}", never)


def test_a_task_gets_its_branch_and_worktree_and_its_work_reaches_base(
    tmp_path: Path,
    fake_store: Store,
) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store)
    running_task(fake_store, "a", "t1")
    started = wp.start("a", 1, "t1")
    assert started.tree == repo / ".tt" / "git" / "trees" / "a"
    assert git(started.tree, "rev-parse", "--abbrev-ref", "HEAD") == "tt/demo/a"
    (started.tree / "a.txt").write_text("alpha\n")
    done = wp.finish("a", 1, "t1", "do a\nmore", "did a", never)
    assert done.ok and done.text == "did a"
    assert log_subjects(repo) == ["a: do a", "start"]
    body = git(repo, "log", "-1", "--format=%B", "main")
    assert "Tt-Task: a" in body and "Tt-Attempt: 1" in body
    rec = fake_store.git_record("a")
    assert rec["git_stage"] == "merged" and rec["git_merged"] == git(repo, "rev-parse", "main")
    # merged and clean: the worktree and the branch are gone; base's checkout moved with it
    assert not started.tree.exists()
    assert git(repo, "branch", "--list", "tt/*") == ""
    assert (repo / "a.txt").read_text() == "alpha\n"
    assert git(repo, "status", "--porcelain") == ""  # .tt/ never shows


def test_a_child_starts_from_its_parents_merged_commit(
    tmp_path: Path,
    fake_store: Store,
) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store)
    running_task(fake_store, "parent", "t1")
    assert attempt(wp, "parent", "t1", {"p.txt": "p\n"}).ok  # type: ignore[attr-defined]
    assert fake_store.complete("parent", "t1", "did parent")
    merged = fake_store.git_record("parent")["git_merged"]
    running_task(fake_store, "child", "t2", deps=("parent",))
    started = wp.start("child", 1, "t2")
    assert (started.tree / "p.txt").read_text() == "p\n"
    (started.tree / "c.txt").write_text("c\n")
    assert wp.finish("child", 1, "t2", "do child", "did", never).ok
    child = fake_store.git_record("child")["git_merged"]
    git(repo, "merge-base", "--is-ancestor", merged, child)


def test_no_changes_completes_and_records_it(tmp_path: Path, fake_store: Store) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store)
    running_task(fake_store, "idle", "t1")
    done = attempt(wp, "idle", "t1", {})
    assert done.ok  # type: ignore[attr-defined]
    rec = fake_store.git_record("idle")
    assert rec["git_stage"] == "unchanged" and rec["git_note"] == "no changes"
    assert log_subjects(repo) == ["start"]


@pytest.mark.parametrize("strategy", [Strategy.REBASE, Strategy.MERGE])
@pytest.mark.parametrize("on_conflict", [OnConflict.REDO, OnConflict.RESOLVE])
def test_two_tasks_writing_the_same_line_one_merges_the_other_is_reopened(
    tmp_path: Path, fake_store: Store, on_conflict: OnConflict, strategy: Strategy
) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store, on_conflict=on_conflict, strategy=strategy)
    running_task(fake_store, "a", "ta")
    running_task(fake_store, "b", "tb")
    sa, sb = wp.start("a", 1, "ta"), wp.start("b", 1, "tb")
    (sa.tree / "app.txt").write_text("alpha\n")
    (sb.tree / "app.txt").write_text("beta\n")
    assert wp.finish("a", 1, "ta", "do a", "did a", never).ok
    base_after_a = git(repo, "rev-parse", "main")
    lost = wp.finish("b", 1, "tb", "do b", "did b", never)
    assert not lost.ok and lost.text.startswith("conflict: tt/demo/b does not apply on main")
    assert "app.txt" in lost.text
    assert git(repo, "rev-parse", "main") == base_after_a  # base unchanged by the conflict
    # the next attempt of b (the store would retry it; here: claimed again)
    fake_store.client.hset(fake_store.keys.task("b"), mapping={"token": "tb2", "attempt": 2})
    again = wp.start("b", 2, "tb2")
    kept = git(repo, "rev-parse", "refs/tt/demo/b/attempt-1")
    assert kept  # the old commits are kept
    if on_conflict == OnConflict.REDO:
        assert (again.tree / "app.txt").read_text() == "alpha\n"  # from the current base
        (again.tree / "app.txt").write_text("alpha\nbeta\n")
    else:
        text = (again.tree / "app.txt").read_text()
        assert "<<<<<<<" in text and "alpha" in text and "beta" in text
        assert again.note and "app.txt" in again.note
        # markers left behind fail the attempt
        left = wp.finish("b", 2, "tb2", "do b", "did b", never)
        assert not left.ok and "markers left in app.txt" in left.text
        (again.tree / "app.txt").write_text("alpha\nbeta\n")
    done = wp.finish("b", 2, "tb2", "do b", "did b", never)
    assert done.ok, done
    assert (repo / "app.txt").read_text() == "alpha\nbeta\n"
    parents = git(repo, "rev-list", "--parents", "-n", "1", "main").split()[1:]
    assert len(parents) == (2 if strategy == Strategy.MERGE else 1)  # a merge commit, or linear


def test_a_failing_check_leaves_base_unchanged_and_reopens_the_task(
    tmp_path: Path,
    fake_store: Store,
) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store, checks=["test ! -e bad.txt", "true"])
    before = git(repo, "rev-parse", "main")
    running_task(fake_store, "a", "t1")
    done = attempt(wp, "a", "t1", {"bad.txt": "x\n"})
    assert not done.ok  # type: ignore[attr-defined]
    assert done.text.startswith("check_failed: `test ! -e bad.txt` exited 1")  # type: ignore[attr-defined]
    assert git(repo, "rev-parse", "main") == before
    assert fake_store.git_record("a")["git_stage"] == "check_failed"


def test_a_hanging_check_is_killed_at_its_timeout(tmp_path: Path, fake_store: Store) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store, checks=["sleep 30"], check_timeout=0.5)
    running_task(fake_store, "a", "t1")
    done = attempt(wp, "a", "t1", {"a.txt": "x\n"})
    assert not done.ok and "did not finish within 0.5 s" in done.text  # type: ignore[attr-defined]


def test_a_dirty_checkout_of_base_makes_the_merge_wait(
    tmp_path: Path, fake_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reconciler.work.queue as queue

    monkeypatch.setattr(queue, "WAIT_BLOCKED", 0.01)
    runs = tmp_path / "check-runs"
    repo = make_repo(tmp_path / "r", {"app.txt": "v1\n"})
    wp = products(repo, fake_store, checks=[f"echo run >> {runs}"])
    running_task(fake_store, "a", "t1")
    started = wp.start("a", 1, "t1")
    (started.tree / "app.txt").write_text("v2\n")
    (repo / "app.txt").write_text("mine\n")  # the user's uncommitted edit of the same file
    stop = iter([False] * 6 + [True])
    done = wp.finish("a", 1, "t1", "do a", "did a", lambda: next(stop))
    assert done.stopped
    rec = fake_store.git_record("a")
    assert rec["git_stage"] == "waiting"
    assert rec["git_note"] == f"base checked out with local changes at {repo} (app.txt)"
    assert (repo / "app.txt").read_text() == "mine\n"  # the user's edit untouched
    assert log_subjects(repo) == ["start"]
    assert runs.read_text() == "run\n"  # checked once: only the checkout was in the way
    # the user commits elsewhere-safe: restores the file; the queue goes on
    (repo / "app.txt").write_text("v1\n")
    MergeQueue(wp).work()
    assert fake_store.git_record("a")["git_stage"] == "merged"
    assert (repo / "app.txt").read_text() == "v2\n"


def test_manual_mode_keeps_the_branch_and_a_dependent_starts_with_it_merged(
    tmp_path: Path,
    fake_store: Store,
) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store, merge=MergeMode.MANUAL)
    running_task(fake_store, "a", "t1")
    assert attempt(wp, "a", "t1", {"a.txt": "a\n"}).ok  # type: ignore[attr-defined]
    assert log_subjects(repo) == ["start"]  # base unchanged
    assert log_subjects(repo, "tt/demo/a") == ["a: do a", "start"]
    assert fake_store.complete("a", "t1", "did a")
    running_task(fake_store, "b", "t2", deps=("a",))
    started = wp.start("b", 1, "t2", deps=["a"])
    assert (started.tree / "a.txt").read_text() == "a\n"


def test_push_sends_base_after_each_merge_and_manual_branches(
    tmp_path: Path, fake_store: Store
) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    repo = make_repo(tmp_path / "r")
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    wp = products(repo, fake_store, push="origin")
    running_task(fake_store, "a", "t1")
    assert attempt(wp, "a", "t1", {"a.txt": "a\n"}).ok  # type: ignore[attr-defined]
    assert git(origin, "rev-parse", "main") == git(repo, "rev-parse", "main")
    assert [e["type"] for _, e in fake_store.events_since("-", 100) if e["type"] == "git.pushed"]
    manual = products(repo, fake_store, push="origin", merge=MergeMode.MANUAL)
    running_task(fake_store, "b", "t2")
    assert attempt(manual, "b", "t2", {"b.txt": "b\n"}).ok  # type: ignore[attr-defined]
    assert git(origin, "rev-parse", "tt/demo/b") == git(repo, "rev-parse", "tt/demo/b")
    assert git(origin, "rev-parse", "main") == git(repo, "rev-parse", "main")  # base unmoved


def test_a_new_branch_records_the_base_it_starts_from(tmp_path: Path, fake_store: Store) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store)
    running_task(fake_store, "a", "t1")
    wp.start("a", 1, "t1")
    assert fake_store.git_record("a")["git_base"] == git(repo, "rev-parse", "main")


def test_tt_task_complete_from_the_model_waits_for_the_merge(
    tmp_path: Path, fake_store: Store
) -> None:
    from reconciler.agents.completion import complete_current

    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store)
    running_task(fake_store, "a", "t1")
    started = wp.start("a", 1, "t1")
    (started.tree / "a.txt").write_text("a\n")
    # the model says it is done: recorded for the attempt, not completed yet
    assert complete_current(fake_store, "a", "my summary", "t1", deferred=True)
    assert fake_store.git_record("a")["state"] == "running"
    done = wp.finish("a", 1, "t1", "do a", "stdout tail", never)
    assert done.ok and done.text == "my summary"
    assert fake_store.git_record("a")["git_stage"] == "merged"


def test_an_attempt_killed_mid_commit_leaves_nothing_in_the_next_ones_way(
    tmp_path: Path, fake_store: Store
) -> None:
    import os
    import time

    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store)
    running_task(fake_store, "a", "t1")
    started = wp.start("a", 1, "t1")
    (started.tree / "a.txt").write_text("half\n")
    git(started.tree, "add", "-A")  # killed between `add` and `commit`: a lock left behind
    lock = Path(
        git(started.tree, "rev-parse", "--path-format=absolute", "--git-path", "index.lock")
    )
    lock.write_text("")
    old = time.time() - 60
    os.utime(lock, (old, old))
    fake_store.client.hset(fake_store.keys.task("a"), mapping={"token": "t2", "attempt": 2})
    again = wp.start("a", 2, "t2")
    assert not lock.exists()
    assert (again.tree / "a.txt").read_text() == "half\n"  # the half-done work goes on
    assert wp.finish("a", 2, "t2", "do a", "did a", never).ok
    assert (repo / "a.txt").read_text() == "half\n"


def test_an_approval_does_not_carry_over_to_a_commit_made_after_a_failed_check(
    tmp_path: Path, fake_store: Store
) -> None:
    """Review of #15: approved work that failed a check runs the model again; its new commit
    must wait for a new approval, not merge on the old one."""
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store, checks=["test ! -e bad.txt"])
    before = git(repo, "rev-parse", "main")
    running_task(fake_store, "a", "t1")
    key = fake_store.keys.task("a")
    spec = json.dumps({"id": "a", "description": "do a", "approve": True})
    fake_store.client.hset(key, mapping={"approve": "1", "spec": spec})
    assert attempt(wp, "a", "t1", {"bad.txt": "x\n"}).ok  # type: ignore[attr-defined]
    assert fake_store.complete("a", "t1", "did a")  # its commit awaits approval
    assert fake_store.approve("a", "ann", "") == (True, "ready")
    fake_store.client.lrem(fake_store.keys.queue("dev"), 0, "a")
    assert fake_store.claim("a", "dev", "t2") is not None
    done = attempt(wp, "a", "t2", {}, attempt=2)  # merges the approved commit: the check fails
    assert not done.ok and done.text.startswith("check_failed")  # type: ignore[attr-defined]
    fake_store.client.hset(key, mapping={"token": "t3", "attempt": 3})  # its retry
    started = wp.start("a", 3, "t3")
    assert started.result is None  # the model runs again: it fixes its work
    (started.tree / "bad.txt").unlink()
    assert wp.finish("a", 3, "t3", "do a", "fixed a", never).ok
    rec = fake_store.git_record("a")
    assert "approved" not in fake_store.client.hgetall(key)
    assert rec["git_stage"] == "committed"  # not queued: its new commit awaits approval
    assert fake_store.client.hget(key, "approval_merge") == "1"
    assert git(repo, "rev-parse", "main") == before
