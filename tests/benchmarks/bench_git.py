"""The git overhead of work products per task, beside the same raw git commands in the same run.

A repository of `--files` small text files in a few folders, one initial commit, base `main`
(checked out by the user with `--base-checked-out`, else the user's checkout is on another
branch). The store is fakeredis: the point is git. Per task, p50/p99 of each step of tt's path
and of its raw git equivalent, interleaved task by task:

- worktree: `WorkProducts.start`          | git worktree add -b BRANCH PATH BASE
- commit:   `finish` with merge = manual  | git add -A + git commit (in the worktree)
            (the commit and its records, no merge)
- merge:    `MergeQueue.merge_one`, no    | git rebase BASE HEAD (in a merge worktree)
            checks                        |   + git update-ref (`git merge --ff-only` in the
                                          |   user's checkout with --base-checked-out)
- cleanup:  `clean_up(task, merged=True)` | git worktree remove + git branch -D

Every task changes its own file. `ratio` is tt/raw (the goal: at most 1.5). Beside each step, the
git commands tt ran for it (count and milliseconds per task, by subcommand): where the time
goes. `throughput`: `--tasks` tasks committed and queued, then `MergeQueue.work()` merges them
all (merges per second), beside the raw merges of as many branches. `finish_end_to_end`: a
few tasks through `finish` with merge = queue (queue, merge, clean up) as the worker runs it,
and again with the queue's pause between two looks (`queue.WAIT`) set to 0 for the run: what
that pause costs a worker that merged its own task.

Run: python -m tests.benchmarks.bench_git [--files 2000] [--runs 25] [--tasks 40]
         [--base-checked-out]  (prints JSON)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.agents.gitwork import Checks
from reconciler.spec.gitsettings import GitSettings, MergeMode
from reconciler.store.client import Store
from reconciler.work import WorkProducts, queue
from reconciler.work.queue import MergeQueue
from tests.benchmarks.common import emit, stats
from tests.work.gitrepo import ENV, running_task

TARGET_RATIO = 1.5
STEPS = ("worktree", "commit", "merge", "cleanup")
FOLDERS = 8
_RUN = subprocess.run  # the real one: raw git calls are never counted as tt's


def never() -> bool:
    return False


def raw(folder: Path, *args: str) -> str:
    """A raw git command (the user's identity, gc off as tt runs it)."""
    done = _RUN(
        ["git", "-C", str(folder), "-c", "gc.auto=0", *args],
        capture_output=True,
        text=True,
        env=ENV,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {folder}: {done.stderr.strip()}")
    return done.stdout.strip()


def make_repo(root: Path, files: int, base_checked_out: bool) -> Path:
    """`files` small text files in FOLDERS folders, one commit on main."""
    root.mkdir(parents=True)
    raw(root, "init", "-q", "-b", "main")
    for i in range(files):
        path = root / f"pkg{i % FOLDERS}" / f"mod{i}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(f"line {n} of file {i}\n" for n in range(20)))
    (root / ".gitignore").write_text(".tt/\n")
    raw(root, "add", "-A")
    raw(root, "commit", "-q", "-m", "start")
    if not base_checked_out:
        raw(root, "switch", "-q", "-c", "user")
    return root


def subcommand(argv: list[str]) -> str:
    """`worktree add`, `status`, … of a git argv (after -C DIR and -c KEY=VALUE)."""
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-C", "-c"):
            next(args, None)
        elif not arg.startswith("-"):
            return f"{arg} {next(args, '')}".strip() if arg == "worktree" else arg
    return "?"


@dataclass
class Profile:
    """tt's git calls during one step, over all its tasks."""

    calls: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)
    tasks: int = 0

    def per_task(self) -> dict[str, object]:
        n = max(self.tasks, 1)
        order = sorted(self.seconds, key=lambda k: -self.seconds[k])
        return {
            "git_calls": round(sum(self.calls.values()) / n, 2),
            "git_ms": round(sum(self.seconds.values()) * 1000 / n, 3),
            "by_command": {
                k: {
                    "calls": round(self.calls[k] / n, 2),
                    "ms": round(self.seconds[k] * 1000 / n, 3),
                }
                for k in order
            },
        }


@contextmanager
def counting(profile: Profile) -> Iterator[None]:
    """Every subprocess tt starts meanwhile (git only, here) noted in `profile`."""

    def run(argv: Any, *a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return _RUN(argv, *a, **kw)
        finally:
            name = subcommand([str(x) for x in argv])
            profile.calls[name] += 1
            profile.seconds[name] += time.perf_counter() - t

    subprocess.run = run  # type: ignore[assignment]
    try:
        yield
    finally:
        subprocess.run = _RUN
    profile.tasks += 1


class Bench:
    def __init__(self, root: Path, files: int, base_checked_out: bool) -> None:
        import fakeredis

        self.repo = make_repo(root / "repo", files, base_checked_out)
        self.files, self.checked_out = files, base_checked_out
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
        self.store = Store.from_client(client, "bench")
        state = self.repo / ".tt"
        self.queue_wp = WorkProducts(state, self.repo, "bench", GitSettings(), self.store, Checks())
        manual = GitSettings(merge=MergeMode.MANUAL)
        self.manual_wp = WorkProducts(state, self.repo, "bench", manual, self.store, Checks())
        self.raw_trees = root / "raw"
        self.raw_merge = root / "raw-merge"
        raw(self.repo, "worktree", "add", "-q", "--detach", str(self.raw_merge), "main")
        self.samples: dict[str, dict[str, list[float]]] = {s: {"tt": [], "raw": []} for s in STEPS}
        self.profiles = {s: Profile() for s in STEPS}
        self.n = 0

    def touch(self, tree: Path, i: int) -> None:
        """The 'model': a line appended to the task's own file."""
        name = f"mod{i}.txt" if i < self.files else f"new{i}.txt"  # never two on one file
        path = tree / f"pkg{i % FOLDERS}" / name
        with open(path, "a") as f:
            f.write(f"changed by task {i}\n")

    def _time(self, step: str, side: str, fn: Callable[[], object]) -> None:
        t = time.perf_counter()
        if side == "tt":
            with counting(self.profiles[step]):
                fn()
        else:
            fn()
        self.samples[step][side].append(time.perf_counter() - t)

    def _record(self, step: str, side: str, fn: Callable[[], object], timed: bool) -> None:
        if timed:
            self._time(step, side, fn)
        else:
            fn()

    # -- tt's side -------------------------------------------------------------------------
    def tt_task(self, timed: bool = True) -> str:
        """A task started and committed (by tt); its id."""
        i = self.n
        self.n += 1
        task = f"t{i}"
        running_task(self.store, task, f"tok-{task}")
        tree = self.queue_wp.layout.tree(task)
        self._record("worktree", "tt", lambda: self.queue_wp.start(task, 1, f"tok-{task}"), timed)
        self.touch(tree, i)

        def commit() -> None:
            done = self.manual_wp.finish(task, 1, f"tok-{task}", f"do {task}", "did", never)
            assert done.ok, done

        self._record("commit", "tt", commit, timed)
        return task

    def tt_merge(self, task: str, timed: bool = True) -> None:
        self.store.merge_enqueue(task)
        self._record("merge", "tt", lambda: MergeQueue(self.queue_wp).merge_one(task), timed)
        assert self.store.git_record(task)["git_stage"] == "merged"

    def tt_cleanup(self, task: str, timed: bool = True) -> None:
        def clean() -> None:
            assert self.queue_wp.clean_up(task, merged=True)

        self._record("cleanup", "tt", clean, timed)

    # -- the raw side ----------------------------------------------------------------------
    def raw_task(self, timed: bool = True) -> tuple[str, Path]:
        i = self.n
        self.n += 1
        branch, tree = f"raw/{i}", self.raw_trees / str(i)
        add = ("worktree", "add", "-q", "-b", branch, str(tree), "main")
        self._record("worktree", "raw", lambda: raw(self.repo, *add), timed)
        self.touch(tree, i)

        def commit() -> None:
            raw(tree, "add", "-A")
            raw(tree, "commit", "-q", "--no-verify", "-m", f"raw {i}")

        self._record("commit", "raw", commit, timed)
        return branch, tree

    def raw_merge_one(self, branch: str, timed: bool = True) -> None:
        def merge() -> None:
            base = raw(self.repo, "rev-parse", "main")
            raw(self.raw_merge, "rebase", "-q", base, raw(self.repo, "rev-parse", branch))
            if self.checked_out:
                raw(self.repo, "merge", "-q", "--ff-only", raw(self.raw_merge, "rev-parse", "HEAD"))
            else:
                raw(self.raw_merge, "update-ref", "refs/heads/main", "HEAD", base)

        self._record("merge", "raw", merge, timed)

    def raw_cleanup(self, branch: str, tree: Path, timed: bool = True) -> None:
        def clean() -> None:
            raw(self.repo, "worktree", "remove", str(tree))
            raw(self.repo, "branch", "-q", "-D", branch)

        self._record("cleanup", "raw", clean, timed)

    # -- the runs --------------------------------------------------------------------------
    def per_task(self, runs: int) -> None:
        """`runs` tasks a side, interleaved: all started and committed, then all merged (each a
        real rebase onto the base the earlier merges moved), then all cleaned up."""
        for timed, count in ((False, 1), (True, runs)):  # one warm-up round first
            pairs = [(self.tt_task(timed), self.raw_task(timed)) for _ in range(count)]
            for task, (branch, _) in pairs:
                self.tt_merge(task, timed)
                self.raw_merge_one(branch, timed)
            for task, (branch, tree) in pairs:
                self.tt_cleanup(task, timed)
                self.raw_cleanup(branch, tree, timed)

    def throughput(self, tasks: int) -> dict[str, object]:
        """Merges per second: `tasks` committed and queued, then the queue worked (tt); as many
        branches merged one after the other (raw). Two rounds, tt first then raw first, so the
        machine's load drifting meanwhile weighs on both sides alike."""
        tt_s = raw_s = 0.0
        profile = Profile()
        for round_ in range(2):
            half = tasks // 2 if round_ == 0 else tasks - tasks // 2
            queued = [self.tt_task(timed=False) for _ in range(half)]
            branches = [self.raw_task(timed=False) for _ in range(half)]
            for task in queued:
                self.store.merge_enqueue(task)
            sides = [self._tt_work, self._raw_work]
            for side in sides if round_ == 0 else reversed(sides):
                t = time.perf_counter()
                side(queued, branches, profile)
                if side == self._tt_work:
                    tt_s += time.perf_counter() - t
                else:
                    raw_s += time.perf_counter() - t
            assert all(self.store.git_record(x)["git_stage"] == "merged" for x in queued)
            for task in queued:
                self.tt_cleanup(task, timed=False)
            for branch, tree in branches:
                self.raw_cleanup(branch, tree, timed=False)
        profile.tasks = tasks
        return {
            "tasks": tasks,
            "tt_merges_per_s": round(tasks / tt_s, 2),
            "raw_merges_per_s": round(tasks / raw_s, 2),
            "ratio": round(tt_s / raw_s, 2),  # tt's time over raw's: 1.0 = as fast
            "tt_git_per_merge": profile.per_task(),
        }

    def _tt_work(self, queued: list[str], _: object, profile: Profile) -> None:
        with counting(profile):
            MergeQueue(self.queue_wp).work()
        assert self.store.merge_queue() == []

    def _raw_work(self, _: object, branches: list[tuple[str, Path]], __: Profile) -> None:
        for branch, _tree in branches:
            self.raw_merge_one(branch, timed=False)

    def end_to_end(self, tasks: int) -> dict[str, object]:
        """`finish` with merge = queue, as the worker calls it (enqueue, merge, clean up); then
        the same with `queue.WAIT` 0 (put back after)."""
        found: dict[str, object] = {}
        wait = queue.WAIT
        for name, pause in (("as_is", wait), ("wait_0", 0.0)):
            samples = []
            queue.WAIT = pause
            try:
                for _ in range(tasks):
                    samples.append(self._finish_one())
            finally:
                queue.WAIT = wait
            found[name] = stats(samples)
        found["queue_wait_s"] = wait
        return found

    def _finish_one(self) -> float:
        i = self.n
        self.n += 1
        task = f"t{i}"
        running_task(self.store, task, f"tok-{task}")
        started = self.queue_wp.start(task, 1, f"tok-{task}")
        self.touch(started.tree, i)
        t = time.perf_counter()
        done = self.queue_wp.finish(task, 1, f"tok-{task}", f"do {task}", "did", never)
        took = time.perf_counter() - t
        assert done.ok, done
        return took

    def report(self) -> dict[str, object]:
        steps: dict[str, object] = {}
        tt_sum = raw_sum = 0.0
        for step in STEPS:
            tt, rw = stats(self.samples[step]["tt"]), stats(self.samples[step]["raw"])
            tt_sum, raw_sum = tt_sum + tt["p50_ms"], raw_sum + rw["p50_ms"]
            steps[step] = {
                "tt": tt,
                "raw": rw,
                "ratio_p50": round(tt["p50_ms"] / rw["p50_ms"], 2),
                "ratio_p99": round(tt["p99_ms"] / rw["p99_ms"], 2),
                "tt_git": self.profiles[step].per_task(),
            }
        return {
            "steps": steps,
            "per_task_p50_ms": {"tt": round(tt_sum, 3), "raw": round(raw_sum, 3)},
            "ratio_p50_total": round(tt_sum / raw_sum, 2),
        }


def run(
    files: int, runs: int, tasks: int, base_checked_out: bool = False, end_to_end: int = 5
) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="tt-bench-git-") as tmp:
        bench = Bench(Path(tmp), files, base_checked_out)
        bench.per_task(runs)
        found = bench.report()
        found["throughput"] = bench.throughput(tasks)
        found["finish_end_to_end"] = bench.end_to_end(end_to_end)
        merged = int(raw(bench.repo, "rev-list", "--count", "main")) - 1
        trees = [bench.queue_wp.layout.trees, bench.raw_trees]
        leftover = sum(len(list(t.iterdir())) for t in trees if t.exists())
    ratios = [s["ratio_p50"] for s in found["steps"].values()]  # type: ignore[attr-defined]
    return {
        "files": files,
        "runs": runs,
        "base_checked_out": base_checked_out,
        "git": raw(Path.cwd(), "--version"),
        "load_average": os.getloadavg(),
        "target_ratio": TARGET_RATIO,
        "within_target": all(r <= TARGET_RATIO for r in ratios)
        and found["throughput"]["ratio"] <= TARGET_RATIO,  # type: ignore[index]
        "commits_on_base": merged,
        "worktrees_left": leftover,
        **found,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=2000, help="files in the repository")
    parser.add_argument("--runs", type=int, default=25, help="timed tasks a side, per step")
    parser.add_argument("--tasks", type=int, default=40, help="tasks merged for throughput")
    parser.add_argument("--end-to-end", type=int, default=5, help="tasks through finish")
    parser.add_argument("--base-checked-out", action="store_true", help="main checked out")
    args = parser.parse_args()
    emit("git", run(args.files, args.runs, args.tasks, args.base_checked_out, args.end_to_end))


if __name__ == "__main__":
    main()
