"""
The client-side WebSocket layer: the server's L{WebSocketConnection} state
machine, opening the handshake instead of answering it and masking what it
sends.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet.client.handshake import (
    DEFAULT_OFFER,
    URL,
    ClientHandshake,
    DeflateOffer,
    HandshakeFailed,
    Response,
    parseURL,
    swapped,
)
from txratchet.errors import HandshakeCancelled as HandshakeCancelled
from txratchet.errors import HandshakeTimedOut as HandshakeTimedOut
from txratchet.interfaces import IApplication
from txratchet.websocket import deflate, hixie76, rfc6455
from txratchet.websocket.handshake import HIXIE76, Headers
from txratchet.websocket.layer import (
    CLOSED,
    CONNECTING,
    OPEN,
    WebSocket,
    WebSocketConnection,
)

log = Logger()


class ServerFrameReader(rfc6455.FrameReader):
    """
    Reads the frames a server sends, which must not be masked (RFC 6455
    5.1): a masked frame fails the connection with 1002.

    The check walks the frame headers ahead of the reader (the reader's
    fast path for small masked frames skips its per-header checks), and
    hands the reader only what precedes a masked frame.
    """

    def __init__(
        self,
        maxMessageSize: int = rfc6455.DEFAULT_MAX_MESSAGE_SIZE,
        maxFrameSize: int | None = None,
        inflater: deflate.Inflater | None = None,
    ) -> None:
        super().__init__(
            maxMessageSize, requireMask=False, maxFrameSize=maxFrameSize, inflater=inflater
        )
        self._skip = 0  # payload bytes of the current frame not seen yet
        self._partial = b""  # the start of a header split between chunks
        self._maskSeen = False

    def _findMasked(self, data: bytes) -> int | None:
        """
        Where in C{data} the first masked frame starts (negative when its
        header began in an earlier chunk), or C{None}.
        """
        end = len(data)
        pos = 0
        while pos < end:
            skip = self._skip
            if skip:
                take = min(skip, end - pos)
                self._skip = skip - take
                pos += take
                continue
            partial = self._partial
            start = pos - len(partial)
            head = partial + data[pos : pos + 10 - len(partial)]
            if len(head) < 2:
                self._partial = head
                return None
            if head[1] & 0x80:
                self._partial = b""
                return start
            code = head[1] & 0x7F
            size = 2 if code < 126 else 4 if code == 126 else 10
            if len(head) < size:
                self._partial = head
                return None
            self._partial = b""
            self._skip = code if code < 126 else int.from_bytes(head[2:size], "big")
            pos = start + size
        return None

    def receive(self, data: bytes) -> list[rfc6455.Event]:
        if self._maskSeen:
            return []
        at = self._findMasked(data)
        if at is None:
            return super().receive(data)
        self._maskSeen = True
        events = super().receive(data[:at]) if at > 0 else []
        if events and isinstance(events[-1], (rfc6455.Failed, rfc6455.CloseReceived)):
            return events
        events.append(rfc6455.Failed(rfc6455.PROTOCOL_ERROR, "Server frame masked"))
        return events


class ClientConnection(WebSocketConnection):
    """
    Our side of one WebSocket connection to a server, as the application
    sees it: the same C{send}, C{ping}, C{close} and attributes as a server
    connection.

    What describes the opening handshake follows the server's convention
    "what the peer sent": C{headers} are the response's headers and
    C{cookies} what the server set with C{Set-Cookie}; C{request} is the
    request we sent (C{path}, C{query} and C{params} come from it, as on
    the server) and C{response} the server's answer.

    @ivar url: the L{URL} connected to.
    @ivar response: the server's L{Response}, once open.
    @ivar compression: the permessage-deflate agreement as the server
        names it (C{server*}: the server's compressor), or C{None}.
    @ivar handshakeFailure: why the handshake failed, if it did.
    """

    #: Every frame is masked with its own key: none can be shared.
    _framesShareable = False

    def __init__(self, layer: WebSocketClient, outer: Any) -> None:
        super().__init__(layer, outer)
        self._parser = None
        self._lower = outer
        self._client = layer
        self.url = layer.url
        self.response: Response | None = None
        self.handshakeFailure: Failure | None = None
        self._lost = False
        self._openWaiters: list[Deferred[ClientConnection]] = []
        handshake = self._handshake = layer.newHandshake()
        request = handshake.request
        self.request = request
        self.path = request.path
        self.query = request.query
        self.params = request.params
        self.headers = Headers()
        self.cookies = {}
        self._send(handshake.data)

    def whenOpen(self) -> Deferred[ClientConnection]:
        """
        A Deferred that fires with this connection once the handshake
        succeeded (after the application's C{onOpen}), or fails with a
        L{HandshakeFailed} (or the connection's loss reason) once the
        connection is gone without opening.
        """
        if self.response is not None:
            return succeed(self)
        if self._lost:
            assert self.handshakeFailure is not None
            return fail(self.handshakeFailure)
        d: Deferred[ClientConnection] = Deferred()
        self._openWaiters.append(d)
        return d

    # -- Sending: every frame masked ----------------------------------------

    def _writeFrame(self, opcode: int, payload: bytes, rsv: int = 0) -> None:
        key = os.urandom(4)
        if len(payload) < 4096:
            self._send(rfc6455.encodeFrame(opcode, payload, True, rsv, key))
            return
        header = bytearray(rfc6455.frameHeader(opcode, len(payload), True, rsv))
        header[1] |= 0x80
        self._send(bytes(header) + key)
        self._send(rfc6455.mask(payload, key))

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.state == CONNECTING:
            self._handshakeFailed(
                HandshakeCancelled("Closed before the WebSocket handshake completed")
            )
            return
        super().close(code, reason)

    # -- The opening handshake -----------------------------------------------

    def _handshakeData(self, data: bytes) -> None:
        if self.state != CONNECTING:
            return
        try:
            response = self._handshake.receive(data)
        except HandshakeFailed as e:
            self._handshakeFailed(e)
            return
        if response is not None:
            self._opened(response, self._handshake.leftover)

    def _handshakeFailed(self, error: HandshakeFailed, abort: bool = False) -> None:
        log.info(
            "WebSocket handshake with {url} failed: {error}", url=str(self.url), error=error
        )
        self.handshakeFailure = Failure(error)
        self.state = CLOSED
        self._cancelTimer()
        if abort:
            self._outer.abort()
        else:
            self._outer.close()

    def _handshakeTimedOut(self) -> None:
        self._timer = None
        if self.state == CONNECTING:
            self._handshakeFailed(
                HandshakeTimedOut(
                    "The server did not answer the WebSocket handshake within %g s"
                    % (self._layer.handshakeTimeout or 0)
                ),
                abort=True,
            )

    def _opened(self, response: Response, leftover: bytes) -> None:
        layer = self._layer
        self._cancelTimer()
        self.response = response
        self.headers = response.headers
        self.cookies = response.cookies
        self.subprotocol = response.subprotocol
        self.protocol = response.family
        self._hixie = response.family == HIXIE76
        if self._hixie:
            self._reader = hixie76.FrameReader(layer.maxMessageSize)
        else:
            inflater = None
            agreed = response.compression
            offer = self._handshake.compression
            if agreed is not None and offer is not None:
                self.compression = agreed
                ours = swapped(agreed)
                self._deflater = deflate.Deflater(offer.compressorConfig(), ours)
                self._compressMin = offer.minSize
                inflater = deflate.Inflater(ours, layer.maxMessageSize)
                layer.compressing += 1
            self._reader = ServerFrameReader(
                layer.maxMessageSize, maxFrameSize=layer.maxFrameSize, inflater=inflater
            )
        self.state = OPEN
        lowerOpened = getattr(self._lower, "opened", None)
        if lowerOpened is not None:
            lowerOpened()
        self._becomeOpen(leftover)
        waiters, self._openWaiters = self._openWaiters, []
        for d in waiters:
            d.callback(self)

    # -- The end -------------------------------------------------------------

    def _closeHandshakeDone(self) -> None:
        # RFC 6455 7.1.1: the server closes TCP first; the client waits for
        # it (and drops the connection itself after closeTimeout).
        timeout = self._layer.closeTimeout
        if timeout:
            self._startTimer(timeout, self._closeTimedOut)
        else:
            self._outer.close()

    def connectionLost(self) -> None:
        opened = self.response is not None
        if not opened and self.handshakeFailure is None:
            reason: Failure | None = getattr(self._lower, "lostReason", None)
            handshake = self._handshake
            received = handshake.received
            error = handshake.connectionLost()
            if reason is not None and not reason.check(ConnectionDone) and not received:
                # Nothing came back: report why (a TLS verification error,
                # a reset ...) as Twisted gave it.
                self.handshakeFailure = reason
            else:
                self.handshakeFailure = Failure(error)
        self._lost = True
        super().connectionLost()
        if not opened:
            waiters, self._openWaiters = self._openWaiters, []
            for d in waiters:
                d.errback(self.handshakeFailure)

    def __repr__(self) -> str:
        return f"<ClientConnection {self.protocol or 'connecting'} {self.url}>"


@implementer(IApplication)
class WebSocketClient(WebSocket):
    """
    The client-side WebSocket layer: each connection the layer below opens
    (see L{txratchet.client.Client}) sends the upgrade request for C{url}
    and, once the server accepts it, is handed to C{app} exactly as a
    server connection would be.

    @param app: the application (the same kind a server serves).
    @param url: the C{ws://} or C{wss://} URL.
    @param version: C{13} (RFC 6455), C{8} (HyBi-08..12), C{7} or
        C{"hixie-76"}.
    @param subprotocols: offered in order of preference; defaults to
        C{app.subprotocols}.
    @param headers: more request headers (pairs or a mapping).
    @param cookies: sent in a C{Cookie} header (a mapping, pairs, or the
        header's value).
    @param origin: the C{Origin} to send (Hixie-76 defaults it to the
        URL's host).
    @param compression: the permessage-deflate offer (a
        L{DeflateOffer}), or C{None} to offer none.
    @param maxResponseSize: the largest response head accepted.
    @param maxHeaders: the most header fields accepted in the response.
    @param handshakeTimeout: seconds the server has to answer.

    The other options (C{maxMessageSize}, C{maxFrameSize}, C{closeTimeout},
    C{pingInterval}, C{pingTimeout}, C{idleTimeout}, C{maxSendBuffer},
    C{sendBufferPolicy}, C{clock}) mean what they mean on
    L{txratchet.websocket.WebSocket}.
    """

    def __init__(
        self,
        app: IApplication,
        url: str | URL,
        *,
        version: int | str = 13,
        subprotocols: Sequence[str] | None = None,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        cookies: Mapping[str, str] | Sequence[tuple[str, str]] | str | None = None,
        origin: str | None = None,
        compression: DeflateOffer | None = DEFAULT_OFFER,
        maxMessageSize: int = rfc6455.DEFAULT_MAX_MESSAGE_SIZE,
        maxFrameSize: int | None = None,
        maxResponseSize: int = 16384,
        maxHeaders: int = 100,
        handshakeTimeout: float | None = 10.0,
        closeTimeout: float | None = 5.0,
        pingInterval: float | None = None,
        pingTimeout: float | None = None,
        idleTimeout: float | None = None,
        maxSendBuffer: int = 16 * 1024 * 1024,
        sendBufferPolicy: Any = "close",
        clock: IReactorTime | None = None,
    ) -> None:
        super().__init__(
            app,
            subprotocols=subprotocols,
            maxMessageSize=maxMessageSize,
            maxFrameSize=maxFrameSize,
            maxHandshakeSize=maxResponseSize,
            maxHeaders=maxHeaders,
            handshakeTimeout=handshakeTimeout,
            closeTimeout=closeTimeout,
            pingInterval=pingInterval,
            pingTimeout=pingTimeout,
            idleTimeout=idleTimeout,
            compression=None,
            maxSendBuffer=maxSendBuffer,
            sendBufferPolicy=sendBufferPolicy,
            clock=clock,
        )
        self.url = url if isinstance(url, URL) else parseURL(url)
        self.version = version
        self.requestHeaders = list(headers.items() if isinstance(headers, Mapping) else headers)
        self.requestCookies = cookies
        self.origin = origin
        self.compressionOffer = compression
        self.newHandshake()  # check the options now, not on the first connection

    def newHandshake(self) -> ClientHandshake:
        """
        A fresh handshake (new keys) for the next connection.
        """
        return ClientHandshake(
            self.url,
            version=self.version,
            subprotocols=self.subprotocols,
            headers=self.requestHeaders,
            cookies=self.requestCookies,
            origin=self.origin,
            compression=self.compressionOffer,
            maxResponseSize=self.maxHandshakeSize,
            maxHeaders=self.maxHeaders,
        )

    def onOpen(self, conn: Any) -> None:
        self._connections[conn] = ClientConnection(self, conn)

    def connectionFor(self, lower: Any) -> ClientConnection | None:
        """
        The WebSocket connection running over C{lower} (the connection the
        layer below handed us), if any.
        """
        return cast("ClientConnection | None", self._connections.get(lower))

    @property
    def connections(self) -> list[ClientConnection]:  # type: ignore[override]
        """
        The connections open (or opening) right now.
        """
        return cast("list[ClientConnection]", list(self._connections.values()))


__all__ = [
    "ClientConnection",
    "HandshakeCancelled",
    "HandshakeTimedOut",
    "ServerFrameReader",
    "WebSocketClient",
]
