"""Several node processes (`tt node run`) and the controller (`tt conductor`) on this one machine
(issue 14, points 1 and 3): agents placed by node name, not by host. Real Valkey, sim agents.

- agents on two nodes complete tasks, each attempt recording its node;
- a node killed as its host would die (the node and every process it started, SIGKILL): it shows
  dead, and its agent's running task is claimed by the other node's agent within the lease + 1 s
  and completes exactly once (the dead attempt's token can no longer complete it);
- a node killed alone and started again adopts the agent still running (its agents, beating,
  are not moved meanwhile); a node stopped on purpose (SIGTERM) stops its agents and shows
  stopped;
- a partition (a node and its agents frozen past their leases): the agents start anew on the
  other node, and the old processes, thawed, find themselves superseded and exit;
- drain: the running task finishes, nothing new is claimed; `tt down` ends the node process;
- bad input: a second live process of a node name, a name off the name rule, an agent pinned to
  a node that never registered (unschedulable).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.live import LiveTown, alive, cwd_of, live_town, until
from tests.integration.test_self_healing import task, town_toml

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="checks processes through /proc"),
]

LEASE = 2.0  # the agents' (town_toml) and the nodes' (--lease)
TWO_NODES = """[agents.dev1]
model = "sim"
role = "dev"
node = "n1"

[agents.dev2]
model = "sim"
role = "dev"
node = "n2"

[agents.home]
model = "sim"
"""


def start_node(town: LiveTown, name: str, *args: str) -> subprocess.Popen[bytes]:
    return town.start_watcher("node", "run", "--name", name, "--lease", f"{LEASE:g}", *args)


def nodes(town: LiveTown) -> dict[str, dict[str, Any]]:
    out = town.tt("nodes", "-o", "json")
    assert out.returncode == 0, out.stderr
    return {r["name"]: r for r in json.loads(out.stdout)}


def holds(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """`condition` stays true for `seconds`, checked every 0.1 s: fails at its first lapse
    (an absence is checked the whole time, not once after a bare sleep)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition(), what
        time.sleep(0.1)


def lease_expiry(town: LiveTown, node: str, agent: str) -> float:
    """When the dead node's and its agent's leases expire, by their last renewals recorded in
    Redis (the test's own clock under load runs late on them)."""
    beats = (town.store.node_records()[node]["heartbeat_at"], town.agents()[agent]["heartbeat_at"])
    return max(float(b) for b in beats) + LEASE


def kill_host(town: LiveTown, proc: subprocess.Popen[bytes], node: str) -> None:
    """What a host's death does to a node: its process and every agent and model process it
    started die at once (SIGKILL). Each agent and model leads its own process group."""
    groups = []
    for rec in town.agents().values():
        if rec.get("node") == node:
            groups += [int(rec[k]) for k in ("pid", "model_pid") if rec.get(k, "").isdigit()]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    for pid in groups:
        if alive(pid) and cwd_of(pid) is not None:
            os.killpg(pid, signal.SIGKILL)


def slow_running(town: LiveTown) -> tuple[str, str, str] | None:
    """(agent, node, token) of the task `slow` once its model runs, else None."""
    t = town.tasks().get("slow", {})
    rec = town.agents().get(t.get("assignee", ""), {})
    if rec.get("task") == "slow" and rec.get("model_pid", "").isdigit():
        return t["assignee"], rec["node"], t["token"]
    return None


