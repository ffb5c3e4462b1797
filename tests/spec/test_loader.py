from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from reconciler.errors import Problem, ValidationFailed
from reconciler.spec import loader
from reconciler.spec.desired import PromptMode, RestartPolicy
from reconciler.spec.loader import (
    check,
    check_texts,
    load,
    load_settings,
    load_texts,
    validate_texts,
    waits_for,
)
from reconciler.spec.predicate import compile_schema
from reconciler.town import TownPaths

REPO = Path(__file__).resolve().parents[2]

# The examples of DESIGN.md "Files", unchanged.
DESIGN_TOWN = """\
[town]
name = "multi-demo"
redis = "embedded"        # or redis://, rediss://, unix:// ; TT_REDIS_URL overrides
default_model = "claude"

[agents.architect]
model = "claude"          # preset or a [models.X] entry
role = "architect"        # optional; tasks may target a role
[agents.worker]
model = "claude"
replicas = 3              # worker-1..worker-3; a task with agent = "worker" goes to any replica

[models.my-llm]           # custom CLI
command = ["my-llm", "--print"]
prompt = "stdin"          # stdin | arg | file
"""

DESIGN_TASKS = """\
[meta]
description = "Auth API Pipeline"
default_agent = "developer"

[[tasks]]
id = "implement"
description = "Implement the auth API from the architect's design"
agent = "developer"
status = "pending"
parent = "design"
tags = ["backend"]
"""

# A small roster most tests target.
TOWN = """\
[town]
name = "demo"
default_model = "claude"

[agents.architect]
role = "architect"

[agents.developer]
model = "auggie"
role = "dev"

[agents.worker]
replicas = 3
"""

# The seed tutorial's pipeline (seed/multi-agent-tutorial.txt), in Tinytown's format.
SEED_TOWN = """\
[town]
name = "multi-demo"

[agents.architect]
model = "claude"

[agents.developer]
model = "auggie"

[agents.tester]
model = "codex"

[agents.reviewer]
model = "claude"
"""

SEED_TASKS = """\
[meta]
description = "Auth API Pipeline"
[[tasks]]
id = "design"
description = "Design a REST API for user authentication with JWT tokens"
agent = "architect"
status = "pending"
[[tasks]]
id = "implement"
description = "Implement the auth API from the architect's design"
agent = "developer"
status = "pending"
parent = "design"
[[tasks]]
id = "test"
description = "Write comprehensive tests for the auth API"
agent = "tester"
status = "pending"
parent = "implement"
"""


def problems_of(town: str = TOWN, tasks: str | None = None) -> list[Problem]:
    result = check_texts(town, tasks)
    assert result.desired is None, "expected problems, the files are valid"
    return list(result.problems)


def only_problem(town: str = TOWN, tasks: str | None = None) -> Problem:
    """The one problem of a pair where only one file is under test; it must be in that file."""
    found = problems_of(town, tasks)
    assert len(found) == 1, [p.render() for p in found]
    assert found[0].file == ("town.toml" if tasks is None else "tasks.toml")
    return found[0]


def write_town(root: Path, town: str, tasks: str | None = None) -> TownPaths:
    root.mkdir(parents=True, exist_ok=True)
    (root / "town.toml").write_text(town)
    if tasks is not None:
        (root / "tasks.toml").write_text(tasks)
    return TownPaths(root)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- valid files ---------------------------------------------------------------------------------


def test_design_examples_load_unchanged() -> None:
    # DESIGN.md's tasks name a developer and a "design" parent that its snippets leave out.
    town = DESIGN_TOWN + '\n[agents.developer]\nmodel = "claude"\n'
    tasks = DESIGN_TASKS + '\n[[tasks]]\nid = "design"\nagent = "architect"\ndescription = "D"\n'
    desired = load_texts(town, tasks)
    assert desired.town.name == "multi-demo"
    assert desired.town.redis == "embedded"
    assert desired.default_agent == "developer"
    assert desired.description == "Auth API Pipeline"
    worker = desired.agent("worker")
    assert worker is not None
    assert worker.instances() == ("worker", "worker-2", "worker-3")
    (model,) = desired.models
    assert (model.name, model.command, model.prompt) == (
        "my-llm",
        ("my-llm", "--print"),
        PromptMode.STDIN,
    )
    implement = desired.tasks[0]
    assert (implement.parent, implement.tags, implement.status) == (
        "design",
        ("backend",),
        "pending",
    )
    assert desired.digests == (("town.toml", sha(town)), ("tasks.toml", sha(tasks)))


def test_seed_tutorial_pipeline_waits_in_order() -> None:
    desired = load_texts(SEED_TOWN, SEED_TASKS)
    assert desired.task_ids() == ("design", "implement", "test")
    assert waits_for(desired) == {"design": (), "implement": ("design",), "test": ("implement",)}


@pytest.mark.parametrize("example", sorted(p.name for p in (REPO / "examples").iterdir()))
def test_every_example_loads(example: str) -> None:
    desired = load(TownPaths(REPO / "examples" / example))
    assert desired.tasks


def test_groups_sequential_and_backlog() -> None:
    tasks = """\
[[tasks]]
id = "features"

[[tasks]]
id = "login"
description = "Build the login page"
role = "dev"
parent = "features"

[[tasks]]
id = "search"
description = "Build the search page"
role = "dev"
parent = "features"

[[tasks]]
id = "guide"
sequential = true

[[tasks]]
id = "outline"
description = "Outline the guide"
agent = "architect"
parent = "guide"

[[tasks]]
id = "chapters"
description = "Write the chapters"
agent = "worker"
parent = "guide"

[[tasks]]
id = "notes"
description = "Write release notes"
agent = "worker-2"
depends_on = ["features"]

[[tasks]]
id = "someday"
description = "any idle agent may claim it"
"""
    assert waits_for(load_texts(TOWN, tasks)) == {
        "features": ("login", "search"),  # a group waits for its children ...
        "login": (),  # ... which do not wait for it
        "search": (),
        "guide": ("outline", "chapters"),
        "outline": (),
        "chapters": ("outline",),  # sequential: file order
        "notes": ("features",),
        "someday": (),  # backlog: no agent, no role, no children
    }


