"""The reconciler core through the real `tt` CLI on real servers: apply, diff, prune, sync, assign,
cancel, the apply lock, and a kill -9 in the middle of a 10,000-task apply.

Each test runs `tt` as subprocesses in its own town folder, with `TT_REDIS_URL` pointing at the
session's Valkey or the system Redis and a unique town name; the town's keys are deleted
afterwards. Agents are `suspended`, so no agent process ever starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.store.client import ENV_URL, Store
from reconciler.store.keys import Keys
from tests.redis_fixtures import (  # noqa: F401
    flush_town,
    redis_url,
    system_redis_url,
    valkey_url,
)
from tests.towngen import tasks_toml, town_toml, write_town

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

SMALL_TASKS = """\
# The release plan. Comments like this one must survive every tt edit.
[meta]
description = "Release"

[[tasks]]
id = "release"          # the epic: a group
description = "Ship 2.0"

[[tasks]]
id = "design"
description = "Design the API"
agent = "dev"
parent = "release"

[[tasks]]
id = "build"
description = "Build it"
agent = "dev"
depends_on = ["design"]
parent = "release"

[[tasks]]
id = "docs"
description = "Write the docs"
agent = "dev"
parent = "release"
tags = ["docs"]

# Loose ends anyone may pick up.
[[tasks]]
id = "tidy"
description = "Tidy the repo"
"""
SMALL_IDS = {"release", "design", "build", "docs", "tidy"}


# -- helpers --------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, step: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(step)


@dataclass
class Town:
    root: Path
    name: str
    url: str
    client: Any  # a redis-py client (decoded strings, RESP2) on the town's server

    @property
    def keys(self) -> Keys:
        return Keys(self.name)

    @property
    def tasks_file(self) -> Path:
        return self.root / "tasks.toml"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("TT_TOWN", "NO_COLOR")}
        env[ENV_URL] = self.url
        env["PYTHONPATH"] = str(REPO)
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "cli", *args]

    def tt(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def ok(self, *args: str) -> str:
        done = self.tt(*args)
        assert done.returncode == 0, f"tt {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            cwd=self.root,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.ok("status", "-o", "json"))
        return data

    def tasks(self) -> dict[str, dict[str, Any]]:
        return {t["id"]: t for t in self.status()["tasks"]}

    def diff_json(self, *args: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.ok("diff", "-o", "json", *args))
        return data

    def digest(self) -> dict[str, str]:
        """key → sha256 of its content, for every key of the town (the apply lock excluded)."""
        pattern = self.keys.prefix + "*"
        names = sorted(k for k in self.client.scan_iter(match=pattern, count=5000))
        names = [k for k in names if k != self.keys.apply_lock]
        pipe = self.client.pipeline(transaction=False)
        for k in names:
            pipe.type(k)
        types = pipe.execute()
        readers = {
            "hash": lambda p, k: p.hgetall(k),
            "list": lambda p, k: p.lrange(k, 0, -1),
            "set": lambda p, k: p.smembers(k),
            "zset": lambda p, k: p.zrange(k, 0, -1, withscores=True),
            "stream": lambda p, k: p.xrange(k),
            "string": lambda p, k: p.get(k),
        }
        pipe = self.client.pipeline(transaction=False)
        for k, t in zip(names, types, strict=True):
            readers[t](pipe, k)
        out = {}
        for k, value in zip(names, pipe.execute(), strict=True):
            if isinstance(value, (set, dict)):
                value = sorted(value.items()) if isinstance(value, dict) else sorted(value)
            out[k] = hashlib.sha256(repr(value).encode()).hexdigest()
        return out

    def queued(self) -> Counter[str]:
        """How many times each task id sits in any ready queue of the town."""
        found: Counter[str] = Counter()
        for key in self.client.scan_iter(match=self.keys.prefix + "queue:*", count=1000):
            found.update(self.client.lrange(key, 0, -1))
        return found

    def events(self, etype: str) -> list[dict[str, str]]:
        return [f for _, f in self.client.xrange(self.keys.events) if f.get("type") == etype]

    def write_stats(self) -> dict[str, int]:
        """Calls of the data-writing commands so far (INFO commandstats; counts script calls)."""
        stats = self.client.info("commandstats")
        out = {}
        for cmd in WRITE_COMMANDS:
            entry = stats.get(f"cmdstat_{cmd}")
            out[cmd] = int(entry["calls"]) if entry else 0
        return out


WRITE_COMMANDS = (
    *("hset", "hsetnx", "hdel", "hincrby", "rpush", "lpush", "lrem", "lpop", "rpop"),
    *("zadd", "zrem", "sadd", "srem", "xadd", "del", "unlink", "set", "expire"),
)


def make_town(url: str, tmp_path: Path) -> Iterator[Town]:
    name = f"it-{uuid.uuid4().hex[:10]}"
    root = tmp_path / "town"
    root.mkdir()
    (root / "town.toml").write_text(town_toml(name))
    (root / "tasks.toml").write_text(SMALL_TASKS)
    store = Store.open(url, name)
    try:
        yield Town(root, name, url, store.client)
    finally:
        flush_town(store.client, name)
        store.close()


@pytest.fixture
def town(redis_url: str, tmp_path: Path) -> Iterator[Town]:  # noqa: F811
    """The release town on the session's Valkey, then on the system Redis (when present)."""
    yield from make_town(redis_url, tmp_path)