def test_two_nodes_run_their_agents_and_a_dead_nodes_task_completes_on_the_other_once(
    tmp_path: Path,
) -> None:
    with live_town(tmp_path / "nodes", sim_delay=0.05) as town:
        tasks = (
            task("one", "on n1", agent="dev1")
            + task("two", "on n2", agent="dev2")
            + task("local", "on the controller's host", agent="home")
        )
        town.write(town_toml("nodes", TWO_NODES), tasks)
        town.start_watcher("conductor")
        first = {"n1": start_node(town, "n1", "--slots", "2", "--label", "gpu=1")}
        first["n2"] = start_node(town, "n2")
        until(lambda: town.states()["completed"] == 3, 30, "a task done on each node and at home")
        where = {t: town.attempts(t)[-1]["node"] for t in ("one", "two")}
        assert where == {"one": "n1", "two": "n2"}
        records = town.agents()
        assert {n: records[n]["node"] for n in ("dev1", "dev2", "home")} == {
            "dev1": "n1",
            "dev2": "n2",
            "home": "",
        }
        listed = nodes(town)
        assert {n: (r["state"], r["running"]) for n, r in listed.items()} == {
            "n1": ("ready", ["dev1"]),
            "n2": ("ready", ["dev2"]),
        }
        assert (listed["n1"]["slots"], listed["n1"]["labels"]) == (2, {"gpu": "1"})

        # A task for the role: one of the two nodes runs it; that node's host dies mid-task.
        town.save("tasks.toml", tasks + task("slow", "[sim:sleep:4] slow", role="dev"))

        victim, dead_node, old_token = until(lambda: slow_running(town), 30, "slow running")
        kill_host(town, first[dead_node], dead_node)
        expired = lease_expiry(town, dead_node, victim)
        again = until(
            lambda: [e for e in town.events("task.claimed") if e.get("task") == "slow"][1:],
            LEASE + 10,
            "the slow task claimed again",
        )
        assert again[0]["agent"] != victim
        assert float(again[0]["ts"]) - expired <= LEASE + 1.0  # within lease + 1 s of expiry
        until(lambda: nodes(town)[dead_node]["state"] == "dead", LEASE + 5, "the node dead")
        rows = {r["name"]: r for r in json.loads(town.tt("list", "-o", "json").stdout)}
        assert (rows[victim]["state"], rows[victim]["reason"]) == (
            "unschedulable",
            f"node {dead_node} dead",
        )
        # The dead attempt cannot complete the task any more (a late result from its host).
        assert not town.store.complete("slow", old_token, "late result of the dead attempt")
        until(lambda: town.tasks()["slow"]["state"] == "completed", 30, "slow completes")
        outcomes = [(a["outcome"], a["agent"]) for a in town.attempts("slow")]
        assert outcomes == [("handed back", victim), ("completed", again[0]["agent"])]
        alive_node = "n2" if dead_node == "n1" else "n1"
        assert town.attempts("slow")[-1]["node"] == alive_node
        assert len(town.events("task.completed")) == 4

        # The dead node comes back: its agent runs again, under it.
        back = start_node(town, dead_node)
        until(
            lambda: town.live_agents().get(victim) and town.agents()[victim]["node"] == dead_node,
            20,
            "the node back, its agent running again",
        )
        until(lambda: nodes(town)[dead_node]["state"] == "ready", 10, "the node ready")

        # The other node's process alone dies (its agent lives on), and is started again: it
        # adopts the running agent instead of starting a second one.
        other = "dev2" if victim == "dev1" else "dev1"
        pid = town.live_agents()[other]
        town.kill_watcher(first[alive_node])
        until(lambda: nodes(town)[alive_node]["state"] == "dead", LEASE + 5, "the node dead")
        start_node(town, alive_node)  # (while its lease lived, it would be refused)
        until(lambda: nodes(town)[alive_node]["state"] == "ready", 10, "the node back")
        # A pass of the restarted node is seen by the agent it starts for an apply adding one
        # (the same pass that adopts `other`).
        more = f'\n[agents.more]\nmodel = "sim"\nnode = "{alive_node}"\n'
        town.save("town.toml", town_toml("nodes", TWO_NODES + more))
        until(lambda: town.live_agents().get("more"), 30, "the agent added runs")
        assert town.live_agents()[other] == pid
        assert len([e for e in town.events("agent.spawned") if e["agent"] == other]) == 1

        # Stopped on purpose (SIGTERM), a node stops its agents and leaves: state stopped.
        back.send_signal(signal.SIGTERM)
        assert back.wait(timeout=20) == 0
        assert victim not in town.live_agents()
        assert nodes(town)[dead_node]["state"] == "stopped"
        assert town.agents()[victim]["state"] == "stopped"


