"""The JSON-Schema check of a parsed town file (schema/*.schema.json), reported on its `TomlDoc`.

A predicate compiled from the schema says yes fast; jsonschema, imported only then, runs on a
rejected document to explain what is wrong. Shapes and types only: the meaning of values
(references, names, durations) is checked by `towncheck` and `taskcheck`, never here.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import TtError
from .bounds import quoted
from .locate import JsonPath
from .names import did_you_mean
from .predicate import Check, compile_schema
from .tomldoc import TomlDoc


def schema_dir() -> Path:
    # In a wheel the schemas sit inside the package; in a source checkout beside it.
    package = Path(__file__).resolve().parents[1]  # reconciler/
    inside, beside = package / "schema", package.parent / "schema"
    for folder in (inside, beside):
        if (folder / "town.schema.json").is_file():
            return folder
    raise TtError(f"the JSON schemas are missing (looked in {inside} and {beside})")


@cache
def load_schema(which: str) -> dict[str, Any]:
    """`town`, `tasks`, or `settings` (town.toml's [town] and [serve] alone, for
    `loader.load_settings`)."""
    if which == "settings":
        # The other tables are not read on that path.
        town = load_schema("town")
        return {
            "type": "object",
            "required": ["town"],
            "properties": {k: town["properties"][k] for k in ("town", "serve")},
            "$defs": town["$defs"],
        }
    schema: dict[str, Any] = json.loads((schema_dir() / f"{which}.schema.json").read_text())
    return schema


@cache
def int_range(which: str, definition: str, key: str) -> tuple[int, int]:
    """(minimum, maximum) of the integer field `key` of `$defs.definition` in schema `which`: the
    one place a range is written. Every integer field has both (tests/spec/test_bounds.py)."""
    field = load_schema(which)["$defs"][definition]["properties"][key]
    return int(field["minimum"]), int(field["maximum"])


@cache
def _validator(which: str) -> Any:
    # jsonschema costs ~80 ms to import and is needed only to explain an invalid document.
    import jsonschema  # type: ignore[import-untyped]

    base = jsonschema.Draft202012Validator
    # TOML tells integers from floats: `replicas = 3.0` or `1e9` is a float, which JSON Schema
    # would take for an integer (and the compiled predicate does not).
    checker = base.TYPE_CHECKER.redefine("integer", lambda _, v: _IS_TYPE["integer"](v))
    items, more = base.VALIDATORS["items"], base.VALIDATORS["additionalProperties"]

    # An array or table over its size limit is reported as such; its members are not checked
    # one by one (a 2-million-item array would take seconds for nothing).
    def bounded_items(v: Any, arg: Any, instance: Any, schema: dict[str, Any]) -> Any:
        if isinstance(instance, list) and len(instance) > schema.get("maxItems", len(instance)):
            return ()
        return items(v, arg, instance, schema)

    def bounded_more(v: Any, arg: Any, instance: Any, schema: dict[str, Any]) -> Any:
        limit = schema.get("maxProperties", len(instance) if isinstance(instance, dict) else 0)
        if isinstance(instance, dict) and len(instance) > limit:
            return ()
        return more(v, arg, instance, schema)

    strict = jsonschema.validators.extend(
        base,
        {"items": bounded_items, "additionalProperties": bounded_more},
        type_checker=checker,
    )
    return strict(load_schema(which))


@cache
def fast_check(which: str) -> Check:
    return compile_schema(load_schema(which), load_schema(which))


def check_schema(doc: TomlDoc, which: str, data: dict[str, Any]) -> bool:
    """Report on `doc` every way `data` breaks schema `which`; whether it conforms."""
    # The compiled predicate accepts a valid 10,000-task file in ~60 ms where jsonschema takes
    # ~0.5 s; jsonschema runs only to explain what the predicate rejected.
    if fast_check(which)(data):
        return True
    for error in _validator(which).iter_errors(data):
        if doc.full:
            break  # enough said (`bounds.MAX_PROBLEMS`); the rest would only cost time
        _report_schema_error(doc, error)
    return False


# -- explaining a rejection --------------------------------------------------------------------

_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "an array",
    "object": "a table",
    "null": "nothing",
}


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"a string ({json.dumps(value)[:40]})"
    if isinstance(value, int):
        return f"an integer ({_number(value)})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"


def _number(value: float) -> str:
    if isinstance(value, int) and abs(value) > 10**40:
        return "beyond ±1e40"  # (str() of an int fails past 4,300 digits)
    return str(value)


def _size(instance: object) -> str:
    if isinstance(instance, str):
        return f"{len(instance)} characters long"
    if isinstance(instance, list):
        return f"{len(instance)} items long"
    return f"{len(instance) if isinstance(instance, dict) else '?'} entries long"


def _report_schema_error(doc: TomlDoc, error: Any) -> None:
    path: JsonPath = tuple(error.absolute_path)
    kind, value, instance, schema = (
        error.validator,
        error.validator_value,
        error.instance,
        error.schema,
    )
    hint: str | None
    if kind == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        for key in instance:
            if key not in allowed:
                hint = did_you_mean(key, allowed) or f"known keys: {', '.join(allowed)}"
                doc.report((*path, key), f"unknown key '{key}'", hint)
    elif kind == "required":
        for key in value:
            if key not in instance:
                if not path and key == "town":
                    doc.report(path, "missing the [town] table", 'it needs at least name = "..."')
                else:
                    doc.report(path, f"missing required key '{key}'")
    elif kind == "type":
        if schema.get("title") == "duration":
            expected = schema["description"]
        else:
            types = [value] if isinstance(value, str) else value
            expected = " or ".join(_TYPE_WORDS.get(t, t) for t in types)
        hint = "write each task as a [[tasks]] table" if path == ("tasks",) else None
        doc.report(path, f"expected {expected}, got {_kind(instance)}", hint)
    elif kind == "enum":
        choices = ", ".join(json.dumps(c) for c in value)
        hint = did_you_mean(instance, value) if isinstance(instance, str) else None
        doc.report(path, f"must be one of {choices}, got {_kind(instance)}", hint)
    elif kind in ("minimum", "maximum") and schema.get("title") == "duration":
        # The words of durations.parse_duration, which checks the strings.
        limit = "must not be negative" if kind == "minimum" else "must be at most 30 days"
        doc.report(path, f"invalid duration {_number(instance)}: it {limit}")
    elif kind in ("minimum", "maximum"):
        if schema.get("type") == "integer" and type(instance) is not int:
            return  # not an integer: its type error says so
        word = "least" if kind == "minimum" else "most"
        doc.report(path, f"must be at {word} {value}, got {_number(instance)}")
    elif kind in ("maxLength", "maxItems", "maxProperties"):
        doc.report(path, f"is {_size(instance)}, at most {value}")
    elif kind in ("minItems", "minLength"):
        doc.report(path, "must not be empty")
    elif kind == "pattern" and "propertyNames" in error.relative_schema_path:
        doc.report((*path, instance), f"invalid key {quoted(instance)}: it must match {value}")
    elif kind == "pattern":
        doc.report(path, f"invalid value {quoted(instance)}: it must match {value}")
    else:
        doc.report(path, error.message[:200])


# TOML tells integers from floats: the type tests of `_validator` (the predicate's are in
# `predicate`).
_IS_TYPE: dict[str, Check] = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}
