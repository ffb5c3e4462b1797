"""A pass of the reconcile loop that raises what nothing handles is recorded (a `loop.error` event,
the traceback in `.tt/logs/loop.log`, a report line) and the loop goes on; Ctrl-C still stops it.
Real Valkey/Redis: the loop's event follower opens its own connection from town.toml."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from reconciler.control.apply import ApplyOptions
from reconciler.control.loop import Loop, LoopOptions
from reconciler.errors import EXIT_OK, TtError
from reconciler.spec.desired import Desired
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.control.test_apply import CountingSession

pytestmark = pytest.mark.integration

TASKS = '[[tasks]]\nid = "a"\ndescription = "done already"\nagent = "dev"\nstatus = "completed"\n'


class FailingSession(CountingSession):
    """Its first `failures` loads of the files raise `error`."""

    def __init__(self, paths: TownPaths, store: Store, error: BaseException, failures: int):
        super().__init__(paths, store)
        self.error, self.failures = error, failures

    def desired(self) -> Desired:
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        return super().desired()


def make_town(root: Path, store: Store) -> TownPaths:
    (root / "town.toml").write_text(
        f'[town]\nname = "{store.town}"\nredis = "{store.url}"\nheartbeat = "0.1s"\n'
        'lease = "2s"\n\n[agents.dev]\nmodel = "sim"\nsuspended = true\n'
    )
    (root / "tasks.toml").write_text(TASKS)
    return TownPaths(root)


def run_loop(session: CountingSession) -> tuple[int, list[tuple[str, dict[str, str]]]]:
    reports: list[tuple[str, dict[str, str]]] = []
    opts = LoopOptions(
        apply=ApplyOptions(start_agents=False), until_done=True, timeout=30, watch_files=False
    )
    result = Loop(session, opts, lambda kind, fields: reports.append((kind, fields))).run()
    return result.exit_code, reports


@pytest.mark.parametrize(
    "error", [RuntimeError("surprise in a pass"), TtError("an error no one expected here")]
)
def test_a_pass_that_raises_is_recorded_and_the_loop_goes_on(
    tmp_path: Path, redis_store: Store, error: Exception
) -> None:
    paths = make_town(tmp_path, redis_store)
    session = FailingSession(paths, redis_store, error, failures=3)
    code, reports = run_loop(session)
    assert code == EXIT_OK and session.failures == 0  # it went on, and finished the job
    text = f"{type(error).__name__}: {error}"
    # Recorded once while the same error repeats: one event, one traceback, one report line.
    events = [f for _, f in redis_store.events_since("-") if f["type"] == "loop.error"]
    assert [e["error"] for e in events] == [text]
    log = paths.logs_dir / "loop.log"
    assert events[0]["log"] == str(log)
    content = log.read_text()
    assert content.count("Traceback (most recent call last)") == 1 and text in content
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    lines = [f["detail"] for k, f in reports if k == "error"]
    assert lines == [f"a pass failed ({text}); traceback in {log}"]


def test_ctrl_c_still_stops_the_loop(tmp_path: Path, redis_store: Store) -> None:
    paths = make_town(tmp_path, redis_store)
    session = FailingSession(paths, redis_store, KeyboardInterrupt(), failures=1)
    with pytest.raises(KeyboardInterrupt):
        run_loop(session)
    events = [f for _, f in redis_store.events_since("-") if f["type"] == "loop.error"]
    assert events == [] and not (paths.logs_dir / "loop.log").exists()
