"""`tt init`: the files it writes, names, refusal to overwrite, Tinytown import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from reconciler.edit.scaffold import default_name, init_town, slug, starter_tasks
from reconciler.errors import TtError
from reconciler.town import TownPaths

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_init_writes_both_files_and_gitignore(tmp_path: Path) -> None:
    result = init_town(tmp_path / "multi-agent-demo", "multi-demo")
    root = tmp_path / "multi-agent-demo"
    assert result.name == "multi-demo"
    assert 'name = "multi-demo"' in (root / "town.toml").read_text()
    assert 'redis = "embedded"' in (root / "town.toml").read_text()
    assert "[meta]" in (root / "tasks.toml").read_text()
    assert (root / ".gitignore").read_text() == ".tt/\n"


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    init_town(tmp_path, "one")
    (tmp_path / "town.toml").write_text("# mine\n")
    with pytest.raises(TtError) as e:
        init_town(tmp_path, "two")
    assert "already exist" in e.value.message and e.value.hint.startswith(
        "tt init --force overwrites"
    )
    assert (tmp_path / "town.toml").read_text() == "# mine\n"
    init_town(tmp_path, "two", force=True)
    assert 'name = "two"' in (tmp_path / "town.toml").read_text()


def test_init_keeps_existing_gitignore_lines(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("node_modules/")
    init_town(tmp_path, "x")
    assert (tmp_path / ".gitignore").read_text() == "node_modules/\n.tt/\n"
    init_town(tmp_path, "x", force=True)
    assert (tmp_path / ".gitignore").read_text().count(".tt/") == 1


@pytest.mark.parametrize("bad", ["Multi Demo", "../x", "a" * 64, "-x", ""])
def test_init_rejects_bad_names(tmp_path: Path, bad: str) -> None:
    with pytest.raises(TtError) as e:
        init_town(tmp_path, bad)
    assert "invalid town name" in e.value.message
    assert not (tmp_path / "town.toml").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("My Repo", "my-repo"), ("feature/login@v2", "feature-login-v2"), ("...", "town")],
)
def test_slug(text: str, expected: str) -> None:
    assert slug(text) == expected


def test_default_name_is_folder_outside_git(tmp_path: Path) -> None:
    folder = tmp_path / "Some Project"
    folder.mkdir()
    assert default_name(folder) == "some-project"


def test_default_name_in_git_is_repo_and_branch(tmp_path: Path) -> None:
    repo = tmp_path / "webapp"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run([*git, "init", "-q", "-b", "feature/login"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    assert default_name(repo) == "webapp-feature-login"


def test_init_imports_tinytown_config(tmp_path: Path) -> None:
    (tmp_path / "tinytown.toml").write_text(
        'name = "Old Town"\ndefault_cli = "auggie"\n'
        '[agent_clis.claude]\nname = "claude"\ncommand = "claude --print"\n'
        '[agent_clis.mine]\nname = "mine"\ncommand = "my-llm --print --fast"\n'
    )
    result = init_town(tmp_path)
    text = (tmp_path / "town.toml").read_text()
    assert result.name == "old-town" and result.imported_from == tmp_path / "tinytown.toml"
    assert 'default_model = "auggie"' in text
    assert 'command = ["my-llm", "--print", "--fast"]' in text
    assert "[models.claude]" not in text


def test_plan_init_right_after_init_appends_the_starter_task(tmp_path: Path) -> None:
    init_town(tmp_path, "fresh")
    template = (tmp_path / "tasks.toml").read_text()
    assert "# [[tasks]]" in template  # the template shows tasks in comments only
    starter_tasks(TownPaths(tmp_path))
    text = (tmp_path / "tasks.toml").read_text()
    assert text.startswith(template)  # its comments and [meta] are kept
    assert [t["id"] for t in tomllib.loads(text)["tasks"]] == ["explore"]
    with pytest.raises(TtError, match="already has tasks"):
        starter_tasks(TownPaths(tmp_path))
    assert (tmp_path / "tasks.toml").read_text() == text


def test_plan_init_writes_a_missing_file_and_refuses_invalid_toml(tmp_path: Path) -> None:
    init_town(tmp_path, "fresh")
    (tmp_path / "tasks.toml").unlink()
    starter_tasks(TownPaths(tmp_path))
    assert "[meta]" in (tmp_path / "tasks.toml").read_text()
    (tmp_path / "tasks.toml").write_text("[[tasks]\n")
    with pytest.raises(TtError, match="not valid TOML"):
        starter_tasks(TownPaths(tmp_path))
    assert (tmp_path / "tasks.toml").read_text() == "[[tasks]\n"


def test_init_force_over_a_directory_is_one_error_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "tasks.toml").mkdir()
    (tmp_path / "town.toml").write_text("# mine\n")
    with pytest.raises(TtError, match=r"tasks\.toml exists and is not a file"):
        init_town(tmp_path, "x", force=True)
    assert (tmp_path / "town.toml").read_text() == "# mine\n"


@pytest.mark.parametrize("where", ["/proc/1/tt-test/foo", "{tmp}/afile/x"])
def test_os_errors_are_one_line_naming_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    (tmp_path / "afile").write_text("a file where a folder should be")
    target = where.format(tmp=tmp_path)
    with pytest.raises(SystemExit) as caught:
        main(["init", target])
    out, err = capsys.readouterr()
    assert caught.value.code == 1 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1  # one line, no traceback
    assert target.rsplit("/", 1)[0] in err


def test_a_tinytown_import_says_what_it_dropped(tmp_path: Path) -> None:
    (tmp_path / "tinytown.toml").write_text(
        'name = "old"\ndefault_cli = "codex"\nmax_agents = 8\n\n[redis]\nuse_socket = true\n'
    )
    result = init_town(tmp_path)
    assert result.dropped == (
        "max_agents: not imported; tt's [town] max_agents in town.toml (default 256)",
        'redis: not imported; tt\'s [town] redis = "embedded" (its own Valkey under .tt/, '
        "persisted) or a URL",
    )
    assert 'default_model = "codex"' in (tmp_path / "town.toml").read_text()
