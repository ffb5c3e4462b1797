"""Hypothesis strategies for mutated town.toml / tasks.toml texts (tests/spec/test_fuzz.py and
tests/control/test_loop_fuzz.py), and what a check of them must always hold (`assert_sound`).

A document starts valid (a few agents, tasks that name them and each other), then takes a few
mutations: a key (known or random) set to a value of any type, numbers at and beyond every
bound of the schemas, NaN and infinities, huge strings, NUL bytes, deep nesting, a key deleted;
then maybe a text-level one (cut anywhere, as a torn save; a line repeated or inserted).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from hypothesis import strategies as st

from reconciler.errors import Problem
from reconciler.spec import schemacheck
from reconciler.spec.desired import Desired
from reconciler.spec.durations import MAX_SECONDS

NAMES = ["dev", "ops", "worker", "a", "b", "c", "review", "x-1"]
TOWN_KEYS = [
    *schemacheck.load_schema("town")["$defs"]["town"]["properties"],
    "nope",
    "replicas",
]
AGENT_KEYS = [*schemacheck.load_schema("town")["$defs"]["agent"]["properties"], "replica"]
TASK_KEYS = [*schemacheck.load_schema("tasks")["$defs"]["task"]["properties"], "depnds_on"]


def _integer_bounds() -> list[int]:
    """Every minimum and maximum of both schemas, and one beyond each."""
    found: set[int] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key in ("minimum", "maximum", "maxLength", "maxItems", "maxProperties"):
                if isinstance(node.get(key), int):
                    found.update((node[key] - 1, node[key], node[key] + 1))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schemacheck.load_schema("town"))
    walk(schemacheck.load_schema("tasks"))
    return sorted(found)


BOUNDS = _integer_bounds()
HUGE_INTS = [2**63 - 1, -(2**63), 99999999999999999999, -99999999999999999999]
FLOATS = [math.nan, math.inf, -math.inf, 1e9, 1.5, 3.0, -0.0, 2592000.5, 1e300, 5e-324]
DURATIONS = ["30d", "31d", "720h", "721h", "1h30m", "500ms", "0s", "-5s", "1y", "nan", "90"]

scalars = st.one_of(
    st.sampled_from(BOUNDS),
    st.sampled_from(HUGE_INTS),
    st.integers(),
    st.sampled_from(FLOATS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(NAMES),
    st.sampled_from(DURATIONS),
    st.text(max_size=30),
    st.sampled_from(["a\x00b", "\x00", "dev\x00", "A" * 70, "sim", "claude", "pending", "done"]),
    # Huge strings: 64 KiB to 1.5 MiB (past description's 1 MiB, env's 32 KiB, ...).
    st.builds(lambda n, c: c * n, st.sampled_from([65_537, 1_048_577, 1_500_000]), st.just("x")),
)


class Raw(str):
    """TOML text written as is (deep nesting: the emitter below would recurse)."""


def _nested(depth: int, leaf: object, table: bool) -> Raw:
    if table:
        return Raw("{a = " * depth + toml_value(leaf) + "}" * depth)
    return Raw("[" * depth + toml_value(leaf) + "]" * depth)


# Numbers at and beyond every bound, NaN and infinities: the most likely values to break a check.
numbers = st.one_of(st.sampled_from(BOUNDS), st.sampled_from(HUGE_INTS), st.sampled_from(FLOATS))
small = st.one_of(st.integers(-3, 3), st.sampled_from(["dev", "x", "", "t0"]), st.just(1.5))
values = st.one_of(
    numbers,
    numbers,
    scalars,
    st.lists(scalars, max_size=5),
    st.dictionaries(st.sampled_from([*NAMES, "k", "NAME"]), scalars, max_size=3),
    # Deep nesting, under and over the parser's limit (~80).
    st.builds(_nested, st.sampled_from([10, 79, 81, 200, 5000]), small, st.booleans()),
    # Long arrays: past every maxItems but the tasks' (20,000, tested by tests/spec/test_bounds).
    st.builds(lambda n, v: [v] * n, st.sampled_from([65, 257, 1001, 30_000]), small),
)


# -- TOML text ---------------------------------------------------------------------------------


_ESCAPE = re.compile('["\\\\\x00-\x1f\x7f\ud800-\udfff]')


def toml_string(s: str) -> str:
    def escape(m: re.Match[str]) -> str:
        ch = m.group()
        # (a surrogate's escape is invalid TOML: a problem, as it should be)
        return "\\" + ch if ch in '"\\' else f"\\u{ord(ch):04x}"

    return '"' + _ESCAPE.sub(escape, s) + '"'


def toml_key(k: str) -> str:
    bare = k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k)
    return k if bare else toml_string(k)


def toml_value(v: object) -> str:
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def table_text(header: str, table: dict[str, Any]) -> str:
    lines = [header]
    lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def town_text(doc: dict[str, Any]) -> str:
    parts = []
    for top, value in doc.items():
        if top == "agents" and isinstance(value, dict):
            for name, agent in value.items():
                if isinstance(agent, dict):
                    parts.append(table_text(f"[agents.{toml_key(name)}]", agent))
                else:
                    parts.append(f"agents.{toml_key(name)} = {toml_value(agent)}\n")
        elif isinstance(value, dict):
            parts.append(table_text(f"[{toml_key(top)}]", value))
        else:
            parts.insert(0, f"{toml_key(top)} = {toml_value(value)}\n")
    return "\n".join(parts)


def tasks_text(doc: dict[str, Any]) -> str:
    parts = []
    for top, value in doc.items():
        if top == "tasks" and isinstance(value, list) and all(isinstance(t, dict) for t in value):
            parts += [table_text("[[tasks]]", t) for t in value]
        elif isinstance(value, dict):
            parts.append(table_text(f"[{toml_key(top)}]", value))
        else:
            parts.insert(0, f"{toml_key(top)} = {toml_value(value)}\n")
    return "\n".join(parts)


# -- documents ---------------------------------------------------------------------------------


@st.composite
def base_docs(draw: st.DrawFn, suspended: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid (town, tasks) pair as data."""
    agents = draw(st.lists(st.sampled_from(NAMES[:4]), min_size=1, max_size=3, unique=True))
    town: dict[str, Any] = {"town": {"name": "fuzz", "default_model": "sim"}, "agents": {}}
    for name in agents:
        entry: dict[str, Any] = {"model": "sim"}
        if draw(st.booleans()):
            entry["replicas"] = draw(st.integers(1, 3))
        if suspended or draw(st.booleans()):
            entry["suspended"] = True
        town["agents"][name] = entry
    n = draw(st.integers(0, 5))
    tasks = []
    for i in range(n):
        task: dict[str, Any] = {"id": f"t{i}", "description": f"task {i}", "agent": agents[0]}
        if i and draw(st.booleans()):
            task["depends_on"] = [f"t{draw(st.integers(0, i - 1))}"]
        tasks.append(task)
    return town, {"meta": {"description": "fuzz"}, "tasks": tasks}


