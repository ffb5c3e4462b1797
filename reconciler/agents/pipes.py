"""A model's pipes: the prompt fed to stdin without blocking, and stdout and stderr read into the
log (stderr lines marked) and into bounded excerpts, the result and the error of an attempt.
It starts and signals nothing (that is `supervisor`); it only reads and writes descriptors.
"""

from __future__ import annotations

import os
import re
import select
import selectors
import threading
from collections import deque
from collections.abc import Sequence
from typing import IO

TAIL_LINES = 40
TAIL_CHARS = 4000
# A CLI often says what went wrong first and then prints its whole help (gemini's "unknown flag"
# is followed by 45 lines): a failed attempt's error keeps the first lines too.
HEAD_LINES = 5
HEAD_CHARS = 1000


class Stream:
    """One output pipe of a model: lines go to the log (with a prefix) and to a tail."""

    CHUNK = 65536

    def __init__(
        self, fd: int, prefix: bytes, log: IO[bytes], keep: int = 0, idle: Sequence[str] = ()
    ) -> None:
        self.fd, self.prefix, self.log = fd, prefix, log
        # Bytes of output that show progress: all of it but lines of the CLI's own retry loop
        # (`idle`, its model's stall patterns).
        self.progress = 0
        self.idle = [re.compile(p) for p in idle]
        # All of the output, up to its last `keep` bytes: a CLI's JSON, read once it exits.
        self.keep = keep
        self.kept = bytearray()
        self.partial = b""
        self.lines = 0
        self.head: list[str] = []
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def read(self) -> bool:
        """Read what is there; False at end of file."""
        data = os.read(self.fd, self.CHUNK)
        if not data:
            self._emit(self.partial)
            self.partial = b""
            return False
        data = self.partial + data
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) > self.CHUNK:
            cut = len(data)  # a very long line without a newline: pass it on in parts
        self.partial = data[cut:]
        self._emit(data[:cut])
        return True

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        if self.keep:
            self.kept += data
            if len(self.kept) > self.keep:
                del self.kept[: len(self.kept) - self.keep]
        lines = data.splitlines(keepends=True)
        self.log.write(b"".join(self.prefix + line for line in lines))
        self.log.flush()
        text = [line.decode(errors="replace") for line in lines]
        if self.idle:
            self.progress += sum(len(t) for t in text if not any(p.search(t) for p in self.idle))
        else:
            self.progress += len(data)
        self.lines += len(text)
        self.head.extend(text[: HEAD_LINES - len(self.head)])
        self.tail.extend(text)

    def close(self) -> None:
        os.close(self.fd)


class StallWatch:
    """A CLI caught in its own retry loop never exits by itself (codex without network prints
    `Reconnecting... waiting for network` forever; aider waits 5 minutes for a browser login).
    The first output line matching one of `patterns` starts a clock; `grace` seconds later,
    still running, it is stalled: `check` returns that line."""

    def __init__(self, patterns: Sequence[str], grace: float, streams: Sequence[Stream]) -> None:
        self.patterns = [re.compile(p) for p in patterns]
        self.grace, self.streams = grace, streams
        self.seen = [0] * len(streams)
        self.line: str | None = None
        self.since = 0.0

    def check(self, now: float) -> str | None:
        if self.line is None:
            self.line = self._matched()
            self.since = now
        if self.line is not None and now - self.since >= self.grace:
            return self.line
        return None

    def _matched(self) -> str | None:
        for i, stream in enumerate(self.streams):
            new, self.seen[i] = stream.lines - self.seen[i], stream.lines
            recent = list(stream.tail)[-new:] if new > 0 else []
            for text in recent:
                if any(p.search(text) for p in self.patterns):
                    return text.strip()
        return None


def pump(sel: selectors.BaseSelector, timeout: float) -> None:
    for key, _ in sel.select(max(0.0, timeout)):
        stream = key.data
        if stream is not None and not stream.read():
            sel.unregister(key.fd)


def feed(fd: int, data: bytes) -> None:
    """Write the prompt and close the pipe without blocking: at most PIPE_BUF bytes always fit
    in a new pipe; a prompt that does not fit at once gets a thread for the rest."""
    written = 0
    try:
        if len(data) > select.PIPE_BUF:
            os.set_blocking(fd, False)
        written = os.write(fd, data)
    except BlockingIOError:
        pass
    except OSError:  # the model exited without reading (EPIPE)
        written = len(data)
    if written >= len(data):
        os.close(fd)
        return
    os.set_blocking(fd, True)
    threading.Thread(target=_feed_rest, args=(fd, data[written:]), daemon=True).start()


def _feed_rest(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:  # the model exited without reading it all
        pass
    finally:
        os.close(fd)


def excerpt(stream: Stream) -> str:
    """What a stream said, bounded: all of it if short, else its first lines, "…", its last."""
    tail = "".join(stream.tail)
    before = stream.lines - len(stream.tail)  # lines that left the tail
    if before <= 0 and len(tail) <= TAIL_CHARS:
        return tail.strip()
    if before <= 0:  # a few long lines: the text is all in the tail
        head, rest = tail[:HEAD_CHARS], tail[HEAD_CHARS:]
        gap = True
    else:
        head, rest = "".join(stream.head[:before])[:HEAD_CHARS], tail
        gap = before > len(stream.head)
    room = TAIL_CHARS - len(head) - 3
    if len(rest) > room:
        rest, gap = rest[-room:], True
    return (head.rstrip() + ("\n…\n" if gap else "\n") + rest.lstrip()).strip()
