"""The worker's side of `[git]` work products: an attempt runs in its task's worktree, what the
model left is committed and (merge = "queue") merged before the task completes. The work product
logic is `work`'s; this module gives it the supervisor's process runner for checks and turns its
answers into verdicts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from ..errors import TtError
from ..spec.desired import Desired
from ..store.tasks import Claimed
from ..town import TownPaths
from ..work import CheckRun, Finished, Started, WorkProducts
from ..work.products import WorkStore
from ..work.remote import WORKSPACE_ENV
from .environment import NODE_ENV
from .prompt import Verdict
from .supervisor import kill_group, open_log, proc_start_time, run_model

# git's variables would point a check at another repository than its merge worktree.
_DROP = {b"GIT_DIR", b"GIT_WORK_TREE", b"GIT_INDEX_FILE"}


class Checks:
    """The merge queue's checks, run by the supervisor (the only door to processes)."""

    def run(
        self, argv: Sequence[str], cwd: Path, log: Path, timeout: float, pidfile: Path
    ) -> CheckRun:
        return run_check(argv, cwd, log, timeout, pidfile)

    def stop_orphan(self, pidfile: Path) -> None:
        _kill_orphan(pidfile)


def run_check(
    argv: Sequence[str], cwd: Path, log_path: Path, timeout: float, pidfile: Path
) -> CheckRun:
    """A check of the merge queue, to its end or its timeout (the whole process tree killed).
    Its group leader is noted in `pidfile` while it runs: a check orphaned by a worker killed
    mid-merge is killed by the next one to work the queue, before it resets the worktree."""
    _kill_orphan(pidfile)
    env = {k: v for k, v in os.environb.items() if k not in _DROP}

    def started(pid: int) -> None:
        pidfile.write_text(f"{pid} {proc_start_time(pid) or ''}\n")

    with open_log(log_path) as log:
        log.write(f"$ {argv[-1]}\n".encode(errors="replace"))
        ran = run_model(
            argv, cwd=cwd, env=env, stdin_text=None, log=log, timeout=timeout, on_start=started
        )
        log.write(f"--- exit {ran.returncode} ---\n".encode())
    pidfile.unlink(missing_ok=True)
    tail = (ran.stdout_tail + "\n" + ran.stderr_tail).strip()
    if ran.launch is not None:
        return CheckRun(127, False, ran.launch.text())
    return CheckRun(None if ran.timed_out else ran.returncode, ran.timed_out, tail)


def _kill_orphan(pidfile: Path) -> None:
    try:
        pid, _, start = pidfile.read_text().strip().partition(" ")
    except OSError:
        return
    if pid.isdigit():
        kill_group(int(pid), start or None)
    pidfile.unlink(missing_ok=True)


class GitWork:
    """One worker's view of the town's work products (made on first use: an error in `[git]`
    fails the attempts that need it, never the agent)."""

    def __init__(self, paths: TownPaths, desired: Desired, store: WorkStore) -> None:
        self.paths, self.desired, self.store = paths, desired, store
        self._products: WorkProducts | None = None

    def products(self) -> WorkProducts:
        if self._products is None:
            git = self.desired.git
            assert git is not None
            # An agent of a node given its own clone (`tt node run --workspace DIR`) works there
            # and hands its branches to the leader through [git] push (`work/remote.py`).
            workspace = os.environ.get(WORKSPACE_ENV, "")
            node = os.environ.get(NODE_ENV, "")
            if node and not workspace:
                raise without_workspace(node)
            self._products = WorkProducts(
                self.paths.state_dir,
                self.paths.root,
                self.desired.town.name,
                replace(git, repo=workspace) if workspace else git,
                self.store,
                Checks(),
                node=node or ("?" if workspace else ""),  # (an agent run by hand in one)
            )
        return self._products

    def start(self, c: Claimed, token: str) -> Started | Verdict:
        deps = [d.id for d in c.deps]
        try:
            return self.products().start(c.task_id, c.attempt, token, deps)
        except TtError as e:
            return Verdict(False, False, f"git: {e.message}", hint=e.hint)

    def finish(
        self, c: Claimed, token: str, result: str, interrupted: Callable[[], bool]
    ) -> Verdict:
        description = str(c.spec.get("description") or "")
        try:
            done = self.products().finish(
                c.task_id, c.attempt, token, description, result, interrupted
            )
        except TtError as e:
            return Verdict(False, False, f"git: {e.message}", hint=e.hint)
        return verdict_of(done)


def without_workspace(node: str) -> TtError:
    """A node with `[git]` and no clone of its own: it would merge on its own and push base,
    and no single base would hold every task's work. Refused (the node's start, its attempts)."""
    return TtError(
        f"node {node} runs without --workspace, and the town has [git]: a node works in its "
        "own clone and hands its branches to the leader, which alone merges",
        hint=f"restart it with tt node run --name {node} --workspace DIR (DIR: a clone of the "
        "repository with [git] push as a remote)",
    )


def verdict_of(done: Finished) -> Verdict:
    if done.stopped:
        return Verdict(False, False, "stopped " + done.text.removeprefix("stopped").lstrip(": "))
    return Verdict(done.ok, done.permanent, done.text)
