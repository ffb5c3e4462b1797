"""Issue 17, point 6 with real processes: what tt leaves on disk is private, a model gets the
environment its agent declares and nothing else, an agent whose `env_from` names a missing
variable does not start (and says so), and what tt prints of a model's output is escaped.

Each test has its own town (embedded server) in tmp_path; the `town` fixture of test_agents
stops everything it started, by pid.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator

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
