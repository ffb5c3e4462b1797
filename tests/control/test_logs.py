"""`tt logs NAME [TASK]`: an agent's log, a task's latest attempt, and an unknown name said plainly
(exit 1, no file path), without starting the town's embedded server to find out."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from reconciler import server
from reconciler.town import TownPaths

TOWN = '[town]\nname = "logs"\n\n[agents.dev]\nmodel = "sim"\n\n[agents.pool]\nreplicas = 2\n'
TASKS = '[[tasks]]\nid = "build"\ndescription = "Build it"\nagent = "dev"\n'


@pytest.fixture
def town(tmp_path: Path) -> Path:
    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_text(TASKS)
    logs = tmp_path / ".tt" / "logs"
    for agent, name, text in [
        ("dev", "agent.log", "dev started\n"),
        ("dev", "build-1.log", "first attempt\n"),
        ("pool-2", "build-2.log", "second attempt\n"),
        ("pool-2", "build-x-7.log", "another task's log\n"),
    ]:
        (logs / agent).mkdir(parents=True, exist_ok=True)
        (logs / agent / name).write_text(text)
    return tmp_path


def tt(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(list(args))
    out, err = capsys.readouterr()
    return int(caught.value.code or 0), out, err


@pytest.mark.parametrize("name", ["ghost", "../logs", "Dev"])
def test_an_unknown_name_is_said_plainly_with_exit_1(
    town: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, out, err = tt(capsys, "logs", name, "--town", str(town))
    assert (code, out) == (1, "")
    assert err.splitlines()[0] == f"error: no agent or task named {name}"
    assert str(town) not in err and ".tt" not in err and ".log" not in err
    assert not server.is_running(TownPaths(town))  # not started to tell a typo


def test_an_agent_shows_its_own_log(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tt(capsys, "logs", "dev", "--town", str(town)) == (0, "dev started\n", "")


def test_a_task_shows_its_latest_attempt_whichever_agent_ran_it(
    town: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tt(capsys, "logs", "build", "--town", str(town)) == (0, "second attempt\n", "")
    assert tt(capsys, "logs", "dev", "build", "--town", str(town)) == (0, "first attempt\n", "")


def test_known_names_without_a_log_say_so_without_a_path(
    town: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (town / "tasks.toml").write_text(TASKS + '\n[[tasks]]\nid = "ship"\ndescription = "x"\n')
    for args, message in [
        (("pool",), "agent pool has no log yet"),
        (("ship",), "task ship has no log yet: no agent has run it"),
        (("dev", "ship"), "agent dev has no log of task ship"),
        (("nobody", "build"), "no agent named nobody"),
    ]:
        code, out, err = tt(capsys, "logs", *args, "--town", str(town))
        assert (code, out, err.splitlines()[0]) == (1, "", f"error: {message}")
        assert str(town) not in err and ".log" not in err


@pytest.mark.parametrize(
    "args", [("dev",), ("build",), ("dev", "build"), ("evil",), ("evil", "build")]
)
def test_a_symlink_in_the_log_folder_never_leads_out_of_it(
    town: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    """A link to a secret outside the town, where an agent's log or a task's attempt would be,
    or as a whole agent folder: refused, naming neither the link nor its target."""
    secret = town.parent / "secret.txt"
    secret.write_text("top secret\n")
    logs = town / ".tt" / "logs"
    (logs / "dev" / "agent.log").unlink()
    (logs / "dev" / "agent.log").symlink_to(secret)
    (logs / "dev" / "build-3.log").symlink_to(secret)
    (logs / "evil").symlink_to(town.parent)
    (town.parent / "build-9.log").write_text("outside\n")
    (town.parent / "agent.log").write_text("outside\n")
    code, out, err = tt(capsys, "logs", *args, "--town", str(town))
    assert (code, out) == (1, "")
    assert "outside the town's log folder" in err, err
    assert str(town.parent) not in err and "secret" not in err
