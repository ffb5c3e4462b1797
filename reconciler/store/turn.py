"""An agent's turn between two attempts, mixed into `Store`: report how the last attempt ended and
claim the next task in one round trip (`lua/turn.lua`), the way its blocking pop would choose.

Between tasks a busy agent makes this one call; only an agent with nothing to claim blocks in
BLPOP. No redis import: it uses the client `Store` owns.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..spec.desired import Policy
from .lane import Lane
from .mail import SEEN_MAXLEN, Message, kept_message
from .scripts import Scripted, lua_source
from .tasks import Claimed, DepResult

# Usage or rate limits in a row a task may meet without spending a retry; the next one fails
# its attempt as any failure (a CLI that keeps saying it cannot loop a task for ever).
MAX_DEFERRALS = 5


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, reported with the agent's next turn."""

    task_id: str
    token: str
    ok: bool
    text: str  # the result, or the error
    permanent: bool = False
    delivered: tuple[str, ...] = ()  # the messages its prompt carried (stored form)
    # JSON object of the attempt's ledger entry (`agents.ledger`), added to its record in the
    # task's attempt history ('' = none).
    detail: str = ""
    # A usage or rate limit (`ok` False): the task is deferred (no retry spent) and the
    # agent's provider paused until then.
    limit: Limit | None = None


@dataclass(frozen=True)
class Limit:
    """A usage or rate limit an attempt met: its class, the reset its message named (unix
    seconds; None: the provider's backoff), and the reason `tt status` shows."""

    exit_class: str
    reset: float | None
    reason: str


@dataclass(frozen=True)
class Gate:
    """Who an agent is for the pauses and budgets (`lua/limits_lib.lua`): its model's
    provider and its town.toml entry (the agent, or the pool of its replicas)."""

    provider: str
    entry: str


@dataclass(frozen=True)
class Turn:
    """What one worker round trip (`turn.lua`) did: the last outcome's fate, the next claim."""

    # the outcome's fate: '1'/'0' completed/stale, 'retrying', 'failed', 'deferred', 'stale'
    reported: str
    next_timer: float | None  # seconds to the earliest retry timer (the idle pop's timeout)
    claimed: Claimed | None
    mail: list[tuple[str, Message]]  # for the claimed task's prompt, each with its stored form
    # Nothing claimed because its provider is paused until then (unix seconds), or a budget
    # is reached (`budget` names it: 'town' or 'agent:ENTRY').
    paused_until: float | None = None
    budget: str | None = None
    superseded: bool = False  # the record names another process of the agent: it must exit


class TurnOps(Scripted):
    _lane: Lane | None = None

    def lane(self) -> Lane:
        if self._lane is None:
            self._lane = Lane(self.client, self.errors, direct=self.cluster)
        return self._lane

    def note_model(
        self, agent: str, pid: int, start: str, session: str = "", workdir: str = ""
    ) -> None:
        """Record the model process `agent` runs (whoever finds the agent dead kills it), and
        its session (`TASK SESSION`: a task handed back names it, so its retry can resume) and
        the folder it runs in (a resume goes on only there): sent now, its reply read with the
        agent's next turn, on the same connection."""
        key = self.keys.agent(agent)
        fields = (
            *("model_pid", str(pid), "model_start", start),
            *("model_session", session, "model_workdir", workdir),
        )
        self.lane().send("HSET", key, *fields)

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
    ) -> Turn:
        """Report `outcome` (if any), then claim the next task of `targets` (own queue, pool,
        role, backlog) with `token` ('' = claim nothing), `popped` (an id the agent's blocking
        pop took) first. Nothing is claimed while a control request or mail waits: the pop
        takes them. The same call again (a reply lost) returns the same claim. `gate`: its
        provider's pause and its budgets are checked before a claim (None: the agent's name).
        `instance`: the process's token; superseded, it claims nothing (`Turn.superseded`)."""
        report: list[object] = [""] * 11
        limits: dict[str, object] = {"provider": agent, "entry": agent}
        if gate is not None:
            limits = {"provider": gate.provider, "entry": gate.entry}
        if instance:
            limits["instance"] = instance
        if outcome is not None:
            kind = "completed" if outcome.ok else "failed"
            if outcome.limit is not None and not outcome.ok:
                kind = "deferred"
                limits |= {
                    "reset": "" if outcome.limit.reset is None else repr(outcome.limit.reset),
                    "reason": outcome.limit.reason,
                    "class": outcome.limit.exit_class,
                    "base": policy.limit_backoff,
                    "cap": policy.limit_backoff_max,
                    "max": policy.limit_pause_max,
                    "deferrals": MAX_DEFERRALS,
                }
            report = [
                kind,
                outcome.task_id,
                outcome.token,
                outcome.text,
                "1" if outcome.permanent else "0",
                policy.retry_backoff,
                policy.retry_backoff_max,
                random.uniform(0.9, 1.1),
                policy.retries,
                json.dumps(list(outcome.delivered)) if outcome.delivered else "",
                outcome.detail,
            ]
        got = self._turn(agent, *report, token, SEEN_MAXLEN, popped, json.dumps(limits), *targets)
        reported, timer = str(got[0]), float(got[1]) if got[1] else None
        if len(got) == 3:  # nothing claimed: paused, or out of budget
            why = str(got[2])
            if why == "superseded":
                return Turn(reported, timer, None, [], superseded=True)
            if why.startswith("paused:"):
                return Turn(reported, timer, None, [], paused_until=float(why[7:]))
            return Turn(reported, timer, None, [], budget=why.removeprefix("budget:"))
        if len(got) <= 2:
            return Turn(reported, timer, None, [])
        deps = tuple(DepResult(d, a or None, r) for d, a, r in json.loads(got[6]))
        spec = json.loads(got[4] or "{}")
        claimed = Claimed(str(got[3]), int(got[2]), spec, got[5] or None, deps, got[7] or None)
        mail = [(str(raw), kept_message(str(raw))) for raw in got[8:]]
        return Turn(reported, timer, claimed, mail)

    def _turn(self, *args: object) -> Any:
        """`lua/turn.lua` on the agent's lane (after the replies of writes sent before it)."""
        argv = [self.keys.prefix, repr(time.time()), self.fence, *args]
        sha = self._script("turn").sha
        return self.lane().eval(sha, lua_source("turn"), [self.keys.meta], argv)
