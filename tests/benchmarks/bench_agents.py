"""Agents that really run: dispatch and message latency, throughput, idle cost, start-up.

Each figure sits beside its limit (a BLPOP handoff between two processes) and its peer (RQ's
SimpleWorker / forking Worker on the same server), measured in the same run.

Run: python -m tests.benchmarks.bench_agents [--idle-seconds 60] [--tasks 1000]  (prints JSON)
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.agents.supervisor import is_alive
from reconciler.control import verbs
from reconciler.control.apply import ApplyOptions, apply
from reconciler.control.down import down
from reconciler.control.session import Session
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.benchmarks.common import emit, stats

REPO = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGETS = {
    "dispatch_p50_ms": 5,
    "dispatch_p99_ms": 25,
    "message_receipt_p50_ms": 1,
    "throughput_tasks_per_s": 400,
    "throughput_vs_rq_simple": 2.0,  # same run, same server: tt's tasks/s over RQ's jobs/s
    "idle_cpu_percent_of_one_core_total": 0.5,
    "rss_mb_per_agent": 50,
}


# -- a town of real agent processes ----------------------------------------------------------------


class BenchTown:
    """A town folder with its embedded server and agents started by the engine (as `tt apply`)."""

    def __init__(self, root: Path, town_toml: str, tasks_toml: str = "") -> None:
        root.mkdir(parents=True)
        (root / "town.toml").write_text(town_toml)
        (root / "tasks.toml").write_text(tasks_toml)
        self.session = Session(TownPaths(root))
        self.store: Store = self.session.store
        self.pids: set[int] = set()

    def apply(self) -> None:
        apply(self.session, ApplyOptions(command="bench"))

    def write_tasks(self, text: str) -> None:
        (self.session.paths.root / "tasks.toml").write_text(text)

    def wait_idle(self, names: list[str], timeout: float = 60) -> dict[str, int]:
        """Until every agent registered (state idle, live lease); returns name → pid."""
        deadline = time.monotonic() + timeout
        while True:
            recs = self.store.agent_records()
            beats = self.store.heartbeat_alive(names)
            if all(recs.get(n, {}).get("state") == "idle" and beats[n] for n in names):
                pids = {n: int(recs[n]["pid"]) for n in names}
                self.pids |= set(pids.values())
                return pids
            if time.monotonic() > deadline:
                raise TimeoutError(f"agents not idle: { {n: recs.get(n) for n in names} }")
            time.sleep(0.02)

    def wait_tasks(self, ids: list[str], timeout: float = 120) -> dict[str, dict[str, str]]:
        """Until every task completed (a light poll: one pipelined HGET per task, 10 times a
        second, so the bench steals little CPU from the agents); then their records."""
        client, keys = self.store.client, self.store.keys
        deadline = time.monotonic() + timeout
        while True:
            pipe = client.pipeline(transaction=False)
            for i in ids:
                pipe.hget(keys.task(i), "state")
            states = pipe.execute()
            if all(st == "completed" for st in states):
                return {r["id"]: r for r in self.store.task_records()}
            if "failed" in states:
                failed = ids[states.index("failed")]
                raise RuntimeError(f"{failed} failed: {client.hget(keys.task(failed), 'error')}")
            if time.monotonic() > deadline:
                raise TimeoutError("tasks not completed")
            time.sleep(0.1)

    def down(self) -> None:
        try:
            self.session.close()
            down(self.session.paths)
        finally:  # whatever happened, no agent of the bench outlives it (by pid, never by name)
            root = str(self.session.paths.root)
            for pid in self.pids:
                with contextlib.suppress(OSError):
                    if is_alive(pid) and root in Path(f"/proc/{pid}/cmdline").read_text():
                        os.kill(pid, signal.SIGKILL)


def pool_names(name: str, replicas: int) -> list[str]:
    """The instances of a pool as tt names them: `w`, `w-2`, … (the first keeps the name)."""
    return [name, *(f"{name}-{i}" for i in range(2, replicas + 1))]


def town_toml(
    name: str, models: dict[str, list[str]], agents: dict[str, str], extra: str = ""
) -> str:
    lines = ["[town]", f'name = "{name}"', extra, ""]
    for model, argv in models.items():
        quoted = ", ".join(f'"{a}"' for a in argv)
        lines += [f"[models.{model}]", f"command = [{quoted}]", 'prompt = "stdin"', ""]
    for agent, spec in agents.items():
        lines += [f"[agents.{agent}]", spec, ""]
    return "\n".join(lines)


STAMP = ["date", "+%s.%N"]  # the model prints the moment it started (exec to print: ~1 ms)


# -- dispatch: a parent completes → its child's model process starts -------------------------------


def bench_dispatch(tmp: Path, n: int) -> dict[str, Any]:
    """A chain t1 → t2 → … alternating between two idle agents: each hop is the completion of a
    task releasing its child on the other agent, which claims it and starts its model."""
    ids = [f"t{i:04d}" for i in range(n + 1)]
    tasks = "".join(
        f'[[tasks]]\nid = "{tid}"\ndescription = "hop"\nagent = "{"ab"[i % 2]}"\n'
        + (f'parent = "{ids[i - 1]}"\n' if i else "")
        for i, tid in enumerate(ids)
    )
    town = BenchTown(
        tmp / "dispatch",
        town_toml("dispatch", {"stamp": STAMP}, {"a": 'model = "stamp"', "b": 'model = "stamp"'}),
    )
    try:
        town.apply()
        town.wait_idle(["a", "b"])
        town.write_tasks(tasks)
        town.apply()
        recs = town.wait_tasks(ids)
    finally:
        town.down()
    hops = [
        float(recs[child]["result"]) - float(recs[parent]["finished_at"])
        for parent, child in itertools.pairwise(ids)
    ]
    return stats(hops)


# -- messages: store.send → the idle agent has it --------------------------------------------------


def bench_messages(tmp: Path, n: int) -> dict[str, Any]:
    """Receipt: the idle agent popped the message (the `message.read` event it writes, stamped
    by the agent). Answered: the model process of its answering turn started."""
    town = BenchTown(
        tmp / "messages", town_toml("messages", {"stamp": STAMP}, {"l": 'model = "stamp"'})
    )
    try:
        town.apply()
        town.wait_idle(["l"])
        store, client = town.store, town.store.client
        cursor = store.events_since("-", count=100000)[-1][0]
        receipt, answered = [], []
        for i in range(n):
            sent = time.time()
            store.send("l", "bench", f"message {i}")
            read_at = None
            while read_at is None:
                entries = store.events_since(cursor, block_ms=5000)
                if not entries:
                    raise TimeoutError("the agent did not read the message")
                for eid, fields in entries:
                    cursor = eid
                    if fields.get("type") == "message.read" and fields.get("agent") == "l":
                        read_at = float(fields["ts"])
            receipt.append(read_at - sent)
            got = client.blpop([store.keys.inbox("bench")], timeout=5)
            if got is None:
                raise TimeoutError("no answer")
            answered.append(float(json.loads(got[1])["text"]) - sent)
            while client.hget(store.keys.agent("l"), "state") != "idle":
                time.sleep(0.001)
    finally:
        town.down()
    return {"receipt": stats(receipt), "answer_model_started": stats(answered)}


# -- throughput: N trivial tasks through 8 agents, beside RQ's SimpleWorkers on the same server ---


def bench_throughput(tmp: Path, n: int, agents: int, rounds: int) -> dict[str, Any]:
    """`rounds` times: `n` tasks through `agents` idle agents (each task a model process that
    exits at once), then `n` no-op jobs through as many idle RQ SimpleWorkers (in-process jobs:
    no process per job) on the same Valkey server. Each ratio compares one round's two runs."""
    names = pool_names("w", agents)
    town = BenchTown(
        tmp / "throughput",
        town_toml("throughput", {"true": ["true"]}, {"w": f'model = "true"\nreplicas = {agents}'}),
    )
    ours: list[dict[str, Any]] = []
    peer: list[float] = []
    tasks = ""
    try:
        town.apply()
        town.wait_idle(names)
        socket_path = town.store.url.removeprefix("unix://")
        for r in range(rounds):
            ids = [f"r{r}-{i:05d}" for i in range(n)]
            tasks += "".join(
                f'[[tasks]]\nid = "{t}"\ndescription = "x"\nagent = "w"\n' for t in ids
            )
            town.write_tasks(tasks)
            started = time.time()
            town.apply()
            applied = time.time()
            recs = town.wait_tasks(ids, timeout=300)
            first_ready = min(float(recs[t]["ready_at"]) for t in ids)
            last_done = max(float(recs[t]["finished_at"]) for t in ids)
            per_agent = Counter(recs[t]["assignee"] for t in ids)
            ours.append(
                {
                    "tasks_per_s": round(n / (last_done - first_ready), 1),
                    "seconds_ready_to_done": round(last_done - first_ready, 3),
                    "apply_seconds": round(applied - started, 3),
                    "per_agent": dict(sorted(per_agent.items())),
                }
            )
            peer.append(rq_simple_throughput(socket_path, f"tp-{r}", n, agents))
    finally:
        town.down()
    ratios = [o["tasks_per_s"] / p for o, p in zip(ours, peer, strict=True)]
    return {
        "tasks": n,
        "agents": agents,
        "tasks_per_s": statistics.median(o["tasks_per_s"] for o in ours),
        "peer_rq_simple_worker_jobs_per_s": statistics.median(peer),
        "rounds": [
            {**o, "peer_rq_simple_worker_jobs_per_s": p, "ratio": round(q, 2)}
            for o, p, q in zip(ours, peer, ratios, strict=True)
        ],
        "ratio_min": round(min(ratios), 2),
        "ratio_median": round(statistics.median(ratios), 2),
        "ratio_max": round(max(ratios), 2),
    }


