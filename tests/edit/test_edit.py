"""File edits: only the intended lines change, a failed edit changes nothing, no edit is lost."""

from __future__ import annotations

import difflib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler import edit
from reconciler.errors import NotFound, TtError
from reconciler.filelock import exclusive_lock
from reconciler.spec.names import NAME_RE
from reconciler.town import TownPaths

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]

TOWN = """\
# The roster. Edit me, then `tt apply`.
[town]
name = "demo"
redis = "embedded"        # TT_REDIS_URL overrides

# Designs everything first.
[agents.architect]
model = "claude"          # preset
role = "architect"

# The pool that does the work.
[agents.worker]
model='claude'
replicas = 3              # worker-1..worker-3

# Our own CLI.
[models.my-llm]
command = ["my-llm", "--print"]
prompt = "stdin"
"""

TASKS = """\
# Auth pipeline: design, then build, then test.
[meta]
description = "Auth API Pipeline"
default_agent = "worker"

# Step 1.
[[tasks]]
id = "design"
description = "Design a REST API"
agent = "architect"
status = "pending"    # run it

[[tasks]]
id="implement"
description = \"\"\"
Implement the API.
Follow the "design" task's notes.
\"\"\"
agent = "worker"
parent = "design"
tags = ["backend"]

# Step 3 (kept last).
[[tasks]]
id = 'test'
description = 'Write tests'
parent = "implement"
"""


@pytest.fixture
def town(tmp_path: Path) -> TownPaths:
    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_text(TASKS)
    return TownPaths(tmp_path)


def tasks_text(town: TownPaths) -> str:
    return town.tasks_file.read_text()


def town_text(town: TownPaths) -> str:
    return town.town_file.read_text()


def changed_lines(before: str, after: str) -> list[str]:
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [d for d in diff if d[:1] in "+-" and not d.startswith(("+++", "---"))]


def temp_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tt-tmp-*"))


# -- tasks.toml verbs --------------------------------------------------------------------------


def test_append_task_adds_one_table_and_leaves_the_rest(town: TownPaths) -> None:
    new_id = edit.append_task(town, description="Review the API", agent="architect", after="test")
    assert new_id == "t-review-the-api"
    assert tasks_text(town) == TASKS + (
        '\n[[tasks]]\nid = "t-review-the-api"\ndescription = "Review the API"\n'
        'agent = "architect"\nstatus = "pending"\nparent = "test"\n'
    )


def test_append_task_with_explicit_id_role_and_extra_fields(town: TownPaths) -> None:
    edit.append_task(
        town,
        description="Ship it",
        role="dev",
        task_id="ship",
        extra={"depends_on": ["design", "test"], "retries": 1},
    )
    task = tomllib.loads(tasks_text(town))["tasks"][-1]
    assert task == {
        "id": "ship",
        "description": "Ship it",
        "role": "dev",
        "status": "pending",
        "depends_on": ["design", "test"],
        "retries": 1,
    }


def test_append_task_creates_a_missing_tasks_file_without_meta(town: TownPaths) -> None:
    town.tasks_file.unlink()
    edit.append_task(town, description="First thing")
    assert tasks_text(town) == (
        '[[tasks]]\nid = "t-first-thing"\ndescription = "First thing"\nstatus = "pending"\n'
    )
    assert (town.state_dir / "edit.lock").is_file()


def test_append_task_after_only_comments_gets_a_separating_blank_line(tmp_path: Path) -> None:
    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_text('[meta]\ndescription = "x"\n# [[tasks]]\n# id = "a"\n')
    edit.append_task(TownPaths(tmp_path), description="Go", task_id="go")
    assert (tmp_path / "tasks.toml").read_text() == (
        '[meta]\ndescription = "x"\n# [[tasks]]\n# id = "a"\n\n'
        '[[tasks]]\nid = "go"\ndescription = "Go"\nstatus = "pending"\n'
    )


def test_append_task_to_a_file_without_final_newline(tmp_path: Path) -> None:
    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_text('[[tasks]]\nid = "a"')
    edit.append_task(TownPaths(tmp_path), description="B")
    assert (tmp_path / "tasks.toml").read_text() == (
        '[[tasks]]\nid = "a"\n\n[[tasks]]\nid = "t-b"\ndescription = "B"\nstatus = "pending"\n'
    )


