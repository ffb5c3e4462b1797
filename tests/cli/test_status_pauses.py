"""`tt status` names when a provider's pause ends: the time today, with its date on another day
(a 23.5 h pause shown as `15:00` reads as half an hour)."""

from __future__ import annotations

import time

from cli.cmd_status import limit_lines, pause_end


def test_a_pause_ending_today_shows_its_time_and_another_day_its_date() -> None:
    now = time.mktime((2026, 12, 7, 10, 0, 0, 0, 0, -1))
    today = time.mktime((2026, 12, 7, 15, 30, 0, 0, 0, -1))
    tomorrow = time.mktime((2026, 12, 8, 9, 30, 0, 0, 0, -1))
    assert pause_end(today, now) == "15:30"
    assert pause_end(tomorrow, now) == "2026-12-08 09:30"


def test_the_status_line_of_a_pause_over_midnight_has_its_date() -> None:
    until = time.time() + 2 * 86400
    report = {
        "providers": [
            {"provider": "claude", "paused_until": until, "reason": "claude usage limit"}
        ],
        "budgets": {"town": {"limit": None, "spent": 0.0, "reached": False}, "agents": {}},
    }
    [line] = limit_lines(report)
    day = time.strftime("%Y-%m-%d %H:%M", time.localtime(until))
    assert line == (
        f"claude: paused until {day} (claude usage limit): tt resume-provider claude ends it now"
    )
