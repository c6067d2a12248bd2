"""
The WebSocket decorator: serve an application over every WebSocket family.

L{WebSocket} wraps an application. It receives raw bytes from the layer
below (usually L{txratchet.server.Server}), answers the opening handshake
of whichever protocol family the client speaks, and hands the application
a L{WebSocketConnection} per peer that frames what the application sends.
The protocol itself is L{txratchet.websocket.protocol.WebSocketProtocol};
this is its Twisted glue (see L{txratchet.wsbase}).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import CoroutineType
from typing import Any, Unpack, cast

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet import proxy
from txratchet.connection import countSent
from txratchet.errors import HandshakeError
from txratchet.interfaces import IApplication, IConnection, LowerConnection
from txratchet.websocket import deflate
from txratchet.websocket.events import Event, RequestReceived
from txratchet.websocket.handshake import HIXIE76, HYBI07, HYBI08, RFC6455, Request
from txratchet.websocket.http11 import Headers
from txratchet.websocket.protocol import CLOSED, CONNECTING, SERVER, WebSocketProtocol
from txratchet.wsbase import BaseWebSocketConnection, LayerOptions, WebSocketLayer

log = Logger()

#: A handler for plain HTTP requests that reach a WebSocket port: return the
#: whole response (see L{handshake.httpResponse}), or C{None} for a 400.
HTTPHandler = Callable[[Request], "bytes | None"]

#: permessage-deflate as negotiated unless told otherwise.
DEFAULT_COMPRESSION = deflate.PerMessageDeflate()

_EMPTY_HEADERS = Headers()


class WebSocketConnection(BaseWebSocketConnection):
    """
    One WebSocket client, as a server application sees it.

    @ivar protocol: C{'hixie-76'}, C{'hybi-07'}, C{'hybi-08'} or
        C{'rfc6455'}.
    @ivar request: the opening handshake's L{Request}.
    @ivar path: the request path, e.g. C{'/chat'}.
    @ivar query: the raw query string, C{''} when there is none.
    @ivar params: the query, parsed: C{{name: [values]}}.
    @ivar headers: the request's L{Headers}.
    @ivar cookies: the request's cookies, C{{name: value}}.
    @ivar peer: the peer's address (a Twisted C{IAddress}); behind a
        trusted proxy, the client's address from the proxy's header.
    @ivar transportPeer: the address of the direct peer (the proxy).
    @ivar transport: the Twisted transport underneath, when there is one.
    @ivar subprotocol: the negotiated subprotocol, or C{None}.
    @ivar compression: the agreed permessage-deflate parameters, or C{None}.
    @ivar closeCode: the code of the close frame the peer sent (to start
        the closing handshake or to answer ours); when we failed the
        connection, the code we failed it with; 1006 when it just dropped.
    @ivar closeReason: the reason that came with it.
    @ivar wasClean: did the closing handshake complete normally?
    """

    __slots__ = ("transportPeer",)

    _layer: WebSocket

    def __init__(self, layer: WebSocket, lower: LowerConnection) -> None:
        super().__init__(
            layer,
            lower,
            WebSocketProtocol(SERVER, limits=layer.limits),
        )
        self.transportPeer = self.peer
        self._startTimer(layer.handshakeTimeout, self._handshakeTimedOut)

    # What the handshake carried.

    @property
    def request(self) -> Request | None:
        """
        The opening handshake's L{Request} (C{None} until it arrived).
        """
        return self._proto.request

    @property
    def path(self) -> str:
        """
        The request path, e.g. C{'/chat'}.
        """
        request = self._proto.request
        return request.path if request is not None else ""

    @property
    def query(self) -> str:
        """
        The raw query string, C{''} when there is none.
        """
        request = self._proto.request
        return request.query if request is not None else ""

    @property
    def params(self) -> dict[str, list[str]]:
        """
        The query, parsed: C{{name: [values]}}.
        """
        request = self._proto.request
        return request.params if request is not None else {}

    @property
    def headers(self) -> Headers:
        """
        The request's L{Headers}.
        """
        request = self._proto.request
        return request.headers if request is not None else _EMPTY_HEADERS

    @property
    def cookies(self) -> dict[str, str]:
        """
        The request's cookies, C{{name: value}}.
        """
        request = self._proto.request
        return request.cookies if request is not None else {}

    @property
    def httpVersion(self) -> str:
        """
        How the socket was bootstrapped: C{"HTTP/1.1"} (every family over
        TCP, TLS or a twisted.web upgrade) or C{"HTTP/2"} (an extended
        CONNECT on a stream of an HTTP/2 connection, RFC 8441).
        """
        return self._outer.httpVersion

    # -- The opening handshake -------------------------------------------------

    def requestReceived(self, request: Request) -> None:
        """
        The opening request, already read by the layer below (an HTTP/2
        stream's extended CONNECT): checked, given to C{onRequest}, and
        answered as one read from bytes is.
        """
        try:
            events = self._proto.requestReceived(request)
        except HandshakeError as error:  # over the limits: 431
            self._handshakeRaised(error)
            return
        self._handshakeEvents(events)

    def _handshakeRaised(self, error: Exception) -> None:
        if isinstance(error, HandshakeError):
            self._refuse(error)
            return
        log.failure("Reading the handshake failed; refusing it", Failure(error))
        self._refuse(HandshakeError(500, "Internal server error"))

    def _handshakeEvents(self, events: Sequence[Event]) -> None:
        # One RequestReceived once the request is whole (what follows it
        # waits in proto.leftover until the answer).
        for event in events:
            if isinstance(event, RequestReceived):
                self._requestReceived(event)

    def _requestReceived(self, event: RequestReceived) -> None:
        request = event.request
        if not event.upgrade:
            self._plainHTTP(request)
            return
        layer = self._layer
        proto = self._proto
        try:
            limit = layer.compressionContextTakeoverLimit
            proto.negotiate(
                layer.subprotocols,
                families=layer.families,
                compression=layer.compression,
                noContextTakeover=limit is not None and layer.compressing >= limit,
                secure=self._outer.secure,
            )
            self._trustProxy(request)
            hook = layer.hooks.onRequest
            result = hook(self, request) if hook is not None else None
        except HandshakeError as e:
            self._refuse(e)
            return
        except Exception:
            log.failure("onRequest raised; refusing the handshake")
            self._refuse(HandshakeError(500, "Internal server error"))
            return
        if result.__class__ is CoroutineType:  # an async def onRequest
            result = Deferred.fromCoroutine(result)
            if not result.called:
                self._tasks = {result}  # cancelled if the peer leaves first
        if isinstance(result, Deferred):
            result.addCallbacks(self._requestAccepted, self._requestRefused)
            return
        self._open()

    def _requestAccepted(self, _: object) -> None:
        if self._proto.state is CONNECTING:
            self._open()

    def _requestRefused(self, failure: Failure) -> None:
        if self._proto.state is not CONNECTING or self._lost:
            return  # the peer left (an async onRequest is cancelled then)
        error = failure.value
        if isinstance(error, HandshakeError):
            self._refuse(error)
        else:
            log.failure("onRequest failed; refusing the handshake", failure)
            self._refuse(HandshakeError(500, "Internal server error"))

    def _trustProxy(self, request: Request) -> None:
        """
        Behind a trusted proxy, C{peer} is the client its header names.
        """
        trusted = self._layer.trustedProxies
        if trusted and self.transportPeer is not None:
            client = proxy.clientAddress(
                getattr(self.transportPeer, "host", ""),  # IAddress kinds vary
                request.headers,
                trusted,
                self._layer.proxyHeader,
            )
            if client is not None:
                self.peer = proxy.addressFor(client, self.transportPeer)

    def _plainHTTP(self, request: Request) -> None:
        handler = self._layer.httpHandler
        response = handler(request) if handler is not None else None
        if response is None:
            self._refuse(
                HandshakeError(400, "This is a WebSocket endpoint: send an upgrade request")
            )
            return
        self._proto.endHandshake()
        self._armCloseTimer(restart=True)
        self._layer.stats.httpAnswered(response)
        self._send(response)
        self._outer.close()

    def _refuse(self, error: HandshakeError) -> None:
        log.info(
            "Refused a handshake from {peer}: {status} {reason}",
            peer=self.peer,
            status=error.status,
            reason=error.reason,
        )
        response = self._proto.refuse(error)
        self._layer.stats.handshake("refused", error.status)
        self._armCloseTimer(restart=True)
        outer = self._outer
        if outer.request is not None:
            outer.respond(
                error.status,
                [*error.headers, ("content-type", "text/plain; charset=utf-8")],
                (error.reason + "\n").encode("utf-8"),
            )
        else:
            self._send(response)
        outer.close()

    def _open(self) -> None:
        proto = self._proto
        accepted = proto.accepted
        response = proto.accept()
        request = proto.request
        if request is not None:
            request.headers.compact()
        stats = self._layer.stats
        countSent(self._outer, stats.family(proto.family or ""))  # the answer on
        if self._outer.request is not None and accepted is not None:
            # The request came already read (an HTTP/2 stream): so does
            # the answer, as a status and fields (RFC 8441: 200).
            stats.handshake("accepted", accepted.status)
            self._outer.respond(accepted.status, accepted.headers)
        else:
            stats.handshake("accepted", 101)
            self._send(response)
        self._becomeOpen()
        leftover, proto.leftover = proto.leftover, b""
        if leftover and proto.state is not CLOSED:
            self.dataReceived(leftover)

    def _handshakeTimedOut(self) -> None:
        self._timer = None
        if self._proto.state is CONNECTING:
            self._refuse(HandshakeError(408, "Opening handshake timed out"))

    def __repr__(self) -> str:
        return f"<WebSocketConnection {self.protocol or 'connecting'} peer={self.peer}>"


@implementer(IApplication)
class WebSocket(WebSocketLayer[WebSocketConnection]):
    """
    Serve C{app} over WebSockets: Hixie-76, HyBi-07/08/10 and RFC 6455 on
    the same port, chosen per connection from the request.

    @param app: the application (or a decorator of it).
    @keyword subprotocols: the subprotocols the application speaks, in order
        of preference is the client's; defaults to C{app.subprotocols}.
    @keyword maxMessageSize: the largest message accepted, in bytes; larger
        ones close the connection with 1009.
    @keyword maxFrameSize: the largest data frame payload accepted (1009
        beyond); C{None}: only C{maxMessageSize} applies.
    @param maxHandshakeSize: the largest request head (431 beyond).
    @param maxHeaders: the most header fields in a request (431 beyond).
    @keyword maxIncompleteBytes: bytes that messages still arriving (spread
        over several reads or fragments) may hold, all connections of this
        layer together; the connection whose message would pass it is
        closed with 1013 (Try Again Later). Default: 64 MiB, or
        C{maxMessageSize} if that is larger; it cannot be smaller.
    @keyword messageTimeout: seconds a message may take to arrive, from its
        first read to its last (1008 beyond), so a peer cannot hold part of
        a message for ever; C{None}: no limit.
    @keyword handshakeTimeout: seconds a client has to send its request.
    @keyword closeTimeout: seconds a closing connection has to end, whoever
        started the close (the peer answering ours, or taking our answer
        and everything queued before it); then it is aborted. It also
        bounds L{shutdown}. C{None}: no limit (a peer that stops reading
        then holds its connection for ever).
    @keyword pingInterval: send a keepalive ping after this many seconds
        without receiving anything (RFC 6455 family; Hixie-76 has no ping).
    @keyword pingTimeout: close (1011) a peer that sends nothing back within
        this many seconds of a keepalive ping; defaults to C{pingInterval}.
    @keyword idleTimeout: close (1000, "Idle timeout") a connection that
        received nothing for this many seconds.
    @param compression: permessage-deflate settings (RFC 7692), or
        C{None} to never negotiate it. On by default: the size limit
        applies to inflated messages, enforced while inflating.
    @param compressionContextTakeoverLimit: once this many open
        connections compress, new ones are given no context takeover both
        ways, so their zlib state is freed between messages.
    @keyword maxSendBuffer: bytes that may queue up for a peer that stopped
        reading (beyond the transport's own 64 KiB) before
        C{sendBufferPolicy} applies. Meanwhile the server stops reading from
        that peer, so a peer cannot flood it with requests it never reads
        the answers to.
    @keyword sendBufferPolicy: C{"close"} drops the connection (its
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
    @keyword clock: the reactor's time provider (for tests).
    @keyword logConnections: log one line per connection opened and one per
        connection closed (peer, family, path; then close code and
        duration) at this C{twisted.logger.LogLevel}, in the
        C{txratchet.connections} namespace; C{None}, the default: not
        logged. What the layer counts is in C{layer.stats} either way (see
        L{txratchet.metrics}).
    """

    def __init__(
        self,
        app: IApplication,
        *,
        maxHandshakeSize: int = 16384,
        maxHeaders: int = 100,
        compression: deflate.PerMessageDeflate | None = DEFAULT_COMPRESSION,
        compressionContextTakeoverLimit: int | None = None,
        httpHandler: HTTPHandler | None = None,
        trustedProxies: Sequence[str] = (),
        proxyHeader: str = proxy.DEFAULT_PROXY_HEADER,
        families: Sequence[str] = (RFC6455, HYBI08, HYBI07, HIXIE76),
        **options: Unpack[LayerOptions],
    ) -> None:
        super().__init__(app, **options)
        self.maxHandshakeSize = maxHandshakeSize
        self.maxHeaders = maxHeaders
        self.compression = compression
        self.compressionContextTakeoverLimit = compressionContextTakeoverLimit
        self.httpHandler = httpHandler
        self.trustedProxies = proxy.parseNetworks(trustedProxies)
        self.proxyHeader = proxy.proxyHeaderName(proxyHeader)
        self.families = tuple(families)

    @property
    def _connections(self) -> dict[Any, WebSocketConnection]:
        # The name earlier releases used (tests and tools read it).
        return self.connectionsByLower

    @property
    def _handshakeLimits(self) -> tuple[int, int]:
        return (self.maxHandshakeSize, self.maxHeaders)

    def _newConnection(self, lower: LowerConnection) -> WebSocketConnection:
        return WebSocketConnection(self, lower)

    def onOpen(self, conn: IConnection) -> None:
        super().onOpen(conn)
        lower = cast(LowerConnection, conn)
        request = lower.request
        if request is not None:
            # An HTTP/2 stream: the request is there already, no bytes to parse.
            self.connectionsByLower[lower].requestReceived(request)


__all__ = ["HTTPHandler", "WebSocket", "WebSocketConnection"]