@pytest.mark.parametrize(
    "text",
    [
        'Line one\nline "two" with \\ backslash\n\ttabbed',
        'ends with quotes ""',
        'three """ quotes """ inside\n',
        "\nstarts with a newline",
        "windows\r\nline ends",
        "lone\rcarriage return",
        "control \x01 char and unicode é 日本",
    ],
)
def test_descriptions_round_trip(town: TownPaths, text: str) -> None:
    new_id = edit.append_task(town, description=text)
    loaded = {t["id"]: t for t in tomllib.loads(tasks_text(town))["tasks"]}
    assert loaded[new_id]["description"] == text


def test_multi_line_description_is_written_readably(town: TownPaths) -> None:
    edit.append_task(town, description="Step one\nStep two", task_id="steps")
    assert 'description = """Step one\nStep two"""\n' in tasks_text(town)


def test_explicit_id_that_exists_is_refused_naming_file_and_id(town: TownPaths) -> None:
    with pytest.raises(TtError) as err:
        edit.append_task(town, description="again", task_id="design")
    assert str(town.tasks_file) in str(err.value)
    assert "'design'" in str(err.value)
    assert tasks_text(town) == TASKS


def test_invalid_explicit_id_and_unknown_parent_are_refused(town: TownPaths) -> None:
    with pytest.raises(TtError, match="invalid task id"):
        edit.append_task(town, description="x", task_id="Bad Id")
    with pytest.raises(NotFound) as err:
        edit.append_task(town, description="x", after="desing")
    assert err.value.hint == "did you mean 'design'?"
    assert tasks_text(town) == TASKS


def test_set_task_status_changes_only_that_line(town: TownPaths) -> None:
    edit.set_task_status(town, "design", "cancelled")
    assert tasks_text(town) == TASKS.replace(
        'status = "pending"    # run it', 'status = "cancelled"    # run it'
    )


def test_set_task_status_adds_the_key_before_trailing_comments(town: TownPaths) -> None:
    edit.set_task_status(town, "implement", "cancelled")
    assert tasks_text(town) == TASKS.replace(
        'tags = ["backend"]\n', 'tags = ["backend"]\nstatus = "cancelled"\n'
    )


def test_set_task_status_unknown_id_suggests_a_close_one(town: TownPaths) -> None:
    with pytest.raises(NotFound) as err:
        edit.set_task_status(town, "implemnt", "cancelled")
    assert err.value.hint == "did you mean 'implement'?"


def test_unchanged_status_does_not_rewrite_the_file(town: TownPaths) -> None:
    before = os.stat(town.tasks_file)
    edit.set_task_status(town, "design", "pending")
    after = os.stat(town.tasks_file)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_write_back_diff_has_only_status_and_result_lines(town: TownPaths) -> None:
    changed = edit.write_back(
        town,
        {
            "design": {"status": "completed", "result": "API designed"},
            "implement": {"status": "running"},
            "test": {"status": None},  # not in the file: nothing to remove
            "made-with-no-save": {"status": "completed"},
        },
    )
    assert changed == ["design", "implement"]
    after = tasks_text(town)
    assert changed_lines(TASKS, after) == [
        '-status = "pending"    # run it',
        '+status = "completed"    # run it',
        '+result = "API designed"',
        '+status = "running"',
    ]
    assert after == TASKS.replace(
        'status = "pending"    # run it\n',
        'status = "completed"    # run it\nresult = "API designed"\n',
    ).replace('tags = ["backend"]\n', 'tags = ["backend"]\nstatus = "running"\n')


def test_write_back_removes_none_fields_and_writes_multi_line_results(town: TownPaths) -> None:
    edit.write_back(town, {"design": {"status": None, "result": "line 1\nline 2"}})
    assert tasks_text(town) == TASKS.replace(
        'status = "pending"    # run it\n', 'result = """line 1\nline 2"""\n'
    )
    edit.write_back(town, {"design": {"result": None}})
    assert tasks_text(town) == TASKS.replace('status = "pending"    # run it\n', "")


def test_write_back_keeps_indentation_and_crlf(tmp_path: Path) -> None:
    (tmp_path / "town.toml").write_text(TOWN)
    original = b'[[tasks]]\r\n  id = "a"\r\n  status = "pending"\r\n\r\n[[tasks]]\r\n  id = "b"\r\n'
    (tmp_path / "tasks.toml").write_bytes(original)
    edit.write_back(TownPaths(tmp_path), {"a": {"status": "done"}, "b": {"result": "ok"}})
    assert (tmp_path / "tasks.toml").read_bytes() == original.replace(
        b'"pending"', b'"done"'
    ).replace(b'id = "b"\r\n', b'id = "b"\r\n  result = "ok"\r\n')


