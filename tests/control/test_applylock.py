"""`tt unlock` removes a dead holder's apply lock and refuses a live one's unless forced: the
holder's pid alive on this host, or a holder on another host while its lease runs."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time

import pytest

from reconciler.agents.supervisor import proc_start_time
from reconciler.control.applylock import unlock
from reconciler.errors import TtError
from reconciler.store.client import Store
from tests.redis_fixtures import fake_store, town_name  # noqa: F401


def hold(store: Store, pid: int, host: str | None = None, start: str | None = None) -> None:
    holder = {
        "token": "t-1",
        "host": host or socket.gethostname(),
        "pid": pid,
        "pid_start": start,
        "command": "tt apply",
        "since": time.time(),
    }
    store.client.set(store.keys.apply_lock, json.dumps(holder), px=60_000)


def test_a_dead_holders_lock_is_removed_without_force(fake_store: Store) -> None:  # noqa: F811
    gone = subprocess.Popen(["true"])
    gone.wait()
    hold(fake_store, gone.pid)
    held = unlock(fake_store)
    assert held is not None and held["pid"] == gone.pid
    assert fake_store.lock_holder() is None
    assert unlock(fake_store) is None  # nothing held any more


def test_a_live_holder_on_this_host_keeps_its_lock_unless_forced(
    fake_store: Store,  # noqa: F811
) -> None:
    hold(fake_store, os.getpid(), start=proc_start_time(os.getpid()))
    with pytest.raises(TtError) as refused:
        unlock(fake_store)
    assert "its process is alive: not removed" in refused.value.message
    assert f"pid {os.getpid()} on {socket.gethostname()}" in refused.value.message
    assert refused.value.hint is not None and "--force" in refused.value.hint
    assert fake_store.lock_holder() is not None
    held = unlock(fake_store, force=True)
    assert held is not None and held["pid"] == os.getpid()
    assert fake_store.lock_holder() is None


def test_a_holder_on_another_host_keeps_its_lock_while_its_lease_runs(
    fake_store: Store,  # noqa: F811
) -> None:
    hold(fake_store, 1, host="elsewhere.example")  # its pid means nothing here
    with pytest.raises(TtError) as refused:
        unlock(fake_store)
    assert re.search(r"on another host; its lease runs (59|60)s more", refused.value.message)
    assert fake_store.lock_holder() is not None
    assert unlock(fake_store, force=True) is not None
