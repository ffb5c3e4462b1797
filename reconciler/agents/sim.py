"""`sim`: the built-in offline model, so every workflow can be rehearsed without API keys.

Run as `python -m reconciler.agents.sim` with the prompt on stdin (the agent's log records the whole
prompt; sim notes its first line on stderr). It sleeps `TT_SIM_DELAY` seconds (default 1) and
prints a short answer. Markers in the task's own text steer it: `[sim:fail]`, `[sim:fail:N]`
(fail the first N attempts, counted by `TT_ATTEMPT`), `[sim:sleep:S]`, `[sim:write:PATH:TEXT]`
(append the line TEXT to PATH in its working folder, folders made: a git workflow rehearsed).
Only the task section is read, so a marker quoted in a dependency's result or a message does
not leak into this task.
With `TT_SIM_GATE=PATH` it first waits (at most `TT_SIM_GATE_WAIT` seconds, default 120) until
PATH exists: a rehearsal can hold every run open until it chooses, whatever the machine's speed.
"""

from __future__ import annotations

import os
import re
import sys
import time

MARKER = re.compile(r"\[sim:(fail|sleep)(?::([0-9.]+))?\]")
WRITE = re.compile(r"\[sim:write:([^:\]]+):([^\]]*)\]")


def task_section(prompt: str) -> str:
    """The text from the `# Task` heading to the next `## ` heading (the whole prompt if none)."""
    match = re.search(r"^# Task.*?$(.*?)(?=^## |\Z)", prompt, re.S | re.M)
    return match.group(1) if match else prompt


def decide(task_text: str, attempt: int) -> tuple[bool, float | None]:
    """(should fail, extra sleep seconds) from the markers in the task text."""
    fail, sleep = False, None
    for kind, value in MARKER.findall(task_text):
        if kind == "fail":
            fail = fail or not value or attempt <= int(float(value))
        else:
            sleep = float(value or 1)
    return fail, sleep


def writes(task_text: str) -> list[tuple[str, str]]:
    """(path, line) of every `[sim:write:PATH:TEXT]`, in order."""
    return [(path.strip(), text) for path, text in WRITE.findall(task_text)]


def write_lines(folder: str, wanted: list[tuple[str, str]]) -> str | None:
    """Append each line to its file under `folder`; the error when a path leaves it."""
    for path, text in wanted:
        parts = path.replace("\\", "/").split("/")
        if os.path.isabs(path) or ".." in parts or not path:
            return f"sim: refusing to write {path!r}: a relative path inside the folder only"
        target = os.path.join(folder, *parts)
        os.makedirs(os.path.dirname(target) or folder, exist_ok=True)
        with open(target, "a", encoding="utf-8") as f:
            f.write(text + "\n")
    return None


def wait_for_gate(gate: str | None, most: float) -> bool:
    """Wait until the file `gate` exists (True), or `most` seconds passed (False)."""
    if not gate:
        return True
    deadline = time.monotonic() + most
    while not os.path.exists(gate):
        if time.monotonic() >= deadline:
            print(f"sim: gate {gate} did not open within {most:g}s", file=sys.stderr)
            return False
        time.sleep(0.05)
    return True


def main() -> int:
    prompt = sys.stdin.read()
    attempt = int(os.environ.get("TT_ATTEMPT", "1") or 1)
    task = task_section(prompt)
    first = next((line for line in task.splitlines() if line.strip()), "")
    print(f"sim: asked {len(prompt)} chars: {first.strip()[:80]}", file=sys.stderr, flush=True)
    fail, sleep = decide(task, attempt)
    wait_for_gate(os.environ.get("TT_SIM_GATE"), float(os.environ.get("TT_SIM_GATE_WAIT", "120")))
    time.sleep(sleep if sleep is not None else float(os.environ.get("TT_SIM_DELAY", "1")))
    if fail:
        print(f"sim: failing attempt {attempt} as the task asks", file=sys.stderr)
        return 1
    refused = write_lines(os.getcwd(), writes(task))
    if refused:
        print(refused, file=sys.stderr)
        return 1
    summary = " ".join(WRITE.sub("", MARKER.sub("", task)).split())[:120]
    agent = os.environ.get("TT_AGENT", "agent")
    print(f"{agent} (sim) finished: {summary or 'the task'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
