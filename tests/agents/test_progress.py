"""No progress (`agents.progress`): no output bytes and no file change in the working folder for
`stall_after` stops a run; output or a changed file keeps it going; the lines of a CLI's own
retry loop (its stall patterns) and the folders `.git` and tt's state are no progress."""

from __future__ import annotations

import io
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.agents.progress import ProgressWatch, newest_mtime
from reconciler.agents.prompt import judge
from reconciler.agents.supervisor import RunResult, run_model

PY = sys.executable


@dataclass
class Counter:
    progress: int = 0


def run(tmp_path: Path, code: str, **watch: Any) -> RunResult:
    """`code` run as a model in `tmp_path`, watched for progress there for 1 s."""
    return run_model(
        [PY, "-c", code],
        cwd=tmp_path,
        env=os.environ,
        stdin_text=None,
        log=io.BytesIO(),
        timeout=60,
        stall_after=1.0,
        watch=tmp_path,
        **watch,
    )


def touch(path: Path, at: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    os.utime(path, ns=(int(at * 1e9), int(at * 1e9)))


def test_nothing_moving_for_stall_after_is_a_stall_and_output_resets_the_clock() -> None:
    out = Counter()
    watch = ProgressWatch(10.0, [out], None, now=0.0)
    assert watch.check(9.9) is None
    out.progress += 1
    assert watch.check(9.95) is None and watch.check(19.9) is None
    assert watch.check(19.95) == "no output for 10s"


def test_a_changed_file_is_progress_but_not_under_git_or_the_skipped_folder(
    tmp_path: Path,
) -> None:
    state = tmp_path / ".tt"
    for folder in (tmp_path / ".git", state / "data", tmp_path / "src"):
        folder.mkdir(parents=True)
    touch(tmp_path / "a.txt", 1000.0)
    for folder in (tmp_path / "src", tmp_path):
        os.utime(folder, ns=(10**12, 10**12))
    watch = ProgressWatch(60.0, [], tmp_path, now=0.0, skip=state)
    touch(tmp_path / ".git" / "index", 5000.0)  # git's own files, tt's state: no progress
    touch(state / "data" / "appendonly.aof", 5000.0)
    assert watch.check(60.0) == "no output and no file change for 1m"
    touch(tmp_path / "src" / "b.py", 2000.0)
    assert watch.check(61.0) is None  # the last look before the kill saw it
    assert watch.check(120.9) is None and watch.check(121.0) is not None


def test_the_newest_mtime_follows_no_symlink_and_reads_no_content(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    touch(outside / "big", 9000.0)
    tree = tmp_path / "tree"
    touch(tree / "f", 3000.0)
    (tree / "link").symlink_to(outside)
    os.utime(tree / "link", ns=(10**12, 10**12), follow_symlinks=False)
    os.utime(tree, ns=(10**12, 10**12))
    assert newest_mtime(tree) == 3000.0 * 1e9


def test_a_silent_process_is_killed_as_stalled_and_its_verdict_says_what_stopped(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    r = run(tmp_path, "import time; time.sleep(60)")
    assert r.no_progress == "no output and no file change for 1s" and not r.timed_out
    assert time.monotonic() - started < 30
    verdict = judge(
        returncode=r.returncode,
        stdout_tail="",
        stderr_tail="",
        timed_out=False,
        timeout=60,
        no_progress=r.no_progress,
    )
    assert not verdict.ok and not verdict.permanent
    said = "stalled: no output and no file change for 1s; the process tree was killed"
    assert verdict.text == said


def test_a_process_that_only_writes_files_is_not_stalled(tmp_path: Path) -> None:
    code = (
        "import time, pathlib\n"
        "for i in range(12):\n"
        "    pathlib.Path(f'f{i}').write_text('x'); time.sleep(0.25)\n"
    )
    r = run(tmp_path, code)
    assert r.returncode == 0 and r.no_progress is None


def test_a_clis_own_retry_lines_are_no_progress(tmp_path: Path) -> None:
    """codex without network prints `Reconnecting... waiting for network` for ever: that output
    does not keep a run alive past stall_after, even when the stall pattern's grace is longer."""
    code = (
        "import time\n"
        "while True:\n"
        "    print('ERROR: Reconnecting... waiting for network', flush=True); time.sleep(0.1)\n"
    )
    r = run(
        tmp_path, code, stall_patterns=[r"Reconnecting\.\.\. waiting for network"], stall_grace=600
    )
    assert r.stalled is None and r.no_progress == "no output and no file change for 1s"


def test_dependency_and_cache_folders_are_no_progress(tmp_path: Path) -> None:
    touch(tmp_path / "src" / "a.py", 1000.0)
    for name in ("node_modules", ".venv", "target", "__pycache__"):
        touch(tmp_path / name / "pkg" / "f", 9000.0)  # an install churning its files
    for folder in (tmp_path / "src", tmp_path):
        os.utime(folder, ns=(10**12, 10**12))
    assert newest_mtime(tmp_path) == 1000.0 * 1e9


def test_the_folder_is_looked_at_breadth_first_so_shallow_edits_beat_deep_trees(
    tmp_path: Path,
) -> None:
    # Ten sibling folders, each with a deep chain of folders; an edit one level down in one of
    # them is seen within a few entries, whichever sibling a depth-first walk would take first.
    for i in range(10):
        chain = tmp_path / f"d{i}"
        for depth in range(30):
            chain = chain / f"n{depth}"
        chain.mkdir(parents=True)
    touch(tmp_path / "d5" / "edit.py", 7000.0)
    for folder in sorted(tmp_path.rglob("*"), key=lambda p: -len(p.parts)):
        if folder.is_dir():
            os.utime(folder, ns=(10**12, 10**12))
    os.utime(tmp_path, ns=(10**12, 10**12))
    assert newest_mtime(tmp_path, limit=25) == 7000.0 * 1e9


def test_a_look_stops_at_its_time_budget(tmp_path: Path) -> None:
    for i in range(50):
        touch(tmp_path / f"d{i}" / "f", 2000.0 + i)
        os.utime(tmp_path / f"d{i}", ns=(10**12, 10**12))
    os.utime(tmp_path, ns=(10**12, 10**12))
    assert newest_mtime(tmp_path) == 2049.0 * 1e9
    # No time at all: the first folder is read, then it stops (the supervisor never waits long).
    assert newest_mtime(tmp_path, budget=0.0) < newest_mtime(tmp_path)
