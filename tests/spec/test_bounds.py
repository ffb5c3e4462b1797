"""Bounded numbers and bounded checks (issue 17, point 4).

Every integer field of the schemas has a range, read by the loader from the schema: the value at
each bound passes, one beyond fails with file:line and path; floats, NaN and infinities in an
integer field are rejected; durations stop at 30 days; a town runs at most [town] max_agents
agents; a file too large to check, and a file with very many problems, get a clear answer.
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.errors import Problem
from reconciler.spec import loader, schemacheck
from reconciler.spec.bounds import MAX_FILE_BYTES, MAX_FILE_VALUES, MAX_PROBLEMS, quoted
from reconciler.spec.durations import MAX_SECONDS, parse_duration
from reconciler.spec.locate import LineIndex, index_lines
from tests.towngen import tasks_toml

AGENT = '[agents.dev]\nmodel = "sim"\n'
TASK = '[[tasks]]\nid = "a"\nagent = "dev"\ndescription = "d"\n'


def _integer_fields() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(schema, definition, key, field schema) of every integer field of both schemas."""
    out = []
    for which in ("town", "tasks"):
        for name, definition in schemacheck.load_schema(which)["$defs"].items():
            for key, field in definition.get("properties", {}).items():
                if field.get("type") == "integer":
                    out.append((which, name, key, field))
    return out


INTEGERS = _integer_fields()


def _text(which: str, definition: str, key: str, value: str) -> tuple[str, str | None]:
    """A valid town with `key = value` in the table of `definition`."""
    if which == "tasks":
        return f'[town]\nname = "b"\n{AGENT}', f"{TASK}{key} = {value}\n"
    if definition == "town":
        return f'[town]\nname = "b"\n{key} = {value}\n{AGENT}', None
    assert definition == "agent"
    return f'[town]\nname = "b"\n{AGENT}{key} = {value}\n', None


def _only(town: str, tasks: str | None) -> Problem:
    result = loader.check_texts(town, tasks)
    assert len(result.problems) == 1, result.problems
    return result.problems[0]


def test_every_integer_field_has_a_documented_range() -> None:
    found = {(d, k) for _, d, k, _ in INTEGERS}
    assert found >= {("town", "retries"), ("agent", "replicas"), ("task", "priority")}
    for which, definition, key, field in INTEGERS:
        assert isinstance(field.get("minimum"), int), (which, definition, key)
        assert isinstance(field.get("maximum"), int), (which, definition, key)
        lo, hi = schemacheck.int_range(which, definition, key)
        assert f"{lo} to {hi}" in field["description"], (key, field["description"])


def test_the_ranges_the_issue_names() -> None:
    assert schemacheck.int_range("town", "agent", "replicas") == (1, 64)
    assert schemacheck.int_range("town", "town", "retries") == (0, 100)
    assert schemacheck.int_range("tasks", "task", "retries") == (0, 100)
    assert schemacheck.int_range("tasks", "task", "priority") == (-1_000_000, 1_000_000)
    assert schemacheck.int_range("town", "town", "max_agents") == (1, 1024)
    for which in ("town", "tasks"):
        duration = schemacheck.load_schema(which)["$defs"]["duration"]
        assert (duration["minimum"], duration["maximum"]) == (0, MAX_SECONDS) == (0, 30 * 86400)


@pytest.mark.parametrize(("which", "definition", "key", "field"), INTEGERS)
def test_each_integer_bound_holds_and_one_beyond_is_located(
    which: str, definition: str, key: str, field: dict[str, Any]
) -> None:
    lo, hi = field["minimum"], field["maximum"]
    for value in (lo, hi):
        assert loader.check_texts(*_text(which, definition, key, str(value))).valid, value
    for value, words in ((lo - 1, f"must be at least {lo}"), (hi + 1, f"must be at most {hi}")):
        problem = _only(*_text(which, definition, key, str(value)))
        assert problem.file == f"{which}.toml"
        assert problem.line is not None and problem.path.endswith(f".{key}")
        assert problem.message == f"{words}, got {value}"


@pytest.mark.parametrize("value", ["1e9", "3.0", "1.5", "nan", "-nan", "inf", "-inf", "true"])
@pytest.mark.parametrize(("which", "definition", "key", "field"), INTEGERS)
def test_floats_nan_and_infinities_are_not_integers(
    which: str, definition: str, key: str, field: dict[str, Any], value: str
) -> None:
    problem = _only(*_text(which, definition, key, value))
    assert problem.line is not None and problem.path.endswith(f".{key}")
    assert problem.message.startswith("expected an integer, got "), problem.message


