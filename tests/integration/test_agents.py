"""Agents that really run (issue 4): the seed tutorial command for command on the offline sim
model, then fake model scripts for a failure, a timeout, dependents, a restart and adoption.

Each test has its own town (embedded server) in tmp_path. The finaliser stops conductors, runs
`tt down`, then kills by pid any agent or model process of the town still alive (never by name).
Waiting is deadline-bounded polling on `tt status -o json`, never a bare sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler import server
from reconciler.town import TownPaths
from tests.redis_cluster import LocalCluster
from tests.spec.test_loader import SEED_TASKS

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="finds processes through /proc"),
]

_script = Path(sys.executable).with_name("tt")
TT = [str(_script)] if _script.exists() else [sys.executable, "-m", "cli"]
Status = dict[str, Any]


def pid_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 :][:1] in (b"Z", b"X")


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


class Town:
    """A town folder and the `tt` commands run in it (cwd = the town, as in the tutorial)."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.conductors: list[subprocess.Popen[bytes]] = []
        self.pids: set[int] = set()  # agent and model processes to make sure of at the end
        self.cluster: LocalCluster | None = None  # the Redis Cluster it runs on, if not its own

    def tt(
        self, *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*TT, *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        if check:
            assert done.returncode == 0, f"tt {' '.join(args)}: {done.stdout}{done.stderr}"
        return done

    def status(self) -> Status:
        data: Status = json.loads(self.tt("status", "-o", "json").stdout)
        return data

    def tasks(self) -> dict[str, dict[str, Any]]:
        return {t["id"]: t for t in self.status()["tasks"]}

    def agents(self) -> dict[str, dict[str, Any]]:
        rows = json.loads(self.tt("list", "-o", "json").stdout)
        found = {r["name"]: r for r in rows}
        self.pids |= {r["pid"] for r in rows if r["pid"]}
        return found

    def wait(self, condition: Callable[[Status], bool], timeout: float = 30.0) -> Status:
        """Poll `tt status -o json` until `condition` holds; fail with the last status."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if condition(st):
                return st
            if time.monotonic() > deadline:
                pytest.fail(f"condition not met in {timeout}s; status: {json.dumps(st)[:3000]}")
            time.sleep(0.05)

    def wait_states(self, want: dict[str, str], timeout: float = 30.0) -> dict[str, Any]:
        def reached(st: Status) -> bool:
            states = {t["id"]: t["state"] for t in st["tasks"]}
            return all(states.get(tid) == s for tid, s in want.items())

        return {t["id"]: t for t in self.wait(reached, timeout)["tasks"]}

    def start_conductor(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.root / f"conductor-{len(self.conductors)}.out", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [*TT, "conductor"],
            cwd=self.root,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.conductors.append(proc)
        path = Path(log.name)
        until(lambda: b"leader" in path.read_bytes(), 20, f"conductor leads: {path}")
        return proc

    def stop_conductor(self, proc: subprocess.Popen[bytes]) -> int:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            # Still running: its threads' stacks (SIGQUIT) go to its log, shown with the failure.
            path = self.root / f"conductor-{self.conductors.index(proc)}.out"
            proc.send_signal(signal.SIGQUIT)
            deadline = time.monotonic() + 5
            while b"most recent call first" not in path.read_bytes():
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            proc.kill()
            proc.wait(timeout=10)
            log = path.read_text()[-6000:]
            raise AssertionError(f"tt conductor did not stop on SIGINT in 20 s:\n{log}") from None

    def agent_processes(self) -> dict[str, list[int]]:
        """name → pids of live `tt agent run NAME --town THIS` processes (the pid list)."""
        found: dict[str, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or pid_gone(int(entry.name)):
                continue
            argv = cmdline(int(entry.name))
            if "agent" in argv and "run" in argv and str(self.root) in argv:
                name = argv[argv.index("run") + 1]
                found.setdefault(name, []).append(int(entry.name))
        return found

    def all_events(self) -> list[dict[str, str]]:
        out = self.tt("events", "-n", "100000", "-o", "json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def cleanup(self) -> None:
        for proc in self.conductors:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if (self.root / "town.toml").exists():
            with contextlib.suppress(AssertionError):
                self.agents()
            self.tt("down", check=False)
        for pid in self.pids:
            # By pid, and only if it still is one of this town's processes.
            if not pid_gone(pid) and any(str(self.root) in a for a in cmdline(pid)):
                os.kill(pid, signal.SIGKILL)


def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not in {timeout}s: {what}"
        time.sleep(0.05)


@pytest.fixture
def town(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Town]:
    """A town on its embedded server, or (parametrized indirectly with `cluster`) on the local
    Redis Cluster of `redis_cluster`, through TT_REDIS_URL as a user would point it there."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TT_")}
    env.update({"NO_COLOR": "1"})
    cluster = None
    if getattr(request, "param", "embedded") == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        env["TT_REDIS_URL"] = cluster.url
    root = tmp_path / "town"
    root.mkdir()
    t = Town(root, env)
    t.cluster = cluster
    try:
        yield t
    finally:
        t.cleanup()
        if cluster is not None:
            cluster.flush()


