"""town.toml's [[notify]] (issue 15): what the loader makes of the tables, how it words what is
wrong (file, line, path), that the schema accepts what the checks accept, which events a rule
matches, and that the list of event types a rule may name holds every type tt writes."""

from __future__ import annotations

import re
import stat
import sys
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

from reconciler.spec import loader, schemacheck
from reconciler.spec.events import EVENT_TYPES, TOWN_COMPLETED
from reconciler.spec.notifycheck import url_problem
from reconciler.spec.notifyrules import NotifyRule, SinkKind
from reconciler.town import TownPaths

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).parents[2]
TOWN = (
    '[town]\nname = "demo"\n\n[agents.dev]\nmodel = "sim"\n\n'
    '[agents.pool]\nmodel = "sim"\nreplicas = 3\n'
)
RULES = """
[[notify]]
on = ["task.failed", "task.completed"]
tasks = ["build"]
command = ["python3", "-c", "pass", "{event} {task}: {summary}"]
timeout = "3s"
env = { CHANNEL = "ops" }
env_from = ["PAGER_TOKEN"]

[[notify]]
on = ["task.awaiting_approval", "agent.exited"]
agents = ["pool"]
webhook = "https://hooks.example.com/tt?x=1"
secret_env = "TT_HOOK_SECRET"

[[notify]]
on = ["task.failed"]
slack_webhook_env = "SLACK_URL"
"""


def rules_of(town: str) -> tuple[NotifyRule, ...]:
    result = loader.check_texts(town, None)
    assert result.desired is not None, [p.render() for p in result.problems]
    return result.desired.notify


def rendered(town: str) -> list[str]:
    result = loader.check_texts(town, None)
    assert result.desired is None, "expected problems, the files are valid"
    return [p.render() for p in result.problems]


def test_the_three_sinks_are_read_with_their_filters() -> None:
    command, webhook, slack = rules_of(TOWN + RULES)
    assert command.kind is SinkKind.COMMAND and command.timeout == 3.0
    assert command.on == ("task.failed", "task.completed") and command.tasks == ("build",)
    assert webhook.kind is SinkKind.WEBHOOK and webhook.secret_env == "TT_HOOK_SECRET"
    assert webhook.instances == {"pool", "pool-2", "pool-3"}  # a pool's replicas included
    assert webhook.sink_words() == "webhook https://hooks.example.com/…"  # no query shown
    assert slack.kind is SinkKind.SLACK and slack.timeout == 10.0
    assert slack.sink_words() == "slack $SLACK_URL"
    assert len({command.key(), webhook.key(), slack.key()}) == 3
    assert command.env == (("CHANNEL", "ops"),) and command.env_from == ("PAGER_TOKEN",)
    # How it is told is no part of a rule's identity (its delivery cursor survives an edit).
    assert rules_of(TOWN + RULES.replace('"3s"', '"5s"'))[0].key() == command.key()
    assert rules_of(TOWN + RULES.replace('"ops"', '"dev"'))[0].key() == command.key()


def test_the_schema_accepts_what_the_loader_accepts() -> None:
    data = tomllib.loads(TOWN + RULES)
    assert jsonschema.Draft202012Validator(schemacheck.load_schema("town")).is_valid(data)
    assert schemacheck.fast_check("town")(data)


