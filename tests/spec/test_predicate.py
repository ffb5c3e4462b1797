"""The compiled schema predicate (`spec/predicate.py`) says exactly what jsonschema, the
validator of record (as the loader configures it), says of a document: it never accepts what
jsonschema rejects (soundness: the loader trusts its yes), and it accepts what jsonschema accepts
(it supports every keyword our schemas use, so valid files take the fast path).

Mutated documents (tests/spec/fuzzdocs.py: keys of every table set to values of any type, at
and beyond every bound, deleted) and hand-written schemas for the keywords the schema files use
only in one place or not yet. Derandomized, no example database: the same examples each run.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.spec import schemacheck
from reconciler.spec.predicate import compile_schema
from tests.spec.fuzzdocs import _mutate, base_docs

CHECKS = settings(
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    town, tasks = draw(base_docs())
    which = draw(st.sampled_from(["town", "tasks"]))
    doc = town if which == "town" else tasks
    for _ in range(draw(st.integers(0, 3))):
        _mutate(draw, doc, which)
    return which, doc


def test_the_predicate_says_what_jsonschema_says_of_mutated_documents() -> None:
    seen = {True: 0, False: 0}

    @CHECKS
    @given(mutated())
    def check(case: tuple[str, dict[str, Any]]) -> None:
        which, doc = case
        full = schemacheck._validator(which).is_valid(doc)
        fast = schemacheck.fast_check(which)(doc)
        assert fast == full, doc  # never a yes jsonschema refuses; a yes to what it accepts
        seen[full] += 1

    check()
    assert min(seen.values()) >= 50, seen  # both verdicts, many times


SCHEMAS: list[tuple[dict[str, Any] | bool, list[tuple[object, bool]]]] = [
    (
        {"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}, "maxProperties": 2},
        [({"a": 1}, True), ({"A": 1}, False), ({"a": 1, "b": 2, "c": 3}, False), ([], False)],
    ),
    (
        {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}},
        [(["a", 1, 2], True), (["a"], True), ([], True), ([1], False), (["a", "b"], False)],
    ),
    (
        {"type": "array", "minItems": 1, "items": {"enum": ["x", "y"]}},
        [(["x"], True), ([], False), (["z"], False), ([1], False)],
    ),
    (
        {"additionalProperties": {"type": "number", "minimum": 0}, "properties": {"n": True}},
        [({"n": "any", "a": 1.5}, True), ({"a": -1}, False), ({"a": True}, False), (3, True)],
    ),
    (
        {"type": ["string", "integer"], "minLength": 2, "maximum": 5},
        [("ab", True), ("a", False), (5, True), (6, False), (True, False)],
    ),
    (
        {
            "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}},
            "$ref": "#/$defs/node",
        },
        [({"next": {"next": {}}}, True), ({"next": {"next": 1}}, False)],
    ),
    ({"type": "string", "pattern": "b"}, [("abc", True), ("ac", False)]),
    (True, [(1, True), ({"a": []}, True)]),
    (False, [(1, False), ({}, False)]),
    ({"properties": {"a": False, "b": True}}, [({"b": 1}, True), ({"a": 1}, False), (1, True)]),
    (
        {"additionalProperties": False, "properties": {"a": {}}},
        [({"a": 1}, True), ({"b": 1}, False), ("text", True), ([1], True)],
    ),
    (
        {
            "type": "object",
            "properties": {
                "a": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"b": {"type": "integer"}}},
                }
            },
        },
        [({"a": [{"b": 1}, {}]}, True), ({"a": [{"b": 1}, {"b": "x"}]}, False)],
    ),
    (
        {"prefixItems": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}]},
        [(["a"], True), (["a", 1], True), (["a", "b"], False), ([], True)],
    ),
    (
        {"minimum": 0, "maximum": float("inf")},
        [(float("nan"), True), (float("inf"), True), (-float("inf"), False), (1e308, True)],
    ),
    (
        {"$defs": {"task-spec": {"type": "string"}}, "$ref": "#/$defs/task-spec"},
        [("x", True), (1, False)],
    ),
    ({"required": ["a"], "minLength": 1}, [({"a": 1}, True), ({}, False), ("", False), (0, True)]),
]


@pytest.mark.parametrize(("schema", "cases"), SCHEMAS)
def test_each_keyword_as_jsonschema_reads_it(
    schema: dict[str, Any] | bool, cases: list[tuple[object, bool]]
) -> None:
    check = compile_schema(schema, schema if isinstance(schema, dict) else {})
    validator = jsonschema.Draft202012Validator(schema)
    for value, valid in cases:
        assert validator.is_valid(value) is valid, value  # the case itself is right
        assert check(copy.deepcopy(value)) is valid, value


def test_a_keyword_it_does_not_know_rejects_its_schema_whatever_the_value() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "format": "email"},
            "b": {"items": {"minContains": 1}},
            "c": {"propertyNames": {"format": "x"}},
        },
    }
    check = compile_schema(schema, schema)
    assert check({"d": 1}) is True  # no unknown keyword's subschema is reached
    assert check({"a": "x@y"}) is False  # reached: handed to jsonschema, which explains
    assert check({"b": []}) is True and check({"b": [1]}) is False
    assert check({"c": {}}) is True and check({"c": {"k": 1}}) is False


def test_integers_are_told_from_floats_as_in_the_validator_of_record() -> None:
    # TOML writes 3 and 3.0 apart: `replicas = 3.0` is refused by both (plain jsonschema would
    # take 3.0 for an integer; `schemacheck._validator` is configured not to).
    schema = {"type": "integer", "minimum": 1}
    check = compile_schema(schema, schema)
    for value, valid in ((3, True), (3.0, False), (True, False), (0, False)):
        assert check(value) is valid, value
    doc = {"town": {"name": "x"}, "agents": {"a": {"replicas": 3.0}}}
    assert schemacheck._validator("town").is_valid(doc) is False
    assert schemacheck.fast_check("town")(doc) is False
