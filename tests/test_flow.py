"""
Timeouts and back-pressure, end to end: keepalive pings, idle timeout, a
peer that stops reading (echo flood, broadcast to a slow reader).
"""

from __future__ import annotations

import socket
import time
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.internet.error import ConnectionAborted
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from examples.echo import Echo
from tests import rawclients
from tests.rawclients import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT
from tests.util import Recorder, ServerTestCase
from txratchet import Application, SendMessage, Server, WebSocket
from txratchet.connection import Drain

HOST = "127.0.0.1"


class KeepaliveTests(ServerTestCase):
    @inlineCallbacks
    def test_pingsAnsweredKeepConnectionOpen(self):
        port = yield self.listen(WebSocket(Echo(), pingInterval=0.2, pingTimeout=0.5))

        def talk():
            c = rawclients.HybiClient(HOST, port)
            c.connect()
            pings = 0
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                opcode, payload = c.recv_message()
                self_ok = opcode == OP_PING
                if self_ok:
                    pings += 1
                    c.send_pong(payload)
            c.send_text("still here")
            echoed = c.recv_text()
            c.close()
            return pings, echoed

        pings, echoed = yield deferToThread(talk)
        self.assertGreaterEqual(pings, 3)
        self.assertEqual(echoed, "still here")

    @inlineCallbacks
    def test_unansweredPingCloses(self):
        recorder = Recorder()
        port = yield self.listen(
            WebSocket(recorder, pingInterval=0.2, pingTimeout=0.3, closeTimeout=0.3)
        )

        def talk():
            c = rawclients.HybiClient(HOST, port)
            c.connect()
            frames = []
            while True:
                opcode, payload = c.recv_message()
                frames.append((opcode, payload))
                if opcode == OP_CLOSE:
                    break
            return frames, c.wait_tcp_closed(3)

        frames, tcp = yield deferToThread(talk)
        self.assertEqual(frames[0][0], OP_PING)
        self.assertEqual(frames[-1], (OP_CLOSE, b"\x03\xf3Keepalive ping timeout"))
        self.assertTrue(tcp)
        yield recorder.closed

    @inlineCallbacks
    def test_idleTimeout(self):
        port = yield self.listen(WebSocket(Echo(), idleTimeout=0.3))

        def talk():
            c = rawclients.HybiClient(HOST, port)
            c.connect()
            started = time.monotonic()
            c.send_text("a")
            c.recv_message()
            frame = c.recv_message()
            took = time.monotonic() - started
            c.send_close(1000)
            return frame, took, c.wait_tcp_closed(3)

        frame, took, tcp = yield deferToThread(talk)
        self.assertEqual(frame, (OP_CLOSE, b"\x03\xe8Idle timeout"))
        self.assertGreaterEqual(took, 0.25)
        self.assertTrue(tcp)


class Broadcast(Application):
    """
    Sends every message to every connection; shrinks each socket's kernel
    send buffer so the server's own queue fills fast.
    """

    def __init__(self):
        self.clients = []
        self.closed = []

    def onOpen(self, conn):
        conn.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        self.clients.append(conn)

    def onMessage(self, conn, msg):
        for c in self.clients:
            c.send(msg)

    def onClose(self, conn):
        self.clients.remove(conn)
        self.closed.append((conn.closeCode, conn.closeReason))


def connectSlowAndFast(port, app):
    slow = rawclients.HybiClient(HOST, port)
    slow.connect()
    # Small enough to fill, larger than loopback's MSS so reading stays fast.
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 131072)
    fast = rawclients.HybiClient(HOST, port)
    fast.connect()
    deadline = time.monotonic() + 5
    while len(app.clients) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return slow, fast


