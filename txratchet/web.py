"""
L{WebSocketResource}: WebSockets inside a C{twisted.web} resource tree, so
the page, the rest of the site (static files, WSGI applications) and the
socket share one port.

Place it anywhere::

    root = File("static/")
    root.putChild(b"ws", WebSocketResource(WebSocket(Chat())))
    endpoints.serverFromString(reactor, "tcp:8080").listen(Site(root))

The same C{WebSocket(Chat())} works unchanged under L{txratchet.Server}.
"""

from __future__ import annotations

from typing import Any

from twisted.protocols.policies import ProtocolWrapper
from twisted.web.resource import IResource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from txratchet.interfaces import IApplication
from txratchet.server import ServerProtocol
from txratchet.websocket.handshake import SUPPORTED_VERSIONS_HEADER


def _isUpgrade(request: Request) -> bool:
    upgrade = b",".join(request.requestHeaders.getRawHeaders(b"upgrade", []))
    tokens = [t.strip().lower() for t in upgrade.split(b",")]
    return b"websocket" in tokens


@implementer(IResource)
class WebSocketResource:
    """
    A leaf resource that hands upgrade requests to a WebSocket layer.

    The HTTP connection is taken over from C{twisted.web}: the request is
    given, as it came, to C{app} (a L{txratchet.websocket.WebSocket}, which
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
        leftover = b"".join(getattr(channel, "_dataBuffer", [])) + getattr(channel, "_buffer", b"")
        channel._dataBuffer = []
        channel._buffer = b""
        # Take the transport away from twisted.web.
        transport.unregisterProducer()
        channel.transport = None
        protocol = ServerProtocol(self.app)
        if isinstance(transport, ProtocolWrapper):  # TLS
            transport.wrappedProtocol = protocol
        else:
            transport.protocol = protocol
        protocol.makeConnection(transport)
        resume = getattr(transport, "resumeProducing", None)
        if resume is not None:
            resume()
        protocol.dataReceived(_rawHead(request) + leftover)
        return NOT_DONE_YET


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
    """

    isLeaf = False

    def __init__(self, path: str, websocket: WebSocketResource, fallback: Any) -> None:
        self.path = path.encode("utf-8")
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
