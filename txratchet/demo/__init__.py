"""
The bundled chat demo: a page and its WebSocket on the same port.

The application is the Ratchet chat, plus join and leave notices; the page
is served to plain HTTP requests by L{pageHandler}.
"""

from __future__ import annotations

from importlib.resources import files

from twisted.python.failure import Failure

from txratchet.application import Application
from txratchet.commands import CloseConnection, Composite, SendMessage
from txratchet.interfaces import IConnection
from txratchet.websocket.handshake import Request, httpResponse


class DemoChat(Application):
    """
    Relay every message to every other connection.
    """

    def __init__(self) -> None:
        self.clients: set[IConnection] = set()

    def onOpen(self, conn: IConnection) -> object:
        self.clients.add(conn)
        kind = getattr(conn, "protocol", "?")
        return self._toOthers(conn, f"* someone joined ({kind}); {len(self.clients)} here")

    def onMessage(self, conn: IConnection, message: str | bytes) -> object:
        return self._toOthers(conn, message)

    def onClose(self, conn: IConnection) -> object:
        self.clients.discard(conn)
        return self._toOthers(conn, f"* someone left; {len(self.clients)} here")

    def onError(self, conn: IConnection, failure: Failure) -> object:
        return CloseConnection(conn, 1011)

    def _toOthers(self, sender: IConnection, message: str | bytes) -> Composite:
        # Hixie-76 cannot carry binary: its users get a notice instead.
        notice = f"* a binary message ({len(message)} bytes)" if isinstance(message, bytes) else ""
        return Composite(
            SendMessage(c, notice if notice and c.protocol == "hixie-76" else message)
            for c in self.clients
            if c is not sender
        )


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
