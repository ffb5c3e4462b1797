"""Provider pauses and budgets as the files and Redis hold them: the budgets apply writes, `tt
resume-provider`, and what `tt status` / `tt show` say of them (which tasks wait for a budget,
which providers are paused until when).

The checks themselves run in the agents' turns (store/lua/limits_lib.lua); this reads and
writes through the store only.
"""

from __future__ import annotations

from typing import Any

from ..errors import TtError
from ..spec.desired import Desired
from ..store.client import Store

BUDGET = "budget"  # a task's `waiting_for` while a budget keeps it from starting


def write_budgets(store: Store, desired: Desired) -> int:
    """The files' budgets into Redis (each apply); a raised one releases what waited for it.
    Returns how many tasks waiting for their own max_cost_usd were released."""
    agents = {a.name: a.budget_usd for a in desired.agents if a.budget_usd is not None}
    return store.set_budgets(desired.town.budget_usd, agents, desired.town.budget_hard)


def providers(desired: Desired | None) -> dict[str, list[str]]:
    """Each provider of the town's agents, with its agents (town.toml entries)."""
    # (imported here: the apply's `write_budgets` needs neither; agents.limits with its
    # parsers and zoneinfo costs ~10 ms to import)
    from ..agents.limits import provider_of
    from ..agents.models import resolve

    found: dict[str, list[str]] = {}
    if desired is None:
        return found
    custom = {m.name: m for m in desired.models}
    for a in desired.agents:
        try:
            model = resolve(a.model, custom, None)
        except KeyError:  # (a valid town names known models only)
            continue
        found.setdefault(provider_of(model), []).append(a.name)
    return found


def resume_provider(store: Store, desired: Desired | None, name: str) -> bool:
    """`tt resume-provider NAME`: end its pause now. False: it was not paused; an unknown
    provider (no agent of the town uses it, and it is not paused) is an error."""
    if store.resume_provider(name):
        return True
    known = providers(desired)
    if name not in known:
        shown = ", ".join(sorted(known)) or "none"
        raise TtError(f"unknown provider '{name}'", hint=f"the town's providers: {shown}")
    return False


def entry_of(desired: Desired | None) -> dict[str, str]:
    """Each agent instance (and entry) by name -> its town.toml entry."""
    if desired is None:
        return {}
    return {i: a.name for a in desired.agents for i in a.instances()}


def limits_report(
    store: Store, desired: Desired | None, tasks: list[dict[str, Any]]
) -> dict[str, Any]:
    """`providers` (the pauses: provider, paused_until and since as unix seconds, reason,
    class) and `budgets` (`town`, `agents`: limit, spent, reached; `hard`) of `tt status`;
    the rows of `tasks` that a budget keeps from starting get `waiting_for` = "budget"."""
    pauses = [
        {
            "provider": p.provider,
            "paused_until": p.until,
            "reason": p.reason,
            "class": p.exit_class,
            "since": p.since,
        }
        for p in store.pauses()
    ]
    limits, spent, reached = store.budgets(), store.spent(), store.exhausted()

    def scope(key: str) -> dict[str, Any]:
        limit = float(limits[key]) if key in limits else None
        return {"limit": limit, "spent": spent.get(key, 0.0), "reached": key in reached}

    agents = {k.split(":", 1)[1]: scope(k) for k in limits if k.startswith("agent:")}
    budgets = {"town": scope("town"), "agents": agents, "hard": limits.get("hard") == "1"}
    entries = entry_of(desired)
    for t in tasks:
        if t["state"] == "ready" and not t.get("waiting_for"):
            target = entries.get(t.get("target") or "", "")
            if "town" in reached or f"agent:{target}" in reached:
                t["waiting_for"] = BUDGET
    return {"providers": pauses, "budgets": budgets}
