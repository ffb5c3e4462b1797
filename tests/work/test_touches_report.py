"""After an attempt under [git], the files it changed outside its task's `touches` are recorded
(`git_outside`) and told (`git.outside_touches`), on a real repository (fakeredis records)."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.store.client import Store
from tests.work.gitrepo import make_repo
from tests.work.test_products import attempt, products


def touching_task(store: Store, tid: str, token: str, touches: list[str]) -> None:
    """A task whose spec has `touches`, claimed by agent `dev` with `token`."""
    spec = {"id": tid, "description": f"do {tid}", **({"touches": touches} if touches else {})}
    rec = {"id": tid, "spec": json.dumps(spec), "hash": "h", "target": "dev", "order": 0}
    store.upsert_tasks([{**rec, "mode": "upsert", "directive": "pending"}], 1)
    store.client.lrem(store.keys.queue("dev"), 0, tid)
    assert store.claim(tid, "dev", token) is not None


def outside_events(store: Store) -> list[dict[str, str]]:
    return [
        e for _, e in store.client.xrange(store.keys.events) if e["type"] == "git.outside_touches"
    ]


def test_files_changed_outside_touches_are_recorded_and_told(
    tmp_path: Path, fake_store: Store
) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store)
    touching_task(fake_store, "auth", "t1", ["src/auth/**", "docs/auth.md"])
    writes = {
        "src/auth/login.py": "x\n",
        "docs/auth.md": "how\n",
        "README.md": "more\n",
        "src/ui/app.py": "y\n",
    }
    attempt(wp, "auth", "t1", writes)
    rec = fake_store.git_record("auth")
    assert sorted(json.loads(rec["git_changed"])) == sorted(writes)
    assert sorted(json.loads(rec["git_outside"])) == ["README.md", "src/ui/app.py"]
    [event] = outside_events(fake_store)
    assert event["task"] == "auth" and event["files"] == "2"
    assert sorted(event["first"].split(", ")) == ["README.md", "src/ui/app.py"]


def test_nothing_is_told_inside_touches_or_without_them(tmp_path: Path, fake_store: Store) -> None:
    repo = make_repo(tmp_path / "r")
    wp = products(repo, fake_store)
    touching_task(fake_store, "inside", "t1", ["src/**"])
    attempt(wp, "inside", "t1", {"src/a.py": "a\n", "src/deep/b.py": "b\n"})
    touching_task(fake_store, "free", "t2", [])  # no touches: it may write anywhere
    attempt(wp, "free", "t2", {"anywhere.txt": "c\n"})
    for tid in ("inside", "free"):
        rec = fake_store.git_record(tid)
        assert rec["git_changed"] and "git_outside" not in rec
    assert outside_events(fake_store) == []
