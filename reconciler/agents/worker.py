"""The worker process of one agent (`tt agent run NAME`): heartbeat, claim, prompt, run, report.

Between two tasks it makes one round trip (`store.turn`: report the last, claim the next); with
nothing to claim it blocks on its queues (own, pool, role, backlog), control list and mail bell
in one BLPOP: no polling. Every transition goes through fenced store scripts, so a stale attempt
can never complete a task; mail it answers stays in Redis (`answering`) until the answer is sent.
It never decides what should exist (that is the controller's job) and never spawns agents.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from .. import rundir
from ..errors import RedisUnavailable, TtError
from ..spec.desired import Desired, ModelSpec, Policy
from ..store.mail import Message
from ..store.tasks import Claimed
from ..store.turn import Gate, Outcome, Turn
from ..town import TownPaths
from . import environment, resume
from .attempt import Limits, Runner
from .gitwork import GitWork, verdict_of
from .ledger import settle
from .limits import idle_wait, limit_of, provider_of
from .models import OVERRIDE_ENV, resolve
from .progress import stall_limit
from .prompt import Verdict, build_message_prompt, build_prompt
from .rounds import Rounds
from .supervisor import proc_start_time
from .targets import base_spec, queue_targets

T = TypeVar("T")
IDLE = {"state": "idle", "task": "", "model_pid": ""}


class Interrupted(Exception):
    """SIGTERM/SIGINT while the worker waits for work."""


class WorkerStore(Protocol):
    """What the worker needs from Redis (implemented by `store.Store`)."""

    url: str

    def take_instance(self, name: str, instance: str, lease: float) -> bool: ...
    def release_instance(self, name: str, instance: str) -> bool: ...
    def register_agent(self, name: str, fields: dict[str, str]) -> None: ...
    def heartbeat(self, name: str, instance: str, lease: float) -> bool: ...
    def set_agent(self, name: str, fields: dict[str, str]) -> None: ...
    def pop_work(self, keys: Sequence[str], timeout: float) -> tuple[str, str] | None: ...
    def turn(
        self,
        agent: str,
        outcome: Outcome | None,
        token: str,
        targets: Sequence[str],
        policy: Policy,
        popped: str = "",
        gate: Gate | None = None,
        instance: str = "",
    ) -> Turn: ...
    def note_model(
        self, agent: str, pid: int, start: str, session: str = "", workdir: str = ""
    ) -> None: ...
    def current_token(self, task_id: str) -> str | None: ...
    def last_attempt(self, task_id: str) -> dict[str, object] | None: ...
    def complete(self, task_id: str, token: str, result: str) -> bool: ...
    def hand_back(self, task_id: str, token: str) -> bool: ...
    def send(self, to: str, sender: str, text: str, urgent: bool = False) -> None: ...
    def queue_keys(self, targets: Sequence[str]) -> list[str]: ...
    def bell_key(self, agent: str) -> str: ...
    def take_mail(self, agent: str) -> list[tuple[str, Message]]: ...
    def answer_mail(self, agent: str, taken: Sequence[str], answer: str) -> None: ...
    def control_key(self, agent: str) -> str: ...
    def event(self, etype: str, **fields: str) -> None: ...
    # [git] work products (`work.products.WorkStore`)
    def git_record(self, task_id: str) -> dict[str, str]: ...
    def note_git(self, task_id: str, token: str, **fields: str) -> bool: ...
    def merge_enqueue(self, task_id: str, token: str = "") -> int: ...
    def merge_queue(self) -> list[str]: ...
    def merge_drop(self, task_id: str) -> None: ...


class Worker:
    def __init__(self, paths: TownPaths, desired: Desired, instance: str, store: WorkerStore):
        self.paths, self.desired, self.name, self.store = paths, desired, instance, store
        self.spec = base_spec(desired, instance)
        custom = {m.name: m for m in desired.models}
        self.model: ModelSpec = resolve(self.spec.model, custom, os.environ.get(OVERRIDE_ENV))
        self.runner = Runner(
            paths, instance, self.spec, self.model, store, desired.town.serve_token_env
        )
        # Its provider's pause and its entry's budget keep it from claiming (`limits`).
        self.gate = Gate(provider_of(self.model), self.spec.name)
        # [git]: each attempt in its task's worktree, its work committed and merged.
        self.git = GitWork(paths, desired, store) if desired.git is not None else None
        self.log_dir = paths.logs_dir / instance
        self.policy = desired.town.policy
        self.instance_token = uuid.uuid4().hex
        self.stopping = threading.Event()
        self.draining = False
        self.restart = False
        self.waiting = False
        self.terminated = False
        self.superseded = False  # a newer process of the agent owns its record: exit, write none
        self.current: tuple[str, str] | None = None  # (task id, attempt token)
        self.rounds = Rounds(self.spec.max_rounds)

    # -- lifecycle -------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        if not self.store.take_instance(self.name, self.instance_token, self.policy.lease):
            print(
                f"agent {self.name} is already running (live heartbeat); exiting", file=sys.stderr
            )
            return 0
        # The record names the process that holds the lease, start time included: a `tt`
        # that spawned a second process concurrently may have written that one's pid.
        self.store.register_agent(
            self.name,
            {
                "pid": str(os.getpid()),
                "pid_start": self._start_time(),
                "host": socket.gethostname(),
                "node": os.environ.get(environment.NODE_ENV, ""),  # `tt node run`'s name
                "root": str(self.paths.root),  # the folder it runs in (fleet checks it)
                "instance": self.instance_token,
                "model": self.model.name,  # what runs: TT_MODEL_OVERRIDE, else its own
                "configured_model": self.spec.model,
                "started_at": str(time.time()),
                "state": "idle",
                "spec_hash": self.spec.spec_hash(),
                "task": "",
                "provider": self.gate.provider,
            },
        )
        # `tt down` finds it from the state folder even when Redis or town.toml cannot be read.
        node = os.environ.get(environment.NODE_ENV, "")
        rundir.register(self.paths, rundir.AGENT, self.name, os.getpid(), self._start_time(), node)
        self.store.event("agent.started", agent=self.name, pid=str(os.getpid()))
        beat = threading.Thread(target=self._heartbeat, daemon=True)
        beat.start()
        targets = queue_targets(self.spec, self.name)
        keys = [self.store.control_key(self.name), *self.store.queue_keys(targets)]
        backlog = keys.pop()  # mail comes before the backlog
        bell = self.store.bell_key(self.name)
        keys += [bell, backlog]
        try:
            # Mail a previous process of this agent took and died answering, or whose bell it
            # popped before dying: answered first.
            self._answer()
            outcome: Outcome | None = None
            popped = ""
            while True:
                # Between two tasks, one round trip: report the last one, claim the next (a
                # task popped below is claimed even when stopping: it must not be lost).
                go_on = not (self.stopping.is_set() or self.terminated)
                if outcome is None and not popped and not go_on:
                    break
                token = uuid.uuid4().hex if go_on or popped else ""
                turn = self._call(
                    self.store.turn,
                    self.name,
                    outcome,
                    token,
                    targets,
                    self.policy,
                    popped,
                    self.gate,
                    self.instance_token,
                )
                outcome, popped = None, ""
                if turn.superseded:
                    self.superseded = True
                    break
                if turn.claimed is not None:
                    outcome = self._work(turn.claimed, token, turn.mail)
                    if self.rounds.finished_one():
                        self.stopping.set()  # its result is reported by the next turn
                    continue
                if not go_on:
                    break
                # Paused or out of budget: only its control list, until the reset at the latest.
                timeout, on = idle_wait(turn, keys, time.time())
                self.waiting = True
                try:
                    got = self._call(self.store.pop_work, on, timeout)
                except Interrupted:
                    break
                finally:
                    self.waiting = False
                if got is None:
                    continue
                key, value = got
                if key == keys[0]:
                    self._control(value)
                elif key == bell:
                    self._answer()
                else:
                    popped = value
        finally:
            self.stopping.set()
            rundir.unregister(self.paths, rundir.AGENT, self.name, os.getpid())
            self.store.release_instance(self.name, self.instance_token)
            self._own({"state": "stopped", "task": ""} | self.rounds.exit_fields())
            done = self.rounds.exit_reason("drained" if self.draining else "stopped")
            done = "superseded" if self.superseded else done
            self.store.event("agent.exited", agent=self.name, reason=done)
        return 0

    @staticmethod
    def _start_time() -> str:
        return proc_start_time(os.getpid()) or ""

    def _on_term(self, signum: int, frame: object) -> None:
        # Only a plain flag here: Event.set() from a signal handler deadlocks when the main
        # thread is itself inside Event.set() (its Condition lock is not reentrant).
        self.terminated = True
        if self.waiting:
            # Idle in a blocking pop: leave it now (the read is retried after a signal
            # otherwise, up to its timeout). A running model is stopped by `should_stop`.
            raise Interrupted

    def _interrupted(self) -> bool:
        """A running model must stop: terminated, or stopped (a drain lets it finish)."""
        return self.terminated or (self.stopping.is_set() and not self.draining)

    def _control(self, command: str) -> None:
        """`stop` hands the current task back; `drain` and `restart` arrive between tasks (the
        worker pops them only when idle), so the current task has already finished."""
        if command in ("drain", "stop", "restart"):
            self.draining = command != "stop"
            self.restart = command == "restart"
            self.stopping.set()

    def _call(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)`, waiting out a Redis outage (a server restart: the controller loop brings
        the embedded one back) instead of dying with the attempt. Safe to repeat: transitions
        are fenced by the attempt token, and a turn retried with its token returns its claim."""
        delay = 0.05
        while True:
            try:
                return fn(*args)
            except RedisUnavailable:
                if self.terminated:
                    raise
            time.sleep(delay)
            delay = min(1.0, delay * 2)

    def _own(self, fields: dict[str, str]) -> None:
        """Write the agent's record while this process is still the agent's (checked: a newer
        process may own it now, this one cut off or stopped as a stray)."""
        mine = self._call(self.store.heartbeat, self.name, self.instance_token, 0.0)
        self.superseded = self.superseded or not mine
        if not self.superseded:
            self._call(self.store.set_agent, self.name, fields)

    def _heartbeat(self) -> None:
        """Renew the lease from a thread, so it stays alive while the model runs. Superseded
        (cut off past its lease, its death recorded, maybe a new process started), it stops
        as on SIGTERM: a running attempt is handed back (fenced: it is no longer its own)."""
        while True:
            # Redis briefly away (the store raises only TtErrors): the lease tells the
            # controller if it lasts; the thread must outlive it.
            with contextlib.suppress(TtError):
                if not self.store.heartbeat(self.name, self.instance_token, self.policy.lease):
                    self.superseded = True
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
            if self.stopping.wait(self.policy.heartbeat):
                return

    # -- work ------------------------------------------------------------------------------
    def _work(
        self, claimed: Claimed, token: str, mail: list[tuple[str, Message]]
    ) -> Outcome | None:
        """Run a claimed attempt; how it ended, for the next turn to report (None: it was
        handed back). Its mail stays in `answering` until the attempt has run to its end: an
        agent killed meanwhile answers it when it starts again."""
        task_id, began = claimed.task_id, time.time()
        self.current = (task_id, token)
        try:
            verdict = self._run(claimed, token, [m for _, m in mail])
        except BaseException:
            self._call(self.store.set_agent, self.name, IDLE)
            raise
        finally:
            self.current = None
        seen = tuple(raw for raw, _ in mail)
        node = os.environ.get(environment.NODE_ENV) or self.spec.node  # the node that runs it
        who = (task_id, claimed.attempt, self.name, self.model.name, node)
        detail = settle(verdict, self.log_dir, began, *who)
        if verdict.ok:
            return Outcome(task_id, token, True, verdict.text, delivered=seen, detail=detail)
        if verdict.text.startswith("stopped") and (self.terminated or self.stopping.is_set()):
            # Not seen through: its mail is answered by the agent's next process.
            self._call(self.store.hand_back, task_id, token)
            self._own(IDLE)
            return None
        error = verdict.text + (f" (hint: {verdict.hint})" if verdict.hint else "")
        limit = limit_of(verdict, self.gate.provider, time.time())
        return Outcome(task_id, token, False, error, verdict.permanent, seen, detail, limit)

    def _run(self, c: Claimed, token: str, messages: list[Message]) -> Verdict:
        spec = c.spec
        description = str(spec.get("description") or "")
        prompt = build_prompt(
            task_id=c.task_id,
            description=description,
            attempt=c.attempt,
            agent=self.name,
            town=self.desired.town.name,
            town_description=self.desired.description,
            deps=c.deps,
            messages=messages,
            previous_error=c.previous_error,
            rejection=c.rejection,
        )
        timeout = _float(spec.get("timeout")) or self.spec.timeout or self.policy.task_timeout
        stall = stall_limit(spec.get("stall_after"), self.spec.stall_after, self.policy.stall_after)
        log_path = self.log_dir / f"{c.task_id}-{c.attempt}.log"
        # A retry of an interrupted attempt goes on with its CLI session (`resume`).
        going_on = None
        if c.attempt > 1 and self.spec.resume and self.model.resume_args:
            going_on = resume.plan(
                self._call(self.store.last_attempt, c.task_id),
                self.model,
                task_id=c.task_id,
                attempt=c.attempt,
                agent=self.name,
                town=self.desired.town.name,
                messages=messages,
            )
        run = (log_path, Limits(timeout, stall), c.task_id, c.attempt, token, self._interrupted)
        if self.git is None:
            return self.runner.attempt(prompt, *run, going_on=going_on)
        started = self.git.start(c, token)
        if isinstance(started, Verdict):
            return started
        if started.done is not None:
            return verdict_of(started.done)
        result, facts = started.result, None
        if result is None:  # the model runs (else its commit waits for the merge)
            if started.note:
                prompt = prompt.replace("\n## Town\n", f"\n## Git\n{started.note}\n\n## Town\n", 1)
            verdict = self.runner.attempt(prompt, *run, workdir=started.tree, going_on=going_on)
            if not verdict.ok:
                return verdict
            result, facts = verdict.text, verdict.facts
        # The git verdict, with the facts of the model's run (none when it ran before).
        return self.git.finish(c, token, result, self._interrupted).with_facts(facts)

    def _answer(self) -> None:
        """Answer every message not yet answered, in one turn of the model. They stay in the
        agent's `answering` list until the answer is sent: a kill -9 mid-answer loses none."""
        taken = self._call(self.store.take_mail, self.name)
        if not taken:
            return
        self._call(self.store.set_agent, self.name, {"state": "working", "task": ""})
        prompt = build_message_prompt(
            agent=self.name, town=self.desired.town.name, messages=[m for _, m in taken]
        )
        stamp = f"msg-{int(time.time() * 1000)}"
        stall = stall_limit(None, self.spec.stall_after, self.policy.stall_after)
        limits = Limits(self.policy.task_timeout, stall)
        log_path = self.log_dir / f"{stamp}.log"
        verdict = self.runner.invoke(prompt, log_path, limits, "", 0, "", self._interrupted)
        stopped = self.terminated or self.stopping.is_set()
        if not verdict.ok and verdict.text.startswith("stopped") and stopped:
            return  # stopped mid-answer: the next process of this agent answers them
        answer = verdict.text if verdict.ok else f"(could not answer: {verdict.text})"
        self._call(self.store.answer_mail, self.name, [raw for raw, _ in taken], answer)
        self._own({"state": "idle", "model_pid": ""})


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def run_agent(paths: TownPaths, desired: Desired, name: str, store: WorkerStore) -> int:
    """`tt agent run NAME`: the worker loop until stopped, drained or killed. A `restart`
    request (the agent's spec changed) re-executes this process: same pid, fresh files."""
    worker = Worker(paths, desired, name, store)
    code = worker.run()
    if worker.restart:
        store.event("agent.restarted", agent=name, reason="spec changed")
        os.execv(sys.executable, [sys.executable, "-m", "cli", *sys.argv[1:]])
    return code
