"""A town has an identity (issue 17): two folders with one `[town] name` on one Redis do not
overwrite each other. The second is refused and nothing changes; `tt apply --adopt` moves the
town (its agents then run in the new folder, the old folder's conductor stops); a fresh
`git clone` of the same repository is the same source. Real Valkey and the system Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.store.client import Store, mask_url
from tests.integration.live import alive, cwd_of, until
from tests.redis_fixtures import (  # noqa: F401
    flush_town,
    redis_url,
    system_redis_url,
    valkey_url,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
TOWN = '[town]\nname = "{name}"\nheartbeat = "0.5s"\nlease = "2s"\n\n[agents.dev]\nmodel = "sim"\n'


def tasks(*ids: str) -> str:
    return "".join(f'[[tasks]]\nid = "{i}"\ndescription = "do {i}"\nagent = "dev"\n\n' for i in ids)


def tt(folder: Path, url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TT_") and k != "NO_COLOR"}
    env.update({"TT_REDIS_URL": url, "PYTHONPATH": str(REPO), "TT_SIM_DELAY": "0.1"})
    return subprocess.run(
        [sys.executable, "-m", "cli", *args, "--town", str(folder)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def town_folder(path: Path, name: str, *ids: str, suspended: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "town.toml").write_text(TOWN.format(name=name) + ("suspended = true\n" * suspended))
    (path / "tasks.toml").write_text(tasks(*ids))
    return path


@pytest.fixture
def name_on(redis_url: str) -> Iterator[tuple[str, str, Store]]:  # noqa: F811
    name = f"id-{uuid.uuid4().hex[:10]}"
    store = Store.open(redis_url, name)
    try:
        yield name, redis_url, store
    finally:
        flush_town(store.client, name)
        store.close()


def snapshot(store: Store) -> dict[str, object]:
    """Every key of the town and its content (the event stream by its entries)."""
    out: dict[str, object] = {}
    for key in sorted(store.client.scan_iter(match=store.keys.prefix + "*", count=1000)):
        kind = store.client.type(key)
        read = {
            "hash": store.client.hgetall,
            "list": lambda k: store.client.lrange(k, 0, -1),
            "set": lambda k: sorted(store.client.smembers(k)),
            "zset": lambda k: store.client.zrange(k, 0, -1, withscores=True),
            "stream": lambda k: store.client.xrange(k),
            "string": store.client.get,
        }[kind]
        out[key] = read(key)
    return out


def test_two_folders_with_one_town_name(tmp_path: Path, name_on: tuple[str, str, Store]) -> None:
    name, url, store = name_on
    first = town_folder(tmp_path / "first", name, "a1", "a2")
    other = town_folder(tmp_path / "srv" / "other", name, "b1")
    done = tt(first, url, "apply")
    assert done.returncode == 0, done.stderr
    before = snapshot(store)

    refused = tt(other, url, "apply")
    assert refused.returncode == 1
    host = socket.gethostname()
    assert (
        f"error: town '{name}' on {mask_url(url)} is managed from {host}:{first}; this folder "
        f"is {other} (use another [town] name, or tt apply --adopt to move it here)"
    ) in refused.stderr
    # Every verb meets the same check, and nothing changed: not Redis, not the files.
    for verb in (["status"], ["assign", "dev", "more work"], ["retry", "a1"], ["down"]):
        assert tt(other, url, *verb).returncode == 1, verb
    assert tt(other, url, "agent", "run", "dev").returncode == 1
    assert (other / "tasks.toml").read_text() == tasks("b1")
    assert snapshot(store) == before

    adopted = tt(other, url, "apply", "--adopt")
    assert adopted.returncode == 0, adopted.stderr
    ids = {r["id"] for r in store.task_records()}
    assert ids == {"b1"}
    moved = [f for _, f in store.events_since("-") if f["type"] == "town.adopted"]
    assert len(moved) == 1 and moved[0]["from"] == f"{host}:{first}"
    assert moved[0]["source"] == f"{host}:{other}"
    back = tt(first, url, "apply")
    assert back.returncode == 1 and f"is managed from {host}:{other}; " in back.stderr
    assert tt(other, url, "apply").returncode == 0  # the adopting folder goes on as usual


def git(repo: Path, *args: str) -> None:
    base = ["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run([*base, *args], check=True, capture_output=True)


def test_a_fresh_clone_is_the_same_source(
    tmp_path: Path,
    system_redis_url: str,  # noqa: F811
) -> None:
    name = f"id-{uuid.uuid4().hex[:10]}"
    url = system_redis_url
    work = tmp_path / "work"
    town_folder(work / "towns" / "shared", name, "t1", "t2")
    git(work, "init", "-q")
    (work / ".gitignore").write_text(".tt/\n")
    git(work, "add", ".")
    git(work, "commit", "-qm", "the town")
    origin = tmp_path / "server" / "app.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(origin)], check=True)
    dev = tmp_path / "dev" / "app"
    subprocess.run(["git", "clone", "-q", str(origin), str(dev)], check=True)
    store = Store.open(url, name)
    try:
        assert tt(dev / "towns" / "shared", url, "apply").returncode == 0
        assert store.town_source()["source"] == f"{origin}:towns/shared"

        ci = tmp_path / "ci" / "build-17"
        subprocess.run(["git", "clone", "-q", str(origin), str(ci)], check=True)
        again = tt(ci / "towns" / "shared", url, "apply")
        assert again.returncode == 0, again.stderr
        assert "Everything up to date" in again.stdout
        assert store.town_source()["source"] == f"{origin}:towns/shared"

        # Another folder of the same repository under the same name is another source.
        subprocess.run(["cp", "-r", str(ci / "towns" / "shared"), str(ci / "towns" / "copy")])
        other = tt(ci / "towns" / "copy", url, "apply")
        assert other.returncode == 1
        assert f"is managed from {origin}:towns/shared; this folder is {ci}/towns/copy" in (
            other.stderr
        )
    finally:
        flush_town(store.client, name)
        store.close()


def test_adopt_moves_the_agents_and_stops_the_old_conductor(
    tmp_path: Path,
    system_redis_url: str,  # noqa: F811
) -> None:
    name = f"id-{uuid.uuid4().hex[:10]}"
    url = system_redis_url
    first = town_folder(tmp_path / "first", name, "a1", suspended=False)
    other = town_folder(tmp_path / "other", name, "a1", "b1", suspended=False)
    store = Store.open(url, name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TT_")}
    env.update({"TT_REDIS_URL": url, "PYTHONPATH": str(REPO), "NO_COLOR": "1"})
    log = tmp_path / "conductor.log"
    with open(log, "wb") as out:
        conductor = subprocess.Popen(
            [sys.executable, "-m", "cli", "conductor", "--town", str(first)],
            cwd=first,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    pids: set[int] = set()
    try:

        def dev_pid() -> int | None:
            pid = store.agent_records().get("dev", {}).get("pid", "")
            return int(pid) if pid.isdigit() and alive(int(pid)) else None

        old = until(dev_pid, 30, "the first folder's agent")
        pids.add(old)
        assert cwd_of(old) == str(first)
        until(lambda: store.task_hash("a1").get("state") == "completed", 30, "a1 completed")

        adopted = tt(other, url, "apply", "--adopt")
        assert adopted.returncode == 0, adopted.stdout + adopted.stderr
        assert conductor.wait(timeout=20) == 1  # it may no longer act for the town
        assert "is managed from" in log.read_text()
        new = until(lambda: (p := dev_pid()) and p != old and p, 30, "the agent moved")
        pids.add(new)
        assert cwd_of(new) == str(other) and not alive(old)
        assert store.agent_records()["dev"]["root"] == str(other)
        until(lambda: store.task_hash("b1").get("state") == "completed", 30, "b1 completed")
        # b1 ran once, in the new folder (its log is there); a1, the same task in both, not again.
        assert len(store.attempt_history("b1")) == 1 and len(store.attempt_history("a1")) == 1
        assert list((other / ".tt" / "logs" / "dev").glob("b1-*.log"))
        assert not list((first / ".tt" / "logs" / "dev").glob("b1-*.log"))
        assert tt(other, url, "down").returncode == 0
    finally:
        if conductor.poll() is None:
            conductor.kill()
            conductor.wait()
        for pid in pids:
            if alive(pid) and cwd_of(pid) in (str(first), str(other)):
                os.kill(pid, 9)
        flush_town(store.client, name)
        store.close()
