"""`tt status --deep`'s rows: the current attempt and how long it has run, the heartbeat, and the
last lines of the attempt's log (else the newest attempt's, else the agent's own log)."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.control.deep import TAIL_BYTES, deep_rows, tail


class Tasks:
    def __init__(self, records: dict[str, dict[str, str]]) -> None:
        self.records = records

    def task_hash(self, task_id: str) -> dict[str, str]:
        return self.records.get(task_id, {})


def test_each_agent_shows_its_attempt_heartbeat_and_log_tail(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "build-1.log").write_text("first try\n")
    (tmp_path / "dev" / "build-2.log").write_text("".join(f"line {i}\n" for i in range(9)))
    (tmp_path / "qa").mkdir()
    old, new = tmp_path / "qa" / "lint-1.log", tmp_path / "qa" / "docs-3.log"
    old.write_text("old\n")
    new.write_text("new one\n\n")
    os.utime(old, (1000, 1000))
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "agent.log").write_text("started\n")
    store = Tasks({"build": {"state": "running", "attempt": "2", "started_at": "900.5"}})
    agents = [
        {"name": "dev", "state": "working", "task": "build", "heartbeat_age": 0.4},
        {"name": "qa", "state": "idle", "task": None, "heartbeat_age": 1.0},
        {"name": "ops", "state": "idle", "task": None, "heartbeat_age": None},
        {"name": "new", "state": "stopped", "task": None, "heartbeat_age": None},
    ]
    rows = deep_rows(store, agents, tmp_path, lines=3, now=1000.0)
    dev, qa, ops, new_agent = rows
    assert (dev["attempt"], dev["running_for"], dev["heartbeat_age"]) == (2, 99.5, 0.4)
    assert dev["log"] == "dev/build-2.log" and dev["tail"] == ["line 6", "line 7", "line 8"]
    assert (qa["attempt"], qa["running_for"], qa["log"], qa["tail"]) == (
        None,
        None,
        "qa/docs-3.log",
        ["new one"],
    )
    assert (ops["log"], ops["tail"]) == ("ops/agent.log", ["started"])
    assert (new_agent["log"], new_agent["tail"]) == (None, [])


def test_a_long_log_is_read_from_its_end_without_a_cut_line(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("x" * (TAIL_BYTES * 2) + "\n" + "".join(f"end {i}\n" for i in range(3)))
    assert tail(log, 10) == ["end 0", "end 1", "end 2"]
    assert tail(tmp_path / "gone.log", 3) == []
