"""
What server and client WebSocket connections share: the Twisted glue
around one L{WebSocketProtocol}.

The protocol decides; this module does the I/O: it feeds the bytes the
lower connection received, writes what the protocol returns, runs the
timers (handshake, closing, keepalive, message), applies the send-buffer
policy, accounts the bytes incomplete messages hold, and dispatches events
to the application. L{txratchet.wsserver} and L{txratchet.client.layer}
add each side's opening handshake.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypedDict, TypeVar, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txratchet.commands import execute
from txratchet.connection import Connection, Drain, checkMessage, countSent
from txratchet.interfaces import IApplication, IConnection, LowerConnection, hooksOf
from txratchet.stats import NOT_OPEN, LayerStats, Level
from txratchet.websocket import rfc6455
from txratchet.websocket.events import CloseReceived, Event, Failed, Opened, Ping, Pong
from txratchet.websocket.protocol import (
    CLOSED,
    CONNECTING,
    OPEN,
    Limits,
    Reader,
    State,
    WebSocketProtocol,
)

log = Logger()

#: What incomplete messages may hold, all connections of a layer together.
DEFAULT_MAX_INCOMPLETE_BYTES = 64 * 1024 * 1024

#: A send-buffer policy: C{"close"}, C{"drop"}, or C{(conn, message) -> drop?}.
SendBufferPolicy = str | Callable[[Any, str | bytes], bool]


class LayerOptions(TypedDict, total=False):
    """
    The options both WebSocket layers (the server's L{txratchet.WebSocket}
    and L{txratchet.client.WebSocketClient}) take, with the same meaning
    and defaults; L{txratchet.WebSocket} documents each.
    """

    subprotocols: Sequence[str] | None
    maxMessageSize: int
    maxFrameSize: int | None
    maxIncompleteBytes: int | None
    messageTimeout: float | None
    handshakeTimeout: float | None
    closeTimeout: float | None
    pingInterval: float | None
    pingTimeout: float | None
    idleTimeout: float | None
    maxSendBuffer: int
    sendBufferPolicy: SendBufferPolicy
    clock: IReactorTime | None
    logConnections: Level | None


class BaseWebSocketConnection(Connection):
    """
    One WebSocket peer, as the application sees it (either side).

    @ivar protocol: C{'hixie-76'}, C{'hybi-07'}, C{'hybi-08'} or
        C{'rfc6455'} once the handshake chose it, C{''} before.
    @ivar peer: the peer's address (a Twisted C{IAddress}).
    @ivar transport: the Twisted transport underneath, when there is one
        (for TLS details or socket options; write through L{send}).
    """

    # Slots keep an idle connection small; __dict__ (from Connection) still
    # takes what applications and decorators add (conn.session, ...).
    __slots__ = (
        "_dropping",
        "_frame",
        "_incomplete",
        "_layer",
        "_liveTimer",
        "_messageTimer",
        "_outer",
        "_proto",
        "_reader",
        "_send",
        "_stats",
        "_timer",
        "_watchActivity",
        "peer",
        "transport",
    )

    def __init__(
        self, layer: WebSocketLayer[Any], lower: LowerConnection, proto: WebSocketProtocol
    ) -> None:
        super().__init__(layer.app)
        self._layer = layer
        self._outer = lower
        self._send = lower.send
        self._proto = proto
        self.peer = lower.peer
        self.transport = lower.transport
        self._dropping = False
        self._timer: IDelayedCall | None = None
        # Bytes of a message in progress counted against the layer's
        # maxIncompleteBytes, and its messageTimeout (only for messages that
        # span reads: a message read whole costs nothing here).
        self._incomplete = 0
        self._messageTimer: IDelayedCall | None = None
        self._liveTimer: IDelayedCall | None = None
        self._watchActivity = proto.watchesActivity
        # Once open: the protocol's reader and framer, called directly on
        # the hot paths (see _becomeOpen).
        self._reader: Reader | None = None
        self._frame: Callable[[str | bytes], tuple[bytes, bytes]] = proto.frame
        # Its family's counters (layer.stats), from _becomeOpen on.
        self._stats = NOT_OPEN

    # -- What the protocol knows -------------------------------------------------

    @property
    def protocol(self) -> str:  # type: ignore[override]
        """
        The protocol family: C{'hixie-76'}, C{'hybi-07'}, C{'hybi-08'} or
        C{'rfc6455'} once the handshake chose it, C{''} before.
        """
        return self._proto.family or ""

    @property
    def state(self) -> State:
        """
        The connection's L{State} (C{CONNECTING}, C{OPEN}, C{CLOSING},
        C{CLOSED}).
        """
        return self._proto.state

    @property
    def subprotocol(self) -> str | None:
        """
        The negotiated subprotocol, or C{None}.
        """
        return self._proto.subprotocol

    @property
    def compression(self) -> Any:
        """
        The agreed permessage-deflate parameters (a
        L{txratchet.websocket.deflate.DeflateParams}, named as the server
        names them), or C{None}.
        """
        return self._proto.compression

    @property
    def closeCode(self) -> int | None:  # type: ignore[override]  # a plain attribute on line connections
        """
        The code of the close frame the peer sent (to start the closing
        handshake or to answer ours); when we failed the connection, the
        code we failed it with; 1006 when it just dropped.
        """
        return self._proto.closeCode

    @property
    def closeReason(self) -> str:  # type: ignore[override]  # a plain attribute on line connections
        """
        The reason that came with L{closeCode}.
        """
        return self._proto.closeReason

    @property
    def wasClean(self) -> bool:  # type: ignore[override]  # a plain attribute on line connections
        """
        Did the closing handshake complete normally?
        """
        return self._proto.wasClean

    @property
    def websocketProtocol(self) -> WebSocketProtocol:
        """
        The sans-I/O protocol object underneath (for layers built on it).
        """
        return self._proto

    def _path(self) -> str:
        """
        The request's path (for the connection log), C{''} before it.
        """
        request = self._proto.request
        return request.path if request is not None else ""

    # -- Sending -----------------------------------------------------------------

    def send(self, message: str | bytes) -> None:
        """
        Send a text (C{str}) or binary (C{bytes}) message.

        Dropped when the connection is not open. Sending the same object
        to many server connections (a broadcast) frames it once per
        protocol family, not once per connection.

        @raise TypeError: C{message} is not C{str} or bytes-like
            (C{bytearray} and C{memoryview} are sent as binary).
        @raise txratchet.errors.BinaryNotSupported: binary on a Hixie-76
            connection.
        """
        cls = message.__class__
        if cls is not str and cls is not bytes:
            message = checkMessage(message)
        proto = self._proto
        if proto.state is not OPEN:
            return
        outer = self._outer
        if outer.writePaused:
            layer = self._layer
            if outer.bufferedWhilePaused > layer.maxSendBuffer and layer.stats.sendBufferFull(
                layer.sendBufferPolicy,
                self._sendBufferFull(layer.sendBufferPolicy, layer.maxSendBuffer, message),
            ):
                return
        header, payload = self._frame(message)
        # (Its bytes are counted where they are written: see countSent.)
        self._stats.messagesOut += 1
        # Small frames come whole (payload b""); large payloads apart, so
        # they are never copied into one piece.
        self._send(header)
        if payload:
            self._send(payload)

    def _overflowed(self) -> None:
        self._proto.fail(rfc6455.POLICY_VIOLATION, "Send buffer overflow", sendClose=False)
        self._outer.abort()

    def ping(self, payload: bytes = b"") -> None:
        """
        Send a ping (RFC 6455 family only; at most 125 bytes).
        """
        data = self._proto.ping(payload)
        if data:
            self._send(data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """
        Start the closing handshake; what was sent before is delivered
        first. The peer is aborted if it does not answer within the
        layer's C{closeTimeout}.
        """
        proto = self._proto
        if proto.state is CONNECTING:
            self._closeConnecting()
            return
        if proto.state is not OPEN:
            return
        self._send(proto.close(code, reason))
        self._startTimer(self._layer.closeTimeout, self._closeTimedOut)

    def _closeConnecting(self) -> None:
        """
        L{close} before the handshake completed.
        """
        self._proto.endHandshake()
        self._armCloseTimer()
        self._outer.close()

    def _pauseReading(self) -> None:
        self._outer.pauseReading()

    def _resumeReading(self) -> None:
        self._outer.resumeReading()

    # -- Receiving -----------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """
        Bytes from the lower connection.
        """
        if self._watchActivity:
            self._proto.lastReceived = self._layer.clock.seconds()
        reader = self._reader
        if reader is None:
            self._handshakeData(data)
            return
        # Open: straight to the family's reader (which reads nothing more
        # once the connection failed, RFC 6455 7.1.7).
        self._stats.bytesIn += len(data)
        events = reader.receive(data)
        if events:
            self._dispatch(events)
        held = reader.buffered()
        if held or self._incomplete:
            self._holdIncomplete(held, events)

    def _handshakeData(self, data: bytes) -> None:
        """
        Bytes before the connection is open: the opening handshake's.
        """
        try:
            events = self._proto.receive(data)
        except Exception as e:
            self._handshakeRaised(e)
            return
        if events:
            self._handshakeEvents(events)

    def _handshakeEvents(self, events: Sequence[Event]) -> None:
        """
        What the handshake's bytes gave (each side says what it expects):
        here, a client's L{Opened} and the frames that came with it.
        """
        self._dispatch(events)
        reader = self._reader
        if reader is not None and (reader.buffered() or self._incomplete):
            self._holdIncomplete(reader.buffered(), events)

    def _handshakeRaised(self, error: Exception) -> None:
        """
        The opening handshake failed while reading (each side says how).
        """
        raise error

    def _dispatch(self, events: Sequence[Event]) -> None:
        app = self.app
        proto = self._proto
        for event in events:
            cls = event.__class__
            if cls is str or cls is bytes:
                if proto.state is CLOSED:
                    return
                self._stats.messagesIn += 1
                if self._busy:
                    self._wait(event)  # type: ignore[arg-type]
                    continue
                try:
                    result = app.onMessage(self, event)  # type: ignore[arg-type]
                except Exception:
                    self.reportError(Failure())
                else:
                    if result is not None:
                        execute(result, self)
            elif cls is Ping:
                pong = proto.pong(event.payload)  # type: ignore[union-attr]
                if pong:
                    self._send(pong)
            elif cls is Pong:
                pass  # anything received proves liveness; nothing else to do
            elif cls is CloseReceived:
                self._closeReceived(event)  # type: ignore[arg-type]
                return
            elif cls is Failed:
                failed: Failed = event  # type: ignore[assignment]
                self._fail(failed.code, failed.reason)
                return
            elif cls is Opened:
                self._opened(event)  # type: ignore[arg-type]
                if proto.state is CLOSED:
                    return

    def _opened(self, event: Opened) -> None:
        """
        A client's handshake succeeded.
        """

    def _closeReceived(self, event: CloseReceived) -> None:
        answer, closeNow = self._proto.closeReceived(event)
        if answer:
            self._send(answer)
        # Whoever started the close, the connection ends within closeTimeout
        # of that start (a timer already running is kept).
        self._armCloseTimer()
        if closeNow or not self._layer.closeTimeout:
            # RFC 6455 7.1.1: the server closes TCP; a client waits for it
            # (unless nothing would ever end the wait).
            self._outer.close()

    def _fail(self, code: int, reason: str) -> None:
        """
        Fail the connection (RFC 6455 7.1.7): send a close frame with the
        code and close the TCP connection, processing nothing more from the
        peer (not even its close answer).

        Our side of TCP is shut after the close frame is flushed; what the
        peer still sends is read and thrown away until it closes too (or
        C{closeTimeout} passes), so unread input never turns our close
        into a reset that could destroy the close frame in flight.
        """
        log.info(
            "Failing WebSocket connection from {peer}: {code} {reason}",
            peer=self.peer,
            code=code,
            reason=reason,
        )
        out = self._proto.fail(code, reason)
        if out:
            self._send(out)
        self._startTimer(self._layer.closeTimeout, self._closeTimedOut)
        self._outer.closeWrite()

    # -- Messages spanning reads -------------------------------------------------------

    def _holdIncomplete(self, held: int, events: Sequence[Event]) -> None:
        """
        A message spans reads and holds C{held} bytes: count them against
        the layer's C{maxIncompleteBytes} (shared by all its connections,
        so silent peers cannot each pin C{maxMessageSize}) and time the
        message against C{messageTimeout}.
        """
        if self._proto.state is CLOSED:
            return  # connectionLost already let go of it
        layer = self._layer
        before = self._incomplete
        if held > before and layer.incompleteBytes + held - before > layer.maxIncompleteBytes:
            log.info(
                "{peer}: incomplete messages over the {limit}-byte budget; closing",
                peer=self.peer,
                limit=layer.maxIncompleteBytes,
            )
            self._dropIncomplete(
                rfc6455.TRY_AGAIN_LATER, "Server busy: too much incomplete message data"
            )
            return
        layer.incompleteBytes += held - before
        self._incomplete = held
        if not held:
            self._cancelMessageTimer()
            return
        timeout = layer.messageTimeout
        if timeout and (
            self._messageTimer is None
            # A message ended in this read: the one held now began in it.
            or any(e.__class__ is str or e.__class__ is bytes for e in events)
        ):
            self._cancelMessageTimer()
            self._messageTimer = layer.clock.callLater(timeout, self._messageTimedOut)

    def _messageTimedOut(self) -> None:
        self._messageTimer = None
        if self._incomplete and self._proto.state is not CLOSED:
            log.info(
                "{peer}: a message took over {timeout} s to arrive; closing",
                peer=self.peer,
                timeout=self._layer.messageTimeout,
            )
            self._dropIncomplete(
                rfc6455.POLICY_VIOLATION,
                "Message not completed within %g s" % (self._layer.messageTimeout or 0),
            )

    def _cancelMessageTimer(self) -> None:
        timer = self._messageTimer
        if timer is not None:
            self._messageTimer = None
            if timer.active():
                timer.cancel()

    def _releaseIncomplete(self) -> None:
        self._layer.incompleteBytes -= self._incomplete
        self._incomplete = 0
        self._cancelMessageTimer()

    def _dropIncomplete(self, code: int, reason: str) -> None:
        """
        Let go of the message in progress and fail the connection.
        """
        self._proto.stopReading()
        self._releaseIncomplete()
        self._fail(code, reason)

    # -- Opening -----------------------------------------------------------------------

    def _becomeOpen(self) -> None:
        """
        The handshake is done: start the keepalive, tell the application.
        """
        self._cancelTimer()
        proto = self._proto
        self._reader = proto.reader
        self._frame = proto.framer
        self._stats = stats = self._layer.stats.opened(self, proto.family or "", self._path())
        countSent(self._outer, stats)
        if proto.compressing:
            self._layer.compressing += 1
        if self._watchActivity:
            proto.lastReceived = self._layer.clock.seconds()
            self._armLiveTimer()
        try:
            result = self.app.onOpen(self)
        except Exception:
            self.reportError(Failure())
        else:
            execute(result, self)

    # -- Timers and the end ------------------------------------------------------------

    def _startTimer(self, seconds: float | None, f: Callable[[], None]) -> None:
        self._cancelTimer()
        if seconds:
            self._timer = self._layer.clock.callLater(seconds, f)

    def _cancelTimer(self) -> None:
        timer = self._timer
        if timer is not None:
            self._timer = None
            if timer.active():
                timer.cancel()

    def _armCloseTimer(self, restart: bool = False) -> None:
        """
        The connection is closing: whoever started it, it is aborted if it
        is still there after C{closeTimeout} (a peer that stops reading
        would otherwise keep a flush, and its socket, waiting for ever).
        A close timer already running (we started the close) is kept.
        """
        if restart or self._timer is None:
            self._startTimer(self._layer.closeTimeout, self._closeTimedOut)

    def _armLiveTimer(self) -> None:
        when = self._proto.nextLivenessCheck()
        if when is not None:
            clock = self._layer.clock
            self._liveTimer = clock.callLater(
                max(0.001, when - clock.seconds()), self._checkLiveness
            )

    def _checkLiveness(self) -> None:
        """
        Carry out the protocol's keepalive decision.
        """
        self._liveTimer = None
        if self._busy:
            # Reading is paused for a handler coroutine: the peer's silence
            # (or its unread pong) says nothing; count from now.
            self._proto.lastReceived = self._layer.clock.seconds()
            self._armLiveTimer()
            return
        decision = self._proto.liveness(self._layer.clock.seconds())
        if decision.close is not None:
            code, reason = decision.close
            log.info("Closing connection from {peer}: {reason}", peer=self.peer, reason=reason)
            self.close(code, reason)
            return
        if decision.ping:
            self._send(decision.ping)
        if decision.nextCheck is not None:
            self._armLiveTimer()

    def _closeTimedOut(self) -> None:
        # Still here (connectionLost cancels this timer): the peer did not
        # answer our close, or does not read what is queued for it.
        self._timer = None
        log.info("Closing handshake with {peer} timed out; aborting", peer=self.peer)
        self._outer.abort()

    def connectionLost(self) -> None:
        """
        The layer below lost the connection.
        """
        self._cancelTimer()
        live = self._liveTimer
        if live is not None and live.active():
            live.cancel()
        self._liveTimer = None
        if self._incomplete or self._messageTimer is not None:
            self._releaseIncomplete()
        proto = self._proto
        if proto.compressing:
            self._layer.compressing -= 1
        self._cancelHandlers()
        if not proto.connectionLost():
            return
        self._layer.stats.closed(self, self._stats, proto.closeCode, self._path())
        try:
            result = self.app.onClose(self)
        except Exception:
            log.failure("onClose raised")
        else:
            execute(result)


ConnectionT = TypeVar("ConnectionT", bound=BaseWebSocketConnection)


class WebSocketLayer(Generic[ConnectionT]):
    """
    What the server and client WebSocket layers share: the options both
    sides have, the table of connections by lower connection, and
    graceful shutdown.

    @ivar connectionsByLower: the WebSocket connection running over each
        lower connection.
    """

    def __init__(
        self,
        app: IApplication,
        *,
        subprotocols: Sequence[str] | None = None,
        maxMessageSize: int = rfc6455.DEFAULT_MAX_MESSAGE_SIZE,
        maxFrameSize: int | None = None,
        maxIncompleteBytes: int | None = None,
        messageTimeout: float | None = 60.0,
        handshakeTimeout: float | None = 10.0,
        closeTimeout: float | None = 5.0,
        pingInterval: float | None = None,
        pingTimeout: float | None = None,
        idleTimeout: float | None = None,
        maxSendBuffer: int = 16 * 1024 * 1024,
        sendBufferPolicy: SendBufferPolicy = "close",
        clock: IReactorTime | None = None,
        logConnections: Level | None = None,
    ) -> None:
        self.app = app
        #: The application's optional hooks, read once.
        self.hooks = hooksOf(app)
        if subprotocols is None:
            subprotocols = self.hooks.subprotocols
        self.subprotocols: Sequence[str] = tuple(subprotocols or ())
        self.maxMessageSize = maxMessageSize
        self.maxFrameSize = maxFrameSize
        if maxIncompleteBytes is None:
            maxIncompleteBytes = max(DEFAULT_MAX_INCOMPLETE_BYTES, maxMessageSize)
        elif maxIncompleteBytes < maxMessageSize:
            raise ValueError(
                f"maxIncompleteBytes ({maxIncompleteBytes}) is smaller than maxMessageSize "
                f"({maxMessageSize}): a message that large could never arrive"
            )
        self.maxIncompleteBytes = maxIncompleteBytes
        #: Bytes incomplete messages hold right now (see maxIncompleteBytes).
        self.incompleteBytes = 0
        self.messageTimeout = messageTimeout
        self.handshakeTimeout = handshakeTimeout
        self.closeTimeout = closeTimeout
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.idleTimeout = idleTimeout
        if sendBufferPolicy not in ("close", "drop") and not callable(sendBufferPolicy):
            raise ValueError("sendBufferPolicy must be 'close', 'drop' or a callable")
        self.maxSendBuffer = maxSendBuffer
        self.sendBufferPolicy = sendBufferPolicy
        #: How many open connections compress.
        self.compressing = 0
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        self.clock: IReactorTime = clock  # type: ignore[assignment]
        #: What this layer counted (L{txratchet.metrics} exposes it), and
        #: its connection log (C{logConnections}: a level, or C{None}).
        self.stats = LayerStats(self.clock, logConnections)
        self._limits: Limits | None = None
        self.connectionsByLower: dict[LowerConnection, ConnectionT] = {}
        self._drain = Drain(self.connectionsByLower, self.clock)

    @property
    def limits(self) -> Limits:
        """
        The L{Limits} every connection of this layer shares, made from the
        layer's options when the first connection arrives.
        """
        limits = self._limits
        if limits is None:
            limits = self._limits = Limits(
                self.maxMessageSize,
                self.maxFrameSize,
                *self._handshakeLimits,
                self.pingInterval,
                self.pingTimeout,
                self.idleTimeout,
            )
        return limits

    @property
    def _handshakeLimits(self) -> tuple[int, int]:
        """
        The size limits on the peer's handshake head: (bytes, fields).
        """
        return (16384, 100)

    @property
    def connections(self) -> list[ConnectionT]:
        """
        The connections open (or opening) right now.
        """
        return list(self.connectionsByLower.values())

    def connectionFor(self, lower: LowerConnection) -> ConnectionT | None:
        """
        The WebSocket connection running over C{lower} (the connection the
        layer below handed us), if any.
        """
        return self.connectionsByLower.get(lower)

    def shutdown(
        self, code: int = rfc6455.GOING_AWAY, reason: str = "Server shutting down"
    ) -> Deferred[None]:
        """
        Close every connection (RFC 6455 peers get C{code}, 1001 Going Away
        by default), after what was already sent to them.

        @return: a Deferred that fires once every connection is gone:
            within C{closeTimeout} (and a second's grace), for whatever
            remains then (peers that do not answer or do not read) is
            aborted. With C{closeTimeout=None} it waits for every peer.
        """
        for ws in list(self.connectionsByLower.values()):
            ws.close(code, reason)
        return self._drain.wait(self.closeTimeout or None)

    def _newConnection(self, lower: LowerConnection) -> ConnectionT:
        raise NotImplementedError()

    # IApplication, as seen by the layer below.

    def onOpen(self, conn: IConnection) -> None:
        lower = cast(LowerConnection, conn)  # what a layer below hands on
        self.connectionsByLower[lower] = self._newConnection(lower)

    def onMessage(self, conn: IConnection, message: str | bytes) -> None:
        ws = self.connectionsByLower.get(conn)  # type: ignore[call-overload]
        if ws is not None:
            if isinstance(message, str):
                message = message.encode("utf-8")
            ws.dataReceived(message)

    def onClose(self, conn: IConnection) -> None:
        ws = self.connectionsByLower.pop(conn, None)  # type: ignore[call-overload]
        if ws is not None:
            ws.connectionLost()
        self._drain.check()

    def onError(self, conn: IConnection, failure: Failure) -> None:
        # This layer itself failed (the connection below logged it): drop
        # the connection, whose state can no longer be trusted.
        conn.abort()  # type: ignore[attr-defined]


__all__ = ["BaseWebSocketConnection", "WebSocketLayer"]
