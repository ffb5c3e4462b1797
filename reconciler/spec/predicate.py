"""The compiled predicate of a JSON Schema: says yes fast to a document that conforms.

The schema is compiled to the source of one Python function per definition (and one for the
root), each testing a value with inline statements: a 10,000-task file is checked with one call
per task instead of one closure call per keyword and value (those calls were a fifth of a whole
`tt apply` of such a file). The source is made from the package's schema files alone, compiled
once per process (`schemacheck.fast_check` caches it). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Check = Callable[[object], bool]

_META = frozenset({"$schema", "$id", "$defs", "$comment", "title", "description", "examples"})
# A value's type test, on the variable named by {x} (TOML tells integers from floats).
_TYPE_TESTS = {
    "string": "isinstance({x}, str)",
    "boolean": "isinstance({x}, bool)",
    "object": "isinstance({x}, dict)",
    "array": "isinstance({x}, list)",
    "integer": "(isinstance({x}, int) and not isinstance({x}, bool))",
    "number": "(isinstance({x}, (int, float)) and not isinstance({x}, bool))",
}


def compile_schema(schema: object, root: dict[str, Any]) -> Check:
    """A predicate that never accepts what `schema` (whose `$ref`s name `root`'s `$defs`)
    rejects, for the keywords our schemas use.

    Any other keyword makes its (sub)schema reject every value, which hands the document to
    jsonschema: a keyword added to a schema file without support here costs speed, never
    correctness. Nothing of the schema but quoted strings and plain numbers reaches the source
    (names of definitions become numbers; patterns, sets and other numbers are constants)."""
    emitter = _Emitter(root)
    emitter.function("check_", schema)
    namespace: dict[str, Any] = dict(emitter.constants)
    exec(compile("\n".join(emitter.lines), "<schema predicate>", "exec"), namespace)
    check: Check = namespace["check_"]
    return check


class _Emitter:
    """Python source testing values against a schema: `function(name, schema)` writes
    `def name(x0)`, each `$defs` entry referred to its own function `def_N` (N: the order in
    which the entries were met)."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.lines: list[str] = []
        self.constants: dict[str, object] = {}
        self.defs: list[str] = []

    def function(self, name: str, schema: object) -> None:
        body: list[str] = []
        self._node(schema, "x0", 0, body, "    ")
        self.lines += [f"def {name}(x0):", *body, "    return True", ""]

    def _constant(self, value: object) -> str:
        name = f"c{len(self.constants)}"
        self.constants[name] = value
        return name

    def _ref(self, arg: str) -> str:
        name = arg.removeprefix("#/$defs/")
        if name not in self.defs:
            self.defs.append(name)  # before its body: a definition may refer to itself
            self.function(f"def_{self.defs.index(name)}", self.root["$defs"][name])
        return f"def_{self.defs.index(name)}"

    def _node(self, schema: object, x: str, depth: int, out: list[str], pad: str) -> None:
        """Statements that `return False` unless the value named `x` conforms to `schema`."""
        if schema is True:
            return
        if not isinstance(schema, dict) or any(
            not _known(key, arg) for key, arg in schema.items() if key not in _META
        ):
            out.append(f"{pad}return False")
            return
        # The type first: a single type makes the other keywords' own type tests needless
        # (and those of another type never apply).
        kind = schema.get("type")
        sure = kind if isinstance(kind, str) else None
        keys = sorted((k for k in schema if k not in _META), key=lambda k: k != "type")
        for key in keys:
            self._keyword(key, schema[key], schema, _Value(x, sure), depth, out, pad)

    def _keyword(
        self,
        key: str,
        arg: Any,
        schema: dict[str, Any],
        value: _Value,
        depth: int,
        out: list[str],
        pad: str,
    ) -> None:
        """The statements of one keyword (keywords ignore values of other types)."""
        x, k, y = value.name, f"k{depth + 1}", f"x{depth + 1}"
        fail = f"{pad}    return False"
        if key == "$ref":
            out += [f"{pad}if not {self._ref(arg)}({x}):", fail]
            return
        if key == "type":
            names = [arg] if isinstance(arg, str) else arg
            tests = [_TYPE_TESTS[t].format(x=x) for t in names if t in _TYPE_TESTS]
            out += [f"{pad}if not ({' or '.join(tests) or 'False'}):", fail]
            return
        if key == "enum":
            choices = self._constant(frozenset(arg))
            out += [f"{pad}if not (isinstance({x}, str) and {x} in {choices}):", fail]
            return
        test = value.applies(_APPLIES_TO[key])
        if test is None:
            return  # the value's type is sure and another: the keyword never applies
        if key in _SIZES:
            op = "<" if key.startswith("min") else ">"
            out += [f"{pad}if {test}len({x}) {op} {int(arg)}:", fail]
        elif key in ("minimum", "maximum"):
            op = "<" if key == "minimum" else ">"
            bound = self._constant(arg)  # (inf or nan from the JSON would not be source)
            out += [f"{pad}if {test}{x} {op} {bound}:", fail]
        elif key == "pattern":
            pattern = self._constant(re.compile(arg))
            out += [f"{pad}if {test}{pattern}.search({x}) is None:", fail]
        elif key == "required":
            for name in arg:
                out += [f"{pad}if {test}{name!r} not in {x}:", fail]
        elif key == "additionalProperties" and arg is False:
            known = self._constant(frozenset(schema.get("properties", ())))
            out += [f"{pad}if {test}not {known}.issuperset({x}):", fail]
        else:
            inner = pad
            block: list[str] = []
            if test:
                block.append(f"{pad}if {test.removesuffix(' and ')}:")
                inner = pad + "    "
            if self._loop(key, arg, schema, x, k, y, depth, block, inner):
                out += block

    def _loop(
        self,
        key: str,
        arg: Any,
        schema: dict[str, Any],
        x: str,
        k: str,
        y: str,
        depth: int,
        out: list[str],
        pad: str,
    ) -> bool:
        """The loop of a keyword over a table's or an array's members; False when no member
        can fail it (nothing to write)."""
        body: list[str] = []
        if key == "properties":
            out.append(f"{pad}for {k}, {y} in {x}.items():")
            branch = "if"
            for name, sub in arg.items():
                body = []
                self._node(sub, y, depth + 1, body, pad + "        ")
                out += [f"{pad}    {branch} {k} == {name!r}:", *(body or [f"{pad}        pass"])]
                branch = "elif"
            return branch == "elif"
        if key == "additionalProperties":
            self._node(arg, y, depth + 1, body, pad + "        ")
            known = self._constant(frozenset(schema.get("properties", ())))
            out += [f"{pad}for {k}, {y} in {x}.items():", f"{pad}    if {k} not in {known}:"]
        elif key == "propertyNames":
            self._node(arg, k, depth + 1, body, pad + "    ")
            out.append(f"{pad}for {k} in {x}:")
        elif key == "items":
            skip = len(schema.get("prefixItems", ()))
            self._node(arg, y, depth + 1, body, pad + "    ")
            out.append(f"{pad}for {y} in {x}[{skip}:]:" if skip else f"{pad}for {y} in {x}:")
        else:  # prefixItems
            for i, sub in enumerate(arg):
                first: list[str] = []
                self._node(sub, y, depth + 1, first, pad + "    ")
                if first:
                    body += [f"{pad}if len({x}) > {i}:", f"{pad}    {y} = {x}[{i}]", *first]
            out += body
            return bool(body)
        out += body
        return bool(body)


class _Value:
    """The variable a node tests, and its type when the node's `type` makes it sure."""

    def __init__(self, name: str, sure: str | None) -> None:
        self.name, self.sure = name, sure

    def applies(self, kind: str) -> str | None:
        """The test (ending in ' and ') that the value is of `kind`, where a keyword of that
        kind applies: '' when sure, None when sure to be another type."""
        if self.sure is None:
            return _TYPE_TESTS[kind].format(x=self.name) + " and "
        if self.sure == kind or (kind == "number" and self.sure == "integer"):
            return ""
        return None


def _known(key: str, arg: Any) -> bool:
    if key == "$ref":
        return isinstance(arg, str) and arg.startswith("#/$defs/")
    if key in ("minimum", "maximum"):
        return isinstance(arg, (int, float)) and not isinstance(arg, bool)
    if key == "enum":
        return all(isinstance(e, str) for e in arg)
    return key in _APPLIES_TO or key == "type"


_SIZES = frozenset({"minItems", "maxItems", "minLength", "maxLength", "maxProperties"})
# The type of value each keyword applies to (it ignores the others).
_APPLIES_TO = {
    "properties": "object",
    "additionalProperties": "object",
    "required": "object",
    "propertyNames": "object",
    "maxProperties": "object",
    "items": "array",
    "prefixItems": "array",
    "minItems": "array",
    "maxItems": "array",
    "minLength": "string",
    "maxLength": "string",
    "pattern": "string",
    "minimum": "number",
    "maximum": "number",
}
