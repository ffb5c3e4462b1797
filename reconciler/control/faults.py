"""Where a reconcile loop records a pass that raised what nothing handles: the traceback, appended
to the town's `.tt/logs/loop.log` (0600, like every log), stamped with the time and the loop.
It decides nothing: the loop reports the error and goes on.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

from ..agents.supervisor import open_log

LOOP_LOG = "loop.log"


def record_traceback(path: Path, holder: str, error: BaseException) -> str:
    """Append `error`'s traceback to `path`; where it went (the path, or stderr if the file
    cannot be written)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    text = "".join(traceback.format_exception(error))
    entry = f"--- {stamp} loop {holder}: a pass failed ---\n{text}"
    try:
        with open_log(path) as log:
            log.write(entry.encode(errors="replace"))
    except OSError as e:
        print(f"{entry}(cannot write {path}: {e.strerror or e})", file=sys.stderr)
        return "stderr"
    return str(path)
