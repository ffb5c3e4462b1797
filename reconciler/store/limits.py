"""Provider pauses and budgets in Redis, mixed into `Store`: what `tt status` and `tt usage`
read (pauses, spent, budgets reached, every attempt record), `tt resume-provider`, and the
budgets apply writes (`lua/budgets.lua`, which releases what waited for a budget raised).

The pause and budget checks themselves run in the agent's turn (`lua/limits_lib.lua`). No
redis import: it uses the client `Store` owns.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .scripts import Scripted


@dataclass(frozen=True)
class Pause:
    """A provider paused by a usage or rate limit, until a time."""

    provider: str
    until: float  # unix seconds
    reason: str  # e.g. "claude usage limit"
    exit_class: str  # usage_limit | rate_limited
    since: float | None = None


class LimitOps(Scripted):
    def pauses(self, now: float | None = None) -> list[Pause]:
        """The providers paused at `now` (default: the current time), by provider."""
        at = time.time() if now is None else now
        found = []
        for provider, raw in sorted(self.client.hgetall(self.keys.pauses).items()):
            try:
                p = json.loads(raw)
                pause = Pause(
                    str(provider),
                    float(p["until"]),
                    str(p.get("reason") or ""),
                    str(p.get("class") or ""),
                    float(p["since"]) if p.get("since") is not None else None,
                )
            except (ValueError, KeyError, TypeError):
                continue
            if pause.until > at:
                found.append(pause)
        return found

    def resume_provider(self, provider: str) -> bool:
        """End `provider`'s pause now (its idle agents are woken); False: it was not paused."""
        return bool(self._run("resume_provider", provider))

    def set_budgets(self, town: float | None, agents: dict[str, float], hard: bool) -> int:
        """The budgets of the files; returns how many tasks waiting for theirs were released."""
        data = {"town": town, "agents": agents, "hard": hard}
        return int(self._run("budgets", json.dumps(data)))

    def spent(self) -> dict[str, float]:
        """USD recorded by scope: `town`, `agent:ENTRY`, `task:ID`."""
        raw = self.client.hgetall(self.keys.spent)
        return {k: float(v) for k, v in raw.items() if not k.startswith("counted:")}

    def budgets(self) -> dict[str, str]:
        return dict(self.client.hgetall(self.keys.budgets))

    def exhausted(self) -> dict[str, float]:
        """The budgets reached, by scope, with when."""
        return {k: float(v) for k, v in self.client.hgetall(self.keys.exhausted).items()}

    def every_attempt(self) -> Iterator[dict[str, Any]]:
        """Every attempt record of the town's tasks and tombstones (`tt usage`), each with its
        `task`, read 500 tasks a round trip."""
        tasks = [(t, self.keys.attempts(t)) for t in self.client.zrange(self.keys.tasks, 0, -1)]
        deleted = self.client.zrange(self.keys.deleted, 0, -1)
        tasks += [(t, self.keys.tombstone_attempts(t)) for t in deleted]
        for start in range(0, len(tasks), 500):
            part = tasks[start : start + 500]
            pipe = self.client.pipeline(transaction=False)
            for _, key in part:
                pipe.lrange(key, 0, -1)
            for (task, _), records in zip(part, pipe.execute(), strict=True):
                for raw in records:
                    try:
                        rec = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(rec, dict):
                        yield {**rec, "task": str(task)}