def test_integers_beyond_64_bits_are_reported_not_built() -> None:
    # It made `tt validate` build 10**20 replica names (24 GB before the kernel killed it).
    problem = _only(*_text("town", "agent", "replicas", "99999999999999999999"))
    assert problem.render() == (
        "town.toml:5: $.agents.dev.replicas: must be at most 64, got 99999999999999999999"
    )


def test_the_town_runs_at_most_max_agents_replicas_counted() -> None:
    pools = "".join(f'[agents.p{i}]\nmodel = "sim"\nreplicas = 64\n' for i in range(4))
    town = f'[town]\nname = "b"\n{pools}[agents.one]\nmodel = "sim"\n'
    problem = _only(town, None)
    assert problem.render() == (
        "town.toml:15: $.agents.one: the town would run 257 agents (replicas counted), more "
        "than [town] max_agents = 256 (lower replicas, or raise max_agents (at most 1024))"
    )
    raised = town.replace('name = "b"', 'name = "b"\nmax_agents = 257')
    result = loader.check_texts(raised, None)
    assert result.desired is not None and result.desired.town.max_agents == 257
    assert sum(a.replicas for a in result.desired.agents) == 257
    over = _only(town.replace("[agents.one]", "[agents.one]\nreplicas = 2"), None)
    assert over.path == "$.agents.one.replicas" and "258 agents" in over.message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"31d"', "invalid duration '31d': it must be at most 30 days"),
        ('"720h1ms"', "invalid duration '720h1ms': it must be at most 30 days"),
        ("2592001", "invalid duration 2592001: it must be at most 30 days"),
        ("inf", "invalid duration inf: it must be at most 30 days"),
        ("nan", "invalid duration nan: it must be a finite number of seconds"),
        ("-1", "invalid duration -1: it must not be negative"),
        (f'"{"1s" * 40}"', "is 80 characters long, at most 64"),
    ],
)
def test_durations_stop_at_30_days(value: str, message: str) -> None:
    for town, tasks in (
        (f'[town]\nname = "b"\ntask_timeout = {value}\n', None),
        (f'[town]\nname = "b"\n{AGENT}', f"{TASK}timeout = {value}\n"),
        (f'[town]\nname = "b"\n{AGENT}timeout = {value}\n', None),
    ):
        problem = _only(town, tasks)
        assert problem.line is not None and problem.path.endswith("timeout"), problem
        assert problem.message == message
    for ok in ('"30d"', '"720h"', "2592000", "2592000.0"):
        assert loader.check_texts(f'[town]\nname = "b"\ntask_timeout = {ok}\n', None).valid


def test_parse_duration_itself_stops_at_30_days() -> None:
    assert parse_duration("30d") == MAX_SECONDS
    for value in ("30d1s", 2592000.5, 10**400):
        with pytest.raises(ValueError, match="at most 30 days"):
            parse_duration(value)
    with pytest.raises(ValueError, match=r"invalid duration '1{39}…: a string needs a unit"):
        parse_duration("1" * 10_000)


def test_strings_and_arrays_have_a_largest_size() -> None:
    big = "x" * (1_048_576 + 1)
    problem = _only(f'[town]\nname = "b"\n{AGENT}', TASK.replace('"d"', f'"{big}"'))
    assert problem.render() == (
        "tasks.toml:4: $.tasks[0].description: is 1048577 characters long, at most 1048576"
    )
    tags = ", ".join(['"t"'] * 257)
    problem = _only(f'[town]\nname = "b"\n{AGENT}', f"{TASK}tags = [{tags}]\n")
    assert problem.render() == "tasks.toml:5: $.tasks[0].tags: is 257 items long, at most 256"


def test_at_most_20000_tasks_each_checked_no_further() -> None:
    town = f'[town]\nname = "b"\n{AGENT}'
    assert loader.check_texts(town, tasks_toml(20_000)).valid
    problem = _only(town, tasks_toml(20_001))
    assert problem.render() == "tasks.toml:5: $.tasks: is 20001 items long, at most 20000"


def test_a_file_too_large_to_check_is_not_parsed() -> None:
    town = f'[town]\nname = "b"\n{AGENT}'
    huge = TASK.replace('"d"', '"' + "x" * MAX_FILE_BYTES + '"')
    problem = _only(town, huge)
    assert (problem.file, problem.path, problem.line) == ("tasks.toml", "$", None)
    assert problem.message == (
        "the file is too large to check: 8.0 MiB, more than a town file may be (8 MiB)"
    )
    dense = TASK + "tags = [" + "1," * MAX_FILE_VALUES + "]\n"
    problem = _only(town, dense)
    assert problem.message == (
        "the file is too large to check: 500,005 lines and commas, more than a town file may "
        "have (500,000)"
    )