# -- id generation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("Build the login UI", "t-build-the-login-ui"),
        ("Fix bug #42 (urgent!)", "t-fix-bug-42-urgent"),
        (
            "Implement the auth API from the architect's design",
            "t-implement-the-auth-api-from-the-architects",
        ),
        ("Don’t panic", "t-dont-panic"),
        ("Café crème: déjà vu", "t-cafe-creme-deja-vu"),
        ("v1.2 release notes", "t-v1-2-release-notes"),
        ("日本語のタスク", "t-task"),
        ("", "t-task"),
        ("  --- !!! ", "t-task"),
        ("x" * 100, "t-" + "x" * 46),
    ],
)
def test_new_task_id(description: str, expected: str) -> None:
    assert edit.new_task_id(description, ()) == expected


def test_new_task_id_counts_up_past_taken_ids() -> None:
    taken = {"t-build", "t-build-2", "t-build-3"}
    assert edit.new_task_id("Build", taken) == "t-build-4"
    assert edit.new_task_id("Build!", {"t-build"}) == "t-build-2"


@pytest.mark.parametrize(
    "description", ["a" * 200, "word " * 40, "ÀÉÎ " * 30, "9 lives", "-lead", "x.y..z"]
)
def test_generated_ids_are_valid_names_even_when_taken(description: str) -> None:
    taken: set[str] = set()
    for _ in range(12):
        new_id = edit.new_task_id(description, taken)
        assert NAME_RE.match(new_id) and len(new_id) <= 63 and ".." not in new_id
        assert new_id not in taken
        taken.add(new_id)


def test_appended_ids_are_unique_against_the_file(town: TownPaths) -> None:
    ids = [edit.append_task(town, description="Write tests") for _ in range(3)]
    assert ids == ["t-write-tests", "t-write-tests-2", "t-write-tests-3"]
    taken_elsewhere = edit.append_task(town, description="Deploy", taken={"t-deploy"})
    assert taken_elsewhere == "t-deploy-2"


# -- town.toml verbs ---------------------------------------------------------------------------


def test_add_agent_goes_after_the_last_agent_above_the_next_section_comment(
    town: TownPaths,
) -> None:
    edit.add_agent(town, "reviewer", {"model": "codex", "role": "reviewer", "env_from": ["KEY"]})
    assert town_text(town) == TOWN.replace(
        "# worker-1..worker-3\n\n",
        "# worker-1..worker-3\n\n"
        '[agents.reviewer]\nmodel = "codex"\nrole = "reviewer"\nenv_from = ["KEY"]\n\n',
    )


def test_add_agent_keeps_a_dense_file_dense(tmp_path: Path) -> None:
    dense = (
        '[town]\nname = "x"\n\n[agents.a]\nmodel = "sim"\n[agents.b]\nmodel = "sim"\n\n'
        '[models.m]\ncommand = ["m"]\n'
    )
    (tmp_path / "town.toml").write_text(dense)
    edit.add_agent(TownPaths(tmp_path), "c", {"model": "sim", "env": {"A": "1"}})
    assert (tmp_path / "town.toml").read_text() == dense.replace(
        '[agents.b]\nmodel = "sim"\n',
        '[agents.b]\nmodel = "sim"\n[agents.c]\nmodel = "sim"\nenv = {A = "1"}\n',
    )


def test_first_agent_goes_right_after_the_town_table(tmp_path: Path) -> None:
    text = '[town]\nname = "x"\n\n# custom CLIs\n[models.m]\ncommand = ["m"]\n'
    (tmp_path / "town.toml").write_text(text)
    edit.add_agent(TownPaths(tmp_path), "solo", {"model": "m"})
    assert (tmp_path / "town.toml").read_text() == text.replace(
        "\n# custom", '\n[agents.solo]\nmodel = "m"\n\n# custom'
    )


def test_agent_names_with_dots_are_quoted(town: TownPaths) -> None:
    edit.add_agent(town, "worker.v2", {"model": "sim"})
    assert '[agents."worker.v2"]\n' in town_text(town)
    assert tomllib.loads(town_text(town))["agents"]["worker.v2"] == {"model": "sim"}


def test_add_agent_refuses_existing_reserved_and_invalid_names(town: TownPaths) -> None:
    with pytest.raises(TtError, match="agent 'worker' already exists"):
        edit.add_agent(town, "worker", {"model": "sim"})
    with pytest.raises(TtError, match="reserved"):
        edit.add_agent(town, "conductor", {"model": "sim"})
    with pytest.raises(TtError, match="invalid agent name"):
        edit.add_agent(town, "Bad Name", {"model": "sim"})
    assert town_text(town) == TOWN


