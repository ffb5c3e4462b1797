"""The environment an agent's model gets is declared: the base set, its preset's credential
variables, tt's own TT_*, `env_from`; everything only with `inherit_env`. And an `env_from`
name the environment lacks is reported, so the agent is not started without it."""

from __future__ import annotations

from reconciler.agents.environment import (
    CREDENTIALS,
    agent_process_env,
    missing,
    model_env,
)
from reconciler.spec.desired import AgentSpec
from reconciler.spec.presets import PRESETS

SOURCE = {
    "PATH": "/usr/bin",
    "HOME": "/var/lib/u",
    "USER": "u",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
    "HTTPS_PROXY": "http://proxy:3128",
    "https_proxy": "http://proxy:3128",
    "SSL_CERT_FILE": "/etc/ca.pem",
    "NODE_EXTRA_CA_CERTS": "/etc/ca.pem",
    "TT_TOWN": "/town",
    "TT_SIM_DELAY": "0.1",
    "ANTHROPIC_API_KEY": "sk-ant",
    "OPENAI_API_KEY": "sk-openai",
    "AWS_SECRET_ACCESS_KEY": "aws",
    "DATABASE_URL": "postgres://u:pw@db/x",
    "MY_TOKEN": "mine",
    "PYTHONPATH": "/src",
}
BASE = {
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "TZ",
    "HTTPS_PROXY",
    "https_proxy",
    "SSL_CERT_FILE",
    "NODE_EXTRA_CA_CERTS",
    "TT_TOWN",
    "TT_SIM_DELAY",
}


def test_a_claude_agent_gets_the_base_set_and_claudes_credentials_only() -> None:
    agent = AgentSpec("dev", "claude")
    assert set(model_env(SOURCE, agent, PRESETS["claude"])) == BASE | {"ANTHROPIC_API_KEY"}


def test_a_codex_agent_gets_openais_key_and_not_anthropics() -> None:
    agent = AgentSpec("dev", "codex")
    assert set(model_env(SOURCE, agent, PRESETS["codex"])) == BASE | {"OPENAI_API_KEY"}


def test_env_from_passes_the_names_it_lists_with_their_values() -> None:
    agent = AgentSpec("dev", "claude", env_from=("MY_TOKEN", "DATABASE_URL"))
    env = model_env(SOURCE, agent, PRESETS["claude"])
    assert set(env) == BASE | {"ANTHROPIC_API_KEY", "MY_TOKEN", "DATABASE_URL"}
    assert env["MY_TOKEN"] == "mine"


def test_inherit_env_passes_everything() -> None:
    agent = AgentSpec("dev", "claude", inherit_env=True)
    assert model_env(SOURCE, agent, PRESETS["claude"]) == SOURCE


def test_the_agent_process_also_gets_what_runs_tts_python() -> None:
    agent = AgentSpec("dev", "claude")
    env = agent_process_env(SOURCE, agent, PRESETS["claude"])
    assert set(env) == BASE | {"ANTHROPIC_API_KEY", "PYTHONPATH"}
    assert "PYTHONPATH" not in model_env(SOURCE, agent, PRESETS["claude"])


def test_missing_names_the_env_from_variables_the_environment_lacks() -> None:
    agent = AgentSpec("dev", "claude", env_from=("MY_TOKEN", "GONE", "ALSO_GONE"))
    assert missing(SOURCE, agent) == ("GONE", "ALSO_GONE")
    assert missing({**SOURCE, "GONE": "", "ALSO_GONE": "x"}, agent) == ()  # set, even empty


def test_every_preset_declares_its_credential_variables() -> None:
    assert set(CREDENTIALS) == set(PRESETS)


def test_the_readme_lists_each_presets_credential_variables() -> None:
    """README's Safety table is what the code passes, preset by preset."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    listed: dict[str, tuple[str, ...]] = {}
    for presets, names in re.findall(
        r"^\| (`[a-z-]+`(?:, `[a-z-]+`)*) \| (`[A-Z].*?) \|$", readme, re.M
    ):
        variables = tuple(re.findall(r"`([A-Z_]+)`", names))
        for preset in re.findall(r"`([a-z-]+)`", presets):
            listed[preset] = variables
    assert listed == CREDENTIALS


SECRETS = {
    "TT_API_TOKEN": "api",
    "MY_SERVE_TOKEN": "api-too",
    "TT_HOOK_SECRET": "hook",
    "TT_MODEL_OVERRIDE": "sim",
    "TT_REDIS_URL": "redis://127.0.0.1:1/0",
    "TT_SIM_GATE": "/gate",
}


def test_only_the_tt_settings_agents_read_pass_never_another_tt_variable() -> None:
    agent = AgentSpec("dev", "claude")
    env = model_env({**SOURCE, **SECRETS}, agent, PRESETS["claude"], "MY_SERVE_TOKEN")
    assert {"TT_TOWN", "TT_SIM_DELAY", "TT_SIM_GATE", "TT_MODEL_OVERRIDE", "TT_REDIS_URL"} <= set(
        env
    )
    assert not {"TT_API_TOKEN", "MY_SERVE_TOKEN", "TT_HOOK_SECRET"} & set(env)


def test_the_api_token_is_withheld_even_when_inherited_or_declared() -> None:
    source = {**SOURCE, **SECRETS}
    for agent in (
        AgentSpec("dev", "claude", inherit_env=True),
        AgentSpec("dev", "claude", env_from=("TT_API_TOKEN", "MY_SERVE_TOKEN")),
    ):
        for env in (
            model_env(source, agent, PRESETS["claude"], "MY_SERVE_TOKEN"),
            agent_process_env(source, agent, PRESETS["claude"], "MY_SERVE_TOKEN"),
        ):
            assert not {"TT_API_TOKEN", "MY_SERVE_TOKEN"} & set(env), agent
    inherited = model_env(source, AgentSpec("dev", "claude", inherit_env=True), PRESETS["claude"])
    assert "TT_API_TOKEN" not in inherited and inherited["MY_SERVE_TOKEN"] == "api-too"