def test_only_a_group_may_go_without_a_description() -> None:
    # A group does no work; a backlog task is work for whichever idle agent claims it, and
    # with a default agent every task does work, a parent included.
    tasks = '[[tasks]]\nid = "epic"\n\n[[tasks]]\nid = "part"\nparent = "epic"\nrole = "dev"\n'
    found = problems_of(tasks=tasks + 'description = "  "\n\n[[tasks]]\nid = "someday"\n')
    assert [(p.line, p.path, p.message) for p in found] == [
        (8, "$.tasks[1].description", "task 'part' has an empty description"),
        (11, "$.tasks[2].description", "task 'someday' has no description"),
    ]
    assert load_texts(TOWN, tasks + 'description = "Part"\n').task_ids() == ("epic", "part")
    (problem,) = problems_of(
        tasks='[meta]\ndefault_agent = "developer"\n\n' + tasks + 'description = "Part"\n'
    )
    assert (problem.line, problem.message) == (5, "task 'epic' has no description")


def test_default_agent_makes_every_parent_a_worker() -> None:
    tasks = """\
[meta]
default_agent = "developer"

[[tasks]]
id = "spec"
description = "Write the spec"

[[tasks]]
id = "build"
parent = "spec"
description = "Build it"
"""
    assert waits_for(load_texts(TOWN, tasks)) == {"spec": (), "build": ("spec",)}


def test_all_fields_are_converted() -> None:
    town = """\
[town]
name = "full"
redis = "unix:///tmp/r.sock"
default_model = "mine"
heartbeat = "500ms"
lease = "1m"
retries = 4
retry_backoff = 0
crash_loop_deaths = 2
task_timeout = "1h30m"

[agents.a]
role = "dev"
args = ["--fast"]
env = { ZED = "1", ALPHA = "2" }
env_from = ["OPENAI_API_KEY"]
workdir = "worktree"
timeout = 90
restart = "on-failure"
suspended = true
node = "host-1"

[models.mine]
command = ["mine", "{prompt}"]
prompt = "arg"
env = { B = "x" }
fail_patterns = ["Error: .*"]
"""
    tasks = """\
[meta]
default_role = "dev"

[[tasks]]
id = "t"
description = "Do it"
status = "running"
depends_on = []
tags = ["Backend", "UI"]
retries = 0
timeout = "2m"
priority = -3
result = "written by tt sync pull"
error = ""
attempts = 2
"""
    desired = load_texts(town, tasks)
    settings = desired.town
    assert (settings.redis, settings.default_model) == ("unix:///tmp/r.sock", "mine")
    policy = settings.policy
    assert (policy.heartbeat, policy.lease, policy.retries, policy.retry_backoff) == (
        0.5,
        60.0,
        4,
        0.0,
    )
    assert (policy.crash_loop_deaths, policy.task_timeout, policy.quarantine) == (2, 5400.0, 300.0)
    (agent,) = desired.agents
    assert agent.model == "mine"  # from default_model
    assert agent.env == (("ALPHA", "2"), ("ZED", "1"))
    assert (agent.args, agent.env_from, agent.workdir) == (
        ("--fast",),
        ("OPENAI_API_KEY",),
        "worktree",
    )
    assert (agent.timeout, agent.restart, agent.suspended, agent.node) == (
        90.0,
        RestartPolicy.ON_FAILURE,
        True,
        "host-1",
    )
    (model,) = desired.models
    assert (model.prompt, model.env, model.fail_patterns) == (
        PromptMode.ARG,
        (("B", "x"),),
        ("Error: .*",),
    )
    (task,) = desired.tasks
    assert desired.default_role == "dev"
    assert (task.status, task.tags, task.retries, task.timeout, task.priority) == (
        "running",
        ("Backend", "UI"),
        0,
        120.0,
        -3,
    )


def test_missing_tasks_file_means_no_tasks(tmp_path: Path) -> None:
    desired = load(write_town(tmp_path, TOWN))
    assert desired.tasks == ()
    assert desired.digests == (("town.toml", sha(TOWN)), ("tasks.toml", sha("")))


def test_empty_tasks_file_is_valid() -> None:
    assert load_texts(TOWN, "").tasks == ()


def test_digests_are_of_the_file_bytes(tmp_path: Path) -> None:
    # CRLF: hashed as written, not as Python reads text
    tasks = '[[tasks]]\r\nid = "a"\r\ndescription = "A"\r\n'
    paths = write_town(tmp_path, TOWN)
    paths.tasks_file.write_bytes(tasks.encode())
    assert load(paths).digests[1] == ("tasks.toml", sha(tasks))


def test_replica_and_preset_targets() -> None:
    tasks = """\
[[tasks]]
id = "a"
agent = "worker-3"
description = "A"

[[tasks]]
id = "b"
agent = "worker"
description = "B"
"""
    town = TOWN + '\n[agents.offline]\nmodel = "sim"\n'
    assert load_texts(town, tasks).tasks[0].agent == "worker-3"


# -- syntax and unreadable files -----------------------------------------------------------------


def test_toml_syntax_error_has_line_and_column() -> None:
    problem = only_problem(tasks='[[tasks]]\nid = "a"\nagent = developer\n')
    assert (problem.file, problem.line, problem.column, problem.path) == ("tasks.toml", 3, 9, "$")
    assert problem.message.startswith("invalid TOML: Invalid value")
    assert problem.render() == "tasks.toml:3:9: $: invalid TOML: Invalid value"


