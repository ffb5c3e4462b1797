"""The leader works the merge queue for the nodes: a task done on a node given its own clone
(`tt node run --workspace DIR`) waits in the queue for someone on the leader's host, whose
repository is the shared one, to fetch its pushed branch and merge it (`work/remote.py`). After
each of its passes the leading loop looks at the queue; when a node's task waits there and no
one works it, a thread of its own works it (checks may take minutes: never within a pass).

loop.py only hooks it in (`check` after a leader's pass). The thread writes through a store of
its own, fenced to the leader epoch it started under (the loop's own fence is cleared when it
stops leading), and looks at that epoch again before it pushes or moves base: a loop that lost
the lead merges nothing more, and the remote's compare-and-swap refuses two leaders one landing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from ..agents.gitwork import Checks
from ..errors import TtError
from ..filelock import try_lock
from ..spec.desired import Desired
from ..spec.gitsettings import MergeMode
from ..store.client import Store
from ..work.products import WorkProducts
from ..work.queue import MergeQueue
from .session import Session

Report = Callable[[str, dict[str, str]], None]


class Host(Protocol):
    """The loop it serves: its session, whether it leads, its stop flag and its report."""

    s: Session
    leader: bool
    stop: threading.Event
    report: Report


class NodeMerges:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.thread: threading.Thread | None = None

    def check(self, desired: Desired | None) -> None:
        """A thread works the queue if a node's task waits in it and none works it already."""
        git = desired.git if desired is not None else None
        if git is None or git.merge != MergeMode.QUEUE or not self.host.leader:
            return
        if self.thread is not None and self.thread.is_alive():
            return
        store = self.host.s.store
        if not any(store.git_nodes(store.merge_queue())):  # (two round trips, however many)
            return
        assert desired is not None
        fence = store.fence  # the epoch this pass leads under ('e:N')
        if not fence:
            return
        self.thread = threading.Thread(target=self._work, args=(desired, fence), daemon=True)
        self.thread.start()

    def _work(self, desired: Desired, fence: str) -> None:
        s = self.host.s
        assert desired.git is not None
        store: Store | None = None
        try:
            store = Store.open(s.store.url, s.store.town)  # its own: the loop's fence moves
            store.fence = fence
            products = WorkProducts(
                s.paths.state_dir, s.paths.root, desired.town.name, desired.git, store, Checks()
            )
            with try_lock(products.layout.queue_lock) as mine:
                if mine:  # (else an agent of this host works it: it merges the node's too)
                    queue = MergeQueue(products)
                    queue.lead = store.check_fence
                    queue.work(should_stop=self._should_stop)
        except TtError as e:  # Redis away, the lead lost, the repository gone: the next pass
            self.host.report("merge", {"detail": e.message})
        finally:
            if store is not None:
                store.close()

    def _should_stop(self) -> bool:
        return self.host.stop.is_set() or not self.host.leader
