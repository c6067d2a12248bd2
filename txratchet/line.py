"""
L{LineProtocol}: the same applications over newline-delimited TCP.

Wrap the very application you serve over WebSockets and telnet or netcat
users join in: each line received is one message, each message sent is one
line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet.commands import execute
from txratchet.connection import Connection, Drain, checkMessage, countSent
from txratchet.interfaces import IApplication, IConnection, LowerConnection
from txratchet.stats import LayerStats, Level

log = Logger()

#: What must not reach a terminal as it is: line breaks (CR, LF, and the
#: Unicode line and paragraph separators), every other C0 control but TAB
#: (ESC starts the escape sequences that clear screens or retitle windows),
#: DEL, and the C1 controls (U+009B is a one-character CSI).
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
#: The same in bytes that are not UTF-8 (an 8-bit terminal reads 0x80-0x9F
#: as C1 controls).
_CONTROL_BYTES = re.compile(b"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escapeChar(match: re.Match[str]) -> str:
    c = match.group()
    named = _NAMED.get(c)
    if named is not None:
        return named
    code = ord(c)
    return "\\x%02x" % code if code < 0x100 else "\\u%04x" % code


def _escapeByte(match: re.Match[bytes]) -> bytes:
    return b"\\x%02x" % match.group()[0]


def escapeText(text: str) -> str:
    """
    C{text} made safe to show as one line of a terminal: line breaks and
    control characters become visible escapes (a newline is C{\\n}, ESC
    is C{\\x1b}); TAB stays.
    """
    return text if text.isprintable() else _CONTROLS.sub(_escapeChar, text)


def escapeBytes(data: bytes) -> bytes:
    """
    L{escapeText} for bytes: UTF-8 is escaped as text; other bytes have
    their C0 and C1 control bytes and DEL escaped.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _CONTROL_BYTES.sub(_escapeByte, data)
    return data if text.isprintable() else escapeText(text).encode("utf-8")


