"""town.toml's meaning, after the schema check: [town] settings, [models.X] and [agents.X].

Yields the settings, agent and model specs and what tasks may name (agents, replicas, roles),
reporting on the file's `TomlDoc` every rule the schema cannot express (known models, lease longer
than heartbeat, replica names). It never reads tasks.toml: `taskcheck` checks references to this.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import mask_url
from . import placecheck, presets
from .desired import (
    MAX_AGENTS,
    AgentSpec,
    ModelSpec,
    OutputMode,
    Policy,
    PromptMode,
    RestartPolicy,
    TownSettings,
)
from .durations import MAX_SECONDS, format_duration
from .fields import (
    check_name,
    choice,
    duration,
    env,
    indexed_strs,
    integer,
    opt_str,
    strs,
    table,
    usd,
)
from .locate import JsonPath
from .names import did_you_mean, is_valid_name
from .schemacheck import int_range
from .tomldoc import TomlDoc

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
POLICY_DURATIONS = (
    "heartbeat",
    "lease",
    "retry_backoff",
    "retry_backoff_max",
    "restart_backoff",
    "restart_backoff_max",
    "crash_loop_window",
    "quarantine",
    "resync",
    "task_timeout",
    "keep_deleted",
    "limit_backoff",
    "limit_backoff_max",
    "limit_pause_max",
    "stall_after",
)
# (lowest, highest) seconds of the policy durations with a range narrower than every duration's
# 0 to 30 days (`durations.MAX_SECONDS`; integers have theirs in the schema).
DURATION_RANGES: dict[str, tuple[float, float]] = {
    "keep_deleted": (1.0, MAX_SECONDS),
    "limit_pause_max": (1.0, MAX_SECONDS),
}
FOLLOW_INTERVAL = (1.0, 86400.0)  # (lowest, highest) seconds of [town] follow_interval
BAD_REF_CHARS = frozenset(" ~^:?*[\\")
PATTERN_FIELDS = ("fail_patterns", "stall_patterns", "resume_rejected")
SESSION = "{session}"


@dataclass(frozen=True)
class Roster:
    """town.toml as the task checks need it: settings, agents, models, names."""

    settings: TownSettings
    agents: tuple[AgentSpec, ...]
    models: tuple[ModelSpec, ...]
    targets: frozenset[str]  # what a task's `agent` may name: agents and replicas of pools
    roles: frozenset[str]


def town_settings(
    doc: TomlDoc,
    data: object,
    custom_models: Mapping[str, Any],
    serve: Mapping[str, Any] | None = None,
) -> TownSettings:
    """The [town] table (`data`); `custom_models` is [models] for checking `default_model`;
    `serve`, the [serve] table (`tt serve`; its token_env the schema checks)."""
    town = data if isinstance(data, dict) else {}
    at: JsonPath = ("town",)
    name = opt_str(town, "name")
    if name is not None:
        check_name(doc, (*at, "name"), name, "town name")
    redis = opt_str(town, "redis") or "embedded"
    if redis != "embedded" and not redis.startswith(REDIS_SCHEMES):
        doc.report(
            (*at, "redis"),
            f'unsupported redis {json.dumps(mask_url(redis))}: use "embedded" or a '
            f"{', '.join(REDIS_SCHEMES)} URL",
        )
    default_model = opt_str(town, "default_model") or "claude"
    known = _known_models(custom_models)
    if default_model not in known:
        doc.report(
            (*at, "default_model"),
            f"unknown model '{_shown(default_model)}'",
            did_you_mean(default_model, known) or "add a [models.X] table or use a preset",
        )
    policy = Policy()
    values: dict[str, Any] = {}
    for key in POLICY_DURATIONS:
        seconds = duration(doc, at, town, key)
        if seconds is not None:
            values[key] = seconds
    for key in ("retries", "crash_loop_deaths", "max_prune"):
        values[key] = integer(town, key, getattr(policy, key), int_range("town", "town", key))
    for key, (low, high) in DURATION_RANGES.items():
        if key in values and not low <= values[key] <= high:
            doc.report(
                (*at, key),
                f"{key} must be between {format_duration(low)} and {format_duration(high)}",
            )
            del values[key]
    values["self_heal"] = town.get("self_heal") is not False  # another type: the schema says
    policy = Policy(**values)
    max_agents = integer(town, "max_agents", MAX_AGENTS, int_range("town", "town", "max_agents"))
    if ("lease" in town or "heartbeat" in town) and policy.lease <= policy.heartbeat:
        doc.report(
            (*at, "lease" if "lease" in town else "heartbeat"),
            f"lease ({format_duration(policy.lease)}) must be longer than heartbeat "
            f"({format_duration(policy.heartbeat)}), or every agent looks dead",
        )
    return TownSettings(
        name=name or "",
        redis=redis,
        default_model=default_model,
        policy=policy,
        inherit_env=town.get("inherit_env") is True,
        max_agents=max_agents,
        suspend=town.get("suspend") is True,
        budget_usd=usd(town, "budget_usd"),
        budget_hard=town.get("budget_hard") is True,
        serve_token_env=opt_str(serve or {}, "token_env"),
        local_agents=town.get("local_agents") is not False,  # another type: the schema says
        **_follow(doc, town),
    )


def _follow(doc: TomlDoc, town: Mapping[str, Any]) -> dict[str, Any]:
    """`follow` (a branch name git would take, `remote/` before it or not) and its interval."""
    at: JsonPath = ("town",)
    found: dict[str, Any] = {}
    follow = opt_str(town, "follow")
    if follow is not None:
        if bad := branch_problem(follow):
            doc.report((*at, "follow"), f"follow {json.dumps(follow)} is not a branch: {bad}")
        else:
            found["follow"] = follow
    seconds = duration(doc, at, town, "follow_interval")
    low, high = FOLLOW_INTERVAL
    if seconds is not None and not low <= seconds <= high:
        doc.report(
            (*at, "follow_interval"),
            f"follow_interval must be between {format_duration(low)} and {format_duration(high)}",
        )
    elif seconds is not None:
        found["follow_interval"] = seconds
    return found


def branch_problem(name: str) -> str | None:
    """What keeps `name` from being a branch git accepts (`git check-ref-format`), or None."""
    if not name or name.startswith(("-", "/")) or name.endswith(("/", ".", ".lock")):
        return "it is empty, starts with - or /, or ends with /, . or .lock"
    if ".." in name or "//" in name or "@{" in name or "/." in name or name.startswith("."):
        return "it has .., //, @{ or a part starting with ."
    if any(c in BAD_REF_CHARS or ord(c) < 32 or ord(c) == 127 for c in name):
        return "it has a space, a control character or one of ~^:?*[\\"
    return None


def _flag(entry: Mapping[str, Any], key: str, default: bool) -> bool:
    """A boolean the agent may set (the schema reported any other type), else the town's."""
    value = entry.get(key)
    return value if isinstance(value, bool) else default


