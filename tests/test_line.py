"""
The line protocol: the same applications over newline-delimited TCP, talked
to with a plain socket (what telnet and netcat do).
"""

from __future__ import annotations

import socket
import time

from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread

from examples.chat import Chat
from examples.echo import Echo
from tests import rawclients
from tests.util import Recorder, ServerTestCase
from txratchet import Application, LineProtocol, WebSocket
from txratchet.line import LineConnection, escapeBytes, escapeText

HOST = "127.0.0.1"


def session(port, send: bytes, lines: int) -> list[bytes]:
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(send)
        f = s.makefile("rb")
        return [f.readline() for _ in range(lines)]


class LineProtocolTests(ServerTestCase):
    @inlineCallbacks
    def test_echoLines(self):
        """Each line is a message; CRLF and LF both end lines; split lines join."""
        recorder = Recorder()
        port = yield self.listen(LineProtocol(recorder))
        got = yield deferToThread(session, port, "one\r\ntwo ✓\nthr".encode() + b"ee\n", 3)
        self.assertEqual(got, [b"one\n", "two ✓\n".encode(), b"three\n"])
        self.assertEqual(recorder.messages(), ["one", "two ✓", "three"])
        self.assertEqual(recorder.conns[0].protocol, "line")

    @inlineCallbacks
    def test_invalidUTF8IsBinary(self):
        """A line that is not UTF-8 arrives as bytes, not as mangled text."""
        recorder = Recorder()
        port = yield self.listen(LineProtocol(recorder))
        got = yield deferToThread(session, port, b"\xff\xfe\n", 1)
        self.assertEqual(got, [b"\xff\xfe\n"])
        self.assertEqual(recorder.messages(), [b"\xff\xfe"])

    @inlineCallbacks
    def test_lineTooLong(self):
        """A line over the limit gets an explanation and a close."""
        port = yield self.listen(LineProtocol(Echo(), maxLineLength=100))

        def talk():
            with socket.create_connection((HOST, port), timeout=5) as s:
                s.sendall(b"x" * 500)
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
                return data

        data = yield deferToThread(talk)
        self.assertEqual(data, b"Line too long (max 100 bytes)\n")

    @inlineCallbacks
    def test_closeWithReason(self):
        class Bye(Application):
            def onMessage(self, conn, msg):
                conn.send("ok")
                conn.close(1000, "bye")

        port = yield self.listen(LineProtocol(Bye()))

        def talk():
            with socket.create_connection((HOST, port), timeout=5) as s:
                s.sendall(b"hi\n")
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
                return data

        data = yield deferToThread(talk)
        self.assertEqual(data, b"ok\nbye\n")


class LineBroadcast(Application):
    """
    Every line goes to every peer, 16 KiB long; each socket's kernel send
    buffer is shrunk so the server's own queue fills fast. Records the
    most ever queued for each peer in Twisted's buffer.
    """

    def __init__(self):
        self.clients = []
        self.closed = []
        self.mostQueued = {}

    def onOpen(self, conn):
        conn.transport = conn._outer.transport
        conn.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        self.clients.append(conn)
        self.mostQueued[conn] = 0

    def onMessage(self, conn, msg):
        for c in self.clients:
            c.send("z" * 16384)
            t = c.transport
            queued = len(t.dataBuffer) - t.offset + t._tempDataLen
            self.mostQueued[c] = max(self.mostQueued[c], queued)

    def onClose(self, conn):
        self.clients.remove(conn)
        self.closed.append((conn, conn.closeCode, conn.closeReason))