def test_a_file_with_very_many_problems_lists_the_first_and_counts_the_rest() -> None:
    tasks = "".join(TASK.replace('"a"', f'"t{i}"').replace('"dev"', '"nobody"') for i in range(300))
    result = loader.check_texts(f'[town]\nname = "b"\n{AGENT}', tasks)
    assert len(result.problems) == MAX_PROBLEMS + 1
    assert [p.message for p in result.problems[:2]] == ["unknown agent 'nobody'"] * 2
    assert result.problems[-1].render() == "tasks.toml: $: 200 more problems not listed"
    assert [p.line for p in result.problems[:3]] == [3, 7, 11]  # in file order


def test_long_values_are_quoted_by_their_start() -> None:
    assert quoted("dev") == '"dev"'
    assert quoted("y" * 1000) == '"' + "y" * 60 + '…"'
    problem = _only(f'[town]\nname = "b"\n[agents.{"Q" * 5000}]\nmodel = "sim"\n', None)
    assert len(problem.message) < 200 and problem.message.startswith('invalid agent name "QQ')


def test_a_check_that_runs_out_of_nesting_says_so_with_the_file() -> None:
    for nested in ("x = " + "[" * 100_000 + "]" * 100_000, "a." * 100_000 + "b = 1"):
        problem = _only(f'[town]\nname = "b"\n{AGENT}', f"{TASK}{nested}\n")
        assert (problem.file, problem.path) == ("tasks.toml", "$")
        assert problem.message.startswith("invalid TOML: nested too deeply"), problem.message


def test_text_that_is_not_utf8_is_a_problem_not_a_crash() -> None:
    problem = _only('[town]\nname = "b"\n', f"{TASK}x = 1\n# \udcff\n")
    assert (problem.file, problem.path) == ("tasks.toml", "$")
    assert "UTF-8" in problem.message


def test_the_lazy_line_index_finds_what_the_whole_index_finds() -> None:
    text = tasks_toml(300) + '\n[meta]\ndescription = """a\n[[tasks]]\n"""\nx = [\n  1,\n]\n'
    whole = index_lines(text)
    for path, line in list(whole.items())[::-1]:  # from the end: each lookup scans on
        assert LineIndex(text).get(path) == line
    lazy = LineIndex(text)
    assert [lazy.get(p) for p in whole] == list(whole.values())
    assert lazy.get(("no", "such")) is None
    assert lazy.lines == whole


def _many(n: int) -> str:
    return "[" + ", ".join(['"a"'] * n) + "]"


_BIG = 32 * 1024 + 1
_ENV = "{" + ", ".join(f'V{i} = "x"' for i in range(257)) + "}"


@pytest.mark.parametrize(
    ("town", "tasks", "where", "message"),
    [
        ("", f'[meta]\ndescription = "{"m" * 65537}"\n', "$.meta.description", "65537 characters"),
        (f'args = ["{"a" * _BIG}"]\n', None, "$.agents.dev.args[0]", f"{_BIG} characters"),
        # (1 MiB: an env value past the kernel's 128 KiB is launch_failed, tests/integration)
        (f'env = {{A = "{"e" * 2**20}e"}}\n', None, "$.agents.dev.env.A", "1048577 characters"),
        (f"args = {_many(257)}\n", None, "$.agents.dev.args", "257 items"),
        (f"env = {_ENV}\n", None, "$.agents.dev.env", "257 entries"),
        ("", f"{TASK}depends_on = {_many(1001)}\n", "$.tasks[0].depends_on", "1001 items"),
        (
            f'[models.m]\ncommand = ["{"c" * _BIG}"]\n',
            None,
            "$.models.m.command[0]",
            f"{_BIG} characters",
        ),
        (
            f'[models.m]\ncommand = ["m"]\nfail_patterns = {_many(65)}\n',
            None,
            "$.models.m.fail_patterns",
            "65 items",
        ),
        ("".join(f'[models.m{i}]\ncommand = ["m"]\n' for i in range(257)), None, "$.models", "257"),
        (
            "".join(f"[agents.a{i}]\nsuspended = true\n" for i in range(1024)),
            None,
            "$.agents",
            "1025",
        ),
    ],
)
def test_each_size_limit_the_readme_names(
    town: str, tasks: str | None, where: str, message: str
) -> None:
    result = loader.check_texts(f'[town]\nname = "b"\n{AGENT}{town}', tasks)
    [problem] = [p for p in result.problems if p.path == where]
    assert problem.line is not None
    assert message in problem.message and "at most" in problem.message, problem.message