@pytest.fixture
def vtown(valkey_url: str, tmp_path: Path) -> Iterator[Town]:  # noqa: F811
    """The same town on Valkey only: for what does not depend on the server (verbs, locks)."""
    yield from make_town(valkey_url, tmp_path)


def assert_consistent(town: Town, ids: set[str]) -> None:
    """Invariant 1 of DESIGN.md on what Redis holds: every task exactly once, every ready task
    in exactly one queue exactly once, nothing else queued, no blocked task with nothing to wait
    for."""
    members = town.client.zrange(town.keys.tasks, 0, -1)
    assert len(members) == len(set(members)) == len(ids)
    assert set(members) == ids
    pipe = town.client.pipeline(transaction=False)
    for tid in members:
        pipe.hmget(town.keys.task(tid), "state", "deps")
    rows = dict(zip(members, pipe.execute(), strict=True))
    states = {tid: row[0] for tid, row in rows.items()}
    assert all(states.values()), "a task without a state"
    queued = town.queued()
    ready = {tid for tid, s in states.items() if s == "ready"}
    assert set(queued) == ready, "ready tasks and queued ids differ"
    assert all(n == 1 for n in queued.values()), "a task is queued twice"
    for tid, (state, deps) in rows.items():
        if state == "blocked":
            waiting = [d for d in json.loads(deps or "[]") if states.get(d) != "completed"]
            assert waiting, f"{tid} is blocked with nothing to wait for"


# -- apply, status, idempotence -------------------------------------------------------------------


def test_apply_then_status_shows_the_tasks(town: Town) -> None:
    out = town.ok("apply")
    assert "Applied: 6 to create, 0 to change, 0 to delete" in out
    assert "+ task design (ready → dev)" in out
    assert "+ task build (blocked → dev)" in out
    assert "+ task release (group, blocked)" in out
    assert "+ task tidy (ready → *backlog)" in out

    status = town.status()
    assert set(status) >= {"town", "agents", "tasks", "counts"}
    assert status["town"] == town.name
    [dev] = status["agents"]
    assert dev["name"] == "dev" and dev["state"] == "suspended" and dev["pid"] is None
    tasks = {t["id"]: t for t in status["tasks"]}
    assert set(tasks) == SMALL_IDS
    for t in tasks.values():
        for field in ("id", "state", "agent", "attempts", "created_at", "started_at"):
            assert field in t
        assert "finished_at" in t
        assert t["attempts"] == 0 and t["agent"] is None and t["started_at"] is None
        assert isinstance(t["created_at"], float) and t["created_at"] <= time.time()
    assert {i: t["state"] for i, t in tasks.items()} == {
        "release": "blocked",
        "design": "ready",
        "build": "blocked",
        "docs": "ready",
        "tidy": "ready",
    }
    assert tasks["build"]["deps_left"] == 1
    assert status["counts"]["ready"] == 3 and status["counts"]["blocked"] == 2
    assert status["counts"]["total"] == 5

    text = town.ok("status")
    assert re.search(r"^design\s+ready\s+dev\s+0", text, re.M)
    assert "0/5 tasks completed (0%)" in text
    assert_consistent(town, SMALL_IDS)