def test_remove_agent_takes_its_heading_comment_and_keeps_the_next(town: TownPaths) -> None:
    edit.remove_agent(town, "architect")
    assert town_text(town) == TOWN.replace(
        '# Designs everything first.\n[agents.architect]\nmodel = "claude"          # preset\n'
        'role = "architect"\n\n',
        "",
    )
    edit.remove_agent(town, "worker")
    assert town_text(town) == (
        '# The roster. Edit me, then `tt apply`.\n[town]\nname = "demo"\n'
        'redis = "embedded"        # TT_REDIS_URL overrides\n\n'
        '# Our own CLI.\n[models.my-llm]\ncommand = ["my-llm", "--print"]\nprompt = "stdin"\n'
    )


def test_remove_the_last_table_of_the_file_leaves_no_trailing_blank(tmp_path: Path) -> None:
    text = (
        '[town]\nname = "x"\n\n[agents.a]\nmodel = "sim"\n\n'
        '[agents.b]\nmodel = "sim"\n[agents.b.env]\nX = "1"\n'
    )
    (tmp_path / "town.toml").write_text(text)
    edit.remove_agent(TownPaths(tmp_path), "b")
    assert (
        tmp_path / "town.toml"
    ).read_text() == '[town]\nname = "x"\n\n[agents.a]\nmodel = "sim"\n'


def test_remove_unknown_agent_suggests_a_close_one(town: TownPaths) -> None:
    with pytest.raises(NotFound) as err:
        edit.remove_agent(town, "wroker")
    assert err.value.hint == "did you mean 'worker'?"


def test_set_agent_fields_toggles_in_place(town: TownPaths) -> None:
    edit.set_agent_fields(town, "worker", {"suspended": True})
    suspended = TOWN.replace("# worker-1..worker-3\n", "# worker-1..worker-3\nsuspended = true\n")
    assert town_text(town) == suspended
    edit.set_agent_fields(town, "worker", {"suspended": False, "model": "codex"})
    assert town_text(town) == suspended.replace("true", "false").replace(
        "model='claude'", 'model="codex"'
    )
    edit.set_agent_fields(town, "worker", {"suspended": None})
    assert town_text(town) == TOWN.replace("model='claude'", 'model="codex"')


def test_inline_agents_are_edited_too(tmp_path: Path) -> None:
    (tmp_path / "town.toml").write_text('[town]\nname = "x"\n\n[agents]\na = { model = "sim" }\n')
    paths = TownPaths(tmp_path)
    edit.add_agent(paths, "b", {"model": "sim"})
    edit.set_agent_fields(paths, "a", {"suspended": True})
    edit.remove_agent(paths, "b")
    assert tomllib.loads(town_text(paths))["agents"] == {"a": {"model": "sim", "suspended": True}}


# -- the transaction: validation, atomicity, locking --------------------------------------------


def test_validate_gets_the_candidate_pair(town: TownPaths) -> None:
    seen: list[tuple[str, str]] = []
    edit.append_task(town, description="X", validate=lambda a, b: seen.append((a, b)))
    edit.add_agent(town, "x", {"model": "sim"}, validate=lambda a, b: seen.append((a, b)))
    assert seen[0] == (TOWN, tasks_text(town))
    assert seen[1] == (town_text(town), tasks_text(town))


def test_a_failing_validation_leaves_the_file_byte_identical(town: TownPaths) -> None:
    def reject(town_text: str, tasks_text: str) -> None:
        raise TtError("tasks.toml:3: $.tasks[3].agent: unknown agent")

    before = os.stat(town.tasks_file)
    with pytest.raises(TtError, match="unknown agent"):
        edit.append_task(town, description="x", agent="nobody", validate=reject)
    with pytest.raises(TtError, match="unknown agent"):
        edit.remove_agent(town, "worker", validate=reject)
    assert tasks_text(town) == TASKS and town_text(town) == TOWN
    assert os.stat(town.tasks_file).st_ino == before.st_ino
    assert temp_files(town.root) == []


def test_invalid_toml_is_not_edited_and_the_error_says_where(town: TownPaths) -> None:
    town.tasks_file.write_text('[[tasks]]\nid = "a"\nstatus = \n')
    with pytest.raises(TtError, match=r"tasks\.toml:3:\d+: cannot edit it"):
        edit.set_task_status(town, "a", "done")


def test_missing_town_file_is_an_error_with_a_hint(town: TownPaths) -> None:
    town.town_file.unlink()
    with pytest.raises(TtError) as err:
        edit.add_agent(town, "a", {"model": "sim"})
    assert err.value.hint is not None and "tt init" in err.value.hint


