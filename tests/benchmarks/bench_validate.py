"""`tt validate` on hostile files: the peak RSS and wall time of each run, beside the limits.

Each case is a town folder written to a temporary directory; `tt validate -o json` runs on it in
a child process under an address-space limit (RLIMIT_AS, `--limit-mb`) and a wall-clock timeout.
Prints JSON: per case the file size, exit code, wall seconds, the child's own peak RSS (wait4's
rusage of that child) and the first problem reported. The limits the README claims are
`--max-rss-mb` and `--max-seconds` (of CPU: wall time depends on what else the machine runs);
`within_limits` says whether every case kept them.
Run: python -m tests.benchmarks.bench_validate [CASE ...] [--limit-mb N] [--timeout S]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.benchmarks.common import emit
from tests.towngen import tasks_toml

MB = 1024 * 1024
TOWN = '[town]\nname = "bench"\n\n[agents.dev]\nmodel = "sim"\nsuspended = true\n'
TASK = '[[tasks]]\nid = "x"\nagent = "dev"\ndescription = "d"\n'


def _replicas(value: str) -> str:
    return TOWN.replace("suspended = true", f"replicas = {value}")


def _agents(n: int, replicas: int = 1) -> str:
    parts = [f'[agents.a{i}]\nmodel = "sim"\nreplicas = {replicas}\n' for i in range(n)]
    return '[town]\nname = "bench"\n' + "".join(parts)


def _fan_in(n: int) -> str:
    deps = ", ".join(['"nope"'] * n)
    return tasks_toml(100) + f'\n[[tasks]]\nid = "fan"\nagent = "dev"\ndepends_on = [{deps}]\n'


def _bad_ids(n: int) -> str:
    return "".join(TASK.replace('"x"', f'"Bad Id {i}"') for i in range(n))


def _each(n: int, line: str) -> str:
    """`n` tasks, each with `line`."""
    return "".join(TASK.replace('"x"', f'"t{i}"') + line for i in range(n))


# name -> () -> (town.toml, tasks.toml or None). Sizes just under and over the limits.
CASES: dict[str, Callable[[], tuple[str, str | None]]] = {
    "replicas_1e20": lambda: (_replicas("99999999999999999999"), None),
    "replicas_1e9_float": lambda: (_replicas("1e9"), None),
    "replicas_nan": lambda: (_replicas("nan"), None),
    "agents_300k_tables": lambda: (_agents(300_000), None),
    "agents_1024_x_64_replicas": lambda: (_agents(1024, 64), None),
    "description_7MiB": lambda: (TOWN, TASK.replace('"d"', f'"{"a" * 7 * MB}"')),
    "file_9MiB": lambda: (TOWN, TASK.replace('"d"', f'"{"a" * 9 * MB}"')),
    "dotted_key_depth_100k": lambda: (TOWN, TASK + f"result.{'.'.join(['k'] * 100_000)} = 1\n"),
    "table_depth_100k": lambda: (TOWN, TASK + f"[tasks.result.{'.'.join(['k'] * 100_000)}]\n"),
    "inline_array_depth_1M": lambda: (TOWN, TASK + "result = " + "[" * 10**6 + "]" * 10**6),
    "tags_2M_ints": lambda: (TOWN, TASK + "tags = [" + "1," * 2_000_000 + "]\n"),
    "tags_499k_ints": lambda: (TOWN, TASK + "tags = [" + "1," * 499_990 + "]\n"),
    "tags_499k_strings": lambda: (TOWN, TASK + "tags = [" + '"a",' * 499_990 + "]\n"),
    "tables_249k": lambda: (TOWN, "".join(f'[[tasks]]\nid="t{i}"\n' for i in range(249_990))),
    "tasks_20k_valid": lambda: (TOWN, tasks_toml(20_000)),
    "depends_on_499k_unknown": lambda: (TOWN, _fan_in(499_000)),
    "bad_ids_120k": lambda: (TOWN, _bad_ids(120_000)),
    "unknown_keys_90k": lambda: (TOWN, _each(90_000, "k = 1\n")),
    "timeouts_90k_too_long": lambda: (TOWN, _each(90_000, 'timeout = "31d"\n')),
    "tasks_20k_all_unknown_agent": lambda: (TOWN, tasks_toml(20_000, agent="nobody")),
}


def run_case(name: str, folder: Path, limit_mb: int, timeout: float) -> dict[str, object]:
    town, tasks = CASES[name]()
    (folder / "town.toml").write_text(town)
    if tasks is not None:
        (folder / "tasks.toml").write_text(tasks)
    size = len(town.encode()) + len((tasks or "").encode())
    del town, tasks

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_mb * MB, limit_mb * MB))

    cmd = [sys.executable, "-m", "cli", "validate", "--town", str(folder), "-o", "json"]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, preexec_fn=limit)
        code: int | str = "timeout"
        while time.perf_counter() - start < timeout:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                break
            time.sleep(0.01)
        else:
            proc.kill()
            _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = -1  # reaped here, not by Popen
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    try:
        problems = json.loads(stdout)["problems"]
        first = "valid"
        if problems:
            p = problems[0]
            first = f"{p['file']}:{p['line']}: {p['path']}: {p['message']}"[:160]
    except (ValueError, KeyError):
        first = "NOT JSON: " + stderr.decode(errors="replace")[-300:]
    return {
        "case": name,
        "file_mib": round(size / MB, 2),
        "exit": code,
        "wall_s": round(wall, 2),
        # CPU seconds of the child: what the check costs, whatever else the machine runs.
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "problems": len(problems) if first != "valid" and not first.startswith("NOT") else 0,
        "first_problem": first,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cases", nargs="*", default=list(CASES))
    parser.add_argument("--limit-mb", type=int, default=2048, help="RLIMIT_AS of the child")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--max-rss-mb", type=float, default=300.0)
    parser.add_argument("--max-seconds", type=float, default=5.0)
    args = parser.parse_args()
    results = []
    for name in args.cases:
        with tempfile.TemporaryDirectory() as tmp:
            results.append(run_case(name, Path(tmp), args.limit_mb, args.timeout))
        print(json.dumps(results[-1]), file=sys.stderr)
    ok = all(
        r["exit"] in (0, 1)
        and float(str(r["peak_rss_mb"])) <= args.max_rss_mb
        and float(str(r["cpu_s"])) <= args.max_seconds
        for r in results
    )
    worst_rss = max(float(str(r["peak_rss_mb"])) for r in results)
    worst_wall = max(float(str(r["wall_s"])) for r in results)
    worst_cpu = max(float(str(r["cpu_s"])) for r in results)
    emit(
        "validate_hostile",
        {
            "limits": {"rss_mb": args.max_rss_mb, "seconds": args.max_seconds},
            "worst": {"peak_rss_mb": worst_rss, "wall_s": worst_wall, "cpu_s": worst_cpu},
            "load_average": os.getloadavg(),
            "within_limits": ok,
            "cases": results,
        },
    )


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    main()
