"""
The WebSocket decorator: Twisted glue around the sans-I/O core.

L{WebSocket} wraps an application. It receives raw bytes from the layer
below (usually L{txratchet.server.Server}), answers the opening handshake
of whichever protocol family the client speaks, and hands the application
a L{WebSocketConnection} per peer that frames what the application sends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet import proxy
from txratchet.commands import execute
from txratchet.connection import Connection, Drain, checkMessage
from txratchet.interfaces import IApplication, IConnection
from txratchet.websocket import deflate, handshake, hixie76, rfc6455
from txratchet.websocket.handshake import (
    HIXIE76,
    HYBI07,
    HYBI08,
    RFC6455,
    HandshakeError,
    Headers,
    Request,
)

log = Logger()

#: The headers of unfragmented, unmasked small frames, by payload length.
_TEXT_HEADERS = [rfc6455.frameHeader(rfc6455.TEXT, n) for n in range(126)]
_BINARY_HEADERS = [rfc6455.frameHeader(rfc6455.BINARY, n) for n in range(126)]

CONNECTING = 0
OPEN = 1
CLOSING = 2
CLOSED = 3

#: A handler for plain HTTP requests that reach a WebSocket port: return the
#: whole response (see L{handshake.httpResponse}), or C{None} for a 400.
HTTPHandler = Callable[[Request], "bytes | None"]

#: What incomplete messages may hold, all connections of a layer together.
DEFAULT_MAX_INCOMPLETE_BYTES = 64 * 1024 * 1024

#: permessage-deflate as negotiated unless told otherwise.
DEFAULT_COMPRESSION = deflate.PerMessageDeflate()


class _FlowlessOuter:
    """
    Adapts a lower connection that does not report write back-pressure.
    """

    writePaused = False
    bufferedWhilePaused = 0

    def __init__(self, outer: Any) -> None:
        self._outer = outer
        self.send = outer.send
        self.close = outer.close
        self.peer = getattr(outer, "peer", None)
        self.secure = getattr(outer, "secure", False)

    def closeWrite(self) -> None:
        closeWrite = getattr(self._outer, "closeWrite", None)
        if closeWrite is not None:
            closeWrite()
        else:
            self._outer.close()

    def abort(self) -> None:
        abort = getattr(self._outer, "abort", None)
        if abort is not None:
            abort()
        else:
            self._outer.close()


class WebSocketConnection(Connection):
    """
    One WebSocket peer, as the application sees it.

    @ivar protocol: C{'hixie-76'}, C{'hybi-07'}, C{'hybi-08'} or
        C{'rfc6455'}.
    @ivar request: the opening handshake's L{Request}.
    @ivar path: the request path, e.g. C{'/chat'}.
    @ivar query: the raw query string, C{''} when there is none.
    @ivar params: the query, parsed: C{{name: [values]}}.
    @ivar headers: the request's L{Headers}.
    @ivar cookies: the request's cookies, C{{name: value}}.
    @ivar peer: the peer's address (a Twisted C{IAddress}); behind a
        trusted proxy, the client's address from C{Forwarded} or
        C{X-Forwarded-For}.
    @ivar transportPeer: the address of the direct peer (the proxy).
    @ivar transport: the Twisted transport underneath, when there is one
        (for TLS details or socket options; write through L{send}).
    @ivar subprotocol: the negotiated subprotocol, or C{None}.
    @ivar compression: the agreed permessage-deflate parameters, or C{None}.
    @ivar closeCode: the code of the close frame the peer sent (to start
        the closing handshake or to answer ours); when we failed the
        connection, the code we failed it with; 1006 when it just dropped.
    @ivar closeReason: the reason that came with it.
    @ivar wasClean: did the closing handshake complete normally?
    """

    protocol = ""
    #: Can this connection's data frames be shared with other connections
    #: (server frames are unmasked)? A client subclass masks every frame.
    _framesShareable = True

    # Slots keep an idle connection small; __dict__ (from Connection) still
    # takes what applications and decorators add (conn.session, ...).
    __slots__ = (
        "_accepted",
        "_compressMin",
        "_deflater",
        "_dropping",
        "_failed",
        "_held",
        "_hixie",
        "_incomplete",
        "_lastReceived",
        "_layer",
        "_liveTimer",
        "_messageTimer",
        "_outer",
        "_parser",
        "_pingSentAt",
        "_reader",
        "_send",
        "_timer",
        "_watchActivity",
        "closeCode",
        "closeReason",
        "compression",
        "cookies",
        "headers",
        "params",
        "path",
        "query",
        "request",
        "state",
        "subprotocol",
        "transport",
        "transportPeer",
        "wasClean",
    )

    def __init__(self, layer: WebSocket, outer: Any) -> None:
        super().__init__(layer.app)
        self._layer = layer
        if not hasattr(outer, "writePaused"):
            outer = _FlowlessOuter(outer)
        self._outer = outer
        self._send = outer.send
        self.peer = getattr(outer, "peer", None)
        self.transportPeer = self.peer
        self.transport = getattr(outer, "transport", None)
        self.state = CONNECTING
        self.request: Request | None = None
        self.path = ""
        self.query = ""
        self.params: dict[str, list[str]] = {}
        self.headers = Headers()
        self.cookies: dict[str, str] = {}
        self.subprotocol: str | None = None
        self.closeCode: int | None = None
        self.closeReason = ""
        self.wasClean = False
        self._parser: handshake.RequestParser | None = handshake.RequestParser(
            layer.maxHandshakeSize, layer.maxHeaders
        )
        self._reader: rfc6455.FrameReader | hixie76.FrameReader | None = None
        self._hixie = False
        self._failed = False
        self._dropping = False
        self._held: list[bytes] | None = None
        self._accepted: handshake.Accepted | None = None
        self.compression: deflate.DeflateParams | None = None
        self._deflater: deflate.Deflater | None = None
        self._compressMin = 0
        self._timer: IDelayedCall | None = None
        # Bytes of a message in progress counted against the layer's
        # maxIncompleteBytes, and its messageTimeout (only for messages that
        # span reads: a message read whole costs nothing here).
        self._incomplete = 0
        self._messageTimer: IDelayedCall | None = None
        # Keepalive and idle timeout (only when enabled on the layer).
        self._liveTimer: IDelayedCall | None = None
        self._watchActivity = bool(layer.pingInterval or layer.idleTimeout)
        self._lastReceived = 0.0
        self._pingSentAt: float | None = None
        self._startTimer(layer.handshakeTimeout, self._handshakeTimedOut)

    # -- Sending ---------------------------------------------------------

    def send(self, message: str | bytes) -> None:
        """
        Send a text (C{str}) or binary (C{bytes}) message.

        Dropped when the connection is not open. Sending the same object
        to many connections (a broadcast) frames it once per protocol
        family, not once per connection.

        @raise TypeError: C{message} is not C{str} or bytes-like
            (C{bytearray} and C{memoryview} are sent as binary).
        @raise hixie76.BinaryNotSupported: binary on a Hixie-76 connection.
        """
        cls = message.__class__
        if cls is not str and cls is not bytes:
            message = checkMessage(message)
            cls = message.__class__
        if self.state != OPEN:
            return
        outer = self._outer
        layer = self._layer
        if (
            outer.writePaused
            and outer.bufferedWhilePaused > layer.maxSendBuffer
            and self._sendBufferFull(layer.sendBufferPolicy, layer.maxSendBuffer, message)
        ):
            return
        if self._hixie:
            if message is layer._lastHixieMessage:
                self._send(layer._lastHixieFrame)
                return
            if not isinstance(message, str):
                raise hixie76.BinaryNotSupported(
                    "Hixie-76 connections cannot carry binary messages"
                )
            frame = hixie76.encodeText(message)
            layer._lastHixieMessage = message
            layer._lastHixieFrame = frame
            self._send(frame)
            return
        if self._deflater is None and self._framesShareable:
            if message is layer._lastMessage:
                self._writeParts(*layer._lastFrame)
                return
            if cls is str:
                payload = message.encode("utf-8")  # type: ignore[union-attr]
                headers = _TEXT_HEADERS
                opcode = rfc6455.TEXT
            else:
                payload = message  # type: ignore[assignment]
                headers = _BINARY_HEADERS
                opcode = rfc6455.BINARY
            n = len(payload)
            header = headers[n] if n < 126 else rfc6455.frameHeader(opcode, n)
            layer._lastMessage = message
            layer._lastFrame = (header, payload)
            self._writeParts(header, payload)
            return
        if isinstance(message, str):
            payload = message.encode("utf-8")
            opcode = rfc6455.TEXT
        else:
            payload = message
            opcode = rfc6455.BINARY
        if self._deflater is not None and len(payload) >= self._compressMin:
            self._writeFrame(opcode, self._deflater.compress(payload), 0x40)
        else:
            self._writeFrame(opcode, payload)

    def _writeFrame(self, opcode: int, payload: bytes, rsv: int = 0) -> None:
        """
        Write one whole frame; a client subclass masks it.
        """
        self._writeParts(rfc6455.frameHeader(opcode, len(payload), True, rsv), payload)

    def _writeParts(self, header: bytes, payload: bytes) -> None:
        # Small frames in one piece; large payloads without a copy.
        if len(payload) < 4096:
            self._send(header + payload)
        else:
            self._send(header)
            self._send(payload)

    def _overflowed(self) -> None:
        self.closeCode = rfc6455.POLICY_VIOLATION
        self.closeReason = "Send buffer overflow"
        self._failed = True
        self.state = CLOSING
        self._outer.abort()

    def ping(self, payload: bytes = b"") -> None:
        """
        Send a ping (RFC 6455 family only; at most 125 bytes).
        """
        if self.state != OPEN or self._hixie:
            return
        if len(payload) > 125:
            raise ValueError("A ping payload is at most 125 bytes")
        self._writeFrame(rfc6455.PING, payload)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """
        Start the closing handshake; what was sent before is delivered
        first. The peer is aborted if it does not answer within the
        layer's C{closeTimeout}.
        """
        if self.state == CONNECTING:
            self.state = CLOSED
            self._armCloseTimer()
            self._outer.close()
            return
        if self.state != OPEN:
            return
        if not self._hixie and not rfc6455.isValidCloseCode(code):
            raise ValueError("%r is not a close code an endpoint may send" % code)
        self._sendClose(code, reason)

    def _sendClose(self, code: int | None, reason: str) -> None:
        self.state = CLOSING
        if self._hixie:
            self._send(hixie76.CLOSE_FRAME)
        else:
            self._writeFrame(rfc6455.CLOSE, rfc6455.closePayload(code, reason))
        self._startTimer(self._layer.closeTimeout, self._closeTimedOut)

    # -- Receiving -------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._failed:
            return  # RFC 6455 7.1.7: nothing more is processed
        if self._watchActivity:
            self._lastReceived = self._layer.clock.seconds()
        reader = self._reader
        if reader is None:
            self._handshakeData(data)
            return
        events = reader.receive(data)
        if events:
            if self._hixie:
                self._hixieEvents(events)  # type: ignore[arg-type]
            else:
                self._events(events)  # type: ignore[arg-type]
        # Both readers keep a message that spans reads in _buffer (empty or
        # None otherwise): one attribute test per read on the fast path.
        if reader._buffer or self._incomplete:
            self._holdIncomplete(reader.buffered(), events)

    def _holdIncomplete(self, held: int, events: list[Any]) -> None:
        """
        A message spans reads and holds C{held} bytes: count them against
        the layer's C{maxIncompleteBytes} (shared by all its connections,
        so silent peers cannot each pin C{maxMessageSize}) and time the
        message against C{messageTimeout}.
        """
        if self.state == CLOSED:
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
        if self._incomplete and self.state != CLOSED:
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
        reader = self._reader
        if reader is not None:
            reader.stop()
        self._releaseIncomplete()
        if self._hixie:
            self._hixieFail(reason)
        else:
            self._fail(code, reason)

    def _events(self, events: list[rfc6455.Event]) -> None:
        app = self.app
        for event in events:
            cls = event.__class__
            if cls is str or cls is bytes:
                if self.state == CLOSED:
                    return
                try:
                    result = app.onMessage(self, event)  # type: ignore[arg-type]
                except Exception:
                    self.reportError(Failure())
                else:
                    if result is not None:
                        execute(result, self)
            elif isinstance(event, rfc6455.Ping):
                if self.state == OPEN:
                    payload = event.payload
                    self._writeFrame(rfc6455.PONG, payload)
            elif isinstance(event, rfc6455.CloseReceived):
                self._closeReceived(event)
                return
            elif isinstance(event, rfc6455.Failed):
                self._fail(event.code, event.reason)
                return

    def _closeReceived(self, event: rfc6455.CloseReceived) -> None:
        if self.state == OPEN:
            self._writeFrame(rfc6455.CLOSE, rfc6455.closePayload(event.code, ""))
        if not self._failed:
            # The peer's close frame: it started the close, or answered ours.
            self.closeCode = event.code
            self.closeReason = event.reason
            self.wasClean = True
        self.state = CLOSING
        self._armCloseTimer()
        self._closeHandshakeDone()

    def _closeHandshakeDone(self) -> None:
        """
        Both close frames have crossed. RFC 6455 7.1.1: the server closes
        the TCP connection first (a client subclass waits for it to).
        """
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
        self._failed = True
        if self.state == OPEN:
            self.closeCode = code
            self.closeReason = reason
            self._sendClose(code, reason)
        self.state = CLOSING
        self._armCloseTimer()
        self._outer.closeWrite()

    def _hixieEvents(self, events: list[hixie76.Event]) -> None:
        app = self.app
        for event in events:
            if isinstance(event, str):
                if self.state == CLOSED:
                    return
                try:
                    result = app.onMessage(self, event)
                except Exception:
                    self.reportError(Failure())
                else:
                    if result is not None:
                        execute(result, self)
                continue
            if isinstance(event, hixie76.ClosingFrame):
                self.wasClean = True
                if self.state == OPEN:
                    self._send(hixie76.CLOSE_FRAME)
                self.state = CLOSING
                self._armCloseTimer()
                self._outer.close()
            else:
                self._hixieFail(event.reason)
            return

    def _hixieFail(self, reason: str) -> None:
        """
        Close a Hixie-76 connection (the draft has no close codes), within
        C{closeTimeout} even if the peer does not read.
        """
        log.info(
            "Failing Hixie-76 connection from {peer}: {reason}", peer=self.peer, reason=reason
        )
        self.closeReason = reason
        if self.state == OPEN:
            self._send(hixie76.CLOSE_FRAME)
        self.state = CLOSING
        self._armCloseTimer()
        self._outer.close()

    # -- The opening handshake ---------------------------------------------

    def _handshakeData(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            held = self._held
            if held is not None:
                # The application is still deciding (onRequest): keep what
                # the client sends meanwhile, within the handshake limit.
                held.append(data)
                if sum(map(len, held)) > self._layer.maxHandshakeSize + self._layer.maxMessageSize:
                    self._refuse(HandshakeError(400, "Too much data before the handshake ended"))
            return
        try:
            request = parser.feed(data)
            if request is None:
                return
            self._parser = None
            layer = self._layer
            if not request.isUpgrade and "sec-websocket-key1" not in request.headers:
                self._plainHTTP(request)
                return
            accepted = handshake.negotiate(
                request,
                layer.subprotocols,
                secure=bool(getattr(self._outer, "secure", False)),
                families=layer.families,
                extensions=self._negotiateCompression if layer.compression else None,
            )
            self._setRequest(request, accepted)
            hook = getattr(self.app, "onRequest", None)
            result = hook(self, request) if hook is not None else None
        except HandshakeError as e:
            self._refuse(e)
            return
        except Exception:
            log.failure("onRequest raised; refusing the handshake")
            self._refuse(HandshakeError(500, "Internal server error"))
            return
        if isinstance(result, Deferred):
            self._held = [parser.leftover]
            result.addCallbacks(self._requestAccepted, self._requestRefused)
            return
        self._open(accepted, parser.leftover)

    def _requestAccepted(self, _: object) -> None:
        held, self._held = self._held or [], None
        if self.state == CONNECTING and self._accepted is not None:
            self._open(self._accepted, b"".join(held))

    def _requestRefused(self, failure: Failure) -> None:
        self._held = None
        if self.state != CONNECTING:
            return
        error = failure.value
        if isinstance(error, HandshakeError):
            self._refuse(error)
        else:
            log.failure("onRequest failed; refusing the handshake", failure)
            self._refuse(HandshakeError(500, "Internal server error"))

    def _setRequest(self, request: Request, accepted: handshake.Accepted) -> None:
        """
        Expose what the handshake carried, before onRequest sees it.
        """
        self.request = request
        self.path = request.path
        self.query = request.query
        self.params = request.params
        self.headers = request.headers
        self.cookies = request.cookies
        self.subprotocol = accepted.subprotocol
        self.protocol = accepted.family
        self._accepted = accepted
        trusted = self._layer.trustedProxies
        if trusted and self.transportPeer is not None:
            client = proxy.clientAddress(
                getattr(self.transportPeer, "host", ""),
                request.headers,
                trusted,
                self._layer.proxyHeader,
            )
            if client is not None:
                self.peer = proxy.addressFor(client, self.transportPeer)

    def _negotiateCompression(self, request: Request) -> str | None:
        layer = self._layer
        config = layer.compression
        offers = request.headers.getAll("sec-websocket-extensions")
        if config is None or not offers:
            return None
        limit = layer.compressionContextTakeoverLimit
        try:
            params = config.negotiate(
                offers, noContextTakeover=limit is not None and layer.compressing >= limit
            )
        except deflate.MalformedExtensions as e:
            raise HandshakeError(400, f"Malformed Sec-WebSocket-Extensions: {e}") from None
        if params is None:
            return None
        self.compression = params
        return params.responseHeader()

    def _plainHTTP(self, request: Request) -> None:
        handler = self._layer.httpHandler
        response = handler(request) if handler is not None else None
        if response is None:
            self._refuse(
                HandshakeError(400, "This is a WebSocket endpoint: send an upgrade request")
            )
            return
        self.state = CLOSED
        self._armCloseTimer(restart=True)
        self._send(response)
        self._outer.close()

    def _refuse(self, error: HandshakeError) -> None:
        log.info(
            "Refused a handshake from {peer}: {status} {reason}",
            peer=self.peer,
            status=error.status,
            reason=error.reason,
        )
        self.state = CLOSED
        self._armCloseTimer(restart=True)
        self._send(handshake.errorResponse(error))
        self._outer.close()

    def _open(self, accepted: handshake.Accepted, leftover: bytes) -> None:
        layer = self._layer
        self._cancelTimer()
        self._accepted = None
        self.headers.compact()
        self._hixie = accepted.family == HIXIE76
        if self._hixie:
            self._reader = hixie76.FrameReader(layer.maxMessageSize)
        else:
            inflater = None
            params = self.compression
            if params is not None and layer.compression is not None:
                self._deflater = deflate.Deflater(layer.compression, params)
                self._compressMin = layer.compression.minSize
                inflater = deflate.Inflater(params, layer.maxMessageSize)
                layer.compressing += 1
            self._reader = rfc6455.FrameReader(
                layer.maxMessageSize, maxFrameSize=layer.maxFrameSize, inflater=inflater
            )
        self._send(accepted.response)
        self._becomeOpen(leftover)

    def _becomeOpen(self, leftover: bytes) -> None:
        """
        The handshake is done: start the keepalive, tell the application,
        then read what arrived right after the handshake.
        """
        self.state = OPEN
        if self._watchActivity:
            self._lastReceived = self._layer.clock.seconds()
            self._armLiveTimer()
        try:
            result = self.app.onOpen(self)
        except Exception:
            self.reportError(Failure())
        else:
            execute(result, self)
        if leftover and self.state != CLOSED:
            self.dataReceived(leftover)

    # -- Timers and the end ------------------------------------------------

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
        layer = self._layer
        deadlines = []
        if layer.idleTimeout:
            deadlines.append(self._lastReceived + layer.idleTimeout)
        if layer.pingInterval and not self._hixie:
            if self._pingSentAt is not None:
                deadlines.append(self._pingSentAt + (layer.pingTimeout or layer.pingInterval))
            else:
                deadlines.append(self._lastReceived + layer.pingInterval)
        if deadlines:
            delay = max(0.001, min(deadlines) - layer.clock.seconds())
            self._liveTimer = layer.clock.callLater(delay, self._checkLiveness)

    def _checkLiveness(self) -> None:
        """
        Close an idle connection, drop a peer that does not answer
        keepalive pings, and send the next ping when one is due.
        """
        self._liveTimer = None
        if self.state != OPEN:
            return
        layer = self._layer
        now = layer.clock.seconds()
        if layer.idleTimeout and now - self._lastReceived >= layer.idleTimeout:
            log.info("Closing idle connection from {peer}", peer=self.peer)
            self.close(rfc6455.NORMAL_CLOSURE, "Idle timeout")
            return
        if layer.pingInterval and not self._hixie:
            sentAt = self._pingSentAt
            if sentAt is not None and self._lastReceived >= sentAt:
                self._pingSentAt = sentAt = None  # anything received proves liveness
            if sentAt is not None:
                if now - sentAt >= (layer.pingTimeout or layer.pingInterval):
                    log.info("Keepalive ping to {peer} unanswered", peer=self.peer)
                    self.close(rfc6455.INTERNAL_ERROR, "Keepalive ping timeout")
                    return
            elif now - self._lastReceived >= layer.pingInterval:
                self._pingSentAt = now
                self.ping(b"keepalive")
        self._armLiveTimer()

    def _handshakeTimedOut(self) -> None:
        self._timer = None
        if self.state == CONNECTING:
            self._refuse(HandshakeError(408, "Opening handshake timed out"))

    def _closeTimedOut(self) -> None:
        # Still here (connectionLost cancels this timer): the peer did not
        # answer our close, or does not read what is queued for it.
        self._timer = None
        log.info("Closing handshake with {peer} timed out; aborting", peer=self.peer)
        abort = getattr(self._outer, "abort", None)
        if abort is not None:
            abort()
        else:
            self._outer.close()

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
        if self._deflater is not None:
            self._deflater = None
            self._layer.compressing -= 1
        wasOpen = self.state in (OPEN, CLOSING) and self.request is not None
        self.state = CLOSED
        if self.closeCode is None and not self.wasClean:
            self.closeCode = rfc6455.ABNORMAL_CLOSURE
        if not wasOpen:
            return
        try:
            result = self.app.onClose(self)
        except Exception:
            log.failure("onClose raised")
        else:
            execute(result)

    def __repr__(self) -> str:
        return f"<WebSocketConnection {self.protocol or 'connecting'} peer={self.peer}>"


@implementer(IApplication)
class WebSocket:
    """
    Serve C{app} over WebSockets: Hixie-76, HyBi-07/08/10 and RFC 6455 on
    the same port, chosen per connection from the request.

    @param app: the application (or a decorator of it).
    @param subprotocols: the subprotocols the application speaks, in order
        of preference is the client's; defaults to C{app.subprotocols}.
    @param maxMessageSize: the largest message accepted, in bytes; larger
        ones close the connection with 1009.
    @param maxFrameSize: the largest data frame payload accepted (1009
        beyond); C{None}: only C{maxMessageSize} applies.
    @param maxHandshakeSize: the largest request head (431 beyond).
    @param maxHeaders: the most header fields in a request (431 beyond).
    @param maxIncompleteBytes: bytes that messages still arriving (spread
        over several reads or fragments) may hold, all connections of this
        layer together; the connection whose message would pass it is
        closed with 1013 (Try Again Later). Default: 64 MiB, or
        C{maxMessageSize} if that is larger; it cannot be smaller.
    @param messageTimeout: seconds a message may take to arrive, from its
        first read to its last (1008 beyond), so a peer cannot hold part of
        a message for ever; C{None}: no limit.
    @param handshakeTimeout: seconds a client has to send its request.
    @param closeTimeout: seconds a closing connection has to end, whoever
        started the close (the peer answering ours, or taking our answer
        and everything queued before it); then it is aborted. It also
        bounds L{shutdown}. C{None}: no limit (a peer that stops reading
        then holds its connection for ever).
    @param pingInterval: send a keepalive ping after this many seconds
        without receiving anything (RFC 6455 family; Hixie-76 has no ping).
    @param pingTimeout: close (1011) a peer that sends nothing back within
        this many seconds of a keepalive ping; defaults to C{pingInterval}.
    @param idleTimeout: close (1000, "Idle timeout") a connection that
        received nothing for this many seconds.
    @param compression: permessage-deflate settings (RFC 7692), or
        C{None} to never negotiate it. On by default: the size limit
        applies to inflated messages, enforced while inflating.
    @param compressionContextTakeoverLimit: once this many open
        connections compress, new ones are given no context takeover both
        ways, so their zlib state is freed between messages.
    @param maxSendBuffer: bytes that may queue up for a peer that stopped
        reading (beyond the transport's own 64 KiB) before
        C{sendBufferPolicy} applies. Meanwhile the server stops reading from
        that peer, so a peer cannot flood it with requests it never reads
        the answers to.
    @param sendBufferPolicy: C{"close"} drops the connection (its
        C{closeCode} is 1008: a close frame could not get through),
        C{"drop"} discards further messages to that peer until it reads
        again, or a callable C{(conn, message) -> bool} that decides (True:
        drop the message).
    @param httpHandler: answers plain HTTP requests (see L{HTTPHandler}).
    @param trustedProxies: addresses or networks (C{"10.0.0.0/8"}) of
        reverse proxies whose C{proxyHeader} is believed for C{conn.peer};
        from anyone else it is ignored.
    @param proxyHeader: the one header the trusted proxies set:
        C{"X-Forwarded-For"} (the default), C{"Forwarded"} or
        C{"X-Real-IP"}. The others are never believed (a proxy passes on
        what it does not overwrite, so a client could have written them).
    @param families: the protocol families accepted.
    @param clock: the reactor's time provider (for tests).
    """

    def __init__(
        self,
        app: IApplication,
        *,
        subprotocols: Sequence[str] | None = None,
        maxMessageSize: int = rfc6455.DEFAULT_MAX_MESSAGE_SIZE,
        maxFrameSize: int | None = None,
        maxHandshakeSize: int = 16384,
        maxHeaders: int = 100,
        maxIncompleteBytes: int | None = None,
        messageTimeout: float | None = 60.0,
        handshakeTimeout: float | None = 10.0,
        closeTimeout: float | None = 5.0,
        pingInterval: float | None = None,
        pingTimeout: float | None = None,
        idleTimeout: float | None = None,
        compression: deflate.PerMessageDeflate | None = DEFAULT_COMPRESSION,
        compressionContextTakeoverLimit: int | None = None,
        maxSendBuffer: int = 16 * 1024 * 1024,
        sendBufferPolicy: str | Callable[[WebSocketConnection, str | bytes], bool] = "close",
        httpHandler: HTTPHandler | None = None,
        trustedProxies: Sequence[str] = (),
        proxyHeader: str = proxy.DEFAULT_PROXY_HEADER,
        families: Sequence[str] = (RFC6455, HYBI08, HYBI07, HIXIE76),
        clock: IReactorTime | None = None,
    ) -> None:
        self.app = app
        if subprotocols is None:
            subprotocols = getattr(app, "subprotocols", ())
        self.subprotocols: Sequence[str] = tuple(subprotocols or ())
        self.maxMessageSize = maxMessageSize
        self.maxFrameSize = maxFrameSize
        self.maxHandshakeSize = maxHandshakeSize
        self.maxHeaders = maxHeaders
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
        self.compression = compression
        self.compressionContextTakeoverLimit = compressionContextTakeoverLimit
        #: How many open connections compress (for the takeover limit).
        self.compressing = 0
        self.sendBufferPolicy = sendBufferPolicy
        self.httpHandler = httpHandler
        self.trustedProxies = proxy.parseNetworks(trustedProxies)
        self.proxyHeader = proxy.proxyHeaderName(proxyHeader)
        self.families = tuple(families)
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        self.clock: IReactorTime = clock  # type: ignore[assignment]
        self._connections: dict[Any, WebSocketConnection] = {}
        self._drain = Drain(self._connections, self.clock)
        # The last message framed, per family: a broadcast frames it once.
        self._lastMessage: object = None
        self._lastFrame: tuple[bytes, bytes] = (b"", b"")
        self._lastHixieMessage: object = None
        self._lastHixieFrame = b""

    @property
    def connections(self) -> list[WebSocketConnection]:
        """
        The connections open (or opening) right now.
        """
        return list(self._connections.values())

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
        for ws in list(self._connections.values()):
            ws.close(code, reason)
        return self._drain.wait(self.closeTimeout or None)

    def onOpen(self, conn: IConnection) -> None:
        self._connections[conn] = WebSocketConnection(self, conn)

    def onMessage(self, conn: IConnection, message: str | bytes) -> None:
        ws = self._connections.get(conn)
        if ws is not None:
            if isinstance(message, str):
                message = message.encode("utf-8")
            ws.dataReceived(message)

    def onClose(self, conn: IConnection) -> None:
        ws = self._connections.pop(conn, None)
        if ws is not None:
            ws.connectionLost()
        self._drain.check()

    def onError(self, conn: IConnection, failure: Failure) -> None:
        # This layer itself failed (the connection below logged it): drop
        # the connection, whose state can no longer be trusted.
        abort = getattr(conn, "abort", None)
        if abort is not None:
            abort()
        else:
            conn.close()


__all__ = ["HIXIE76", "HYBI07", "HYBI08", "RFC6455", "WebSocket", "WebSocketConnection"]
