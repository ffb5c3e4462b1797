"""One attempt's run (`Runner.invoke`) with real processes: what cannot be prepared or launched
fails the attempt as `launch_failed` (a retryable failure with the reason), never raises; a
prompt too long for one argument goes by file where the model takes one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.agents.attempt import Runner
from reconciler.agents.launch import SAFE_ARG_BYTES
from reconciler.agents.prompt import Verdict
from reconciler.spec.desired import AgentSpec, ModelSpec, PromptMode
from reconciler.town import TownPaths

# A model that records its argv and stdin (as JSON, one line) in the file named by $REC.
RECORDER = (
    "import json, os, sys\n"
    "data = sys.stdin.read() if not sys.stdin.isatty() else ''\n"
    "open(os.environ['REC'], 'a').write(json.dumps({'argv': sys.argv, 'stdin': data}) + '\\n')\n"
    "print('ok')\n"
)


class FakeStore:
    url = "redis://test"

    def note_model(
        self, agent: str, pid: int, start: str, session: str = "", workdir: str = ""
    ) -> None:
        pass

    def event(self, etype: str, **fields: str) -> None:
        pass

    def current_token(self, task_id: str) -> str | None:
        return "tok"


def runner(
    tmp_path: Path,
    command: tuple[str, ...],
    prompt: PromptMode,
    workdir: str | None = None,
    env: tuple[tuple[str, str], ...] = (),
) -> Runner:
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    model = ModelSpec(name="rec", command=(sys.executable, str(script), *command), prompt=prompt)
    rec = ("REC", str(tmp_path / "runs.jsonl"))
    spec = AgentSpec(name="dev", model="rec", workdir=workdir, env=(rec, *env))
    return Runner(TownPaths(tmp_path), "dev", spec, model, FakeStore())


def invoke(r: Runner, prompt: str, tmp_path: Path) -> Verdict:
    log = tmp_path / ".tt" / "logs" / "dev" / "t-1.log"
    return r.invoke(prompt, log, 30.0, "t", 1, "tok", lambda: False)


def runs(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "runs.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines]


def test_a_prompt_too_long_for_an_argument_fails_the_attempt_with_the_reason(
    tmp_path: Path,
) -> None:
    huge = "x" * (SAFE_ARG_BYTES + 1)
    v = invoke(runner(tmp_path, ("{prompt}",), PromptMode.ARG), huge, tmp_path)
    assert not v.ok and not v.permanent  # counted against the retries
    assert v.text.startswith("launch_failed: the prompt is 100,001 bytes, more than")
    assert v.hint and "{prompt_file}" in v.hint
    assert runs(tmp_path) == []  # nothing ran
    log = (tmp_path / ".tt/logs/dev/t-1.log").read_text()
    assert "--- launch_failed: the prompt is 100,001 bytes" in log


def test_a_prompt_too_long_for_an_argument_goes_by_file_when_the_model_takes_one(
    tmp_path: Path,
) -> None:
    huge = "y" * (SAFE_ARG_BYTES * 2)
    r = runner(tmp_path, ("--context", "{prompt_file}", "{prompt}"), PromptMode.ARG)
    v = invoke(r, huge, tmp_path)
    assert v.ok, v
    (run,) = runs(tmp_path)
    argv = run["argv"]
    assert isinstance(argv, list) and not any(huge in a for a in argv)
    file = tmp_path / ".tt/logs/dev/t-1.prompt.md"
    assert argv[-2] == str(file) and str(file) in argv[-1] and "Read that file" in argv[-1]
    assert file.read_text() == huge
    # A prompt that fits still goes as the argument.
    (tmp_path / "runs.jsonl").unlink()
    assert invoke(r, "short task", tmp_path).ok
    assert runs(tmp_path)[0]["argv"][-1] == "short task"  # type: ignore[index]


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("workdir-a-file", "is not a folder"),
        ("workdir-under-a-file", "cannot create the working folder"),
        ("worktree-outside-git", "cannot create a git worktree"),
        ("nul-in-arg", "a NUL byte in the command line"),
        ("nul-in-env", "a NUL byte in the environment"),
        ("missing-binary", "model CLI not found"),
    ],
)
def test_what_cannot_be_prepared_or_launched_fails_the_attempt(
    tmp_path: Path, case: str, needle: str
) -> None:
    (tmp_path / "afile").write_text("x")
    workdir = {
        "workdir-a-file": "afile",
        "workdir-under-a-file": "afile/sub",
        "worktree-outside-git": "worktree",
    }.get(case)
    env = (("TT_X", "a\0b"),) if case == "nul-in-env" else ()
    r = runner(tmp_path, ("{prompt}",), PromptMode.ARG, workdir=workdir, env=env)
    if case == "missing-binary":
        r.model = ModelSpec(name="gone", command=("tt-no-such-model-cli",), prompt=PromptMode.ARG)
    if case == "worktree-outside-git":
        assert subprocess.run(["git", "-C", str(tmp_path), "rev-parse"]).returncode != 0
    v = invoke(r, "task a\0b" if case == "nul-in-arg" else "task", tmp_path)
    assert not v.ok and not v.permanent, v
    assert v.text.startswith("launch_failed: ") and needle in v.text, v.text
    assert runs(tmp_path) == []


def test_an_unforeseen_error_while_preparing_fails_the_attempt_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = runner(tmp_path, ("{prompt}",), PromptMode.ARG)

    def broken(task_id: str, attempt: int, token: str) -> dict[bytes, bytes]:
        raise KeyError("surprise")

    r.env = broken  # type: ignore[method-assign]
    v = invoke(r, "task", tmp_path)
    assert (
        not v.ok and v.text == "launch_failed: cannot prepare the model's run: KeyError: 'surprise'"
    )
    assert "Traceback" in capsys.readouterr().err  # for agent.log