def asked(log: Path) -> str:
    """The prompt an agent gave its model, from the head of the attempt's log."""
    head = log.read_text().split("--- prompt ---\n", 1)[1]
    return head.split("--- output ---\n", 1)[0]


def interval(task: dict[str, Any]) -> tuple[float, float]:
    return float(task["started_at"]), float(task["finished_at"])


# -- the seed tutorial, command for command --------------------------------------------------------


def assigned_id(done: subprocess.CompletedProcess[str]) -> str:
    match = re.search(r"assigned (\S+) to", done.stdout)
    assert match, done.stdout
    return match.group(1)


@pytest.mark.parametrize("town", ["embedded", "cluster"], indirect=True)
def test_seed_tutorial_command_for_command_on_sim(town: Town) -> None:
    # Every agent runs the offline model. Runs take 0.2 s, except where the tutorial needs a
    # run to last: the parallel/fan-out agents (2 s, and held by the gate below until all three
    # run) and the reviewer (3 s: both messages arrive while it reviews). Agents inherit the
    # environment of whichever `tt` starts them; the conductor and the later spawns use 2 s.
    town.env["TT_MODEL_OVERRIDE"] = "sim"
    town.env["TT_SIM_DELAY"] = "2"
    fast, slow = {"TT_SIM_DELAY": "0.2"}, {"TT_SIM_DELAY": "3"}
    # Every run first waits for the gate file: open (present) except where the tutorial shows
    # runs at the same time; there it opens once all of them are assigned, so the overlap
    # holds however slowly a loaded machine issues the `tt assign`s.
    gate = town.root.parent / "sim-gate"
    gate.touch()
    town.env["TT_SIM_GATE"] = str(gate)

    # Setup and the team.
    town.tt("init", "--name", "multi-demo")
    town.tt("spawn", "architect", "--model", "claude", env=fast)
    town.tt("spawn", "developer", "--model", "auggie", env=fast)
    town.tt("spawn", "tester", "--model", "codex", env=fast)
    town.tt("spawn", "reviewer", "--model", "claude", env=slow)
    listed = town.tt("list").stdout
    for name, model in [
        ("architect", "claude"),
        ("developer", "auggie"),
        ("tester", "codex"),
        ("reviewer", "claude"),
    ]:
        # What runs, and what town.toml names (TT_MODEL_OVERRIDE replaced it).
        assert re.search(rf"^{name}\s+sim \({model} overridden\)\s", listed, re.M), listed
    team = town.agents()
    assert all(not pid_gone(a["pid"]) for a in team.values())

    # Sequential pipeline with tasks.toml, then the conductor.
    (town.root / "tasks.toml").write_text(SEED_TASKS)  # the tutorial's tasks.toml
    town.tt("sync", "push")
    conductor = town.start_conductor()
    tasks = town.wait_states(dict.fromkeys(("design", "implement", "test"), "completed"))
    design, implement, test = (interval(tasks[t]) for t in ("design", "implement", "test"))
    assert design[1] <= implement[0] and implement[1] <= test[0], tasks
    assert [tasks[t]["agent"] for t in ("design", "implement", "test")] == [
        "architect",
        "developer",
        "tester",
    ]
    # The result of a task reaches the prompt of the one that depends on it.
    prompt = asked(town.root / ".tt/logs/developer/implement-1.log")
    assert "### design (by architect)" in prompt and "architect (sim) finished" in prompt

    # Parallel execution: the three assigned tasks run at the same time.
    for name, model in [("frontend", "claude"), ("backend", "auggie"), ("docs", "codex")]:
        town.tt("spawn", name, "--model", model)
    gate.unlink()
    ids = [
        assigned_id(town.tt("assign", agent, text))
        for agent, text in [
            ("frontend", "Build the login UI"),
            ("backend", "Build the auth API"),
            ("docs", "Write API documentation"),
        ]
    ]
    assert "frontend" in town.tt("status").stdout
    town.wait_states(dict.fromkeys(ids, "running"))  # each claimed while the others run
    gate.touch()
    tasks = town.wait_states(dict.fromkeys(ids, "completed"))
    runs = [interval(tasks[i]) for i in ids]
    assert max(s for s, _ in runs) < min(f for _, f in runs), runs  # a moment all three ran
    assert [tasks[i]["agent"] for i in ids] == ["frontend", "backend", "docs"]

    # Fan-out / fan-in.
    for i in (1, 2, 3):
        town.tt("spawn", f"worker-{i}", "--model", "claude")
    again = town.tt("spawn", "reviewer", "--model", "claude", check=False)
    # The tutorial spawns the reviewer a second time: the town already has it, unchanged.
    assert again.returncode == 0, again.stderr  # the same spec again changes nothing
    gate.unlink()
    workers = [
        assigned_id(town.tt("assign", f"worker-{i}", f"Implement module {m}"))
        for i, m in ((1, "A"), (2, "B"), (3, "C"))
    ]
    assert "worker-3" in town.tt("status").stdout
    town.wait_states(dict.fromkeys(workers, "running"))
    gate.touch()
    tasks = town.wait_states(dict.fromkeys(workers, "completed"))
    runs = [interval(tasks[i]) for i in workers]
    assert max(s for s, _ in runs) < min(f for _, f in runs), runs  # fan-out ran in parallel
    gate.unlink()  # both messages arrive while the reviewer reviews
    review = assigned_id(
        town.tt("assign", "reviewer", "Review modules A, B, and C for consistency")
    )
    town.wait_states({review: "running"})

    # Agent-to-agent communication, while the reviewer reviews.
    town.tt("send", "reviewer", "Auth API implementation complete. Ready for review.")
    town.tt("send", "reviewer", "--urgent", "Critical bug found in module A!")
    gate.touch()
    tasks = town.wait_states({review: "completed"})
    assert interval(tasks[review])[0] >= max(f for _, f in runs)  # after all three workers
    until(
        lambda: any(e["type"] == "message.answered" for e in town.all_events()),
        15,
        "the reviewer answers its messages",
    )
    # Both were read in the reviewer's next turn, the urgent one first although sent second.
    turns = sorted((town.root / ".tt/logs/reviewer").glob("msg-*.log"))
    assert len(turns) == 1, turns
    text = asked(turns[0])
    urgent = text.index("URGENT from conductor: Critical bug found in module A!")
    normal = text.index("from conductor: Auth API implementation complete. Ready for review.")
    assert urgent < normal, text
    events = [e for e in town.all_events() if e.get("agent") == "reviewer"]
    sent = [e["urgent"] for e in events if e["type"] == "message.sent"]
    read = [(e["count"], e["first"]) for e in events if e["type"] == "message.read"]
    assert sent == [False, True] and read == [(1, "urgent"), (1, "normal")], events
    answers = json.loads(town.tt("inbox", "conductor", "-o", "json").stdout)
    assert [a["from"] for a in answers] == ["reviewer"]

    # Ctrl-C stops the conductor and leaves the agents running: none was restarted, none twice.
    assert town.stop_conductor(conductor) == 0
    agents = town.agents()
    assert {n: a["pid"] for n, a in agents.items() if n in team} == {
        n: a["pid"] for n, a in team.items()
    }
    assert all(a["restarts"] == 0 and a["state"] == "idle" for a in agents.values()), agents
    procs = town.agent_processes()
    assert sorted(procs) == sorted(agents) and all(len(p) == 1 for p in procs.values()), procs
    assert {n: p[0] for n, p in procs.items()} == {n: a["pid"] for n, a in agents.items()}
    if town.cluster is not None:
        # All of it ran on the cluster, every key of the town on the node serving its slot.
        assert server.status(TownPaths(town.root)) is None  # no embedded server started
        assert len(town.cluster.town_keys("multi-demo")) == 1

    town.tt("down")
    until(lambda: not town.agent_processes(), 10, "tt down stops every agent")


