"""tests/benchmarks/bench_scale.py at a tiny size (2 nodes × 1 agent), so it cannot rot: run as
`python -m`, it prints JSON in which every phase did what it measures — the batch completed on
the nodes, the commands of each window traced to agents, nodes and the leader, a dead node's
task claimed by the other node's agent, the generated town's memory, the same town on a Redis
Cluster living on one primary, and the extrapolation computed from those figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="traces processes through /proc"),
]

ARGV = ["--nodes", "2", "--agents", "1", "--tasks", "6", "--kills", "1", "--idle-seconds", "1"]
ARGV += ["--busy-seconds", "1", "--lease", "2", "--heartbeat", "0.5", "--node-lease", "2"]
ARGV += ["--memory-tasks", "300"]


def test_the_scale_benchmark_runs_at_a_tiny_size_and_prints_json() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.bench_scale", *ARGV],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout)
    assert printed["benchmark"] == "scale" and len(printed["load_average_1_5_15_before"]) == 3

    single = printed["single_server"]
    assert (single["nodes"], single["agents_per_node"], single["agents"]) == (2, 1, 2)
    batch = single["throughput"]
    assert batch["tasks"] == 6 and sum(batch["tasks_per_node"].values()) == 6
    assert set(batch["tasks_per_node"]) <= {"n1", "n2"} and batch["tasks_per_s"] > 0
    for window in (single["idle"], single["busy"], batch):
        assert window["processes_by_role"] == {"leader": 1, "node": 2, "agent": 2}
        roles = window["commands_by_role"]
        assert roles["agent"] > 0 and roles["node"] > 0 and roles["leader"] > 0, roles
    assert single["busy"]["running_tasks"] == 2

    dead = single["dead_node"]
    assert (dead["agent_lease_s"], dead["node_lease_s"]) == (2, 2)
    (sample,) = dead["samples"]
    assert not sample["claimed_by"].startswith(sample["killed_node"] + "-"), sample
    assert dead["kill_to_claim_on_another_node"]["n"] == 1

    memory = printed["memory"]
    assert memory["tasks_applied"] == 300 and memory["keys"] >= 300
    assert memory["bytes_per_task"] > 0

    cluster = printed["cluster"]
    if "skipped" not in cluster:  # a binary built without cluster mode skips that part
        assert cluster["throughput"]["tasks"] == 6
        by_server = cluster["throughput"]["commands_by_server"]
        assert len(by_server) == 3 and max(by_server) > 0.9 * sum(by_server), by_server

    ext = printed["extrapolation_100_nodes_x_10_agents"]
    assert ext["agents"] == 1000 and ext["measured_at"] == {"nodes": 2, "agents": 2}
    assert ext["idle"]["commands_per_s"] == sum(ext["idle"]["commands_per_s_by_role"].values())
    assert ext["redis_memory_mib_per_100k_tasks"] == memory["mib_per_100k_tasks_scaled_linearly"]
