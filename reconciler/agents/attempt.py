"""One turn of an agent's model: the prompt file, the working folder, the declared environment,
the process (through `supervisor`, the only door to processes) and the verdict of its exit.
It never claims or completes a task: the worker does, with the verdict.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO, NamedTuple, Protocol

from ..errors import RedisUnavailable, TtError
from ..git import add_worktree
from ..spec.desired import AgentSpec, ModelSpec, PromptMode
from ..spec.launchcheck import WORKTREE
from ..town import TownPaths
from . import resume
from .environment import NODE_ENV
from .environment import model_env as declared_env
from .launch import SAFE_ARG_BYTES, Launch, LaunchFailed, pointer, too_long
from .models import render_argv
from .prompt import Verdict
from .resume import NO_SESSION, Session
from .supervisor import RunResult, open_log, proc_start_time, run_model
from .verdicts import judge_run, keep_stdout


class RunnerStore(Protocol):
    url: str

    def note_model(
        self, agent: str, pid: int, start: str, session: str = "", workdir: str = ""
    ) -> None: ...
    def current_token(self, task_id: str) -> str | None: ...
    def event(self, etype: str, **fields: str) -> None: ...


class Prepared(NamedTuple):
    """A run ready to start: its argv, what goes to its stdin, its folder and environment."""

    argv: list[str]
    stdin_text: str | None
    workdir: Path
    env: dict[bytes, bytes]
    session: str = ""  # 'TASK SESSION' of the run, for its agent's record


class Limits(NamedTuple):
    """How long a run may take, and may go without progress (None: no such limit)."""

    timeout: float
    stall_after: float | None = None


class Runner:
    def __init__(
        self,
        paths: TownPaths,
        name: str,
        spec: AgentSpec,
        model: ModelSpec,
        store: RunnerStore,
        token_env: str | None = None,
    ) -> None:
        self.paths, self.name, self.spec, self.model, self.store = paths, name, spec, model, store
        # The prompt is in the log's head; a file of its own only for a CLI that reads one.
        self.prompt_file = model.prompt == PromptMode.FILE or any(
            "{prompt_file}" in part for part in (*model.command, *spec.args)
        )
        # The environment of every run but the attempt's own variables, built (and encoded,
        # as exec wants it) once: only the variables this agent declares (environment.py).
        self.model_env = dict(model.env)
        self.base_env = {
            os.fsencode(k): os.fsencode(v)
            for k, v in {
                **declared_env(os.environ, spec, model, token_env),
                **dict(spec.env),
                "TT_TOWN": str(paths.root),
                "TT_AGENT": name,
                "TT_REDIS_URL": store.url,
                **self.model_env,
            }.items()
        }

    def attempt(
        self,
        prompt: str,
        log_path: Path,
        limits: Limits,
        task_id: str,
        attempt: int,
        token: str,
        interrupted: Callable[[], bool],
        workdir: Path | None = None,
        going_on: tuple[Session, str] | None = None,
    ) -> Verdict:
        """One attempt of a task: `going_on` (a session and its short prompt) resumes the
        previous attempt's session; a CLI that refuses it (no such session) gets a fresh run
        on the whole `prompt`, in the same attempt (no retry spent on it)."""
        run = (task_id, attempt, token, interrupted, workdir)
        if going_on is not None and not resume.fits(going_on[0], *self._where(workdir)):
            going_on = None  # it ran elsewhere (another folder or host): start fresh
        if going_on is not None:
            session, short = going_on
            verdict = self.invoke(short, log_path, limits, *run, session=session)
            if not resume.rejected(self.model, session, verdict.ok, verdict.text):
                return verdict
            self._tell("attempt.resume_rejected", task_id, attempt, session=session.id or "")
        verdict = self.invoke(prompt, log_path, limits, *run, session=resume.fresh(self.model))
        if going_on is not None and verdict.facts is not None:
            rejected = replace(verdict.facts, resume_rejected=going_on[0].id)
            verdict = replace(verdict, facts=rejected)
        return verdict

    def _where(self, workdir: Path | None) -> tuple[str, str, str]:
        """(folder, node, agent) of a run here, as its record names them (`ledger`)."""
        try:
            folder = str(workdir or self.workdir())
        except LaunchFailed:
            folder = ""  # it cannot start here: the fresh run says why
        # The node that started this process (placement may put a replica on any), else the host.
        node = os.environ.get(NODE_ENV) or self.spec.node
        return folder, node or socket.gethostname(), self.name

    def invoke(
        self,
        prompt: str,
        log_path: Path,
        limits: Limits | float,
        task_id: str,
        attempt: int,
        token: str,
        interrupted: Callable[[], bool],
        workdir: Path | None = None,
        session: Session = NO_SESSION,
    ) -> Verdict:
        """Run the model on `prompt` to its verdict (in `workdir`, else the agent's own; in
        `session`, fresh or resumed); `interrupted` says the worker is stopping.
        A task whose attempt token changed (cancelled or reassigned) stops the model too.
        Whatever stops the model from starting fails the attempt (`launch_failed`), never the
        agent: the next task may well run."""
        if not isinstance(limits, Limits):
            limits = Limits(limits)  # a timeout alone
        try:
            # Opened first: it makes the agent's log folder, where a prompt file goes too.
            log = open_log(log_path)
        except OSError as e:
            return _launch_failed(Launch(f"cannot open the log {log_path}: {e.strerror or e}"))
        with log:
            # The log holds what the model was asked, then what it answered (or why it could
            # not be started).
            how = f", resuming session {session.id}" if session.resumed else ""
            head = f"$ {self.model.command[0]} … (attempt {attempt}{how})\n--- prompt ---\n{prompt}"
            log.write(head.encode(errors="replace"))
            launch: Launch | None
            try:
                run = self._prepare(prompt, log_path, task_id, attempt, token, workdir, session)
            except Exception as e:  # an attempt can fail; the agent must not
                launch = e.launch if isinstance(e, LaunchFailed) else _unexpected(e)
            else:
                result = self._run(log, run, limits, task_id, token, interrupted)
                launch = result.launch
            if launch is not None:
                log.write(f"--- {launch.text()} ---\n".encode())
                return _launch_failed(launch)
        if result.cancelled:
            return Verdict(False, False, "stopped before the model finished")
        verdict = judge_run(result, self.model, limits.timeout)
        # What stopped moving: nothing at all, or all but the CLI's own retry loop.
        stopped = result.no_progress
        if stopped is None and result.stalled is not None:
            stopped = f"the CLI kept retrying for {self.model.stall_grace:g}s ({result.stalled})"
        if stopped is not None:
            self._tell("attempt.stalled", task_id, attempt, reason=stopped)
        verdict = _with_session(verdict, session)
        if verdict.facts is not None:
            verdict = replace(verdict, facts=replace(verdict.facts, workdir=str(run.workdir)))
        return verdict

    def _tell(self, etype: str, task_id: str, attempt: int, **fields: str) -> None:
        """An event of this attempt; Redis away, it is lost, not the attempt."""
        with contextlib.suppress(TtError):
            who = {"task": task_id, "agent": self.name, "attempt": str(attempt)}
            self.store.event(etype, **who, **fields)

    def _prepare(
        self,
        prompt: str,
        log_path: Path,
        task_id: str,
        attempt: int,
        token: str,
        workdir: Path | None = None,
        session: Session = NO_SESSION,
    ) -> Prepared:
        """What a run of `prompt` needs to start (`Prepared`); `LaunchFailed` says why
        there can be none. A prompt too long for the command line goes by file where the
        model's command takes one ({prompt_file}), else the attempt fails here."""
        prompt_file = log_path.with_suffix(".prompt.md")
        if self.prompt_file:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            try:
                with open(os.open(prompt_file, flags, 0o600), "wb") as f:  # private, as the log
                    f.write(prompt.encode(errors="replace"))
            except OSError as e:
                reason = f"cannot write the prompt file {prompt_file}: {e.strerror or e}"
                raise LaunchFailed(Launch(reason)) from e
        in_argv = self.model.prompt == PromptMode.ARG or any(
            "{prompt}" in part for part in self.model.command
        )
        arg_prompt = prompt
        size = len(prompt.encode(errors="surrogatepass"))
        if in_argv and size > SAFE_ARG_BYTES:
            if not self.prompt_file:
                raise LaunchFailed(too_long(size))
            arg_prompt = pointer(size, str(prompt_file))
        workdir = workdir or self.workdir()
        argv, stdin_text = render_argv(
            self.model,
            prompt=arg_prompt,
            prompt_file=str(prompt_file),
            workdir=str(workdir),
            python=sys.executable,
            extra_args=self.spec.args,
            session=session.args,
        )
        env = self.env(task_id, attempt, token)
        noted = f"{task_id} {session.id}" if task_id and session.id else ""
        return Prepared(argv, None if stdin_text is None else prompt, workdir, env, noted)

    def _run(
        self,
        log: IO[bytes],
        run: Prepared,
        limits: Limits,
        task_id: str,
        token: str,
        interrupted: Callable[[], bool],
    ) -> RunResult:
        """The model's process, from its start to its exit (or its launch failure)."""
        last_check = [time.monotonic()]  # the first look a second after the start

        def started(pid: int) -> None:
            # Whoever finds this agent dead (kill -9) kills the model's group too: it must not
            # run on beside the next attempt.
            with contextlib.suppress(TtError):  # Redis away: it cannot be recorded
                started_at = proc_start_time(pid) or ""
                self.store.note_model(self.name, pid, started_at, run.session, str(run.workdir))

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

        log.write(b"--- output ---\n")
        return run_model(
            run.argv,
            cwd=run.workdir,
            env=run.env,
            stdin_text=run.stdin_text,
            log=log,
            timeout=limits.timeout,
            should_stop=should_stop,
            on_start=started,
            stall_patterns=self.model.stall_patterns,
            stall_grace=self.model.stall_grace,
            keep_stdout=keep_stdout(self.model),
            stall_after=limits.stall_after,
            watch=run.workdir,
            watch_skip=self.paths.state_dir,
        )

    def workdir(self) -> Path:
        """The model's working folder, made if missing; `LaunchFailed` when it cannot be."""
        wd = self.spec.workdir
        if wd == WORKTREE:
            # One git worktree per agent, so parallel agents never edit the same checkout.
            path = self.paths.state_dir / "worktrees" / self.name
            if not path.exists():
                try:
                    add_worktree(self.paths.root, path)
                except TtError as e:
                    raise LaunchFailed(Launch(e.message, e.hint)) from e
            return path
        path = self.paths.root if not wd else (self.paths.root / wd)
        if not os.path.isdir(path):
            try:
                path.mkdir(parents=True, exist_ok=True)
            except FileExistsError as e:
                reason = f"the working folder {path} is not a folder"
                raise LaunchFailed(Launch(reason, "fix the agent's workdir in town.toml")) from e
            except OSError as e:
                reason = f"cannot create the working folder {path}: {e.strerror or e}"
                raise LaunchFailed(Launch(reason, "fix the agent's workdir in town.toml")) from e
        return path

    def env(self, task_id: str, attempt: int, token: str) -> dict[bytes, bytes]:
        env = dict(self.base_env)
        own = {"TT_TASK": task_id, "TT_ATTEMPT": str(attempt), "TT_ATTEMPT_TOKEN": token}
        env.update({k.encode(): v.encode() for k, v in own.items() if k not in self.model_env})
        return env


def _with_session(verdict: Verdict, session: Session) -> Verdict:
    """The verdict's facts name the session the run was in: the CLI's own word, else the id
    tt gave it; and the session it resumed."""
    facts = verdict.facts
    if facts is None or session.id is None:
        return verdict
    facts = replace(
        facts,
        session_id=facts.session_id or session.id,
        resumed_from=session.id if session.resumed else None,
    )
    return replace(verdict, facts=facts)


def _launch_failed(launch: Launch) -> Verdict:
    """The attempt fails (counted against its retries, like any failure) with the reason."""
    return Verdict(False, False, launch.text(), hint=launch.hint)


def _unexpected(error: Exception) -> Launch:
    """An error no rule foresaw: the attempt fails with it, the traceback goes to agent.log."""
    traceback.print_exception(error, file=sys.stderr)
    return Launch(f"cannot prepare the model's run: {type(error).__name__}: {error}")
