"""Passwords never show in a message: a URL quoted anywhere in an error, a hint or a validation
problem has its password masked, whatever its scheme."""

from __future__ import annotations

import pytest

from reconciler.errors import Problem, TtError, ValidationFailed, mask_passwords
from tests.spec.test_loader import problems_of


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ('got a string ("redis://u:s3cret@h")', 'got a string ("redis://u:****@h")'),
        ("at reddis:u:s3cret@h:6379 now", "at reddis:u:****@h:6379 now"),
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:****@127.0.0.1:6379/0"),
        ("http://a:s3cret@c and https://d:s3cret@f", "http://a:****@c and https://d:****@f"),
        ("mail me at a@b.example at 10:30", "mail me at a@b.example at 10:30"),
        ("redis://alice@host/0", "redis://alice@host/0"),
    ],
)
def test_mask_passwords_in_free_text(text: str, masked: str) -> None:
    assert mask_passwords(text) == masked


def test_errors_and_problems_mask_what_they_quote() -> None:
    e = TtError("cannot use 'reddis://u:s3cret@h'", hint="try redis://u:s3cret@h")
    assert "s3cret" not in e.message + str(e) + (e.hint or "")
    p = Problem(
        "town.toml", "$.town.retries", 'got "redis://:s3cret@h"', 3, hint="rediss://:s3cret@h"
    )
    assert "s3cret" not in p.render() + str(p.as_dict())
    assert "s3cret" not in ValidationFailed([p]).message


def test_a_url_in_the_wrong_field_is_reported_masked() -> None:
    town = '[town]\nname = "t"\nretries = "redis://u:s3cret@h"\n\n[agents.a]\nrestart = "reddis://:s3cret@h"\n'
    rendered = [p.render() for p in problems_of(town)]
    assert len(rendered) == 2 and not any("s3cret" in r for r in rendered), rendered


def test_a_url_in_a_name_field_leaks_no_password_in_the_suggested_name_either() -> None:
    town = '[town]\nname = "t"\n\n[agents.a]\nrole = "redis://u:s3cret@h"\n'
    (problem,) = problems_of(town)
    assert "s3cret" not in problem.render() and problem.hint == "for example 'redis-u-h'"
