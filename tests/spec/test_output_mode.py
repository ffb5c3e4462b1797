"""`output` of a [models.X] entry: how its CLI's output is read; presets pick their CLI's JSON
mode only where CLI-FACTS.md showed it safe (claude)."""

from __future__ import annotations

from reconciler.spec.desired import OutputMode
from reconciler.spec.presets import PRESETS
from tests.spec.test_loader import TOWN, load_texts, only_problem

TASKS = '[[tasks]]\nid = "t"\ndescription = "x"\nagent = "developer"\n'


def test_a_custom_model_names_its_output_parser() -> None:
    town = TOWN + '\n[models.mine]\ncommand = ["mine"]\noutput = "codex-jsonl"\n'
    (model,) = load_texts(town, TASKS).models
    assert model.output is OutputMode.CODEX_JSONL
    plain = load_texts(TOWN + '\n[models.mine]\ncommand = ["mine"]\n', TASKS).models[0]
    assert plain.output is OutputMode.TEXT


def test_an_unknown_output_is_reported_at_its_line() -> None:
    town = TOWN + '\n[models.mine]\ncommand = ["mine"]\noutput = "claude-xml"\n'
    problem = only_problem(town=town)
    assert problem.path == "$.models.mine.output"
    assert problem.line == town.count("\n")
    assert "claude-json" in problem.render()


def test_the_claude_preset_reads_its_json_and_the_others_stay_on_text() -> None:
    claude = PRESETS["claude"]
    assert claude.output is OutputMode.CLAUDE_JSON
    flag = claude.command.index("--output-format")
    # stream-json: every message is output as it comes (progress for the stall check); -p
    # accepts it only with --verbose (CLI-FACTS: rc 1 otherwise).
    assert claude.command[flag + 1] == "stream-json" and "--verbose" in claude.command
    others = {name: m.output for name, m in PRESETS.items() if name != "claude"}
    assert set(others.values()) == {OutputMode.TEXT}
