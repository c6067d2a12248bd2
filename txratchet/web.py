"""
L{WebSocketResource}: WebSockets inside a C{twisted.web} resource tree, so
the page, the rest of the site (static files, WSGI applications) and the
socket share one port.

Place it anywhere::

    root = SafeFile("static/")
    root.putChild(b"ws", WebSocketResource(WebSocket(Chat())))
    endpoints.serverFromString(reactor, "tcp:8080").listen(WebSocketSite(root))

The same C{WebSocket(Chat())} works unchanged under L{txratchet.Server}.
L{WebSocketSite} is a C{Site} that treats request heads as that bare port
does (C{Site} works too, with twisted.web's own patience).

L{SafeFile} serves a directory without what C{twisted.web.static.File}
also gives away: listings, dotfiles, and files outside it through symlinks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IDelayedCall,
    IHandshakeListener,
    IProtocolNegotiationFactory,
    IPushProducer,
)
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource
from twisted.web.server import NOT_DONE_YET, Request, Site
from twisted.web.static import DirectoryLister, File
from zope.interface import implementer

from txratchet._twisted import http2Usable, switchProtocol, takeUnreadBytes
from txratchet.interfaces import IApplication
from txratchet.server import Server, ServerProtocol
from txratchet.websocket.handshake import (
    SUPPORTED_VERSIONS_HEADER,
    HandshakeError,
    errorResponse,
    isRequestLineStart,
    requestFromHTTP2,
)

try:
    from txratchet import http2 as _http2
except ImportError:  # h2 is not installed: HTTP/1.1 only
    _http2 = None  # type: ignore[assignment]


def _isUpgrade(request: Request) -> bool:
    if request.method == b"CONNECT":
        return True  # an HTTP/2 extended CONNECT (RFC 8441), or a refusal to come
    upgrade = b",".join(request.requestHeaders.getRawHeaders(b"upgrade", []))
    tokens = [t.strip().lower() for t in upgrade.split(b",")]
    return b"websocket" in tokens


@implementer(IResource)
class WebSocketResource:
    """
    A leaf resource that hands upgrade requests to a WebSocket layer.

    The HTTP connection is taken over from C{twisted.web}: the request is
    given, as it came, to C{app} (a L{txratchet.wsserver.WebSocket}, which
    checks and answers it for whichever protocol family it asks for), and
    the connection then belongs to it. Other requests get 426 Upgrade
    Required.

    @param app: the WebSocket layer, e.g. C{WebSocket(Chat())}.
    """

    isLeaf = True

    def __init__(self, app: IApplication) -> None:
        self.app = app

    def getChildWithDefault(self, name: bytes, request: Request) -> WebSocketResource:
        return self

    def putChild(self, path: bytes, child: Any) -> None:
        raise NotImplementedError("WebSocketResource is a leaf")

    def render(self, request: Request) -> bytes | int:
        channel = request.channel
        if _http2 is not None and isinstance(channel, _http2.TunnelStream):
            # An extended CONNECT on a stream of an HTTP/2 connection: the
            # stream is the socket's; the layer checks and answers it.
            _http2.carryWebSocket(channel, self.app)
            return NOT_DONE_YET
        transport: Any = channel.transport if channel is not None else None
        if not _isUpgrade(request) or transport is None:
            request.setResponseCode(426, b"Upgrade Required")
            request.setHeader(b"Upgrade", b"websocket")
            request.setHeader(b"Connection", b"Upgrade")
            request.setHeader(b"Sec-WebSocket-Version", SUPPORTED_VERSIONS_HEADER.encode())
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"This resource is a WebSocket endpoint: send an upgrade request.\n"
        # Bytes twisted.web received after the request head (Hixie-76's
        # key3, or the first frames) were not consumed: take them along.
        leftover = takeUnreadBytes(channel)
        # Take the transport away from twisted.web.
        transport.unregisterProducer()
        channel.transport = None
        protocol = ServerProtocol(self.app)
        switchProtocol(transport, channel, protocol)
        protocol.makeConnection(transport)
        if IPushProducer.providedBy(transport):
            transport.resumeProducing()  # twisted.web may have paused reading
        protocol.dataReceived(_rawHead(request) + leftover)
        return NOT_DONE_YET


#: How much of a connection's first request line is checked as it arrives.
_LINE_CHECKED = 256


class _RequestHeadChannel(HTTPChannel):
    """
    C{twisted.web}'s HTTP/1.1 channel with the checks a bare WebSocket port
    makes on a request head (L{txratchet.websocket.handshake.RequestParser}):
    what cannot start a request line (binary noise, a TLS hello on a plain
    port, a line starting with a space) gets 400 as it arrives, and the
    first request's head must arrive within the site's C{headTimeout}
    (408). twisted.web alone waits for a whole line, or for its idle
    timeout (12 hours by default).
    """

    _checking = True
    _start = b""
    _refused = False
    _headTimer: IDelayedCall | None = None
    site: Site | None = None  # set by Site.buildProtocol

    def connectionMade(self) -> None:
        super().connectionMade()
        site = self.site
        timeout = site.headTimeout if isinstance(site, WebSocketSite) else None
        if timeout:
            self._headTimer = self.callLater(timeout, self._headTimedOut)

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if self._checking and not self._start and self._negotiatedHTTP2():
            self._becomeHTTP2(data)
            return
        if self._checking:
            start = self._start + data[: _LINE_CHECKED - len(self._start)]
            end = min((i for i in (start.find(b"\r"), start.find(b"\n")) if i >= 0), default=-1)
            prefix = start if end < 0 else start[:end]
            if prefix and not isRequestLineStart(prefix):
                self._refuse(HandshakeError(400, "Not an HTTP request line"))
                return
            if end >= 0 or len(start) >= _LINE_CHECKED:
                self._checking = False  # twisted.web takes it from here
                self._start = b""
            else:
                self._start = start
        super().dataReceived(data)

    def _negotiatedHTTP2(self) -> bool:
        site = self.site
        return (
            isinstance(site, WebSocketSite)
            and site.http2
            and getattr(self.transport, "negotiatedProtocol", None) == b"h2"
        )

    def _becomeHTTP2(self, data: bytes) -> None:
        """
        ALPN chose h2: hand the connection to an HTTP/2 channel that serves
        the site and WebSockets over streams (RFC 8441), as Twisted's own
        generic channel hands it to its HTTP/2 channel.
        """
        transport: Any = self.transport
        self._checking = False
        self._cancelHeadTimer()
        idleTimeout = self.timeOut  # the site's (setTimeout sets it)
        self.setTimeout(None)
        transport.unregisterProducer()  # this channel registered itself
        self.transport = None
        _startHTTP2(transport, self, self.site, idleTimeout, self.callLater, data)

    def allHeadersReceived(self) -> None:
        self._cancelHeadTimer()
        super().allHeadersReceived()

    def _headTimedOut(self) -> None:
        self._headTimer = None
        self._refuse(HandshakeError(408, "Request head timed out"))

    def _refuse(self, error: HandshakeError) -> None:
        self._refused = True
        self._checking = False
        self._cancelHeadTimer()
        if self.transport is not None:
            self.transport.write(errorResponse(error))
            self.loseConnection()

    def _cancelHeadTimer(self) -> None:
        timer, self._headTimer = self._headTimer, None
        if timer is not None and timer.active():
            timer.cancel()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._cancelHeadTimer()
        super().connectionLost(reason or Failure(ConnectionDone()))


def _startHTTP2(
    transport: Any, old: Any, site: Any, idleTimeout: float | None, callLater: Any, data: bytes
) -> None:
    """
    Make an HTTP/2 channel serving C{site} (a L{WebSocketSite}) the protocol
    of C{transport} in place of C{old}, and give it C{data}, the first
    bytes (if any came).
    """
    assert _http2 is not None
    channel: Any = _http2.WebSocketH2Connection(
        maxStreams=site.maxStreams, headTimeout=site.headTimeout
    )
    channel.requestFactory = site.requestFactory
    channel.site = site
    channel.factory = site
    channel.timeOut = idleTimeout
    channel.callLater = callLater
    switchProtocol(transport, old, channel)
    channel.makeConnection(transport)
    transport.registerProducer(channel, True)
    if data:
        channel.dataReceived(data)


class WebSocketSite(Site):
    """
    A C{twisted.web} L{Site} for trees holding a L{WebSocketResource}, whose
    connections treat a request head as a bare WebSocket port does: what
    cannot be an HTTP request gets 400 at once, and a connection's first
    request head must arrive within C{headTimeout} seconds (408), instead
    of twisted.web's idle timeout (12 hours by default).

    Over TLS it also speaks HTTP/2 (when C{h2} is installed: the
    C{txratchet[http2]} extra): ALPN offers C{h2} and C{http/1.1}, and a
    L{WebSocketResource} takes WebSockets opened as streams of an HTTP/2
    connection (RFC 8441) while the other streams serve the site's pages.

    @param headTimeout: seconds; C{None} leaves only C{Site}'s C{timeout}.
        Over HTTP/2: seconds the peer has to send its first request.
    @param http2: offer HTTP/2 over TLS (C{False}: HTTP/1.1 only).
    @param maxStreams: streams (pages and sockets) an HTTP/2 peer may have
        open at once on one connection (C{SETTINGS_MAX_CONCURRENT_STREAMS}).
    @ivar h2Connections: the HTTP/2 connections open (for L{shutdown}).
    """

    protocol = _RequestHeadChannel  # type: ignore[assignment]

    def __init__(
        self,
        resource: Any,
        *args: Any,
        headTimeout: float | None = 10.0,
        http2: bool = True,
        maxStreams: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(resource, *args, **kwargs)
        if maxStreams < 1:
            raise ValueError("maxStreams must be at least 1")
        self.headTimeout = headTimeout
        self.maxStreams = maxStreams
        #: Offer h2 by ALPN over TLS (when h2 is installed), with WebSockets
        #: over HTTP/2 streams (RFC 8441)?
        self.http2 = http2 and _http2 is not None and http2Usable()
        self.h2Connections: set[Any] = set()
        self.shuttingDown = False

    def shutdown(self, timeout: float | None = 6.0) -> Deferred[list[None]]:
        """
        Shut the HTTP/2 connections down gracefully: each gets a C{GOAWAY},
        refuses new streams (C{REFUSED_STREAM}) and is closed once its
        streams are done, or after C{timeout} seconds. Call it with the
        WebSocket layer's C{shutdown} (which sends 1001 to every socket,
        ending their streams); C{twistd txratchet} does both on stop.
        HTTP/1.1 connections are left to C{twisted.web}.

        @return: a Deferred that fires once those connections are gone.
        """
        self.shuttingDown = True
        return gatherResults(
            [channel.goAway(timeout) for channel in list(self.h2Connections)]
        )

    def acceptableProtocols(self) -> list[bytes]:
        """
        The ALPN protocols offered over TLS: h2 only when this site serves
        it (C{Site} offers it whenever h2 is installed).
        """
        return [b"h2", b"http/1.1"] if self.http2 else [b"http/1.1"]


class _EveryPath(WebSocketResource):
    """
    The resource tree of an HTTP/2 connection to a bare port
    (L{HTTP2Server}): the socket at every path, as over HTTP/1.1; any other
    request gets what the layer's C{httpHandler} answers (the bare port's
    answer to a plain HTTP request), or 426.
    """

    def render(self, request: Request) -> bytes | int:
        handler = getattr(self.app, "httpHandler", None)
        if handler is None or request.method == b"CONNECT":
            return super().render(request)
        fields = [(b":method", request.method), (b":path", request.uri)]
        fields += [
            (name, value)
            for name, values in request.requestHeaders.getAllRawHeaders()
            for value in values
        ]
        response = handler(requestFromHTTP2(fields))
        if response is None:
            return super().render(request)
        return _transcribe(response, request)


#: What an HTTP/1.1 response says about its connection, which HTTP/2 does
#: not carry (RFC 9113 8.2.2); twisted.web sets the length itself.
_HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"content-length"}


def _transcribe(response: bytes, request: Request) -> bytes:
    """
    Give C{request} (an HTTP/2 stream's) the status, fields and body of
    C{response}, a complete HTTP/1.1 response (an C{httpHandler}'s).
    """
    head, _, body = response.partition(b"\r\n\r\n")
    statusLine, *lines = head.split(b"\r\n")
    parts = statusLine.split(b" ", 2)
    request.setResponseCode(int(parts[1]), parts[2] if len(parts) > 2 else None)
    for line in lines:
        name, _, value = line.partition(b":")
        if name.strip().lower() not in _HOP_BY_HOP:
            request.responseHeaders.addRawHeader(name.strip(), value.strip())
    return body


@implementer(IHandshakeListener)
class _NegotiatingProtocol(ServerProtocol):
    """
    L{ServerProtocol}, which over TLS hands the connection to an HTTP/2
    channel when ALPN chose h2 (before any byte reached the application:
    the WebSocket not yet opened is dropped unseen); otherwise it is the
    bare port's protocol, unchanged.
    """

    factory: HTTP2Server

    def handshakeCompleted(self) -> None:
        transport: Any = self.transport
        if getattr(transport, "negotiatedProtocol", None) != b"h2":
            return
        # The WebSocket waiting for its request goes, unseen (no request,
        # no open, no close), with its hold on the transport.
        self.conn._unregister()
        self.connectionLost(Failure(ConnectionDone()))
        site = self.factory.site
        _startHTTP2(transport, self, site, site.timeOut, site.reactor.callLater, b"")


@implementer(IProtocolNegotiationFactory)
class HTTP2Server(Server):
    """
    L{txratchet.Server} that over TLS also speaks HTTP/2 (when h2 is
    installed: the C{txratchet[http2]} extra): ALPN offers C{h2} and
    C{http/1.1}; on an HTTP/2 connection every extended CONNECT (RFC 8441),
    whatever its path, is a WebSocket of C{app}, as every upgrade request
    is over HTTP/1.1, which is served exactly as by C{Server}. Plain TCP
    is C{Server}'s.

    @param http2: offer h2 (C{False}: C{Server}, HTTP/1.1 only).
    @param maxStreams: sockets an HTTP/2 peer may have open at once on one
        connection.
    @ivar site: the L{WebSocketSite} HTTP/2 connections serve (its
        L{WebSocketSite.shutdown} sends them C{GOAWAY}).
    """

    protocol: type[ServerProtocol] = _NegotiatingProtocol

    def __init__(self, app: IApplication, http2: bool = True, maxStreams: int = 256) -> None:
        super().__init__(app)
        self.site = WebSocketSite(
            _EveryPath(app),
            headTimeout=getattr(app, "handshakeTimeout", 10.0),
            http2=http2,
            maxStreams=maxStreams,
        )
        if not self.site.http2:
            self.protocol = ServerProtocol

    def acceptableProtocols(self) -> list[bytes]:
        return self.site.acceptableProtocols()


def _rawHead(request: Request) -> bytes:
    """
    The request head again, as the WebSocket layer parses it.
    """
    lines = [request.method + b" " + request.uri + b" " + request.clientproto]
    for name, values in request.requestHeaders.getAllRawHeaders():
        for value in values:
            lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n"


@implementer(IResource)
class WebSocketRouter:
    """
    A root resource that sends upgrade requests for C{path} to a
    L{WebSocketResource} and everything else to C{fallback} (say, a
    C{File}), so the socket can live at C{/} next to the site's pages.

    @param path: the whole request path of the socket, query left out:
        C{"/"} or C{"/ws"}, as C{str} (or C{bytes}, as C{putChild} names
        are: C{b"/ws"} is the same). It must start with C{/}: a relative
        C{"ws"} would never match a request, so it is refused.
    @raise ValueError: C{path} does not start with C{/}.
    """

    isLeaf = False

    def __init__(self, path: str | bytes, websocket: WebSocketResource, fallback: Any) -> None:
        if isinstance(path, str):
            path = path.encode("utf-8")
        if not path.startswith(b"/"):
            raise ValueError(
                f"WebSocketRouter path {path.decode('utf-8', 'replace')!r} must be the "
                "whole request path, starting with '/' (e.g. '/ws')"
            )
        self.path = path
        self.websocket = websocket
        self.fallback = fallback

    def _wants(self, request: Request) -> bool:
        return request.path == self.path and _isUpgrade(request)

    def getChildWithDefault(self, name: bytes, request: Request) -> Any:
        if self._wants(request):
            return self.websocket
        if getattr(self.fallback, "isLeaf", False):
            # A leaf (a WSGIResource, say) takes the whole path itself.
            if request.prepath and request.postpath is not None:
                request.prepath.pop()
                request.postpath.insert(0, name)
            return self.fallback
        return self.fallback.getChildWithDefault(name, request)

    def putChild(self, path: bytes, child: Any) -> None:
        self.fallback.putChild(path, child)

    def render(self, request: Request) -> bytes | int:
        if self._wants(request):
            return self.websocket.render(request)
        return self.fallback.render(request)  # type: ignore[no-any-return]


class SafeFile(File):
    """
    A C{twisted.web.static.File} that is safe to point at a real directory:
    by default it answers 404 for directory listings (a directory without
    an index), for dotfiles and dot-directories anywhere in the path
    (C{/.env}, C{/.git/config}) and for anything whose real path is
    outside the root (a symlink out of it); each can be allowed.

    @param listings: list the contents of directories without an index.
    @param dotfiles: serve names starting with C{"."} (and list them).
    @param followSymlinks: serve symlinks that lead outside the root
        (those that stay inside it are always served).
    @param root: the real path of the served root (given to children;
        C{None} for the root itself).
    """

    def __init__(
        self,
        path: str,
        defaultType: str = "text/html",
        ignoredExts: Sequence[str] = (),
        registry: Any = None,
        *,
        listings: bool = False,
        dotfiles: bool = False,
        followSymlinks: bool = False,
        root: str | None = None,
    ) -> None:
        super().__init__(path, defaultType, ignoredExts, registry)
        self.listings = listings
        self.dotfiles = dotfiles
        self.followSymlinks = followSymlinks
        self.root = os.path.realpath(path) if root is None else root

    def _inside(self, path: str) -> bool:
        """
        Is C{path} (its real path, every symlink resolved) in the root?
        """
        if "\0" in path:
            return False  # no file has one; os.path would raise ValueError
        if self.followSymlinks:
            return True
        real = os.path.realpath(path)
        return real == self.root or real.startswith(os.path.join(self.root, ""))

    def _allowed(self, path: str) -> bool:
        if not self.dotfiles and os.path.basename(path).startswith("."):
            return False
        return self._inside(path)

    def getChild(self, path: bytes | str, request: Any) -> Any:
        name = path
        if isinstance(name, bytes):
            try:
                name = name.decode("utf-8")
            except UnicodeDecodeError:
                return self.childNotFound
        if name and not self._allowed(os.path.join(self.path, name)):
            return self.childNotFound
        child = super().getChild(path, request)
        if isinstance(child, DirectoryLister):
            return child if self.listings else self.childNotFound
        if isinstance(child, File) and not self._allowed(child.path):
            # An index file or a name found by extension: the same rules.
            return self.childNotFound
        return child

    def listNames(self) -> list[str]:
        return [
            name
            for name in super().listNames()
            if self._allowed(os.path.join(self.path, name))
        ]

    def createSimilarFile(self, path: str) -> SafeFile:
        child = type(self)(
            path, self.defaultType, self.ignoredExts, self.registry,
            listings=self.listings, dotfiles=self.dotfiles,
            followSymlinks=self.followSymlinks, root=self.root,
        )
        child.processors = self.processors
        child.indexNames = self.indexNames[:]
        child.childNotFound = self.childNotFound
        return child
