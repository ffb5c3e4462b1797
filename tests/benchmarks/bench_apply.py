"""`tt apply` on a generated 10,000-task town, beside the raw limit and a peer in the same run.

Measured on one embedded Valkey (unix socket, AOF everysec), all against the same server:
- the whole `tt apply` process into an empty town, a no-op re-apply, and the applies of a
  one-task edit, a one-task addition and a one-task removal (each beside the no-op: an edit
  must cost about what its size says, not what the town's does);
- the whole `tt assign` process appending one task to the applied town (its edit of tasks.toml,
  validation, and the apply of the new task);
- the apply's phases in-process (load + validate, read Redis, plan, write), its write phase
  being "the Redis phase" compared with the raw limit;
- the raw limit: redis-py pipelining 10,000 hashes of 8 fields, no logic;
- the peer: RQ `enqueue_many` of 10,000 jobs;
- the peak RSS of each apply process (its own rusage from wait4: getrusage's ru_maxrss for
  that one child, not the largest of all children), and `tt --help`.

Run: python -m tests.benchmarks.bench_apply [--tasks N] [--runs N] [--unpinned]  (prints JSON)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler import server
from reconciler.store.client import ENV_URL, Store
from reconciler.town import TownPaths
from tests.benchmarks.common import emit, stats, timed
from tests.towngen import tasks_toml, town_toml

TARGETS = {"noop_apply_s": 0.5, "one_task_edit_s": 1.0, "peak_rss_mb": 200, "tt_help_ms": 200}
# Ratios within one run (issue 10): a one-task edit, addition or removal costs at most 1.5x a
# no-op re-apply of the same town; 10,000 new tasks at most half of RQ's enqueue_many.
ONE_TASK_VS_NOOP = 1.5
APPLY_VS_RQ = 0.5
ADDED = (
    '\n[[tasks]]\nid = "bench-added-{run}"\ndescription = "added by the benchmark"\nagent = "dev"\n'
)


def run_tt(town: Path, *args: str) -> tuple[float, int, str]:
    """(seconds, peak RSS in KiB, stdout) of one whole `tt` process."""
    env = {k: v for k, v in os.environ.items() if k not in (ENV_URL, "TT_TOWN")}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", *args, "--town", str(town)],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        _, status, usage = os.wait4(proc.pid, 0)  # its own rusage, peak RSS included
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"tt {' '.join(args)} failed: {err.read().decode()}")
        return seconds, usage.ru_maxrss, out.read().decode()


def flush(client: Any) -> None:
    """Empty the server before a measurement, synchronously: a lazy (background) free of the
    last run's keys would compete with the next measurement for the server's CPU."""
    client.execute_command("FLUSHALL", "SYNC")


def raw_limit(client: Any, n: int) -> Callable[[], None]:
    """10,000 hashes of 8 fields in one pipeline: the fastest way to write what apply writes."""

    def run() -> None:
        pipe = client.pipeline(transaction=False)
        for i in range(n):
            pipe.hset(
                f"raw:{i}",
                mapping={
                    "id": f"t-{i}",
                    "state": "ready",
                    "kind": "work",
                    "target": "dev",
                    "deps": "[]",
                    "order": i,
                    "hash": "0123456789abcdef",
                    "spec": '{"description":"task"}',
                },
            )
        pipe.execute()

    return run


def rq_enqueue_many(url: str, n: int) -> Callable[[], None]:
    import redis
    from rq import Queue

    queue = Queue("bench", connection=redis.Redis.from_url(url))

    def run() -> None:
        jobs = [Queue.prepare_data("builtins.print", args=(f"job {i}",)) for i in range(n)]
        queue.enqueue_many(jobs)

    return run


def in_process_phases(root: Path) -> dict[str, float]:
    """One `controller.apply` into an empty town, in this process, its phases timed (seconds):
    the real code path, with its steps wrapped."""
    from reconciler.control import apply as controller
    from reconciler.control.apply import ApplyOptions
    from reconciler.control.session import Session

    timings: dict[str, float] = {}

    def timing(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - started

        return wrapper

    session = Session.find(str(root))
    store = session.store
    session.validate = timing("load_validate_s", session.validate)  # type: ignore[method-assign]
    names = {
        "_remember": "record_clean_s",  # the clean record and the snapshot for the next edit
        "observe": "read_observed_s",
        "with_changed_specs": "read_observed_s",
        "diff": "plan_s",
        "execute": "redis_phase_s",
        # A town without tasks is planned as it is written: the graph is its plan phase, and
        # the Redis phase also plans each batch while Redis runs the one before.
        "task_actions": "plan_s",
        "execute_actions": "redis_phase_s",
    }
    saved = {name: getattr(controller, name) for name in names}
    try:
        for name, fn in saved.items():
            setattr(controller, name, timing(names[name], fn))
        store.client.config_resetstat()
        started = time.perf_counter()
        controller.apply(session, ApplyOptions(start_agents=False))
        timings["apply_s"] = time.perf_counter() - started
        stats = store.client.info("commandstats")
        timings["server_busy_s"] = sum(v["usec"] for v in stats.values()) / 1e6
    finally:
        for name, fn in saved.items():
            setattr(controller, name, fn)
        session.close()
    return timings


def pin(paths: TownPaths) -> str:
    """Server on one vCPU, this process and every child on another (PERF-FACTS: single
    operations are bimodal on this VM, so the placement is fixed and reported)."""
    cpus = sorted(os.sched_getaffinity(0))
    st = server.status(paths)
    if len(cpus) < 2 or st is None:
        return "unpinned"
    os.sched_setaffinity(st.pid, {cpus[0]})
    os.sched_setaffinity(0, {cpus[1]})
    return f"server on cpu {cpus[0]}, clients on cpu {cpus[1]}"


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "min_s": round(min(samples), 3),
        "median_s": round(statistics.median(samples), 3),
        "max_s": round(max(samples), 3),
        "n": len(samples),
    }


def byte_compile() -> None:
    """Compile the package's modules as `pip install` does: a source checkout run with
    PYTHONDONTWRITEBYTECODE (set on this machine) would otherwise compile every module in
    every `tt` process (~80 ms), which no installed `tt` does."""
    import compileall

    here = Path(__file__).resolve().parents[2]
    for package in ("reconciler", "cli"):
        compileall.compile_dir(here / package, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--unpinned", action="store_true", help="Leave CPU placement to the OS.")
    args = parser.parse_args()
    n, runs = args.tasks, args.runs
    text = tasks_toml(n, backlog=n // 100)
    byte_compile()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "town"
        root.mkdir()
        (root / "town.toml").write_text(town_toml("bench"))
        (root / "tasks.toml").write_text(text)
        paths = TownPaths(root)
        url = server.ensure_running(paths)
        placement = "unpinned" if args.unpinned else pin(paths)
        store = Store.open(url, "bench")
        client = store.client
        try:
            full, noop, edit, add, remove, assign, rss = [], [], [], [], [], [], []
            phases: list[dict[str, float]] = []
            for run in range(runs):
                flush(client)
                seconds, peak, out = run_tt(root, "apply")
                assert f"{n + 1} to create" in out, out[-300:]
                full.append(seconds)
                rss.append(peak)
                for _ in range(2):
                    seconds, peak, out = run_tt(root, "apply")
                    assert out.strip() == "Everything up to date", out[-300:]
                    noop.append(seconds)
                    rss.append(peak)
                old = "task 7 of epic 3:" if run % 2 == 0 else "task 7 of epic 3 (edited):"
                new = "task 7 of epic 3 (edited):" if run % 2 == 0 else "task 7 of epic 3:"
                (root / "tasks.toml").write_text(
                    (root / "tasks.toml").read_text().replace(old, new, 1)
                )
                seconds, peak, out = run_tt(root, "apply")
                assert out.startswith("~ task t-3-7: description\n"), out[-300:]
                edit.append(seconds)
                rss.append(peak)
                before = (root / "tasks.toml").read_bytes()
                (root / "tasks.toml").write_bytes(before + ADDED.format(run=run).encode())
                seconds, peak, out = run_tt(root, "apply")
                assert out.startswith(f"+ task bench-added-{run}"), out[-300:]
                assert "Applied: 1 to create, 0 to change, 0 to delete" in out, out[-300:]
                add.append(seconds)
                rss.append(peak)
                (root / "tasks.toml").write_bytes(before)
                seconds, peak, out = run_tt(root, "apply")
                assert out.startswith(f"- task bench-added-{run}"), out[-300:]
                assert "Applied: 0 to create, 0 to change, 1 to delete" in out, out[-300:]
                remove.append(seconds)
                rss.append(peak)
                seconds, peak, out = run_tt(root, "assign", "dev", f"Review release {run}")
                assert out.startswith(f"assigned t-review-release-{run} to dev"), out[-300:]
                assign.append(seconds)
                (root / "tasks.toml").write_bytes(before)  # the next run applies n tasks again
                flush(client)
                phases.append(in_process_phases(root))
            flush(client)
            raw = timed(raw_limit(client, n), runs)
            flush(client)
            rq = []
            for _ in range(runs):
                rq += timed(rq_enqueue_many(url, n), 1)
                flush(client)
        finally:
            store.close()
            server.stop(paths)

    tt = str(Path(sys.executable).with_name("tt"))
    help_runs = timed(lambda: subprocess.run([tt, "--help"], capture_output=True, check=True), 10)
    phase = {k: round(statistics.median(p[k] for p in phases), 3) for k in phases[0]}
    full_s, rq_s = statistics.median(full), statistics.median(rq)
    noop_s = statistics.median(noop)
    ratios = {
        "one_task_edit_vs_noop": round(statistics.median(edit) / noop_s, 2),
        "one_task_add_vs_noop": round(statistics.median(add) / noop_s, 2),
        "one_task_remove_vs_noop": round(statistics.median(remove) / noop_s, 2),
        "apply_vs_rq_enqueue_many": round(full_s / rq_s, 2),
    }
    raw_s = statistics.median(raw)
    peak_mb = max(rss) / 1024
    emit(
        "apply",
        {
            "tasks": n,
            "server": "embedded valkey, unix socket, appendonly everysec",
            "placement": placement,
            "full_apply_process": summary(full),
            "full_apply_phases_in_process_median": phase,
            "noop_reapply_process": summary(noop),
            "one_task_edit_process": summary(edit),
            "one_task_add_process": summary(add),
            "one_task_remove_process": summary(remove),
            "assign_one_task_process": summary(assign),
            "limit_raw_pipelined_hset_8_fields": summary(raw),
            "peer_rq_enqueue_many": summary(rq),
            "peak_rss_mb_apply_process": round(peak_mb, 1),
            "ratios_same_run": ratios,
            "ratio_targets": {
                "one_task_edit_vs_noop": ONE_TASK_VS_NOOP,
                "one_task_add_vs_noop": ONE_TASK_VS_NOOP,
                "one_task_remove_vs_noop": ONE_TASK_VS_NOOP,
                "apply_vs_rq_enqueue_many": APPLY_VS_RQ,
            },
            "tt_help_process": stats(help_runs),
            "targets": {
                "full_apply_le_rq_enqueue_many": full_s <= rq_s,
                "apply_le_0.5x_rq_enqueue_many": ratios["apply_vs_rq_enqueue_many"] <= APPLY_VS_RQ,
                "one_task_edit_le_1.5x_noop": ratios["one_task_edit_vs_noop"] <= ONE_TASK_VS_NOOP,
                "one_task_add_le_1.5x_noop": ratios["one_task_add_vs_noop"] <= ONE_TASK_VS_NOOP,
                "one_task_remove_le_1.5x_noop": ratios["one_task_remove_vs_noop"]
                <= ONE_TASK_VS_NOOP,
                "redis_phase_le_2x_raw_limit": phase["redis_phase_s"] <= 2 * raw_s,
                "noop_apply_le_0.5s": statistics.median(noop) <= TARGETS["noop_apply_s"],
                "one_task_edit_le_1s": statistics.median(edit) <= TARGETS["one_task_edit_s"],
                "peak_rss_le_200mb": peak_mb <= TARGETS["peak_rss_mb"],
                "tt_help_le_200ms": statistics.median(help_runs) * 1000 <= TARGETS["tt_help_ms"],
            },
        },
    )


if __name__ == "__main__":
    main()