def test_second_apply_writes_nothing(town: Town, valkey_url: str) -> None:  # noqa: F811
    town.ok("apply")
    before = town.digest()
    writes = town.write_stats()
    out = town.ok("apply")
    assert out.strip() == "Everything up to date"
    assert town.digest() == before  # same keys, same contents, no new event
    if town.url == valkey_url:  # the session's own server: nobody else writes to it
        delta = {k: v - writes[k] for k, v in town.write_stats().items() if v != writes[k]}
        # Only the apply lock: SET NX, then its compare-and-delete.
        assert set(delta) <= {"set", "del"}, delta
        assert sum(delta.values()) <= 2, delta
    plan = town.diff_json()
    assert plan["empty"] is True and plan["actions"] == []
    assert town.tt("diff", "--detailed-exitcode").returncode == 0


def test_second_apply_after_work_progressed_still_writes_nothing(town: Town) -> None:
    """Tasks that moved on (claimed, completed) are not 'changes': the files did not change."""
    town.ok("apply")
    with Store.open(town.url, town.name) as store:
        claimed = store.claim("design", "dev", "tok-1")
        assert claimed is not None
        assert store.complete("design", "tok-1", "the design")
    tasks = town.tasks()
    assert tasks["design"]["state"] == "completed" and tasks["build"]["state"] == "ready"
    before = town.digest()
    assert town.ok("apply").strip() == "Everything up to date"
    assert town.digest() == before


def test_an_unchanged_file_still_repairs_what_went_wrong_in_redis(town: Town) -> None:
    """Apply is level-triggered: with the same files it still puts Redis right (the no-op fast
    path must never hide a repair)."""
    town.ok("apply")
    assert town.ok("apply").strip() == "Everything up to date"
    # An agent died between popping a task and claiming it: ready, but in no queue.
    town.client.lrem(town.keys.queue("dev"), 0, "docs")
    out = town.ok("apply")
    assert "~ task docs: requeued → dev (ready but in no queue)" in out
    assert town.queued()["docs"] == 1
    # Someone deleted a task by hand: it is created again.
    town.client.delete(town.keys.task("tidy"))
    town.client.zrem(town.keys.tasks, "tidy")
    town.client.lrem(town.keys.queue("*backlog"), 0, "tidy")
    assert "+ task tidy (ready → *backlog)" in town.ok("apply")
    # Someone rewrote a definition by hand: the file wins again.
    key = town.keys.task("build")
    spec = json.loads(town.client.hget(key, "spec"))
    town.client.hset(key, mapping={"spec": json.dumps({**spec, "description": "x"}), "hash": "x"})
    assert "~ task build: description" in town.ok("apply")
    assert town.ok("apply").strip() == "Everything up to date"
    assert_consistent(town, SMALL_IDS)


# -- diff: what changed, exit codes, JSON ---------------------------------------------------------


def test_editing_one_description_diffs_exactly_that_task_and_field(town: Town) -> None:
    town.ok("apply")
    queue = town.keys.queue("dev")
    assert town.client.lrange(queue, 0, -1) == ["design", "docs"]
    text = town.tasks_file.read_text()
    town.tasks_file.write_text(text.replace('"Design the API"', '"Design the API, then review"'))

    plan = town.diff_json()
    assert plan["counts"] == {"update_task": 1}
    [action] = plan["actions"]
    assert action["op"] == "update_task" and action["id"] == "design"
    assert action["changed_fields"] == ["description"]
    assert action["spec"]["description"] == "Design the API, then review"
    lines = town.ok("diff").splitlines()
    assert lines == ["~ task design: description", "Plan: 0 to create, 1 to change, 0 to delete"]

    done = town.tt("diff", "--detailed-exitcode")
    assert done.returncode == 2
    assert town.ok("apply").splitlines()[0] == "~ task design: description"
    assert town.tt("diff", "--detailed-exitcode").returncode == 0
    spec = json.loads(town.client.hget(town.keys.task("design"), "spec"))
    assert spec["description"] == "Design the API, then review"
    assert town.tasks()["design"]["state"] == "ready"
    # Still first in line: an edited description does not send a task to the back.
    assert town.client.lrange(queue, 0, -1) == ["design", "docs"]
    assert_consistent(town, SMALL_IDS)


