"""A followed branch's fetch (`follow.py`) in a thread of its own, one at a time: a remote that
hangs (up to git's FETCH_TIMEOUT) must not hold up the leader's passes, whose lease is renewed
between them and is shorter. The loop polls the result (at least every heartbeat); the thread
only runs git (no store writes, no reports).
"""

from __future__ import annotations

import threading
from pathlib import Path

from .. import git

Outcome = str | git.FetchFailed  # the branch's commit, or why the fetch failed


class Fetcher:
    def __init__(self, root: Path, remote: str | None, branch: str) -> None:
        self.root, self.remote, self.branch = root, remote, branch
        self.thread: threading.Thread | None = None
        self.outcome: Outcome | None = None

    @property
    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, wait: float) -> None:
        """Start a fetch (none runs: `busy` is false) and wait for it up to `wait` seconds, so
        that a quick one is taken by the same pass."""
        assert not self.busy
        self.outcome = None
        self.thread = threading.Thread(target=self._run, name="tt-fetch", daemon=True)
        self.thread.start()
        self.thread.join(wait)

    def take(self) -> Outcome | None:
        """The finished fetch's outcome, once; None while one runs or after it was taken."""
        if self.busy:
            return None
        outcome, self.outcome = self.outcome, None
        return outcome

    def _run(self) -> None:
        try:
            self.outcome = git.fetch_branch(self.root, self.remote, self.branch)
        except git.FetchFailed as e:
            self.outcome = e
        except Exception as e:  # a thread's surprise: told as a failed fetch
            self.outcome = git.FetchFailed(f"git fetch {self.remote} {self.branch}: {e}")
