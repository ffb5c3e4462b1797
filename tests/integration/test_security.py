"""Issue 17, point 6 with real processes: what tt leaves on disk is private, a model gets the
environment its agent declares and nothing else, an agent whose `env_from` names a missing
variable does not start (and says so), and what tt prints of a model's output is escaped.

Each test has its own town (embedded server) in tmp_path; the `town` fixture of test_agents
stops everything it started, by pid.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_agents import Town, town, until  # noqa: F401

pytestmark = [pytest.mark.integration]

# A model that reads its prompt from a file (as auggie and aider do), prints what it was given
# and the names of its environment, so a test can see both.
ENV_MODEL = """\
import json, os, sys
prompt = open(sys.argv[1]).read()
print(json.dumps({"env": sorted(os.environ), "prompt": prompt}))
"""


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (022): what is private must be so by tt's doing, not the test's."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def env_town(t: Town, agent_extra: str = "", town_extra: str = "") -> None:
    script = t.root / "envmodel.py"
    script.write_text(ENV_MODEL)
    (t.root / "town.toml").write_text(
        f'[town]\nname = "sec-{t.root.parent.name[-20:].lower().replace("_", "-")}"\n'
        f"{town_extra}\n"
        "[models.envdump]\n"
        f"command = [{json.dumps(sys.executable)}, {json.dumps(str(script))}, "
        '"{prompt_file}"]\nprompt = "file"\n\n'
        f'[agents.dev]\nmodel = "envdump"\n{agent_extra}\n'
    )
    (t.root / "tasks.toml").write_text(
        '[[tasks]]\nid = "look"\ndescription = "look around"\nagent = "dev"\nretries = 0\n'
    )


def test_every_file_tt_leaves_in_dot_tt_is_private_after_a_real_run(
    town: Town,  # noqa: F811
    open_umask: None,
) -> None:
    env_town(town)
    waited = town.tt("apply", "--wait", "--timeout", "60s")
    assert "done" in waited.stdout + waited.stderr
    town.agents()
    town.tt("events")  # readers too
    state = town.root / ".tt"
    seen = {p.relative_to(state).as_posix(): p.lstat().st_mode for p in state.rglob("*")}
    seen["."] = state.lstat().st_mode
    # The run made what the point is about: logs, the prompt file, the server's files.
    for made in (
        "logs/dev/agent.log",
        "logs/dev/look-1.log",
        "logs/dev/look-1.prompt.md",
        "valkey.pid",
        "valkey.log",
        "data",
    ):
        assert made in seen, sorted(seen)
    open_to_others = {
        name: oct(stat.S_IMODE(mode)) for name, mode in seen.items() if stat.S_IMODE(mode) & 0o077
    }
    assert open_to_others == {}
    assert all(stat.S_IMODE(mode) == 0o700 for mode in seen.values() if stat.S_ISDIR(mode)), seen


# A model whose output tries everything on the terminal that reads it.
HOSTILE_MODEL = """\
import sys
prompt = open(sys.argv[1]).read()
evil = ("\\x1b]52;c;cm0gLXJmIH4=\\x07 \\x1b]0;pwned\\x07 \\x1b]8;;https://evil.example\\x1b\\\\link"
        "\\x1b]8;;\\x1b\\\\ \\x1b[2J\\x1b[31mred \\x9b2J \\x1bc ok\\rFAILED")
if "fail" in prompt:
    print(evil, file=sys.stderr)
    sys.exit(1)
