"""
L{Server}: the Twisted factory at the bottom of every stack.

It turns Twisted's protocol events into application events on a
L{TransportConnection}: C{connectionMade} is C{onOpen}, each
C{dataReceived} chunk is an C{onMessage} with C{bytes}, and C{connectionLost}
is C{onClose}. Decorators above it (L{txratchet.websocket.WebSocket},
L{txratchet.line.LineProtocol}) turn those bytes into messages.
"""

from __future__ import annotations

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from txratchet.commands import execute
from txratchet.connection import TransportConnection
from txratchet.interfaces import IApplication

log = Logger()


class ServerProtocol(Protocol):
    """
    One TCP (or TLS, or UNIX) connection, fed to the application.
    """

    conn: TransportConnection

    def __init__(self, app: IApplication) -> None:
        self.app = app

    def connectionMade(self) -> None:
        # Small messages go out at once (no Nagle delay), as peers expect.
        setNoDelay = getattr(self.transport, "setTcpNoDelay", None)
        if setNoDelay is not None:
            try:
                setNoDelay(True)
            except OSError:
                pass
        self.conn = TransportConnection(self.app, self.transport)  # type: ignore[arg-type]
        try:
            result = self.app.onOpen(self.conn)
        except Exception:
            self.conn.reportError(Failure())
        else:
            execute(result, self.conn)

    def dataReceived(self, data: bytes) -> None:
        conn = self.conn
        # What this read makes us send to this peer leaves in one write.
        conn.cork()
        try:
            result = self.app.onMessage(conn, data)
        except Exception:
            conn.reportError(Failure())
        else:
            if result is not None:
                execute(result, conn)
        finally:
            conn.uncork()

    def connectionLost(self, reason: Failure | None = None) -> None:
        conn = getattr(self, "conn", None)
        if conn is None:
            return
        conn.closed = True
        try:
            result = self.app.onClose(conn)
        except Exception:
            log.failure("onClose raised")
        else:
            execute(result)


class Server(Factory):
    """
    A Twisted factory serving C{app}: C{Server(WebSocket(Chat()))}.

    Listen on it with any endpoint::

        endpoints.serverFromString(reactor, "tcp:8080").listen(Server(app))
    """

    protocol = ServerProtocol  # type: ignore[assignment]
    noisy = False

    def __init__(self, app: IApplication) -> None:
        self.app = app

    def buildProtocol(self, addr: IAddress | None) -> ServerProtocol:
        proto = ServerProtocol(self.app)
        proto.factory = self
        return proto