def test_diff_detailed_exitcode_is_0_2_or_1(vtown: Town) -> None:
    assert vtown.tt("diff", "--detailed-exitcode").returncode == 2  # nothing applied yet
    assert vtown.tt("plan", "--detailed-exitcode").returncode == 2
    assert vtown.tt("apply", "--detailed-exitcode").returncode == 2  # it changed something
    assert vtown.tt("diff", "--detailed-exitcode").returncode == 0
    assert vtown.tt("apply", "--detailed-exitcode").returncode == 0
    vtown.tasks_file.write_text(SMALL_TASKS + '\n[[tasks]]\nid = "broken"\nagent = "devloper"\n')
    before = vtown.digest()
    done = vtown.tt("diff", "--detailed-exitcode")
    assert done.returncode == 1
    assert "tasks.toml:36: $.tasks[5].agent: unknown agent 'devloper'" in done.stderr
    done = vtown.tt("apply")
    assert done.returncode == 1 and "nothing was changed" in done.stderr
    assert vtown.digest() == before  # invariant 3: an invalid file never changes Redis


def test_apply_json_output_shape(town: Town) -> None:
    data = json.loads(town.ok("apply", "-o", "json"))
    assert set(data) == {
        "version",
        "empty",
        "deletes_everything",
        "summary",
        "counts",
        "actions",
        "applied",
        "suspended",
        "generation",
        "agents",
    }
    assert data["version"] == 1 and data["applied"] is True and data["empty"] is False
    assert data["suspended"] is False
    assert data["deletes_everything"] is False
    assert data["counts"] == {"create_agent": 1, "create_task": 5}
    assert data["summary"] == "6 to create, 0 to change, 0 to delete"
    assert data["agents"] == []  # suspended: nothing started
    first = data["generation"]
    assert isinstance(first, int) and first >= 1
    agent, *tasks = data["actions"]
    assert agent["op"] == "create_agent" and agent["name"] == "dev"
    assert agent["spec"]["suspended"] is True and agent["write"] is True
    by_id = {a["id"]: a for a in tasks}
    assert set(by_id) == SMALL_IDS
    build = by_id["build"]
    assert build["op"] == "create_task" and build["state"] == "blocked"
    assert build["deps"] == ["design"] and build["deps_left"] == 1 and build["target"] == "dev"
    assert build["spec"]["depends_on"] == ["design"] and build["source"] == "file"
    assert by_id["release"]["kind"] == "group" and by_id["tidy"]["target"] == "*backlog"

    again = json.loads(town.ok("apply", "-o", "json"))
    assert again["empty"] is True and again["actions"] == [] and again["counts"] == {}
    assert again["generation"] == first and again["applied"] is True


# -- prune and the empty-file guard ---------------------------------------------------------------


def test_removed_task_is_reported_without_prune_and_deleted_with_it(town: Town) -> None:
    town.ok("apply")
    text = town.tasks_file.read_text()
    town.tasks_file.write_text(text[: text.index("# Loose ends")])

    out = town.ok("apply", "--no-prune")
    assert "? task tidy: not in tasks.toml (use --prune to delete)" in out
    assert "tidy" in town.tasks()
    assert town.tt("diff", "--no-prune", "--detailed-exitcode").returncode == 0

    plan = town.diff_json()
    assert plan["counts"] == {"delete_task": 1}
    assert plan["actions"][0]["id"] == "tidy"
    out = town.ok("apply", "--prune")
    assert "- task tidy" in out and "0 to create, 0 to change, 1 to delete" in out
    assert "tidy" not in town.tasks()
    assert not town.client.exists(town.keys.task("tidy"))
    assert_consistent(town, SMALL_IDS - {"tidy"})


@pytest.mark.parametrize("content", ["", "# nothing to do yet\n[meta]\n"])
def test_an_empty_file_is_refused(vtown: Town, content: str) -> None:
    vtown.ok("apply")
    before = vtown.digest()
    vtown.tasks_file.write_text(content)
    done = vtown.tt("apply")
    assert done.returncode == 1
    assert "refusing to apply: it would delete every task" in done.stderr
    assert "--allow-empty" in done.stderr
    assert vtown.digest() == before
    assert set(vtown.tasks()) == SMALL_IDS

    out = vtown.ok("apply", "--allow-empty")
    assert "0 to create, 0 to change, 5 to delete" in out
    assert vtown.tasks() == {}


