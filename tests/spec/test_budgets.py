"""Budget, provider and limit backoff fields of the files: read as typed values, and bad values
reported with file, line and field before anything is written."""

from __future__ import annotations

import pytest

from reconciler.spec.desired import TaskSpec
from reconciler.spec.loader import check_texts
from tests.spec.test_loader import TOWN, only_problem

BUDGETS = """\
[town]
name = "demo"
budget_usd = 12.5
budget_hard = true
limit_backoff = "1m"
limit_backoff_max = "10m"

[agents.dev]
model = "mine"
budget_usd = 3

[models.mine]
command = ["my-llm"]
provider = "claude"
"""
TASKS = '[[tasks]]\nid = "a"\ndescription = "x"\nagent = "dev"\nmax_cost_usd = 0.5\n'


def test_budgets_and_the_provider_are_read() -> None:
    desired = check_texts(BUDGETS, TASKS).desired
    assert desired is not None
    town = desired.town
    assert (town.budget_usd, town.budget_hard) == (12.5, True)
    assert (town.policy.limit_backoff, town.policy.limit_backoff_max) == (60.0, 600.0)
    assert desired.agents[0].budget_usd == 3.0 and desired.models[0].provider == "claude"
    [task] = desired.tasks
    assert task.max_cost_usd == 0.5 and '"max_cost_usd":0.5' in task.canonical_json()


def test_defaults_leave_no_budget_and_the_spec_hash_of_tasks_unchanged() -> None:
    desired = check_texts(TOWN, None).desired
    assert desired is not None and desired.town.budget_usd is None
    assert (desired.town.policy.limit_backoff, desired.town.policy.limit_backoff_max) == (
        300.0,
        3600.0,
    )
    plain = TaskSpec(id="a", description="x")
    assert "max_cost_usd" not in plain.canonical_json()
    capped = TaskSpec(id="a", description="x", max_cost_usd=1.0)
    assert capped.spec_hash() != plain.spec_hash()


@pytest.mark.parametrize(
    ("line", "path", "message"),
    [
        ("budget_usd = -1", "$.town.budget_usd", "must be at least 0, got -1"),
        ('budget_usd = "5"', "$.town.budget_usd", 'expected a number, got a string ("5")'),
        ("budget_hard = 1", "$.town.budget_hard", "expected true or false, got an integer (1)"),
        ('limit_backoff = "soon"', "$.town.limit_backoff", "invalid duration"),
    ],
)
def test_bad_town_budget_fields(line: str, path: str, message: str) -> None:
    problem = only_problem(town=TOWN.replace('default_model = "claude"', line))
    assert (problem.file, problem.line, problem.path) == ("town.toml", 3, path)
    assert message in problem.message


def test_a_negative_agent_budget_and_a_bad_provider_name() -> None:
    problem = only_problem(town=TOWN.replace("replicas = 3", "budget_usd = -0.5"))
    assert (problem.line, problem.path) == (13, "$.agents.worker.budget_usd")
    assert "must be at least 0" in problem.message
    bad = TOWN + '\n[models.mine]\ncommand = ["x"]\nprovider = "Bad Name"\n'
    problem = only_problem(town=bad)
    assert problem.path == "$.models.mine.provider" and "invalid provider" in problem.message


def test_a_negative_task_budget() -> None:
    tasks = '[[tasks]]\nid = "a"\ndescription = "x"\nmax_cost_usd = -2\n'
    problem = only_problem(tasks=tasks)
    where = (problem.file, problem.line, problem.path)
    assert where == ("tasks.toml", 4, "$.tasks[0].max_cost_usd")
    assert "must be at least 0" in problem.message