print(evil)
"""
CONTROLS = ("\x1b", "\x07", "\x9b", "\r", "\x9d")


def test_what_a_model_wrote_prints_escaped_in_every_read_out(
    town: Town,  # noqa: F811
) -> None:
    script = town.root / "hostile.py"
    script.write_text(HOSTILE_MODEL)
    (town.root / "town.toml").write_text(
        '[town]\nname = "sec-hostile"\nretries = 0\n\n[models.hostile]\n'
        f"command = [{json.dumps(sys.executable)}, {json.dumps(str(script))}, "
        '"{prompt_file}"]\nprompt = "file"\n\n[agents.dev]\nmodel = "hostile"\n'
    )
    (town.root / "tasks.toml").write_text(
        '[[tasks]]\nid = "ok"\ndescription = "say it"\nagent = "dev"\n\n'
        '[[tasks]]\nid = "bad"\ndescription = "fail it"\nagent = "dev"\n'
    )
    waited = town.tt("apply", "--wait", "--timeout", "60s", check=False)
    town.agents()
    assert waited.returncode == 1, waited.stdout + waited.stderr
    town.tt("send", "conductor", "\x1b]52;c;eA==\x07hello\x1b[2J")
    outputs = {
        "apply --wait": waited.stdout + waited.stderr,
        "status": town.tt("status").stdout,
        "events": town.tt("events").stdout,
        "logs": town.tt("logs", "ok").stdout,
        "logs of the failure": town.tt("logs", "dev", "bad").stdout,
        "inbox": town.tt("inbox", "conductor").stdout,
        "events -o json": town.tt("events", "-o", "json").stdout,
        "status -o json": town.tt("status", "-o", "json").stdout,
    }
    raw = {name: [c for c in CONTROLS if c in text] for name, text in outputs.items()}
    assert raw == {name: [] for name in outputs}
    # Shown, not dropped: a person sees what the model tried.
    assert "\\x1b]52;c;cm0gLXJmIH4=\\x07" in outputs["logs"]
    assert "\\x1b]52;c;cm0gLXJmIH4=" in outputs["apply --wait"]  # the failure's error line
    assert "\\x1b]52;c;eA==\\x07hello\\x1b[2J" in outputs["inbox"]
    # JSON keeps the text exactly, escaped the JSON way.
    results = {t["id"]: t for t in json.loads(outputs["status -o json"])["tasks"]}
    assert "\x1b]52;c;cm0gLXJmIH4=\x07" in results["ok"]["result"]


def model_saw(t: Town) -> dict[str, object]:
    """What the envdump model printed on its (only) run: its environment's names and prompt."""
    log = (t.root / ".tt/logs/dev/look-1.log").read_text()
    line = next(x for x in log.split("--- output ---\n", 1)[1].splitlines() if x.startswith("{"))
    seen: dict[str, object] = json.loads(line)
    return seen


