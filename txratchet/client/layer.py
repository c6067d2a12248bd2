"""
The client side of WebSockets: the same connection an application gets
from a server, over a connection we opened.

L{ClientConnection} and the server's L{txratchet.wsserver.WebSocketConnection}
are siblings over L{txratchet.wsbase}; the protocol underneath is the same
L{WebSocketProtocol}, on the client side (it masks what it sends, refuses
masked frames, and leaves closing TCP to the server).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Unpack

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet.errors import HandshakeCancelled, HandshakeFailed, HandshakeTimedOut
from txratchet.interfaces import ClientLowerConnection, IApplication, LowerConnection
from txratchet.websocket.deflate import DEFAULT_OFFER, DeflateOffer
from txratchet.websocket.events import Opened
from txratchet.websocket.handshake import (
    HTTP2,
    URL,
    ClientHandshake,
    Request,
    Response,
    parseURL,
)
from txratchet.websocket.http11 import Headers
from txratchet.websocket.protocol import CLIENT, CONNECTING, WebSocketProtocol
from txratchet.wsbase import BaseWebSocketConnection, LayerOptions, WebSocketLayer

log = Logger()

_EMPTY_HEADERS = Headers()


class ClientConnection(BaseWebSocketConnection):
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
    @ivar handshakeFailure: why the handshake failed, if it did.
    """

    __slots__ = ("_lost", "_openWaiters", "handshakeFailure", "url")

    _layer: WebSocketClient

    _outer: ClientLowerConnection

    def __init__(self, layer: WebSocketClient, lower: ClientLowerConnection) -> None:
        http2 = lower.httpVersion == HTTP2
        handshake = layer.newHandshake(http2=http2)
        super().__init__(
            layer, lower, WebSocketProtocol(CLIENT, handshake=handshake, limits=layer.limits)
        )
        self.url = layer.url
        self.handshakeFailure: Failure | None = None
        self._lost = False
        self._openWaiters: list[Deferred[ClientConnection]] = []
        self._startTimer(layer.handshakeTimeout, self._handshakeTimedOut)
        if http2:
            # An extended CONNECT on the stream (RFC 8441); the answer comes
            # to responseReceived.
            lower.sendRequest(handshake.headerBlock)
        else:
            self._send(self._proto.connect())

    # What the handshake carried.

    @property
    def request(self) -> Request | None:
        """
        The request we sent.
        """
        return self._proto.request

    @property
    def response(self) -> Response | None:
        """
        The server's L{Response}, once open.
        """
        return self._proto.response

    @property
    def httpVersion(self) -> str:
        """
        How the socket was opened: C{"HTTP/2"} (an extended CONNECT stream
        of an HTTP/2 connection, RFC 8441) or C{"HTTP/1.1"} (an upgrade).
        """
        return self._outer.httpVersion

    @property
    def path(self) -> str:
        """
        The path we asked for.
        """
        request = self._proto.request
        return request.path if request is not None else ""

    @property
    def query(self) -> str:
        """
        The query string we sent.
        """
        request = self._proto.request
        return request.query if request is not None else ""

    @property
    def params(self) -> dict[str, list[str]]:
        """
        The query we sent, parsed.
        """
        request = self._proto.request
        return request.params if request is not None else {}

    @property
    def headers(self) -> Headers:
        """
        The response's headers (empty before it arrived).
        """
        response = self._proto.response
        return response.headers if response is not None else _EMPTY_HEADERS

    @property
    def cookies(self) -> dict[str, str]:
        """
        What the server set with C{Set-Cookie}.
        """
        response = self._proto.response
        return response.cookies if response is not None else {}

    def whenOpen(self) -> Deferred[ClientConnection]:
        """
        A Deferred that fires with this connection once the handshake
        succeeded (after the application's C{onOpen}), or fails with a
        L{HandshakeFailed} (or the connection's loss reason) once the
        connection is gone without opening.
        """
        if self._proto.response is not None:
            return succeed(self)
        if self._lost:
            assert self.handshakeFailure is not None
            return fail(self.handshakeFailure)
        d: Deferred[ClientConnection] = Deferred()
        self._openWaiters.append(d)
        return d

    def _closeConnecting(self) -> None:
        self._handshakeFailed(
            HandshakeCancelled("Closed before the WebSocket handshake completed")
        )

    # -- The opening handshake -------------------------------------------------

    def _handshakeRaised(self, error: Exception) -> None:
        if isinstance(error, HandshakeFailed):
            self._handshakeFailed(error)
            return
        raise error

    def _handshakeFailed(self, error: HandshakeFailed, abort: bool = False) -> None:
        log.info(
            "WebSocket handshake with {url} failed: {error}", url=str(self.url), error=error
        )
        self.handshakeFailure = Failure(error)
        self._layer.stats.handshake("failed", error.status or 0)
        self._proto.endHandshake()
        self._cancelTimer()
        if abort:
            self._outer.abort()
        else:
            self._outer.close()

    def _handshakeTimedOut(self) -> None:
        self._timer = None
        if self._proto.state is CONNECTING:
            self._handshakeFailed(
                HandshakeTimedOut(
                    "The server did not answer the WebSocket handshake within %g s"
                    % (self._layer.handshakeTimeout or 0)
                ),
                abort=True,
            )

    def _opened(self, event: Opened) -> None:
        self._layer.stats.handshake("accepted", event.response.status)
        self._outer.opened()
        self._becomeOpen()

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        if self._openWaiters and self._proto.response is not None:
            # Once the frames that came with the response were delivered.
            self._fireOpen()

    def responseReceived(self, fields: Sequence[tuple[bytes | str, bytes | str]]) -> None:
        """
        Over HTTP/2: the response's header block, from the stream below
        (see L{ClientLowerConnection.sendRequest}).
        """
        try:
            events = self._proto.responseReceived(fields)
        except Exception as e:
            self._handshakeRaised(e)
            return
        if events:
            self._handshakeEvents(events)
        if self._openWaiters and self._proto.response is not None:
            self._fireOpen()

    def _fireOpen(self) -> None:
        waiters, self._openWaiters = self._openWaiters, []
        for d in waiters:
            d.callback(self)

    def connectionLost(self) -> None:
        proto = self._proto
        opened = proto.response is not None
        if not opened and self.handshakeFailure is None:
            reason = self._outer.lostReason
            handshake = proto.handshake
            assert handshake is not None
            received = handshake.received
            error = handshake.connectionLost()
            if reason is not None and not reason.check(ConnectionDone) and not received:
                # Nothing came back: report why (a TLS verification error,
                # a reset ...) as Twisted gave it.
                self.handshakeFailure = reason
            else:
                self.handshakeFailure = Failure(error)
            self._layer.stats.handshake("failed", error.status or 0)
        self._lost = True
        super().connectionLost()
        if not opened:
            waiters, self._openWaiters = self._openWaiters, []
            for d in waiters:
                d.errback(self.handshakeFailure)

    def __repr__(self) -> str:
        return f"<ClientConnection {self.protocol or 'connecting'} {self.url}>"


