"""The fields of resume and stall detection: a model's `resume_args`, `session_args` (each with
`{session}`) and `resume_rejected`; an agent's `resume` and `stall_after`; a task's and
[town]'s `stall_after` (no progress), beside a model's `stall_after` (the grace after a stall
pattern)."""

from __future__ import annotations

from reconciler.agents.progress import stall_limit
from reconciler.spec.desired import Policy
from reconciler.spec.presets import PRESETS
from tests.spec.test_loader import TOWN, load_texts, only_problem

TASKS = '[[tasks]]\nid = "t"\ndescription = "x"\nagent = "developer"\n'
MODEL = '\n[models.mine]\ncommand = ["mine", "-"]\n'


def test_a_custom_model_says_how_its_cli_resumes() -> None:
    town = (
        TOWN
        + MODEL
        + (
            'resume_args = ["resume", "{session}"]\nsession_args = ["--id={session}"]\n'
            'resume_rejected = ["no such session"]\nstall_after = "30s"\n'
        )
    )
    (model,) = load_texts(town, TASKS).models
    assert model.resume_args == ("resume", "{session}")
    assert model.session_args == ("--id={session}",)
    assert model.resume_rejected == ("no such session",)
    assert model.stall_grace == 30.0  # a model's stall_after: the grace after a stall pattern


def test_resume_args_without_the_session_placeholder_are_reported_at_their_line() -> None:
    for key in ("resume_args", "session_args"):
        town = TOWN + MODEL + f'{key} = ["--resume", "{{id}}"]\n'
        problem = only_problem(town=town)
        assert problem.path == f"$.models.mine.{key}"
        assert problem.line == town.count("\n")
        assert "{session}" in problem.render() and "town.toml" in problem.render()


def test_a_bad_resume_rejected_pattern_is_reported_at_its_item() -> None:
    town = TOWN + MODEL + 'resume_rejected = ["ok", "(unclosed"]\n'
    problem = only_problem(town=town)
    assert problem.path == "$.models.mine.resume_rejected[1]"
    assert "invalid regular expression" in problem.message


def test_agents_tasks_and_the_town_set_stall_after_and_agents_resume() -> None:
    town = TOWN.replace('name = "demo"', 'name = "demo"\nstall_after = "5m"').replace(
        'model = "auggie"', 'model = "auggie"\nresume = false\nstall_after = "90s"'
    )
    desired = load_texts(town, TASKS + 'stall_after = "2s"\n')
    developer = desired.agent("developer")
    assert developer is not None and (developer.resume, developer.stall_after) == (False, 90.0)
    architect = desired.agent("architect")
    assert architect is not None and (architect.resume, architect.stall_after) == (True, None)
    assert desired.town.policy.stall_after == 300.0 and Policy().stall_after == 600.0
    assert desired.tasks[0].stall_after == 2.0
    assert desired.tasks[0].as_dict()["stall_after"] == 2.0


def test_stall_after_off_or_0_turns_the_check_off_and_a_bad_one_is_reported() -> None:
    town = TOWN.replace('name = "demo"', 'name = "demo"\nstall_after = "off"').replace(
        'model = "auggie"', 'model = "auggie"\nstall_after = 0'
    )
    desired = load_texts(town, TASKS + 'stall_after = "off"\n')
    developer = desired.agent("developer")
    assert developer is not None and developer.stall_after == 0.0
    assert desired.town.policy.stall_after == 0.0 and desired.tasks[0].stall_after == 0.0
    # Which one applies: the task's, else the agent's, else the town's; 0 means no check.
    assert stall_limit(0.0, 90.0, 600.0) is None and stall_limit(None, 0.0, 600.0) is None
    assert stall_limit(None, None, 0.0) is None and stall_limit(5, 0.0, 0.0) == 5.0
    assert stall_limit(None, None, 600.0) == 600.0
    problem = only_problem(tasks=TASKS + 'stall_after = "soon"\n')
    assert problem.path == "$.tasks[0].stall_after"
    problem = only_problem(
        town=TOWN.replace('model = "auggie"', 'model = "auggie"\nstall_after = "of"')
    )
    assert problem.path == "$.agents.developer.stall_after"
    # A model's stall_after, its grace after a stall pattern, cannot be off.
    problem = only_problem(town=TOWN + MODEL + "stall_after = 0\n")
    assert problem.path == "$.models.mine.stall_after" and "greater than zero" in problem.message


def test_unset_fields_leave_the_spec_hashes_as_they_were() -> None:
    desired = load_texts(TOWN, TASKS)
    assert "stall_after" not in desired.tasks[0].as_dict()
    agent = desired.agent("developer")
    assert agent is not None
    off = TOWN.replace('model = "auggie"', 'model = "auggie"\nresume = false')
    changed = load_texts(off, TASKS)
    again = changed.agent("developer")
    assert again is not None and again.spec_hash() != agent.spec_hash()


def test_the_presets_resume_where_their_cli_can() -> None:
    assert PRESETS["claude"].resume_args == ("--resume", "{session}")
    assert PRESETS["claude"].session_args == ("--session-id", "{session}")
    assert PRESETS["codex"].resume_args == ("resume", "{session}")
    assert PRESETS["codex"].session_args == ()  # codex takes no session id of ours
    assert PRESETS["gemini"].resume_args == ("--resume", "{session}")
    assert PRESETS["copilot"].resume_args == ("--resume={session}",)
    for name in ("auggie", "aider", "sim"):
        assert PRESETS[name].resume_args == ()