# -- sync push / pull ------------------------------------------------------------------------------


def test_sync_push_repeated_never_duplicates(vtown: Town) -> None:
    for args in (("sync", "push"), ("sync", "push"), ("sync",), ("sync", "push")):
        vtown.ok(*args)
    assert vtown.client.zcard(vtown.keys.tasks) == 5
    assert set(vtown.tasks()) == SMALL_IDS
    created = Counter(t for e in vtown.events("tasks.created") for t in e["tasks"].split())
    assert created == Counter(SMALL_IDS)  # each created once, never again
    assert_consistent(vtown, SMALL_IDS)


def test_sync_pull_then_git_diff_shows_only_status_lines(vtown: Town) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("no git")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}

    def run_git(*args: str) -> str:
        done = subprocess.run(
            [git, *args], cwd=vtown.root, env=env, capture_output=True, text=True, check=True
        )
        return done.stdout

    run_git("init", "-q")
    run_git("add", "town.toml", "tasks.toml")
    run_git("commit", "-q", "-m", "town")
    vtown.ok("apply")
    with Store.open(vtown.url, vtown.name) as store:  # an agent at work
        assert store.claim("design", "dev", "tok") is not None
        assert store.complete("design", "tok", "done")
        assert store.claim("build", "dev", "tok2") is not None
    out = vtown.ok("sync", "pull")
    assert out.strip() == "updated 5 task(s) in tasks.toml"

    diff = run_git("diff", "-U0", "--no-color")
    changed = [
        line
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed, diff
    assert all(re.fullmatch(r'\+status = "\w+"', line) for line in changed), diff
    text = vtown.tasks_file.read_text()
    for comment in ("# The release plan.", "# the epic: a group", "# Loose ends anyone"):
        assert comment in text
    assert (
        'id = "design"\ndescription = "Design the API"\nagent = "dev"\nparent = "release"\n'
        'status = "completed"' in text
    )
    assert 'status = "running"' in text
    # The written-back statuses are informational: applying them changes nothing.
    assert vtown.tt("diff", "--detailed-exitcode").returncode == 0
    assert vtown.ok("sync", "pull").strip() == "tasks.toml is current"


# -- verbs: assign, cancel ------------------------------------------------------------------------


def test_twenty_concurrent_assigns_all_land_in_the_file_and_in_redis(vtown: Town) -> None:
    vtown.ok("apply")
    procs = [vtown.popen("assign", "dev", f"Concurrent job number {i}") for i in range(20)]
    for proc in procs:
        # A deadline, not a speed claim: 20 processes start and take the locks in turn, which
        # on a loaded machine (.ci/stress) takes minutes.
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, out + err
        assert out.startswith("assigned t-concurrent-job-number-")
    text = vtown.tasks_file.read_text()
    ids = re.findall(r'^id = "(t-concurrent-job-number-\d+)"$', text, re.M)
    assert len(ids) == len(set(ids)) == 20
    tasks = vtown.tasks()
    assert {i for i in tasks if i.startswith("t-concurrent")} == set(ids)
    assert all(tasks[i]["state"] == "ready" and tasks[i]["source"] == "file" for i in ids)
    assert text.startswith("# The release plan.")  # comments survived 20 edits
    assert vtown.tt("diff", "--detailed-exitcode").returncode == 0
    assert_consistent(vtown, SMALL_IDS | set(ids))


def test_no_save_assign_creates_a_cli_task_that_is_never_pruned(vtown: Town) -> None:
    vtown.ok("apply")
    before = vtown.tasks_file.read_bytes()
    out = vtown.ok("assign", "dev", "Hotfix the login", "--no-save")
    assert out.strip() == "assigned t-hotfix-the-login to dev (not saved to tasks.toml)"
    assert vtown.tasks_file.read_bytes() == before
    hotfix = vtown.tasks()["t-hotfix-the-login"]
    assert hotfix["source"] == "cli" and hotfix["state"] == "ready"
    assert vtown.queued()["t-hotfix-the-login"] == 1

    assert vtown.diff_json("--prune")["actions"] == []
    assert vtown.ok("apply", "--prune").strip() == "Everything up to date"
    assert "t-hotfix-the-login" in vtown.tasks()
    # Even an apply that empties the file (allowed) keeps it.
    vtown.tasks_file.write_text("")
    vtown.ok("apply", "--allow-empty")
    assert set(vtown.tasks()) == {"t-hotfix-the-login"}
    assert_consistent(vtown, {"t-hotfix-the-login"})


def test_cancel_sets_the_file_status_and_dequeues(vtown: Town) -> None:
    vtown.ok("apply")
    assert vtown.queued()["docs"] == 1
    assert vtown.ok("cancel", "docs").strip() == "cancelled docs"
    text = vtown.tasks_file.read_text()
    assert re.search(r'id = "docs"\n(?:.*\n){4}status = "cancelled"', text)
    assert "# The release plan." in text
    assert vtown.tasks()["docs"]["state"] == "cancelled"
    assert "docs" not in vtown.queued()
    assert vtown.tt("diff", "--detailed-exitcode").returncode == 0

    vtown.ok("assign", "dev", "Try something", "--no-save")
    before = vtown.tasks_file.read_bytes()
    vtown.ok("cancel", "t-try-something")
    assert vtown.tasks_file.read_bytes() == before  # a cli task lives in Redis only
    assert vtown.tasks()["t-try-something"]["state"] == "cancelled"
    assert "t-try-something" not in vtown.queued()

    done = vtown.tt("cancel", "no-such-task")
    assert done.returncode == 1 and "no task 'no-such-task'" in done.stderr
    assert_consistent(vtown, SMALL_IDS | {"t-try-something"})


# -- the apply lock -------------------------------------------------------------------------------


def hold_lock(town: Town, pid: int, command: str = "tt apply") -> None:
    holder = {
        "token": "held-by-test",
        "host": socket.gethostname(),
        "pid": pid,
        "command": command,
        "since": time.time(),
    }
    assert town.client.set(town.keys.apply_lock, json.dumps(holder), nx=True, px=60_000)


def test_a_held_lock_makes_apply_fail_with_the_holders_name_or_wait(vtown: Town) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])  # a live holder process
    try:
        hold_lock(vtown, sleeper.pid, "tt conductor")
        done = vtown.tt("apply")
        assert done.returncode == 1
        assert f"another apply holds the town's lock: tt conductor (pid {sleeper.pid} on" in (
            done.stderr
        )
        assert vtown.client.zcard(vtown.keys.tasks) == 0

        waiting = vtown.popen("apply", "--lock-timeout", "20")
        time.sleep(0.5)  # let it start waiting; nothing may be written meanwhile
        assert waiting.poll() is None and vtown.client.zcard(vtown.keys.tasks) == 0
        vtown.client.delete(vtown.keys.apply_lock)
        out, err = waiting.communicate(timeout=30)
        assert waiting.returncode == 0, err
        assert "Applied: 6 to create" in out

        hold_lock(vtown, sleeper.pid)
        refused = vtown.tt("unlock")  # its holder is alive: not without --force
        assert refused.returncode == 1 and "its process is alive: not removed" in refused.stderr
        assert "tt unlock --force" in refused.stderr
        assert vtown.client.exists(vtown.keys.apply_lock)
        out = vtown.ok("unlock", "--force")
        assert (
            out.strip()
            == f"removed the lock of tt apply (pid {sleeper.pid} on {socket.gethostname()})"
        )
        assert vtown.ok("unlock").strip() == "no lock was held"
        assert vtown.ok("apply").strip() == "Everything up to date"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_plan_waits_out_a_running_apply_instead_of_failing(vtown: Town) -> None:
    # A plan writes nothing: it waits for a watcher's pass (usually milliseconds) by default
    # (10 s), where an apply fails at once naming the holder; --lock-timeout sets the wait.
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        hold_lock(vtown, sleeper.pid, "tt conductor")
        started = time.monotonic()
        failed = vtown.tt("plan", "--lock-timeout", "0")
        at_once = time.monotonic() - started  # a whole tt process that does not wait
        assert failed.returncode == 1
        assert "another apply holds the town's lock: tt conductor" in failed.stderr
        started = time.monotonic()
        waited = vtown.tt("plan", "--lock-timeout", "2")
        assert waited.returncode == 1 and time.monotonic() - started >= 2.0, waited.stderr

        waiting = vtown.popen("plan")  # the default: still waiting well past a process's time
        began = time.monotonic()
        wait_for(lambda: time.monotonic() - began > min(2 * at_once + 1, 8), 10)
        assert waiting.poll() is None
        vtown.client.delete(vtown.keys.apply_lock)
        out, err = waiting.communicate(timeout=30)
        assert waiting.returncode == 0, err
        assert "Plan: 6 to create" in out
        assert vtown.client.zcard(vtown.keys.tasks) == 0  # a plan
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_lock_left_by_a_dead_process_does_not_block_the_next_apply(vtown: Town) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    hold_lock(vtown, dead.pid)
    out = vtown.ok("apply")
    assert "Applied: 6 to create" in out
    assert not vtown.client.exists(vtown.keys.apply_lock)


