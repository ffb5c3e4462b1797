"""`tt usage`: tokens and USD of every attempt recorded (the tasks' and the tombstones'), summed
for the town and per agent, model and task, with the budgets beside what they allow.

Reads the attempt records through the store; writes nothing. A cost the CLI did not tell
(null) counts as 0 and is counted apart (`unknown_cost`): nothing is estimated.
The JSON shape is documented in README.md ("Cost and limits") and only ever added to.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ..spec.desired import Desired
from ..store.client import Store
from .limits import limits_report

TOKENS = ("input", "output", "cache_read", "cache_write")
GROUPS = (("agents", "agent"), ("models", "model"), ("tasks", "task"))


class Sum:
    """Tokens and USD of some attempts; costs summed with `math.fsum` (exact to the last bit,
    in any order)."""

    def __init__(self) -> None:
        self.attempts = 0
        self.tokens = dict.fromkeys(TOKENS, 0)
        self.costs: list[float] = []
        self.unknown = 0

    def add(self, rec: dict[str, Any]) -> None:
        self.attempts += 1
        found = rec.get("tokens")
        tokens = found if isinstance(found, dict) else {}
        for k in TOKENS:
            n = tokens.get(k)
            if isinstance(n, int) and not isinstance(n, bool):
                self.tokens[k] += n
        cost = rec.get("cost_usd")
        if isinstance(cost, (int, float)) and not isinstance(cost, bool):
            self.costs.append(float(cost))
        else:
            self.unknown += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "tokens": dict(self.tokens),
            "cost_usd": round(math.fsum(self.costs), 10),
            "unknown_cost": self.unknown,
        }


def summed(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """`total` and the rows per agent, model and task (`name` plus `Sum.as_json`), by name."""
    total = Sum()
    groups: dict[str, dict[str, Sum]] = {g: {} for g, _ in GROUPS}
    for rec in records:
        total.add(rec)
        for group, key in GROUPS:
            name = rec.get(key)
            if isinstance(name, str) and name:
                groups[group].setdefault(name, Sum()).add(rec)
    out: dict[str, Any] = {"total": total.as_json()}
    for group, sums in groups.items():
        out[group] = [{"name": n, **sums[n].as_json()} for n in sorted(sums)]
    return out


def usage_report(store: Store, desired: Desired | None) -> dict[str, Any]:
    """`tt usage -o json`: {town, total, agents, models, tasks, budgets}."""
    return {
        "town": store.town,
        **summed(store.every_attempt()),
        "budgets": limits_report(store, desired, [])["budgets"],
    }
