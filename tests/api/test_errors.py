"""How the API answers an engine error (`reconciler/api/app.py`): the CLI's message and hint as
JSON, with a status by the error's kind."""

from __future__ import annotations

import json

import pytest

from reconciler.api.app import error_response, status_of
from reconciler.api.bodies import BadBody, parse
from reconciler.control.apply import Refused
from reconciler.errors import (
    Conflict,
    NotFound,
    Problem,
    RedisUnavailable,
    TtError,
    ValidationFailed,
)


def test_each_kind_of_error_has_its_status() -> None:
    assert status_of(NotFound("no task named x")) == 404
    assert status_of(Conflict("task 'x' is running")) == 409
    assert status_of(Refused("refusing to apply")) == 409
    assert status_of(ValidationFailed([Problem("tasks.toml", "$.tasks[0].id", "bad")])) == 422
    assert status_of(RedisUnavailable("Redis at unix://… is unreachable")) == 503
    assert status_of(TtError("a task needs a description")) == 400


def test_the_answer_is_the_cli_message_and_hint() -> None:
    r = error_response(NotFound("no task named nope", hint="did you mean 'one'?"))
    assert r.status_code == 404
    assert json.loads(bytes(r.body)) == {
        "error": "no task named nope",
        "hint": "did you mean 'one'?",
    }
    problem = Problem("tasks.toml", "$.tasks[0].agent", "unknown agent 'x'", line=3)
    r = error_response(ValidationFailed([problem]))
    body = json.loads(bytes(r.body))
    assert r.status_code == 422 and body["problems"] == [problem.as_dict()]
    assert "tasks.toml:3: $.tasks[0].agent: unknown agent 'x'" in body["error"]


@pytest.mark.parametrize(
    ("raw", "status", "words"),
    [
        (b"{", 400, "not JSON"),
        (b"[]", 422, "$: [] is not of type 'object'"),
        (b'{"agent": "dev"}', 422, "'description' is a required property"),
        (b'{"agent": "dev", "description": "x", "save": "no"}', 422, "$.save: 'no' is not"),
        (b'{"agent": "dev", "description": "x", "colour": 1}', 422, "'colour' was unexpected"),
    ],
)
def test_a_bad_body_is_refused_before_anything_runs(raw: bytes, status: int, words: str) -> None:
    with pytest.raises(BadBody) as e:
        parse("NewTask", raw)
    assert e.value.status == status and words in e.value.message, e.value.message
    assert status_of(e.value) == status


def test_a_good_body_and_an_empty_one() -> None:
    assert parse("NewTask", b'{"agent": "dev", "description": "x"}')["agent"] == "dev"
    assert parse("Apply", b"") == {}
