"""Following a branch with a live watcher, real git (a bare repository as the remote, the user's
clone with the town in a sub-folder) and real Valkey: a pushed commit is applied within the
interval and a second, an invalid one keeps the last good commit running and is not tried again
until the next, `tt rollback` refuses, the user's checkout is left byte for byte, a local branch
is followed without a fetch, and a fetch that fails is an event the watcher lives through."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.live import LiveTown, live_town, until
from tests.integration.test_self_healing import task, town_toml
from tests.work.gitrepo import git

pytestmark = pytest.mark.integration

AGENT = '[agents.solo]\nmodel = "sim"\n'
INTERVAL = 1.0


def tree_digest(top: Path) -> dict[str, str]:
    """sha256 of every file of a checkout (its `.git` and tt's `.tt` state aside)."""
    found = {}
    for base, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d not in (".git", ".tt")]
        for name in files:
            path = Path(base, name)
            if path.suffix != ".log":  # the watcher's output, written by the test's helper
                found[str(path.relative_to(top))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def push(clone: Path, files: dict[str, str], message: str) -> str:
    """Commit `files` (under town/) in the other clone and push to main: the new commit."""
    for name, text in files.items():
        (clone / "town" / name).write_text(text)
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", message)
    git(clone, "push", "-q", "origin", "main")
    return git(clone, "rev-parse", "HEAD")


def setup(tmp: Path, name: str) -> tuple[Path, Path]:
    """(a teammate's clone that pushes, the user's clone): both of a bare `origin` whose first
    commit holds the town with task a."""
    bare = tmp / "origin.git"
    git(tmp, "init", "-q", "--bare", "-b", "main", str(bare))
    other = tmp / "other"
    git(tmp, "clone", "-q", str(bare), str(other))
    (other / "town").mkdir()
    (other / ".gitignore").write_text(".tt/\n*.log\n")
    push(other, {"town.toml": town_toml(name, AGENT), "tasks.toml": task("a", "first")}, "a")
    user = tmp / "user"
    git(tmp, "clone", "-q", str(bare), str(user))
    return other, user


def status(town: LiveTown) -> dict[str, Any]:
    done = town.tt("status", "-o", "json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_a_pushed_commit_is_applied_and_an_invalid_one_keeps_the_last_good(tmp_path: Path) -> None:
    other, user = setup(tmp_path, "follows")
    before = tree_digest(user)
    index = hashlib.sha256((user / ".git" / "index").read_bytes()).hexdigest()
    with live_town(user / "town", sim_delay=0.05) as town:
        town.name = "follows"
        proc = town.start_watcher("watch", "--follow", "origin/main", "--interval", "1s")
        until(lambda: town.tasks().get("a", {}).get("state") == "completed", 30, "a done")
        first = git(other, "rev-parse", "HEAD")
        until(lambda: (status(town)["revision"] or {}).get("sha") == first, 10, "first applied")

        tasks = task("a", "first") + task("b", "second")
        second = push(other, {"tasks.toml": tasks}, "b")
        # Only a fetch (every INTERVAL; a resync does not fetch) brings b: applied within a
        # few intervals, a deadline a loaded machine's fetch and apply still meet.
        until(lambda: "b" in town.tasks(), 10 * INTERVAL, "b applied by the next fetches")
        report = status(town)
        assert report["revision"]["sha"] == second and report["sync"] == "synced"
        assert report["revision"]["by"] == "follow"
        assert report["follow"]["branch"] == "origin/main"
        line = town.tt("status").stdout.splitlines()[0]
        assert line.startswith(f"synced to {second[:7]} (origin/main)"), line
        assert "following origin/main" in line

        # An invalid commit: recorded, an event, b still there, and not tried again.
        bad = push(other, {"tasks.toml": tasks + '[[tasks]]\nid = "c"\n'}, "broken c")
        [event] = until(lambda: town.events("revision.invalid"), 10, "revision.invalid")
        assert event["sha"] == bad and "description" in event["problems"]
        report = status(town)
        assert report["revision"]["sha"] == second
        assert report["attempted_revision"]["sha"] == bad
        assert report["attempted_revision"]["result"] == "invalid"
        assert report["sync"] == "out_of_sync"
        time.sleep(3 * INTERVAL)  # three more fetches find the same commit
        assert len(town.events("revision.invalid")) == 1
        history = json.loads(town.tt("history", "-o", "json").stdout)["history"]
        assert [(h["result"], h["sha"], h["by"]) for h in history][:2] == [
            ("invalid", bad, "follow"),
            ("ok", second, "follow"),
        ]
        assert "c" not in town.tasks() and "b" in town.tasks()

        # The next commit is applied; tt refresh fetches at once.
        fixed = push(other, {"tasks.toml": tasks + task("c", "third")}, "fixed c")
        refreshed = town.tt("refresh")
        assert refreshed.returncode == 0 and "fetch origin/main" in refreshed.stdout
        until(lambda: "c" in town.tasks(), 5, "c applied")
        until(lambda: (status(town)["revision"] or {}).get("sha") == fixed, 5, "fixed applied")

        # While following, rollback refuses; the user's checkout was never touched.
        refused = town.tt("rollback", "2")
        assert refused.returncode != 0 and "git revert" in refused.stderr
        assert tree_digest(user) == before
        assert hashlib.sha256((user / ".git" / "index").read_bytes()).hexdigest() == index
        assert git(user, "status", "--porcelain") == ""
        assert git(user, "rev-parse", "HEAD") == first  # the user's own branch did not move
        assert "edits of the local files are not applied" in town.log_of(proc)
        assert proc.poll() is None


def test_a_local_branch_and_a_failing_fetch(tmp_path: Path) -> None:
    _, user = setup(tmp_path, "local")
    git(user, "branch", "deploy")
    with live_town(user / "town", sim_delay=0.05) as town:
        town.name = "local"
        # A remote that does not exist: an event with git's words, a backoff, no crash.
        proc = town.start_watcher("watch", "--follow", "nowhere/main", "--interval", "1s")
        until(lambda: town.events("follow.fetch_failed"), 20, "follow.fetch_failed")
        assert "nowhere" in town.events("follow.fetch_failed")[0]["error"]
        until(lambda: "fetch failing" in town.tt("status").stdout, 10, "status says it")
        assert status(town)["health"]["state"] == "degraded"
        # Backing off: 1 s, then 2 s, ... not one fetch per pass (a pass a second). Read from
        # the events' own times, as lower bounds (a loaded machine only makes gaps longer).
        failed = until(
            lambda: (e := town.events("follow.fetch_failed"))[2:] and e, 40, "three failures"
        )
        gaps = [float(b["ts"]) - float(a["ts"]) for a, b in itertools.pairwise(failed)]
        assert gaps[0] >= 0.9 and gaps[1] >= 1.8, gaps
        assert proc.poll() is None
        town.kill_watcher(proc)

        # A local branch: no fetch; a commit on it is applied.
        proc = town.start_watcher("watch", "--follow", "deploy", "--interval", "1s")
        until(lambda: town.tasks().get("a", {}).get("state") == "completed", 30, "a done")
        git(user, "checkout", "-q", "deploy")
        (user / "town" / "tasks.toml").write_text(task("a", "first") + task("d", "local"))
        git(user, "commit", "-q", "-am", "d")
        sha = git(user, "rev-parse", "HEAD")
        until(lambda: "d" in town.tasks(), 5, "d applied from the local branch")
        until(lambda: (status(town)["revision"] or {}).get("sha") == sha, 5, "its revision")
        assert status(town)["follow"]["error"] is None  # fetched: no longer degraded by it
        assert "fetching" not in " ".join(status(town)["health"]["reasons"])
        town.kill_watcher(proc)

        # A watcher without --follow forgets the branch: rollback no longer refuses for it.
        town.start_watcher("watch")
        until(lambda: status(town)["follow"] is None, 20, "follow cleared")
