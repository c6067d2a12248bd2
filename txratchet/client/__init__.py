"""
Consuming sockets: txratchet applications as WebSocket clients.

The same application a server runs connects to any WebSocket server::

    from twisted.internet import defer, task
    from txratchet import Application, SendMessage
    from txratchet.client import connectWebSocket

    class Hello(Application):
        def onOpen(self, conn):
            return SendMessage(conn, "hello")
        def onMessage(self, conn, msg):
            print(msg)

    async def main(reactor):
        conn = await connectWebSocket(reactor, "wss://example.com/socket", Hello())
        conn.send("more")     # conn: the same kind of connection a server hands out

    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))

RFC 6455 by default, HyBi-08/07 and Hixie-76 on request (C{version=}),
subprotocols, headers and cookies, permessage-deflate (offered by
default), C{wss://} verified by Twisted's C{optionsForClientTLS}, and
L{WebSocketClientService} to stay connected. C{python -m txratchet.client
URL} is a small command-line client.

The pieces, for other stacks: L{WebSocketClient} is the client twin of the
L{txratchet.WebSocket} layer and L{Client} the twin of
L{txratchet.Server}::

    endpoint.connect(Client(WebSocketClient(app, "ws://example.com/")))
"""

from txratchet.client.connect import (
    Client,
    ClientProtocol,
    WebSocketClientService,
    WebSocketEndpoint,
    clientEndpoint,
    connectWebSocket,
)
from txratchet.client.layer import (
    ClientConnection,
    HandshakeCancelled,
    HandshakeTimedOut,
    WebSocketClient,
)
from txratchet.websocket.deflate import DeflateOffer
from txratchet.websocket.handshake import (
    URL,
    ClientHandshake,
    HandshakeFailed,
    InvalidResponse,
    InvalidStatus,
    InvalidURL,
    Response,
    parseURL,
)

__all__ = [
    "URL",
    "Client",
    "ClientConnection",
    "ClientHandshake",
    "ClientProtocol",
    "DeflateOffer",
    "HandshakeCancelled",
    "HandshakeFailed",
    "HandshakeTimedOut",
    "InvalidResponse",
    "InvalidStatus",
    "InvalidURL",
    "Response",
    "WebSocketClient",
    "WebSocketClientService",
    "WebSocketEndpoint",
    "clientEndpoint",
    "connectWebSocket",
    "parseURL",
]
