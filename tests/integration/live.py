"""A live town for failure-injection tests and benchmarks: its files, `tt` runs, watcher processes
started and killed with SIGKILL, direct reads of its Redis (records, events, attempts), and a
finaliser that leaves no process behind.

Processes are only ever signalled by pid, and only after checking that the pid still is one of
this town's (its working folder is the town, or the server's data folder).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar

import redis

from reconciler import server
from reconciler.errors import RedisUnavailable
from reconciler.store.client import Store
from reconciler.town import TownPaths

T = TypeVar("T")
TT = [sys.executable, "-m", "cli"]
POLL = 0.02


def alive(pid: int) -> bool:
    """Running and not a zombie (a killed child of a killed watcher may never be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


def cwd_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def until(condition: Callable[[], T | Literal[False] | None], timeout: float, what: str) -> T:
    """Poll `condition` until it returns something truthy; fail naming `what` at the deadline.
    A Redis outage (a test that restarts the server) counts as "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (RedisUnavailable, redis.ConnectionError, redis.TimeoutError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        time.sleep(POLL)


class LiveTown:
    def __init__(self, root: Path, *, sim_delay: float = 0.1, redis_url: str | None = None) -> None:
        """`redis_url`: the server every `tt` of the town uses (TT_REDIS_URL, e.g. a node of a
        Redis Cluster); None: the town's embedded one."""
        self.root = root
        self.paths = TownPaths(root)
        self.redis_url = redis_url
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TT_")}
        self.env.update({"NO_COLOR": "1", "TT_SIM_DELAY": str(sim_delay)})
        if redis_url is not None:
            self.env["TT_REDIS_URL"] = redis_url
        self.watchers: list[subprocess.Popen[bytes]] = []
        self.pids: set[int] = set()  # every agent and model pid seen, checked at the end
        self.name = ""

    # -- files and commands -----------------------------------------------------------------
    def write(self, town: str, tasks: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "town.toml").write_text(town)
        (self.root / "tasks.toml").write_text(tasks)
        self.name = town.split('name = "', 1)[1].split('"', 1)[0]

    def save(self, name: str, text: str) -> None:
        """Save a file the way editors do: a temp file renamed over it."""
        tmp = self.root / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.root / name)

    def tt(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*TT, *args, "--town", str(self.root)],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def start_watcher(self, verb: str = "watch", *args: str) -> subprocess.Popen[bytes]:
        """`tt watch` (or `conductor`, with `args`) as its own process, its output in a file of
        the town."""
        out = self.root / f"{verb}-{len(self.watchers)}.log"
        with open(out, "wb") as log:
            proc = subprocess.Popen(
                [*TT, verb, *args, "--town", str(self.root)],
                cwd=self.root,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.watchers.append(proc)
        return proc

    def log_of(self, proc: subprocess.Popen[bytes]) -> str:
        i = self.watchers.index(proc)
        found = list(self.root.glob(f"*-{i}.log"))
        return found[0].read_text(errors="replace") if found else ""

    def kill_watcher(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def kill(self, pid: int) -> bool:
        """SIGKILL one agent (or model) process of this town; False when it was gone already
        (a record read before its death was noticed still names it)."""
        if alive(pid) and cwd_of(pid) == str(self.root.resolve()):
            os.kill(pid, signal.SIGKILL)
            return True
        return False

    # -- Redis ----------------------------------------------------------------------------------
    @cached_property
    def store(self) -> Store:
        return Store.open(self.redis_url or server.ensure_running(self.paths), self.name)

    def agents(self) -> dict[str, dict[str, str]]:
        records = self.store.agent_records()
        for rec in records.values():
            for key in ("pid", "model_pid"):
                if rec.get(key, "").isdigit():
                    self.pids.add(int(rec[key]))
        return records

    def tasks(self) -> dict[str, dict[str, str]]:
        return {r["id"]: r for r in self.store.task_records()}

    def states(self) -> Counter[str]:
        return Counter(r.get("state", "") for r in self.store.task_records())

    def events(self, etype: str | None = None) -> list[dict[str, str]]:
        got = [{"id": i, **f} for i, f in self.store.events_since("-", count=1_000_000)]
        return [e for e in got if etype is None or e.get("type") == etype]

    def attempts(self, task_id: str) -> list[dict[str, Any]]:
        return self.store.attempt_history(task_id)

    def live_agents(self) -> dict[str, int]:
        """name → pid of the agents whose process runs now."""
        return {
            n: int(r["pid"])
            for n, r in self.agents().items()
            if r.get("pid", "").isdigit() and alive(int(r["pid"]))
        }

    def kill_server(self) -> int:
        """SIGKILL the town's embedded server; returns its pid."""
        pid = self.server_pid()
        assert cwd_of(pid) == str(self.paths.data_dir.resolve())
        os.kill(pid, signal.SIGKILL)
        return pid

    def server_pid(self) -> int:
        st = server.status(self.paths)
        assert st is not None, "the town's server is not running"
        return st.pid

    # -- the end ----------------------------------------------------------------------------------
    def cleanup(self) -> None:
        for proc in self.watchers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
        if (self.root / "town.toml").exists():
            try:
                self.agents()
                for e in self.events():
                    if e.get("pid", "").isdigit() and e.get("type", "").startswith("agent."):
                        self.pids.add(int(e["pid"]))
            except Exception:  # the server may be the thing the test broke; `tt down` below
                pass
            if "store" in self.__dict__:
                self.store.close()
            self.tt("down", timeout=60)
        mine = str(self.root.resolve())
        for pid in self.pids:
            if alive(pid) and cwd_of(pid) == mine:
                os.kill(pid, signal.SIGKILL)
        pid_file = self.paths.state_dir / "valkey.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().strip() or 0)
            if pid and alive(pid) and cwd_of(pid) == str(self.paths.data_dir.resolve()):
                os.kill(pid, signal.SIGKILL)


@contextmanager
def live_town(root: Path, **kw: Any) -> Iterator[LiveTown]:
    town = LiveTown(root, **kw)
    try:
        yield town
    finally:
        town.cleanup()