def test_syntax_errors_in_both_files_are_reported_together() -> None:
    found = problems_of('[town\nname = "x"\n', "[[tasks]]\nid = \n")
    assert [(p.file, p.line) for p in found] == [("town.toml", 1), ("tasks.toml", 2)]


def test_tasks_are_checked_when_town_toml_is_broken() -> None:
    found = problems_of("[town\n", '[[tasks]]\nid = "a"\nparent = "nope"\ndescription = "A"\n')
    assert [(p.file, p.path) for p in found] == [
        ("town.toml", "$"),
        ("tasks.toml", "$.tasks[0].parent"),
    ]


def test_binary_garbage_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    paths = write_town(tmp_path, TOWN)
    paths.tasks_file.write_bytes(b'[[tasks]]\nid = "a"\n\xff\xfe\x00garbage')
    result = check(paths)
    (problem,) = result.problems
    assert (problem.file, problem.line, problem.path) == ("tasks.toml", 3, "$")
    assert problem.message == "not UTF-8 text (byte 19 is 0xff)"
    with pytest.raises(ValidationFailed):
        load(paths)


def test_control_characters_are_a_toml_error(tmp_path: Path) -> None:
    paths = write_town(tmp_path, TOWN, 'x = "a\x00b"\n')
    (problem,) = check(paths).problems
    assert (problem.file, problem.line) == ("tasks.toml", 1)
    assert problem.message.startswith("invalid TOML")


def test_deep_nesting_is_a_problem() -> None:
    problem = only_problem(tasks="x = " + "[" * 5000 + "]" * 5000 + "\n")
    assert problem.file == "tasks.toml"
    assert "invalid TOML" in problem.message


def test_missing_town_file(tmp_path: Path) -> None:
    result = check(TownPaths(tmp_path))
    (problem,) = result.problems
    assert (problem.file, problem.message, problem.hint) == (
        "town.toml",
        "file not found",
        "run `tt init` to create a town",
    )


def test_empty_town_file() -> None:
    problem = only_problem(town="")
    assert (problem.file, problem.path, problem.line) == ("town.toml", "$", None)
    assert problem.message == "missing the [town] table"


def test_town_needs_a_name() -> None:
    problem = only_problem(town='[town]\nredis = "embedded"\n')
    assert (problem.line, problem.path, problem.message) == (
        1,
        "$.town",
        "missing required key 'name'",
    )


# -- schema violations ---------------------------------------------------------------------------


def test_unknown_task_key_names_it_with_a_hint() -> None:
    tasks = """\
[[tasks]]
id = "a"

[[tasks]]
id = "b"
depnds_on = ["a"]
description = "B"
"""
    problem = only_problem(tasks=tasks.replace('id = "a"', 'id = "a"\ndescription = "A"'))
    assert (problem.file, problem.line, problem.path) == ("tasks.toml", 7, "$.tasks[1].depnds_on")
    assert problem.message == "unknown key 'depnds_on'"
    assert problem.hint == "did you mean 'depends_on'?"
    assert problem.render() == (
        "tasks.toml:7: $.tasks[1].depnds_on: unknown key 'depnds_on' (did you mean 'depends_on'?)"
    )


def test_unknown_top_level_tables() -> None:
    problem = only_problem(tasks='[[task]]\nid = "a"\n')
    assert (problem.line, problem.path, problem.hint) == (1, "$.task", "did you mean 'tasks'?")
    problem = only_problem(town=TOWN + "\n[agent.extra]\n")
    assert (problem.file, problem.line, problem.path) == ("town.toml", 15, "$.agent")
    assert problem.hint == "did you mean 'agents'?"


def test_unknown_key_without_a_close_match_lists_the_known_ones() -> None:
    problem = only_problem(town=TOWN.replace("[agents.worker]", "[agents.worker]\ncolour = 1"))
    assert (problem.line, problem.path) == (13, "$.agents.worker.colour")
    assert problem.hint is not None
    assert problem.hint.startswith("known keys: model, role, replicas")


def test_unknown_key_in_dotted_and_inline_forms() -> None:
    town = '[town]\nname = "x"\n\n[agents]\nalpha.model = "claude"\nalpha.modle = "claude"\n'
    problem = only_problem(town=town)
    assert (problem.line, problem.path, problem.hint) == (
        6,
        "$.agents.alpha.modle",
        "did you mean 'model'?",
    )
    town = '[town]\nname = "x"\n\n[agents]\nbeta = { model = "claude", replica = 2 }\n'
    problem = only_problem(town=town)
    assert (problem.line, problem.path, problem.hint) == (
        5,
        "$.agents.beta.replica",
        "did you mean 'replicas'?",
    )


@pytest.mark.parametrize(
    ("task_line", "path", "message"),
    [
        ('agent = { name = "x" }', "$.tasks[0].agent", "expected a string, got a table"),
        ('tags = "backend"', "$.tasks[0].tags", 'expected an array, got a string ("backend")'),
        ("depends_on = [1]", "$.tasks[0].depends_on[0]", "expected a string, got an integer (1)"),
        ('priority = "high"', "$.tasks[0].priority", 'expected an integer, got a string ("high")'),
        ("sequential = 1", "$.tasks[0].sequential", "expected true or false, got an integer (1)"),
        ("retries = -1", "$.tasks[0].retries", "must be at least 0, got -1"),
        (
            "timeout = true",
            "$.tasks[0].timeout",
            'expected a duration: seconds, or a string like "90s", "5m", "1h30m", "500ms"; '
            "at most 30 days, got true",
        ),
        ("id = 7", "$.tasks[0].id", "expected a string, got an integer (7)"),
    ],
)
def test_wrong_types_in_a_task(task_line: str, path: str, message: str) -> None:
    tasks = f'[[tasks]]\ndescription = "x"\n{task_line}\n'
    if not task_line.startswith("id"):
        tasks += 'id = "a"\n'
    problem = only_problem(tasks=tasks)
    assert (problem.file, problem.line, problem.path, problem.message) == (
        "tasks.toml",
        3,
        path,
        message,
    )