def test_a_verb_waits_for_a_running_apply_instead_of_failing(vtown: Town) -> None:
    vtown.ok("apply")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        hold_lock(vtown, sleeper.pid)
        proc = vtown.popen("assign", "dev", "Queued behind the lock")
        wait_for(lambda: "t-queued-behind-the-lock" in vtown.tasks_file.read_text())
        assert proc.poll() is None  # the file is edited; its apply waits for the lock
        vtown.client.delete(vtown.keys.apply_lock)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert vtown.tasks()["t-queued-behind-the-lock"]["state"] == "ready"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_two_applies_started_together_never_interleave(vtown: Town) -> None:
    (vtown.root / "tasks.toml").write_text(tasks_toml(2000, backlog=10))
    procs = [vtown.popen("apply", *extra) for extra in ((), ())]
    results = [(p.wait(timeout=60), *p.communicate()) for p in procs]
    winners = [r for r in results if r[0] == 0 and "Applied: 2001 to create" in r[1]]
    assert len(winners) == 1, results
    [(code, out, err)] = [r for r in results if r not in winners]
    winner_pid = procs[results.index(winners[0])].pid
    # The other one waited its turn and found nothing to do, or failed naming the holder.
    if code == 0:
        assert out.strip() == "Everything up to date"
    else:
        assert (
            code == 1 and f"another apply holds the town's lock: tt apply (pid {winner_pid}" in err
        )
    assert len(vtown.events("apply")) == 1
    assert vtown.client.zcard(vtown.keys.tasks) == 2000

    # With --lock-timeout both finish; still exactly one of them writes.
    vtown.tasks_file.write_text(
        vtown.tasks_file.read_text().replace("backlog item 3", "item three")
    )
    procs = [vtown.popen("apply", "--lock-timeout", "60", "-o", "json") for _ in range(2)]
    plans = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        plans.append(json.loads(out))
    assert sorted(p["counts"].get("update_task", 0) for p in plans) == [0, 1]
    assert len(vtown.events("apply")) == 2