def _max_rounds(entry: Mapping[str, Any]) -> int | None:
    """Absent: no limit (the schema reported a value out of range or not an integer)."""
    if "max_rounds" not in entry:
        return None
    return integer(entry, "max_rounds", 1, int_range("town", "agent", "max_rounds"))


def _known_models(custom: Mapping[str, Any]) -> list[str]:
    return [*presets.PRESETS, *(k for k in custom if k not in presets.PRESETS), presets.SIM]


def roster(doc: TomlDoc, data: dict[str, Any]) -> Roster:
    """Everything town.toml declares, from its parsed `data`."""
    custom = table(data, "models")
    settings = town_settings(doc, data.get("town"), custom, table(data, "serve"))
    specs = tuple(_model(doc, name, entry) for name, entry in custom.items())
    known = _known_models(custom)
    agents_table = table(data, "agents")

    agents: list[AgentSpec] = []
    for name, entry in agents_table.items():
        if not isinstance(entry, dict):
            continue  # the schema has reported it
        at: JsonPath = ("agents", name)
        check_name(doc, at, name, "agent name", agent=True)
        model = opt_str(entry, "model") or settings.default_model
        if "model" in entry and model not in known:
            doc.report(
                (*at, "model"),
                f"unknown model '{_shown(model)}'",
                did_you_mean(model, known) or f"presets: {', '.join(presets.PRESETS)}",
            )
        role = opt_str(entry, "role")
        if role is not None:
            check_name(doc, (*at, "role"), role, "role name")
        restart = opt_str(entry, "restart")
        replicas = integer(entry, "replicas", 1, int_range("town", "agent", "replicas"))
        if replicas > 1 and not is_valid_name(f"{name}-{replicas}") and is_valid_name(name):
            doc.report(
                (*at, "replicas"), f"replica name '{name}-{replicas}' would be longer than 63"
            )
        agents.append(
            AgentSpec(
                name=name,
                model=model,
                role=role,
                replicas=replicas,
                args=strs(entry, "args"),
                env=env(entry),
                env_from=strs(entry, "env_from"),
                workdir=opt_str(entry, "workdir"),
                timeout=duration(doc, at, entry, "timeout"),
                restart=choice(RestartPolicy, restart, RestartPolicy.ALWAYS),
                max_rounds=_max_rounds(entry),
                suspended=entry.get("suspended") is True,
                node=placecheck.node(doc, at, entry),
                node_labels=placecheck.node_labels(doc, at, entry),
                placement=placecheck.placement(doc, at, entry, settings.local_agents),
                nickname=opt_str(entry, "nickname"),
                parent=opt_str(entry, "parent"),
                inherit_env=_flag(entry, "inherit_env", settings.inherit_env),
                budget_usd=usd(entry, "budget_usd"),
                resume=_flag(entry, "resume", True),
                stall_after=duration(doc, at, entry, "stall_after"),
            )
        )

    _total(doc, agents, settings.max_agents)
    # A pool's replicas are addressable by name, so they share the agents' namespace.
    replica_of = {i: a for a in agents if a.replicas > 1 for i in a.instances()}
    for agent in agents:
        pool = replica_of.get(agent.name)
        if pool is not None and pool is not agent:
            doc.report(
                ("agents", agent.name),
                f"agent '{agent.name}' has the name of a replica of agent '{pool.name}' "
                f"(replicas = {pool.replicas})",
                "rename the agent or lower the replicas of the pool",
            )
    for agent in agents:
        if agent.parent is not None and agent.parent not in agents_table:
            doc.report(
                ("agents", agent.name, "parent"),
                f"unknown agent '{_shown(agent.parent)}'",
                did_you_mean(agent.parent, agents_table),
            )
    targets = frozenset(agents_table) | frozenset(replica_of)
    roles = frozenset(a.role for a in agents if a.role)
    return Roster(settings, tuple(agents), specs, targets, roles)