def test_a_failed_rename_leaves_the_old_file_and_no_temp(
    town: TownPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        edit.append_task(town, description="x")
    assert tasks_text(town) == TASKS
    assert temp_files(town.root) == []


CRASH = """
import os, sys
from pathlib import Path
from reconciler.edit import append_task
from reconciler.town import TownPaths
os.replace = lambda *args, **kwargs: os._exit(17)  # die after the write, before the rename
append_task(TownPaths(Path(sys.argv[1])), description="Never lands")
"""


def test_a_crash_between_write_and_rename_leaves_the_old_file(town: TownPaths) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CRASH, str(town.root)], cwd=REPO, timeout=60, check=False
    )
    assert done.returncode == 17
    assert tasks_text(town) == TASKS
    [leftover] = temp_files(town.root)
    assert "t-never-lands" in leftover.read_text()  # the new text was written, never renamed
    edit.append_task(town, description="Lands")
    assert temp_files(town.root) == []  # the next edit, holding the lock, cleans up
    assert [t["id"] for t in tomllib.loads(tasks_text(town))["tasks"]][-1] == "t-lands"


def test_file_mode_is_kept_and_new_files_follow_the_umask(town: TownPaths) -> None:
    town.tasks_file.chmod(0o640)
    edit.append_task(town, description="x")
    assert stat.S_IMODE(town.tasks_file.stat().st_mode) == 0o640
    town.tasks_file.unlink()
    umask = os.umask(0o022)
    try:
        edit.append_task(town, description="y")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(town.tasks_file.stat().st_mode) == 0o644


def test_a_symlinked_file_stays_a_link(
    town: TownPaths, tmp_path_factory: pytest.TempPathFactory
) -> None:
    real = tmp_path_factory.mktemp("elsewhere") / "tasks.toml"
    real.write_text(TASKS)
    town.tasks_file.unlink()
    town.tasks_file.symlink_to(real)
    edit.set_task_status(town, "design", "done")
    assert town.tasks_file.is_symlink()
    assert 'status = "done"' in real.read_text()


def test_a_held_lock_makes_a_second_editor_wait_then_give_up(tmp_path: Path) -> None:
    lock = tmp_path / ".tt" / "edit.lock"
    with exclusive_lock(lock):
        started = time.monotonic()
        with pytest.raises(TtError, match="another tt command"), exclusive_lock(lock, timeout=0.2):
            pass
        assert time.monotonic() - started >= 0.2
    with exclusive_lock(lock, timeout=0.2):
        pass  # released on exit


APPEND = """
import sys, time
from pathlib import Path
from reconciler.edit import append_task
from reconciler.town import TownPaths
root, me = Path(sys.argv[1]), sys.argv[2]
(root / f"ready-{me}").touch()
deadline = time.monotonic() + 60
while not (root / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.002)
# A slow validation widens the read-modify-write window: without the lock, edits would be lost.
append_task(TownPaths(root), description="Parallel work", validate=lambda a, b: time.sleep(0.02))
"""


def test_twenty_concurrent_processes_never_lose_an_edit(town: TownPaths) -> None:
    count = 20
    procs = [
        subprocess.Popen([sys.executable, "-c", APPEND, str(town.root), str(i)], cwd=REPO)
        for i in range(count)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(town.root.glob("ready-*"))) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        (town.root / "go").touch()
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert codes == [0] * count
    tasks = tomllib.loads(tasks_text(town))["tasks"]
    new_ids = [t["id"] for t in tasks[3:]]
    assert len(tasks) == 3 + count
    assert sorted(new_ids) == sorted(
        ["t-parallel-work"] + [f"t-parallel-work-{n}" for n in range(2, count + 1)]
    )
    assert tasks_text(town).startswith(TASKS)


def test_a_file_with_a_utf8_bom_is_edited_and_keeps_its_bom(town: TownPaths) -> None:
    town.tasks_file.write_bytes(b"\xef\xbb\xbf" + TASKS.encode())
    town.town_file.write_bytes(b"\xef\xbb\xbf" + town.town_file.read_bytes())
    edit.set_task_status(town, "design", "cancelled")
    edit.add_agent(town, "helper", {"model": "sim"})
    tasks = town.tasks_file.read_bytes()
    assert tasks.startswith(b"\xef\xbb\xbf#") and tasks.count(b"\xef\xbb\xbf") == 1
    assert tasks.decode()[1:] == TASKS.replace(
        'status = "pending"    # run it', 'status = "cancelled"    # run it'
    )
    roster = town.town_file.read_bytes()
    assert roster.startswith(b"\xef\xbb\xbf") and b"[agents.helper]" in roster
