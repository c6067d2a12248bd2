"""
Helpers for end-to-end tests: listen on loopback, record application events.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from txratchet import Application, SendMessage, Server


class Recorder(Application):
    """
    Echo, and remember every event (for assertions on the server side).
    """

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.conns: list[Any] = []
        self.closed: Deferred[Any] = Deferred()

    def onOpen(self, conn):
        self.conns.append(conn)
        self.events.append(("open", conn))

    def onMessage(self, conn, msg):
        self.events.append(("message", conn, msg))
        return SendMessage(conn, msg)

    def onClose(self, conn):
        self.events.append(("close", conn))
        if not self.closed.called:
            self.closed.callback(conn)

    def onError(self, conn, failure):
        self.events.append(("error", conn, failure))

    def messages(self) -> list[Any]:
        return [e[2] for e in self.events if e[0] == "message"]


class ServerTestCase(TestCase):
    """
    A trial test case that can start servers on 127.0.0.1 and stops them.
    """

    timeout = 60

    @inlineCallbacks
    def listen(self, app: Any) -> Any:
        """
        Serve C{Server(app)} on a free loopback port; return the port number.
        """
        factory = Server(app)
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        self.addCleanup(self._dropConnections, app)
        return port.getHost().port

    def _dropConnections(self, app: Any) -> None:
        for conn in list(getattr(app, "_connections", {})):
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.abortConnection()


class EndsTransport(StringTransport):
    """
    A StringTransport that records each write and how the connection was
    ended, with TCP's half-close and abort.
    """

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.ends: list[str] = []
        self.pauses: list[str] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        super().write(data)

    def writeSequence(self, data: Any) -> None:
        self.writes.append(b"".join(data))
        super().writeSequence(data)

    def loseConnection(self) -> None:
        self.ends.append("loseConnection")
        super().loseConnection()

    def loseWriteConnection(self) -> None:
        self.ends.append("loseWriteConnection")

    def abortConnection(self) -> None:
        self.ends.append("abortConnection")

    def pauseProducing(self) -> None:
        self.pauses.append("pause")
        super().pauseProducing()

    def resumeProducing(self) -> None:
        self.pauses.append("resume")
        super().resumeProducing()
