"""town.toml's [git] and the task field `touches` (issue 11): what the loader makes of them, how
it words what is wrong, that the schemas accept all the checks accept, and that a task without
`touches` keeps the spec hash it had before the field existed."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

from reconciler.spec import loader, schemacheck
from reconciler.spec.desired import TaskSpec
from reconciler.spec.gitcheck import author_problem, glob_problem, ref_problem
from reconciler.spec.gitsettings import GitSettings, MergeMode, OnConflict, Strategy
from reconciler.spec.taskcheck import check_tasks
from reconciler.spec.tomldoc import TomlDoc
from reconciler.town import TownPaths

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOWN = '[town]\nname = "demo"\n\n[agents.dev]\nmodel = "sim"\n'
TASK = '[[tasks]]\nid = "a"\nagent = "dev"\ndescription = "do it"\n'
FULL_GIT = """\
[git]
repo = "../project"
base = "release/1.x"
merge = "manual"
strategy = "merge"
on_conflict = "redo"
checks = ["python -m pytest -q", "ruff check ."]
check_timeout = "10m"
push = "origin"
author = "Tiny Town <tt@example.com>"
keep_branches = true
"""


def git_of(town: str) -> GitSettings | None:
    result = loader.check_texts(town, None)
    assert result.desired is not None, [p.render() for p in result.problems]
    return result.desired.git


def rendered(town: str, tasks: str | None = None) -> list[str]:
    result = loader.check_texts(town, tasks)
    assert result.desired is None, "expected problems, the files are valid"
    return [p.render() for p in result.problems]


def schema_accepts(which: str, text: str) -> bool:
    """Both the compiled predicate and jsonschema accept the parsed `text`."""
    data = tomllib.loads(text)
    full = jsonschema.Draft202012Validator(schemacheck.load_schema(which)).is_valid(data)
    return full and schemacheck.fast_check(which)(data)


# -- [git] ---------------------------------------------------------------------------------------


def test_without_git_work_products_are_off() -> None:
    assert git_of(TOWN) is None


def test_an_empty_git_table_turns_them_on_with_the_defaults() -> None:
    git = git_of(TOWN + "\n[git]\n")
    assert git == GitSettings()
    assert (git.repo, git.base, git.merge, git.strategy, git.on_conflict) == (
        ".",
        "main",
        MergeMode.QUEUE,
        Strategy.REBASE,
        OnConflict.RESOLVE,
    )
    assert (git.checks, git.check_timeout, git.push, git.author, git.keep_branches) == (
        (),
        600.0,
        None,
        "tt <tt@localhost>",
        False,
    )


def test_every_field_is_read() -> None:
    assert git_of(TOWN + FULL_GIT) == GitSettings(
        repo="../project",
        base="release/1.x",
        merge=MergeMode.MANUAL,
        strategy=Strategy.MERGE,
        on_conflict=OnConflict.REDO,
        checks=("python -m pytest -q", "ruff check ."),
        check_timeout=600.0,
        push="origin",
        author="Tiny Town <tt@example.com>",
        keep_branches=True,
    )
    assert git_of(TOWN + '[git]\ncheck_timeout = 90\nrepo = "/srv/repo"\n') == GitSettings(
        repo="/srv/repo", check_timeout=90.0
    )


def test_git_before_the_other_tables_and_inline() -> None:
    town = '[town]\nname = "demo"\ngit = { base = "trunk" }\n'
    # (An inline table inside [town] is a key of [town]; at the top it is [git].)
    assert rendered(town)[0].startswith("town.toml:3: $.town.git: unknown key 'git'")
    assert git_of('git = { base = "trunk" }\n' + TOWN) == GitSettings(base="trunk")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('repo = ""', "$.git.repo: must not be empty"),
        ('repo = "  "', '$.git.repo: repo is blank (name the repository\'s folder, like ".")'),
        ("repo = 1", "$.git.repo: expected a string, got an integer (1)"),
        ('base = "my branch"', 'invalid branch name "my branch": a git ref name cannot contain a'),
        ('base = "a..b"', "invalid branch name \"a..b\": a git ref name cannot contain '..'"),
        ('base = "-main"', "invalid branch name \"-main\": it starts with '-'"),
        ('base = "main.lock"', "no part of a git ref name ends with '.lock'"),
        ('base = "feat/.x"', "no part of a git ref name starts with '.'"),
        ('base = "a:b"', "a git ref name cannot contain ':'"),
        ('base = "wip*"', "a git ref name cannot contain '*'"),
        ('base = "main/"', "cannot start or end with '/'"),
        ('base = "main."', "does not end with '.'"),
        ('base = "@"', "'@' alone"),
        ('base = "a@{1}"', "'@{'"),
        ('base = ""', "$.git.base: must not be empty"),
        ('merge = "queu"', """$.git.merge: must be one of "queue", "manual", got a string"""),
        ('strategy = "squash"', 'must be one of "rebase", "merge", got a string ("squash")'),
        ('on_conflict = "resolv"', "did you mean 'resolve'?"),
        ("checks = []", None),
        ('checks = "pytest"', '$.git.checks: expected an array, got a string ("pytest")'),
        ('checks = [""]', "$.git.checks[0]: must not be empty"),
        ('checks = ["ok", "   "]', "$.git.checks[1]: a check is blank (give the command to run)"),
        ("checks = [1]", "$.git.checks[0]: expected a string, got an integer (1)"),
        ('check_timeout = "10"', "$.git.check_timeout: invalid duration '10': a string needs a"),
        ('check_timeout = "ten minutes"', "$.git.check_timeout: invalid duration"),
        ('check_timeout = "0s"', "$.git.check_timeout: check_timeout must be greater than zero"),
        ('check_timeout = "31d"', "it must be at most 30 days"),
        ("check_timeout = -1", "$.git.check_timeout: invalid duration -1: it must not be negative"),
        ('push = "-f"', "invalid remote name \"-f\": it starts with '-'"),
        ('push = "my remote"', 'invalid remote name "my remote": a git ref name cannot contain'),
        ('author = "tt"', 'invalid author "tt": expected the form Name <email> (for example'),
        ('author = "<tt@x>"', "the name before <email> is missing"),
        ('author = "tt <>"', "the email between < and > must be non-empty, with no spaces"),
        ('author = "tt <a b@x>"', "must be non-empty, with no spaces"),
        ('author = "tt <a@x> extra"', "expected the form Name <email>"),
        ('author = "t<t <a@x>"', "expected the form Name <email>"),
        ('keep_branches = "yes"', "$.git.keep_branches: expected true or false, got a string"),
        ('bsae = "main"', "$.git.bsae: unknown key 'bsae' (did you mean 'base'?)"),
        ("chekcs = []", "$.git.chekcs: unknown key 'chekcs' (did you mean 'checks'?)"),
    ],
)
def test_each_bad_value_is_named_with_file_line_and_path(line: str, expected: str | None) -> None:
    town = f"{TOWN}\n[git]\n{line}\n"
    if expected is None:  # (no checks at all is valid)
        assert git_of(town) == GitSettings()
        return
    [problem] = rendered(town)
    assert problem.startswith("town.toml:8: $.git."), problem
    assert expected in problem, problem


def test_git_must_be_a_table() -> None:
    assert rendered('git = "on"\n' + TOWN) == [
        'town.toml:1: $.git: expected a table, got a string ("on")'
    ]


def test_every_problem_of_the_table_at_once() -> None:
    town = f'{TOWN}\n[git]\nbase = "a b"\nmerge = "now"\nauthor = "x"\npush = ".."\n'
    assert [p.split(":", 2)[1] for p in rendered(town)] == ["8", "9", "10", "11"]


@pytest.mark.parametrize(
    "name", ["main", "release/1.x", "feature/auth-v2", "tt/town/task", "v1.0", "a.b", "UPPER_x"]
)
def test_valid_branch_names(name: str) -> None:
    assert ref_problem(name) is None
    assert git_of(f'{TOWN}[git]\nbase = "{name}"\npush = "{name}"\n') == GitSettings(
        base=name, push=name
    )


@pytest.mark.parametrize(
    "author", ["tt <tt@localhost>", "Ada Lovelace <ada@example.com>", "bot-1 <b+x@h.io>", "é <é@x>"]
)
def test_valid_authors(author: str) -> None:
    assert author_problem(author) is None
    assert git_of(f'{TOWN}[git]\nauthor = "{author}"\n') == GitSettings(author=author)


def test_the_schema_accepts_every_git_table_the_checks_accept() -> None:
    for town in (TOWN + "[git]\n", TOWN + FULL_GIT, TOWN + "[git]\ncheck_timeout = 0.5\n"):
        assert git_of(town) is not None
        assert schema_accepts("town", town), town


def test_a_ref_name_with_a_control_character_is_refused() -> None:
    assert ref_problem("ma\tin") == "a git ref name cannot contain a control character"
    assert ref_problem("a\\b") == "a git ref name cannot contain '\\'"
    assert ref_problem(" ") == "it is blank"


# -- touches -------------------------------------------------------------------------------------


def test_touches_become_the_specs() -> None:
    tasks = TASK + 'touches = ["src/auth/**", "docs/auth.md", "./README*", "a b/[cd].py"]\n'
    result = loader.check_texts(TOWN, tasks)
    assert result.desired is not None, [p.render() for p in result.problems]
    (spec,) = result.desired.tasks
    assert spec.touches == ("src/auth/**", "docs/auth.md", "./README*", "a b/[cd].py")
    assert schema_accepts("tasks", tasks)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            '"/etc/passwd"',
            'invalid glob "/etc/passwd": it is absolute: write it relative to the '
            'repository (for example "etc/passwd")',
        ),
        ('"C:/src"', 'invalid glob "C:/src": it is absolute'),
        ('"\\\\server\\\\x"', "it is absolute"),
        (
            '"../other/**"',
            "invalid glob \"../other/**\": a '..' segment would leave the repository",
        ),
        ('"src/../../x"', "a '..' segment would leave the repository"),
        ('"src\\\\..\\\\x"', "a '..' segment would leave the repository"),
        ('"-rf"', "invalid glob \"-rf\": it starts with '-' (git would read it as an option)"),
        ('":(top)src"', "it starts with ':' (git would read it as pathspec magic)"),
        ('"   "', 'invalid glob "   ": it is blank'),
        ('"a\\nb"', "it holds a control character"),
        ('""', "$.tasks[0].touches[1]: must not be empty"),
        ("1", "$.tasks[0].touches[1]: expected a string, got an integer (1)"),
    ],
)
def test_each_bad_glob_is_named_with_file_line_and_index(value: str, expected: str) -> None:
    tasks = f'{TASK}touches = [\n  "src/**",\n  {value},\n]\n'
    [problem] = rendered(TOWN, tasks)
    # (The line of an item of an array is its key's, as for every array.)
    assert problem.startswith("tasks.toml:5: $.tasks[0].touches[1]: "), problem
    assert expected in problem, problem


def test_a_glob_that_only_looks_like_dot_dot_is_inside() -> None:
    for glob in ("..foo", "a/..b/c", "src/...", "x..y/**", "~/x"):
        assert glob_problem(glob) is None, glob


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[]", "$.tasks[0].touches: must not be empty"),
        ('"src/**"', '$.tasks[0].touches: expected an array, got a string ("src/**")'),
    ],
)
def test_touches_is_a_non_empty_array(value: str, expected: str) -> None:
    assert rendered(TOWN, f"{TASK}touches = {value}\n") == [f"tasks.toml:5: {expected}"]


def test_touches_of_the_second_task_name_its_index() -> None:
    tasks = f'{TASK}\n[[tasks]]\nid = "b"\nagent = "dev"\ndescription = "x"\ntouches = ["/x"]\n'
    [problem] = rendered(TOWN, tasks)
    assert problem.startswith("tasks.toml:10: $.tasks[1].touches[0]: invalid glob"), problem


# -- touches and the spec hash -------------------------------------------------------------------

# `TaskSpec.spec_hash` of these specs on main before `touches` existed (commit a5b426f): Redis
# holds such hashes, and a changed one would re-run or flag every task of every town.
HASHES_BEFORE = [
    (
        TaskSpec(
            id="build",
            description="Build it",
            agent="w",
            depends_on=("a", "b"),
            tags=("x",),
            retries=2,
            timeout=60.0,
            priority=3,
        ),
        "7b150284c82d45d0",
    ),
    (TaskSpec(id="g"), "16adf25487bd78a0"),
]


@pytest.mark.parametrize(("spec", "before"), HASHES_BEFORE)
def test_a_task_without_touches_hashes_as_before(spec: TaskSpec, before: str) -> None:
    assert spec.spec_hash() == before
    assert "touches" not in spec.canonical_json() and "touches" not in spec.as_dict()
    scoped = dataclasses.replace(spec, touches=("src/**",))
    assert scoped.spec_hash() != before
    assert scoped.canonical_json().endswith(',"touches":["src/**"]}')


def test_a_loaded_task_without_touches_hashes_as_before() -> None:
    result = loader.check_texts(TOWN, TASK)  # (the hash the loader on a5b426f gave this task)
    assert result.desired is not None
    assert result.desired.tasks[0].spec_hash() == "8206966d824d5c08"


def test_touches_round_trip_through_the_fast_constructor_and_fields() -> None:
    spec = TaskSpec(id="x", description="d", agent="dev", touches=("src/**", "a.md"))
    fields = spec.fields()
    assert fields["touches"] == ("src/**", "a.md") and len(fields) == len(
        dataclasses.fields(TaskSpec)
    )
    spec.spec_hash()  # (cached in the instance: not one of its fields)
    again = TaskSpec.checked(spec.fields())
    assert again == spec and again.spec_hash() == spec.spec_hash()
    assert again.canonical_json() == spec.canonical_json()


def both_readers(tasks: str) -> tuple[list[tuple[TaskSpec, ...]], list[list[str]]]:
    """The specs `check_tasks` makes of `tasks` on the typed path, then on the lenient one, and
    the paths of the problems each reported."""
    made, problems = [], []
    for typed in (True, False):
        doc = TomlDoc("tasks.toml", tasks, "digest")
        data = doc.parse()
        assert data is not None
        made.append(check_tasks(doc, data, None, typed=typed)[1])
        problems.append([p.path for p in doc.problems])
    return made, problems


def test_the_typed_and_the_lenient_readers_make_the_same_spec() -> None:
    """A file the schema accepted takes the typed path (`_typed_spec`), any other the lenient
    one: both give a spec its touches, and check them."""
    made, problems = both_readers(f'{TASK}touches = ["src/**", "/abs"]\n')
    assert problems == [["$.tasks[0].touches[1]"]] * 2
    assert made[0] == made[1] and made[0][0].touches == ("src/**", "/abs")
    assert made[0][0].fields() == made[1][0].fields()


def test_the_typed_reader_makes_every_field_as_the_lenient_one() -> None:
    """`_typed_spec` lays a table over the defaults in one update: every field, the arrays as
    tuples, durations and dollars read, and a table's informational keys (result, error,
    attempts) left out, as the lenient reader makes them."""
    tasks = (
        '[[tasks]]\nid = "a"\nagent = "dev"\ndescription = "do it"\nstatus = "Done"\n'
        'depends_on = ["b"]\ntags = []\nretries = 3\ntimeout = "90s"\npriority = 2\n'
        'touches = ["src/**"]\napprove = true\nrun_if = "always"\nmax_cost_usd = 1.5\n'
        'stall_after = "5m"\nresult = "ok"\nerror = ""\nattempts = 1\n\n'
        '[[tasks]]\nid = "b"\nrole = "qa"\nparent = "a"\nsequential = true\n'
        'description = "b"\nrun_if = "failure"\n'
    )
    made, problems = both_readers(tasks)
    assert made[0] == made[1] and problems[0] == problems[1]
    for a, b in zip(*made, strict=True):
        assert a.fields() == b.fields() and len(a.fields()) == len(dataclasses.fields(TaskSpec))
        assert a.canonical_json() == b.canonical_json()
    first = made[0][0]
    assert (first.depends_on, first.tags, first.touches) == (("b",), (), ("src/**",))
    assert (first.timeout, first.stall_after, first.max_cost_usd) == (90.0, 300.0, 1.5)


def test_a_reused_check_keeps_touches_and_still_refuses_a_bad_one(tmp_path: Path) -> None:
    (tmp_path / "town.toml").write_text(TOWN + "[git]\n")
    tasks = f'{TASK}touches = ["src/**"]\n\n[[tasks]]\nid = "b"\nagent = "dev"\ndescription = "b"\n'
    (tmp_path / "tasks.toml").write_text(tasks)
    paths = TownPaths(tmp_path)
    first = loader.check(paths)
    reuse = first.reuse()
    assert first.desired is not None and reuse is not None
    assert reuse.specs[0]["touches"] == ("src/**",)
    again = loader.check(paths, reuse)
    assert again.desired == first.desired and again.known
    (tmp_path / "tasks.toml").write_text(
        tasks.replace('description = "b"\n', 'description = "b"\ntouches = ["../x"]\n')
    )
    bad = loader.check(paths, reuse)
    assert [p.render() for p in bad.problems] == [
        "tasks.toml:11: $.tasks[1].touches[0]: invalid glob \"../x\": a '..' segment would "
        "leave the repository"
    ]


@pytest.mark.parametrize(
    "url",
    [
        "https://bot:s3cret@git.example.com/app.git",
        "ssh://git@host/app.git",
        "git@github.com:org/app.git",
        "bot:s3cret@host/app.git",
        "/srv/git/app.git",
        "../app.git",
        "~/app.git",
    ],
)
def test_push_must_name_a_remote_a_url_or_path_is_refused_never_repeated(url: str) -> None:
    [problem] = rendered(f'{TOWN}\n[git]\npush = "{url}"\n')
    assert problem.startswith("town.toml:8: $.git.push: push must name a git remote"), problem
    assert "git remote add" in problem
    assert "s3cret" not in problem and url not in problem


def test_manual_merge_with_an_agent_on_a_node_is_refused_at_the_merge_line() -> None:
    town = '[town]\nname = "demo"\n\n[agents.dev]\nmodel = "sim"\nnode = "far"\n'
    [problem] = rendered(f'{town}\n[git]\npush = "origin"\nmerge = "manual"\n')
    assert problem.startswith('town.toml:10: $.git.merge: merge = "manual" cannot work across'), (
        problem
    )
    assert "agent dev runs on node far" in problem
    assert git_of(f'{town}\n[git]\npush = "origin"\n').merge == MergeMode.QUEUE  # queue: valid
    assert git_of(f'{TOWN}\n[git]\nmerge = "manual"\n').merge == MergeMode.MANUAL  # no node