# -- fake model scripts ----------------------------------------------------------------------------

RECORDER = """\
import json, os, re, sys, time
prompt = sys.stdin.read()
attempt = int(os.environ["TT_ATTEMPT"])
rec = {"task": os.environ["TT_TASK"], "agent": os.environ["TT_AGENT"], "attempt": attempt,
       "pid": os.getpid(), "agent_pid": os.getppid(), "start": time.time(), "prompt": prompt}
with open(RECORD, "a") as f:
    f.write(json.dumps({**rec, "event": "start"}) + "\\n")
hold = re.search(r"hold-first:([0-9.]+)", prompt) if attempt == 1 else None
hold = hold or re.search(r"hold:([0-9.]+)", prompt)
time.sleep(float(hold.group(1)) if hold else 0.05)
gate = re.search(r"wait-for:([\\w.-]+)", prompt)  # holds until the test makes that file
deadline = time.monotonic() + 300
while gate and not os.path.exists(os.path.join(os.path.dirname(RECORD), gate.group(1))):
    if time.monotonic() > deadline:
        sys.exit("wait-for: no " + gate.group(1))
    time.sleep(0.05)
with open(RECORD, "a") as f:
    f.write(json.dumps({**rec, "event": "end", "end": time.time()}) + "\\n")
print(f"result of {rec['task']} by {rec['agent']}")
"""

