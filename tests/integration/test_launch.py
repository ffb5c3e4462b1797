"""An attempt can fail, an agent cannot crash (issue 17.3), with real agents on an embedded Valkey:
a model that cannot be launched (a prompt too long for argv, a missing binary) fails the attempt
as `launch_failed`, counted against its retries, while the agent's process serves on and runs
its next task. And no preset puts the task's text in argv, where `ps` shows it to every user.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration import test_agents
from tests.integration.test_agents import Town, cmdline, until

town = test_agents.town  # the fixture: a town folder, its `tt` runs, a finaliser

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="reads /proc/PID/cmdline"),
]

# A model for prompt = "arg": records its argv; "[emit:N]" in its prompt makes it print N chars
# (a big result for the tasks that depend on it).
ARG_MODEL = """\
import json, os, re, sys
prompt = sys.argv[-1]
with open(RECORD, "a") as f:
    f.write(json.dumps({"task": os.environ["TT_TASK"], "agent_pid": os.getppid(),
                        "argv_bytes": sum(len(a) for a in sys.argv)}) + "\\n")
emit = re.search(r"\\[emit:(\\d+)\\]", prompt)
print("r" * int(emit.group(1)) if emit else "fine")
"""


def arg_town(town: Town, agents: str, tasks: str) -> None:
    script = town.root / "argmodel.py"
    script.write_text(ARG_MODEL.replace("RECORD", repr(str(town.root / "runs.jsonl"))))
    (town.root / "town.toml").write_text(
        '[town]\nname = "launch"\nretry_backoff = "0.2s"\n\n'
        f"[models.argm]\ncommand = [{json.dumps(sys.executable)}, {json.dumps(str(script))}]\n"
        'prompt = "arg"\n\n'
        f"{agents}"
    )
    (town.root / "tasks.toml").write_text(tasks)


def events(town: Town, etype: str, task: str | None = None) -> list[dict[str, str]]:
    return [
        e for e in town.all_events() if e["type"] == etype and (task is None or e["task"] == task)
    ]


def test_a_fan_in_too_long_for_argv_fails_as_launch_failed_and_the_pool_serves_on(
    town: Town,
) -> None:
    # 40 results of 4,000 chars in the prompt of `join`: more than one argument can hold (128
    # KiB). The model is prompt = "arg" without {prompt_file}: the attempt fails, the agent
    # does not (before, each replica died on it in turn).
    parts = [f"part-{i}" for i in range(40)]
    tasks = "".join(
        f'[[tasks]]\nid = "{p}"\ndescription = "part [emit:4500]"\nagent = "pool"\n\n'
        for p in parts
    )
    tasks += '[[tasks]]\nid = "join"\ndescription = "join"\nagent = "pool"\nretries = 1\n'
    tasks += f"depends_on = {json.dumps(parts)}\n"
    arg_town(town, '[agents.pool]\nmodel = "argm"\nreplicas = 2\n', tasks)
    town.tt("apply")
    before = {n: a["pid"] for n, a in town.agents().items()}
    assert sorted(before) == ["pool", "pool-2"] and all(before.values())
    states = town.wait_states({**dict.fromkeys(parts, "completed"), "join": "failed"}, 60)
    join = states["join"]
    assert join["attempts"] == 2, join  # counted against its retries: 1 + 1 retry
    assert join["error"].startswith("launch_failed: the prompt is "), join["error"]
    assert "more than the 100,000 that can go safely as one argument" in join["error"]
    assert "{prompt_file}" in join["error"]  # the hint
    retrying, failed = events(town, "task.retrying", "join"), events(town, "task.failed", "join")
    assert len(retrying) == 1 and retrying[0]["error"].startswith("launch_failed: ")
    assert len(failed) == 1 and failed[0]["error"].startswith("launch_failed: ")
    # The same processes serve on: not one agent died or started again.
    agents = town.agents()
    assert {n: a["pid"] for n, a in agents.items()} == before
    assert all(a["state"] == "idle" and a["restarts"] == 0 for a in agents.values()), agents
    assert len(events(town, "agent.started")) == 2 and events(town, "agent.exited") == []
    log = (town.root / f".tt/logs/{join['agent']}/join-2.log").read_text()
    assert "--- launch_failed: the prompt is " in log
    agent_log = (town.root / f".tt/logs/{join['agent']}/agent.log").read_text()
    assert "Traceback" not in agent_log

    # The next task on that agent runs fine, on the same process. (pool-2 has a queue of its
    # own; the first replica's queue is the pool's, which either replica may take from.)
    town.tt("assign", join["agent"], "after the failure")
    done = town.wait(lambda st: st["counts"].get("completed", 0) == len(parts) + 1, 30)
    after = next(t for t in done["tasks"] if t["id"] not in {*parts, "join"})
    assert after["state"] == "completed"
    assert after["agent"] == join["agent"] if join["agent"] != "pool" else after["agent"] in before
    assert {n: a["pid"] for n, a in town.agents().items()} == before


def test_a_huge_prompt_goes_by_file_when_the_arg_model_takes_one(town: Town) -> None:
    script = town.root / "argmodel.py"
    huge = "h" * 250_000
    tasks = f'[[tasks]]\nid = "big"\ndescription = "{huge}"\nagent = "dev"\nretries = 0\n'
    arg_town(town, '[agents.dev]\nmodel = "argf"\n', tasks)
    with (town.root / "town.toml").open("a") as f:
        f.write(
            f"\n[models.argf]\ncommand = [{json.dumps(sys.executable)}, "
            f'{json.dumps(str(script))}, "{{prompt_file}}", "{{prompt}}"]\nprompt = "arg"\n'
        )
    town.tt("apply")
    town.agents()
    task = town.wait_states({"big": "completed"}, 30)["big"]
    (run,) = [json.loads(line) for line in (town.root / "runs.jsonl").read_text().splitlines()]
    assert run["argv_bytes"] < 5_000  # a pointer to the file, not the text
    prompt_file = town.root / ".tt/logs/dev/big-1.prompt.md"
    assert huge in prompt_file.read_text() and task["attempts"] == 1


def test_a_missing_model_binary_is_launch_failed_with_its_retries_counted(town: Town) -> None:
    (town.root / "town.toml").write_text(
        '[town]\nname = "launch"\nretry_backoff = "0.2s"\n\n'
        '[models.gone]\ncommand = ["tt-no-such-model-cli-xyz"]\nprompt = "stdin"\n\n'
        '[agents.dev]\nmodel = "gone"\n'
    )
    (town.root / "tasks.toml").write_text(
        '[[tasks]]\nid = "t"\ndescription = "anything"\nagent = "dev"\nretries = 2\n'
    )
    town.tt("apply")
    pid = town.agents()["dev"]["pid"]
    task = town.wait_states({"t": "failed"}, 30)["t"]
    assert task["attempts"] == 3
    assert task["error"].startswith("launch_failed: model CLI not found: tt-no-such-model-cli-xyz")
    assert "hint: install tt-no-such-model-cli-xyz" in task["error"]
    assert len(events(town, "task.retrying", "t")) == 2
    agent = town.agents()["dev"]
    assert agent["pid"] == pid and agent["state"] == "idle" and agent["restarts"] == 0


def test_an_environment_too_big_for_exec_is_launch_failed_and_the_agent_serves_on(
    town: Town,
) -> None:
    # The kernel refuses the exec itself (E2BIG: one string over 128 KiB), whatever the prompt.
    (town.root / "town.toml").write_text(
        '[town]\nname = "launch"\n\n[agents.dev]\nmodel = "sim"\n'
        f'env = {{ TT_TEST_BIG = "{"b" * 200_000}" }}\n'
    )
    (town.root / "tasks.toml").write_text(
        '[[tasks]]\nid = "t"\ndescription = "short"\nagent = "dev"\nretries = 0\n'
    )
    town.tt("apply")
    pid = town.agents()["dev"]["pid"]
    task = town.wait_states({"t": "failed"}, 30)["t"]
    assert task["error"].startswith(
        "launch_failed: the command line is too long for the system ("
    ), task["error"]
    agent = town.agents()["dev"]
    assert agent["pid"] == pid and agent["state"] == "idle" and agent["restarts"] == 0


def test_a_workdir_that_is_a_file_is_rejected_before_anything_runs(town: Town) -> None:
    (town.root / "src").write_text("a file, not a folder")
    (town.root / "town.toml").write_text(
        '[town]\nname = "launch"\n\n[agents.dev]\nmodel = "sim"\nworkdir = "src"\n'
    )
    (town.root / "tasks.toml").write_text(
        '[[tasks]]\nid = "t"\ndescription = "a \\u0000 b"\nagent = "dev"\n'
    )
    done = town.tt("apply", check=False)
    assert done.returncode == 1
    assert "town.toml:6: $.agents.dev.workdir: 'src' exists and is not a folder" in done.stderr
    assert "tasks.toml:3: $.tasks[0].description: contains a NUL byte" in done.stderr
    assert not (town.root / ".tt/logs").exists()  # no agent was started


# -- no task text in argv --------------------------------------------------------------------------

# A stand-in for each preset's CLI (same name, on the agent's PATH): it records its pid, what came
# on stdin and the prompt files among its arguments, then holds until released.
FAKE_CLI = """\
#!PYTHON
import json, os, sys, time
data = sys.stdin.read()
files = [open(a).read() for a in sys.argv[1:] if a.endswith(".prompt.md") and os.path.isfile(a)]
with open(RECORD, "a") as f:
    f.write(json.dumps({"cli": os.path.basename(sys.argv[0]), "pid": os.getpid(),
                        "agent": os.environ["TT_AGENT"], "stdin": data, "files": files}) + "\\n")
