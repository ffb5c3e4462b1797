"""A node without the town's files (issue 14): `tt node run --name N --redis URL --town-name T`
started in a folder that holds no town.toml, on the town's Redis (the embedded server's socket
stands for a shared Redis). Real Valkey, sim agents.

- it learns its agents (one with a custom `[models.X]`) from the roster the controller's apply
  recorded, runs their tasks, and follows an apply that adds an agent on it;
- a model inside one of its agents reaches the town as the node does (`tt task complete`);
- bad input: `--redis` without `--town-name`, with `--town`, a town never applied there:
  refused with a clear message (exit 1), nothing written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.live import TT, LiveTown, alive, cwd_of, live_town, until
from tests.integration.test_self_healing import task, town_toml

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="checks processes through /proc"),
]

AGENTS = """[agents.far]
model = "echoer"
node = "far"

[agents.home]
model = "sim"

[models.echoer]
command = ["{python}", "{script}"]
prompt = "stdin"
"""
# The custom model: a script that completes its task the way a model inside an agent does.
ECHOER = """import os, subprocess, sys
said = "told by " + os.environ["TT_TOWN_NAME"]
argv = [sys.executable, "-m", "cli", "task", "complete", os.environ["TT_TASK"], "--result", said]
subprocess.run(argv, check=True)
"""


def node_cmd(folder: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TT, "node", "run", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def start_remote_node(town: LiveTown, folder: Path, url: str) -> subprocess.Popen[bytes]:
    args = ["--name", "far", "--lease", "2", "--redis", url, "--town-name", town.name]
    with open(folder.parent / "far-node.log", "wb") as log:
        return subprocess.Popen(
            [*TT, "node", "run", *args],
            cwd=folder,
            env={**town.env, "PYTHONPATH": str(Path.cwd())},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def test_a_node_without_the_towns_files_runs_its_agents_from_the_applied_roster(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "far-host"
    elsewhere.mkdir()
    with live_town(tmp_path / "town", sim_delay=0.05) as town:
        (tmp_path / "echoer.py").write_text(ECHOER)
        agents = AGENTS.replace("{python}", sys.executable)
        agents = agents.replace("{script}", str(tmp_path / "echoer.py"))
        town.write(town_toml("remote", agents), task("there", "on far", agent="far"))
        url = f"unix://{town.paths.socket}"

        # Never applied on that Redis: said, exit 1, nothing written (no node record, no .tt).
        town.tt("server", "start")
        never = node_cmd(
            elsewhere, "--name", "far", "--redis", url, "--town-name", "remote", env=town.env
        )
        assert never.returncode == 1
        assert "town 'remote' has no applied state" in never.stderr, never.stderr
        assert not list(elsewhere.iterdir())
        assert town.store.node_records() == {}

        town.start_watcher("conductor")
        until(lambda: "there" in town.tasks(), 30, "the town applied")
        node = start_remote_node(town, elsewhere, url)
        try:
            until(lambda: town.tasks()["there"]["state"] == "completed", 40, "far's task done")
            assert town.tasks()["there"]["result"] == "told by remote"
            rec = town.agents()["far"]
            assert (rec["node"], rec["root"]) == ("far", str(elsewhere.resolve()))
            # (the ledger entry is written as the model exits, after `tt task complete`)
            node_of = lambda: town.attempts("there")[-1].get("node")  # noqa: E731
            until(lambda: node_of() == "far", 10, "the attempt's record names node far")
            assert not (elsewhere / "town.toml").exists()

            # An agent added on the node: the controller's apply records the roster, the node
            # starts it, and it runs a task.
            more = '\n[agents.late]\nmodel = "sim"\nnode = "far"\n'
            town.save("town.toml", town_toml("remote", agents + more))
            tasks = task("there", "on far", agent="far") + task("later", "late", agent="late")
            town.save("tasks.toml", tasks)
            later = lambda: town.tasks().get("later", {}).get("state")  # noqa: E731
            until(lambda: later() == "completed", 40, "late's task done")
            assert town.agents()["late"]["node"] == "far"
        finally:
            node.send_signal(signal.SIGTERM)
            code = node.wait(timeout=30)
            for rec in town.agents().values():  # (a node stops its agents; in case it did not)
                for key in ("pid", "model_pid"):
                    pid = int(rec[key]) if rec.get(key, "").isdigit() else 0
                    if pid and alive(pid) and cwd_of(pid) == str(elsewhere.resolve()):
                        os.kill(pid, signal.SIGKILL)
        assert code == 0, (tmp_path / "far-node.log").read_text()
        assert "far" not in town.live_agents()


def test_bad_flags_of_a_node_without_files_are_refused(tmp_path: Path) -> None:
    town = tmp_path / "town"
    town.mkdir()
    (town / "town.toml").write_text('[town]\nname = "flags"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("TT_")}
    url = "redis://127.0.0.1:1/0"  # never reached: each is refused before anything connects
    cases = {
        ("--redis", url): "--redis without --town-name",
        ("--town-name", "flags"): "give --redis URL too",
        ("--redis", url, "--town-name", "flags", "--town", str(town)): "not both",
        ("--redis", "http://x", "--town-name", "flags"): "not a redis://",
        ("--redis", url, "--town-name", "Bad Name"): "not a valid town name",
    }
    for args, said in cases.items():
        got = node_cmd(tmp_path, "--name", "n1", *args, env=env)
        assert got.returncode == 1, (args, got.stdout, got.stderr)
        assert said in got.stderr, (args, got.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["town"]
    assert sorted(p.name for p in town.iterdir()) == ["town.toml"]