def _mutate(draw: st.DrawFn, doc: dict[str, Any], which: str) -> None:
    """One mutation of `doc` in place: a key of one of its tables set or deleted."""
    tables: list[tuple[dict[str, Any], list[str]]] = [(doc, ["town", "agents", "models", "x"])]
    if which == "town":
        if isinstance(doc.get("town"), dict):
            tables.append((doc["town"], TOWN_KEYS))
        agents = doc.get("agents")
        if isinstance(agents, dict):
            tables.append((agents, NAMES))
            tables += [(a, AGENT_KEYS) for a in agents.values() if isinstance(a, dict)]
    else:
        tables[0] = (doc, ["meta", "tasks", "x"])
        if isinstance(doc.get("meta"), dict):
            tables.append((doc["meta"], ["description", "default_agent", "default_role", "k"]))
        if isinstance(doc.get("tasks"), list):
            tables += [(t, TASK_KEYS) for t in doc["tasks"] if isinstance(t, dict)]
    table, keys = draw(st.sampled_from(tables))
    key = draw(st.one_of(st.sampled_from(keys), st.text(min_size=1, max_size=8)))
    key = key if draw(st.integers(0, 3)) else draw(st.sampled_from(keys))  # known keys, mostly
    if draw(st.integers(0, 9)) == 0:
        table.pop(key, None)
    else:
        table[key] = draw(values)