FAILER = """\
import sys
sys.stdin.read()
print("compiling the auth module")
print("fatal: cannot write /nonexistent/auth.py", file=sys.stderr)
sys.exit(3)
"""

HANGER = """\
import os, signal, subprocess, sys, time
sys.stdin.read()
grandchild = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
    PIDS])  # the town's path in its argv: the finaliser may kill it by pid
with open(PIDS, "w") as f:
    f.write(f"{os.getpid()} {grandchild.pid}\\n")
time.sleep(600)
"""


def fake_town(town: Town, agents: dict[str, str], tasks: str, policy: str = "") -> None:
    """town.toml with the fake models (scripts in the town's folder) and the given agents."""
    scripts = {
        "recorder": RECORDER.replace("RECORD", repr(str(town.root / "runs.jsonl"))),
        "failer": FAILER,
        "hanger": HANGER.replace("PIDS", repr(str(town.root / "hang.pids"))),
    }
    lines = ["[town]", 'name = "fakes"', policy, ""]
    for name, body in scripts.items():
        path = town.root / f"{name}.py"
        path.write_text(body)
        lines += [
            f"[models.{name}]",
            f"command = [{json.dumps(sys.executable)}, {json.dumps(str(path))}]",
            'prompt = "stdin"',
            "",
        ]
    for name, model in agents.items():
        lines += [f"[agents.{name}]", f'model = "{model}"', ""]
    (town.root / "town.toml").write_text("\n".join(lines))
    (town.root / "tasks.toml").write_text(tasks)


def runs(town: Town) -> list[dict[str, Any]]:
    path = town.root / "runs.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_failure_shows_the_models_stderr_in_status(town: Town) -> None:
    tasks = '[[tasks]]\nid = "build"\ndescription = "build it"\nagent = "dev"\nretries = 0\n'
    fake_town(town, {"dev": "failer"}, tasks)
    town.tt("apply")
    town.agents()
    tasks_now = town.wait_states({"build": "failed"})
    error = tasks_now["build"]["error"]
    assert error.startswith("exit code 3: ") and "fatal: cannot write /nonexistent/auth.py" in error
    assert "compiling" not in error  # stderr, not stdout, says why
    table = town.tt("status").stdout
    assert re.search(r"^build\s+failed\s+dev\s+1\s+exit code 3: fatal: cannot write", table, re.M)
    log = (town.root / ".tt/logs/dev/build-1.log").read_text()
    assert "[err] fatal: cannot write /nonexistent/auth.py" in log


def test_timeout_kills_the_whole_process_tree(town: Town) -> None:
    tasks = (
        '[[tasks]]\nid = "stuck"\ndescription = "never ends"\nagent = "dev"\n'
        'timeout = "2s"\nretries = 0\n'
    )
    fake_town(town, {"dev": "hanger"}, tasks)
    town.tt("apply")
    town.agents()
    pid_file = town.root / "hang.pids"
    until(pid_file.exists, 15, "the model starts")
    model, grandchild = (int(p) for p in pid_file.read_text().split())
    town.pids |= {model, grandchild}
    # (The pid file proves both started; on a loaded machine the 2 s timeout may already have
    # killed them by now, so their being alive is not asserted.)
    task = town.wait_states({"stuck": "failed"}, timeout=20)["stuck"]
    assert task["error"].startswith("timed out after 2s")
    start, end = interval(task)
    assert 2.0 <= end - start < 8.0
    # No orphan: the model and the grandchild (which ignores SIGTERM) are both gone.
    until(lambda: pid_gone(model) and pid_gone(grandchild), 5, "the process tree is killed")
    assert town.agents()["dev"]["state"] == "idle"