def test_drain_a_duplicate_name_a_bad_name_and_an_agent_on_a_node_never_seen(
    tmp_path: Path,
) -> None:
    with live_town(tmp_path / "drain", sim_delay=0.05) as town:
        agents = TWO_NODES.replace('node = "n2"', 'node = "ghost"')
        tasks = task("busy", "[sim:sleep:3] busy", agent="dev1")
        town.write(town_toml("drain", agents), tasks)
        town.start_watcher("conductor")
        n1 = start_node(town, "n1")
        until(lambda: town.tasks().get("busy", {}).get("state") == "running", 30, "busy runs")

        twin = town.tt("node", "run", "--name", "n1", "--lease", "2", timeout=30)
        assert twin.returncode == 1
        assert "node n1 is already running" in twin.stderr, twin.stderr
        bad = town.tt("node", "run", "--name", "N1_Bad", timeout=30)
        assert bad.returncode == 1 and "not a valid node name" in bad.stderr, bad.stderr
        assert town.tt("node", "drain", "nope").returncode == 1

        # An agent added on n1: the node reads the files again after the controller's apply.
        extra = '\n[agents.extra]\nmodel = "sim"\nnode = "n1"\n'
        town.save("town.toml", town_toml("drain", agents + extra))
        until(lambda: town.live_agents().get("extra"), 20, "the agent added to n1 runs")
        assert town.agents()["extra"]["node"] == "n1"

        drained = town.tt("node", "drain", "n1")
        assert drained.returncode == 0, drained.stderr
        assert nodes(town)["n1"]["state"] == "draining"
        town.save("tasks.toml", tasks + task("next", "after the drain", agent="dev1"))
        until(lambda: town.tasks()["busy"]["state"] == "completed", 30, "busy finishes")
        until(lambda: not {"dev1", "extra"} & set(town.live_agents()), 20, "n1's agents exit")
        until(lambda: town.tasks().get("next"), 20, "next applied")
        holds(  # several passes of the node: nothing is started or claimed
            lambda: (
                not {"dev1", "extra"} & set(town.live_agents())
                and town.tasks()["next"]["state"] == "ready"
            ),
            LEASE,
            "nothing started or claimed on the draining node",
        )
        assert [a["outcome"] for a in town.attempts("busy")] == ["completed"]

        rows = {r["name"]: r for r in json.loads(town.tt("list", "-o", "json").stdout)}
        ghost = (rows["dev2"]["state"], rows["dev2"]["reason"])
        assert ghost == ("unschedulable", "node ghost not registered")
        assert "unschedulable (node ghost not registered)" in town.tt("status").stdout
        assert nodes(town)["ghost"]["state"] == "unregistered"

        # `tt down` on this host ends the node process too (its agents are stopped by tt down).
        assert town.tt("down").returncode == 0
        assert n1.wait(timeout=15) == 0


POOL = """[agents.w]
model = "sim"
replicas = 4
node_labels = {pool = "1"}

[agents.g]
model = "sim"
node_labels = {gpu = "1"}
"""


def placement(town: LiveTown) -> dict[str, str | None]:
    """Where `tt plan -o json` says each agent will run (None: unschedulable)."""
    out = town.tt("plan", "-o", "json")
    assert out.returncode == 0, out.stderr
    return {r["agent"]: r["node"] for r in json.loads(out.stdout)["placement"]}


def listed(town: LiveTown) -> dict[str, dict[str, Any]]:
    out = town.tt("list", "-o", "json")
    assert out.returncode == 0, out.stderr
    return {r["name"]: r for r in json.loads(out.stdout)}


def runs_on(town: LiveTown, node: str, agents: set[str]) -> bool:
    """Each of `agents` has a live process started by `node`."""
    records, live = town.agents(), town.live_agents()
    return all(a in live and records[a].get("node") == node for a in agents)


