"""
The line protocol: the same applications over newline-delimited TCP, talked
to with a plain socket (what telnet and netcat do).
"""

from __future__ import annotations

import socket

from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread

from examples.echo import Echo
from tests.util import Recorder, ServerTestCase
from txratchet import Application, LineProtocol

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
