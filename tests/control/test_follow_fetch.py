"""The follower's fetch on a real repository and fakeredis: a remote that hangs does not hold up
the loop's pass (the fetch runs in a thread of its own, one at a time, its failure taken once it
ends); a `REMOTE/BRANCH` of an unknown remote is told in tt's words; the fetch starts no gc or
maintenance in the user's repository."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from reconciler import git as tgit
from reconciler.control.follow import FETCH_WAIT
from reconciler.store.client import Store
from tests.control.test_follow import follower, repo  # noqa: F401 (a fixture)
from tests.control.test_revision import git


def hanging_ssh(monkeypatch: pytest.MonkeyPatch, release: Path) -> None:
    """An `ssh` that hangs until `release` exists (30 s at most), then fails."""
    wait = f"i=0; while [ ! -e {release} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done"
    monkeypatch.setenv("GIT_SSH_VARIANT", "simple")
    monkeypatch.setenv("GIT_SSH_COMMAND", f"{wait}; echo remote hung up >&2; exit 1; :")


def test_a_hung_fetch_does_not_hold_up_the_pass(
    repo: Path,  # noqa: F811
    fake_store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = tmp_path / "release"
    hanging_ssh(monkeypatch, release)
    git(repo, "remote", "add", "slow", "ssh://tt.invalid/town.git")
    follow, host = follower(repo, fake_store, "slow/main")
    started = time.monotonic()
    assert not follow.poll(host)  # nothing staged yet; the fetch still runs
    follow.refresh = True
    assert not follow.poll(host)  # one fetch at a time: this pass starts none
    assert time.monotonic() - started < FETCH_WAIT + 1.0
    assert follow.fetch is not None and follow.fetch.busy
    assert follow.left() is None  # the loop looks again within a heartbeat
    assert fake_store.follow_state() is None  # nothing known of the branch yet

    release.touch()
    deadline = time.monotonic() + 20
    while follow.fetch.busy and time.monotonic() < deadline:
        time.sleep(0.05)
    follow.poll(host)
    state = fake_store.follow_state()
    assert state is not None and "remote hung up" in state["error"]
    types = [f["type"] for _, f in fake_store.events_since("-", count=100)]
    assert types.count("follow.fetch_failed") == 1


def test_an_unknown_remote_is_told_in_tt_words(repo: Path) -> None:  # noqa: F811
    remote, branch = tgit.split_target(repo, "feature/x")
    with pytest.raises(tgit.FetchFailed) as e:
        tgit.fetch_branch(repo, remote, branch)
    assert e.value.message == "no local branch feature/x and no remote 'feature'"


def test_the_fetch_starts_no_gc_in_the_users_repository(
    repo: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """git as the fetch runs it: a wrapper on PATH records each call and runs the real git."""
    real = next(
        Path(d, "git") for d in os.environ["PATH"].split(os.pathsep) if Path(d, "git").is_file()
    )
    shim, calls = tmp_path / "bin", tmp_path / "calls"
    shim.mkdir()
    (shim / "git").write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {real} "$@"\n')
    (shim / "git").chmod(0o755)
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    head = tgit.fetch_branch(repo, "origin", "main")
    assert head == git(repo, "rev-parse", "main")
    [fetch] = [line for line in calls.read_text().splitlines() if " fetch " in line]
    assert "-c gc.auto=0 -c maintenance.auto=false fetch" in fetch
