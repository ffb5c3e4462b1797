"""Replay the command lines of Tinytown's docs pages (tinytown_pages.toml) against sim towns, as a
Tinytown user would type them, and sort each into accepted, refused helpfully (one message that
names the tt way) or refused unhelpfully (click's usage errors, a traceback, no tt way named).

Each page gets a fresh folder and town (its own `tt init`, else a town holding the agents the page
names but never spawns) on one shared Redis; every agent runs the `sim` model. A line that runs in
the foreground (the conductor, `--foreground`, `--follow`) runs as a process and counts as
accepted when it ended well, or is still running once it has printed what it does. `python -m
tests.cli.tinytown_replay` prints the table.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import tomllib

DATA = Path(__file__).with_name("tinytown_pages.toml")
ROOT = Path(__file__).parents[2]
FOREGROUND = {"--foreground", "--follow"}
FOREGROUND_WAIT = 10.0  # the most a foreground line is given to say what it does
QUIET = 0.5
# What click says when it does not know the command or an option, and a crash: never helpful.
UNHELPFUL = re.compile(
    r"No such command|No such option|Did you mean '--|Missing option|Missing argument|"
    r"unexpected extra argument|Invalid value|Traceback|Usage:"
)


@dataclass(frozen=True)
class Outcome:
    page: str
    line: str
    code: int
    output: str

    @property
    def verdict(self) -> str:
        if self.code == 0:
            return "accepted"
        if UNHELPFUL.search(self.output) or "tt " not in self.output:
            return "unhelpful"
        return "helpful"


def pages() -> list[dict[str, object]]:
    with DATA.open("rb") as f:
        return list(tomllib.load(f)["pages"])


def _run_inline(args: list[str]) -> tuple[int, str]:
    from cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except Exception as e:
            return 1, f"Traceback: {type(e).__name__}: {e}"
    return code, out.getvalue() + err.getvalue()


def _run_foreground(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run a foreground line as a process: (its exit code, output) when it ends, or (0, output)
    when it is still running once it has said what it does (output, then QUIET s of silence)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines: list[str] = []
    said = [time.monotonic()]  # when the last line came

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            said[0] = time.monotonic()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + FOREGROUND_WAIT
    while proc.poll() is None and time.monotonic() < deadline:
        erred = any(x.startswith("error:") for x in lines)  # it is on its way out: let it end
        if lines and not erred and time.monotonic() - said[0] >= QUIET:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the command and what it started
        proc.wait(timeout=30)
        reader.join(timeout=30)
        return 0, "".join(lines)  # still running in the foreground, as the page means
    reader.join(timeout=30)
    return proc.returncode, "".join(lines)


def replay_page(page: dict[str, object], folder: Path) -> list[Outcome]:
    """Every step of one page in `folder` (the current directory while it runs)."""
    name = str(page["page"])
    steps = list(page["steps"])  # type: ignore[call-overload]
    folder.mkdir(parents=True)
    old = Path.cwd()
    os.chdir(folder)
    outcomes: list[Outcome] = []
    try:
        if not str(steps[0]).startswith("tt init"):
            town = re.sub(r"[^a-z0-9]+", "-", name.removesuffix(".md").lower())
            _run_inline(["init", "--name", town])
            agents = "".join(f'\n[agents.{a}]\nmodel = "sim"\n' for a in page.get("agents", []))  # type: ignore[attr-defined]
            with (folder / "town.toml").open("a") as f:
                f.write(agents)
            if agents:  # spawned earlier in the reader's story: running when the page starts
                _run_inline(["apply"])
        for step in steps:
            if isinstance(step, dict):
                (folder / step["write"]).write_text(step["text"])
                continue
            args = shlex.split(str(step), comments=True)[1:]
            if args and args[-1] == "&":
                args.pop()
            if FOREGROUND & set(args) or args[:1] == ["conductor"]:
                code, output = _run_foreground(args, folder)
            else:
                code, output = _run_inline(args)
            outcomes.append(Outcome(name, str(step), code, output))
    finally:
        _run_inline(["down"]) if (folder / "town.toml").exists() else None
        os.chdir(old)
    return outcomes


def distinct(outcomes: list[Outcome]) -> list[Outcome]:
    """The first replay of each distinct line (pages repeat lines of other pages)."""
    seen: dict[str, Outcome] = {}
    for o in outcomes:
        seen.setdefault(o.line, o)
    return list(seen.values())


def main() -> None:  # pragma: no cover - a person's view of the same replay
    import tempfile

    from reconciler import server
    from reconciler.town import TownPaths

    base = Path(tempfile.mkdtemp(prefix="tt-replay-"))
    paths = TownPaths(base / "redis")
    paths.root.mkdir()
    os.environ["TT_REDIS_URL"] = server.ensure_running(paths)
    os.environ.setdefault("TT_MODEL_OVERRIDE", "sim")
    os.environ.setdefault("TT_SIM_DELAY", "0.05")
    try:
        every: list[Outcome] = []
        for i, page in enumerate(pages()):
            every += replay_page(page, base / f"page-{i}")
    finally:
        server.stop(paths)
    for o in every:
        first = o.output.strip().splitlines()[:1]
        print(f"{o.verdict:9} {o.page:32} {o.line.splitlines()[0][:60]:60} {first}")
    counts = {v: sum(o.verdict == v for o in distinct(every)) for v in ("accepted", "helpful")}
    unhelpful = sum(o.verdict == "unhelpful" for o in distinct(every))
    print(f"distinct {len(distinct(every))}: {counts}, unhelpful {unhelpful}")


if __name__ == "__main__":  # pragma: no cover
    main()
