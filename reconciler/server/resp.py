"""A raw RESP client for one command on a fresh unix-socket connection.

Enough for PING, INFO and SHUTDOWN, so the per-command liveness check costs one round trip and no
redis import. It never talks to a socket in a short-socket folder that is not ours.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from .location import SHORT_PREFIX, private_dir_ok

PROBE_TIMEOUT = 1.0


class ReplyError(Exception):
    """The server answered with a RESP error (`-ERR ...`, `-LOADING ...`)."""


def request(sock: Path, *args: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Send one command on a fresh connection; the reply as text, None if nothing listens.

    Raises `ReplyError` on an error reply and `TimeoutError` when the server does not answer.
    A closed connection without a reply (what SHUTDOWN does) returns "".
    """
    path = os.fspath(sock)
    if path.startswith(SHORT_PREFIX) and not private_dir_ok(sock.parent):
        return None  # someone else's folder: whatever listens there is not our server
    payload = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg.encode()
        payload.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            return None
        s.sendall(b"".join(payload))
        return _read_reply(s)


def _read_reply(s: socket.socket) -> str:
    buf = b""
    while b"\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return ""
        buf += chunk
    head, _, rest = buf.partition(b"\r\n")
    kind, body = head[:1], head[1:].decode(errors="replace")
    if kind == b"-":
        raise ReplyError(body)
    if kind != b"$":
        return body  # +simple string or :integer
    size = int(body)
    if size < 0:
        return ""
    while len(rest) < size + 2:
        chunk = s.recv(max(65536, size + 2 - len(rest)))
        if not chunk:
            break
        rest += chunk
    return rest[:size].decode(errors="replace")