# -- idle cost: CPU and memory of idle agents ------------------------------------------------------


def cpu_ticks(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def memory_kb(pid: int) -> dict[str, int]:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    pss = uss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
        elif line.startswith(("Private_Clean:", "Private_Dirty:")):
            uss += int(line.split()[1])
    return {"rss": rss, "pss": pss, "uss": uss}


def idle_usage(pids: list[int], seconds: float) -> dict[str, Any]:
    before = {p: cpu_ticks(p) for p in pids}
    time.sleep(seconds)
    used = sum(cpu_ticks(p) - before[p] for p in pids) / CLK_TCK
    mem = [memory_kb(p) for p in pids]
    return {
        "processes": len(pids),
        "seconds": seconds,
        "cpu_seconds_total": round(used, 3),
        "cpu_percent_of_one_core_total": round(100 * used / seconds, 3),
        "rss_mb_per_process_max": round(max(m["rss"] for m in mem) / 1024, 1),
        "pss_mb_per_process_max": round(max(m["pss"] for m in mem) / 1024, 1),
        "uss_mb_per_process_max": round(max(m["uss"] for m in mem) / 1024, 1),
    }


def bench_idle(tmp: Path, agents: int, seconds: float, rq_url: str) -> dict[str, Any]:
    town = BenchTown(
        tmp / "idle",
        town_toml("idle", {"true": ["true"]}, {"w": f'model = "true"\nreplicas = {agents}'}),
    )
    rq_workers: list[subprocess.Popen[bytes]] = []
    try:
        spawned = time.time()
        town.apply()
        pids = town.wait_idle(pool_names("w", agents))
        start_up = [
            float(f["ts"]) - spawned
            for _, f in town.store.events_since("-", count=10000)
            if f.get("type") == "agent.started"
        ]
        rq_workers = [start_rq_worker(rq_url, "idle", simple=True) for _ in range(agents)]
        time.sleep(2)  # every process past its start-up
        peer: dict[str, Any] = {}
        thread = threading.Thread(
            target=lambda: peer.update(idle_usage([w.pid for w in rq_workers], seconds))
        )
        thread.start()
        ours = idle_usage(list(pids.values()), seconds)
        thread.join()
    finally:
        for w in rq_workers:
            w.terminate()
            w.wait()
        town.down()
    return {
        "agents": ours,
        "start_of_all_from_apply": stats(start_up),
        "peer_rq_simple_workers": peer,
    }


def bench_start(tmp: Path, runs: int) -> dict[str, Any]:
    """One agent process: spawned → registered and waiting for work (`tt restart` each run)."""
    town = BenchTown(tmp / "start", town_toml("start", {"true": ["true"]}, {"a": 'model = "true"'}))
    try:
        town.apply()
        town.wait_idle(["a"])
        for _ in range(runs):
            verbs.restart(town.session, "a")
            town.wait_idle(["a"])
        events = town.store.events_since("-", count=100000)
    finally:
        town.down()
    spawned = [float(f["ts"]) for _, f in events if f.get("type") == "agent.spawned"]
    started = [float(f["ts"]) for _, f in events if f.get("type") == "agent.started"]
    return stats([b - a for a, b in zip(spawned, started, strict=True)])


# -- the limit: BLPOP handoff between two processes ------------------------------------------------

HANDOFF = """
import sys, time, redis
r = redis.Redis(unix_socket_path=sys.argv[1], protocol=2)
for _ in range(int(sys.argv[2])):
    _, sent = r.blpop(["bench:ping"])
    r.rpush("bench:pong", repr(time.time() - float(sent)))
"""


def bench_blpop(socket_path: str, n: int) -> dict[str, Any]:
    """One-way handoff (RPUSH here → the other process's BLPOP returns), unpinned as the
    agents run, and pinned to one CPU / two CPUs (single operations are bimodal on this VM)."""
    import redis

    r = redis.Redis(unix_socket_path=socket_path, protocol=2, decode_responses=True)
    cpus = sorted(os.sched_getaffinity(0))
    placements: dict[str, tuple[int, int] | None] = {"unpinned": None}
    if len(cpus) > 1 and shutil.which("taskset"):
        placements |= {"same_cpu": (cpus[0], cpus[0]), "two_cpus": (cpus[0], cpus[1])}
    out: dict[str, Any] = {}
    for name, pin in placements.items():
        argv = [sys.executable, "-c", HANDOFF, socket_path, str(n)]
        if pin is not None:
            argv = ["taskset", "-c", str(pin[1]), *argv]
            os.sched_setaffinity(0, {pin[0]})
        proc = subprocess.Popen(argv)
        try:
            samples = []
            for _ in range(n):
                time.sleep(0.002)  # the other side is blocked in BLPOP, as an idle agent is
                r.rpush("bench:ping", repr(time.time()))
                samples.append(float(r.blpop(["bench:pong"], timeout=10)[1]))  # type: ignore[index]
            out[name] = stats(samples)
        finally:
            proc.wait(timeout=10)
            os.sched_setaffinity(0, cpus)
    return out


# -- the peer: RQ ----------------------------------------------------------------------------------

JOBS = "tests.benchmarks.rq_jobs"  # imported by path in RQ's workers
RQ_WORKER = """
import sys, redis
import tests.benchmarks.rq_jobs  # before a forking Worker forks: jobs cost no import
from rq import Queue, SimpleWorker, Worker
r = redis.Redis(unix_socket_path=sys.argv[1])
cls = SimpleWorker if sys.argv[3] == "simple" else Worker
cls([Queue(sys.argv[2], connection=r)], connection=r).work(burst=sys.argv[4] == "burst",
    logging_level="WARNING", with_scheduler=False)
"""


def start_rq_worker(
    socket_path: str, queue: str, *, simple: bool, burst: bool = False
) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-c",
        RQ_WORKER,
        socket_path,
        queue,
        "simple" if simple else "fork",
        "burst" if burst else "serve",
    ]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rq_simple_throughput(socket_path: str, queue: str, n_jobs: int, workers: int) -> float:
    """Jobs/s of `workers` RQ SimpleWorkers, started and idle before the jobs arrive (as the
    agents are): first job started → last job ended."""
    import redis
    from rq import Queue, Worker
    from rq.job import Job

    r = redis.Redis(unix_socket_path=socket_path)
    q = Queue(queue, connection=r)
    procs = [start_rq_worker(socket_path, queue, simple=True) for _ in range(workers)]
    try:
        deadline = time.monotonic() + 60
        while len(Worker.all(queue=q)) < workers:
            if time.monotonic() > deadline:
                raise TimeoutError("the RQ workers did not start")
            time.sleep(0.05)
        time.sleep(0.5)  # each one past registering, blocked on its queue
        jobs = q.enqueue_many([Queue.prepare_data(f"{JOBS}.noop") for _ in range(n_jobs)])
        ids = [j.id for j in jobs]
        while True:
            done = [j for j in Job.fetch_many(ids, connection=r) if j is not None]
            if len(done) == n_jobs and all(j.ended_at for j in done):
                break
            if time.monotonic() > deadline + 300:
                raise TimeoutError("the RQ jobs did not finish")
            time.sleep(0.1)
    finally:
        for p in procs:  # done: a warm shutdown of an idle RQ worker can take a minute
            p.kill()
        for p in procs:
            p.wait()
    first = min(j.started_at.timestamp() for j in done if j.started_at)
    last = max(j.ended_at.timestamp() for j in done if j.ended_at)
    return round(n_jobs / (last - first), 1)


