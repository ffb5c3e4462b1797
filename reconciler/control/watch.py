"""The only importer of watchfiles: wake the reconcile loop when town.toml or tasks.toml change.

Editors that save by writing a temp file and renaming it produce several changes in one batch;
only the two file names count. Latency is set by `step` (the poll granularity), not `debounce`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ..town import TASKS_FILE, TOWN_FILE

NAMES = frozenset({TOWN_FILE, TASKS_FILE})


class FileWatcher:
    def __init__(self, root: Path, on_change: Callable[[], None]) -> None:
        self.root = root
        self.on_change = on_change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tt-watch", daemon=True)

    def start(self) -> FileWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        from watchfiles import watch

        def ours(change: object, path: str) -> bool:
            return Path(path).name in NAMES

        for _ in watch(
            self.root,
            watch_filter=ours,
            debounce=50,
            step=10,
            stop_event=self._stop,
            recursive=False,
            raise_interrupt=False,
        ):
            self.on_change()
