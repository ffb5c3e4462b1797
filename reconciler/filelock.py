"""Safe replacement of a file that several processes edit: an exclusive lock and atomic writes.

A reader sees either the old or the new file, never a half-written one, and a crash between
write and rename leaves the old file. Knows nothing about TOML; `edit` builds on it (POSIX only).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import TtError

LOCK_TIMEOUT = 30.0
_TEMP_MARK = ".tt-tmp-"


@contextlib.contextmanager
def exclusive_lock(
    path: Path,
    timeout: float = LOCK_TIMEOUT,
    *,
    mode: int = 0o600,
    busy: str = "editing the town files",
    hint: str = "wait for it to finish; the lock is released when it exits",
) -> Iterator[None]:
    """Hold `flock(LOCK_EX)` on `path` (created with its folder, 0700, if needed) for the block.

    The kernel drops the lock when its holder dies, so a lock is never stale; waiting is bounded
    anyway, so a hung `tt` command produces an error instead of a queue of silent ones, which
    says what the holder is doing (`busy`) and what to do (`hint`).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # `.tt/`: private
    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        deadline = time.monotonic() + timeout
        pause = 0.002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TtError(
                        f"another tt command has been {busy} for over {timeout:g} s (lock {path})",
                        hint=hint,
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
        yield
    finally:
        # Closing the descriptor releases the lock.
        os.close(fd)


@contextlib.contextmanager
def try_lock(path: Path) -> Iterator[bool]:
    """Hold `flock(LOCK_EX)` on `path` for the block if it is free at once (yields True), else
    yield False and hold nothing: for work any of several processes may do (the merge queue)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8): temp file in the same folder, fsync, rename.

    An existing file keeps its permission bits; a new one gets the umask's default. A symlink is
    followed, so the link stays a link and its target gets the new content.
    """
    target = Path(os.path.realpath(path))
    try:
        mode: int | None = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = None
    temp = target.with_name(f".{target.name}{_TEMP_MARK}{os.getpid()}-{os.urandom(4).hex()}")
    # 0o666 lets the umask decide the mode of a new file, exactly as open() would.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(temp, target)
        except OSError as e:
            if e.errno is None:
                raise
            # Name the file being written, not the temp file.
            raise OSError(e.errno, e.strerror, str(path)) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    _fsync_dir(target.parent)


def discard_stale_temps(path: Path) -> list[Path]:
    """Delete temp files a crashed writer left next to `path`. Call only under the lock."""
    target = Path(os.path.realpath(path))
    removed = []
    for temp in target.parent.glob(f".{target.name}{_TEMP_MARK}*"):
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
            removed.append(temp)
    return removed


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk; some file systems refuse
    # to fsync a directory, and the rename has happened either way.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