def bench_rq(socket_path: str, n_jobs: int, workers: int, chain: int) -> dict[str, Any]:
    import redis
    from rq import Queue
    from rq.job import Job

    r = redis.Redis(unix_socket_path=socket_path)
    out: dict[str, Any] = {}
    for kind in ("fork",):  # SimpleWorkers: beside the agents, in bench_throughput
        q = Queue(f"tp-{kind}", connection=r)
        count = max(100, n_jobs // 4)
        jobs = q.enqueue_many([Queue.prepare_data(f"{JOBS}.noop") for _ in range(count)])
        procs = [
            start_rq_worker(socket_path, q.name, simple=kind == "simple", burst=True)
            for _ in range(workers)
        ]
        for p in procs:
            p.wait()
        done = [j for j in Job.fetch_many([j.id for j in jobs], connection=r) if j is not None]
        first = min(j.started_at.timestamp() for j in done if j.started_at)
        last = max(j.ended_at.timestamp() for j in done if j.ended_at)
        out[f"throughput_{'simple_worker' if kind == 'simple' else 'forking_worker'}"] = {
            "workers": workers,
            "jobs": count,
            "jobs_per_s": round(count / (last - first), 1),
        }
    # Dispatch: a job that depends on the previous one, on an idle SimpleWorker.
    q = Queue("chain", connection=r)
    worker = start_rq_worker(socket_path, "chain", simple=True)
    try:
        time.sleep(1.0)
        prev = q.enqueue(f"{JOBS}.stamp")
        chained = [prev]
        for _ in range(chain):
            prev = q.enqueue(f"{JOBS}.stamp", depends_on=prev)
            chained.append(prev)
        deadline = time.monotonic() + 60
        while not chained[-1].is_finished:
            if time.monotonic() > deadline:
                raise TimeoutError("the RQ chain did not finish")
            time.sleep(0.05)
        for j in chained:
            j.refresh()
        hops = [
            b.started_at.timestamp() - a.ended_at.timestamp()  # type: ignore[union-attr]
            for a, b in itertools.pairwise(chained)
        ]
        out["dispatch_dependent_job_simple_worker"] = stats(hops)
    finally:
        worker.terminate()
        worker.wait()
    return out


def with_server(tmp: Path, fn: Callable[[str], Any]) -> Any:
    """A plain embedded Valkey (its own town folder) for the limit and the peer."""
    from reconciler import server

    paths = TownPaths(tmp / "peer")
    paths.root.mkdir()
    server.ensure_running(paths)
    try:
        return fn(str(server.socket_path(paths)))
    finally:
        server.stop(paths)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--hops", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds (tt, then RQ)")
    args = parser.parse_args()
    for key in [k for k in os.environ if k.startswith("TT_")]:
        del os.environ[key]  # agents inherit this environment: no overrides
    with tempfile.TemporaryDirectory(prefix="ttbench") as tmp_name:
        tmp = Path(tmp_name)
        dispatch = bench_dispatch(tmp, args.hops)
        messages = bench_messages(tmp, args.hops)
        throughput = bench_throughput(tmp, args.tasks, 8, args.rounds)
        start = bench_start(tmp, 10)

        def peers(sock: str) -> dict[str, Any]:
            return {
                "limit_blpop_handoff": bench_blpop(sock, 2000),
                "rq": bench_rq(sock, args.tasks, 8, args.hops),
                "idle": bench_idle(tmp, 10, args.idle_seconds, sock),
            }

        other = with_server(tmp, peers)
    emit(
        "agents",
        {
            "dispatch_parent_done_to_child_model_start": dispatch,
            "message_send_to_agent": messages,
            "throughput_trivial_tasks": throughput,
            "throughput_vs_rq_simple": {
                "value": throughput["ratio_median"],
                "min": throughput["ratio_min"],
                "target": TARGETS["throughput_vs_rq_simple"],
            },
            "idle_10_agents": other["idle"],
            "idle_cpu_percent_of_one_core_10_agents": {
                "value": other["idle"]["agents"]["cpu_percent_of_one_core_total"],
                "limit": TARGETS["idle_cpu_percent_of_one_core_total"],
            },
            "agent_process_spawned_to_waiting": start,
            "limit_blpop_handoff_between_processes": other["limit_blpop_handoff"],
            "peer_rq": other["rq"],
            "targets": TARGETS,
        },
    )


if __name__ == "__main__":
    main()
