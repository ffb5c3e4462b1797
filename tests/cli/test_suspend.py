"""`tt suspend` / `tt resume` on a real server, and the town's health in `tt status` (a line and
the JSON key) and `tt list`: what a person reads of both."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.spec.desired import Policy
from reconciler.store.client import Store
from tests.cli.inproc import DEV, town_files, tt

TASKS = '[[tasks]]\nid = "one"\ndescription = "x"\nagent = "dev"\n'


def health_of(status: str) -> str:
    """The health line of `tt status`: under the sync line (and the newest attempt's)."""
    lines = status.splitlines()
    [line] = [x for x in lines[:3] if x.startswith("health: ")]
    return line


@pytest.fixture
def town(tmp_path: Path, redis_url: str, town_name: str) -> Iterator[Path]:
    yield from town_files(tmp_path, redis_url, town_name, DEV, TASKS)


def test_suspend_and_resume_edit_town_toml_and_apply(
    town: Path, capsys: pytest.CaptureFixture[str], redis_url: str, town_name: str
) -> None:
    at = ("--town", str(town))
    original = (town / "town.toml").read_text()
    assert tt(capsys, "apply", *at)[0] == 0
    code, out, err = tt(capsys, "suspend", *at)
    assert (code, err) == (0, "")
    assert out == (
        f"suspended town '{town_name}': running tasks finish, nothing new starts (tt resume)\n"
    )
    assert "suspend = true" in (town / "town.toml").read_text()
    assert tt(capsys, "suspend", *at)[1].startswith(f"town '{town_name}' is suspended already")

    # Suspended: a new task is planned, not applied; apply says so in one line.
    (town / "tasks.toml").write_text(TASKS + TASKS.replace("one", "two"))
    code, out, _ = tt(capsys, "apply", *at)
    assert code == 0
    assert out.splitlines() == [
        "+ task two (ready → dev)",
        "Town suspended: nothing applied (1 to create, 0 to change, 0 to delete); "
        "tt resume applies it",
    ]
    store = Store.open(redis_url, town_name)
    try:
        assert store.task_ids() == ["one"] and store.is_suspended()
        code, out, _ = tt(capsys, "status", *at)
        # Under the sync line (the suspended files are planned, not applied: OutOfSync).
        assert health_of(out) == "health: suspended (nothing starts until tt resume)"
        report = json.loads(tt(capsys, "status", *at, "-o", "json")[1])
        assert report["health"]["state"] == "suspended"
        code, out, _ = tt(capsys, "apply", *at, "-o", "json")
        assert json.loads(out)["suspended"] is True and json.loads(out)["applied"] is False

        code, out, err = tt(capsys, "resume", *at)
        assert (code, err) == (0, "")
        assert out.splitlines() == [
            f"resumed town '{town_name}'",
            "Applied: 1 to create, 0 to change, 0 to delete",
        ]
        assert (town / "town.toml").read_text() == original
        assert sorted(store.task_ids()) == ["one", "two"] and not store.is_suspended()
        assert tt(capsys, "resume", *at)[1] == f"town '{town_name}' was not suspended\n"
    finally:
        store.close()


def test_status_and_list_show_the_health(
    town: Path, capsys: pytest.CaptureFixture[str], redis_url: str, town_name: str
) -> None:
    at = ("--town", str(town))
    assert tt(capsys, "apply", *at)[0] == 0
    out = tt(capsys, "status", *at)[1]
    assert health_of(out) == "health: progressing (1 ready task)"
    store = Store.open(redis_url, town_name)
    try:
        store.client.lrem(store.keys.queue("dev"), 0, "one")
        assert store.claim("one", "dev", "tok") is not None
        assert store.fail("one", "tok", "boom", True, Policy()) == "failed"
        store.set_agent("dev", {"state": "quarantined"})
    finally:
        store.close()
    report = json.loads(tt(capsys, "status", *at, "-o", "json")[1])
    assert report["health"] == {
        "state": "degraded",
        "reasons": ["agent dev quarantined", "1 failed task"],
    }
    code, out, _ = tt(capsys, "list", *at)
    assert code == 0
    assert out.splitlines()[-1] == "health: degraded (agent dev quarantined, 1 failed task)"


def test_a_newest_attempt_that_failed_degrades_the_health(
    town: Path, capsys: pytest.CaptureFixture[str], redis_url: str, town_name: str
) -> None:
    at = ("--town", str(town))
    assert tt(capsys, "apply", *at)[0] == 0
    store = Store.open(redis_url, town_name)
    try:
        # What a watcher's pass records when it meets invalid files (control/revision.py).
        tried = {"result": "invalid", "at": time.time() + 1, "problems": ["tasks.toml:1: bad"]}
        store.record_revision(None, tried, None)
    finally:
        store.close()
    report = json.loads(tt(capsys, "status", *at, "-o", "json")[1])
    assert report["health"] == {
        "state": "degraded",
        "reasons": ["newest revision invalid"],
    }
    assert health_of(tt(capsys, "status", *at)[1]) == "health: degraded (newest revision invalid)"


def test_suspend_takes_effect_when_planning_fails_after_it(
    town: Path, capsys: pytest.CaptureFixture[str], redis_url: str, town_name: str
) -> None:
    """A [git] town whose base branch is gone: the plan's preflight fails, the town is
    suspended all the same (nothing may start while the person sorts the repository out)."""
    import subprocess

    at = ("--town", str(town))
    assert tt(capsys, "apply", *at)[0] == 0
    subprocess.run(["git", "init", "-q", "-b", "trunk", str(town)], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(town),
            "-c",
            "user.name=u",
            "-c",
            "user.email=u@x",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "first",
        ],
        check=True,
    )
    with open(town / "town.toml", "a") as f:
        f.write("\n[git]\n")  # base main: not a branch of this repository
    code, _, err = tt(capsys, "suspend", *at)
    assert code == 1 and "town.toml [git] base: 'main' is not a branch of" in err
    store = Store.open(redis_url, town_name)
    try:
        assert store.is_suspended()
    finally:
        store.close()
