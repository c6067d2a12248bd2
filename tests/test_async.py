"""
C{async def} handlers: run with C{Deferred.fromCoroutine}, their commands
carried out, their errors given to C{onError}, a connection's messages kept
in order (reading paused meanwhile) unless the application opts in to
concurrency, and cancelled when the connection is lost.

Fast tests over in-memory transports (the helpers of L{tests.test_glue});
one end-to-end test over a real socket with the C{websockets} client and
the README's SQLite example.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from twisted.internet import reactor, task, threads
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.test_glue import (
    ADDRESS,
    TEXT,
    ClientCase,
    Recorder,
    ServerCase,
    advance,
    frame,
    lost,
    parseFrames,
    parseHead,
    upgradeRequest,
)
from txratchet import (
    Application,
    HandshakeError,
    LineProtocol,
    SendMessage,
    Server,
    WebSocket,
)
from txratchet.components import OriginCheck


class Waiting(Recorder):
    """
    An async application whose C{onMessage} awaits a Deferred the test
    fires, then echoes; records starts, ends and cancellations.
    """

    def __init__(self) -> None:
        super().__init__(echo=False)
        self.pending: list[Deferred[None]] = []
        self.cancelled: list[str | bytes] = []

    async def onMessage(self, conn: Any, message: str | bytes) -> Any:  # type: ignore[override]
        self.events.append(("start", message))
        d: Deferred[None] = Deferred()
        self.pending.append(d)
        try:
            await d
        except CancelledError:
            self.cancelled.append(message)
            raise
        self.events.append(("message", message))
        return SendMessage(conn, message)


class ServerAsyncTests(ServerCase):
    def test_returnsCommand(self) -> None:
        """
        An C{async def onMessage} that does not wait: its command is carried
        out at once, in the same read's write.
        """

        class Echo(Recorder):
            async def onMessage(self, conn: Any, message: str | bytes) -> SendMessage:  # type: ignore[override]
                return SendMessage(conn, message.upper())  # type: ignore[union-attr]

        self.serve(Echo())
        _proto, transport, _conn = self.opened()
        _proto.dataReceived(frame(TEXT, b"hi"))
        self.assertEqual([f.payload for f in transport.frames()], [b"HI"])

    def test_messagesWaitInOrder(self) -> None:
        """
        A connection's next message is not given to C{onMessage} before the
        previous coroutine finished; reading is paused while messages wait
        and resumed once they are all handled; replies keep the order.
        """
        app = Waiting()
        self.serve(app)
        proto, transport, _conn = self.opened()
        proto.dataReceived(frame(TEXT, b"one") + frame(TEXT, b"two") + frame(TEXT, b"three"))
        self.assertEqual(app.events[1:], [("start", "one")])
        self.assertEqual(transport.pauses, ["pause"])
        app.pending[0].callback(None)
        self.assertEqual(app.events[1:], [("start", "one"), ("message", "one"), ("start", "two")])
        self.assertEqual(transport.pauses, ["pause"])
        app.pending[1].callback(None)
        app.pending[2].callback(None)
        self.assertEqual(
            [e for e in app.events if e[0] == "message"],
            [("message", "one"), ("message", "two"), ("message", "three")],
        )
        self.assertEqual([f.payload for f in transport.frames()], [b"one", b"two", b"three"])
        self.assertEqual(transport.pauses, ["pause", "resume"])

    def test_concurrentMessages(self) -> None:
        """
        An application with C{concurrentMessages = True} gets each message
        at once, and each reply goes out when its coroutine ends.
        """

        class Concurrent(Waiting):
            concurrentMessages = True

        app = Concurrent()
        self.serve(app)
        proto, transport, _conn = self.opened()
        proto.dataReceived(frame(TEXT, b"one") + frame(TEXT, b"two"))
        self.assertEqual(app.events[1:], [("start", "one"), ("start", "two")])
        app.pending[1].callback(None)
        app.pending[0].callback(None)
        self.assertEqual([f.payload for f in transport.frames()], [b"two", b"one"])
        self.assertEqual(transport.pauses, [])

    def test_concurrentThroughDecorator(self) -> None:
        """
        A decorator (here C{OriginCheck}) passes C{concurrentMessages} on.
        """

        class Concurrent(Waiting):
            concurrentMessages = True

        app = Concurrent()
        self.serve(OriginCheck(app, ["example.com"]))  # type: ignore[arg-type]
        proto, _transport = self.connect()
        proto.dataReceived(
            upgradeRequest()  # Origin: http://example.com
            + frame(TEXT, b"one")
            + frame(TEXT, b"two")
        )
        self.assertEqual(app.events[1:], [("start", "one"), ("start", "two")])

    def test_errorReachesOnError(self) -> None:
        """
        An exception in a coroutine, after it waited, goes to C{onError}
        (logged once); C{Application}'s C{onError} closes with 1011. The
        next message is handled after it.
        """

        class Failing(Recorder):
            def __init__(self) -> None:
                super().__init__()
                self.seen: list[str | bytes] = []
                self.waits: list[Deferred[None]] = []

            async def onMessage(self, conn: Any, message: str | bytes) -> None:  # type: ignore[override]
                self.seen.append(message)
                d: Deferred[None] = Deferred()
                self.waits.append(d)
                await d
                raise ValueError("boom")

        app = Failing()
        app.onError = Application.onError.__get__(app)  # type: ignore[method-assign]
        self.serve(app)
        proto, transport, _conn = self.opened()
        proto.dataReceived(frame(TEXT, b"one") + frame(TEXT, b"two"))
        self.assertEqual(app.seen, ["one"])
        app.waits[0].callback(None)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        (close,) = transport.frames()
        self.assertEqual(close.closeCode, 1011)
        # The waiting message is still delivered (the connection is closing,
        # not closed); its own failure is reported too.
        self.assertEqual(app.seen, ["one", "two"])

    def test_errorBeforeWaiting(self) -> None:
        """
        A coroutine that raises before its first C{await} is reported like
        a plain handler's exception.
        """

        class Failing(Recorder):
            async def onMessage(self, conn: Any, message: str | bytes) -> None:  # type: ignore[override]
                raise KeyError(message)

        app = Failing()
        self.serve(app)
        proto, _transport, _conn = self.opened()
        proto.dataReceived(frame(TEXT, b"k"))
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)
        self.assertEqual([e[0] for e in app.events], ["open", "error"])

    def test_cancelledOnClose(self) -> None:
        """
        When the connection is lost, the coroutine in flight is cancelled
        (C{CancelledError} where it waits), the messages waiting are
        dropped, nothing reaches C{onError}, and C{onClose} runs.
        """
        app = Waiting()
        self.serve(app)
        proto, _transport, _conn = self.opened()
        proto.dataReceived(frame(TEXT, b"one") + frame(TEXT, b"two"))
        lost(proto)
        self.assertEqual(app.cancelled, ["one"])
        self.assertEqual([e[0] for e in app.events], ["open", "start", "close"])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_asyncOnOpen(self) -> None:
        """
        Frames that arrive with the request wait for an C{async def onOpen}
        to finish; what it returns is carried out first.
        """
        gate: Deferred[None] = Deferred()

        class Greeter(Recorder):
            async def onOpen(self, conn: Any) -> SendMessage:  # type: ignore[override]
                self.conns.append(conn)
                await gate
                self.events.append(("open",))
                return SendMessage(conn, "welcome")

        app = Greeter()
        self.serve(app)
        proto, transport = self.connect()
        proto.dataReceived(upgradeRequest() + frame(TEXT, b"early"))
        self.assertEqual(app.events, [])
        gate.callback(None)
        self.assertEqual(app.events, [("open",), ("message", "early")])
        status, _, rest = parseHead(transport.take())
        self.assertEqual(status, b"HTTP/1.1 101 Switching Protocols")
        self.assertEqual(
            [f.payload for f in parseFrames(rest + transport.take())], [b"welcome", b"early"]
        )

    def test_asyncOnRequest(self) -> None:
        """
        An C{async def onRequest} accepts by returning, refuses by raising
        L{HandshakeError}, and is cancelled if the peer leaves first.
        """
        gates: list[Deferred[None]] = []
        cancelled: list[bool] = []

        class Gate(Recorder):
            async def onRequest(self, conn: Any, request: Any) -> None:
                d: Deferred[None] = Deferred()
                gates.append(d)
                try:
                    await d
                except CancelledError:
                    cancelled.append(True)
                    raise
                if request.path == "/nope":
                    raise HandshakeError(403, "Not you")

        self.serve(Gate())
        proto, transport = self.connect()
        proto.dataReceived(upgradeRequest())
        self.assertEqual(transport.value(), b"")
        gates[0].callback(None)
        self.assertEqual(parseHead(transport.take())[0], b"HTTP/1.1 101 Switching Protocols")

        proto2, transport2 = self.connect()
        proto2.dataReceived(upgradeRequest(path="/nope"))
        gates[1].callback(None)
        self.assertTrue(parseHead(transport2.take())[0].startswith(b"HTTP/1.1 403 "))

        proto3, _transport3 = self.connect()
        proto3.dataReceived(upgradeRequest())
        lost(proto3)
        self.assertEqual(cancelled, [True])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_asyncOnClose(self) -> None:
        """
        An C{async def onClose} runs; its failure is logged.
        """

        class Closing(Recorder):
            async def onClose(self, conn: Any) -> None:  # type: ignore[override]
                self.events.append(("close",))
                raise RuntimeError("after close")

        app = Closing()
        self.serve(app)
        proto, _transport, _conn = self.opened()
        lost(proto)
        self.assertEqual(app.events, [("open",), ("close",)])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class ClientAsyncTests(ClientCase):
    def test_clientMessagesInOrder(self) -> None:
        """
        The client side keeps the same order and pauses reading the same
        way.
        """
        proto, transport, _ws = self.openClient()
        self.app.__class__ = Waiting
        self.app.pending = []  # type: ignore[attr-defined]
        self.app.cancelled = []  # type: ignore[attr-defined]
        app: Waiting = self.app  # type: ignore[assignment]
        proto.dataReceived(frame(TEXT, b"a", mask=None) + frame(TEXT, b"b", mask=None))
        self.assertEqual(app.events[1:], [("start", "a")])
        self.assertEqual(transport.pauses, ["pause"])
        app.pending[0].callback(None)
        app.pending[1].callback(None)
        self.assertEqual(app.messages(), ["a", "b"])
        self.assertEqual([f.payload for f in transport.frames()], [b"a", b"b"])
        self.assertEqual(transport.pauses, ["pause", "resume"])


class OtherLayersTests(SynchronousTestCase):
    def test_lineProtocol(self) -> None:
        """
        Over the line protocol, lines wait for the previous coroutine too,
        and a coroutine in flight is cancelled when the peer leaves.
        """
        app = Waiting()
        app.onClose = lambda conn: None  # type: ignore[method-assign]
        proto = Server(LineProtocol(app, clock=task.Clock())).buildProtocol(ADDRESS)
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(b"one\ntwo\nthree\n")
        self.assertEqual(app.events[1:], [("start", "one")])
        self.assertEqual(transport.producerState, "paused")
        app.pending[0].callback(None)
        app.pending[1].callback(None)
        self.assertEqual(transport.value(), b"one\ntwo\n")
        self.assertEqual(app.events[-1], ("start", "three"))
        proto.connectionLost(Failure(Exception("gone")))
        self.assertEqual(app.cancelled, ["three"])

    def test_rawServer(self) -> None:
        """
        Directly over TCP (C{Server(app)}), chunks wait the same way.
        """
        app = Waiting()
        app.onClose = lambda conn: None  # type: ignore[method-assign]
        proto = Server(app).buildProtocol(ADDRESS)  # type: ignore[arg-type]
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(b"one")
        proto.dataReceived(b"two")
        self.assertEqual(transport.producerState, "paused")
        app.pending[0].callback(None)
        app.pending[1].callback(None)
        self.assertEqual(transport.value(), b"onetwo")
        self.assertEqual(transport.producerState, "producing")


class EndToEndTests(TestCase):
    """
    The README's async example (SQLite through adbapi) under a real
    reactor, driven by the independent C{websockets} client.
    """

    def test_history(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._history())

    async def _history(self) -> None:
        from examples.history import History

        directory = tempfile.mkdtemp()
        app = History(os.path.join(directory, "history.sqlite3"))
        self.addCleanup(app.db.close)
        port = reactor.listenTCP(0, Server(WebSocket(app)), interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        url = f"ws://127.0.0.1:{port.getHost().port}/"

        def first() -> list[str]:
            with connect(url) as ws:
                for i in range(20):
                    ws.send(f"m{i}")
                return [str(ws.recv(timeout=10)) for _ in range(20)]

        def second() -> tuple[list[str], int | None]:
            with connect(url) as ws:
                replay = [str(ws.recv(timeout=10)) for _ in range(20)]
                ws.send("x" * 5000)
                try:
                    ws.recv(timeout=10)
                except ConnectionClosed as e:
                    return replay, e.rcvd.code if e.rcvd else None
                return replay, None

        # Each message is stored, then broadcast, in the order sent.
        got = await threads.deferToThread(first)
        self.assertEqual(got, [f"127.0.0.1: m{i}" for i in range(20)])
        # A newcomer is sent the last 20 from the database, in order; a
        # message over the example's limit is refused with 1009.
        replay, code = await threads.deferToThread(second)
        self.assertEqual(replay, [f"127.0.0.1: m{i}" for i in range(20)])
        self.assertEqual(code, 1009)


class KeepaliveWhileBusyTests(ServerCase):
    def test_slowHandlerIsNotSilence(self) -> None:
        """
        While reading is paused for a handler coroutine, keepalive neither
        pings nor closes; once the handler ends, silence counts again.
        """
        app = Waiting()
        self.serve(app, pingInterval=1.0, pingTimeout=1.0)
        proto, transport, conn = self.opened()
        proto.dataReceived(frame(TEXT, b"one") + frame(TEXT, b"two"))
        advance(self.clock, 10.0)
        self.assertEqual(transport.frames(), [])
        self.assertEqual(conn.closeCode, None)
        app.pending[0].callback(None)
        app.pending[1].callback(None)
        self.assertEqual([f.payload for f in transport.frames()], [b"one", b"two"])
        advance(self.clock, 1.0)
        (ping,) = transport.frames()
        self.assertEqual(ping.opcode, 0x9)
        advance(self.clock, 1.0)
        (close,) = transport.frames()
        self.assertEqual(close.closeCode, 1011)