@pytest.mark.parametrize(
    ("agent_line", "path", "message"),
    [
        ("replicas = 0", "$.agents.worker.replicas", "must be at least 1, got 0"),
        ('replicas = "3"', "$.agents.worker.replicas", 'expected an integer, got a string ("3")'),
        ('args = "--fast"', "$.agents.worker.args", 'expected an array, got a string ("--fast")'),
        (
            "suspended = 1",
            "$.agents.worker.suspended",
            "expected true or false, got an integer (1)",
        ),
        ("env = { A = 1 }", "$.agents.worker.env.A", "expected a string, got an integer (1)"),
        (
            'env = { "MY-VAR" = "x" }',
            "$.agents.worker.env.MY-VAR",
            'invalid key "MY-VAR": it must match ^[A-Za-z_][A-Za-z0-9_]*$',
        ),
        ("model = { name = 1 }", "$.agents.worker.model", "expected a string, got a table"),
    ],
)
def test_wrong_types_in_an_agent(agent_line: str, path: str, message: str) -> None:
    problem = only_problem(town=TOWN.replace("replicas = 3", agent_line))
    assert (problem.file, problem.line, problem.path, problem.message) == (
        "town.toml",
        13,
        path,
        message,
    )


def test_enum_values_get_a_hint() -> None:
    problem = only_problem(town=TOWN + 'restart = "on_failure"\n')
    assert (problem.line, problem.path) == (14, "$.agents.worker.restart")
    assert problem.message == (
        'must be one of "always", "on-failure", "never", got a string ("on_failure")'
    )
    assert problem.hint == "did you mean 'on-failure'?"


def test_tasks_written_as_a_table_get_a_hint() -> None:
    problem = only_problem(tasks='[tasks]\nid = "a"\n')
    assert (problem.line, problem.path, problem.message) == (
        1,
        "$.tasks",
        "expected an array, got a table",
    )
    assert problem.hint == "write each task as a [[tasks]] table"


def test_task_without_id() -> None:
    tasks = '[[tasks]]\nid = "a"\ndescription = "A"\n\n[[tasks]]\ndescription = "no id"\n'
    tasks += 'parent = "a"\n'
    problem = only_problem(tasks=tasks)
    assert (problem.line, problem.path, problem.message) == (
        5,
        "$.tasks[1]",
        "missing required key 'id'",
    )


def test_model_table_checks() -> None:
    town = TOWN + '\n[models.mine]\ncommand = []\nprompt = "pipe"\nfail_patterns = ["(oops"]\n'
    found = problems_of(town=town)
    assert [(p.line, p.path) for p in found] == [
        (16, "$.models.mine.command"),
        (17, "$.models.mine.prompt"),
        (18, "$.models.mine.fail_patterns[0]"),
    ]
    assert found[0].message == "must not be empty"
    assert found[2].message.startswith("invalid regular expression: missing )")
    problem = only_problem(town=TOWN + '\n[models.mine]\nprompt = "arg"\n')
    assert (problem.line, problem.message) == (15, "missing required key 'command'")


def test_a_custom_model_may_say_how_its_cli_stalls() -> None:
    town = TOWN + (
        '\n[models.mine]\ncommand = ["mine"]\nstall_patterns = ["waiting for (network"]\n'
        'stall_after = "0s"\n'
    )
    found = problems_of(town=town)
    assert [(p.line, p.path) for p in found] == [
        (17, "$.models.mine.stall_patterns[0]"),
        (18, "$.models.mine.stall_after"),
    ]
    assert found[0].message.startswith("invalid regular expression")
    assert found[1].message == "stall_after must be greater than zero"
    good = (
        TOWN + '\n[models.mine]\ncommand = ["mine"]\nstall_patterns = ["x"]\nstall_after = "5s"\n'
    )
    model = next(m for m in load_texts(good, "").models if m.name == "mine")
    assert (model.stall_patterns, model.stall_grace) == (("x",), 5.0)
    plain = load_texts(TOWN + '\n[models.mine]\ncommand = ["mine"]\n', "")
    assert next(m for m in plain.models if m.name == "mine").stall_grace == 60.0


# -- names ---------------------------------------------------------------------------------------

CHARSET = (
    "use lowercase letters, digits, '.', '_' and '-' (at most 63, starting with a letter or digit)"
)
BAD_NAMES = [
    # (name, how a JSON path shows it as a key, why it is rejected)
    ("../x", '["../x"]', CHARSET),
    ("my agent", '["my agent"]', CHARSET),
    ("Developer", ".Developer", CHARSET),
    ("a" * 200, "." + "a" * 200, "it is 200 characters long, at most 63"),
    ("a..b", '["a..b"]', "'..' is not allowed"),
    ("-lead", '["-lead"]', CHARSET),
]


def test_a_name_does_not_end_in_a_newline() -> None:
    # The rule's regex ended in `$`, which also matches before a final "\n": `id = "abc\n"`
    # was a valid task id, on its way to a Redis key and a log path.
    problem = only_problem(tasks='[[tasks]]\nid = "abc\\n"\ndescription = "d"\n')
    assert (problem.line, problem.path) == (2, "$.tasks[0].id")
    assert problem.message == f'invalid task id "abc\\n": {CHARSET}'


def cut(name: str) -> str:
    """How a message quotes a name: whole, or its first 60 characters and an ellipsis."""
    return json.dumps(name) if len(name) <= 60 else json.dumps(name[:60])[:-1] + '…"'


@pytest.mark.parametrize(("name", "key", "why"), BAD_NAMES)
def test_bad_task_ids(name: str, key: str, why: str) -> None:
    problem = only_problem(tasks=f'[[tasks]]\nid = {json.dumps(name)}\ndescription = "d"\n')
    assert (problem.line, problem.path) == (2, "$.tasks[0].id")
    assert problem.message == f"invalid task id {cut(name)}: {why}"


