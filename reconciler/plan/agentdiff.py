"""The agents part of `diff`: which agent instances to create, update (restarting those whose
process would run differently) and delete or leave as orphans. Pure, like `diff`.
"""

from __future__ import annotations

from ..spec.desired import AgentSpec, Desired
from .actions import Action, CreateAgent, DeleteAgent, OrphanAgent, UpdateAgent
from .state import Observed, ObservedAgent, Source

# What an agent process runs with (`AgentSpec.spec_hash`): a change restarts it. `replicas` is
# not compared per instance: scaling shows as instances created or deleted.
AGENT_DRIFT_FIELDS = (
    "model",
    "role",
    "args",
    "env",
    "env_from",
    "workdir",
    "timeout",
    "node",
    "inherit_env",
    "resume",
    "stall_after",
)
# Read by the worker and fleet at start: no restart needed (a new max_rounds counts from the
# agent's next process). The placement fields move an agent (the leader's placement), if at all.
AGENT_OTHER_FIELDS = ("restart", "max_rounds", "node_labels", "placement")


def agent_actions(desired: Desired, observed: Observed, prune: bool) -> list[Action]:
    wanted = {name: spec for spec in desired.agents for name in spec.instances()}
    creates: list[Action] = []
    updates: list[Action] = []
    for name, spec in wanted.items():
        seen = observed.agents.get(name)
        if seen is None:
            creates.append(CreateAgent(name, spec))
            continue
        changed, restart = agent_changes(seen, spec)
        if changed:
            updates.append(UpdateAgent(name, spec, changed, restart))
    removals: list[Action] = []
    for name in sorted(observed.agents):
        seen = observed.agents[name]
        if name in wanted or seen.source is not Source.FILE:
            continue  # agents spawned with --no-save are never pruned
        base = desired.agent(seen.base_name)
        if base is not None:
            # Its town.toml entry remains with other replicas: that is a scale, not a prune.
            removals.append(DeleteAgent(name, f"scaled to {base.replicas} replica(s)"))
        elif prune:
            removals.append(DeleteAgent(name, "removed from town.toml"))
        else:
            removals.append(OrphanAgent(name))
    return creates + updates + removals


def agent_changes(seen: ObservedAgent, spec: AgentSpec) -> tuple[tuple[str, ...], bool]:
    if seen.spec is not None:
        drift = [f for f in AGENT_DRIFT_FIELDS if getattr(seen.spec, f) != getattr(spec, f)]
        other = [f for f in AGENT_OTHER_FIELDS if getattr(seen.spec, f) != getattr(spec, f)]
    else:
        drift = ["spec"] if seen.spec_hash != spec.spec_hash() else []
        other = []
    if seen.suspended != spec.suspended:
        other.append("suspended")
    if seen.source is not Source.FILE:
        other.append("source")  # the file now owns an agent spawned with --no-save
    return tuple(drift + other), bool(drift)