class ClientOptions(LayerOptions, total=False):
    """
    The keyword options of L{WebSocketClient}, which L{connectWebSocket}
    and L{WebSocketClientService} pass on (so that type checkers check
    them there too): the client's own and the L{LayerOptions} both sides
    share.
    """

    version: int | str
    headers: Mapping[str, str] | Sequence[tuple[str, str]]
    cookies: Mapping[str, str] | Sequence[tuple[str, str]] | str | None
    origin: str | None
    compression: DeflateOffer | None
    maxResponseSize: int
    maxHeaders: int


@implementer(IApplication)
class WebSocketClient(WebSocketLayer[ClientConnection]):
    """
    The client-side WebSocket layer: each connection the layer below opens
    (see L{txratchet.client.Client}) sends the upgrade request for C{url}
    and, once the server accepts it, is handed to C{app} exactly as a
    server connection would be.

    @param app: the application (the same kind a server serves).
    @param url: the C{ws://} or C{wss://} URL.
    @param version: C{13} (RFC 6455), C{8} (HyBi-08..12), C{7} or
        C{"hixie-76"}.
    @keyword subprotocols: offered in order of preference; defaults to
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
    @keyword handshakeTimeout: seconds the server has to answer.

    The other options (C{maxMessageSize}, C{maxFrameSize},
    C{maxIncompleteBytes}, C{messageTimeout}, C{closeTimeout},
    C{pingInterval}, C{pingTimeout}, C{idleTimeout}, C{maxSendBuffer},
    C{sendBufferPolicy}, C{clock}, C{logConnections}) mean what they mean on
    L{txratchet.WebSocket}.
    """

    def __init__(
        self,
        app: IApplication,
        url: str | URL,
        *,
        version: int | str = 13,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        cookies: Mapping[str, str] | Sequence[tuple[str, str]] | str | None = None,
        origin: str | None = None,
        compression: DeflateOffer | None = DEFAULT_OFFER,
        maxResponseSize: int = 16384,
        maxHeaders: int = 100,
        **options: Unpack[LayerOptions],
    ) -> None:
        super().__init__(app, **options)
        self.url = url if isinstance(url, URL) else parseURL(url)
        self.version = version
        self.requestHeaders = list(headers.items() if isinstance(headers, Mapping) else headers)
        self.requestCookies = cookies
        self.origin = origin
        self.compressionOffer = compression
        self.maxResponseSize = maxResponseSize
        self.maxHeaders = maxHeaders
        self.newHandshake()  # check the options now, not on the first connection

    def newHandshake(self, http2: bool = False) -> ClientHandshake:
        """
        A fresh handshake (new keys) for the next connection; C{http2}: an
        extended CONNECT for an HTTP/2 stream.
        """
        return ClientHandshake(
            self.url,
            version=self.version,
            subprotocols=self.subprotocols,
            headers=self.requestHeaders,
            cookies=self.requestCookies,
            origin=self.origin,
            compression=self.compressionOffer,
            maxResponseSize=self.maxResponseSize,
            maxHeaders=self.maxHeaders,
            http2=http2,
        )

    def _newConnection(self, lower: LowerConnection) -> ClientConnection:
        if not isinstance(lower, ClientLowerConnection):
            raise TypeError(
                f"WebSocketClient runs over a client connection (txratchet.client.Client), not {lower!r}"
            )
        return ClientConnection(self, lower)


__all__ = [
    "ClientConnection",
    "ClientOptions",
    "HandshakeCancelled",
    "HandshakeTimedOut",
    "WebSocketClient",
]
