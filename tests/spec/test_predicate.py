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
        assert fast <= full, doc  # never a yes that jsonschema would refuse
        assert fast == full, doc
        seen[full] += 1

    check()
    assert min(seen.values()) >= 50, seen  # both verdicts, many times


SCHEMAS: list[tuple[dict[str, Any], list[tuple[object, bool]]]] = [
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
    ({"required": ["a"], "minLength": 1}, [({"a": 1}, True), ({}, False), ("", False), (0, True)]),
]


@pytest.mark.parametrize(("schema", "cases"), SCHEMAS)
def test_each_keyword_as_jsonschema_reads_it(
    schema: dict[str, Any], cases: list[tuple[object, bool]]
) -> None:
    check = compile_schema(schema, schema, {})
    validator = jsonschema.Draft202012Validator(schema)
    for value, valid in cases:
        assert validator.is_valid(value) is valid, value  # the case itself is right
        assert check(copy.deepcopy(value)) is valid, value


def test_a_keyword_it_does_not_know_rejects_its_schema_whatever_the_value() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "format": "email"}}}
    check = compile_schema(schema, schema, {})
    assert check({"b": 1}) is True  # the unknown keyword's subschema is not reached
    assert check({"a": "x@y"}) is False  # reached: handed to jsonschema, which explains
