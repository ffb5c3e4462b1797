"""Where a town's server lives: its socket (short and private under /tmp when the town's path is
too long for one) and the names of its files in `.tt/`. Pure paths; starts and asks nothing."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path

from ..errors import TtError
from ..town import TownPaths

# sun_path holds 108 bytes on Linux and 104 on macOS, the terminating NUL included.
SUN_PATH_MAX = (104 if sys.platform == "darwin" else 108) - 1
# Where a socket goes when the town's own path is too long for one (a fixed place, not $TMPDIR,
# so that every process of the user computes the same path).
SHORT_SOCKET_DIR = Path("/tmp") / f"tt-{os.getuid()}"
SHORT_PREFIX = f"{SHORT_SOCKET_DIR}/"

LOCK_FILE = "server.lock"
CONFIG_FILE = "valkey.conf"
PID_FILE = "valkey.pid"
LOG_FILE = "valkey.log"


def socket_path(paths: TownPaths) -> Path:
    """`.tt/redis.sock`, or a short private path under /tmp when the town's path is too long.

    The short path is a pure function of the town's real path, so every process (and every way
    of spelling the path) finds the same socket; `.tt/redis.sock` then is a symlink to it.
    """
    natural = Path(os.path.abspath(paths.socket))
    if len(os.fsencode(natural)) <= SUN_PATH_MAX:
        return natural
    import hashlib  # only for long paths

    # The folder, not the socket path: once started, `.tt/redis.sock` is a symlink to the result.
    real = os.path.realpath(natural.parent)
    digest = hashlib.sha256(os.fsencode(real)).hexdigest()[:16]
    return SHORT_SOCKET_DIR / f"{digest}.sock"


def url(paths: TownPaths) -> str:
    return f"unix://{socket_path(paths)}"


def private_dir_ok(folder: Path) -> bool:
    """A shared /tmp folder is trusted only if it is ours and closed to others."""
    try:
        st = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def make_private_dir(folder: Path) -> None:
    """Create `folder` for the short socket, refusing one that others own or can enter."""
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700, parents=True)
    if not private_dir_ok(folder):
        raise TtError(
            f"{folder} is not a private folder of this user (it must be owned by uid "
            f"{os.getuid()} with mode 0700); refusing to put the town's socket there",
            hint=f"remove {folder}, or move the town to a shorter path",
        )