@pytest.mark.parametrize(("name", "key", "why"), BAD_NAMES)
def test_bad_agent_names(name: str, key: str, why: str) -> None:
    problem = only_problem(town=TOWN + f'\n[agents.{json.dumps(name)}]\nmodel = "claude"\n')
    assert (problem.line, problem.path) == (15, f"$.agents{key}")
    assert problem.message == f"invalid agent name {cut(name)}: {why}"


@pytest.mark.parametrize(("name", "key", "why"), BAD_NAMES)
def test_bad_role_and_model_names(name: str, key: str, why: str) -> None:
    town = TOWN + f"role = {json.dumps(name)}\n\n[models.{json.dumps(name)}]\ncommand = ['x']\n"
    found = problems_of(town=town)
    assert [(p.line, p.path, p.message) for p in found] == [
        (14, "$.agents.worker.role", f"invalid role name {cut(name)}: {why}"),
        (16, f"$.models{key}", f"invalid model name {cut(name)}: {why}"),
    ]


def test_bad_town_name_gets_a_suggestion() -> None:
    problem = only_problem(town=TOWN.replace('name = "demo"', 'name = "My Town"'))
    assert (problem.line, problem.path) == (2, "$.town.name")
    assert problem.hint == "for example 'my-town'"


@pytest.mark.parametrize("name", ["conductor", "Supervisor", "CONDUCTOR"])
def test_reserved_agent_names_in_any_case(name: str) -> None:
    problem = only_problem(town=TOWN + f'\n[agents.{name}]\nmodel = "claude"\n')
    assert (problem.line, problem.path) == (15, f"$.agents.{name}")
    assert problem.message == f"'{name}' is a reserved name (a mailbox), not an agent"


def test_replica_names_collide_with_an_agent() -> None:
    problem = only_problem(town=TOWN + '\n[agents.worker-2]\nmodel = "claude"\n')
    assert (problem.line, problem.path) == (15, "$.agents.worker-2")
    assert problem.message == (
        "agent 'worker-2' has the name of a replica of agent 'worker' (replicas = 3)"
    )


def test_replica_names_must_stay_short() -> None:
    name = "w" * 62
    town = f'[town]\nname = "x"\n\n[agents.{name}]\nreplicas = 12\n'
    problem = only_problem(town=town)
    assert (problem.line, problem.path) == (5, f"$.agents.{name}.replicas")
    assert problem.message == f"replica name '{name}-12' would be longer than 63"


# -- references ----------------------------------------------------------------------------------


def test_unknown_agent_with_hint() -> None:
    tasks = '[[tasks]]\nid = "a"\ndescription = "A"\n\n[[tasks]]\nid = "b"\nagent = "devloper"\n'
    problem = only_problem(tasks=tasks + 'description = "B"\n')
    assert problem.render() == (
        "tasks.toml:7: $.tasks[1].agent: unknown agent 'devloper' (did you mean 'developer'?)"
    )


def test_replica_beyond_the_pool_is_unknown() -> None:
    problem = only_problem(tasks='[[tasks]]\nid = "a"\nagent = "worker-4"\ndescription = "A"\n')
    assert (problem.line, problem.path, problem.message) == (
        3,
        "$.tasks[0].agent",
        "unknown agent 'worker-4'",
    )
    assert problem.hint == "did you mean 'worker-3'?"


def test_unknown_agent_without_a_close_match_lists_agents() -> None:
    problem = only_problem(tasks='[[tasks]]\nid = "a"\nagent = "zzz"\ndescription = "A"\n')
    assert problem.hint == "agents: architect, developer, worker"


def test_unknown_role() -> None:
    problem = only_problem(tasks='[[tasks]]\nid = "a"\nrole = "architekt"\ndescription = "A"\n')
    assert (problem.line, problem.path, problem.message, problem.hint) == (
        3,
        "$.tasks[0].role",
        "unknown role 'architekt': no agent has it",
        "did you mean 'architect'?",
    )
    problem = only_problem(tasks='[[tasks]]\nid = "a"\nrole = "qa"\ndescription = "A"\n')
    assert problem.hint == 'give an agent role = "qa" in town.toml'


def test_unknown_parent_and_dependency() -> None:
    tasks = """\
[[tasks]]
id = "design"
description = "Design it"

[[tasks]]
id = "build"
parent = "desing"
depends_on = ["design", "tset"]
description = "Build it"
"""
    found = problems_of(tasks=tasks)
    assert [(p.line, p.path, p.message, p.hint) for p in found] == [
        (7, "$.tasks[1].parent", "unknown parent 'desing'", "did you mean 'design'?"),
        (8, "$.tasks[1].depends_on[1]", "unknown task id 'tset'", None),
    ]


def test_array_paths_keep_the_file_index() -> None:
    tasks = '[[tasks]]\nid = "a"\ndepends_on = [1, "zzz"]\ndescription = "A"\n'
    found = problems_of(tasks=tasks)
    assert [(p.line, p.path, p.message) for p in found] == [
        (3, "$.tasks[0].depends_on[0]", "expected a string, got an integer (1)"),
        (3, "$.tasks[0].depends_on[1]", "unknown task id 'zzz'"),
    ]


def test_depending_on_itself_and_own_parent() -> None:
    tasks = '[[tasks]]\nid = "a"\nparent = "a"\ndepends_on = ["a"]\ndescription = "A"\n'
    found = problems_of(tasks=tasks)
    assert [(p.line, p.path, p.message) for p in found] == [
        (3, "$.tasks[0].parent", "task 'a' is its own parent"),
        (4, "$.tasks[0].depends_on[0]", "task 'a' depends on itself"),
    ]


