from __future__ import annotations

import re

import pytest

from reconciler.spec.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (2.5, 2.5),
        (0, 0.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("2d", 172800.0),
        ("1m30s250ms", 90.25),
        (" 10s ", 10.0),
    ],
)
def test_parses_numbers_and_unit_strings(value: int | float | str, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("90", 'a string needs a unit, like "90s"'),
        ("5x", "expected <number><unit> parts with units ms, s, m, h, d"),
        ("5 minutes", "expected <number><unit> parts"),
        ("m5", "expected <number><unit> parts"),
        ("", "use a number of seconds or a string like"),
        ("-5s", "must not be negative"),
        (-1, "must not be negative"),
        (float("inf"), "finite number of seconds"),
        (float("nan"), "finite number of seconds"),
        (True, "expected a duration, got true"),
    ],
)
def test_rejects_with_a_clear_message(value: int | float | str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_duration(value)


def test_rejects_other_types() -> None:
    with pytest.raises(ValueError, match="expected a duration, got list"):
        parse_duration([1])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.5, "500ms"), (90, "1m30s"), (5400, "1h30m"), (2.5, "2.5s"), (86400, "1d")],
)
def test_format_reads_back(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
