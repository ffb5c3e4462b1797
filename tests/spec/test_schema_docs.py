"""The JSON Schemas as editors show them (Taplo / Even Better TOML hover text): every property of
town.schema.json and tasks.schema.json has a description, and every example given is valid
against its property's own schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from reconciler.spec.schemacheck import schema_dir

WHICH = ("town", "tasks")


def load(which: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((schema_dir() / f"{which}.schema.json").read_text())
    return data


def properties(node: object, where: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    """(JSON-pointer-ish path, schema) of every property anywhere in a schema."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for name, prop in value.items():
                    yield f"{where}.{name}", prop
                    yield from properties(prop, f"{where}.{name}")
            else:
                yield from properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from properties(item, f"{where}[{i}]")


@pytest.mark.parametrize("which", WHICH)
def test_every_property_has_a_description(which: str) -> None:
    found = list(properties(load(which)))
    assert len(found) > 15
    missing = [path for path, prop in found if not str(prop.get("description", "")).strip()]
    assert missing == []


@pytest.mark.parametrize("which", WHICH)
def test_every_example_is_valid_for_its_property(which: str) -> None:
    schema = load(which)
    checked = 0
    for path, prop in properties(schema):
        for example in prop.get("examples", []):
            validator = jsonschema.Draft202012Validator({**prop, "$defs": schema["$defs"]})
            errors = [e.message for e in validator.iter_errors(example)]
            assert errors == [], (path, example)
            checked += 1
    assert checked > 10
