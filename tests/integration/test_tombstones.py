"""Tombstones through the real `tt` CLI on real servers (the session's Valkey, then the system
Redis): a completed task deleted from tasks.toml is kept (`tt status --deleted`), a `git revert`
of the deletion restores it completed, not re-run, and a changed spec brought back follows the
changed-after-done rules; a `--no-save` task waiting for a pruned one says so."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.store.client import Store
from tests.integration.test_apply import SMALL_TASKS, Town, make_town
from tests.redis_fixtures import redis_url, system_redis_url, valkey_url  # noqa: F401

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git"),
]
DOCS = """
[[tasks]]
id = "docs"
description = "Write the docs"
agent = "dev"
parent = "release"
tags = ["docs"]
"""


@pytest.fixture
def town(redis_url: str, tmp_path: Path) -> Iterator[Town]:  # noqa: F811
    yield from make_town(redis_url, tmp_path)


@pytest.fixture
def vtown(valkey_url: str, tmp_path: Path) -> Iterator[Town]:  # noqa: F811
    yield from make_town(valkey_url, tmp_path)


def git(town: Town, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    subprocess.run(["git", *args], cwd=town.root, env=env, check=True, capture_output=True)


def complete(town: Town, tid: str, result: str) -> None:
    """What an agent does: claim the task from its queue and complete it (agents are suspended)."""
    store = Store.open(town.url, town.name)
    try:
        store.client.lrem(store.keys.queue("dev"), 0, tid)
        assert store.claim(tid, "dev", "tok") is not None
        assert store.complete(tid, "tok", result)
    finally:
        store.close()


def test_a_git_revert_of_a_deletion_restores_the_completed_task_not_rerun(town: Town) -> None:
    assert DOCS.strip() in SMALL_TASKS
    town.ok("apply")
    complete(town, "docs", "the docs are written")
    git(town, "init", "-q")
    git(town, "add", "tasks.toml", "town.toml")
    git(town, "commit", "-qm", "the plan")

    town.tasks_file.write_text(SMALL_TASKS.replace(DOCS, ""))
    git(town, "commit", "-qam", "no docs")
    out = town.ok("apply")
    until = re.search(r"^- task docs \(kept as tombstone until (\S+)\)$", out, re.M)
    assert until, out
    assert "docs" not in town.tasks()
    deleted = json.loads(town.ok("status", "--deleted", "-o", "json"))
    assert deleted["town"] == town.name
    [row] = deleted["deleted"]
    assert (row["id"], row["state"], row["attempts"], row["result"]) == (
        "docs",
        "completed",
        1,
        "the docs are written",
    )
    assert row["deleted_at"] <= time.time() < row["keep_until"]
    assert row["keep_until"] - row["deleted_at"] == pytest.approx(7 * 86400)
    assert time.strftime("%Y-%m-%dT%H:%M", time.localtime(row["keep_until"])) == until[1]
    text = town.ok("status", "--deleted")
    assert re.search(r"^docs\s+completed\s+1\s", text, re.M), text
    assert "the docs are written" in text

    git(town, "revert", "--no-edit", "HEAD")
    assert town.tasks_file.read_text() == SMALL_TASKS
    out = town.ok("apply")
    assert "+ task docs (restored from its tombstone: completed; not re-run)" in out, out
    docs = town.tasks()["docs"]
    assert (docs["state"], docs["attempts"], docs["result"]) == (
        "completed",
        1,
        "the docs are written",
    )
    assert [e["task"] for e in town.events("task.completed")].count("docs") == 1
    assert town.queued()["docs"] == 0
    assert json.loads(town.ok("status", "--deleted", "-o", "json"))["deleted"] == []
    assert town.ok("apply").strip() == "Everything up to date"

    # Deleted again, and back with another description: changed after done, not re-run.
    town.tasks_file.write_text(SMALL_TASKS.replace(DOCS, ""))
    town.ok("apply")
    town.tasks_file.write_text(SMALL_TASKS.replace("Write the docs", "Write the manual"))
    out = town.ok("apply")
    assert "+ task docs (restored from its tombstone: completed; not re-run)" in out, out
    assert "! task docs: changed after done (description)" in out, out
    assert town.tasks()["docs"]["state"] == "completed"
    out = town.ok("apply", "--rerun-changed")
    assert "~ task docs: re-run, changed after done (description)" in out, out
    assert town.tasks()["docs"]["state"] == "ready"


def test_a_no_save_task_waiting_for_a_pruned_task_is_upstream_failed_naming_it(
    vtown: Town,
) -> None:
    town = vtown
    town.ok("apply")
    town.ok("assign", "dev", "After the tidy-up", "--no-save", "--id", "later", "--after", "tidy")
    assert town.tasks()["later"]["state"] == "blocked"
    town.tasks_file.write_text(SMALL_TASKS.split("# Loose ends")[0])
    town.ok("apply")
    later = town.tasks()["later"]
    assert (later["state"], later["upstream"]) == ("upstream_failed", "tidy")  # not blocked
    assert re.search(
        r"^later\s+upstream_failed\s.*upstream tidy was deleted", town.ok("status"), re.M
    )

    town.tasks_file.write_text(SMALL_TASKS)  # tidy is back: later waits for it again
    out = town.ok("apply")
    assert "+ task tidy (restored from its tombstone: ready" in out, out
    assert town.tasks()["later"]["state"] == "blocked"
