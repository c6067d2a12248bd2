"""
L{Server}: the Twisted factory at the bottom of every stack.

It turns Twisted's protocol events into application events on a
L{TransportConnection}: C{connectionMade} is C{onOpen}, each
C{dataReceived} chunk is an C{onMessage} with C{bytes}, and C{connectionLost}
is C{onClose}. Decorators above it (L{txratchet.wsserver.WebSocket},
L{txratchet.line.LineProtocol}) turn those bytes into messages.
"""

from __future__ import annotations

from twisted.internet.interfaces import IAddress, ITCPTransport
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

    #: The connection handed to the application, from C{connectionMade} on.
    conn: TransportConnection
    #: Is C{conn} there? (A protocol can be lost before it is made.)
    _made = False

    def __init__(self, app: IApplication) -> None:
        self.app = app

    def connectionMade(self) -> None:
        # Small messages go out at once (no Nagle delay), as peers expect.
        if ITCPTransport.providedBy(self.transport):
            try:
                self.transport.setTcpNoDelay(True)
            except OSError:
                pass  # a UNIX socket, which is a TCP transport to Twisted
        self._open(TransportConnection(self.app, self.transport))  # type: ignore[arg-type]

    def _open(self, conn: TransportConnection) -> None:
        """
        Hand C{conn}, the connection just made, to the application.
        """
        self.conn = conn
        self._made = True
        try:
            result = self.app.onOpen(self.conn)
        except Exception:
            self.conn.reportError(Failure())
        else:
            execute(result, self.conn)

    def dataReceived(self, data: bytes) -> None:
        conn = self.conn
        # What this read makes us send leaves at its end, in one write per
        # peer: to this one (cork) and to others, a broadcast (holdWrites).
        if conn._busy:
            conn._wait(data)  # an async onMessage still runs: in order, later
            return
        outermost = conn.startRead()
        try:
            result = self.app.onMessage(conn, data)
        except Exception:
            conn.reportError(Failure())
        else:
            if result is not None:
                execute(result, conn)
        finally:
            conn.endRead(outermost)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self._made:
            return
        conn = self.conn
        conn.closed = True
        conn._cancelHandlers()
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
        proto = self.protocol(self.app)  # type: ignore[call-arg]
        proto.factory = self
        return proto  # type: ignore[return-value]
