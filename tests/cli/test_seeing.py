"""`tt show`, `tt status` and `tt merge` on a town under [git] (a real repository, a real Redis):
what a person reads. The attempts are made the worker's way, in this process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.agents.gitwork import Checks
from reconciler.spec import loader
from reconciler.store.client import Store
from reconciler.town import TownPaths
from reconciler.work import WorkProducts
from tests.cli.inproc import DEV, town_files, tt
from tests.work.gitrepo import git, make_repo
from tests.work.test_products import attempt


@pytest.fixture
def store(valkey_url: str, town_name: str) -> Iterator[Store]:
    s = Store.open(valkey_url, town_name)
    yield s
    s.close()


def make_town(root: Path, url: str, name: str, git_table: str) -> Iterator[Path]:
    make_repo(root, {"app.txt": "one\n"})
    tasks = "".join(
        f'[[tasks]]\nid = "{t}"\ndescription = "do {t}"\nagent = "dev"\n\n' for t in "ab"
    )
    yield from town_files(root, url, name, DEV + f"\n[git]\n{git_table}\n", tasks)


@pytest.fixture
def queue_town(tmp_path: Path, valkey_url: str, town_name: str) -> Iterator[Path]:
    yield from make_town(tmp_path / "r", valkey_url, town_name, "")


@pytest.fixture
def manual_town(tmp_path: Path, valkey_url: str, town_name: str) -> Iterator[Path]:
    yield from make_town(tmp_path / "r", valkey_url, town_name, 'merge = "manual"')


def products(root: Path, store: Store) -> WorkProducts:
    desired = loader.check(TownPaths(root)).desired
    assert desired is not None and desired.git is not None
    return WorkProducts(root / ".tt", root, store.town, desired.git, store, Checks())


def claim(store: Store, task: str, token: str) -> None:
    store.client.lrem(store.keys.queue("dev"), 0, task)
    assert store.claim(task, "dev", token) is not None


def test_status_shows_a_task_waiting_to_merge_and_show_tells_why(
    queue_town: Path, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tt(capsys, "apply", "--town", str(queue_town))[0] == 0
    wp = products(queue_town, store)
    claim(store, "a", "t1")
    (wp.start("a", 1, "t1").tree / "app.txt").write_text("two\n")
    (queue_town / "app.txt").write_text("mine\n")  # the user's checkout: local changes
    looks = iter([False])
    done = wp.finish("a", 1, "t1", "do a", "did a", lambda: next(looks, True))
    assert done.stopped

    code, out, _ = tt(capsys, "status", "--town", str(queue_town))
    row = next(line for line in out.splitlines() if line.startswith("a "))
    assert code == 0 and "merging (1st in queue)" in row
    assert f"waiting: base checked out with local changes at {queue_town}" in row
    code, out, _ = tt(capsys, "status", "--town", str(queue_town), "-o", "json")
    a = json.loads(out)["tasks"][0]
    assert (a["state"], a["branch"], a["merging"]["position"]) == (
        "running",
        wp.layout.branch("a"),
        1,
    )
    assert a["commit"] == git(queue_town, "rev-parse", wp.layout.branch("a"))
    assert a["worktree"] == str(wp.layout.tree("a")) and a["merged_commit"] is None

    code, out, _ = tt(capsys, "show", "a", "--town", str(queue_town))
    assert code == 0 and "state:       running: merging (1st in queue)" in out
    assert "stage:     waiting: base checked out with local changes" in out
    assert "commits (1):" in out and "a: do a" in out and "app.txt" in out
    code, out, _ = tt(capsys, "show", "a", "--town", str(queue_town), "-o", "json")
    shown = json.loads(out)
    assert shown["git"]["queue_position"] == 1 and shown["git"]["commits_ahead"] == 1
    assert shown["attempts"] == [
        {
            "attempt": 1,
            "agent": "dev",
            "outcome": "running",
            "error": None,
            "reason": None,
            "started_at": shown["started_at"],
            "finished_at": None,
            "log": None,
            # Running: no ledger entry yet.
            "exit_class": None,
            "exit_code": None,
            "model": None,
            "node": None,
            "duration_s": None,
            "session_id": None,
            "tokens": {"input": None, "output": None, "cache_read": None, "cache_write": None},
            "cost_usd": None,
            "turns": None,
            "result": None,
            "resumed_from": None,
            "resume_rejected": None,
            "workdir": None,
            "record": None,
        }
    ]
    code, _, err = tt(capsys, "merge", "a", "--town", str(queue_town))
    assert code == 1 and 'tt merge is for [git] merge = "manual"' in err
    code, _, err = tt(capsys, "show", "nope", "--town", str(queue_town))
    assert code != 0 and "no task named nope" in err


def test_merge_of_a_manual_task(
    manual_town: Path, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tt(capsys, "apply", "--town", str(manual_town))[0] == 0
    wp = products(manual_town, store)
    code, _, err = tt(capsys, "merge", "a", "--town", str(manual_town))
    assert code == 1 and "task a is ready, not completed" in err
    claim(store, "a", "t1")
    assert attempt(wp, "a", "t1", {"a.txt": "alpha\n"}).ok  # type: ignore[attr-defined]
    assert store.complete("a", "t1", "did a")

    code, out, _ = tt(capsys, "show", "a", "--town", str(manual_town), "-o", "json")
    g = json.loads(out)["git"]
    assert (g["stage"], g["commits_ahead"], g["branch_exists"]) == ("committed", 1, True)
    code, out, err = tt(capsys, "merge", "a", "--town", str(manual_town))
    main = git(manual_town, "rev-parse", "main")
    assert (code, out, err) == (0, f"merged a as {main} into main\n", "")
    assert git(manual_town, "log", "-1", "--format=%s", "main") == "a: do a"
    code, out, _ = tt(capsys, "status", "--town", str(manual_town), "-o", "json")
    assert json.loads(out)["tasks"][0]["merged_commit"] == main


def test_a_place_in_the_queue_reads_as_an_ordinal() -> None:
    from cli.render import ordinal

    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 112)] == [
        *("1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "112th")
    ]