def test_every_problem_names_file_line_and_field() -> None:
    town = TOWN + (
        "\n[[notify]]\n"  # line 11
        'on = ["task.faild", "notify.failed"]\n'
        'agents = ["devv"]\n'
        'tasks = ["Bad Id"]\n'
        'command = ["true"]\n'
        'webhook = "ftp://example.com/x"\n'
        "\n[[notify]]\n"  # line 18
        'on = ["task.failed"]\n'
        'tiemout = "3s"\n'
        "\n[[notify]]\n"  # line 22
        'on = ["task.failed"]\n'
        'command = ["true"]\n'
        'secret_env = "S"\n'
        "\n[[notify]]\n"  # line 27
        'on = ["task.failed"]\n'
        'env_from = ["X"]\n'
        'webhook = "https://h.io/"\n'
    )
    assert rendered(town) == [
        'town.toml:12: $.notify[0].on[0]: unknown event type "task.faild" '
        "(did you mean 'task.failed'?)",
        "town.toml:12: $.notify[0].on[1]: notify.failed cannot be told (a sink would loop)",
        "town.toml:13: $.notify[0].agents[0]: unknown agent \"devv\" (did you mean 'dev'?)",
        'town.toml:14: $.notify[0].tasks[0]: invalid task id "Bad Id": use lowercase letters, '
        "digits, '.', '_' and '-' (at most 63, starting with a letter or digit) (for example "
        "'bad-id')",
        "town.toml:16: $.notify[0].webhook: a [[notify]] table has exactly one sink, this one "
        "has command and webhook (write one [[notify]] table per sink)",
        'town.toml:16: $.notify[0].webhook: invalid webhook URL "ftp://example.com/x": only '
        "http:// and https:// URLs are posted to",
        "town.toml:18: $.notify[1]: a [[notify]] table needs a sink (give one of command "
        '= [...], webhook = "https://...", slack_webhook_env = "NAME")',
        "town.toml:20: $.notify[1].tiemout: unknown key 'tiemout' (did you mean 'timeout'?)",
        "town.toml:25: $.notify[2].secret_env: secret_env signs a webhook: this table has none",
        "town.toml:29: $.notify[3].env_from: env_from is for a command: this table has none",
    ]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "only http:// and https:// URLs are posted to"),
        ("hooks.example.com/x", "only http:// and https:// URLs are posted to"),
        ("https:///no-host", "it names no host"),
        ("http://example.com:port/", "Port could not be cast to integer value as 'port'"),
        ("https://exa mple.com/", "it holds a space or a control character"),
    ],
)
def test_a_webhook_must_be_an_http_url_with_a_host(url: str, why: str) -> None:
    assert url_problem(url) == why
    town = TOWN + f'\n[[notify]]\non = ["task.failed"]\nwebhook = "{url}"\n'
    assert rendered(town) == [
        f'town.toml:13: $.notify[0].webhook: invalid webhook URL "{url}": {why}'
    ]


def test_a_webhook_url_with_a_password_is_refused_and_never_shown() -> None:
    """Review #5: a password in the URL would reach notify.failed events and logs."""
    why = "it holds a user name or password (sign the POSTs with secret_env instead)"
    assert url_problem("https://user:s3cret@hooks.example.com/x") == why
    assert url_problem("https://token@hooks.example.com/x") == why
    town = TOWN + '\n[[notify]]\non = ["task.failed"]\nwebhook = "https://me:s3cret@h.io/"\n'
    assert rendered(town) == [
        f'town.toml:13: $.notify[0].webhook: invalid webhook URL "https://me:****@h.io/": {why}'
    ]


def test_a_rule_that_could_never_tell_anything_is_a_problem() -> None:
    """Review #7: a misspelt task (tasks.toml has no such task), a `tasks`/`agents` filter on
    an event that names no task (or agent), a misspelt placeholder: each would tell nothing."""
    town = TOWN + (
        "\n[[notify]]\n"  # line 11
        'on = ["task.failed", "town.completed"]\n'
        'tasks = ["deplyo", "build"]\n'
        'command = ["true", "{tsk} {summary}", "repos/{owner}/{repo}", "{}"]\n'
        "\n[[notify]]\n"  # line 16
        'on = ["agent.exited", "budget.exhausted"]\n'
        'agents = ["dev"]\n'
        'webhook = "https://h.io/"\n'
    )
    tasks = (
        '[[tasks]]\nid = "build"\ndescription = "b"\nagent = "dev"\n\n'
        '[[tasks]]\nid = "deploy"\ndescription = "d"\nagent = "dev"\n'
    )
    result = loader.check_texts(town, tasks)
    assert result.desired is None
    assert [p.render() for p in result.problems] == [
        "town.toml:12: $.notify[0].on[1]: town.completed names no task: the tasks filter lets "
        "none through (write another [[notify]] table for it, without tasks)",
        "town.toml:13: $.notify[0].tasks[0]: unknown task \"deplyo\" (did you mean 'deploy'?)",
        "town.toml:14: $.notify[0].command[1]: unknown placeholder {tsk} (did you mean '{task}'?)",
        "town.toml:17: $.notify[1].on[1]: budget.exhausted names no agent: the agents filter "
        "lets none through (write another [[notify]] table for it, without agents)",
    ]
    fixed = town.replace('"deplyo"', '"later"').replace("{tsk}", "{task}")  # (to come)
    fixed = fixed.replace(', "town.completed"', "").replace(', "budget.exhausted"', "")
    assert loader.check_texts(fixed, tasks).desired is not None