def test_duplicate_ids_name_both_lines() -> None:
    tasks = '[[tasks]]\nid = "a"\n\n[[tasks]]\nid = "b"\n\n[[tasks]]\nid = "a"\n'
    problem = only_problem(tasks=tasks.replace('"\n', '"\ndescription = "x"\n'))
    assert (problem.line, problem.path, problem.message) == (
        10,
        "$.tasks[2].id",
        "duplicate task id 'a' (also at line 2)",  # ids on lines 2, 6, 10
    )


def test_unknown_models() -> None:
    town = TOWN.replace('default_model = "claude"', 'default_model = "gpt"').replace(
        'model = "auggie"', 'model = "augie"'
    )
    found = problems_of(town=town)
    assert [(p.line, p.path, p.message) for p in found] == [
        (3, "$.town.default_model", "unknown model 'gpt'"),
        (9, "$.agents.developer.model", "unknown model 'augie'"),
    ]
    assert found[1].hint == "did you mean 'auggie'?"


def test_known_models_are_presets_custom_and_sim() -> None:
    town = TOWN + '\n[agents.a]\nmodel = "sim"\n[agents.b]\nmodel = "mine"\n'
    town += '[agents.c]\nmodel = "codex-mini"\n[models.mine]\ncommand = ["mine"]\n'
    assert len(load_texts(town, None).agents) == 6


def test_default_agent_and_role_must_exist() -> None:
    tasks = '[meta]\ndefault_agent = "developr"\ndefault_role = "qa"\n'
    found = problems_of(tasks=tasks)
    assert [(p.line, p.path, p.hint) for p in found] == [
        (2, "$.meta.default_agent", "did you mean 'developer'?"),
        (3, "$.meta.default_role", 'give an agent role = "qa" in town.toml'),
    ]


def test_sequential_on_a_task_that_does_work() -> None:
    tasks = '[[tasks]]\nid = "a"\nagent = "worker"\nsequential = true\ndescription = "A"\n'
    problem = only_problem(tasks=tasks)
    assert (problem.line, problem.path) == (4, "$.tasks[0].sequential")
    assert problem.message.startswith("sequential has no effect: 'a' does work itself")


# -- values --------------------------------------------------------------------------------------


def test_bad_durations() -> None:
    town = TOWN.replace('default_model = "claude"', 'heartbeat = "-1s"\nresync = 0')
    tasks = '[[tasks]]\nid = "a"\ntimeout = "5x"\n\n[[tasks]]\nid = "b"\ntimeout = "90"\n'
    tasks = tasks.replace('"\n\n', '"\ndescription = "A"\n\n') + 'description = "B"\n'
    found = problems_of(town, tasks)
    assert [(p.file, p.line, p.path) for p in found] == [
        ("town.toml", 3, "$.town.heartbeat"),
        ("town.toml", 4, "$.town.resync"),
        ("tasks.toml", 3, "$.tasks[0].timeout"),
        ("tasks.toml", 8, "$.tasks[1].timeout"),
    ]
    assert [p.message for p in found] == [
        "invalid duration '-1s': it must not be negative",
        "resync must be greater than zero",
        "invalid duration '5x': expected <number><unit> parts with units ms, s, m, h, d, "
        'like "90s", "5m", "1h30m" or "500ms"',
        "invalid duration '90': a string needs a unit, like \"90s\" "
        "(or write the number of seconds without quotes)",
    ]


def test_lease_must_outlast_heartbeat() -> None:
    problem = only_problem(town=TOWN.replace('default_model = "claude"', 'lease = "2s"'))
    assert (problem.line, problem.path, problem.message) == (
        3,
        "$.town.lease",
        "lease (2s) must be longer than heartbeat (2s), or every agent looks dead",
    )


def test_a_redis_url_with_a_misspelt_scheme_is_reported_with_its_password_masked() -> None:
    town = TOWN.replace('default_model = "claude"', 'redis = "reddis://u:s3cret@h:6379/0"')
    problem = only_problem(town=town)
    assert (problem.line, problem.path) == (3, "$.town.redis")
    assert 'unsupported redis "reddis://u:****@h:6379/0"' in problem.message
    assert "s3cret" not in problem.render()


def test_redis_must_be_embedded_or_a_url() -> None:
    problem = only_problem(town=TOWN.replace('default_model = "claude"', 'redis = "localhost"'))
    assert (problem.line, problem.path) == (3, "$.town.redis")
    assert problem.message == (
        'unsupported redis "localhost": use "embedded" or a redis://, rediss://, unix:// URL'
    )


# -- cycles --------------------------------------------------------------------------------------


def test_depends_on_cycle_is_printed() -> None:
    tasks = """\
[[tasks]]
id = "a"
depends_on = ["c"]
description = "A"

[[tasks]]
id = "b"
depends_on = ["a"]
description = "B"

[[tasks]]
id = "c"
depends_on = ["b"]
description = "C"
"""
    problem = only_problem(tasks=tasks)
    assert (problem.line, problem.path) == (2, "$.tasks[0]")
    assert problem.message == "dependency cycle: a → c → b → a"


def test_parent_cycle_between_working_tasks() -> None:
    tasks = """\
[[tasks]]
id = "a"
agent = "worker"
parent = "b"
description = "A"

[[tasks]]
id = "b"
agent = "worker"
parent = "a"
description = "B"
"""
    assert only_problem(tasks=tasks).message == "dependency cycle: a → b → a"


def test_group_waiting_for_a_child_that_waits_for_it() -> None:
    tasks = """\
[[tasks]]
id = "epic"

[[tasks]]
id = "part"
agent = "worker"
parent = "epic"
depends_on = ["epic"]
description = "Part"
"""
    assert only_problem(tasks=tasks).message == "dependency cycle: epic → part → epic"


def test_sequential_group_against_file_order() -> None:
    tasks = """\
[[tasks]]
id = "guide"
sequential = true

[[tasks]]
id = "outline"
role = "dev"
parent = "guide"
depends_on = ["chapters"]
description = "Outline"

[[tasks]]
id = "chapters"
role = "dev"
parent = "guide"
description = "Chapters"
"""
    assert only_problem(tasks=tasks).message == "dependency cycle: outline → chapters → outline"