def test_completion_releases_dependents(town: Town) -> None:
    tasks = """\
[[tasks]]
id = "design"
description = "design hold:0.5"
agent = "architect"
[[tasks]]
id = "backend"
description = "backend"
agent = "dev"
parent = "design"
[[tasks]]
id = "frontend"
description = "frontend"
agent = "ui"
parent = "design"
[[tasks]]
id = "review"
description = "review both"
agent = "architect"
depends_on = ["backend", "frontend"]
"""
    fake_town(town, {"architect": "recorder", "dev": "recorder", "ui": "recorder"}, tasks)
    town.tt("apply")
    town.agents()
    done = town.wait_states(dict.fromkeys(("design", "backend", "frontend", "review"), "completed"))
    started = {r["task"]: r["start"] for r in runs(town) if r["event"] == "start"}
    design_done = done["design"]["finished_at"]
    assert started["backend"] >= design_done and started["frontend"] >= design_done
    assert started["review"] >= max(done["backend"]["finished_at"], done["frontend"]["finished_at"])
    # Each dependent's prompt carries the results it waited for.
    prompts = {r["task"]: r["prompt"] for r in runs(town) if r["event"] == "start"}
    assert "result of design by architect" in prompts["backend"]
    assert "result of backend by dev" in prompts["review"]
    assert "result of frontend by ui" in prompts["review"]
    assert done["design"]["result"] == "result of design by architect"
    assert all(t["attempts"] == 1 for t in done.values())


def test_restarted_agent_picks_up_its_queue(town: Town) -> None:
    tasks = "".join(
        f'[[tasks]]\nid = "q{i}"\ndescription = "{d}"\nagent = "dev"\n'
        for i, d in ((1, "first hold-first:60"), (2, "second"), (3, "third"))
    )
    fake_town(town, {"dev": "recorder"}, tasks)
    town.tt("apply")
    old = town.agents()["dev"]["pid"]
    town.wait_states({"q1": "running", "q2": "ready", "q3": "ready"})
    until(lambda: any(r["task"] == "q1" for r in runs(town)), 10, "q1's model starts")
    first_model = runs(town)[0]["pid"]
    town.pids.add(first_model)

    town.tt("restart", "dev")
    done = town.wait_states(dict.fromkeys(("q1", "q2", "q3"), "completed"))
    new = town.agents()["dev"]["pid"]
    assert new != old and pid_gone(old) and pid_gone(first_model)
    ends = [r for r in runs(town) if r["event"] == "end"]
    assert [(r["task"], r["agent_pid"]) for r in ends] == [("q1", new), ("q2", new), ("q3", new)]
    assert done["q1"]["attempts"] == 2  # the interrupted attempt was handed back, not failed
    assert town.agent_processes() == {"dev": [new]}
    # Stopped the one way every stop goes (fleet.stop_agent): recorded, by whom and why.
    stops = [
        e for e in town.all_events() if e["type"] == "agent.stopped" and e.get("agent") == "dev"
    ]
    assert [e["reason"] for e in stops] == ["restarted by tt restart"], stops


def test_killed_agent_is_restarted_and_loses_no_task(town: Town) -> None:
    tasks = "".join(
        f'[[tasks]]\nid = "q{i}"\ndescription = "{d}"\nagent = "dev"\n'
        for i, d in ((1, "first hold-first:60"), (2, "second"))
    )
    fake_town(
        town,
        {"dev": "recorder"},
        tasks,
        policy='heartbeat = "0.5s"\nlease = "2s"\nrestart_backoff = "0.5s"',
    )
    town.tt("apply")
    conductor = town.start_conductor()
    old = town.agents()["dev"]["pid"]
    until(lambda: any(r["task"] == "q1" for r in runs(town)), 10, "q1's model starts")
    first_model = runs(town)[0]["pid"]
    town.pids.add(first_model)

    os.kill(old, signal.SIGKILL)
    done = town.wait_states(dict.fromkeys(("q1", "q2"), "completed"), timeout=30)
    new = town.agents()["dev"]["pid"]
    assert new != old
    assert done["q1"]["attempts"] == 2
    # The dead agent's model process does not run on beside the new attempt.
    until(lambda: pid_gone(first_model), 5, "the dead agent's model is killed")
    assert town.agent_processes() == {"dev": [new]}
    assert town.stop_conductor(conductor) == 0