def test_a_command_not_found_is_a_problem_with_its_line(tmp_path: Path) -> None:
    rule = '\n[[notify]]\non = ["town.completed"]\ncommand = ["{cmd}", "{{summary}}"]\n'
    paths = TownPaths(tmp_path)
    paths.town_file.write_text(TOWN + rule.format(cmd="tt-no-such-notifier"))
    problems = [p.render() for p in loader.check(paths).problems]
    assert problems == [
        'town.toml:13: $.notify[0].command[0]: command "tt-no-such-notifier" not found on PATH '
        "(install it, or give its path (relative to the town folder or absolute))"
    ]
    # A path relative to the town folder: found once it is an executable file there.
    paths.town_file.write_text(TOWN + rule.format(cmd="./hooks/tell.sh"))
    assert "not found in" in loader.check(paths).problems[0].message
    hook = tmp_path / "hooks" / "tell.sh"
    hook.parent.mkdir()
    hook.write_text("#!/bin/sh\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    result = loader.check(paths)
    assert result.desired is not None and result.desired.notify[0].command[0] == "./hooks/tell.sh"


def test_a_rule_matches_its_types_tasks_and_agents() -> None:
    _, webhook, slack = rules_of(TOWN + RULES)
    failed = {"type": "task.failed", "task": "build", "agent": "dev"}
    assert slack.matches(failed) and not slack.matches({**failed, "type": "task.completed"})
    command = rules_of(TOWN + RULES)[0]
    assert command.matches(failed) and not command.matches({**failed, "task": "test"})
    assert not command.matches({"type": TOWN_COMPLETED})  # filtered by task: names none
    created = {"type": "task.failed", "tasks": "lint build docs"}
    assert command.matches(created)  # one of the event's tasks
    waiting = {"type": "task.awaiting_approval", "task": "x", "agent": "pool-2"}
    assert webhook.matches(waiting)
    assert not webhook.matches({**waiting, "agent": "dev"})
    assert not webhook.matches({**waiting, "agent": ""})


def test_the_known_event_types_hold_every_type_tt_writes() -> None:
    """Scanned from the sources: `event('x'` in the Lua scripts, `.event("x"` / `_xadd(p, "x"`
    and the `*_EVENT = "x"` constants in Python. f-string types (`git.{stage}`,
    `revision.{result}`) are listed by hand in EVENT_TYPES; here their known values."""
    written: set[str] = set()
    for lua in (ROOT / "reconciler/store/lua").glob("*.lua"):
        written.update(re.findall(r"event\(\s*'([a-z_.]+)'", lua.read_text()))
    for py in (ROOT / "reconciler").rglob("*.py"):
        text = py.read_text()
        written.update(re.findall(r"\.event\(\s*\"([a-z_.]+)\"", text))
        written.update(re.findall(r"_xadd\(\s*\w+,\s*\"([a-z_.]+)\"", text))
        written.update(re.findall(r"[A-Z]+_EVENT = \"([a-z_.]+)\"", text))
        written.update(re.findall(r"\"(git\.[a-z_]+)\"", text))  # `kind = "git.pushed" if …`
    written |= {"git.conflict", "git.merge_failed", "revision.invalid", "revision.refused"}
    written.discard("notify.failed")  # told to people, never to a rule (it could loop)
    assert len(written) > 40, written  # the scan found the writers
    assert written - set(EVENT_TYPES) == set()
    assert len(set(EVENT_TYPES)) == len(EVENT_TYPES)


def test_the_readme_example_is_valid() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Notifications", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    rules = rules_of(TOWN + "\n" + example)
    assert [r.kind for r in rules] == [SinkKind.COMMAND, SinkKind.WEBHOOK, SinkKind.SLACK]
    assert "task.awaiting_approval" in rules[0].on and "budget.exhausted" in rules[0].on
