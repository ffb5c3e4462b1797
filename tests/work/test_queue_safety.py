"""What a review of the work products found, each as the scenario that broke: no work lost, no
model run twice, base moved only for a commit still wanted, a queue that neither spins nor lets
one bad head fail the tasks behind it (real git repositories, fakeredis)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from reconciler.agents.gitwork import Checks
from reconciler.spec.gitsettings import GitSettings, MergeMode
from reconciler.store.client import Store
from reconciler.work import CheckRun, WorkProducts
from reconciler.work.queue import MergeQueue
from tests.work.gitrepo import git, log_subjects, make_repo, running_task
from tests.work.test_products import never, products


def reclaim(store: Store, task: str, token: str, attempt: int) -> None:
    """The task's next attempt (what the store does when it is claimed again)."""
    store.client.hset(store.keys.task(task), mapping={"token": token, "attempt": attempt})


def test_base_checked_out_on_another_branch_is_never_fast_forwarded(
    tmp_path: Path, fake_store: Store
) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store)
    running_task(fake_store, "a", "t1")
    started = wp.start("a", 1, "t1")
    (started.tree / "a.txt").write_text("a\n")
    git(repo, "checkout", "-q", "-b", "feature")  # the user switches their own tree
    assert wp.finish("a", 1, "t1", "do a", "did a", never).ok
    assert log_subjects(repo, "main") == ["a: do a", "start"]  # main moved by compare-and-swap
    assert log_subjects(repo, "feature") == ["start"]  # the user's branch untouched
    # and the guard itself: a tree no longer on base is refused
    step = wp.repo.fast_forward(repo, "main", git(repo, "rev-parse", "main"))
    assert not step.ok and "no longer on main" in step.message


def test_a_worker_that_finds_its_task_merged_by_another_does_not_spin(
    tmp_path: Path, fake_store: Store
) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store)
    running_task(fake_store, "a", "t1")
    started = wp.start("a", 1, "t1")
    (started.tree / "a.txt").write_text("a\n")
    head = wp._commit
    assert head("a", 1, "t1", started.tree, "do a", "did a", fake_store.git_record("a")) is None
    # another worker merged it meanwhile (and dropped it from the queue)
    fake_store.note_git("a", "", git_stage="merged", git_result="did a")
    t = time.monotonic()
    done = MergeQueue(wp).wait_for("a", "t1", never)
    assert done.ok and done.text == "did a" and time.monotonic() - t < 2
    # a task whose commit cannot be queued at all fails its attempt instead of spinning
    running_task(fake_store, "b", "t2")
    fake_store.note_git("b", "t2", git_stage="committed")  # no git_head: never merged
    t = time.monotonic()
    lost = MergeQueue(wp).wait_for("b", "t2", never)
    assert not lost.ok and lost.text.startswith("merge_failed: b cannot be queued")
    assert time.monotonic() - t < 5


