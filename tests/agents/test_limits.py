"""When a limit a CLI names resets (an epoch, a clock time in a zone or local time, a delay),
which provider a model runs on, and how long an idle worker waits while its provider is paused."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from reconciler.agents.exitclass import ExitClass
from reconciler.agents.limits import idle_wait, limit_of, provider_of, reset_at
from reconciler.agents.prompt import Verdict
from reconciler.spec.desired import ModelSpec
from reconciler.spec.presets import PRESETS
from reconciler.store.turn import Turn

BERLIN = ZoneInfo("Europe/Berlin")
# 2026-12-07 10:00 in Berlin (UTC+1 in winter).
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=BERLIN).timestamp()


def test_an_epoch_after_a_bar_is_the_reset() -> None:
    assert reset_at("Claude AI usage limit reached|1712345678", NOW) == 1712345678.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("You've hit your usage limit. Try again in 2 hours.", 7200),
        ("try again in 2 hours 5 minutes.", 7500),
        ("Please wait, try again in 30 minutes", 1800),
        ("Please retry in 41.5s.", 41.5),
        ("rate limited: retry after 90 seconds", 90),
    ],
)
def test_a_delay_counts_from_now(text: str, seconds: float) -> None:
    assert reset_at(text, NOW) == NOW + seconds


@pytest.mark.parametrize(
    ("text", "hour", "minute", "day"),
    [
        ("5-hour limit reached ∙ resets 3pm", 15, 0, 7),
        ("Your limit resets at 15:30", 15, 30, 7),
        ("limit reached, resets 6am", 6, 0, 8),  # 6 am passed 4 h ago: tomorrow's
        ("resets 12am", 0, 0, 8),
        ("resets 12:15 pm", 12, 15, 7),
    ],
)
def test_a_clock_time_is_its_next_occurrence_in_the_given_zone(
    text: str, hour: int, minute: int, day: int
) -> None:
    at = reset_at(text, NOW, BERLIN)
    assert at == datetime(2026, 12, day, hour, minute, tzinfo=BERLIN).timestamp()


def test_a_zone_named_in_the_message_wins_over_the_local_one() -> None:
    at = reset_at("Your limit will reset at 3pm (America/New_York).", NOW, BERLIN)
    # 10:00 in Berlin is 04:00 in New York: 3 pm there is still today.
    assert at == datetime(2026, 12, 7, 15, 0, tzinfo=ZoneInfo("America/New_York")).timestamp()


def test_a_clock_time_without_a_zone_is_in_local_time() -> None:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    try:
        at = reset_at("resets 3pm", NOW)  # 10:00 Berlin = 18:00 Tokyo: 3 pm tomorrow there
        assert at == datetime(2026, 12, 8, 15, 0, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp()
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_a_fixed_offset_zone_works_too() -> None:
    utc = reset_at("resets at 23:00", NOW, timezone.utc)
    assert utc == datetime(2026, 12, 7, 23, 0, tzinfo=timezone.utc).timestamp()
    assert utc - NOW == timedelta(hours=14).total_seconds()


@pytest.mark.parametrize(
    "text",
    ["rate limit exceeded", "429 Too Many Requests", "resets 25:00", "resets 13pm", "in 0 s"],
)
def test_no_reset_named(text: str) -> None:
    assert reset_at(text, NOW, BERLIN) is None


def test_the_provider_is_the_cli_family_unless_set() -> None:
    assert provider_of(PRESETS["claude"]) == "claude"
    assert provider_of(PRESETS["codex-mini"]) == provider_of(PRESETS["codex"]) == "codex"
    assert provider_of(PRESETS["sim"]) == "sim"  # {python}: the model's name
    custom = ModelSpec(name="mine", command=("/usr/local/bin/claude", "-p"))
    assert provider_of(custom) == "claude"
    assert provider_of(ModelSpec(name="m", command=("x",), provider="work-account")) == (
        "work-account"
    )


def test_a_limit_is_found_for_limit_classes_only() -> None:
    text = "Claude AI usage limit reached|1712345678"
    limited = Verdict(False, False, text, exit_class=ExitClass.USAGE_LIMIT)
    limit = limit_of(limited, "claude", NOW)
    assert limit is not None and (limit.exit_class, limit.reset) == ("usage_limit", 1712345678.0)
    assert limit.reason == "claude usage limit"
    rate = Verdict(False, False, "boom", exit_class=ExitClass.RATE_LIMITED)
    assert limit_of(rate, "codex", NOW) == limit_of(rate, "codex", NOW + 1)
    assert limit_of(Verdict(False, False, "exit code 1: boom"), "claude", NOW) is None
    # The text alone names no limit: only the class the CLI's own signals gave (`verdicts`).
    assert limit_of(Verdict(False, False, text), "claude", NOW) is None
    assert limit_of(Verdict(False, False, text, exit_class=ExitClass.FAILED), "x", NOW) is None


def test_the_reset_is_read_from_the_limit_line_only() -> None:
    # A test run's "12 passed in 0.4s" above the CLI's message is no reset.
    text = "exit code 1: 1 failed, 12 passed in 0.4s\nERROR: 429 Too Many Requests"
    rate = Verdict(False, False, text, exit_class=ExitClass.RATE_LIMITED)
    limit = limit_of(rate, "codex", NOW)
    assert limit is not None and limit.reset is None
    named = Verdict(
        False,
        False,
        "ran in 2s\nrate limited: retry after 90 seconds",
        exit_class=ExitClass.RATE_LIMITED,
    )
    assert (limit := limit_of(named, "codex", NOW)) is not None and limit.reset == NOW + 90


def test_an_idle_worker_waits_until_the_reset_on_its_control_list_only() -> None:
    keys = ["ctl", "queue", "bell", "backlog"]
    assert idle_wait(Turn("", None, None, []), keys, NOW) == (5.0, keys)
    paused = Turn("", None, None, [], paused_until=NOW + 2)
    assert idle_wait(paused, keys, NOW) == (2.0, ["ctl"])
    # No polling while paused or out of budget: woken on its control list (a resume, a raised
    # budget), looking again once a minute at most; a retry timer cannot be claimed meanwhile.
    assert idle_wait(Turn("", 1.0, None, [], paused_until=NOW + 50), keys, NOW) == (50.0, ["ctl"])
    assert idle_wait(Turn("", 1.0, None, [], paused_until=NOW + 3600), keys, NOW)[0] == 60.0
    assert idle_wait(Turn("", 1.0, None, [], budget="town"), keys, NOW) == (60.0, ["ctl"])
    assert idle_wait(paused, keys, NOW + 3) == (0.05, ["ctl"])  # past it: at once


@pytest.mark.parametrize(
    "text",
    [
        "resets 9am",  # 10:00: an hour ago
        "resets 10am",  # 10:00 sharp
        "resets at 7:01",  # 2 h 59 min ago
    ],
)
def test_a_clock_time_just_passed_is_the_reset_that_happened_not_tomorrows(text: str) -> None:
    assert reset_at(text, NOW, BERLIN) is None  # no reset named: the short backoff
    assert reset_at(text, NOW + 1, BERLIN) is None  # 15:00:01 for "resets 3pm": not 24 h


def test_a_clock_time_just_passed_before_midnight_is_not_tomorrow_either() -> None:
    just_after_midnight = datetime(2026, 12, 8, 0, 30, tzinfo=BERLIN).timestamp()
    assert reset_at("resets 11pm", just_after_midnight, BERLIN) is None
    assert reset_at("resets 8pm", just_after_midnight, BERLIN) == (
        datetime(2026, 12, 8, 20, 0, tzinfo=BERLIN).timestamp()
    )


def test_a_zone_name_may_hold_digits() -> None:
    # Etc/GMT+5 is UTC-5: 10:00 Berlin is 04:00 there, so 3 pm there is today at 20:00 UTC.
    at = reset_at("Your limit resets 3pm (Etc/GMT+5)", NOW, BERLIN)
    assert at == datetime(2026, 12, 7, 15, 0, tzinfo=ZoneInfo("Etc/GMT+5")).timestamp()