def environ_of(pid: int) -> set[str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return {item.split(b"=", 1)[0].decode() for item in raw.split(b"\0") if item}


def test_a_model_gets_its_declared_environment_and_nothing_else(
    town: Town,  # noqa: F811
) -> None:
    env_town(town, agent_extra='env_from = ["DEPLOY_KEY"]\nenv = { GREETING = "hi" }')
    shell = {"DEPLOY_KEY": "d-1", "AWS_SECRET_ACCESS_KEY": "leak", "DATABASE_URL": "leak"}
    shell |= {"HTTPS_PROXY": "http://proxy.example:3128", "LC_TIME": "C"}
    town.tt("apply", "--wait", "--timeout", "60s", env=shell)
    names = set(model_saw(town)["env"])  # type: ignore[arg-type]
    assert {"DEPLOY_KEY", "GREETING", "HTTPS_PROXY", "LC_TIME", "PATH", "HOME"} <= names
    assert {"TT_TASK", "TT_AGENT", "TT_ATTEMPT_TOKEN"} <= names  # tt's own stay
    assert "AWS_SECRET_ACCESS_KEY" not in names and "DATABASE_URL" not in names
    # The agent process itself (whose environ its model could read) has no more either.
    agent = town.agents()["dev"]
    own = environ_of(agent["pid"])
    assert "DEPLOY_KEY" in own and not own & {"AWS_SECRET_ACCESS_KEY", "DATABASE_URL"}


def test_inherit_env_on_the_town_passes_everything(town: Town) -> None:  # noqa: F811
    env_town(town, town_extra="inherit_env = true")
    town.tt("apply", "--wait", "--timeout", "60s", env={"DATABASE_URL": "inherited"})
    assert "DATABASE_URL" in model_saw(town)["env"]  # type: ignore[operator]


def test_an_agent_missing_an_env_from_variable_does_not_start_and_tt_list_says_why(
    town: Town,  # noqa: F811
) -> None:
    env_town(town, agent_extra='env_from = ["DEPLOY_KEY", "SIGNING_KEY"]')
    applied = town.tt("apply", env={"DEPLOY_KEY": "d-1"})
    assert "agent dev not started: missing env SIGNING_KEY" in applied.stdout
    listed = town.tt("list", env={"COLUMNS": "200"}).stdout  # the REASON column unshortened
    assert re.search(r"^dev\s+envdump\s+-\s+stopped\s+.*\smissing env SIGNING_KEY$", listed, re.M)
    row = town.agents()["dev"]
    assert (row["state"], row["reason"], row["pid"]) == (
        "stopped",
        "missing env SIGNING_KEY",
        None,
    )
    assert not town.agent_processes()
    events = [e for e in town.all_events() if e["type"] == "agent.env_missing"]
    assert [(e["agent"], e["missing"]) for e in events] == [("dev", "SIGNING_KEY")]
    assert town.tasks()["look"]["state"] == "ready"  # waiting for an agent that can run it

    # From a shell that has both, the agent starts and the task runs.
    both = {"DEPLOY_KEY": "d-1", "SIGNING_KEY": "s-1"}
    town.tt("apply", "--wait", "--timeout", "60s", env=both)
    assert town.agents()["dev"]["reason"] is None
    assert {"DEPLOY_KEY", "SIGNING_KEY"} <= set(model_saw(town)["env"])  # type: ignore[arg-type]


def test_a_task_waiting_on_a_cancelled_one_is_shown_and_fails_wait_through_the_cli(
    town: Town,  # noqa: F811
) -> None:
    """Point 7: a → b → c, `tt cancel a` while a runs; b and c can never run. `tt status`
    says why, `tt wait` names them and exits 1, and so does `apply --wait` of such files."""
    (town.root / "town.toml").write_text(
        '[town]\nname = "sec-cancel"\n\n[agents.dev]\nmodel = "sim"\n'
    )
    (town.root / "tasks.toml").write_text(
        '[[tasks]]\nid = "a"\ndescription = "long [sim:sleep:60]"\nagent = "dev"\n\n'
        '[[tasks]]\nid = "b"\ndescription = "next"\nagent = "dev"\nparent = "a"\n\n'
        '[[tasks]]\nid = "c"\ndescription = "last"\nagent = "dev"\ndepends_on = ["b"]\n\n'
        '[[tasks]]\nid = "free"\ndescription = "unrelated"\nagent = "dev"\n'
    )
    town.env["TT_SIM_DELAY"] = "0.1"
    town.tt("apply")
    town.agents()
    town.wait_states({"a": "running"})
    town.tt("cancel", "a")
    waited = town.tt("wait", "--timeout", "60s", check=False)
    assert waited.returncode == 1, waited.stdout + waited.stderr
    assert "failed: b: upstream_failed: a was cancelled" in waited.stderr
    assert "failed: c: upstream_failed: a was cancelled" in waited.stderr
    table = town.tt("status").stdout
    assert re.search(
        r"^b\s+upstream_failed\s+dev\s+0\s+upstream a was cancelled: tt retry a", table, re.M
    )
    tasks = town.tasks()
    assert {t: tasks[t]["state"] for t in tasks} == {
        "a": "cancelled",
        "b": "upstream_failed",
        "c": "upstream_failed",
        "free": "completed",
    }
    as_json = json.loads(town.tt("wait", "-o", "json", "--timeout", "30s", check=False).stdout)
    assert [(f["id"], f["reason"]) for f in as_json["failed"]] == [
        ("b", "upstream_failed: a was cancelled"),
        ("c", "upstream_failed: a was cancelled"),
    ]
    # The same from the files: a cancelled in tasks.toml from the start.
    again = town.tt("apply", "--wait", "--timeout", "60s", check=False)
    assert again.returncode == 1 and "failed: c: upstream_failed: a was cancelled" in again.stderr


def test_a_state_folder_an_older_tt_left_open_is_made_private_by_the_next_server_start(
    tmp_path: Path, open_umask: None
) -> None:
    """A `.tt/` already 0700 whose AOF folder, pid file and logs an older tt left readable."""
    from reconciler import server
    from reconciler.town import TownPaths

    paths = TownPaths(tmp_path)
    server.ensure_running(paths)
    server.stop(paths)
    old_log = paths.logs_dir / "dev" / "a-1.log"
    old_log.parent.mkdir(parents=True)
    old_log.write_text("a prompt")
    for path, mode in (
        (paths.logs_dir, 0o755),
        (old_log.parent, 0o755),
        (old_log, 0o644),
        (paths.data_dir / "appendonlydir", 0o755),
    ):
        path.chmod(mode)
    try:
        server.ensure_running(paths)
        opened = [p for p in paths.state_dir.rglob("*") if p.lstat().st_mode & 0o077]
        assert opened == []
    finally:
        server.stop(paths)


@pytest.mark.parametrize("inherit", [False, True])
def test_tt_serves_api_token_reaches_no_agent_and_no_model(
    town: Town,  # noqa: F811
    inherit: bool,
) -> None:
    """Issue 12 review, finding 1: neither TT_API_TOKEN nor the variable `[serve] token_env`
    names reaches an agent or its model, whatever it inherits; nor does a user's other TT_*
    secret (only the TT_* settings agents read pass)."""
    env_town(
        town,
        town_extra=("inherit_env = true\n" if inherit else "")
        + '\n[serve]\ntoken_env = "MY_SERVE_TOKEN"\n',
    )
    shell = {"TT_API_TOKEN": "api", "MY_SERVE_TOKEN": "api-2", "TT_HOOK_SECRET": "hook"}
    shell |= {"TT_SIM_DELAY": "0.1", "DATABASE_URL": "db"}
    town.tt("apply", "--wait", "--timeout", "60s", env=shell)
    model = set(model_saw(town)["env"])  # type: ignore[arg-type]
    agent = environ_of(town.agents()["dev"]["pid"])
    for names in (model, agent):
        assert not {"TT_API_TOKEN", "MY_SERVE_TOKEN"} & names, names
        assert "TT_SIM_DELAY" in names and "TT_TOWN" in names
        assert ("TT_HOOK_SECRET" in names) is inherit
        assert ("DATABASE_URL" in names) is inherit
