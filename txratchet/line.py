"""
L{LineProtocol}: the same applications over newline-delimited TCP.

Wrap the very application you serve over WebSockets and telnet or netcat
users join in: each line received is one message, each message sent is one
line.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet.commands import execute
from txratchet.connection import Connection
from txratchet.interfaces import IApplication, IConnection

log = Logger()


class LineConnection(Connection):
    """
    One line-protocol peer.

    @ivar peer: the peer's address.
    """

    protocol = "line"

    def __init__(self, layer: LineProtocol, outer: Any) -> None:
        super().__init__(layer.app)
        self._layer = layer
        self._outer = outer
        self.peer = getattr(outer, "peer", None)
        self._buffer = b""
        self.closed = False

    def send(self, message: str | bytes) -> None:
        """
        Send C{message} as one line: C{str} encoded as UTF-8, C{bytes} as
        they are, followed by the delimiter.
        """
        if self.closed:
            return
        if isinstance(message, str):
            message = message.encode("utf-8")
        self._outer.send(message + self._layer.delimiter)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """
        Close after what was sent is flushed; a C{reason} is sent as a last
        line.
        """
        if self.closed:
            return
        if reason:
            self.send(reason)
        self.closed = True
        self._outer.close()

    def dataReceived(self, data: bytes) -> None:
        layer = self._layer
        delimiter = layer.delimiter
        buffer = self._buffer + data if self._buffer else data
        lines = buffer.split(delimiter)
        self._buffer = lines.pop()
        if len(self._buffer) > layer.maxLineLength:
            self._buffer = b""
            log.info("Line from {peer} too long; closing", peer=self.peer)
            self.close(1009, "Line too long (max %d bytes)" % layer.maxLineLength)
            return
        app = self.app
        for raw in lines:
            if self.closed:
                return
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if len(raw) > layer.maxLineLength:
                self.close(1009, "Line too long (max %d bytes)" % layer.maxLineLength)
                return
            message: str | bytes
            try:
                message = raw.decode("utf-8")
            except UnicodeDecodeError:
                message = raw
            try:
                result = app.onMessage(self, message)
            except Exception:
                self.reportError(Failure())
            else:
                execute(result, self)

    def __repr__(self) -> str:
        return f"<LineConnection peer={self.peer}>"


@implementer(IApplication)
class LineProtocol:
    """
    Serve C{app} over newline-delimited TCP: C{Server(LineProtocol(Chat()))}.

    Lines that are valid UTF-8 arrive as C{str}, others as C{bytes}; a
    trailing carriage return is dropped (telnet sends CRLF).

    @param delimiter: the line delimiter.
    @param maxLineLength: longer lines close the connection.
    """

    def __init__(
        self,
        app: IApplication,
        *,
        delimiter: bytes = b"\n",
        maxLineLength: int = 65536,
    ) -> None:
        self.app = app
        self.delimiter = delimiter
        self.maxLineLength = maxLineLength
        self._connections: dict[Any, LineConnection] = {}
        self._drained: list[Deferred[None]] = []

    def shutdown(self, reason: str = "Server shutting down") -> Deferred[None]:
        """
        Close every connection, sending C{reason} as a last line.

        @return: a Deferred that fires once every connection is gone.
        """
        done: Deferred[None] = Deferred()
        if not self._connections:
            done.callback(None)
            return done
        self._drained.append(done)
        for line in list(self._connections.values()):
            line.close(1001, reason)
        return done

    def onOpen(self, conn: IConnection) -> None:
        line = self._connections[conn] = LineConnection(self, conn)
        try:
            result = self.app.onOpen(line)
        except Exception:
            line.reportError(Failure())
        else:
            execute(result, line)

    def onMessage(self, conn: IConnection, message: str | bytes) -> None:
        line = self._connections.get(conn)
        if line is not None:
            if isinstance(message, str):
                message = message.encode("utf-8")
            line.dataReceived(message)

    def onClose(self, conn: IConnection) -> None:
        line = self._connections.pop(conn, None)
        if self._drained and not self._connections:
            drained, self._drained = self._drained, []
            for d in drained:
                d.callback(None)
        if line is None:
            return
        line.closed = True
        try:
            result = self.app.onClose(line)
        except Exception:
            log.failure("onClose raised")
        else:
            execute(result)

    def onError(self, conn: IConnection, failure: Failure) -> None:
        # This layer itself failed (the connection below logged it).
        conn.close()
