"""Which town.toml entry an agent instance belongs to, and the queues its worker takes work
from, in order. Pure: reads nothing from Redis.
"""

from __future__ import annotations

from ..errors import TtError
from ..plan.graph import BACKLOG, ROLE_PREFIX
from ..spec.desired import AgentSpec, Desired


def base_spec(desired: Desired, instance: str) -> AgentSpec:
    """The town.toml entry that `instance` (e.g. worker-2) belongs to."""
    for a in desired.agents:
        if instance in a.instances():
            return a
    raise TtError(f"agent '{instance}' is not in town.toml", hint="tt spawn NAME --model M")


def queue_targets(spec: AgentSpec, instance: str) -> list[str]:
    """Own queue first, then the pool, then the role, then the town's backlog."""
    targets = [instance]
    if instance != spec.name:
        targets.append(spec.name)  # the pool's queue: every replica takes its work
    if spec.role:
        targets.append(ROLE_PREFIX + spec.role)
    targets.append(BACKLOG)
    return targets