@st.composite
def text_mutation(draw: st.DrawFn, text: str) -> str:
    kind = draw(st.sampled_from(["none", "none", "none", "cut", "repeat", "insert"]))
    if kind == "none" or not text:
        return text
    at = draw(st.integers(0, len(text)))
    if kind == "cut":  # a torn save: the file as a writer left it half-way
        return text[:at]
    lines = text.split("\n")
    i = draw(st.integers(0, len(lines) - 1))
    if kind == "repeat":
        lines.insert(i, lines[i])
    else:
        lines.insert(i, draw(st.sampled_from(["[town]", "[[tasks]]", "x = 1", "= =", "\x00", "["])))
    return "\n".join(lines)


@st.composite
def documents(draw: st.DrawFn, suspended: bool = False) -> tuple[str, str | None]:
    """Mutated (town.toml, tasks.toml) texts; tasks.toml None means no such file."""
    town, tasks = draw(base_docs(suspended))
    for _ in range(draw(st.integers(0, 3))):
        _mutate(draw, town, "town")
    for _ in range(draw(st.integers(0, 3))):
        _mutate(draw, tasks, "tasks")
    town_toml = draw(text_mutation(town_text(town)))
    tasks_toml = draw(text_mutation(tasks_text(tasks)))
    return town_toml, None if draw(st.integers(0, 9)) == 0 else tasks_toml


# -- what always holds -------------------------------------------------------------------------


def assert_sound(desired: Desired | None, problems: tuple[Problem, ...]) -> None:
    """Either a desired state within every bound, or problems that say file, line and path."""
    if desired is None:
        assert problems, "invalid without a word"
        for p in problems:
            assert p.file in ("town.toml", "tasks.toml"), p
            assert p.line is not None or p.path == "$", p  # only the whole file has no line
            assert len(p.message) < 2000, p.message[:200]
        return
    assert not problems
    town = desired.town
    lo, hi = schemacheck.int_range("town", "town", "max_agents")
    assert lo <= town.max_agents <= hi
    assert sum(a.replicas for a in desired.agents) <= town.max_agents
    for agent in desired.agents:
        assert 1 <= agent.replicas <= 64
        assert agent.timeout is None or 0 < agent.timeout <= MAX_SECONDS
    policy = town.policy
    assert 0 <= policy.retries <= 100 and 1 <= policy.crash_loop_deaths <= 100
    for key in ("heartbeat", "lease", "retry_backoff", "quarantine", "resync", "task_timeout"):
        seconds = getattr(policy, key)
        assert type(seconds) is float and 0 <= seconds <= MAX_SECONDS, (key, seconds)
    for task in desired.tasks:
        assert task.retries is None or (type(task.retries) is int and 0 <= task.retries <= 100)
        assert type(task.priority) is int and -1_000_000 <= task.priority <= 1_000_000
        assert task.timeout is None or 0 < task.timeout <= MAX_SECONDS
        assert len(task.description) <= 1_048_576
        json.loads(task.canonical_json())  # what Redis stores is JSON


# Saves that broke tt before the bounds (issue 17): the property's first examples.
KILLERS = [
    ('[town]\nname = "fuzz"\nretries = nan\n', None),
    ('[town]\nname = "fuzz"\n[agents.w]\nmodel = "sim"\nreplicas = 99999999999999999999\n', None),
    ('[town]\nname = "fuzz"\n[agents.w]\nmodel = "sim"\nreplicas = 1e9\n', None),
    (
        '[town]\nname = "fuzz"\n[agents.w]\nmodel = "sim"\nsuspended = true\n',
        '[[tasks]]\nid = "a"\nagent = "w"\ndescription = "d"\nretries = nan\npriority = inf\n',
    ),
]
