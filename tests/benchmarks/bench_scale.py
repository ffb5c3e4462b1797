"""Scale on one machine (issue 14, point 6): N node processes (`tt node run`) × M `sim` agents
each, a controller (`tt conductor`, the leader), one Redis; then the same town on a local Redis
Cluster of three primaries. Measured, each with what it needs to be extrapolated:

- tasks/s of a batch of quick `sim` tasks (TT_SIM_DELAY=0: a model process per task) for a role
  every agent has, and the Redis commands each task cost;
- Redis commands per second with every agent idle, and with every agent running a long task,
  split by role (agents, nodes, leader: each connection traced to its process, see
  redis_usage.py) with the server's CPU per command and each role's CPU;
- a dead node: its process and every process it started SIGKILLed while one of its agents runs
  a task, until the task is claimed by an agent of another node (the `task.claimed` event's
  time), several samples, under the town's agent lease and the nodes' lease (both reported);
- Redis used_memory per 100,000 tasks: a generated town (tests/towngen.py) applied into an empty
  server, its delta scaled linearly to 100,000 tasks.

Run: python -m tests.benchmarks.bench_scale [--nodes 8] [--agents 8] [--tasks 600] [--kills 3]
     [--idle-seconds 20] [--busy-seconds 15] [--memory-tasks 20000] [--no-cluster]  (prints JSON)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from reconciler import server
from reconciler.control import nodepass
from reconciler.spec import loader
from reconciler.town import TownPaths
from tests.benchmarks import redis_usage
from tests.benchmarks.bench_agents import CLK_TCK, cpu_ticks
from tests.benchmarks.common import emit, stats
from tests.integration.live import LiveTown, alive, cwd_of, live_town, until
from tests.redis_cluster import start_cluster
from tests.towngen import tasks_toml as generated_tasks
from tests.towngen import town_toml as generated_town

ROLE = "w"  # every agent of the town has it: a task for the role runs on any node


def scale_town(name: str, nodes: int, agents: int, policy: dict[str, float]) -> str:
    lines = ["[town]", f'name = "{name}"', *(f"{k} = {v:g}" for k, v in policy.items()), ""]
    for k in range(1, nodes + 1):
        for j in range(1, agents + 1):
            lines += [
                f"[agents.n{k}-{j}]",
                'model = "sim"',
                f'role = "{ROLE}"',
                f'node = "n{k}"',
                "",
            ]
    return "\n".join(lines)


def task(tid: str, description: str) -> str:
    return f'[[tasks]]\nid = "{tid}"\ndescription = "{description}"\nrole = "{ROLE}"\n\n'


class ScaleTown:
    """A LiveTown with its leader and node processes, the servers to snapshot and who is who."""

    def __init__(self, town: LiveTown, servers: list[redis.Redis], node_lease: float) -> None:
        self.town, self.servers, self.node_lease = town, servers, node_lease
        self.tasks = ""
        self.leader = town.start_watcher("conductor")
        self.nodes: dict[str, Any] = {}

    def start_nodes(self, nodes: int) -> None:
        for k in range(1, nodes + 1):
            self.nodes[f"n{k}"] = self.town.start_watcher(
                "node", "run", "--name", f"n{k}", "--lease", f"{self.node_lease:g}"
            )

    def wait_idle(self, names: list[str], timeout: float) -> None:
        store = self.town.store

        def idle() -> bool:
            recs, beats = self.town.agents(), store.heartbeat_alive(names)
            return all(recs.get(n, {}).get("state") == "idle" and beats[n] for n in names)

        until(idle, timeout, f"{len(names)} agents idle")

    def role_of(self) -> Callable[[int | None], str]:
        agents = {int(r["pid"]) for r in self.town.agents().values() if r.get("pid", "").isdigit()}
        nodes = {p.pid for p in self.nodes.values()}
        me = os.getpid()

        def role(pid: int | None) -> str:
            if pid == me:
                return "bench"
            if pid == self.leader.pid:
                return "leader"
            return "node" if pid in nodes else "agent" if pid in agents else "other"

        return role

    def pids_by_role(self) -> dict[str, list[int]]:
        recs = self.town.agents().values()
        return {
            "leader": [self.leader.pid],
            "node": [p.pid for p in self.nodes.values() if p.poll() is None],
            "agent": [int(r["pid"]) for r in recs if r.get("pid", "").isdigit()],
        }

    @contextlib.contextmanager
    def window(self, out: dict[str, Any]) -> Iterator[None]:
        """Commands and CPU between entering and leaving, into `out`."""
        pids = self.pids_by_role()
        ticks = {role: {p: _ticks(p) for p in ps} for role, ps in pids.items()}
        before = redis_usage.snapshot(self.servers)
        yield
        after = redis_usage.snapshot(self.servers)
        out.update(redis_usage.window(before, after, self.role_of()))
        seconds = after.at - before.at
        out["process_cpu_percent_of_one_core_by_role"] = {
            role: round(100 * sum(_ticks(p) - t for p, t in ts.items()) / CLK_TCK / seconds, 2)
            for role, ts in ticks.items()
        }
        out["processes_by_role"] = {role: len(ps) for role, ps in pids.items()}

    def last_event(self) -> str:
        got = self.town.store.client.xrevrange(self.town.store.keys.events, count=1)
        return str(got[0][0]) if got else "0"

    def run_tasks(self, ids: list[str], text: str, timeout: float) -> dict[str, dict[str, str]]:
        """Save the tasks (the leader applies the file), then wait for their completion by
        reading the event stream (blocking reads: a handful of commands)."""
        cursor, left = self.last_event(), set(ids)
        self.tasks += text
        self.town.save("tasks.toml", self.tasks)
        deadline = time.monotonic() + timeout
        while left:
            for eid, f in self.town.store.events_since(cursor, count=10000, block_ms=1000):
                cursor = eid
                if f.get("type") == "task.completed":
                    left.discard(f.get("task", ""))
                elif f.get("type") == "task.failed" and f.get("task") in left:
                    raise RuntimeError(f"task {f['task']} failed: {f}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(left)} of {len(ids)} tasks not completed")
        records = self.town.tasks()
        return {i: records[i] for i in ids}


def _ticks(pid: int) -> int:
    try:
        return cpu_ticks(pid)
    except OSError:
        return 0


def throughput(st: ScaleTown, n: int, tag: str, out: dict[str, Any]) -> None:
    ids = [f"{tag}-{i:05d}" for i in range(n)]
    with st.window(out):
        recs = st.run_tasks(ids, "".join(task(i, "quick") for i in ids), timeout=600)
    first = min(float(r["ready_at"]) for r in recs.values())
    last = max(float(r["finished_at"]) for r in recs.values())
    per_node = Counter(r["assignee"].split("-", 1)[0] for r in recs.values())
    out.update(
        {
            "tasks": n,
            "tasks_per_s": round(n / (last - first), 1),
            "seconds_first_ready_to_last_done": round(last - first, 2),
            "commands_per_task_without_bench": round(out["commands_without_bench"] / n, 1),
            "commands_per_task_by_role": {
                k: round(v / n, 2) for k, v in out["commands_by_role"].items() if k != "bench"
            },
            "used_memory_bytes_per_completed_task": round(out["used_memory_delta_bytes"] / n),
            "tasks_per_node": dict(sorted(per_node.items())),
        }
    )


def idle(st: ScaleTown, seconds: float, agents: int, per_node: int, out: dict[str, Any]) -> None:
    time.sleep(2)  # past the last task's reports
    with st.window(out):
        time.sleep(seconds)
    out["agents"] = agents
    out["commands_per_s_per_idle_agent_all_roles"] = round(
        out["commands_per_s_without_bench"] / agents, 2
    )
    per_role(out, agents, per_node)


def per_role(out: dict[str, Any], agents: int, per_node: int) -> None:
    """A window's rates per agent (the agents' own, the leader's) and per node per agent it
    runs (each node pass reads its own agents only: `control/nodepass.py`)."""
    by_role = out["commands_per_s_by_role"]
    nodes = out["processes_by_role"]["node"]
    out["commands_per_s_per_agent_own"] = round(by_role.get("agent", 0) / agents, 3)
    out["leader_commands_per_s_per_agent"] = round(by_role.get("leader", 0) / agents, 3)
    out["commands_per_s_per_node"] = round(by_role.get("node", 0) / max(nodes, 1), 1)
    out["commands_per_s_per_node_per_own_agent"] = round(
        by_role.get("node", 0) / max(nodes, 1) / per_node, 3
    )


def node_pass_limit(st: ScaleTown, node: str, seconds: float, out: dict[str, Any]) -> None:
    """The limit: what a node pass reads (`nodepass.read` of node `node`, the same code: one
    pipelined round trip of its state, the suspension, the roster digest, its agents' records
    and leases) in a loop from this one process for `seconds`: the server's CPU per command of
    that mix once it is busy, so its fixed background work does not weigh on each command as
    it does at idle."""
    store = st.town.store
    desired = loader.load(st.town.paths)
    mine = nodepass.read(store, desired, node).mine
    before = redis_usage.snapshot(st.servers)
    passes, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        nodepass.read(store, desired, node, mine)
        passes += 1
    after = redis_usage.snapshot(st.servers)
    w = redis_usage.window(before, after, lambda pid: "bench")
    us = w["server_cpu_us_per_command"]
    out.update(
        {
            "passes": passes,
            "node": node,
            "agent_records_per_pass": len(mine),
            "commands_per_pass": round(w["commands"] / passes, 1) if passes else None,
            "seconds": w["seconds"],
            "commands_per_s_one_client": round(w["commands"] / w["seconds"]),
            "server_cpu_percent_of_one_core": w["server_cpu_percent_of_one_core"],
            "server_cpu_us_per_command": us,
            "single_server_commands_per_s_ceiling_at_that_cost": round(1e6 / us) if us else None,
        }
    )


def busy(st: ScaleTown, agents: int, per_node: int, seconds: float, out: dict[str, Any]) -> None:
    """Every agent running one long task: the window opens once all run."""
    hold = seconds + 30
    ids = [f"long-{i:03d}" for i in range(agents)]
    text = "".join(task(i, f"[sim:sleep:{hold:g}] long") for i in ids)
    cursor = st.last_event()
    st.tasks += text
    st.town.save("tasks.toml", st.tasks)

    def all_running() -> bool:
        recs = st.town.tasks()
        return all(recs.get(i, {}).get("state") == "running" for i in ids)

    until(all_running, 120, "every agent running its long task")
    with st.window(out):
        time.sleep(seconds)
    out["running_tasks"] = agents
    out["commands_per_s_per_running_task_all_roles"] = round(
        out["commands_per_s_without_bench"] / agents, 2
    )
    per_role(out, agents, per_node)
    out["sim_sleep_s"] = hold
    left = set(ids)
    deadline = time.monotonic() + hold + 120
    while left and time.monotonic() < deadline:
        for eid, f in st.town.store.events_since(cursor, count=10000, block_ms=1000):
            cursor = eid
            if f.get("type") == "task.completed":
                left.discard(f.get("task", ""))
    if left:
        raise TimeoutError(f"{len(left)} long tasks not completed")


def kill_node(st: ScaleTown, node: str) -> float:
    """What a host's death does: the node process and every agent and model process it
    started, SIGKILLed (each agent and model leads its own process group). Returns the time."""
    groups = []
    for rec in st.town.agents().values():
        if rec.get("node") == node:
            groups += [int(rec[k]) for k in ("pid", "model_pid") if rec.get(k, "").isdigit()]
    proc = st.nodes[node]
    killed_at = time.time()
    proc.send_signal(signal.SIGKILL)
    for pid in groups:
        if alive(pid) and cwd_of(pid) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    proc.wait(timeout=10)
    return killed_at


def dead_nodes(st: ScaleTown, kills: int, lease: float, out: dict[str, Any]) -> None:
    hold = 4 * lease + 60  # still running long after its re-claim
    samples: list[float] = []
    detail = []
    for k in range(kills):
        tid = f"dead-{k}"
        st.tasks += task(tid, f"[sim:sleep:{hold:g}] runs on a node that dies")
        st.town.save("tasks.toml", st.tasks)

        def running(tid: str = tid) -> tuple[str, str] | None:
            t = st.town.tasks().get(tid, {})
            rec = st.town.agents().get(t.get("assignee", ""), {})
            if rec.get("task") == tid and rec.get("model_pid", "").isdigit():
                return t["assignee"], rec["node"]
            return None

        victim, node = until(running, 60, f"{tid} running on a node")
        killed_at = kill_node(st, node)

        def claimed_again(tid: str = tid) -> dict[str, str] | None:
            got = [e for e in st.town.events("task.claimed") if e.get("task") == tid][1:]
            return got[0] if got else None

        again = until(claimed_again, 4 * lease + 60, f"{tid} claimed again")
        samples.append(float(again["ts"]) - killed_at)
        detail.append(
            {
                "task": tid,
                "killed_node": node,
                "killed_agent": victim,
                "claimed_by": again["agent"],
                "seconds_kill_to_claim": round(samples[-1], 3),
            }
        )
        assert not again["agent"].startswith(f"{node}-"), again
    out.update({"samples": detail, "kill_to_claim_on_another_node": stats(samples)})


def memory_per_100k(tmp: Path, n: int) -> dict[str, Any]:
    """A generated town of `n` tasks applied (`tt apply`, agents suspended) into an empty
    embedded server: used_memory after minus before, scaled linearly to 100,000 tasks."""
    town = LiveTown(tmp / "memory")
    town.write(generated_town("memory"), generated_tasks(n, backlog=n // 100))
    try:
        client = redis_usage.connect(server.ensure_running(TownPaths(town.root)))
        before = client.info("memory")
        done = town.tt("apply", timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"tt apply failed: {done.stderr}")
        after = client.info("memory")
        keys = int(client.dbsize())
        client.close()
    finally:
        town.cleanup()
    used = int(after["used_memory"]) - int(before["used_memory"])
    dataset = int(after["used_memory_dataset"]) - int(before["used_memory_dataset"])
    return {
        "tasks_applied": n,
        "keys": keys,
        "used_memory_delta_bytes": used,
        "used_memory_dataset_delta_bytes": dataset,
        "bytes_per_task": round(used / n),
        "mib_per_100k_tasks_scaled_linearly": round(used * 100_000 / n / 2**20, 1),
        "dataset_mib_per_100k_tasks_scaled_linearly": round(dataset * 100_000 / n / 2**20, 1),
        "note": "tasks applied, not run; a run adds attempt records and results (see "
        "throughput.used_memory_bytes_per_completed_task)",
    }


def run_town(
    tmp: Path, label: str, args: argparse.Namespace, cluster: Any = None
) -> dict[str, Any]:
    """One town of `args.nodes` × `args.agents` on the embedded server (or `cluster`)."""
    policy = {"lease": args.lease, "heartbeat": args.heartbeat}
    total = args.nodes * args.agents
    names = [f"n{k}-{j}" for k in range(1, args.nodes + 1) for j in range(1, args.agents + 1)]
    out: dict[str, Any] = {"nodes": args.nodes, "agents_per_node": args.agents, "agents": total}
    url = None if cluster is None else cluster.url
    with live_town(tmp / label, sim_delay=0, redis_url=url) as town:
        town.write(scale_town(label, args.nodes, args.agents, policy), "")
        if cluster is None:
            servers = [redis_usage.connect(server.ensure_running(town.paths))]
            out["server"] = "embedded valkey, unix socket"
        else:
            servers = [cluster.node(p) for p in cluster.ports]
            out["server"] = f"redis cluster of {len(cluster.ports)} primaries, TCP 127.0.0.1"
            out["town_on_primary"] = cluster.owner(town.store.keys.meta)
        started = time.monotonic()
        st = ScaleTown(town, servers, args.node_lease)
        st.start_nodes(args.nodes)
        st.wait_idle(names, timeout=600)
        out["seconds_start_to_all_agents_idle"] = round(time.monotonic() - started, 1)
        st.run_tasks(
            [f"warm-{i}" for i in range(total)],
            "".join(task(f"warm-{i}", "warm-up") for i in range(total)),
            timeout=600,
        )
        out["idle"] = {}
        idle(st, args.idle_seconds, total, args.agents, out["idle"])
        out["throughput"] = {}
        throughput(st, args.tasks, "quick", out["throughput"])
        out["limit_node_pass_reads_in_a_loop"] = {}
        node_pass_limit(st, "n1", 3.0, out["limit_node_pass_reads_in_a_loop"])
        if cluster is not None:
            return out
        out["busy"] = {}
        busy(st, total, args.agents, args.busy_seconds, out["busy"])
        out["dead_node"] = {
            "agent_lease_s": args.lease,
            "agent_heartbeat_s": args.heartbeat,
            "node_lease_s": args.node_lease,
            "node_interval_s": 1.0,
        }
        if args.kills:
            dead_nodes(st, args.kills, args.lease, out["dead_node"])
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--agents", type=int, default=8, help="agents per node")
    parser.add_argument("--tasks", type=int, default=600, help="quick tasks of the batch")
    parser.add_argument("--kills", type=int, default=3, help="dead-node samples")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--busy-seconds", type=float, default=15.0)
    parser.add_argument("--lease", type=float, default=10.0, help="the agents' lease (town)")
    parser.add_argument("--heartbeat", type=float, default=2.0, help="the agents' heartbeat")
    parser.add_argument("--node-lease", type=float, default=10.0)
    parser.add_argument("--memory-tasks", type=int, default=20_000)
    parser.add_argument("--no-cluster", action="store_true", help="skip the Redis Cluster run")
    args = parser.parse_args(argv)
    if args.kills >= args.nodes:
        parser.error("--kills must be below --nodes: a dead node's task needs another node")
    return args


def main() -> None:
    emit("scale", run(parse()))


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ttscale") as tmp_name:
        tmp = Path(tmp_name)
        single = run_town(tmp, "scale", args)
        cluster_out: dict[str, Any] = {"skipped": "--no-cluster"}
        if not args.no_cluster:
            try:
                cluster = start_cluster(tmp / "cluster")
            except pytest.skip.Exception as e:
                cluster_out = {"skipped": str(e)}
            else:
                try:
                    cluster_out = run_town(tmp, "scalec", args, cluster)
                finally:
                    cluster.stop()
        memory = memory_per_100k(tmp, args.memory_tasks) if args.memory_tasks else {}
    return {
        "load_average_1_5_15_before": [round(x, 2) for x in load_before],
        "load_average_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "placement": "unpinned (every process where the OS puts it)",
        "seconds": round(time.monotonic() - started, 1),
        "single_server": single,
        "cluster": cluster_out,
        "memory": memory,
        "extrapolation_100_nodes_x_10_agents": extrapolate(single, memory, 100, 10),
    }


def extrapolate(m: dict[str, Any], memory: dict[str, Any], nodes: int, per: int) -> dict[str, Any]:
    """The measured rates scaled to `nodes` × `per` agents, each by what it grows with (read
    from the code, not fitted): an agent's own commands with the agents; a node's with the
    nodes and the agents each runs (each node pass, every second, reads its own agents only:
    `control/nodepass.py`, one pipelined round trip of a few fixed commands, one HGETALL per
    own agent and an MGET of their leases; the fixed commands are scaled too, so this errs
    high); the leader's with the agents (its heal pass, every heartbeat, reads them all). The
    single server's ceiling: one core's worth of commands at the server CPU per command
    measured while a node pass's reads ran in a loop."""
    agents = nodes * per

    def rates(w: dict[str, Any]) -> dict[str, float]:
        return {
            "agents": w["commands_per_s_per_agent_own"] * agents,
            "nodes": w["commands_per_s_per_node_per_own_agent"] * per * nodes,
            "leader": w["leader_commands_per_s_per_agent"] * agents,
        }

    out: dict[str, Any] = {"nodes": nodes, "agents": agents}
    out["measured_at"] = {"nodes": m["nodes"], "agents": m["agents"]}
    limit = m["limit_node_pass_reads_in_a_loop"][
        "single_server_commands_per_s_ceiling_at_that_cost"
    ]
    for name, w in (("idle", m["idle"]), ("all_running", m["busy"])):
        r = rates(w)
        total = sum(round(v) for v in r.values())
        out[name] = {
            "commands_per_s_by_role": {k: round(v) for k, v in r.items()},
            "commands_per_s": total,
            "server_cpu_us_per_command_measured_in_the_window": w["server_cpu_us_per_command"],
            "commands_per_s_vs_ceiling": round(total / limit, 3) if limit else None,
        }
    idle_cpu = m["idle"]["process_cpu_percent_of_one_core_by_role"]
    node_count = max(m["idle"]["processes_by_role"]["node"], 1)
    out["idle_leader_cpu_percent_of_one_core"] = round(idle_cpu["leader"] * agents / m["agents"], 1)
    out["idle_node_cpu_percent_of_one_core_each"] = round(
        idle_cpu["node"] / node_count * per / m["agents_per_node"], 1
    )
    per_task = m["throughput"]["commands_per_task_without_bench"]
    out["single_server_commands_per_s_ceiling_busy_server"] = limit
    out["commands_per_task"] = per_task
    spare = (limit or 0) - out["idle"]["commands_per_s"]
    out["tasks_per_s_single_server_ceiling_beside_idle"] = (
        round(spare / per_task) if per_task and spare > 0 else 0
    )
    out["redis_memory_mib_per_100k_tasks"] = memory.get("mib_per_100k_tasks_scaled_linearly")
    return out


if __name__ == "__main__":
    main()
