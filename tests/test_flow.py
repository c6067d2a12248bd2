"""
Timeouts and back-pressure, end to end: keepalive pings, idle timeout, a
peer that stops reading (echo flood, broadcast to a slow reader).
"""

from __future__ import annotations

import socket
import time

from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread

from examples.echo import Echo
from tests import rawclients
from tests.rawclients import OP_CLOSE, OP_PING
from tests.util import Recorder, ServerTestCase
from txratchet import Application, SendMessage, WebSocket

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