class RerunDuringChecks(Checks):
    """A check during which the task is re-run (its work product forgotten, a new attempt)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def run(
        self, argv: Sequence[str], cwd: Path, log: Path, timeout: float, pidfile: Path
    ) -> CheckRun:
        key = self.store.keys.task("a")
        self.store.client.hdel(key, "git_head", "git_stage", "git_candidate", "git_result")
        self.store.client.hset(key, mapping={"token": "rerun", "attempt": 2})
        return CheckRun(0, False, "ok")


def test_a_task_re_run_during_its_checks_is_not_merged_into_base(
    tmp_path: Path, fake_store: Store
) -> None:
    repo = make_repo(tmp_path / "r")
    settings = GitSettings(checks=("true",))
    wp = WorkProducts(
        repo / ".tt", repo, "demo", settings, fake_store, RerunDuringChecks(fake_store)
    )
    running_task(fake_store, "a", "t1")
    started = wp.start("a", 1, "t1")
    (started.tree / "a.txt").write_text("a\n")
    done = wp.finish("a", 1, "t1", "do a", "did a", never)
    assert done.stopped  # the attempt is no longer current
    assert log_subjects(repo) == ["start"]  # base did not move for the forgotten commit
    rec = fake_store.git_record("a")
    assert "git_stage" not in rec  # nothing written over the re-run
    again = wp.start("a", 2, "rerun")
    assert again.done is None and again.result is None  # the model runs for the re-run


def test_an_attempt_killed_right_after_its_commit_does_not_run_the_model_again(
    tmp_path: Path, fake_store: Store
) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store)
    running_task(fake_store, "a", "t1")
    started = wp.start("a", 1, "t1")
    (started.tree / "a.txt").write_text("a\n")
    # what _commit does up to the commit, then kill -9
    fake_store.note_git("a", "t1", git_stage="committing", git_result="did a")
    git(started.tree, "add", "-A")
    git(started.tree, "commit", "-qm", "a: do a")
    reclaim(fake_store, "a", "t2", 2)
    again = wp.start("a", 2, "t2")
    assert again.result == "did a"  # the model is not run again
    done = wp.finish("a", 2, "t2", "do a", again.result, never)
    assert done.ok and log_subjects(repo) == ["a: do a", "start"]
    assert (repo / "a.txt").read_text() == "a\n"  # written once


def test_one_bad_head_is_reopened_and_the_tasks_behind_it_merge(
    tmp_path: Path, fake_store: Store
) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store)
    running_task(fake_store, "bad", "tb")
    fake_store.note_git("bad", "tb", git_stage="committed", git_head="f" * 40)  # unreadable
    fake_store.merge_enqueue("bad")
    running_task(fake_store, "good", "tg")
    started = wp.start("good", 1, "tg")
    (started.tree / "g.txt").write_text("g\n")
    done = wp.finish("good", 1, "tg", "do good", "did good", never)
    assert done.ok, done
    rec = fake_store.git_record("bad")
    assert rec["git_stage"] == "merge_failed" and rec["git_note"].startswith("merge_failed:")
    assert log_subjects(repo) == ["good: do good", "start"]


def test_a_reopen_killed_half_way_starts_again_from_the_recorded_head(
    tmp_path: Path, fake_store: Store
) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store)
    running_task(fake_store, "a", "ta")
    running_task(fake_store, "b", "tb")
    sa, sb = wp.start("a", 1, "ta"), wp.start("b", 1, "tb")
    (sa.tree / "app.txt").write_text("alpha\n")
    (sb.tree / "app.txt").write_text("beta\n")
    (sb.tree / "b-only.txt").write_text("b\n")
    assert wp.finish("a", 1, "ta", "do a", "did a", never).ok
    assert not wp.finish("b", 1, "tb", "do b", "did b", never).ok  # conflict: reopened
    old = git(sb.tree, "rev-parse", "HEAD")
    # the next attempt records where it starts from, resets the tree... and is killed
    fake_store.note_git("b", "tb", git_stage="reopening", git_reopen_from=old)
    git(sb.tree, "reset", "-q", "--hard", git(repo, "rev-parse", "main"))
    reclaim(fake_store, "b", "tb3", 3)
    again = wp.start("b", 3, "tb3")
    assert again.note and "app.txt" in again.note  # the conflict, from the recorded head
    assert (again.tree / "b-only.txt").read_text() == "b\n"  # b's other work is there


def test_a_resolve_that_applies_cleanly_now_is_committed_without_the_model(
    tmp_path: Path, fake_store: Store
) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store)
    running_task(fake_store, "b", "tb")
    sb = wp.start("b", 1, "tb")
    (sb.tree / "b.txt").write_text("b\n")
    fake_store.note_git("b", "tb", git_result="did b")
    # a conflict was reported, but by the time b is claimed again base no longer conflicts
    wp._commit("b", 1, "tb", sb.tree, "do b", "did b", fake_store.git_record("b"))
    fake_store.note_git("b", "tb", git_stage="conflict")
    reclaim(fake_store, "b", "tb2", 2)
    again = wp.start("b", 2, "tb2")
    assert again.result == "did b" and again.note is None
    assert wp.finish("b", 2, "tb2", "do b", again.result, never).ok
    assert (repo / "b.txt").read_text() == "b\n"


def test_the_repositorys_hooks_never_run_for_tts_own_git(tmp_path: Path, fake_store: Store) -> None:
    repo = make_repo(tmp_path / "r")
    ran = tmp_path / "hooks-ran"
    for hook in ("pre-commit", "post-commit", "post-checkout", "pre-rebase"):
        path = repo / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> {ran}\n")
        path.chmod(0o755)
    wp = products(repo, fake_store)
    running_task(fake_store, "a", "t1")
    started = wp.start("a", 1, "t1")
    (started.tree / "a.txt").write_text("a\n")
    assert wp.finish("a", 1, "t1", "do a", "did a", never).ok
    assert not ran.exists() or "commit" not in ran.read_text()
    assert not ran.exists() or "pre-rebase" not in ran.read_text()


def test_manual_mode_takes_in_what_a_dependency_gained_since(
    tmp_path: Path, fake_store: Store
) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store, merge=MergeMode.MANUAL)
    running_task(fake_store, "dep", "td")
    sd = wp.start("dep", 1, "td")
    (sd.tree / "dep.txt").write_text("v1\n")
    assert wp.finish("dep", 1, "td", "do dep", "did", never).ok
    assert fake_store.complete("dep", "td", "did")
    running_task(fake_store, "child", "tc", deps=("dep",))
    sc = wp.start("child", 1, "tc", deps=["dep"])
    assert (sc.tree / "dep.txt").read_text() == "v1\n"
    # the dependency's branch gains a commit (a re-run), the child's next attempt takes it in
    (sd.tree / "dep.txt").write_text("v2\n")
    git(sd.tree, "commit", "-qam", "dep v2")
    reclaim(fake_store, "child", "tc2", 2)
    again = wp.start("child", 2, "tc2", deps=["dep"])
    assert (again.tree / "dep.txt").read_text() == "v2\n"


def test_the_model_running_again_on_a_committed_tree_has_its_edits_committed(
    tmp_path: Path, fake_store: Store
) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store)
    running_task(fake_store, "a", "t1")
    started = wp.start("a", 1, "t1")
    (started.tree / "a.txt").write_text("a\n")
    wp._commit("a", 1, "t1", started.tree, "do a", "did a", fake_store.git_record("a"))
    (started.tree / "more.txt").write_text("more\n")  # edits after the commit
    assert wp.finish("a", 1, "t1", "do a", "did a", never).ok
    assert (repo / "more.txt").read_text() == "more\n"


def test_a_stale_attempt_never_commits_in_the_current_attempts_tree(
    tmp_path: Path, fake_store: Store
) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store)
    running_task(fake_store, "a", "old")
    started = wp.start("a", 1, "old")
    reclaim(fake_store, "a", "new", 2)  # its lease ran out; the task runs again elsewhere
    (started.tree / "half.txt").write_text("the new attempt's half-done work\n")
    done = wp.finish("a", 1, "old", "do a", "did a", never)
    assert done.stopped and not done.ok
    assert log_subjects(repo, "tt/demo/a") == ["start"]  # nothing committed by the old one
    assert json.loads(fake_store.git_record("a").get("git_conflicts") or "[]") == []
