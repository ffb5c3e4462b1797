"""The town's apply lock: one apply (or file-editing verb) at a time, its holder named (host,
pid, command, since) so a waiting `tt` can say who holds it, and a holder killed on this host
taken over at once (compare-and-set on its token) instead of blocking for the lock's TTL.
`tt unlock` removes only a dead holder's lock unless forced.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from ..agents.supervisor import is_alive, proc_start_time
from ..errors import Conflict, TtError
from ..store.client import Store

LOCK_TTL = 120.0
# How long a plan (`tt plan`, `tt diff`, `apply --dry-run`, `GET /v1/plan`), which writes
# nothing, waits for a running apply (a watcher's pass: milliseconds, usually) by default
# instead of failing; an apply fails at once naming the holder unless told to wait.
PLAN_LOCK_WAIT = 10.0


@contextmanager
def apply_lock(store: Store, command: str, timeout: float) -> Iterator[None]:
    token = uuid.uuid4().hex
    holder = {
        "token": token,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_start": proc_start_time(os.getpid()),
        "command": command,
        "since": time.time(),
    }
    deadline = time.monotonic() + timeout
    while True:
        current = store.try_lock(holder, LOCK_TTL)
        if current is None:
            break
        if _holder_dead(current):
            # An apply killed (kill -9, a crash) on this host: its lock must not block the
            # re-run for LOCK_TTL. Taken over only if it is still that holder's.
            if store.take_over_lock(str(current.get("token", "")), holder, LOCK_TTL):
                break
            continue
        if time.monotonic() >= deadline:
            since = float(str(current.get("since", 0)))
            raise Conflict(
                f"another apply holds the town's lock: {current.get('command')} "
                f"(pid {current.get('pid')} on {current.get('host')}, "
                f"for {max(0.0, time.time() - since):.0f}s)",
                hint="wait for it, pass --lock-timeout SECONDS, or `tt unlock` if it is stale",
            )
        time.sleep(0.05)
    try:
        yield
    finally:
        store.unlock(token)


def unlock(store: Store, *, force: bool = False) -> dict[str, object] | None:
    """`tt unlock`: remove the apply lock if its holder is dead (its process gone on this
    host); a live holder's (its pid alive here, or on another host while its lease runs) only
    with `force`. Returns who held the lock removed, None when none was held."""
    holder = store.lock_holder()
    if holder is None:
        return None
    if force:
        return store.force_unlock()
    if not _holder_dead(holder):
        here = holder.get("host") == socket.gethostname()
        alive = (
            "its process is alive"
            if here
            else (f"on another host; its lease runs {store.lock_lease_left():.0f}s more")
        )
        raise TtError(
            f"the apply lock is held by {holder.get('command')} (pid {holder.get('pid')} on "
            f"{holder.get('host')}), and {alive}: not removed",
            hint="wait for it to finish, or `tt unlock --force` to remove it anyway",
        )
    # Only the lock read as dead: one a new apply took meanwhile stays.
    return holder if store.unlock(str(holder.get("token", ""))) else None


def release_own_lock(store: Store) -> None:
    """The apply lock held by this very process between a loop's passes is stale: an apply cut
    short by a Redis outage could not unlock either. (A dead holder's lock is taken over by
    `apply_lock`.)"""
    holder = store.lock_holder()
    if holder and holder.get("host") == socket.gethostname() and holder.get("pid") == os.getpid():
        store.unlock(str(holder.get("token", "")))


def _holder_dead(holder: dict[str, object]) -> bool:
    """The lock's holder ran on this host and its process is gone (pid plus start time)."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    start = holder.get("pid_start")
    return not is_alive(pid, start if isinstance(start, str) else None)
