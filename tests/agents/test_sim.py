"""The offline `sim` model: markers, attempts, and what it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from reconciler.agents.sim import decide, task_section

PROMPT = """# Task build (attempt 1)
Build the thing [sim:fail:2]

## Results of the tasks this one depends on
### design
It said [sim:fail] somewhere
"""


def test_task_section_ignores_dependency_text() -> None:
    assert "[sim:fail:2]" in task_section(PROMPT)
    assert "[sim:fail]" not in task_section(PROMPT).replace("[sim:fail:2]", "")


@pytest.mark.parametrize(
    ("text", "attempt", "expected"),
    [
        ("plain", 1, (False, None)),
        ("x [sim:fail]", 5, (True, None)),
        ("x [sim:fail:2]", 2, (True, None)),
        ("x [sim:fail:2]", 3, (False, None)),
        ("x [sim:sleep:0.5]", 1, (False, 0.5)),
    ],
)
def test_decide(text: str, attempt: int, expected: tuple[bool, float | None]) -> None:
    assert decide(text, attempt) == expected


def run_sim(prompt: str, attempt: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TT_SIM_DELAY": "0", "TT_ATTEMPT": str(attempt), "TT_AGENT": "dev"}
    return subprocess.run(
        [sys.executable, "-m", "reconciler.agents.sim"],
        input=prompt,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


def test_sim_process_fails_then_succeeds() -> None:
    first = run_sim(PROMPT, 1)
    assert first.returncode == 1 and "failing attempt 1" in first.stderr
    third = run_sim(PROMPT, 3)
    assert third.returncode == 0
    assert third.stdout.startswith("dev (sim) finished: Build the thing")
    assert "sim: asked" in third.stderr and "Build the thing [sim:fail:2]" in third.stderr


def test_every_module_a_preset_or_the_engine_runs_with_python_m_exists() -> None:
    """`python -m X` names a module in a string, which import-linter cannot see: checked here."""
    import importlib.util
    from pathlib import Path

    from reconciler.spec.presets import PRESETS

    targets = {
        m.command[m.command.index("-m") + 1]
        for m in PRESETS.values()
        if m.command[0] == "{python}" and "-m" in m.command
    }
    root = Path(__file__).resolve().parents[2] / "reconciler"
    for source in root.rglob("*.py"):
        targets.update(re.findall(r'"-m",\s*"([a-z_.]+)"', source.read_text()))
    assert "reconciler.agents.sim" in targets and "cli" in targets
    assert [t for t in sorted(targets) if importlib.util.find_spec(t) is None] == []


def test_a_gate_holds_the_run_until_its_file_exists(tmp_path: object) -> None:
    from pathlib import Path

    from reconciler.agents.sim import wait_for_gate

    gate = Path(str(tmp_path)) / "open"
    assert wait_for_gate(None, 0) and not wait_for_gate(str(gate), 0.1)
    env = {**os.environ, "TT_SIM_DELAY": "0", "TT_SIM_GATE": str(gate), "TT_AGENT": "dev"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler.agents.sim"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin is not None
    proc.stdin.write(PROMPT)
    proc.stdin.close()
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=1.0)  # held
    gate.touch()
    assert proc.wait(timeout=30) == 1  # attempt 1 of a [sim:fail:2] task: it ran, and failed
