"""The attempt ledger with live agents: a fake claude (tests/fakes, the real CLI's JSON shapes)
runs under real agent processes; its tokens, cost and session land in `tt show -o json` and in
the JSON beside the attempt's log, and a not-logged-in claude fails once, classed `auth`."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.fakes import clis
from tests.integration.live import live_town

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="checks processes through /proc"),
]

FAKE = str(Path(clis.__file__).resolve())
TOWN = """\
[town]
name = "ledger"
retries = 2
retry_backoff = "0.2s"

[agents.dev]
model = "fake-claude"

[agents.ops]
model = "fake-claude-out"

[models.fake-claude]
command = ["{{python}}", {fake}, "claude", "success"]
output = "claude-json"

[models.fake-claude-out]
command = ["{{python}}", {fake}, "claude", "auth"]
output = "claude-json"
"""
TASKS = """\
[[tasks]]
id = "build"
description = "write hello.txt"
agent = "dev"

[[tasks]]
id = "deploy"
description = "deploy it"
agent = "ops"
"""


def test_tokens_and_cost_of_a_claude_json_attempt_land_in_show_and_beside_its_log(
    tmp_path: Path,
) -> None:
    with live_town(tmp_path / "t") as town:
        town.write(TOWN.format(fake=json.dumps(FAKE)), TASKS)
        run = town.tt("apply", "--wait", "--timeout", "60s")
        assert run.returncode == 1, run.stdout + run.stderr  # deploy failed (not logged in)

        shown = json.loads(town.tt("show", "build", "-o", "json").stdout)
        assert shown["state"] == "completed" and shown["result"] == "Done: wrote hello.txt"
        [a] = shown["attempts"]
        assert (a["exit_class"], a["exit_code"], a["model"]) == ("success", 0, "fake-claude")
        assert a["tokens"] == {"input": 12, "output": 287, "cache_read": 14012, "cache_write": 1523}
        assert a["cost_usd"] == clis.CLAUDE_COST and a["turns"] == 3
        assert a["session_id"] == clis.SESSION and a["duration_s"] > 0 and a["node"]
        mirror = Path(a["record"])
        assert mirror == Path(a["log"]).with_suffix(".json") and mirror.name == "build-1.json"
        assert stat.S_IMODE(mirror.stat().st_mode) == 0o600
        beside = json.loads(mirror.read_text())
        assert (beside["tokens"], beside["cost_usd"]) == (a["tokens"], a["cost_usd"])
        assert beside["exit_class"] == "success" and beside["session_id"] == clis.SESSION

        failed = json.loads(town.tt("show", "deploy", "-o", "json").stdout)
        assert failed["state"] == "failed"
        [b] = failed["attempts"]  # auth is permanent: no retry burnt on it
        assert (b["exit_class"], b["exit_code"], b["cost_usd"]) == ("auth", 1, 0)
        assert "Not logged in" in b["error"]

        text = town.tt("show", "build").stdout
        assert "success" in text and "$0.0422" in text and "12 in (+14012 cached) / 287 out" in text
