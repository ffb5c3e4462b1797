"""One turn of an agent's model: the prompt file, the working folder, the declared environment,
the process (through `supervisor`, the only door to processes) and the verdict of its exit.
It never claims or completes a task: the worker does, with the verdict.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

from ..errors import RedisUnavailable, TtError
from ..spec.desired import AgentSpec, ModelSpec, PromptMode
from ..town import TownPaths
from .models import render_argv
from .prompt import Verdict, judge
from .supervisor import RunResult, add_worktree, open_log, proc_start_time, run_model

WORKTREE = "worktree"


class RunnerStore(Protocol):
    url: str

    def note_model(self, agent: str, pid: int, start: str) -> None: ...
    def current_token(self, task_id: str) -> str | None: ...


class Runner:
    def __init__(
        self, paths: TownPaths, name: str, spec: AgentSpec, model: ModelSpec, store: RunnerStore
    ) -> None:
        self.paths, self.name, self.spec, self.model, self.store = paths, name, spec, model, store
        # The prompt is in the log's head; a file of its own only for a CLI that reads one.
        self.prompt_file = model.prompt == PromptMode.FILE or any(
            "{prompt_file}" in part for part in (*model.command, *spec.args)
        )
        # The environment of every run but the attempt's own variables, built (and encoded,
        # as exec wants it) once.
        self.model_env = dict(model.env)
        self.base_env = {
            os.fsencode(k): os.fsencode(v)
            for k, v in {
                **os.environ,
                **dict(spec.env),
                "TT_TOWN": str(paths.root),
                "TT_AGENT": name,
                "TT_REDIS_URL": store.url,
                **self.model_env,
            }.items()
        }

    def invoke(
        self,
        prompt: str,
        log_path: Path,
        timeout: float,
        task_id: str,
        attempt: int,
        token: str,
        interrupted: Callable[[], bool],
    ) -> Verdict:
        """Run the model on `prompt` to its verdict; `interrupted` says the worker is stopping.
        A task whose attempt token changed (cancelled or reassigned) stops the model too."""
        # Opened first: it makes the agent's log folder, where a prompt file goes too.
        with open_log(log_path) as log:
            result = self._run(log, prompt, log_path, timeout, task_id, attempt, token, interrupted)
        if result.cancelled:
            return Verdict(False, False, "stopped before the model finished")
        return judge(
            returncode=result.returncode,
            stdout_tail=result.stdout_tail,
            stderr_tail=result.stderr_tail,
            timed_out=result.timed_out,
            timeout=timeout,
            not_found=result.not_found,
            fail_patterns=self.model.fail_patterns,
        )

    def _run(
        self,
        log: IO[bytes],
        prompt: str,
        log_path: Path,
        timeout: float,
        task_id: str,
        attempt: int,
        token: str,
        interrupted: Callable[[], bool],
    ) -> RunResult:
        prompt_file = log_path.with_suffix(".prompt.md")
        if self.prompt_file:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            with open(os.open(prompt_file, flags, 0o600), "wb") as f:  # private, as the log
                f.write(prompt.encode())
        workdir = self.workdir()
        argv, stdin_text = render_argv(
            self.model,
            prompt=prompt,
            prompt_file=str(prompt_file),
            workdir=str(workdir),
            python=sys.executable,
            extra_args=self.spec.args,
        )
        last_check = [time.monotonic()]  # the first look a second after the start

        def started(pid: int) -> None:
            # Whoever finds this agent dead (kill -9) kills the model's group too: it must not
            # run on beside the next attempt.
            with contextlib.suppress(TtError):  # Redis away: it cannot be recorded
                self.store.note_model(self.name, pid, proc_start_time(pid) or "")

        def should_stop() -> bool:
            if interrupted():
                return True
            now = time.monotonic()
            if not task_id or now - last_check[0] < 1.0:
                return False
            last_check[0] = now
            try:
                return self.store.current_token(task_id) != token  # cancelled or reassigned
            except RedisUnavailable:
                return False  # the server restarting: keep the model running

        # The log holds what the model was asked, then what it answered.
        head = f"$ {' '.join(argv[:3])} … (attempt {attempt})\n--- prompt ---\n{prompt}"
        log.write(f"{head}--- output ---\n".encode())
        return run_model(
            argv,
            cwd=workdir,
            env=self.env(task_id, attempt, token),
            stdin_text=stdin_text,
            log=log,
            timeout=timeout,
            should_stop=should_stop,
            on_start=started,
        )

    def workdir(self) -> Path:
        wd = self.spec.workdir
        if wd == WORKTREE:
            # One git worktree per agent, so parallel agents never edit the same checkout.
            path = self.paths.state_dir / "worktrees" / self.name
            if not path.exists():
                add_worktree(self.paths.root, path)
            return path
        path = self.paths.root if not wd else (self.paths.root / wd)
        if not os.path.isdir(path):
            path.mkdir(parents=True, exist_ok=True)
        return path

    def env(self, task_id: str, attempt: int, token: str) -> dict[bytes, bytes]:
        env = dict(self.base_env)
        own = {"TT_TASK": task_id, "TT_ATTEMPT": str(attempt), "TT_ATTEMPT_TOKEN": token}
        env.update({k.encode(): v.encode() for k, v in own.items() if k not in self.model_env})
        return env
