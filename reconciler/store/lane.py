"""One connection an agent keeps for its turns: a write whose reply it need not wait for (the
model process it just started) is sent at once, and its reply is read with the next command on
the same connection, so recording it costs no round trip of its own. The server runs one
connection's commands in the order sent. No redis import: it uses the client's connection pool.
A cluster's client has no one pool: its lane is `direct`, each command a call of the client
(which follows the town's slot from node to node).
"""

from __future__ import annotations

import contextlib
from typing import Any

from .scripts import ErrorTypes


class Lane:
    def __init__(self, client: Any, errors: ErrorTypes, *, direct: bool = False) -> None:
        self.client = client
        self.direct = direct
        self.reply_error = errors.response  # an error reply: the connection itself is fine
        self.no_script = errors.no_script
        self.conn: Any = None
        self.unread = 0  # replies of commands sent with `send`, not read yet

    def _connection(self) -> Any:
        if self.conn is None:
            pool = self.client.connection_pool
            try:
                self.conn = pool.get_connection()
            except TypeError:  # redis-py < 5.3 wants a command name
                self.conn = pool.get_connection("EVALSHA")
        return self.conn

    def send(self, *command: object) -> None:
        """Send `command` now; its reply (and any error in it) is read and dropped later."""
        if self.direct:
            with contextlib.suppress(self.reply_error):
                self.client.execute_command(*command)
            return
        try:
            self._connection().send_command(*command)
        except BaseException:
            self.drop()
            raise
        self.unread += 1

    def call(self, *command: object) -> Any:
        """Send `command` and return its reply (after reading those of earlier sends)."""
        if self.direct:
            return self.client.execute_command(*command)
        conn = self._connection()
        try:
            conn.send_command(*command)
            while self.unread:
                self.unread -= 1
                with contextlib.suppress(self.reply_error):
                    conn.read_response()
            return conn.read_response()
        except self.reply_error:
            raise
        except BaseException:  # broken, or interrupted mid-reply: its state is unknown
            self.drop()
            raise

    def eval(self, sha: str, source: str, keys: list[str], args: list[object]) -> Any:
        try:
            return self.call("EVALSHA", sha, len(keys), *keys, *args)
        except self.no_script:
            pass
        self.client.script_load(source)  # a new server: load it, then run it again
        return self.call("EVALSHA", sha, len(keys), *keys, *args)

    def drop(self) -> None:
        """Forget the connection (it broke or its state is unknown); the next call opens one."""
        conn, self.conn, self.unread = self.conn, None, 0
        if conn is not None:
            conn.disconnect()
            self.client.connection_pool.release(conn)