# -- kill -9 in the middle of a 10,000-task apply ----------------------------------------------


def test_kill_9_in_the_middle_of_a_10000_task_apply_then_rerun_converges(town: Town) -> None:
    write_town(town.root, town.name, 10_000, backlog=20)
    ids = set(re.findall(r'^id = "([^"]+)"$', town.tasks_file.read_text(), re.M))
    assert len(ids) == 10_000
    paused = False
    proc = town.popen("apply")
    try:
        # Kill it once some batches are in Redis and before the last one is.
        wait_for(
            lambda: town.client.zcard(town.keys.tasks) > 0 or proc.poll() is not None, 60, 0.001
        )
        if town.url.startswith("unix://"):
            # The session's own Valkey: hold writes, so the kill surely lands mid-apply.
            town.client.execute_command("CLIENT", "PAUSE", "10000", "WRITE")
            paused = True
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if paused:
            town.client.execute_command("CLIENT", "UNPAUSE")
    assert proc.returncode == -signal.SIGKILL
    partial = town.client.zcard(town.keys.tasks)
    assert 0 < partial < 10_000, "the kill did not land in the middle of the apply"
    assert town.client.exists(town.keys.apply_lock)  # the killed apply's lock is left behind

    out = town.ok("apply")
    assert f"Applied: {10_000 - partial} to create, 0 to change, 0 to delete" in out
    assert_consistent(town, ids)  # no duplicate, no missing task, every ready one queued once
    assert town.ok("apply").strip() == "Everything up to date"