def test_a_pool_spreads_moves_off_a_dead_node_is_adopted_by_a_restarted_one_and_heals_a_partition(
    tmp_path: Path,
) -> None:
    with live_town(tmp_path / "placed", sim_delay=0.05) as town:
        pool = {"w", "w-2", "w-3", "w-4"}
        town.write(town_toml("placed", POOL), "")
        labels = {"n1": ("--label", "pool=1", "--label", "gpu=1"), "n2": ("--label", "pool=1")}
        first = {n: start_node(town, n, *labels[n]) for n in ("n1", "n2")}
        # Both nodes up before the leader places (a node that joins later takes nothing).
        until(lambda: len(nodes(town)) == 2, 30, "two nodes registered")
        town.start_watcher("conductor")
        # Spread: two replicas on each node; the label puts `g` on n1, the only gpu node.
        until(lambda: runs_on(town, "n1", {"g"}), 30, "g running on n1")

        def all_placed() -> dict[str, str | None] | None:
            got = placement(town)
            return got if None not in got.values() else None

        where = until(all_placed, 30, "every agent placed")
        assert sorted(where[a] or "" for a in pool) == ["n1", "n1", "n2", "n2"]
        assert where["g"] == "n1"
        for node in ("n1", "n2"):
            mine = {a for a in pool if where[a] == node}
            until(lambda n=node, m=mine: runs_on(town, n, m), 30, f"{mine} running on {node}")
        assert {a: r["node"] for a, r in listed(town).items()} == where
        assert "NODE" in town.tt("status").stdout
        shown = town.tt("plan").stdout
        assert "Placement:" in shown and re.search(r"^  g +node n1$", shown, re.M), shown
        placed = nodes(town)
        assert sorted(placed["n1"]["placed"]) == sorted(a for a in where if where[a] == "n1")

        # A task for each replica at once (each busy a second), once each waits for work: done
        # on both nodes, each attempt naming the node it ran on.
        until(lambda: {town.agents()[a].get("state") for a in pool} == {"idle"}, 30, "pool idle")
        tasks = "".join(task(f"t{i}", f"[sim:sleep:1] job {i}", agent="w") for i in range(4))
        town.save("tasks.toml", tasks + task("gpu", "on the gpu node", agent="g"))
        until(lambda: town.states()["completed"] == 5, 40, "the five tasks completed")
        ran = {town.attempts(f"t{i}")[-1]["node"] for i in range(4)}
        assert ran == {"n1", "n2"}
        assert town.attempts("gpu")[-1]["node"] == "n1"

        # The host of the node that runs a slow task dies: its replicas are placed on the
        # other node, the task is claimed there within the lease + 1 s and completes once.
        tasks += task("slow", "[sim:sleep:4] slow", agent="w")
        town.save("tasks.toml", tasks + task("gpu", "on the gpu node", agent="g"))

        victim, dead, old_token = until(lambda: slow_running(town), 30, "slow running")
        alive_node = "n2" if dead == "n1" else "n1"
        kill_host(town, first[dead], dead)
        expired = lease_expiry(town, dead, victim)
        again = until(
            lambda: [e for e in town.events("task.claimed") if e.get("task") == "slow"][1:],
            LEASE + 10,
            "the slow task claimed again",
        )
        assert float(again[0]["ts"]) - expired <= LEASE + 1.0  # within lease + 1 s of expiry
        assert town.agents()[again[0]["agent"]]["node"] == alive_node
        assert not town.store.complete("slow", old_token, "late result of the dead attempt")
        until(lambda: runs_on(town, alive_node, pool), 30, f"the whole pool on {alive_node}")
        assert {a: n for a, n in placement(town).items() if a in pool} == dict.fromkeys(
            pool, alive_node
        )
        until(lambda: town.tasks()["slow"]["state"] == "completed", 30, "slow completes")
        outcomes = [(a["outcome"], a["agent"]) for a in town.attempts("slow")]
        assert outcomes == [("handed back", victim), ("completed", again[0]["agent"])]
        assert town.attempts("slow")[-1]["node"] == alive_node
        assert len([e for e in town.events("task.completed") if e["task"] == "slow"]) == 1
        gpu = "no ready node with node_labels gpu=1 and a free slot"
        if dead == "n1":  # the only gpu node: `g` fits nowhere now, and says why
            row = until(
                lambda: (r := listed(town)["g"])["state"] == "unschedulable" and r,
                LEASE + 10,
                "g unschedulable",
            )
            assert (row["reason"], row["node"]) == (gpu, None)
            assert f"unschedulable ({gpu})" in town.tt("status").stdout

        # The dead node comes back: nothing moves to it (stability).
        back = start_node(town, dead, *labels[dead])
        until(lambda: nodes(town)[dead]["state"] == "ready", 10, "the node back ready")
        until(lambda: runs_on(town, "n1", {"g"}), 30, "g back on n1")
        assert runs_on(town, alive_node, pool)
        # The other node's process alone dies: its agents run on and beat, so nothing moves,
        # and the node started again adopts them (a task for the pool runs on one of them).
        stale = {a: town.live_agents()[a] for a in pool}
        spawned = len(town.events("agent.spawned"))
        town.kill_watcher(first[alive_node])
        until(lambda: nodes(town)[alive_node]["state"] == "dead", LEASE + 5, "the node dead")
        assert {placement(town)[a] for a in pool} == {alive_node}
        restarted = start_node(town, alive_node, *labels[alive_node])  # (its labels kept)
        until(lambda: nodes(town)[alive_node]["state"] == "ready", 10, "the node restarted")
        tasks += task("after", "after the node's restart", agent="w")
        town.save("tasks.toml", tasks + task("gpu", "on the gpu node", agent="g"))
        until(
            lambda: town.tasks().get("after", {}).get("state") == "completed", 30, "after completes"
        )
        assert {a: town.live_agents().get(a) for a in pool} == stale
        assert len(town.events("agent.spawned")) == spawned, (
            town.events("agent.spawned")[spawned:],
            town.events("agent.exited")[-4:],
            [
                (e.get("reason"), e.get("by"), e.get("pid"))
                for e in town.events("agent.stopped")[-4:]
            ],
        )
        assert town.attempts("after")[-1]["node"] == alive_node

        # A partition: that node and its agents frozen (SIGSTOP) past their leases. The leader
        # records their deaths (the node's, counted toward no crash loop) and places them on
        # the other node, which starts them anew; thawed, each old process finds itself
        # superseded at its next heartbeat and exits, claiming nothing.
        before = {a: int(town.agents()[a].get("node_deaths") or 0) for a in pool}
        frozen = [restarted.pid, *stale.values()]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            until(lambda: runs_on(town, dead, pool), 30, f"the pool started anew on {dead}")
            assert all(alive(pid) for pid in stale.values())  # frozen, not gone
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        until(
            lambda: not any(alive(pid) for pid in stale.values()),
            20,
            "the superseded processes exit",
        )
        exits = {e["agent"] for e in town.events("agent.exited") if e["reason"] == "superseded"}
        assert exits == pool
        assert runs_on(town, dead, pool)  # the new ones run on, their records untouched
        until(  # (their records untouched by the old ones' exits)
            lambda: {town.agents()[a]["state"] for a in pool} == {"idle"}, 30, "the new ones idle"
        )
        # Their node's deaths, not crashes of theirs (no step toward a crash-loop quarantine).
        lost = {a: int(town.agents()[a].get("node_deaths") or 0) for a in pool}
        assert lost == {a: before[a] + 1 for a in pool}, (lost, before)
        tasks += task("healed", "after the partition", agent="w")
        town.save("tasks.toml", tasks + task("gpu", "on the gpu node", agent="g"))
        until(
            lambda: town.tasks().get("healed", {}).get("state") == "completed",
            30,
            "healed completes",
        )
        assert town.attempts("healed")[-1]["node"] == dead
        assert back.poll() is None