def test_each_distinct_cycle_is_reported_once() -> None:
    tasks = "".join(
        f'[[tasks]]\nid = "{a}"\ndepends_on = ["{b}"]\ndescription = "d"\n\n'
        for a, b in [("a", "b"), ("b", "a"), ("x", "y"), ("y", "z"), ("z", "x"), ("free", "a")]
    )
    found = problems_of(tasks=tasks)
    assert [p.message for p in found] == [
        "dependency cycle: a → b → a",
        "dependency cycle: x → y → z → x",
    ]


# -- many problems, big files, locator -----------------------------------------------------------


def test_all_problems_are_reported_at_once() -> None:
    town = TOWN + '\n[agents.Boss]\nmodel = "claude"\nreplicas = 0\n'
    tasks = """\
[[tasks]]
id = "a"
agent = "nobody"
depnds_on = ["b"]

[[tasks]]
id = "a"
parent = "zzz"
description = "A again"
"""
    found = problems_of(town, tasks)
    assert [(p.file, p.line, p.path) for p in found] == [
        ("town.toml", 15, "$.agents.Boss"),
        ("town.toml", 17, "$.agents.Boss.replicas"),
        ("tasks.toml", 2, "$.tasks[0].description"),
        ("tasks.toml", 3, "$.tasks[0].agent"),
        ("tasks.toml", 4, "$.tasks[0].depnds_on"),
        ("tasks.toml", 7, "$.tasks[1].id"),
        ("tasks.toml", 8, "$.tasks[1].parent"),
    ]
    with pytest.raises(ValidationFailed) as caught:
        validate_texts(town, tasks)
    assert len(caught.value.problems) == 7
    assert "7 problems in the town files; nothing was changed" in caught.value.message
    assert "tasks.toml:8: $.tasks[1].parent: unknown parent 'zzz'" in caught.value.message


def test_validate_texts_passes_a_valid_pair_and_refuses_it_with_one_field_wrong() -> None:
    # `edit` writes only when this returns: the seed pair passes without a problem...
    validate_texts(SEED_TOWN, SEED_TASKS)
    # ...and the same pair with one task's agent misspelt is refused, naming the line.
    broken = SEED_TASKS.replace('agent = "developer"', 'agent = "develper"', 1)
    with pytest.raises(ValidationFailed) as caught:
        validate_texts(SEED_TOWN, broken)
    assert [p.line for p in caught.value.problems] == [11], caught.value.message
    assert "develper" in caught.value.message


def test_lines_skip_multiline_strings_and_arrays() -> None:
    tasks = '''\
[[tasks]]
id = "a"
description = """
[[tasks]]
agent = "fake"
"""
depends_on = [
  "b",
]

[[tasks]]
id = "b"
agnet = "worker"
description = "B"
'''
    problem = only_problem(tasks=tasks)
    assert (problem.line, problem.path) == (13, "$.tasks[1].agnet")


def test_lines_with_crlf_and_quoted_keys() -> None:
    town = TOWN.replace("\n", "\r\n") + '\r\n[agents."qa"]\r\n"modle" = "claude"\r\n'
    problem = only_problem(town=town)
    assert (problem.line, problem.path) == (16, "$.agents.qa.modle")


def test_ten_thousand_task_chain(tmp_path: Path) -> None:
    n = 10_000
    body = ['[[tasks]]\nid = "t0"\nagent = "worker"\ndescription = "t0"\n']
    body += [
        f'[[tasks]]\nid = "t{i}"\nagent = "worker"\nparent = "t{i - 1}"\ndescription = "d"\n'
        for i in range(1, n)
    ]
    paths = write_town(tmp_path, TOWN, "\n".join(body))
    desired = load(paths)
    assert len(desired.tasks) == n
    assert waits_for(desired)[f"t{n - 1}"] == (f"t{n - 2}",)
    # Closing the chain makes one 10,000-long cycle, reported once.
    body[0] = f'[[tasks]]\nid = "t0"\nagent = "worker"\nparent = "t{n - 1}"\ndescription = "d"\n'
    paths.tasks_file.write_text("\n".join(body))
    (problem,) = check(paths).problems
    assert problem.message.startswith("dependency cycle: t0 → t9999 → t9998")
    assert problem.message.endswith("t1 → t0")


# -- load_settings -------------------------------------------------------------------------------


def test_load_settings_reads_only_the_town_table(tmp_path: Path) -> None:
    town = TOWN.replace('default_model = "claude"', 'redis = "redis://h:6379/0"\nlease = "30s"')
    town += '\n[agents.broken]\nreplicas = "many"\n'
    paths = write_town(tmp_path, town, "this is not TOML")
    settings = load_settings(paths)
    assert (settings.name, settings.redis, settings.policy.lease) == (
        "demo",
        "redis://h:6379/0",
        30.0,
    )


@pytest.mark.parametrize(
    ("town", "render"),
    [
        ('[town]\nname = "x"\nredis = 6379\n', "town.toml:3: $.town.redis: expected a string"),
        ('[town]\nname = "x"\nhartbeat = 1\n', "town.toml:3: $.town.hartbeat: unknown key"),
        ("[town\n", "town.toml:1:6: $: invalid TOML"),
        ('[agents.a]\nmodel = "claude"\n', "town.toml: $: missing the [town] table"),
    ],
)
def test_load_settings_rejects_a_bad_town_table(tmp_path: Path, town: str, render: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        load_settings(write_town(tmp_path, town))
    (problem,) = caught.value.problems
    assert problem.render().startswith(render)


def test_load_settings_without_town_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match=r"town\.toml: \$: file not found"):
        load_settings(TownPaths(tmp_path))