class LineConnection(Connection):
    """
    One line-protocol peer.

    @ivar peer: the peer's address.
    @ivar closeCode: the code L{close} was given; 1008 when the peer was
        dropped for not reading (see C{sendBufferPolicy}); C{None} when the
        peer left.
    @ivar closeReason: the reason that came with it.
    """

    protocol = "line"

    def __init__(self, layer: LineProtocol, outer: LowerConnection) -> None:
        super().__init__(layer.app)
        self._layer = layer
        self._outer = outer
        self.peer = outer.peer
        self._buffer = b""
        self._dropping = False
        self._timer: IDelayedCall | None = None
        self.closed = False
        self.closeCode: int | None = None
        self.closeReason = ""
        self._stats = layer.stats.opened(self, self.protocol, "")
        countSent(outer, self._stats)

    def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """
        Send C{message} as one line: C{str} encoded as UTF-8, bytes as they
        are, followed by the delimiter. A message is always exactly one
        line: line breaks and control characters in it are sent as visible
        escapes (see L{escapeText}), so no message can forge lines from
        someone else or drive the peer's terminal.

        @raise TypeError: C{message} is not text or bytes.
        """
        if self.closed:
            return
        cls = message.__class__
        if cls is not str and cls is not bytes:
            message = checkMessage(message)
        if isinstance(message, str):
            data = escapeText(message).encode("utf-8")
        else:
            data = escapeBytes(message)  # type: ignore[arg-type]  # checkMessage made it bytes
        layer = self._layer
        if layer._delimiterPrintable:
            data = data.replace(layer.delimiter, layer._escapedDelimiter)
        outer = self._outer
        if (
            outer.writePaused
            and outer.bufferedWhilePaused > layer.maxSendBuffer
            and layer.stats.sendBufferFull(
                layer.sendBufferPolicy,
                self._sendBufferFull(layer.sendBufferPolicy, layer.maxSendBuffer, message),
            )
        ):
            return
        self._stats.messagesOut += 1  # (its bytes: see countSent)
        outer.send(data + layer.delimiter)

    def _overflowed(self) -> None:
        self.closeCode = 1008
        self.closeReason = "Send buffer overflow"
        self.abort()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """
        Close after what was sent is flushed; a C{reason} is sent as a last
        line. A peer that does not take it all within the layer's
        C{closeTimeout} is aborted.
        """
        if self.closed:
            return
        if reason:
            self.send(reason)
            if self.closed:  # the send buffer policy dropped the peer
                return
        self.closeCode = code
        self.closeReason = reason
        self.closed = True
        timeout = self._layer.closeTimeout
        if timeout:
            self._timer = self._layer.clock.callLater(timeout, self._closeTimedOut)
        self._outer.close()

    def abort(self) -> None:
        """
        Drop the connection now, discarding what is queued.
        """
        self.closed = True
        self._outer.abort()

    def _closeTimedOut(self) -> None:
        self._timer = None
        log.info("{peer} did not take its last lines in time; aborting", peer=self.peer)
        self.abort()

    def connectionLost(self) -> None:
        self.closed = True
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
        self._cancelHandlers()

    def _pauseReading(self) -> None:
        self._outer.pauseReading()

    def _resumeReading(self) -> None:
        self._outer.resumeReading()

    def dataReceived(self, data: bytes) -> None:
        layer = self._layer
        stats = self._stats
        stats.bytesIn += len(data)
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
            stats.messagesIn += 1
            if self._busy:
                self._wait(message)  # an async onMessage still runs: in order, later
                continue
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
    trailing carriage return is dropped (telnet sends CRLF). Each message
    sent is one line, its line breaks and control characters escaped.

    @param delimiter: the line delimiter.
    @param maxLineLength: longer lines close the connection.
    @param maxSendBuffer: bytes that may queue up for a peer that stopped
        reading (beyond the transport's own 64 KiB) before
        C{sendBufferPolicy} applies; meanwhile the server stops reading
        from that peer.
    @param sendBufferPolicy: C{"close"} aborts the connection (its
        C{closeCode} is 1008), C{"drop"} discards further lines to that
        peer until it reads again, or a callable C{(conn, message) -> bool}
        that decides (True: drop the message).
    @param closeTimeout: seconds a closing connection has to take its last
        lines before it is aborted; also bounds L{shutdown}. C{None}: no
        limit.
    @param clock: the reactor's time provider (for tests).
    @param logConnections: log one line per connection opened and one per
        connection closed at this level (C{LogLevel.info}); C{None}, the
        default: not logged.
    """

    def __init__(
        self,
        app: IApplication,
        *,
        delimiter: bytes = b"\n",
        maxLineLength: int = 65536,
        maxSendBuffer: int = 16 * 1024 * 1024,
        sendBufferPolicy: str | Callable[[LineConnection, str | bytes], bool] = "close",
        closeTimeout: float | None = 5.0,
        clock: IReactorTime | None = None,
        logConnections: Level | None = None,
    ) -> None:
        if sendBufferPolicy not in ("close", "drop") and not callable(sendBufferPolicy):
            raise ValueError("sendBufferPolicy must be 'close', 'drop' or a callable")
        if not delimiter:
            raise ValueError("the delimiter cannot be empty")
        self.app = app
        self.delimiter = delimiter
        # A delimiter that escaping control characters does not already
        # take out of messages (say b"|") is escaped on its own.
        self._delimiterPrintable = bool(_CONTROL_BYTES.sub(b"", delimiter))
        self._escapedDelimiter = b"".join(b"\\x%02x" % b for b in delimiter)
        self.maxLineLength = maxLineLength
        self.maxSendBuffer = maxSendBuffer
        self.sendBufferPolicy = sendBufferPolicy
        self.closeTimeout = closeTimeout
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        self.clock: IReactorTime = clock  # type: ignore[assignment]
        #: What this layer counted (see L{txratchet.metrics}), and its
        #: connection log.
        self.stats = LayerStats(self.clock, logConnections)
        self._connections: dict[LowerConnection, LineConnection] = {}
        self._drain = Drain(self._connections, self.clock)

    def shutdown(self, reason: str = "Server shutting down") -> Deferred[None]:
        """
        Close every connection, sending C{reason} as a last line.

        @return: a Deferred that fires once every connection is gone:
            within C{closeTimeout} (and a second's grace), for peers that
            do not take their last lines by then are aborted.
        """
        for line in list(self._connections.values()):
            line.close(1001, reason)
        return self._drain.wait(self.closeTimeout or None)

    def onOpen(self, conn: IConnection) -> None:
        # The connection below a protocol layer provides LowerConnection
        # (IApplication's signature names what applications get).
        lower = cast(LowerConnection, conn)
        line = self._connections[lower] = LineConnection(self, lower)
        try:
            result = self.app.onOpen(line)
        except Exception:
            line.reportError(Failure())
        else:
            execute(result, line)

    def onMessage(self, conn: IConnection, message: str | bytes) -> None:
        line = self._connections.get(cast(LowerConnection, conn))
        if line is not None:
            if isinstance(message, str):
                message = message.encode("utf-8")
            line.dataReceived(message)

    def onClose(self, conn: IConnection) -> None:
        line = self._connections.pop(cast(LowerConnection, conn), None)
        self._drain.check()
        if line is None:
            return
        line.connectionLost()
        self.stats.closed(line, line._stats, line.closeCode, "")
        try:
            result = self.app.onClose(line)
        except Exception:
            log.failure("onClose raised")
        else:
            execute(result)

    def onError(self, conn: IConnection, failure: Failure) -> None:
        # This layer itself failed (the connection below logged it).
        conn.close()