while not os.path.exists(RELEASE):
    time.sleep(0.02)
if "--output-format" in sys.argv:  # as claude's JSON modes end (stream-json: its last line)
    print(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "done"}))
else:
    print("done")
"""

PRESET_CLIS = {  # preset → the CLI it runs
    "claude": "claude",
    "codex": "codex",
    "codex-mini": "codex",
    "auggie": "auggie",
    "aider": "aider",
    "gemini": "gemini",
    "copilot": "copilot",
}


def test_ps_shows_no_task_text_for_any_preset(town: Town) -> None:
    record, release = town.root / "clis.jsonl", town.root / "release"
    bin_dir = town.root / "bin"
    bin_dir.mkdir()
    body = FAKE_CLI.replace("PYTHON", sys.executable)
    body = body.replace("RECORD", repr(str(record))).replace("RELEASE", repr(str(release)))
    for cli in set(PRESET_CLIS.values()):
        (bin_dir / cli).write_text(body)
        (bin_dir / cli).chmod(0o755)
    town.env["PATH"] = f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    markers = {p: f"MARKER-{uuid.uuid4().hex}" for p in [*PRESET_CLIS, "control"]}
    agents = "".join(f'[agents.a-{p}]\nmodel = "{p}"\n\n' for p in PRESET_CLIS)
    # The control: a model that does take its prompt as an argument shows it, so the reading of
    # /proc below would see a marker there.
    agents += (
        f'[models.exposed]\ncommand = ["{bin_dir / "claude"}", "{{prompt}}"]\nprompt = "arg"\n\n'
        '[agents.a-control]\nmodel = "exposed"\n'
    )
    (town.root / "town.toml").write_text(f'[town]\nname = "ps"\n\n{agents}')
    (town.root / "tasks.toml").write_text(
        "".join(
            f'[[tasks]]\nid = "t-{p}"\ndescription = "{m} secret plan"\nagent = "a-{p}"\n\n'
            for p, m in markers.items()
        )
    )
    town.tt("apply")
    town.agents()

    def recorded() -> list[dict[str, Any]]:
        lines = record.read_text().splitlines() if record.exists() else []
        return [json.loads(line) for line in lines]

    until(lambda: len(recorded()) == len(markers), 60, "every model runs")
    exposed = {}
    for run in recorded():
        preset, marker = run["agent"][2:], markers[run["agent"][2:]]
        argv = "\0".join(cmdline(run["pid"]))  # as `ps` reads it, while the model runs
        assert run["cli"] in argv, (run, argv)
        town.pids.add(run["pid"])
        exposed[preset] = marker in argv
        if preset != "control":  # the model was told, by stdin or a file
            assert marker in run["stdin"] or any(marker in f for f in run["files"]), run
    assert exposed == {**dict.fromkeys(PRESET_CLIS, False), "control": True}, exposed
    release.write_text("go")
    town.wait_states({f"t-{p}": "completed" for p in markers}, 30)