# -- the schemas ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["town", "tasks"])
def test_schemas_are_valid_2020_12_and_closed(name: str) -> None:
    schema = json.loads((REPO / "schema" / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)

    def closed(node: object) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                assert node.get("additionalProperties") is False, node
            for value in node.values():
                closed(value)
        elif isinstance(node, list):
            for value in node:
                closed(value)

    closed(schema)


DOCS = [
    ("town", {"town": {"name": "x"}}, True),
    ("town", {"town": {"name": "x", "heartbeat": "2s", "retries": 3}}, True),
    ("town", {"town": {"name": "x"}, "agents": {"a": {"replicas": 2, "env": {"A": "b"}}}}, True),
    (
        "town",
        {"town": {"name": "x"}, "models": {"m": {"command": ["m", ""], "prompt": "arg"}}},
        True,
    ),
    ("town", {"town": {"name": "x", "retries": 3.0}}, True),
    ("town", {"town": {"name": "x"}, "agents": {"a": {"replicas": True}}}, False),
    ("town", {"town": {"name": "x"}, "agents": {"a": {"restart": 1}}}, False),
    ("town", {"town": {"name": "x"}, "agents": {"a": {"env": {"1A": "x"}}}}, False),
    ("town", {"town": {"name": "x"}, "models": {"m": {"command": [""]}}}, False),
    ("town", {"town": {"name": "x", "heartbeat": [1]}}, False),
    ("town", {"town": {}}, False),
    ("town", {"town": {"name": "x"}, "git": {}}, True),
    (
        "town",
        {
            "town": {"name": "x"},
            "git": {"base": "main", "merge": "manual", "checks": ["pytest"], "push": "origin"},
        },
        True,
    ),
    ("town", {"town": {"name": "x"}, "git": {"merge": "later"}}, False),
    ("town", {"town": {"name": "x"}, "git": {"checks": [""]}}, False),
    ("town", {"town": {"name": "x"}, "git": {"bsae": "main"}}, False),
    ("town", {"town": {"name": "x"}, "git": True}, False),
    ("tasks", {"tasks": [{"id": "a", "result": {"any": ["thing"]}, "attempts": 3}]}, True),
    ("tasks", {"meta": {"default_role": "dev"}, "tasks": []}, True),
    ("tasks", {"tasks": [{"id": "a", "retries": -1}]}, False),
    ("tasks", {"tasks": [{"id": "a", "priority": 1.5}]}, False),
    ("tasks", {"tasks": [{"id": "a", "tags": ["x", 1]}]}, False),
    ("tasks", {"tasks": [{"id": "a", "x": 1}]}, False),
    ("tasks", {"tasks": {"id": "a"}}, False),
    ("tasks", {"tasks": [{"id": "a", "touches": ["src/**", "a.md"]}]}, True),
    ("tasks", {"tasks": [{"id": "a", "touches": []}]}, False),
    ("tasks", {"tasks": [{"id": "a", "touches": ["src/**", ""]}]}, False),
]


@pytest.mark.parametrize(("which", "doc", "valid"), DOCS)
def test_fast_check_never_accepts_what_jsonschema_rejects(
    which: str, doc: dict[str, object], valid: bool
) -> None:
    full = jsonschema.Draft202012Validator(loader._schema(which)).is_valid(doc)
    fast = loader._fast_check(which)(doc)
    assert full is valid
    assert fast <= full  # sound: a document the fast path accepts is valid
    if valid and which == "tasks":
        assert fast  # and the common shapes really take the fast path


def test_schemas_are_found_beside_the_package_in_a_checkout() -> None:
    assert loader._schema_dir() == REPO / "schema"


def test_fast_check_falls_back_on_unknown_keywords() -> None:
    schema = {"type": "object", "minProperties": 1}
    assert compile_schema(schema, schema)({}) is False


def test_files_an_edit_just_validated_are_not_checked_again_unless_they_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    town = '[town]\nname = "x"\n\n[agents.dev]\nmodel = "sim"\n'
    tasks = '[[tasks]]\nid = "a"\nagent = "dev"\ndescription = "A"\n'
    (tmp_path / "town.toml").write_text(town)
    (tmp_path / "tasks.toml").write_text(tasks)
    paths = TownPaths(tmp_path)
    checks: list[int] = []
    real_check = loader._check

    def counted(*a: Any) -> Any:
        checks.append(1)
        return real_check(*a)

    monkeypatch.setattr(loader, "_check", counted)
    loader.validate_texts(town, tasks)
    assert loader.load(paths) == loader.load_texts(town, tasks)
    assert len(checks) == 2  # validate_texts and load_texts; load reused the validated pair
    (tmp_path / "tasks.toml").write_text(tasks.replace('"a"', '"b"'))
    assert [t.id for t in loader.load(paths).tasks] == ["b"]
    (tmp_path / "tasks.toml").write_text(tasks + "agentt = 1\n")
    with pytest.raises(ValidationFailed):
        loader.load(paths)


def test_inherit_env_is_the_towns_unless_the_agent_says_otherwise() -> None:
    town = (
        '[town]\nname = "t"\ninherit_env = true\n\n[agents.a]\nmodel = "sim"\n\n'
        '[agents.b]\nmodel = "sim"\ninherit_env = false\n'
    )
    desired = load_texts(town, None)
    assert desired.town.inherit_env is True
    assert {a.name: a.inherit_env for a in desired.agents} == {"a": True, "b": False}
    plain = load_texts(
        '[town]\nname = "t"\n\n[agents.a]\nmodel = "sim"\ninherit_env = true\n', None
    )
    assert plain.town.inherit_env is False and plain.agents[0].inherit_env is True


def test_inherit_env_must_be_a_boolean() -> None:
    problem = only_problem(
        town='[town]\nname = "t"\n\n[agents.a]\nmodel = "sim"\ninherit_env = "yes"\n'
    )
    assert (problem.line, problem.path) == (6, "$.agents.a.inherit_env")