class BackPressureTests(ServerTestCase):
    @inlineCallbacks
    def test_echoFloodFromPeerThatDoesNotRead(self):
        """
        A peer that sends without ever reading the answers is not read
        from once its answers pile up: the server's queue stays bounded.
        """
        recorder = Recorder()
        port = yield self.listen(WebSocket(recorder))

        def talk():
            c = rawclients.HybiClient(HOST, port)
            c.connect()
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            frame = rawclients.build_frame(rawclients.OP_BINARY, b"x" * 65536, mask=True)
            c.sock.settimeout(2)
            sent = 0
            try:
                for _ in range(2000):  # 128 MiB at most; bounded
                    c.sock.sendall(frame)
                    sent += 1
            except (TimeoutError, OSError):
                pass
            c.sock.close()
            return sent

        sent = yield deferToThread(talk)
        self.assertLess(sent, 2000, "the server kept reading from a peer that never reads")
        self.assertLess(len(recorder.messages()), 2000)

    @inlineCallbacks
    def test_answersLargerThanTheSocketBufferArriveWhole(self):
        """
        Answers to one read are written straight to the socket when nothing
        is queued; what the kernel does not take (a partial send, here of
        one gathered write of several large frames) is queued in order and
        arrives intact once the peer reads.
        """

        class Burst(Application):
            def onMessage(self, conn, msg):
                for i in range(3):
                    conn.send(bytes([65 + i]) * (4 << 20))
                conn.send("done")

        port = yield self.listen(WebSocket(Burst()))

        def talk():
            c = rawclients.HybiClient(HOST, port)
            c.connect()
            c.send_text("go")
            time.sleep(0.3)  # the server's send hits a full socket
            got = [c.recv_message() for _ in range(4)]
            c.close()
            return got

        got = yield deferToThread(talk)
        expected = [(rawclients.OP_BINARY, bytes([65 + i]) * (4 << 20)) for i in range(3)]
        self.assertEqual(got[:3], expected)
        self.assertEqual(got[3], (rawclients.OP_TEXT, b"done"))

    @inlineCallbacks
    def test_oneLargeAnswerLargerThanTheSocketBuffers(self):
        """
        The same for a single large write on a bare TCP connection: what the
        socket does not take of it is queued, from the right offset.
        """
        pattern = bytes(range(256)) * (32 << 10)  # 8 MiB, every offset distinct mod 256

        class Big(Application):
            def __init__(self):
                self._connections = {}

            def onOpen(self, conn):
                self._connections[conn] = True

            def onMessage(self, conn, data):
                return SendMessage(conn, b"ok\n" if data.startswith(b"small") else pattern)

        port = yield self.listen(Big())

        def talk():
            with socket.create_connection((HOST, port), timeout=10) as s:
                s.sendall(b"small")  # the first answer; write-through starts after it
                assert s.recv(3) == b"ok\n"
                s.sendall(b"big")
                time.sleep(0.3)  # the server's send hits a full socket
                got = bytearray()
                while len(got) < len(pattern):
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    got += chunk
                return bytes(got)

        got = yield deferToThread(talk)
        self.assertEqual(len(got), len(pattern))
        self.assertTrue(got == pattern, "the answer arrived altered")

    @inlineCallbacks
    def test_slowReaderClosedOnBroadcast(self):
        """
        With sendBufferPolicy "close", a peer that stops reading is dropped
        (closeCode 1008) once its queue passes maxSendBuffer; the others
        keep receiving.
        """

        app = Broadcast()
        port = yield self.listen(WebSocket(app, maxSendBuffer=256 * 1024))

        def talk():
            slow, fast = connectSlowAndFast(port, app)
            payload = b"y" * 16384
            received = 0
            for _ in range(400):  # 6.4 MiB
                fast.send_binary(payload)
                opcode, data = fast.recv_message()
                received += opcode == rawclients.OP_BINARY and data == payload
            fast.close()
            return received, slow.wait_tcp_closed(5)

        received, slowDropped = yield deferToThread(talk)
        self.assertEqual(received, 400)
        self.assertTrue(slowDropped)
        self.assertIn((1008, "Send buffer overflow"), app.closed)

    @inlineCallbacks
    def test_slowReaderDropPolicy(self):
        """With "drop", the slow peer stays connected and just misses messages."""

        app = Broadcast()
        port = yield self.listen(
            WebSocket(app, maxSendBuffer=256 * 1024, sendBufferPolicy="drop")
        )

        def talk():
            slow, fast = connectSlowAndFast(port, app)
            payload = b"y" * 16384
            for _ in range(400):
                fast.send_binary(payload)
                fast.recv_message()
            # The slow peer now reads: it gets what fit, then new messages.
            slowGot = 0
            slow.timeout = 1
            try:
                while True:
                    slow.recv_message()
                    slowGot += 1
            except rawclients.RecvTimeout:
                pass
            fast.send_text("after")
            fast.recv_message()
            slow.timeout = 5
            last = slow.recv_message()
            fast.close()
            slow.close()
            return slowGot, last

        slowGot, last = yield deferToThread(talk)
        self.assertLess(slowGot, 400)
        self.assertGreater(slowGot, 0)
        self.assertEqual(last, (rawclients.OP_TEXT, b"after"))


