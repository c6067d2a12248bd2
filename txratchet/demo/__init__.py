"""
The bundled chat demo: a page and its WebSocket on the same port.

The application is the Ratchet chat, plus join and leave notices, relayed
through a L{txratchet.pubsub.Hub}; the page is served to plain HTTP requests
by L{pageHandler}.
"""

from __future__ import annotations

from importlib.resources import files

from twisted.python.failure import Failure

from txratchet.application import Application
from txratchet.backplane import IBackplane
from txratchet.commands import CloseConnection
from txratchet.interfaces import IConnection
from txratchet.pubsub import Hub
from txratchet.websocket.handshake import Request, httpResponse


class DemoChat(Application):
    """
    Relay every message to every other connection, through a L{Hub}, so
    that with C{--workers} and a Redis C{--backplane} peers of different
    processes chat together. Join and leave notices count the peers of
    this process.

    Serve it wrapped in its hub: see L{demoApplication}.
    """

    hub: Hub

    def onOpen(self, conn: IConnection) -> object:
        hub = self.hub
        hub.subscribe(conn, "chat")
        # Hixie-76 cannot carry binary: its peers get a notice instead.
        hub.subscribe(conn, "chat-hixie" if conn.protocol == "hixie-76" else "chat-binary")
        here = len(hub.subscribers("chat"))
        hub.broadcast("chat", f"* someone joined ({conn.protocol}); {here} here", exclude=conn)
        return None

    def onMessage(self, conn: IConnection, message: str | bytes) -> object:
        hub = self.hub
        if isinstance(message, str):
            hub.broadcast("chat", message, exclude=conn)
        else:
            hub.broadcast("chat-binary", message, exclude=conn)
            hub.broadcast("chat-hixie", f"* a binary message ({len(message)} bytes)", exclude=conn)
        return None

    def onClose(self, conn: IConnection) -> object:
        # The hub (outside us) has already taken conn out of its topics.
        here = len(self.hub.subscribers("chat"))
        self.hub.broadcast("chat", f"* someone left; {here} here", exclude=conn)
        return None

    def onError(self, conn: IConnection, failure: Failure) -> object:
        return CloseConnection(conn, 1011)


def demoApplication(backplane: IBackplane | None = None) -> Hub:
    """
    The demo chat inside its hub (the hub tracks who is in which topic),
    ready to wrap in C{WebSocket}.

    @param backplane: where messages travel (default: this process).
    """
    chat = DemoChat()
    chat.hub = Hub(chat, backplane, wire=False)
    return chat.hub


def pageHandler(request: Request) -> bytes | None:
    """
    Serve the chat page at C{/}; anything else is a 404.
    """
    if request.method not in ("GET", "HEAD"):
        return httpResponse(405, "Method not allowed\n", [("Allow", "GET, HEAD")])
    if request.path not in ("/", "/index.html"):
        return httpResponse(404, "Not found\n")
    page = files("txratchet.demo").joinpath("index.html").read_bytes()
    response = httpResponse(200, page, contentType="text/html; charset=utf-8")
    if request.method == "HEAD":
        return response[: response.index(b"\r\n\r\n") + 4]
    return response
