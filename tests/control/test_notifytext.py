"""What a notification says (issue 15): the summary line of an event and a notify command's argv
with its placeholders filled in, on plain fields."""

from __future__ import annotations

from reconciler.control.notifytext import MAX_SUMMARY, fill, slack_text, summary


def test_the_common_events_are_told_in_words() -> None:
    failed = {
        "type": "task.failed",
        "ts": "1765000000.5",
        "task": "build",
        "agent": "dev",
        "attempt": "3",
        "error": "launch_failed: model CLI not found: codex\n(hint: install codex)",
        "permanent": "0",
    }
    assert summary("demo", failed) == (
        "[tt demo] task build failed after attempt 3: launch_failed: model CLI not found: codex"
    )
    done = {"type": "town.completed", "count": "4", "completed": "3", "failed": "1"}
    assert summary("demo", done) == "[tt demo] all 4 tasks finished (3 completed, 1 failed)"
    waiting = {"type": "task.awaiting_approval", "task": "deploy"}
    assert summary("demo", waiting) == "[tt demo] task deploy awaits approval (tt approve deploy)"
    assert summary("demo", {"type": "task.cancelled", "task": "x"}) == "[tt demo] task x cancelled"
    budget = {"type": "budget.exhausted", "scope": "town", "spent": "10.02", "limit": "10"}
    assert summary("demo", budget) == "[tt demo] budget town exhausted: spent 10.02 of 10"
    approved = {"type": "task.approved", "task": "x", "by": "ann", "comment": "ship it"}
    assert summary("demo", approved) == "[tt demo] task x approved by ann: ship it"
    ended = {"type": "town.completed", "count": "3", "completed": "2", "skipped": "1"}
    assert summary("demo", ended) == "[tt demo] all 3 tasks finished (2 completed, 1 skipped)"
    rejected = {"type": "task.rejected", "task": "x", "by": "ann", "reason": "tests missing"}
    assert summary("demo", rejected) == "[tt demo] task x rejected by ann (tests missing)"


def test_any_other_event_is_told_by_its_fields_on_one_short_line() -> None:
    deferred = {"type": "task.deferred", "ts": "1.0", "task": "a", "agent": "dev", "attempt": "1"}
    assert summary("demo", deferred) == "[tt demo] task.deferred task=a agent=dev attempt=1"
    noisy = {"type": "loop.error", "error": "boom\x1b[31m\ttraceback", "log": "x" * 1000}
    said = summary("demo", noisy)
    assert "\x1b" not in said and "\t" not in said and "\n" not in said
    assert len(said) == MAX_SUMMARY and said.endswith("…")


def test_no_control_or_direction_character_reaches_a_summary() -> None:
    """Review #6: C1 controls (U+009B is a terminal's CSI), bidi overrides and isolates (they
    turn a line around: "deploy" shown where "yolped" is written), and line separators."""
    tricky = "\u009b31m red \u202egnp.exe\u202c \u2066x\u2069 \u200fy\u2028z\u0085w"
    said = summary("demo", {"type": "task.failed", "task": "t", "error": tricky})
    assert said == "[tt demo] task t failed after its attempt:  31m red  gnp.exe   x   y z w"


def test_slack_text_has_its_markup_escaped() -> None:
    """Review #6: Slack reads `<!channel>` as a mention and `<https://evil|fix>` as a link."""
    said = summary("demo", {"type": "task.failed", "task": "t", "error": "<!channel> & <a|b>"})
    assert slack_text(said) == (
        "[tt demo] task t failed after its attempt: &lt;!channel&gt; &amp; &lt;a|b&gt;"
    )


def test_placeholders_are_filled_per_argument_and_never_split() -> None:
    fields = {"type": "task.failed", "task": "build", "agent": "dev"}
    argv = ["notify", "--title=tt {event}", "{task} on {agent}", "{summary}", "{other} {}", "{"]
    assert fill(argv, fields, "two words; rm -rf /") == [
        "notify",
        "--title=tt task.failed",
        "build on dev",
        "two words; rm -rf /",  # one argument, as it is: no shell ever reads it
        "{other} {}",
        "{",
    ]
    # One pass: a value that holds a placeholder is not filled again.
    assert fill(["{summary}"], fields, "see {task}") == ["see {task}"]
    assert fill(["{task}"], {"type": "town.completed"}, "") == [""]  # no task: empty