def test_restarting_the_conductor_adopts_running_agents(town: Town) -> None:
    tasks = (
        '[[tasks]]\nid = "long"\ndescription = "long wait-for:release"\nagent = "dev"\n'
        '[[tasks]]\nid = "after"\ndescription = "after"\nagent = "ops"\nparent = "long"\n'
    )
    fake_town(town, {"dev": "recorder", "ops": "recorder"}, tasks)
    first = town.start_conductor()
    # "long" holds until the file `release` exists: it is mid-task across the restart however
    # slowly a loaded machine runs the conductors and `tt status`.
    town.wait_states({"long": "running"})
    before = {n: a["pid"] for n, a in town.agents().items()}
    spawned = sum(e["type"] == "agent.spawned" for e in town.all_events())
    assert town.stop_conductor(first) == 0

    second = town.start_conductor()
    log = town.root / f"conductor-{len(town.conductors) - 1}.out"
    until(lambda: b"up to date" in log.read_bytes(), 30, "the second conductor's first pass")
    assert town.tasks()["long"]["state"] == "running"  # adopted mid-task, not handed back
    (town.root / "release").touch()
    done = town.wait_states({"long": "completed", "after": "completed"})
    # The mid-task agent kept its task (one attempt) and nothing was started again.
    assert done["long"]["attempts"] == 1 and done["after"]["attempts"] == 1
    agents = town.agents()
    assert {n: a["pid"] for n, a in agents.items()} == before
    assert all(a["restarts"] == 0 for a in agents.values())
    assert sum(e["type"] == "agent.spawned" for e in town.all_events()) == spawned
    assert town.agent_processes() == {n: [p] for n, p in before.items()}
    assert town.stop_conductor(second) == 0


def test_a_failure_upstream_is_shown_counted_and_re_armed_by_retrying_it(town: Town) -> None:
    # a → b → c, and a fails its first attempt (no retries): b and c can never run as things
    # stand. `tt retry a` runs a again, and the pipeline completes.
    (town.root / "town.toml").write_text(
        '[town]\nname = "upstream"\nretries = 0\n\n[agents.dev]\nmodel = "sim"\n'
    )
    (town.root / "tasks.toml").write_text(
        '[[tasks]]\nid = "a"\ndescription = "build [sim:fail:1]"\nagent = "dev"\n\n'
        '[[tasks]]\nid = "b"\ndescription = "test"\nagent = "dev"\nparent = "a"\n\n'
        '[[tasks]]\nid = "c"\ndescription = "ship"\nagent = "dev"\nparent = "b"\n'
    )
    town.env["TT_SIM_DELAY"] = "0.1"
    waited = town.tt("apply", "--wait", "--timeout", "60s", "-o", "json", check=False)
    town.agents()
    assert waited.returncode == 1, waited.stdout + waited.stderr  # as for any failure
    result = json.loads(waited.stdout)
    assert result["outcome"] == "failed"
    failed = {f["id"]: (f["state"], f["upstream"]) for f in result["failed"]}
    assert failed == {
        "a": ("failed", None),
        "b": ("upstream_failed", "a"),
        "c": ("upstream_failed", "a"),
    }
    tasks = town.tasks()
    assert [(tasks[t]["state"], tasks[t]["upstream"]) for t in "bc"] == [
        ("upstream_failed", "a")
    ] * 2
    assert town.status()["counts"]["upstream_failed"] == 2
    table = town.tt("status").stdout
    assert re.search(r"^c\s+upstream_failed\s+dev\s+0\s+upstream a failed", table, re.M), table
    refused = town.tt("retry", "b", check=False)
    assert refused.returncode == 1 and "hint: tt retry a" in refused.stderr
    town.tt("retry", "a")
    assert town.tt("wait", "--timeout", "60s").returncode == 0
    assert {t["state"] for t in town.tasks().values()} == {"completed"}
