"""
A chat that remembers: async handlers awaiting a real database.

Every message is stored in SQLite through Twisted's C{adbapi} (queries run
in a thread pool; the handlers await them), and whoever joins first gets the
last messages. Each handler is an C{async def}: txratchet runs it, carries
out the command it returns, and hands its exceptions to C{onError}. A
connection's next message waits until its previous handler has finished, so
one sender's messages are stored and broadcast in the order they were sent.

Run it from the repository root::

    twistd -n txratchet --app examples.history.History

The database is C{history.sqlite3} in the current directory; set
C{TXRATCHET_HISTORY_DB} to put it elsewhere (C{:memory:} keeps nothing).
"""

from __future__ import annotations

import os

from twisted.enterprise import adbapi
from twisted.python.failure import Failure

from txratchet import Application, CloseConnection, Composite, IConnection, SendMessage

#: Messages a newcomer is sent.
REPLAY = 20
#: Longest message stored (longer ones are refused with close code 1009).
MAX_LENGTH = 4096


class History(Application):
    def __init__(self, path: str | None = None) -> None:
        if path is None:
            path = os.environ.get("TXRATCHET_HISTORY_DB", "history.sqlite3")
        # One connection, shared by the pool's one thread: SQLite serializes
        # writers anyway, and ":memory:" is one database per connection.
        self.db = adbapi.ConnectionPool(
            "sqlite3", path, check_same_thread=False, cp_min=1, cp_max=1
        )
        self.ready = self.db.runOperation(
            "CREATE TABLE IF NOT EXISTS messages"
            " (id INTEGER PRIMARY KEY, sender TEXT NOT NULL, text TEXT NOT NULL)"
        )
        self.clients: set[IConnection] = set()

    async def onOpen(self, conn: IConnection) -> Composite:
        await self.ready
        rows = await self.db.runQuery(
            "SELECT sender, text FROM messages ORDER BY id DESC LIMIT ?", (REPLAY,)
        )
        self.clients.add(conn)
        return Composite(SendMessage(conn, f"{sender}: {text}") for sender, text in reversed(rows))

    async def onMessage(self, conn: IConnection, msg: str | bytes) -> Composite | CloseConnection:
        if not isinstance(msg, str):
            return CloseConnection(conn, 1003, "Text only")
        if len(msg) > MAX_LENGTH:
            return CloseConnection(conn, 1009, "Message too long")
        sender = str(conn.peer.host)
        # Parameters, never string formatting: the text is the peer's.
        await self.db.runOperation(
            "INSERT INTO messages (sender, text) VALUES (?, ?)", (sender, msg)
        )
        line = f"{sender}: {msg}"
        return Composite(SendMessage(c, line) for c in self.clients)

    def onClose(self, conn: IConnection) -> None:
        self.clients.discard(conn)

    def onError(self, conn: IConnection, failure: Failure) -> CloseConnection:
        # Already logged with its traceback (a failed query, say).
        return CloseConnection(conn, 1011, "Internal error")
