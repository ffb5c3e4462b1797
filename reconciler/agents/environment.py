"""The environment an agent and its model get: declared, not inherited. A base set (paths, user,
locale, terminal, time zone, proxies, CA certificates), the variables the model's CLI reads for
its credentials, the few `TT_*` settings agents read, and the names the agent passes through with
`env_from`; `inherit_env = true` (town or agent) passes everything. `tt serve`'s API token
(TT_API_TOKEN and the variable `[serve] token_env` names) never reaches either, whatever is
declared. Pure: the caller gives the environment it has; `env` values from town.toml are added by
the caller, after these.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..spec.desired import AgentSpec, ModelSpec

BASE = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TERM",
        "TZ",
        "TMPDIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
    }
)
# Every variable with one of these prefixes: the locale's categories, the XDG base folders (where
# CLIs keep their logins), and the offline model's settings (TT_SIM_DELAY, TT_SIM_GATE…).
BASE_PREFIXES = ("LC_", "XDG_", "TT_SIM_")
# tt's own settings an agent reads from the environment it is started with (the others, TT_AGENT,
# TT_TASK, TT_ATTEMPT, TT_ATTEMPT_TOKEN, tt sets itself for each run). Not every `TT_*`: a user's
# secrets may have the prefix too (a webhook's TT_HOOK_SECRET, tt serve's TT_API_TOKEN).
# TT_TOWN_NAME: the town is reached without its files (`tt node run --redis URL --town-name T`);
# TT_WORKSPACE: a node's own clone of the [git] repository (`--workspace`).
TT_SETTINGS = frozenset(
    {"TT_TOWN", "TT_REDIS_URL", "TT_TOWN_NAME", "TT_WORKSPACE", "TT_MODEL_OVERRIDE"}
)
# Never passed, even with `inherit_env` or `env_from`: whoever holds it runs the town over HTTP.
API_TOKEN = "TT_API_TOKEN"
NODE_ENV = "TT_NODE"  # the node an agent process runs under (`tt node run`); fleet sets it

# What each preset's CLI reads for its credentials and account settings (CLI-FACTS.md: their
# --help, README and error messages). A custom model's go in the agent's `env_from`.
CREDENTIALS: dict[str, tuple[str, ...]] = {
    "claude": (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "CLAUDE_CODE_USE_BEDROCK",
        "CLAUDE_CODE_USE_VERTEX",
        "IS_SANDBOX",  # the user's decision to allow bypass mode as root, never tt's
    ),
    "codex": ("OPENAI_API_KEY", "CODEX_ACCESS_TOKEN", "CODEX_HOME"),
    "codex-mini": ("OPENAI_API_KEY", "CODEX_ACCESS_TOKEN", "CODEX_HOME"),
    "auggie": ("AUGMENT_SESSION_AUTH", "GITHUB_API_TOKEN"),
    "aider": (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "AIDER_OPENAI_API_KEY",
        "AIDER_ANTHROPIC_API_KEY",
        "OPENAI_API_BASE",
    ),
    "gemini": (
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_GENAI_USE_GCA",
        "GOOGLE_CLOUD_PROJECT",
        "GEMINI_CLI_TRUST_WORKSPACE",
    ),
    "copilot": (
        "COPILOT_GITHUB_TOKEN",
        "GH_TOKEN",
        "GITHUB_TOKEN",
        "COPILOT_PROVIDER_BASE_URL",
        "COPILOT_PROVIDER_API_KEY",
        "COPILOT_PROVIDER_BEARER_TOKEN",
        "COPILOT_PROVIDER_TYPE",
        "COPILOT_OFFLINE",
        "COPILOT_HOME",
    ),
    # tt's own offline model is Python run by tt's interpreter: it needs what finds tt's code.
    "sim": ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"),
}
# The agent process (`tt agent run`) is tt's own Python too.

AGENT_PROCESS = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")


def declared(name: str, agent: AgentSpec, model: ModelSpec) -> bool:
    """Whether variable `name` reaches `agent`'s `model` (when it does not inherit all)."""
    return (
        name in BASE
        or name in TT_SETTINGS
        or name.startswith(BASE_PREFIXES)
        or name in CREDENTIALS.get(model.name, ())
        or name in agent.env_from
    )


def withheld(token_env: str | None) -> frozenset[str]:
    """The names no agent or model gets: tt serve's token, in either variable it may be in."""
    return frozenset({API_TOKEN, token_env} if token_env else {API_TOKEN})


def model_env(
    source: Mapping[str, str],
    agent: AgentSpec,
    model: ModelSpec,
    token_env: str | None = None,
) -> dict[str, str]:
    """The variables of `source` that `agent`'s `model` gets (`token_env`: the town's
    `[serve] token_env`, withheld as TT_API_TOKEN is)."""
    never = withheld(token_env)
    return {
        k: v
        for k, v in source.items()
        if k not in never and (agent.inherit_env or declared(k, agent, model))
    }


def agent_process_env(
    source: Mapping[str, str],
    agent: AgentSpec,
    model: ModelSpec,
    token_env: str | None = None,
) -> dict[str, str]:
    """The environment of the agent's own process: its model's, and what runs tt's Python."""
    env = model_env(source, agent, model, token_env)
    env.update({k: source[k] for k in AGENT_PROCESS if k in source})
    return env


def missing(source: Mapping[str, str], agent: AgentSpec) -> tuple[str, ...]:
    """The `env_from` names that `source` lacks: the agent must not start without them."""
    return tuple(name for name in agent.env_from if name not in source)