# ---------------------------------------------------------------------------
# Closing connections end within closeTimeout; incomplete messages are
# bounded (unit tests over a fake transport and a fake clock).
# ---------------------------------------------------------------------------

RFC_HEAD = (
    b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
#: draft-hixie-76's own example (section 1.3), its key3 after the head.
HIXIE_HEAD = (
    b"GET /demo HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\nUpgrade: WebSocket\r\n"
    b"Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\nOrigin: http://example.com\r\n\r\n"
    b"^n:ds[4U"
)
MiB = 1024 * 1024


class LossReportingTransport(StringTransport):
    """
    A transport that never flushes (a peer that does not read): losing the
    connection only marks it, aborting it reports it lost, as Twisted does.
    """

    def __init__(self, clock: Clock) -> None:
        super().__init__(lenient=True)
        self.clock = clock
        self.aborted = False

    def abortConnection(self) -> None:
        if not self.aborted:
            self.aborted = True
            self.clock.callLater(0, self.protocol.connectionLost, Failure(ConnectionAborted()))


class FakeConnections:
    """
    Connections to one layer over L{LossReportingTransport}s and a L{Clock}.
    """

    def __init__(self, layer: Any, clock: Clock) -> None:
        self.factory = Server(layer)
        self.clock = clock

    def open(self, head: bytes = RFC_HEAD) -> LossReportingTransport:
        proto = self.factory.buildProtocol(None)
        transport = LossReportingTransport(self.clock)
        transport.protocol = proto
        proto.makeConnection(transport)
        if head:
            proto.dataReceived(head)
        return transport


def receive(transport: LossReportingTransport, data: bytes) -> None:
    transport.protocol.dataReceived(data)


def sentFrames(transport: LossReportingTransport) -> list[tuple[int, bytes]]:
    """The frames the server sent after its handshake answer."""
    data = transport.value().split(b"\r\n\r\n", 1)[1]
    frames = []
    while data:
        frame = rawclients.parse_frame(data, allow_masked=False)
        assert frame is not None, data[:20]
        opcode, _fin, _rsv, payload, used = frame
        frames.append((opcode, payload))
        data = data[used:]
    return frames


class ClosingTimeoutTests(TestCase):
    """
    Every closing connection ends within closeTimeout, whoever started the
    close, even when what is queued for the peer never flushes (issue 12,
    item 7): aborted, not waited for.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.app = Recorder()
        self.layer = WebSocket(self.app, closeTimeout=2, compression=None, clock=self.clock)
        self.peers = FakeConnections(self.layer, self.clock)

    def test_peerStartsTheCloseAndDoesNotRead(self):
        t = self.peers.open()
        receive(t, rawclients.build_frame(OP_CLOSE, b"\x03\xe8bye"))
        self.assertTrue(t.disconnecting)  # our answer queued, then TCP closed ...
        self.clock.advance(1.9)
        self.assertFalse(t.aborted)  # ... which never completes: the peer does not read
        self.clock.advance(0.2)
        self.assertTrue(t.aborted)
        self.clock.advance(0)
        self.assertEqual([e[0] for e in self.app.events], ["open", "close"])
        self.assertEqual(self.layer.connections, [])

    def test_weStartTheClosePeerAnswersButDoesNotRead(self):
        """The peer's answer does not restart the clock: aborted at our deadline."""
        t = self.peers.open()
        self.app.conns[0].close(1000, "done")
        self.clock.advance(1.5)
        receive(t, rawclients.build_frame(OP_CLOSE, b"\x03\xe8"))
        self.clock.advance(0.6)
        self.assertTrue(t.aborted)

    def test_hixieClosingFrameFromAPeerThatDoesNotRead(self):
        t = self.peers.open(HIXIE_HEAD)
        self.assertEqual(self.app.conns[0].protocol, "hixie-76")
        receive(t, b"\xff\x00")
        self.assertTrue(t.disconnecting)
        self.clock.advance(2.1)
        self.assertTrue(t.aborted)

    def test_refusedHandshakeWhoseAnswerIsNotRead(self):
        t = self.peers.open(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(t.value().startswith(b"HTTP/1.1 400 "))
        self.clock.advance(2.1)
        self.assertTrue(t.aborted)

    def test_shutdownIsBoundedByTheCloseTimeout(self):
        """
        shutdown() fires within closeTimeout though one peer never answers,
        one is half-way through its handshake and one started a close that
        cannot flush (issue 12, item 8).
        """
        silent = self.peers.open()
        connecting = self.peers.open(RFC_HEAD[:20])
        closing = self.peers.open()
        receive(closing, rawclients.build_frame(OP_CLOSE, b"\x03\xe8"))
        self.clock.advance(1)
        done = self.layer.shutdown()
        self.assertNoResult(done)
        self.assertEqual(sentFrames(silent)[-1], (OP_CLOSE, b"\x03\xe9Server shutting down"))
        self.clock.advance(1.01)  # the closing peer's own deadline
        self.assertTrue(closing.aborted)
        self.assertNoResult(done)
        self.clock.advance(1)
        self.assertTrue(silent.aborted and connecting.aborted)
        self.clock.advance(0)
        self.successResultOf(done)

    def test_shutdownGivesUpOnConnectionsNeverReportedLost(self):
        layer = WebSocket(Recorder(), closeTimeout=1, compression=None, clock=self.clock)
        t = FakeConnections(layer, self.clock).open()
        t.abortConnection = lambda: None  # a lower layer that never reports
        done = layer.shutdown()
        self.clock.advance(1)
        self.assertNoResult(done)
        self.clock.advance(Drain.grace)
        self.successResultOf(done)


class IncompleteMessageTests(TestCase):
    """
    What messages still arriving hold is bounded across the layer
    (maxIncompleteBytes, 1013 beyond) and in time (messageTimeout, 1008)
    (issue 12, item 10).
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.app = Recorder()
        self.layer = WebSocket(
            self.app,
            maxMessageSize=MiB,
            maxIncompleteBytes=2 * MiB,
            messageTimeout=10,
            closeTimeout=2,
            compression=None,
            clock=self.clock,
        )
        self.peers = FakeConnections(self.layer, self.clock)

    def partial(self, size: int, missing: int = 64) -> bytes:
        """
        A binary frame of C{size} bytes, C{missing} bytes short (masked
        with a zero key: its rest is C{b"m" * missing}).
        """
        return rawclients.build_frame(OP_BINARY, b"m" * size, mask_key=bytes(4))[:-missing]

    def test_budgetSharedByAllConnections(self):
        a, b, c = self.peers.open(), self.peers.open(), self.peers.open()
        receive(a, self.partial(900 * 1024))
        receive(b, self.partial(900 * 1024))
        self.assertEqual(self.layer.incompleteBytes, 2 * (900 * 1024 - 64))
        receive(c, self.partial(900 * 1024))
        self.assertEqual(
            sentFrames(c), [(OP_CLOSE, b"\x03\xf5Server busy: too much incomplete message data")]
        )
        self.assertEqual(self.app.conns[2].closeCode, 1013)
        self.assertEqual(self.layer.incompleteBytes, 2 * (900 * 1024 - 64))
        self.assertEqual(sentFrames(a), [])
        # a finishes its message: echoed, and its share is free again.
        receive(a, b"m" * 64)
        self.assertEqual(sentFrames(a), [(OP_BINARY, b"m" * 900 * 1024)])
        self.assertEqual(self.layer.incompleteBytes, 900 * 1024 - 64)
        # b goes away: so does its share.
        b.protocol.connectionLost(Failure(ConnectionAborted()))
        self.assertEqual(self.layer.incompleteBytes, 0)

    def test_fragmentsAreCountedToo(self):
        a, b, c = self.peers.open(), self.peers.open(), self.peers.open()
        piece = b"f" * (100 * 1024)
        receive(a, rawclients.build_frame(OP_TEXT, piece, fin=False))
        for _ in range(8):
            receive(a, rawclients.build_frame(OP_CONTINUATION, piece, fin=False))
        self.assertEqual(self.layer.incompleteBytes, 9 * len(piece))
        receive(b, self.partial(900 * 1024))
        receive(c, self.partial(300 * 1024))
        self.assertEqual(sentFrames(c)[0][1][:2], b"\x03\xf5")
        receive(a, rawclients.build_frame(OP_CONTINUATION, piece, fin=True))
        self.assertEqual(sentFrames(a), [(OP_TEXT, piece * 10)])
        self.assertEqual(self.layer.incompleteBytes, 900 * 1024 - 64)

    def test_messageTimeout(self):
        """Counted from the message's first read; more of it or pings do not restart it."""
        t = self.peers.open()
        receive(t, rawclients.build_frame(OP_TEXT, b"a" * 1000, fin=False))
        self.clock.advance(9)
        receive(
            t,
            rawclients.build_frame(OP_PING, b"p")
            + rawclients.build_frame(OP_CONTINUATION, b"b" * 1000, fin=False),
        )
        self.clock.advance(0.9)
        self.assertEqual(sentFrames(t), [(OP_PONG, b"p")])
        self.clock.advance(0.2)
        self.assertEqual(
            sentFrames(t),
            [(OP_PONG, b"p"), (OP_CLOSE, b"\x03\xf0Message not completed within 10 s")],
        )
        self.assertEqual(self.app.conns[0].closeCode, 1008)
        self.assertEqual(self.layer.incompleteBytes, 0)
        receive(t, rawclients.build_frame(OP_CONTINUATION, b"c", fin=True))
        self.assertEqual(self.app.messages(), [])

    def test_messageTimeoutCountsEachMessage(self):
        t = self.peers.open()
        first = rawclients.build_frame(OP_BINARY, b"1" * 100_000)
        second = rawclients.build_frame(OP_BINARY, b"2" * 100_000)
        receive(t, first[:50_000])
        self.clock.advance(6)
        receive(t, first[50_000:] + second[:50_000])  # the second starts now
        self.clock.advance(6)
        receive(t, second[50_000:])
        self.assertEqual([f[0] for f in sentFrames(t)], [OP_BINARY, OP_BINARY])
        self.clock.advance(20)
        self.assertFalse(t.disconnecting)

    def test_messageReadWholeCostsNothing(self):
        t = self.peers.open()
        receive(t, rawclients.build_frame(OP_BINARY, b"w" * 500_000))
        self.assertEqual(self.layer.incompleteBytes, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_hixie(self):
        """Hixie-76 text frames count against the same budget and timeout."""
        a = self.peers.open(HIXIE_HEAD)
        b = self.peers.open()
        c = self.peers.open(HIXIE_HEAD)
        receive(a, b"\x00" + b"h" * (900 * 1024))
        receive(b, self.partial(900 * 1024))
        receive(c, b"\x00" + b"h" * (900 * 1024))
        self.assertTrue(c.value().endswith(b"\xff\x00"))
        self.assertEqual(
            self.app.conns[2].closeReason, "Server busy: too much incomplete message data"
        )
        self.assertFalse(a.value().endswith(b"\xff\x00"))
        self.clock.advance(10)
        self.assertTrue(a.value().endswith(b"\xff\x00"))
        self.assertEqual(self.app.conns[0].closeReason, "Message not completed within 10 s")
        self.assertEqual(sentFrames(b)[-1][0], OP_CLOSE)
        self.assertEqual(self.layer.incompleteBytes, 0)

    def test_budgetAtLeastOneMessage(self):
        with self.assertRaises(ValueError):
            WebSocket(Recorder(), maxMessageSize=2 * MiB, maxIncompleteBytes=MiB)
        self.assertEqual(WebSocket(Recorder()).maxIncompleteBytes, 64 * MiB)
        self.assertEqual(WebSocket(Recorder(), maxMessageSize=100 * MiB).maxIncompleteBytes, 100 * MiB)
