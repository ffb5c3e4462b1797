"""A node's own clone (`work/remote.py`, fakeredis for the records, real git): its task branch
starts from base as the remote has it, a push that fails fails the attempt with a clear error and
keeps the commit, and the next attempt pushes that very commit without the model running again;
without `[git] push` a node's clone is refused, saying why."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.agents.gitwork import Checks
from reconciler.errors import TtError
from reconciler.spec.gitsettings import GitSettings
from reconciler.store.client import Store
from reconciler.work import WorkProducts
from tests.work.gitrepo import git, make_repo, running_task


def test_a_failed_push_fails_the_attempt_and_the_next_pushes_the_same_commit(
    tmp_path: Path, fake_store: Store
) -> None:
    leader = make_repo(tmp_path / "leader")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(leader), str(remote))
    node = tmp_path / "node"
    git(tmp_path, "clone", "-q", str(remote), str(node))
    # base moved on the remote since the node cloned: the task starts from the remote's base
    git(leader, "commit", "-q", "--allow-empty", "-m", "newer base")
    git(leader, "push", "-q", str(remote), "main")
    settings = GitSettings(push="origin")
    wp = WorkProducts(node / ".tt", node, "demo", settings, fake_store, Checks(), node="far")
    running_task(fake_store, "a", "t1")
    started = wp.start("a", 1, "t1")
    assert git(started.tree, "log", "-1", "--format=%s", "HEAD") == "newer base"
    assert fake_store.git_record("a")["git_node"] == "far"
    (started.tree / "a.txt").write_text("alpha\n")

    git(node, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    failed = wp.finish("a", 1, "t1", "do a", "did a", lambda: False)
    assert not failed.ok and failed.text.startswith("push_failed: tt/demo/a to origin:")
    head = fake_store.git_record("a")["git_head"]
    assert git(node, "rev-parse", "tt/demo/a") == head  # kept in the node's clone

    git(node, "remote", "set-url", "origin", str(remote))
    again = wp.start("a", 2, "t1")
    assert again.result == "did a"  # its commit is there: no model run
    stopped = wp.finish("a", 2, "t1", "do a", "did a", lambda: True)
    assert stopped.stopped  # (queued: the leader merges it; this worker was told to stop)
    assert git(remote, "rev-parse", "refs/heads/tt/demo/a") == head
    assert fake_store.merge_queue() == ["a"]


def test_a_nodes_clone_without_git_push_is_refused_naming_it(
    tmp_path: Path, fake_store: Store
) -> None:
    repo = make_repo(tmp_path / "r")
    with pytest.raises(TtError, match=r"\[git\] push names no remote"):
        WorkProducts(repo / ".tt", repo, "demo", GitSettings(), fake_store, Checks(), node="far")


def two_nodes(tmp_path: Path, store: Store) -> tuple[Path, WorkProducts, WorkProducts]:
    """A bare remote and two nodes' own clones of it (far, near)."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(make_repo(tmp_path / "seed")), str(remote))
    made = []
    for name in ("far", "near"):
        git(tmp_path, "clone", "-q", str(remote), str(tmp_path / name))
        folder = tmp_path / name
        settings = GitSettings(push="origin")
        made.append(WorkProducts(folder / ".tt", folder, "demo", settings, store, Checks(), name))
    return remote, made[0], made[1]


def handed_to(store: Store, task: str, old: str, new: str) -> None:
    """Attempt `old` handed back (its agent died), the task claimed anew with `new`."""
    assert store.hand_back(task, old, "its node died")
    store.client.lrem(store.keys.queue("dev"), 0, task)
    assert store.claim(task, "dev", new) is not None


def test_a_retry_on_another_node_goes_on_from_the_pushed_commit_and_never_pushes_over_it(
    tmp_path: Path, fake_store: Store
) -> None:
    remote, far, near = two_nodes(tmp_path, fake_store)
    running_task(fake_store, "a", "t1")
    (far.start("a", 1, "t1").tree / "a.txt").write_text("alpha\n")
    assert far.finish("a", 1, "t1", "do a", "did a", lambda: True).stopped  # pushed, queued
    head = fake_store.git_record("a")["git_head"]
    assert git(remote, "rev-parse", "refs/heads/tt/demo/a") == head

    handed_to(fake_store, "a", "t1", "t2")  # far died; near takes the task over
    started = near.start("a", 2, "t2")
    assert started.result == "did a"  # its commit was fetched: no model run
    assert (started.tree / "a.txt").read_text() == "alpha\n"
    assert near.finish("a", 2, "t2", "do a", "did a", lambda: True).stopped
    assert git(remote, "rev-parse", "refs/heads/tt/demo/a") == head  # far's work stays
    assert fake_store.git_record("a")["git_node"] == "near"


def test_a_commit_never_pushed_runs_the_model_again_and_a_stale_attempt_cannot_push_over_it(
    tmp_path: Path, fake_store: Store
) -> None:
    remote, far, near = two_nodes(tmp_path, fake_store)
    running_task(fake_store, "a", "t1")
    (far.start("a", 1, "t1").tree / "a.txt").write_text("far's\n")
    git(tmp_path / "far", "remote", "set-url", "origin", str(tmp_path / "away.git"))
    assert far.finish("a", 1, "t1", "do a", "did a", lambda: True).text.startswith("push_failed")

    handed_to(fake_store, "a", "t1", "t2")
    started = near.start("a", 2, "t2")
    assert started.result is None and started.done is None  # far's commit is not to be had
    assert not (started.tree / "a.txt").exists()
    (started.tree / "a.txt").write_text("near's\n")
    assert near.finish("a", 2, "t2", "do a", "did a", lambda: True).stopped
    newer = fake_store.git_record("a")["git_head"]
    assert git(remote, "rev-parse", "refs/heads/tt/demo/a") == newer

    # far comes back and its stale attempt goes on: it may not push over near's branch
    git(tmp_path / "far", "remote", "set-url", "origin", str(remote))
    stale = far.finish("a", 1, "t1", "do a", "did a", lambda: True)
    assert stale.stopped and "no longer current" in stale.text
    assert git(remote, "rev-parse", "refs/heads/tt/demo/a") == newer
    assert git(remote, "show", "refs/heads/tt/demo/a:a.txt") == "near's"
