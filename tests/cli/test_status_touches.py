"""`touches` end to end on a real server: `tt apply` writes which tasks overlap (only for tasks
with touches, kept up to date as the files change), a later overlapping task is held back while
the earlier runs, and `tt status` says why it waits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.store.client import Store
from tests.cli.inproc import DEV, town_files, tt


def task(tid: str, touches: str = "") -> str:
    extra = f"touches = [{touches}]\n" if touches else ""
    return f'[[tasks]]\nid = "{tid}"\ndescription = "do {tid}"\nagent = "dev"\n{extra}\n'


TASKS = (
    task("auth", '"src/auth/**", "docs/auth.md"')
    + task("plain")
    + task("docs", '"docs/*.md"')
    + task("ui", '"src/ui/**"')
)


@pytest.fixture
def town(tmp_path: Path, redis_url: str, town_name: str) -> Iterator[Path]:
    yield from town_files(tmp_path, redis_url, town_name, DEV, TASKS)


@pytest.fixture
def store(redis_url: str, town_name: str) -> Iterator[Store]:
    s = Store.open(redis_url, town_name)
    yield s
    s.close()


def overlaps(store: Store, tid: str) -> list[str] | None:
    raw = store.client.hget(store.keys.task(tid), "overlaps")
    return None if raw is None else sorted(json.loads(raw))


def test_apply_writes_overlaps_and_status_shows_the_held_task(
    town: Path, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tt(capsys, "apply", "--town", str(town))[0] == 0
    assert overlaps(store, "auth") == ["docs"] and overlaps(store, "docs") == ["auth"]
    assert overlaps(store, "plain") is None and overlaps(store, "ui") is None

    store.client.lrem(store.keys.queue("dev"), 0, "docs")
    assert store.claim("docs", "dev", "t1") is None  # `auth` is ready and earlier: it goes first
    code, out, _ = tt(capsys, "status", "--town", str(town))
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("docs "))
    assert "ready" in line and "waits for auth (touches overlap)" in line
    # Nothing to repair: the held task counts as queued, and a second apply plans nothing.
    code, out, _ = tt(capsys, "apply", "--town", str(town), "--dry-run")
    assert code == 0 and "No changes." in out

    # `ui` now touches docs too; `docs` stops touching auth's: both sides learn it.
    (town / "tasks.toml").write_text(
        task("auth", '"src/auth/**", "docs/auth.md"')
        + task("plain")
        + task("docs", '"docs/guide/*.md"')
        + task("ui", '"src/ui/**", "docs/**"')
    )
    assert tt(capsys, "apply", "--town", str(town))[0] == 0
    assert overlaps(store, "auth") == ["ui"] and overlaps(store, "ui") == ["auth", "docs"]
    assert overlaps(store, "docs") == ["ui"]
