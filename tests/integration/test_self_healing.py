"""Self-healing under injected failures (issue 5): real Valkey, real agent processes on the sim
model, `tt watch` / `tt conductor` as processes killed with SIGKILL.

- agents kill -9'd at random while 200 dependent tasks run, and the watcher killed and restarted
  twice: every task completes with exactly one successful attempt, none lost or duplicated;
- the embedded server kill -9'd mid-run: it is restarted from its AOF and the run completes;
- a flaky model succeeds on its third attempt after visible backoff, a failing one ends failed
  after retries + 1 attempts, a timeout kills the model's whole process tree; `tt wait` exits
  0 / 1 / 3;
- two watchers on one town: only the leader writes; kill it and the other leads within the lease,
  adopting the healthy agents;
- the chaos run, those two and a killed agent's task also on a local Redis Cluster
  (`town_redis`);
- an invalid edit keeps the last good state; a crash loop ends in quarantine.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.live import LiveTown, alive, live_town, until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="checks processes through /proc"),
]

LEASE = 2.0


def town_toml(name: str, agents: str, **policy: object) -> str:
    knobs = {
        "heartbeat": "0.5s",
        "lease": f"{LEASE:g}s",
        "retry_backoff": "0.2s",
        "restart_backoff": "0.2s",
        "restart_backoff_max": "1s",
        "resync": "5s",
        **policy,
    }
    lines = [f'name = "{name}"'] + [
        f"{k} = {v}" if isinstance(v, int) else f'{k} = "{v}"' for k, v in knobs.items()
    ]
    return "[town]\n" + "\n".join(lines) + "\n\n" + agents


def task(tid: str, description: str, **fields: object) -> str:
    lines = ["[[tasks]]", f'id = "{tid}"', f'description = "{description}"']
    for k, v in fields.items():
        if isinstance(v, (list, tuple)):
            lines.append(f"{k} = [" + ", ".join(f'"{x}"' for x in v) + "]")
        elif isinstance(v, int):
            lines.append(f"{k} = {v}")
        else:
            lines.append(f'{k} = "{v}"')
    return "\n".join(lines) + "\n\n"


def dag(n: int, replicas: int, seed: int) -> str:
    """`n` tasks for a pool `worker`: each after one or two of the 30 before it; one in five
    names a replica (its own queue: it waits for that agent's restart when it is killed)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        fields: dict[str, object] = {"agent": "worker"}
        if rng.random() < 0.2:
            k = rng.randint(1, replicas)  # replica 1 is `worker` itself: its queue is the pool's
            fields["agent"] = f"worker-{k}" if k > 1 else "worker"
        if i >= replicas:
            picks = rng.sample(range(max(0, i - 30), i), k=rng.randint(1, 2))
            fields["depends_on"] = [f"t{d:03d}" for d in sorted(picks)]
        out.append(task(f"t{i:03d}", f"step {i} of the run", **fields))
    return "".join(out)


def assert_exactly_once(town: LiveTown, ids: list[str]) -> Counter[str]:
    """Every task completed, with one `task.completed` event and one completed attempt each;
    returns the outcomes of every attempt."""
    states = Counter(r.get("state") for r in town.tasks().values())
    assert states == Counter({"completed": len(ids)}), states
    completed = Counter(e["task"] for e in town.events("task.completed"))
    assert set(completed) == set(ids)
    assert {t: n for t, n in completed.items() if n != 1} == {}
    outcomes: Counter[str] = Counter()
    for tid in ids:
        attempts = town.attempts(tid)
        ok = [a for a in attempts if a["outcome"] == "completed"]
        assert len(ok) == 1, (tid, attempts)
        outcomes.update(a["outcome"] for a in attempts)
    return outcomes


def assert_dependencies_respected(town: LiveTown) -> None:
    """No attempt of a task started before all its dependencies had completed."""
    import json

    tasks = town.tasks()
    for tid, rec in tasks.items():
        deps = json.loads(rec.get("deps") or "[]")
        if not deps:
            continue
        ready_at = max(float(tasks[d]["finished_at"]) for d in deps)
        for a in town.attempts(tid):
            assert float(a["started_at"]) >= ready_at, (tid, a, deps)


# -- chaos ----------------------------------------------------------------------------------------


def test_agents_and_watcher_kill_9d_at_random_lose_and_duplicate_nothing(
    tmp_path: Path, town_redis: str | None
) -> None:
    n, replicas = 200, 6
    with live_town(tmp_path / "chaos", sim_delay=0.5, redis_url=town_redis) as town:
        agents = f'[agents.worker]\nmodel = "sim"\nreplicas = {replicas}\n'
        # Deaths come faster than Gastown's crash-loop rule allows: keep every agent restarting
        # (quarantine has its own test below).
        town.write(town_toml("chaos", agents, crash_loop_deaths=1000), dag(n, replicas, seed=5))
        watcher = town.start_watcher()
        rng = random.Random(7)
        agent_kills = watcher_kills = 0
        deadline = time.monotonic() + 120
        next_kill = time.monotonic() + 1.5
        while (done := town.states()["completed"]) < n:
            assert time.monotonic() < deadline, f"stuck at {town.states()}"
            if watcher_kills < 2 and done >= (watcher_kills + 1) * n // 3:
                town.kill_watcher(watcher)  # its agents work on; the next one adopts them
                watcher_kills += 1
                watcher = town.start_watcher()
            if time.monotonic() >= next_kill:
                working = [
                    int(r["pid"])
                    for r in town.agents().values()
                    if r.get("state") == "working" and r.get("pid", "").isdigit()
                ]
                # A kill counts only if it hit a live agent: a record that still says
                # `working` may name a process killed a moment ago.
                if working and town.kill(rng.choice(working)):
                    agent_kills += 1
                next_kill = time.monotonic() + rng.uniform(0.8, 2.0)
            time.sleep(0.05)
        wait = town.tt("wait", "--timeout", "30s")
        assert wait.returncode == 0, wait.stdout + wait.stderr

        outcomes = assert_exactly_once(town, [f"t{i:03d}" for i in range(n)])
        assert set(outcomes) <= {"completed", "handed back"}, outcomes
        assert watcher_kills == 2
        assert agent_kills >= 8, agent_kills
        crashed = [e for e in town.events("agent.exited") if e.get("reason") == "crashed"]
        assert len(crashed) >= agent_kills - 1  # the last kill may end with the run
        assert outcomes["handed back"] >= agent_kills // 2, (outcomes, agent_kills)
        assert_dependencies_respected(town)
        for proc in town.watchers:
            assert "Traceback" not in town.log_of(proc)


# -- the server ----------------------------------------------------------------------------------


def test_embedded_server_kill_9d_mid_run_restarts_from_its_aof_and_the_run_completes(
    tmp_path: Path,
) -> None:
    n = 60
    with live_town(tmp_path / "server", sim_delay=0.2) as town:
        agents = '[agents.worker]\nmodel = "sim"\nreplicas = 3\n'
        town.write(town_toml("aof", agents), dag(n, 3, seed=11))
        town.start_watcher()
        until(lambda: town.states()["completed"] >= n // 3, 60, "a third of the run")
        before = town.live_agents()
        assert len(before) == 3
        old = town.kill_server()
        # The watcher restarts it (AOF reloaded); agents wait it out instead of dying.
        until(lambda: town.states()["completed"] == n, 60, "the run completes after the restart")
        assert town.server_pid() != old
        outcomes = assert_exactly_once(town, [f"t{i:03d}" for i in range(n)])
        assert set(outcomes) <= {"completed", "handed back"}, outcomes
        assert town.live_agents() == before  # the same processes: none died
        assert [e for e in town.events("agent.exited") if e.get("reason") == "crashed"] == []
        log = town.log_of(town.watchers[0])
        assert "Redis is away" in log and "Redis answers again" in log, log[-2000:]
        assert "Traceback" not in log


# -- retries, backoff, timeouts, `tt wait` --------------------------------------------------------

# A model whose process starts a grandchild, notes both pids, and never answers.
TREE = (
    "import os, subprocess, sys, time; "
    'p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]); '
    'open("tree.pids", "w").write(str(os.getpid()) + " " + str(p.pid)); '
    "time.sleep(60)"
)


def test_retries_with_backoff_timeouts_and_wait_exit_codes(tmp_path: Path) -> None:
    agents = (
        '[agents.worker]\nmodel = "sim"\nreplicas = 2\n\n'
        '[agents.tree]\nmodel = "tree"\n\n'
        f'[models.tree]\ncommand = ["{{python}}", "-c", \'{TREE}\']\nprompt = "stdin"\n'
    )
    tasks = (
        task("flaky", "[sim:fail:2] works on the third try", agent="worker")
        + task("doomed", "[sim:fail] never works", agent="worker")
        + task("after-doomed", "never runs", agent="worker", depends_on=["doomed"])
        + task("slow", "hangs", agent="tree", timeout=1, retries=0)
    )
    with live_town(tmp_path / "retries", sim_delay=0.05) as town:
        town.write(town_toml("retries", agents, retry_backoff="0.3s"), tasks)
        run = town.tt("apply", "--wait", "--timeout", "60s")
        assert run.returncode == 1, run.stdout + run.stderr
        assert "failed: doomed: exit code 1" in run.stderr, run.stderr
        assert "failing attempt 3 as the task asks" in run.stderr
        assert "failed: slow: timed out after 1s" in run.stderr, run.stderr

        recs = town.tasks()
        assert recs["flaky"]["state"] == "completed"
        assert [a["outcome"] for a in town.attempts("flaky")] == ["failed", "failed", "completed"]
        # Backoff in the events: 0.3 s then 0.6 s (±10 % jitter), and no claim before it is due.
        retrying = [e for e in town.events("task.retrying") if e["task"] == "flaky"]
        claims = [e for e in town.events("task.claimed") if e["task"] == "flaky"]
        assert [e["attempt"] for e in retrying] == ["1", "2"]
        assert [e["attempt"] for e in claims] == ["1", "2", "3"]
        for k, (e, next_claim) in enumerate(zip(retrying, claims[1:], strict=True)):
            delay = float(e["next_attempt_at"]) - float(e["ts"])
            assert 0.3 * 2**k * 0.9 - 0.01 <= delay <= 0.3 * 2**k * 1.1 + 0.01, (k, delay)
            assert float(next_claim["ts"]) >= float(e["next_attempt_at"])

        assert recs["doomed"]["state"] == "failed"
        assert [a["outcome"] for a in town.attempts("doomed")] == ["failed"] * 3  # retries + 1
        failed = [e for e in town.events("task.failed") if e["task"] == "doomed"]
        assert [e["attempt"] for e in failed] == ["3"]
        # It can never run now: upstream_failed, naming the task that failed, counted as failed.
        assert (recs["after-doomed"]["state"], recs["after-doomed"]["upstream"]) == (
            "upstream_failed",
            "doomed",
        )
        assert "failed: after-doomed: upstream_failed: doomed failed" in run.stderr

        assert recs["slow"]["state"] == "failed"
        assert [a["outcome"] for a in town.attempts("slow")] == ["failed"]
        pids = [int(p) for p in (town.root / "tree.pids").read_text().split()]
        assert len(pids) == 2  # the model and its grandchild: both killed with the group
        until(lambda: not any(alive(p) for p in pids), 5, f"process tree {pids} gone")

        # Exit 3: a deadline passes while a task still runs (the loop applies the new task).
        town.save("tasks.toml", tasks + task("long", "[sim:sleep:30] takes long", agent="worker"))
        timeout = town.tt("wait", "--timeout", "2s")
        assert timeout.returncode == 3, timeout.stdout + timeout.stderr
        assert "still running: long" in timeout.stderr, timeout.stderr


# -- two watchers ---------------------------------------------------------------------------------


def writers(town: LiveTown, since: float = 0.0) -> Counter[int]:
    """Who wrote (pid → count): `apply` events and the fleet's agent events after `since`."""
    out: Counter[int] = Counter()
    for e in town.events():
        if float(e["ts"]) < since:
            continue
        if e["type"] == "apply":
            out[int(e["pid"])] += 1
        elif e.get("by"):
            out[int(e["by"].rsplit(":", 1)[1])] += 1
    return out


def leader_pid(e: dict[str, str]) -> int:
    return int(e["holder"].split(":")[1])  # host:pid:nonce


def test_two_watchers_only_the_leader_acts_and_the_other_takes_over_within_the_lease(
    tmp_path: Path, town_redis: str | None
) -> None:
    with live_town(tmp_path / "duo", sim_delay=0.05, redis_url=town_redis) as town:
        agents = '[agents.worker]\nmodel = "sim"\nreplicas = 3\n'
        tasks = task("a0", "first", agent="worker")
        town.write(town_toml("duo", agents), tasks)
        first = town.start_watcher("conductor")
        until(lambda: town.events("leader.acquired"), 20, "a leader")
        assert [leader_pid(e) for e in town.events("leader.acquired")] == [first.pid]
        second = town.start_watcher("watch")
        until(lambda: len(town.live_agents()) == 3, 20, "three agents")
        until(lambda: "another watcher leads" in town.log_of(second), 20, "the second stands by")

        # Work for both to see: new tasks (an apply) and a dead agent (a restart).
        tasks += "".join(task(f"b{i}", f"second batch {i}", agent="worker") for i in range(3))
        town.save("tasks.toml", tasks)
        until(lambda: town.states()["completed"] == 4, 20, "the second batch")
        until(lambda: "task.completed task=b" in town.log_of(second), 10, "the second follows")
        victim, pid = sorted(town.live_agents().items())[0]
        town.kill(pid)
        until(lambda: town.live_agents().get(victim, pid) != pid, 10, f"{victim} restarted")
        # The new pid is in the record before the `agent.spawned` event is written: wait for it.
        until(lambda: writers(town)[first.pid] >= 3, 10, "the leader's apply, crash and start")
        acts = writers(town)
        assert set(acts) == {first.pid}, acts

        # Kill the leader: the other leads within the lease and adopts the healthy agents.
        healthy = town.live_agents()
        killed_at = time.time()
        town.kill_watcher(first)
        took = until(
            lambda: [e for e in town.events("leader.acquired") if leader_pid(e) == second.pid],
            LEASE + 5,
            "the second watcher leads",
        )
        assert float(took[0]["ts"]) - killed_at <= LEASE + 1.0
        tasks += "".join(task(f"c{i}", f"third batch {i}", agent="worker") for i in range(3))
        town.save("tasks.toml", tasks)
        until(lambda: town.states()["completed"] == 7, 20, "the third batch")
        victim, pid = sorted(healthy.items())[-1]
        town.kill(pid)
        until(lambda: town.live_agents().get(victim, pid) != pid, 10, f"{victim} restarted")
        until(lambda: writers(town, since=killed_at)[second.pid] >= 3, 10, "the new leader acts")
        after = writers(town, since=killed_at)
        acted = [  # what each writer did, for the message when this fails
            (e["type"], e.get("agent", ""), e.get("reason", ""), e.get("pid") or e.get("by"))
            for e in town.events()
            if float(e["ts"]) >= killed_at and (e["type"] == "apply" or e.get("by"))
        ]
        assert set(after) == {second.pid}, (after, acted)
        others = {n: p for n, p in town.live_agents().items() if n != victim}
        assert others == {n: p for n, p in healthy.items() if n != victim}  # adopted, not restarted


# -- one dead agent, a crash loop ---------------------------------------------------------------


def test_a_killed_agents_task_runs_elsewhere_within_the_lease_and_its_model_dies(
    tmp_path: Path, town_redis: str | None
) -> None:
    with live_town(tmp_path / "dead", sim_delay=0.05, redis_url=town_redis) as town:
        agents = '[agents.worker]\nmodel = "sim"\nreplicas = 2\n'
        town.write(town_toml("dead", agents), task("slow", "[sim:sleep:2] slow", agent="worker"))
        town.start_watcher()

        def running() -> tuple[str, int, int] | None:
            who = town.tasks().get("slow", {}).get("assignee", "")
            rec = town.agents().get(who, {})
            if rec.get("task") == "slow" and rec.get("model_pid", "").isdigit():
                return who, int(rec["pid"]), int(rec["model_pid"])
            return None

        victim, pid, model = until(running, 20, "the task running with its model")
        killed_at = time.time()
        town.kill(pid)
        again = until(
            lambda: [e for e in town.events("task.claimed") if e["attempt"] == "2"],
            LEASE + 5,
            "the task claimed again",
        )
        assert again[0]["agent"] != victim
        assert float(again[0]["ts"]) - killed_at <= LEASE + 1.0
        until(lambda: not alive(model), 5, "the dead agent's model process killed")
        until(lambda: town.states()["completed"] == 1, 20, "the task completes")
        outcomes = [(a["outcome"], a["agent"]) for a in town.attempts("slow")]
        assert outcomes == [("handed back", victim), ("completed", again[0]["agent"])]


def test_a_crash_loop_ends_in_quarantine_and_its_task_waits(tmp_path: Path) -> None:
    with live_town(tmp_path / "loop", sim_delay=0.05) as town:
        policy = {"crash_loop_deaths": 2, "crash_loop_window": "30s", "quarantine": "5m"}
        agents = '[agents.solo]\nmodel = "sim"\n'
        town.write(town_toml("loop", agents, **policy), task("a", "first", agent="solo"))
        town.start_watcher()
        first = until(lambda: town.live_agents().get("solo"), 20, "solo runs")
        until(lambda: town.states()["completed"] == 1, 20, "its first task")
        town.kill(first)
        second = until(
            lambda: (p := town.live_agents().get("solo")) != first and p, 10, "solo restarted"
        )
        town.kill(second)  # the second death within 30 s of its start
        rec = until(
            lambda: (r := town.agents()["solo"]).get("state") == "quarantined" and r,
            10,
            "quarantine",
        )
        assert rec["reason"] == "2 deaths within 30s of start"
        assert float(rec["quarantined_until"]) - time.time() > 250
        listed = town.tt("list", "-o", "json")
        assert '"state": "quarantined"' in listed.stdout, listed.stdout
        # Not restarted (several heal passes), and work for it waits in its queue, not lost.
        town.save("tasks.toml", task("a", "first", agent="solo") + task("b", "next", agent="solo"))
        until(lambda: town.tasks().get("b", {}).get("state") == "ready", 10, "b is ready")
        deadline = time.monotonic() + 3 * 0.5 * 2
        while time.monotonic() < deadline:
            assert "solo" not in town.live_agents()
            time.sleep(0.1)
        assert town.tasks()["b"]["state"] == "ready"
        spawned = [e for e in town.events("agent.spawned") if e["agent"] == "solo"]
        assert len(spawned) == 2


# -- edits while the watcher runs ---------------------------------------------------------------


def test_an_invalid_edit_keeps_the_last_good_state_and_the_next_valid_save_applies(
    tmp_path: Path,
) -> None:
    with live_town(tmp_path / "edits", sim_delay=0.05) as town:
        agents = '[agents.worker]\nmodel = "sim"\nreplicas = 2\n'
        good_town, tasks = town_toml("edits", agents), task("a", "first", agent="worker")
        town.write(good_town, tasks)
        watcher = town.start_watcher()
        until(lambda: town.states()["completed"] == 1, 20, "the first task")
        healthy = until(lambda: len(t := town.live_agents()) == 2 and t, 10, "two agents")

        typo = tasks + '[[tasks]]\nid = "b"\ndescription = "next"\nagent = "worker"\n'
        town.save("tasks.toml", typo + 'depnds_on = ["a"]\n')
        until(lambda: town.events("config.invalid"), 10, "config.invalid for tasks.toml")
        # A roster that, applied, would stop every agent.
        town.save("town.toml", good_town.replace("replicas = 2", "replicas = 0"))
        until(lambda: len(town.events("config.invalid")) == 2, 10, "config.invalid for town.toml")
        log = town.log_of(watcher)
        assert log.count("files are invalid; keeping the last good state") == 2, log
        assert "depnds_on" in log and "depends_on" in log  # the error, with its hint
        assert "replicas" in log
        assert set(town.tasks()) == {"a"}
        assert town.live_agents() == healthy

        town.save("town.toml", good_town)
        town.save("tasks.toml", tasks + task("b", "next", agent="worker", depends_on=["a"]))
        until(lambda: town.tasks().get("b", {}).get("state") == "completed", 20, "b runs")
        assert town.live_agents() == healthy


def test_an_attempt_no_agent_runs_is_handed_back_by_the_next_leader(tmp_path: Path) -> None:
    """A claim that landed after its agent's death was recorded (or a marker lost with it):
    the task says running, its agent says nothing. The sweep on taking the lead frees it."""
    with live_town(tmp_path / "orphan", sim_delay=0.05) as town:
        agents = '[agents.solo]\nmodel = "sim"\n'
        town.write(town_toml("orphan", agents + "suspended = true\n"), task("a", "x", agent="solo"))
        assert town.tt("apply").returncode == 0
        assert town.store.client.lpop(town.store.keys.queue("solo")) == "a"
        assert town.store.claim("a", "solo", "lost-token") is not None
        town.store.set_agent("solo", {"task": ""})  # a new process registered afresh
        town.save("town.toml", town_toml("orphan", agents))
        town.start_watcher()
        until(lambda: town.states()["completed"] == 1, 20, "the orphaned task completes")
        history = town.attempts("a")
        assert [h["outcome"] for h in history] == ["handed back", "completed"]
        assert history[0]["reason"] == "orphaned: solo does not run it"


# -- mail ---------------------------------------------------------------------------------------


def test_a_message_its_agent_was_answering_when_killed_is_answered_after_the_restart(
    tmp_path: Path,
) -> None:
    with live_town(tmp_path / "mail", sim_delay=0.05) as town:
        # Every sim run first waits for the gate file: open for the first task, shut while the
        # message is answered, so the kill lands mid-answer however slow the machine is.
        gate = tmp_path / "gate"
        gate.touch()
        town.env["TT_SIM_GATE"] = str(gate)
        town.write(
            town_toml("mail", '[agents.solo]\nmodel = "sim"\n'), task("a", "x", agent="solo")
        )
        town.start_watcher()
        until(lambda: town.states()["completed"] == 1, 20, "solo's first task")
        first = until(lambda: town.live_agents().get("solo"), 10, "solo runs")
        gate.unlink()
        assert town.tt("send", "solo", "How far along are you?").returncode == 0
        until(lambda: town.agents()["solo"].get("model_pid", "").isdigit(), 30, "solo answering")
        town.kill(first)  # mid-answer: its model waits at the gate

        # Nobody answers it now, and it is not lost: `tt inbox` still shows it.
        peek = town.tt("inbox", "solo", "--peek")
        assert "conductor: How far along are you?" in peek.stdout, peek.stdout
        gate.touch()
        answers = until(
            lambda: [m for m in town.store.peek_messages("conductor") if m.sender == "solo"],
            LEASE + 20,
            "solo's next process answers it",
        )
        assert town.live_agents()["solo"] != first
        assert len(answers) == 1 and "How far along are you?" in answers[0].text, answers
        assert town.store.unanswered("solo") == []
        assert len(town.events("message.answered")) == 1
