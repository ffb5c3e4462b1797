"""Stopping a town's server, under the server lock so that no start races it."""

from __future__ import annotations

import contextlib
import os
import time

from ..errors import TtError
from ..town import TownPaths
from .info import status
from .liveness import POLL, alive, is_town_server, server_lock, server_pid
from .location import LOG_FILE, socket_path
from .resp import ReplyError, request

STOP_TIMEOUT = 10.0


def stop(paths: TownPaths, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the town's server: SHUTDOWN (the AOF is flushed), else SIGTERM to its verified pid.

    Returns False when no server was running. Never signals a pid that is not this town's server.
    """
    import signal

    sock = socket_path(paths)
    deadline = time.monotonic() + timeout
    with server_lock(paths, deadline):
        pid = server_pid(paths)
        if pid is None:
            with contextlib.suppress(TtError):
                st = status(paths)
                if st is not None and is_town_server(st.pid, paths):
                    pid = st.pid
        if pid is None:
            return False
        try:
            # Half the time at most, so that SIGTERM still has its chance.
            wait = max(0.1, (deadline - time.monotonic()) / 2)
            reply = request(sock, "SHUTDOWN", timeout=wait)
        except (ReplyError, OSError):
            reply = None
        if reply is None:
            # It refused, did not answer, or its socket is gone: SIGTERM asks for the same
            # clean shutdown (AOF flushed).
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        while alive(pid):
            if time.monotonic() >= deadline:
                raise TtError(
                    f"the town's server (pid {pid}) did not stop within {timeout:g} s",
                    hint=f"see {paths.state_dir / LOG_FILE}",
                )
            time.sleep(POLL)
        return True