class SendBufferTests(ServerTestCase):
    """
    A line peer that stops reading is bounded like a WebSocket peer:
    maxSendBuffer and sendBufferPolicy (issue 12, item 9; before, one telnet
    peer that never read grew the server by 149 MiB).
    """

    def connectSlowAndFast(self, port, app):
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect((HOST, port))
        fast = socket.create_connection((HOST, port), timeout=5)
        deadline = time.monotonic() + 5
        while len(app.clients) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        return slow, fast

    @inlineCallbacks
    def test_slowReaderClosed(self):
        app = LineBroadcast()
        port = yield self.listen(LineProtocol(app, maxSendBuffer=256 * 1024))

        def talk():
            slow, fast = self.connectSlowAndFast(port, app)
            lines = fast.makefile("rb")
            slowConn = app.clients[0]
            received = 0
            for _ in range(400):  # 6.4 MiB for the slow peer
                fast.sendall(b"go\n")
                received += len(lines.readline()) == 16385
            fast.close()
            slow.settimeout(5)
            dropped = False
            try:
                while slow.recv(65536):
                    pass
                dropped = True
            except ConnectionResetError:
                dropped = True
            except TimeoutError:
                pass
            slow.close()
            return received, dropped, slowConn

        received, dropped, slowConn = yield deferToThread(talk)
        self.assertEqual(received, 400)
        self.assertTrue(dropped, "the slow line peer was never dropped")
        self.assertIn((slowConn, 1008, "Send buffer overflow"), app.closed)
        # Queued: the 256 KiB allowed, Twisted's own 64 KiB and one line.
        self.assertLess(app.mostQueued[slowConn], 256 * 1024 + 65536 + 2 * 16385)

    @inlineCallbacks
    def test_slowReaderDropPolicy(self):
        app = LineBroadcast()
        port = yield self.listen(
            LineProtocol(app, maxSendBuffer=256 * 1024, sendBufferPolicy="drop")
        )

        def talk():
            slow, fast = self.connectSlowAndFast(port, app)
            lines = fast.makefile("rb")
            slowConn = app.clients[0]
            for _ in range(400):
                fast.sendall(b"go\n")
                lines.readline()
            got = 0
            slow.settimeout(1)
            try:
                while chunk := slow.recv(65536):
                    got += len(chunk)
            except TimeoutError:
                pass
            fast.close()
            slow.close()
            return got, slowConn

        got, slowConn = yield deferToThread(talk)
        self.assertGreater(got, 0)
        self.assertLess(got, 400 * 16385 // 2)
        self.assertLess(app.mostQueued[slowConn], 256 * 1024 + 65536 + 2 * 16385)


class OneMessageOneLineTests(ServerTestCase):
    """
    A message reaches a line peer as exactly one line, its line breaks and
    control characters escaped (issue 12, item 18: one WebSocket message
    with newlines and ESC[2J reached a telnet user as three lines, one of
    them a forged "* admin: ...").
    """

    @inlineCallbacks
    def test_chatFromWebSocketToTelnet(self):
        chat = Chat()
        wsPort = yield self.listen(WebSocket(chat))
        linePort = yield self.listen(LineProtocol(chat))
        forged = "hi\n* admin: you are banned\r\n\x1b[2J\x1b]0;pwned\x07\x9b31m\u2028end\ttab"

        def talk():
            ws = rawclients.HybiClient(HOST, wsPort)
            ws.connect()
            telnet = socket.create_connection((HOST, linePort), timeout=5)
            lines = telnet.makefile("rb")
            deadline = time.monotonic() + 5
            while len(chat.clients) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            ws.send_text(forged)
            ws.send_binary(b"bin\n* admin: \x1b[2J\xff")
            ws.send_text("next é")
            got = [lines.readline() for _ in range(3)]
            ws.close()
            telnet.close()
            return got

        got = yield deferToThread(talk)
        self.assertEqual(
            got,
            [
                b"hi\\n* admin: you are banned\\r\\n\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\u2028end\ttab\n",
                b"bin\\x0a* admin: \\x1b[2J\xff\n",
                "next é\n".encode(),
            ],
        )

    def test_escaping(self):
        self.assertEqual(escapeText("plain ✓ text\twith tab"), "plain ✓ text\twith tab")
        self.assertEqual(escapeText("a\nb\rc\x00\x7f\x85\u2029"), "a\\nb\\rc\\x00\\x7f\\x85\\u2029")
        # Printable but not "isprintable" (a no-break space) stays as it is.
        self.assertEqual(escapeText("a\xa0b\n"), "a\xa0b\\n")
        self.assertEqual(escapeBytes("é\n".encode()), "é\\n".encode())
        self.assertEqual(escapeBytes(b"\xff\x9b\x1b\n\xe9"), b"\xff\\x9b\\x1b\\x0a\xe9")

    def test_delimiterAndTypes(self):
        sent = []

        class Outer:  # what the line layer uses of a LowerConnection
            peer = None
            writePaused = False
            bufferedWhilePaused = 0

            def send(self, data):
                sent.append(data)

        layer = LineProtocol(Echo(), delimiter=b"|")
        layer._connections[None] = conn = LineConnection(layer, Outer())
        conn.send("a|b\n")
        conn.send(bytearray(b"c"))
        conn.send(memoryview(b"d"))
        self.assertEqual(sent, [b"a\\x7cb\\n|", b"c|", b"d|"])
        with self.assertRaises(TypeError):
            conn.send(5)  # type: ignore[arg-type]
