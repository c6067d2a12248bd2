"""
Connecting: the Twisted factory at the bottom of a client stack, endpoints
for C{ws://} and C{wss://} URLs, L{connectWebSocket} and a reconnecting
L{WebSocketClientService}.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack, cast

from twisted.application.internet import ClientService
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import (
    IAddress,
    IOpenSSLClientConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
    ITransport,
)
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import Certificate, optionsForClientTLS, trustRootFromCertificates
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet.client.layer import ClientConnection, ClientOptions, WebSocketClient
from txratchet.commands import execute
from txratchet.connection import TransportConnection
from txratchet.interfaces import IApplication, LowerConnection, hooksOf
from txratchet.server import Server, ServerProtocol
from txratchet.websocket import rfc6455
from txratchet.websocket.handshake import RFC6455, URL, normalizeVersion, parseURL

log = Logger()

class ClientTransportConnection(TransportConnection):
    """
    The bottom connection of a client: a L{LowerConnection} like the
    server's, plus two members the client layer uses: L{lostReason}, why
    it was lost (a failed TLS verification, say), for the handshake to
    report; and L{opened}, as it does not stop reading before the
    WebSocket is open.

    Over TLS the request is written before the TLS handshake is done; TLS
    buffers it and pauses its producer, which would stop reading the
    socket, and with it the TLS handshake that would unblock the write.
    Until L{opened}, back-pressure only marks the writes paused.
    """

    #: Why the connection was lost, once it is (C{None} before).
    lostReason: Failure | None = None
    _opening = True
    _readingPaused = False

    def pauseProducing(self) -> None:
        if self._opening:
            self.writePaused = True
            return
        self._readingPaused = True
        super().pauseProducing()

    def resumeProducing(self) -> None:
        if self._opening:
            self.writePaused = False
            self.bufferedWhilePaused = 0
            return
        self._readingPaused = False
        super().resumeProducing()

    def opened(self) -> None:
        """
        The WebSocket is open: back-pressure stops reading from now on.
        """
        self._opening = False
        if self.writePaused and not self._readingPaused:
            self.pauseProducing()

    def sendRequest(self, headerBlock: Sequence[tuple[str, str]]) -> None:
        """
        Not over a byte stream: the request is bytes, sent with C{send}.
        """
        raise RuntimeError("Not an HTTP/2 stream: send the request as bytes")


if TYPE_CHECKING:  # mypy checks that the contract is met, member by member
    _lower: type[LowerConnection] = ClientTransportConnection


class ClientProtocol(ServerProtocol):
    """
    One outgoing TCP (or TLS) connection, fed to the application exactly
    as L{ServerProtocol} feeds an incoming one.

    @ivar websocket: the L{ClientConnection} running over this connection
        when the application is a L{WebSocketClient}, else C{None}.
    """

    websocket: ClientConnection | None = None
    conn: ClientTransportConnection

    def connectionMade(self) -> None:
        # An HTTP/2 stream (txratchet.client.http2) makes its own lower
        # connection; any other transport gets a ClientTransportConnection.
        streamConnection = getattr(self.transport, "clientConnection", None)
        if streamConnection is not None:
            self._open(streamConnection(self.app))
        else:
            self._open(ClientTransportConnection(self.app, self.transport))  # type: ignore[arg-type]
        if isinstance(self.app, WebSocketClient):
            self.websocket = self.app.connectionFor(self.conn)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._made:
            self.conn.lostReason = reason
        super().connectionLost(reason)

    @property
    def clientProtocol(self) -> ClientProtocol:
        """
        This protocol (reachable through wrappers that forward attributes).
        """
        return self


class Client(Server):
    """
    A Twisted factory connecting C{app}, the client twin of
    L{txratchet.Server} (the same factory, building L{ClientProtocol})::

        endpoint.connect(Client(WebSocketClient(app, "ws://example.com/")))
    """

    protocol = ClientProtocol  # type: ignore[assignment]

    def buildProtocol(self, addr: IAddress | None) -> ClientProtocol:
        return cast(ClientProtocol, super().buildProtocol(addr))


class _HandshakeGate(Protocol):
    """
    Sits between the transport and the protocol a factory built; reports
    the connection made only once the WebSocket is open. A connection that
    never opened is reported lost to the inner protocol only, not to the
    wrappers around it (ClientService counts it as a failed attempt).
    """

    def __init__(self, wrapped: Any, result: Deferred[Any], opened: Callable[[Any], None]) -> None:
        self.wrapped = wrapped
        self.result = result
        self.isOpen = False
        self._openedHook = opened

    def makeConnection(self, transport: ITransport) -> None:
        self.transport = transport
        self.connected = True
        self.wrapped.makeConnection(transport)
        # The wrapped protocol is whatever the caller's factory built: a
        # ClientProtocol, a wrapper forwarding its attributes, or another
        # protocol altogether (which opens at once).
        ws = getattr(self.wrapped, "websocket", None)
        if ws is None:
            self._opened(None)
        else:
            ws.whenOpen().addCallbacks(self._opened, self._failed)

    def dataReceived(self, data: bytes) -> None:
        self.wrapped.dataReceived(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connected = False
        if self.isOpen:
            self.wrapped.connectionLost(reason)
            return
        inner = getattr(self.wrapped, "clientProtocol", self.wrapped)
        inner.connectionLost(reason)
        if not self.result.called and reason is not None:
            self.result.errback(reason)

    def _opened(self, ws: ClientConnection | None) -> None:
        self.isOpen = True
        if ws is not None:
            try:
                self._openedHook(ws)
            except Exception:
                log.failure("The connection-opened hook raised")
        if not self.result.called:
            self.result.callback(self.wrapped)

    def _failed(self, failure: Failure) -> None:
        if not self.result.called:
            self.result.errback(failure)


@implementer(IProtocolFactory)
class _GateFactory:
    def __init__(self, factory: IProtocolFactory, build: Callable[[Any], _HandshakeGate]) -> None:
        self._factory = factory
        self._build = build

    def buildProtocol(self, addr: IAddress) -> IProtocol | None:
        inner = self._factory.buildProtocol(addr)
        if inner is None:
            return None
        return self._build(inner)

    def doStart(self) -> None:
        self._factory.doStart()

    def doStop(self) -> None:
        self._factory.doStop()


@implementer(IStreamClientEndpoint)
class WebSocketEndpoint:
    """
    Wraps a stream endpoint so that C{connect} fires once the WebSocket
    handshake has succeeded (with the factory's protocol), and fails with
    the handshake's error (L{txratchet.client.HandshakeFailed}, or the
    connection's own failure, such as a TLS verification error) otherwise.

    Give it a factory whose protocols are L{ClientProtocol}s over a
    L{WebSocketClient} (or wrappers of them); for other protocols it fires
    as soon as the connection is made.

    @param opened: called with each L{ClientConnection} that opens.
    """

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        opened: Callable[[ClientConnection], None] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._opened: Callable[[Any], None] = opened or (lambda ws: None)

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        gates: list[_HandshakeGate] = []

        def cancel(d: Deferred[IProtocol]) -> None:
            if not connecting.called:
                connecting.cancel()
            for gate in gates:
                if not gate.isOpen and gate.connected:
                    transport: Any = gate.transport
                    transport.abortConnection()

        result: Deferred[IProtocol] = Deferred(cancel)

        def build(inner: Any) -> _HandshakeGate:
            gate = _HandshakeGate(inner, result, self._opened)
            gates.append(gate)
            return gate

        connecting = self._endpoint.connect(_GateFactory(protocolFactory, build))

        def connectFailed(failure: Failure) -> None:
            if not result.called:
                result.errback(failure)

        connecting.addCallbacks(lambda _: None, connectFailed)
        return result


def _websocketOf(proto: Any) -> ClientConnection:
    return cast(ClientConnection, proto.websocket)


def loadCertificates(ca: Any) -> list[Certificate]:
    """
    Every certificate in C{ca}: a PEM file's path, PEM bytes, or a
    sequence of them.
    """
    sources = [ca] if isinstance(ca, (str, os.PathLike, bytes)) else list(ca)
    certificates: list[Certificate] = []
    marker = b"-----BEGIN CERTIFICATE-----"
    for source in sources:
        pem = source if isinstance(source, bytes) else Path(source).read_bytes()
        blocks = [marker + block for block in pem.split(marker)[1:]]
        if not blocks:
            raise ValueError(f"No PEM certificate in {source!r:.80}")
        certificates.extend(Certificate.loadPEM(block) for block in blocks)
    return certificates


def clientEndpoint(
    reactor: Any,
    url: str | URL,
    *,
    caCertificates: Any = None,
    tlsOptions: IOpenSSLClientConnectionCreator | None = None,
    connectTimeout: float = 30.0,
    bindAddress: tuple[str, int] | None = None,
    http2: bool | None = False,
) -> IStreamClientEndpoint:
    """
    The stream endpoint that reaches C{url}'s host and port: TCP for
    C{ws://}; for C{wss://}, TLS on top, the server's certificate verified
    for the URL's host (Twisted's C{optionsForClientTLS}) against the
    system's trust store, or against C{caCertificates} (a PEM path or
    bytes, or several) when given. C{tlsOptions} replaces the TLS settings
    altogether (any C{IOpenSSLClientConnectionCreator}).

    With C{http2} (C{True}, or C{None} for "if the server can"), a
    C{wss://} URL gets an endpoint whose connections are streams of one
    shared HTTP/2 connection (L{txratchet.client.http2.HTTP2Endpoint}):
    TLS offers C{h2} and C{http/1.1} by ALPN (given C{tlsOptions} must
    offer them themselves: C{optionsForClientTLS(...,
    acceptableProtocols=[b"h2", b"http/1.1"])}).
    """
    if not isinstance(url, URL):
        url = parseURL(url)
    if http2 is not False:
        if not url.secure:
            if http2:
                raise ValueError("http2=True needs a wss:// URL (WebSockets over HTTP/2 run on TLS)")
        else:
            return _http2Endpoint(
                reactor, url, caCertificates, tlsOptions, connectTimeout, bindAddress, http2
            )
    endpoint = _tcpEndpoint(reactor, url, connectTimeout, bindAddress)
    if not url.secure:
        if tlsOptions is not None or caCertificates is not None:
            raise ValueError("TLS options given for a ws:// URL (use wss://)")
        return endpoint
    if tlsOptions is None:
        trustRoot = None
        if caCertificates is not None:
            trustRoot = trustRootFromCertificates(loadCertificates(caCertificates))
        tlsOptions = optionsForClientTLS(url.host, trustRoot=trustRoot)
    return wrapClientTLS(tlsOptions, endpoint)


def _tcpEndpoint(
    reactor: Any, url: URL, connectTimeout: float, bindAddress: tuple[str, int] | None
) -> IStreamClientEndpoint:
    if isIPAddress(url.host):
        return TCP4ClientEndpoint(
            reactor, url.host, url.port, timeout=connectTimeout, bindAddress=bindAddress
        )
    if isIPv6Address(url.host):
        return TCP6ClientEndpoint(
            reactor, url.host, url.port, timeout=connectTimeout, bindAddress=bindAddress
        )
    return HostnameEndpoint(
        reactor, url.host, url.port, timeout=connectTimeout, bindAddress=bindAddress
    )


def _hashable(value: Any) -> Hashable:
    if isinstance(value, (str, bytes, os.PathLike)):
        return os.fspath(value) if isinstance(value, os.PathLike) else value
    return tuple(_hashable(v) for v in value)


def _http2Endpoint(
    reactor: Any,
    url: URL,
    caCertificates: Any,
    tlsOptions: IOpenSSLClientConnectionCreator | None,
    connectTimeout: float,
    bindAddress: tuple[str, int] | None,
    http2: bool | None,
    endpoint: IStreamClientEndpoint | None = None,
) -> IStreamClientEndpoint:
    """
    Sockets as streams of a shared HTTP/2 connection; for C{http2=None},
    HTTP/1.1 when the server cannot.
    """
    from txratchet.client.http2 import HTTP2Endpoint

    key: Hashable
    if endpoint is not None:
        # The caller's own endpoint (which must do TLS offering h2).
        return HTTP2Endpoint(reactor, endpoint, endpoint, endpoint if http2 is None else None)
    tcp = _tcpEndpoint(reactor, url, connectTimeout, bindAddress)
    fallback = None
    if tlsOptions is None:
        trustRoot = None
        if caCertificates is not None:
            trustRoot = trustRootFromCertificates(loadCertificates(caCertificates))
        h2Options = optionsForClientTLS(
            url.host, trustRoot=trustRoot, acceptableProtocols=[b"h2", b"http/1.1"]
        )
        if http2 is None:
            fallback = wrapClientTLS(optionsForClientTLS(url.host, trustRoot=trustRoot), tcp)
        trust = None if caCertificates is None else _hashable(caCertificates)
        key = (url.host, url.port, "ca", trust, bindAddress)
    else:
        h2Options = tlsOptions
        if http2 is None:
            fallback = wrapClientTLS(tlsOptions, tcp)
        key = (url.host, url.port, "tls", tlsOptions, bindAddress)
    return HTTP2Endpoint(reactor, wrapClientTLS(h2Options, tcp), key, fallback)


def _http2Option(layer: WebSocketClient, http2: bool | None) -> bool | None:
    """
    C{http2} for this layer's URL and version: HTTP/2 carries RFC 6455
    only, on C{wss://} only.
    """
    if http2 is False:
        return False
    if normalizeVersion(layer.version)[0] != RFC6455:
        if http2:
            raise ValueError("http2=True needs version 13 (RFC 6455)")
        return False
    if not layer.url.secure:
        if http2:
            raise ValueError("http2=True needs a wss:// URL (WebSockets over HTTP/2 run on TLS)")
        return False
    return http2


def connectWebSocket(
    reactor: Any,
    url: str,
    app: IApplication,
    *,
    caCertificates: Any = None,
    tlsOptions: IOpenSSLClientConnectionCreator | None = None,
    connectTimeout: float = 30.0,
    bindAddress: tuple[str, int] | None = None,
    endpoint: IStreamClientEndpoint | None = None,
    http2: bool | None = False,
    **options: Unpack[ClientOptions],
) -> Deferred[ClientConnection]:
    """
    Connect C{app} to the WebSocket server at C{url} (C{ws://} or
    C{wss://}).

    The application is driven exactly as a server drives it: C{onOpen}
    once the server accepted the handshake, C{onMessage} with C{str} or
    C{bytes}, C{onClose} once, C{onError}; its handlers may return
    commands.

    @keyword version: C{13} (RFC 6455, the default), C{8} (HyBi-08..12),
        C{7} or C{"hixie-76"}.
    @keyword subprotocols: offered in order; defaults to C{app.subprotocols}.
    @keyword headers: more request headers (pairs or a mapping).
    @keyword cookies: a C{Cookie} header (mapping, pairs or its value).
    @keyword origin: the C{Origin} to send.
    @param caCertificates: for C{wss://}: trust these CA certificates (PEM
        path(s) or bytes) instead of the system's.
    @param tlsOptions: for C{wss://}: the TLS settings themselves (e.g.
        from C{optionsForClientTLS}).
    @param endpoint: connect through this stream endpoint instead of one
        made from the URL (a UNIX socket, a proxy ...).
    @param http2: C{False} (the default): an HTTP/1.1 upgrade on a
        connection of its own, as every WebSocket client does. C{True}:
        over C{wss://}, the socket is an extended CONNECT stream (RFC 8441)
        of an HTTP/2 connection shared with the other sockets to the same
        host, port and TLS settings; fails with L{HTTP2Unavailable} when
        the server does not choose C{h2} by ALPN or does not enable
        extended CONNECT. C{None}: HTTP/2 when the server can, else
        HTTP/1.1 (remembered for the process).
    @param options: these and the other options of L{WebSocketClient}
        (C{compression}, C{maxMessageSize}, C{handshakeTimeout},
        C{closeTimeout}, C{pingInterval} ...: L{ClientOptions}).
    @return: a Deferred firing with the open L{ClientConnection} (after
        C{app.onOpen}), or failing with L{HandshakeFailed} (C{.status} on
        a refusal), the TLS error, or the connection error.
    """
    options.setdefault("clock", reactor)
    layer = WebSocketClient(app, url, **options)
    http2 = _http2Option(layer, http2)
    if endpoint is None:
        endpoint = clientEndpoint(
            reactor,
            layer.url,
            caCertificates=caCertificates,
            tlsOptions=tlsOptions,
            connectTimeout=connectTimeout,
            bindAddress=bindAddress,
            http2=http2,
        )
    elif http2 is not False:
        endpoint = _http2Endpoint(
            reactor, layer.url, None, None, connectTimeout, bindAddress, http2, endpoint
        )
    d = WebSocketEndpoint(endpoint).connect(Client(layer))
    return d.addCallback(_websocketOf)


class WebSocketClientService(ClientService):
    """
    Keeps C{app} connected to C{url}: reconnects after the connection is
    lost or an attempt fails, waiting longer after each failure
    (exponential backoff with jitter, Twisted's C{backoffPolicy}).

    The application's C{onOpen} runs for every new connection, so what it
    does there (subscribing, logging in) is redone after a reconnection.
    C{onReconnect(conn)} (by default C{app.onReconnect}, when the
    application has one) is also called on every connection after the
    first; it may return commands.

    A handshake the server refuses counts as a failed attempt too.

    @param retryPolicy: attempts -> seconds, e.g.
        C{backoffPolicy(initialDelay=0.5, maxDelay=30, factor=2)}; the
        default is Twisted's (1 s, x1.5, at most 60 s, plus up to 1 s of
        jitter).
    @param options: L{connectWebSocket}'s options.
    """

    def __init__(
        self,
        reactor: Any,
        url: str,
        app: IApplication,
        *,
        retryPolicy: Callable[[int], float] | None = None,
        onReconnect: Callable[[ClientConnection], object] | None = None,
        caCertificates: Any = None,
        tlsOptions: IOpenSSLClientConnectionCreator | None = None,
        connectTimeout: float = 30.0,
        bindAddress: tuple[str, int] | None = None,
        endpoint: IStreamClientEndpoint | None = None,
        http2: bool | None = False,
        **options: Unpack[ClientOptions],
    ) -> None:
        options.setdefault("clock", reactor)
        self.layer = WebSocketClient(app, url, **options)
        http2 = _http2Option(self.layer, http2)
        if onReconnect is None:
            onReconnect = hooksOf(app).onReconnect
        self.onReconnect = onReconnect
        #: How many connections opened so far.
        self.openCount = 0
        if endpoint is None:
            endpoint = clientEndpoint(
                reactor,
                self.layer.url,
                caCertificates=caCertificates,
                tlsOptions=tlsOptions,
                connectTimeout=connectTimeout,
                bindAddress=bindAddress,
                http2=http2,
            )
        elif http2 is not False:
            endpoint = _http2Endpoint(
                reactor, self.layer.url, None, None, connectTimeout, bindAddress, http2, endpoint
            )
        super().__init__(
            WebSocketEndpoint(endpoint, self._connectionOpened),
            Client(self.layer),
            retryPolicy=retryPolicy,
            clock=reactor,
        )

    def _connectionOpened(self, ws: ClientConnection) -> None:
        self.openCount += 1
        if self.openCount == 1 or self.onReconnect is None:
            return
        try:
            result = self.onReconnect(ws)
        except Exception:
            ws.reportError(Failure())
        else:
            execute(result, ws)

    def whenOpen(self, failAfterFailures: int | None = None) -> Deferred[ClientConnection]:
        """
        The open connection, or the next one to open (see
        C{ClientService.whenConnected}).
        """
        d = self.whenConnected(failAfterFailures)
        return d.addCallback(_websocketOf)

    @property
    def connection(self) -> ClientConnection | None:
        """
        The connection open right now, if any.
        """
        for ws in self.layer.connections:
            if ws.response is not None:
                return ws
        return None

    def stopService(self) -> Deferred[None]:
        """
        Stop reconnecting; close the connection with 1001 Going Away,
        waiting for the server's answer (at most C{closeTimeout}).
        """
        if not self.layer.connections:
            return super().stopService()
        d = self.layer.shutdown(rfc6455.GOING_AWAY, "Client going away")
        done: Deferred[None] = Deferred()

        def closed(_: object) -> None:
            super(WebSocketClientService, self).stopService().chainDeferred(done)

        d.addCallback(closed)
        return done


__all__ = [
    "Client",
    "ClientProtocol",
    "ClientTransportConnection",
    "WebSocketClientService",
    "WebSocketEndpoint",
    "clientEndpoint",
    "connectWebSocket",
    "loadCertificates",
]

