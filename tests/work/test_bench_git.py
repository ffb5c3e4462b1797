"""tests/benchmarks/bench_git.py at a tiny size, so it cannot rot: every step timed on both sides,
every task merged onto base once, nothing left behind, tt's git calls attributed to their step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.benchmarks.bench_git import STEPS, run


def test_the_git_benchmark_runs_at_a_tiny_size() -> None:
    found = run(files=30, runs=2, tasks=3, end_to_end=1)
    steps = found["steps"]
    assert isinstance(steps, dict) and set(steps) == set(STEPS)
    for name, step in steps.items():
        assert step["tt"]["n"] == step["raw"]["n"] == 2, name
        assert step["ratio_p50"] > 0 and step["tt_git"]["git_calls"] >= 1, name
    commands = {name: set(step["tt_git"]["by_command"]) for name, step in steps.items()}
    assert "worktree add" in commands["worktree"] and "commit" in commands["commit"]
    assert "rebase" in commands["merge"] and "worktree remove" in commands["cleanup"]
    # a warm-up task and 2 timed a side, 3 a side through the queue, 1 through finish twice
    assert found["commits_on_base"] == 2 + 2 * 2 + 2 * 3 + 2
    assert found["worktrees_left"] == 0
    throughput = found["throughput"]
    assert isinstance(throughput, dict) and throughput["tasks"] == 3
    assert throughput["tt_merges_per_s"] > 0 and throughput["raw_merges_per_s"] > 0
    finish = found["finish_end_to_end"]
    assert isinstance(finish, dict) and finish["as_is"]["n"] == finish["wait_0"]["n"] == 1


def test_the_git_benchmark_prints_json() -> None:
    argv = ["--files", "10", "--runs", "1", "--tasks", "2", "--end-to-end", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.bench_git", *argv],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["benchmark"] == "git" and printed["files"] == 10
    assert printed["commits_on_base"] == 2 + 2 * 1 + 2 * 2 + 2
