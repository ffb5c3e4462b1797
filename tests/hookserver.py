"""A local webhook server for the notification tests: records each POST (path, headers, body),
answers the codes queued in `answers` (then 204), and while `hold` is set keeps requests
unanswered until `release` (a webhook that never answers)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Hook:
    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.answers: list[int] = []
        self.hold = False
        self.waiting = 0  # requests held unanswered now
        self.release = threading.Event()
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.hold:
                    with hook.lock:
                        hook.waiting += 1
                    hook.release.wait()
                with hook.lock:
                    hook.posts.append((self.path, dict(self.headers), body))
                    code = hook.answers.pop(0) if hook.answers else 204
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, path: str) -> list[dict[str, Any]]:
        """The JSON bodies posted to `path`, in order."""
        return [json.loads(body) for p, _, body in list(self.posts) if p == path]


@contextmanager
def hook_server() -> Iterator[Hook]:
    made = Hook()
    try:
        yield made
    finally:
        made.release.set()
        made.server.shutdown()
        made.server.server_close()