def _shown(value: str, limit: int = 80) -> str:
    """A value quoted in a message, cut short: a 2 MB model name is not repeated in full."""
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _total(doc: TomlDoc, agents: list[AgentSpec], limit: int) -> None:
    """The agents run, replicas counted, stay within [town] max_agents: reported at the agent
    that goes past it."""
    total = 0
    for agent in agents:
        total += agent.replicas
        if total > limit:
            running = sum(a.replicas for a in agents)
            at: JsonPath = ("agents", agent.name)
            doc.report(
                (*at, "replicas") if agent.replicas > 1 else at,
                f"the town would run {running} agents (replicas counted), more than "
                f"[town] max_agents = {limit}",
                f"lower replicas, or raise max_agents (at most "
                f"{int_range('town', 'town', 'max_agents')[1]})",
            )
            return


def _model(doc: TomlDoc, name: str, entry: object) -> ModelSpec:
    at: JsonPath = ("models", name)
    check_name(doc, at, name, "model name")
    entry_table = entry if isinstance(entry, dict) else {}
    patterns = {key: indexed_strs(entry_table, key) for key in PATTERN_FIELDS}
    for key, found in patterns.items():
        for i, pattern in found:
            try:
                re.compile(pattern)
            except re.error as e:
                doc.report((*at, key, i), f"invalid regular expression: {e}")
    prompt = opt_str(entry_table, "prompt")
    grace = duration(doc, at, entry_table, "stall_after")
    return ModelSpec(
        name=name,
        command=strs(entry_table, "command"),
        prompt=choice(PromptMode, prompt, PromptMode.STDIN),
        env=env(entry_table),
        fail_patterns=tuple(p for _, p in patterns["fail_patterns"]),
        stall_patterns=tuple(p for _, p in patterns["stall_patterns"]),
        stall_grace=60.0 if grace is None else grace,
        output=choice(OutputMode, opt_str(entry_table, "output"), OutputMode.TEXT),
        provider=_provider(doc, at, entry_table),
        resume_args=_session_template(doc, at, entry_table, "resume_args"),
        session_args=_session_template(doc, at, entry_table, "session_args"),
        resume_rejected=tuple(p for _, p in patterns["resume_rejected"]),
    )


def _provider(doc: TomlDoc, at: JsonPath, entry: Mapping[str, Any]) -> str | None:
    """`provider`: a name (it becomes a Redis key), else None (the command's name)."""
    provider = opt_str(entry, "provider")
    if provider is not None and not check_name(doc, (*at, "provider"), provider, "provider"):
        return None
    return provider


def _session_template(
    doc: TomlDoc, at: JsonPath, entry: Mapping[str, Any], key: str
) -> tuple[str, ...]:
    """`resume_args` / `session_args`: argv elements, one of them with `{session}` (the CLI's
    session id goes there), else reported and read as absent."""
    args = strs(entry, key)
    if args and not any(SESSION in a for a in args):
        doc.report(
            (*at, key),
            f"{key} has no {SESSION} placeholder: the session id would not reach the CLI",
            f'for example {key} = ["--resume", "{SESSION}"]',
        )
        return ()
    return args
