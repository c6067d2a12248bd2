"""
End-to-end tests of the WebSocket layer: real servers on loopback, talked to
by independent clients of every protocol family (the `websockets` library
and Autobahn for RFC 6455, Autobahn in HyBi-10 mode, raw-socket HyBi-07/08
and Hixie-76 clients from tests/rawclients.py).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from examples.chat import Chat
from examples.echo import Echo
from tests import rawclients
from tests.rawclients import OP_BINARY, OP_CLOSE, OP_PONG, OP_TEXT
from tests.util import Recorder, ServerTestCase
from txratchet import Application, CloseConnection, LineProtocol, WebSocket
from txratchet.websocket import BinaryNotSupported

HOST = "127.0.0.1"


def watchFailures(testCase) -> list:
    """Every log event that carries a failure, from now to the test's end."""
    failures: list = []

    def observer(event):
        if "log_failure" in event:
            failures.append(event)

    globalLogPublisher.addObserver(observer)
    testCase.addCleanup(globalLogPublisher.removeObserver, observer)
    return failures


def websocketsEcho(port: int) -> dict:
    """RFC 6455 with the `websockets` library (sync client)."""
    from websockets.sync.client import connect

    out: dict = {}
    with connect(f"ws://{HOST}:{port}/echo", max_size=None, compression=None) as ws:
        ws.send("héllo wörld ✓")
        out["text"] = ws.recv()
        ws.send(b"\x00\xffbinary")
        out["binary"] = ws.recv()
        big = "x" * (1 << 20) + "é"
        ws.send(big)
        out["big"] = ws.recv() == big
        ws.send(["frag", "mented ", "κόσμε"])
        out["fragmented"] = ws.recv()
        out["pong"] = ws.ping(b"abc").wait(5)
    out["closeCode"] = ws.close_code
    return out


class AutobahnEchoClient(WebSocketClientProtocol):
    """Sends its factory's messages one by one, collecting the echoes."""

    def onOpen(self):
        self.received = []
        self.todo = list(self.factory.messages)
        self._next()

    def _next(self):
        msg = self.todo.pop(0)
        self.sendMessage(msg if isinstance(msg, bytes) else msg.encode("utf-8"), isBinary=isinstance(msg, bytes))

    def onMessage(self, payload, isBinary):
        self.received.append(payload if isBinary else payload.decode("utf-8"))
        if self.todo:
            self._next()
        else:
            self.sendClose(1000)

    def onClose(self, wasClean, code, reason):
        if not self.factory.done.called:
            self.factory.done.callback((self.received, wasClean, code))


class EchoTests(ServerTestCase):
    """Echo with every client family; messages keep their type."""

    @inlineCallbacks
    def test_websocketsClient(self):
        port = yield self.listen(WebSocket(Echo()))
        out = yield deferToThread(websocketsEcho, port)
        self.assertEqual(out["text"], "héllo wörld ✓")
        self.assertEqual(out["binary"], b"\x00\xffbinary")
        self.assertTrue(out["big"])
        self.assertEqual(out["fragmented"], "fragmented κόσμε")
        self.assertTrue(out["pong"])
        self.assertEqual(out["closeCode"], 1000)

    @inlineCallbacks
    def test_websocketClientLibrary(self):
        """The `websocket-client` library (another independent RFC 6455 client)."""
        recorder = Recorder()
        port = yield self.listen(WebSocket(recorder))

        def talk():
            import websocket

            ws = websocket.create_connection(f"ws://{HOST}:{port}/wsc?x=1", timeout=5)
            ws.send("hello ✓")
            text = ws.recv()
            ws.send_binary(b"\x00\x01")
            binary = ws.recv()
            ws.send("y" * 200000)
            big = ws.recv()
            ws.close()
            return text, binary, len(big)

        result = yield deferToThread(talk)
        self.assertEqual(result, ("hello ✓", b"\x00\x01", 200000))
        yield recorder.closed
        self.assertEqual(recorder.conns[0].query, "x=1")
        self.assertEqual(recorder.conns[0].closeCode, 1000)

    @inlineCallbacks
    def _autobahn(self, version):
        recorder = Recorder()
        port = yield self.listen(WebSocket(recorder))
        factory = WebSocketClientFactory(f"ws://{HOST}:{port}/ab")
        factory.setProtocolOptions(version=version)
        factory.protocol = AutobahnEchoClient
        factory.messages = ["text ✓", b"\x01\x02", "x" * 70000]
        factory.done = Deferred()
        yield TCP4ClientEndpoint(reactor, HOST, port).connect(factory)
        received, wasClean, code = yield factory.done
        self.assertEqual(received, factory.messages)
        self.assertTrue(wasClean)
        self.assertEqual(code, 1000)
        return recorder

    @inlineCallbacks
    def test_autobahnHybi10(self):
        """Autobahn in HyBi-10 mode sends Sec-WebSocket-Version: 8."""
        recorder = yield self._autobahn(10)
        self.assertEqual(recorder.conns[0].protocol, "hybi-08")

    @inlineCallbacks
    def test_autobahnRFC6455(self):
        recorder = yield self._autobahn(18)
        self.assertEqual(recorder.conns[0].protocol, "rfc6455")

    @inlineCallbacks
    def _rawHybi(self, version, expected):
        recorder = Recorder()
        port = yield self.listen(WebSocket(recorder))

        def talk():
            c = rawclients.HybiClient(HOST, port, "/raw", version=version)
            c.connect()
            c.send_text("hello")
            first = c.recv_message()
            c.send_binary(b"\x00\x01\x02")
            second = c.recv_message()
            # A fragmented message with a ping between the fragments.
            c.send_frame(OP_TEXT, b"frag", fin=False)
            c.send_ping(b"p")
            c.send_frame(0, b"ment", fin=True)
            pong = c.recv_message()
            third = c.recv_message()
            # 16- and 64-bit lengths.
            c.send_binary(b"y" * 300)
            fourth = c.recv_message()
            c.send_binary(b"z" * 70000)
            fifth = c.recv_message()
            closed = c.close(1000, "done")
            return [first, second, pong, third, fourth, fifth], closed, c.server_closed_tcp

        frames, closed, tcpClosed = yield deferToThread(talk)
        self.assertEqual(
            frames,
            [
                (OP_TEXT, b"hello"),
                (OP_BINARY, b"\x00\x01\x02"),
                (OP_PONG, b"p"),
                (OP_TEXT, b"fragment"),
                (OP_BINARY, b"y" * 300),
                (OP_BINARY, b"z" * 70000),
            ],
        )
        self.assertEqual(closed, (1000, ""))
        self.assertTrue(tcpClosed, "the server closes TCP after the closing handshake")
        yield recorder.closed
        conn = recorder.conns[0]
        self.assertEqual(conn.protocol, expected)
        self.assertEqual((conn.closeCode, conn.closeReason, conn.wasClean), (1000, "done", True))

    def test_rawHybi07(self):
        return self._rawHybi(7, "hybi-07")

    def test_rawHybi08(self):
        return self._rawHybi(8, "hybi-08")

    def test_rawRFC6455(self):
        return self._rawHybi(13, "rfc6455")

    @inlineCallbacks
    def test_hixie76(self):
        recorder = Recorder()
        port = yield self.listen(WebSocket(recorder))

        def talk():
            c = rawclients.Hixie76Client(HOST, port, "/old?x=1")
            c.connect()
            c.send_text("hello ✓")
            first = c.recv_message()
            c.send_text("")
            second = c.recv_message()
            c.send_raw(b"\x00one\xff\x00two\xff")
            third, fourth = c.recv_message(), c.recv_message()
            c.close()
            return [first, second, third, fourth], c.received_close_frame, c.server_closed_tcp

        received, closeFrame, tcpClosed = yield deferToThread(talk)
        self.assertEqual(received, ["hello ✓", "", "one", "two"])
        self.assertTrue(closeFrame)
        self.assertTrue(tcpClosed)
        yield recorder.closed
        self.assertEqual(recorder.conns[0].protocol, "hixie-76")
        self.assertEqual(recorder.conns[0].path, "/old")


class WhoAmI(Application):
    """Answers any message with what the handshake carried."""

    def onMessage(self, conn, msg):
        conn.send(
            json.dumps(
                {
                    "protocol": conn.protocol,
                    "path": conn.path,
                    "query": conn.query,
                    "params": conn.params,
                    "cookies": conn.cookies,
                    "x-test": conn.headers.get("X-Test"),
                    "peer": [conn.peer.host, conn.peer.port],
                    "subprotocol": conn.subprotocol,
                }
            )
        )


class ConnectionAttributeTests(ServerTestCase):
    """The application sees the request path, query, headers, cookies and peer."""

    @inlineCallbacks
    def test_attributesEveryFamily(self):
        port = yield self.listen(WebSocket(WhoAmI(), subprotocols=["chat.v2", "chat.v1"]))
        headers = {"Cookie": 'sid=abc123; theme="dark"', "X-Test": "yes"}

        def talk():
            results = {}
            for version in (7, 8, 13):
                c = rawclients.HybiClient(
                    HOST, port, "/room/1?a=1&b=two&a=3", version=version,
                    headers=headers, subprotocols=["chat.v1", "chat.v2"],
                )
                c.connect()
                c.send_text("?")
                results[version] = (json.loads(c.recv_text()), c.sock.getsockname()[1], c.subprotocol)
                c.close()
            h = rawclients.Hixie76Client(HOST, port, "/room/1?a=1&b=two&a=3", headers=headers)
            h.connect()
            h.send_text("?")
            results["hixie"] = (json.loads(h.recv_message()), h.sock.getsockname()[1], None)
            h.close()
            return results

        results = yield deferToThread(talk)
        expectedFamily = {7: "hybi-07", 8: "hybi-08", 13: "rfc6455", "hixie": "hixie-76"}
        for key, (info, localPort, chosen) in results.items():
            self.assertEqual(info["protocol"], expectedFamily[key])
            self.assertEqual(info["path"], "/room/1")
            self.assertEqual(info["query"], "a=1&b=two&a=3")
            self.assertEqual(info["params"], {"a": ["1", "3"], "b": ["two"]})
            self.assertEqual(info["cookies"], {"sid": "abc123", "theme": "dark"})
            self.assertEqual(info["x-test"], "yes")
            self.assertEqual(info["peer"], [HOST, localPort])
            if key != "hixie":
                # The client's preference order wins among what we speak.
                self.assertEqual(info["subprotocol"], "chat.v1")
                self.assertEqual(chosen, "chat.v1")


class ChatTests(ServerTestCase):
    """The Ratchet chat, unchanged, across protocol families and decorators."""

    @inlineCallbacks
    def test_threeFamiliesAndTelnetChat(self):
        chat = Chat()
        wsPort = yield self.listen(WebSocket(chat))
        linePort = yield self.listen(LineProtocol(chat))

        def talk():
            import socket

            from websockets.sync.client import connect

            modern = connect(f"ws://{HOST}:{wsPort}/")
            hybi = rawclients.HybiClient(HOST, wsPort, version=8)
            hybi.connect()
            hixie = rawclients.Hixie76Client(HOST, wsPort)
            hixie.connect()
            telnet = socket.create_connection((HOST, linePort), timeout=5)
            telnetFile = telnet.makefile("rb")
            # Every peer is registered once it has completed its handshake;
            # a round of messages makes sure of that before asserting.
            import time

            deadline = time.monotonic() + 5
            while len(chat.clients) < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
            got = {}
            modern.send("from rfc6455")
            got["hybi<-modern"] = hybi.recv_text()
            got["hixie<-modern"] = hixie.recv_message()
            got["telnet<-modern"] = telnetFile.readline()
            hybi.send_text("from hybi-08")
            got["modern<-hybi"] = modern.recv(timeout=5)
            got["hixie<-hybi"] = hixie.recv_message()
            got["telnet<-hybi"] = telnetFile.readline()
            hixie.send_text("from hixie-76 ✓")
            got["modern<-hixie"] = modern.recv(timeout=5)
            got["hybi<-hixie"] = hybi.recv_text()
            got["telnet<-hixie"] = telnetFile.readline()
            telnet.sendall("from telnet ✓\r\n".encode())
            got["modern<-telnet"] = modern.recv(timeout=5)
            got["hybi<-telnet"] = hybi.recv_text()
            got["hixie<-telnet"] = hixie.recv_message()
            modern.close()
            hybi.close()
            hixie.close()
            telnet.close()
            return got

        got = yield deferToThread(talk)
        self.assertEqual(
            got,
            {
                "hybi<-modern": "from rfc6455",
                "hixie<-modern": "from rfc6455",
                "telnet<-modern": b"from rfc6455\n",
                "modern<-hybi": "from hybi-08",
                "hixie<-hybi": "from hybi-08",
                "telnet<-hybi": b"from hybi-08\n",
                "modern<-hixie": "from hixie-76 ✓",
                "hybi<-hixie": "from hixie-76 ✓",
                "telnet<-hixie": "from hixie-76 ✓\n".encode(),
                "modern<-telnet": "from telnet ✓",
                "hybi<-telnet": "from telnet ✓",
                "hixie<-telnet": "from telnet ✓",
            },
        )
        for _ in range(100):
            if not chat.clients:
                break
            yield deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(chat.clients, set(), "onClose removed every client")


class BinaryToHixie(Application):
    """Tries to send binary to everyone, then text."""

    def __init__(self):
        self.errors = []

    def onMessage(self, conn, msg):
        conn.send(b"\x00\xff binary")

    def onError(self, conn, failure):
        self.errors.append(failure)
        conn.send("binary refused")


class HixieBinaryTests(ServerTestCase):
    @inlineCallbacks
    def test_binaryIsAnErrorNotCorruption(self):
        """
        Binary cannot travel over Hixie-76: the application gets an error
        (BinaryNotSupported) and the stream stays intact.
        """
        app = BinaryToHixie()
        port = yield self.listen(WebSocket(app))

        def talk():
            c = rawclients.Hixie76Client(HOST, port)
            c.connect()
            c.send_text("go")
            reply = c.recv_message()
            c.close()
            return reply

        reply = yield deferToThread(talk)
        self.assertEqual(reply, "binary refused")
        self.assertEqual(len(app.errors), 1)
        self.assertTrue(app.errors[0].check(BinaryNotSupported))
        # Logged once by the framework, before onError (issue 12 item 22).
        self.assertEqual(len(self.flushLoggedErrors(BinaryNotSupported)), 1)

    @inlineCallbacks
    def test_commandToHixieReportsToOnError(self):
        """A SendMessage command with bytes for a Hixie peer reaches onError."""
        chat = Chat()
        errors = []
        chat.onError = lambda conn, failure: errors.append((conn, failure)) or CloseConnection(conn)
        port = yield self.listen(WebSocket(chat))

        def talk():
            hixie = rawclients.Hixie76Client(HOST, port)
            hixie.connect()
            modern = rawclients.HybiClient(HOST, port)
            modern.connect()
            import time

            deadline = time.monotonic() + 5
            while len(chat.clients) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            modern.send_binary(b"\x01\x02")
            # The Hixie peer is closed by the application's onError.
            return hixie.recv_message()

        result = yield deferToThread(talk)
        self.assertIsNone(result)
        self.assertEqual(len(errors), 1)
        self.assertEqual(errors[0][0].protocol, "hixie-76")
        self.assertTrue(errors[0][1].check(BinaryNotSupported))
        self.assertEqual(len(self.flushLoggedErrors(BinaryNotSupported)), 1)


class HandshakeRefusalTests(ServerTestCase):
    """Requests that cannot be upgraded get a specific HTTP answer and a close."""

    @inlineCallbacks
    def _request(self, request, **options):
        port = yield self.listen(WebSocket(Echo(), **options))
        response = yield deferToThread(rawclients.raw_request, HOST, port, request)
        return response

    @inlineCallbacks
    def test_plainGet(self):
        r = yield self._request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 400 "), r)
        self.assertIn(b"upgrade", r.lower())

    @inlineCallbacks
    def test_unsupportedVersion(self):
        r = yield self._request(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 9\r\n\r\n"
        )
        self.assertTrue(r.startswith(b"HTTP/1.1 426 "), r)
        self.assertIn(b"\r\nSec-WebSocket-Version: 13, 8, 7\r\n", r)

    @inlineCallbacks
    def test_badKey(self):
        r = yield self._request(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.assertTrue(r.startswith(b"HTTP/1.1 400 "), r)
        self.assertIn(b"Sec-WebSocket-Key", r)

    @inlineCallbacks
    def test_malformed(self):
        r = yield self._request(b"NONSENSE\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 400 "), r)

    @inlineCallbacks
    def test_tooLarge(self):
        r = yield self._request(
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
            maxHandshakeSize=8192,
        )
        self.assertTrue(r.startswith(b"HTTP/1.1 431 "), r)

    @inlineCallbacks
    def test_handshakeTimeout(self):
        r = yield self._request(b"GET / HTTP/1.1\r\nHost: x\r\n", handshakeTimeout=0.3)
        self.assertTrue(r.startswith(b"HTTP/1.1 408 "), r)

    @inlineCallbacks
    def test_hugeNumbersAre400WithoutTraceback(self):
        """
        Issue 12 item 13: a Hixie-76 key with 4,400 leading zeros (over
        int()'s digit limit) gets 400 with the reason, a deflate offer with
        a window size of 5,000 digits is declined, and nothing is logged as
        a failure (both were a 500 and a traceback per request).
        """
        failures = watchFailures(self)
        port = yield self.listen(WebSocket(Echo()))
        hixie = (
            b"GET /demo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n"
            b"Sec-WebSocket-Key1: " + b"0" * 4400 + b"1 2\r\n"
            b"Sec-WebSocket-Key2: 1 2\r\n\r\n12345678"
        )
        deflate = (
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits="
            + b"0" * 5000 + b"9\r\n\r\n"
            + b"\x88\x80abcd"  # a close frame: the server ends the connection
        )
        answers = yield deferToThread(
            lambda: [rawclients.raw_request(HOST, port, r, timeout=5) for r in (hixie, deflate)]
        )
        self.assertTrue(answers[0].startswith(b"HTTP/1.1 400 "), answers[0][:200])
        self.assertIn(b"Sec-WebSocket-Key1/Key2 longer than 128 characters", answers[0])
        # The offer it cannot read is declined (RFC 7692 5).
        self.assertTrue(answers[1].startswith(b"HTTP/1.1 101 "), answers[1][:200])
        self.assertNotIn(b"Sec-WebSocket-Extensions", answers[1])
        self.assertEqual(failures, [])
        self.assertEqual(self.flushLoggedErrors(), [])

    @inlineCallbacks
    def test_notHTTPRefusedAtOnce(self):
        """
        Issue 12 item 21: what cannot be a request line gets 400 as soon
        as it arrives, on a server whose handshake timeout is the default
        10 s: a line starting with a space, two spaces in a row, and 4 KiB
        of random bytes (fixed seeds) after a space or a token and a space
        (each waited 10 s before). The client gives up after 3 s.
        """
        port = yield self.listen(WebSocket(Echo()))
        noise = [random.Random(seed).randbytes(4096) for seed in range(6)]
        garbage = [
            b" GET / HTTP/1.1",
            b" GET / HTTP/1.1\r\nHost: x\r\n",
            b"GET  /",
            b"GET /chat  HTTP/1.1\r\n",
            *(b" " + n for n in noise[:2]),
            *(b"GET " + n for n in noise[2:4]),
            *noise[4:],
        ]

        def send(data):
            started = time.monotonic()
            answer = rawclients.raw_request(HOST, port, data, timeout=3)
            return answer, time.monotonic() - started

        results = yield deferToThread(lambda: [send(g) for g in garbage])
        for data, (answer, _) in zip(garbage, results, strict=True):
            self.assertTrue(answer.startswith(b"HTTP/1.1 400 "), (data[:20], answer[:80]))
        self.assertLess(max(took for _, took in results), 3)


class CloseTests(ServerTestCase):
    """Closing handshakes and failures (RFC 6455 section 7)."""

    @inlineCallbacks
    def _expectClose(self, send, **options):
        port = yield self.listen(WebSocket(Echo(), **options))

        def talk():
            c = rawclients.HybiClient(HOST, port)
            c.connect()
            send(c)
            code = c.expect_close()
            return code, c.wait_tcp_closed()

        result = yield deferToThread(talk)
        return result

    @inlineCallbacks
    def test_unmaskedFrame(self):
        (code, _), tcp = yield self._expectClose(lambda c: c.send_frame(OP_TEXT, b"x", mask=False))
        self.assertEqual(code, 1002)
        self.assertTrue(tcp)

    @inlineCallbacks
    def test_invalidUTF8(self):
        (code, _), tcp = yield self._expectClose(lambda c: c.send_frame(OP_TEXT, b"\xce\xba\xed\xa0\x80"))
        self.assertEqual(code, 1007)
        self.assertTrue(tcp)

    @inlineCallbacks
    def test_tooBig(self):
        (code, _), tcp = yield self._expectClose(
            lambda c: c.send_binary(b"x" * 2000), maxMessageSize=1000
        )
        self.assertEqual(code, 1009)
        self.assertTrue(tcp)

    @inlineCallbacks
    def test_reservedOpcode(self):
        (code, _), tcp = yield self._expectClose(lambda c: c.send_frame(5, b""))
        self.assertEqual(code, 1002)
        self.assertTrue(tcp)

    @inlineCallbacks
    def test_invalidCloseCode(self):
        (code, _), tcp = yield self._expectClose(lambda c: c.send_close(1005))
        self.assertEqual(code, 1002)
        self.assertTrue(tcp)

    @inlineCallbacks
    def test_invalidClosePayloadEndsPromptly(self):
        """
        After a close frame that is itself invalid (payload over 125 bytes,
        invalid code), no other close will come: the server answers 1002
        and closes TCP at once, without waiting for closeTimeout.
        """
        port = yield self.listen(WebSocket(Echo(), closeTimeout=30))

        def talk(payload):
            c = rawclients.HybiClient(HOST, port)
            c.connect()
            c.send_frame(OP_CLOSE, payload)
            started = time.monotonic()
            code = c.expect_close(reply=False)
            return code, c.wait_tcp_closed(5), time.monotonic() - started

        for payload in (b"\x03\xe8" + b"*" * 124, b"\x03\xed", b"\x03"):
            (code, _), tcp, took = yield deferToThread(talk, payload)
            self.assertEqual(code, 1002)
            self.assertTrue(tcp)
            self.assertLess(took, 3)

    @inlineCallbacks
    def test_closeEchoesCode(self):
        (code, _), tcp = yield self._expectClose(lambda c: c.send_close(4321, "bye"))
        self.assertEqual(code, 4321)
        self.assertTrue(tcp)

    @inlineCallbacks
    def test_applicationCloseDeliversEverythingFirst(self):
        """Messages sent before close() reach the peer before the close frame."""

        class SendThenClose(Application):
            def onMessage(self, conn, msg):
                for i in range(100):
                    conn.send("m%d" % i)
                conn.send(b"z" * 100000)
                return CloseConnection(conn, 4000, "bye")

        port = yield self.listen(WebSocket(SendThenClose()))

        def talk():
            c = rawclients.HybiClient(HOST, port)
            c.connect()
            c.send_text("go")
            got = [c.recv_message() for _ in range(101)]
            closing = c.recv_message()
            c.close()
            return got, closing, c.server_closed_tcp

        got, closing, tcp = yield deferToThread(talk)
        self.assertEqual(got[:100], [(OP_TEXT, b"m%d" % i) for i in range(100)])
        self.assertEqual(got[100], (OP_BINARY, b"z" * 100000))
        self.assertEqual(closing, (OP_CLOSE, b"\x0f\xa0bye"))
        self.assertTrue(tcp)

    @inlineCallbacks
    def test_silentPeerAborted(self):
        """A peer that never answers our close frame is dropped after closeTimeout."""

        class Closer(Application):
            def onOpen(self, conn):
                return CloseConnection(conn, 1001)

        port = yield self.listen(WebSocket(Closer(), closeTimeout=0.3))

        def talk():
            c = rawclients.HybiClient(HOST, port)
            c.connect()
            opcode, payload = c.recv_message()
            return opcode, payload, c.wait_tcp_closed(3)

        opcode, payload, tcp = yield deferToThread(talk)
        self.assertEqual((opcode, payload), (OP_CLOSE, b"\x03\xe9"))
        self.assertTrue(tcp)

    @inlineCallbacks
    def test_pingAnswered(self):
        port = yield self.listen(WebSocket(Echo()))

        def talk():
            c = rawclients.HybiClient(HOST, port)
            c.connect()
            c.send_ping(b"x" * 125)
            pong = c.recv_message()
            c.close()
            return pong

        pong = yield deferToThread(talk)
        self.assertEqual(pong, (OP_PONG, b"x" * 125))



class BroadcastFramingTests(ServerTestCase):
    @inlineCallbacks
    def test_sameMessageFramedOncePerFamily(self):
        """
        A broadcast of one message object frames it once per family, and
        every peer still gets exactly its own protocol's frame.
        """
        from txratchet.websocket import hixie76, rfc6455

        calls = {"text": 0, "header": 0}
        originalEncode, originalHeader = hixie76.encodeText, rfc6455.frameHeader

        def countEncode(text):
            calls["text"] += 1
            return originalEncode(text)

        def countHeader(*args, **kw):
            calls["header"] += 1
            return originalHeader(*args, **kw)

        class Broadcast(Application):
            def __init__(self):
                self.clients = []

            def onOpen(self, conn):
                self.clients.append(conn)

            def onMessage(self, conn, msg):
                calls["text"] = calls["header"] = 0
                self.patch()
                try:
                    for c in self.clients:
                        c.send(msg)
                finally:
                    self.unpatch()

            def onClose(self, conn):
                self.clients.remove(conn)

        app = Broadcast()
        app.patch = lambda: (setattr(hixie76, "encodeText", countEncode),
                             setattr(rfc6455, "frameHeader", countHeader))
        app.unpatch = lambda: (setattr(hixie76, "encodeText", originalEncode),
                               setattr(rfc6455, "frameHeader", originalHeader))
        port = yield self.listen(WebSocket(app, compression=None))

        def talk():
            peers = [rawclients.HybiClient(HOST, port, version=v) for v in (13, 13, 8, 7)]
            for p in peers:
                p.connect()
            old = [rawclients.Hixie76Client(HOST, port) for _ in range(2)]
            for o in old:
                o.connect()
            deadline = time.monotonic() + 5
            while len(app.clients) < 6 and time.monotonic() < deadline:
                time.sleep(0.01)
            # Over 125 bytes: small headers come from a table, not frameHeader.
            peers[0].send_text("to all ✓" * 20)
            got = [p.recv_message() for p in peers] + [o.recv_message() for o in old]
            for p in peers:
                p.close()
            for o in old:
                o.close()
            return got

        got = yield deferToThread(talk)
        text = "to all ✓" * 20
        self.assertEqual(got, [(OP_TEXT, text.encode())] * 4 + [text] * 2)
        self.assertEqual(calls, {"text": 1, "header": 1})


class SendTypes(Application):
    """
    Tries to send what is not a message, and reports what happened in one
    text message; then sends a bytearray and a memoryview (binary).
    """

    BAD = (5, {}, None, 1.5, ["x"])

    def onMessage(self, conn, msg):
        self.report(conn)

    def report(self, conn):
        results = []
        for bad in self.BAD:
            try:
                conn.send(bad)
            except TypeError as e:
                results.append(f"{type(e).__name__}: {e}")
            else:
                results.append("sent")
        conn.send("\t".join(results))
        if conn.protocol != "hixie-76":
            conn.send(bytearray(b"bytearray"))
            conn.send(memoryview(b"-memoryview-")[1:-1])


class SendTypeTests(ServerTestCase):
    """
    Issue 12 item 16: send() takes str or bytes-like (bytearray,
    memoryview) and refuses anything else with a clear TypeError, on every
    kind of connection; C{send(5)} used to send five NUL bytes (a Hixie-76
    peer got a misleading BinaryNotSupported) and C{send({})} an empty
    binary message or a confusing TypeError.
    """

    def assertRefusedAll(self, report, exact=True):
        self.assertEqual(len(report), len(SendTypes.BAD), report)
        for line, bad in zip(report, SendTypes.BAD, strict=True):
            self.assertRegex(line, rf"^TypeError: .*\bnot {type(bad).__name__}$")
        if exact:
            self.assertEqual(report[0], "TypeError: send() takes str or bytes-like, not int")

    @inlineCallbacks
    def test_websocketFamilies(self):
        port = yield self.listen(WebSocket(SendTypes()))

        def talk():
            from websockets.sync.client import connect

            out = {}
            with connect(f"ws://{HOST}:{port}/", compression=None) as ws:
                ws.send("go")
                out["rfc6455"] = [ws.recv(timeout=5), ws.recv(timeout=5), ws.recv(timeout=5)]
            hybi = rawclients.HybiClient(HOST, port, version=8)
            hybi.connect()
            hybi.send_text("go")
            out["hybi-08"] = [hybi.recv_text()]
            hybi.close()
            hixie = rawclients.Hixie76Client(HOST, port)
            hixie.connect()
            hixie.send_text("go")
            out["hixie-76"] = [hixie.recv_message()]
            hixie.close()
            return out

        out = yield deferToThread(talk)
        for family in ("rfc6455", "hybi-08", "hixie-76"):
            self.assertRefusedAll(out[family][0].split("\t"))
        self.assertEqual(out["rfc6455"][1:], [b"bytearray", b"memoryview"])

    @inlineCallbacks
    def test_lineAndRawTCP(self):
        app = SendTypes()
        linePort = yield self.listen(LineProtocol(app))
        rawPort = yield self.listen(app)

        def talk(port):
            import socket

            with socket.create_connection((HOST, port), timeout=5) as s:
                s.sendall(b"go\n")
                data = b""
                while data.count(b"memoryview") < 1:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                return data

        line = yield deferToThread(talk, linePort)
        # The line layer words it its own way ("a line is str or bytes").
        self.assertRefusedAll(line.split(b"\n")[0].decode().split("\t"), exact=False)
        self.assertEqual(line.split(b"\n")[1:], [b"bytearray", b"memoryview", b""])
        raw = yield deferToThread(talk, rawPort)
        report, _, rest = raw.partition(b"bytearray")
        self.assertRefusedAll(report.decode().split("\t"))
        self.assertEqual(rest, b"memoryview")

    @inlineCallbacks
    def test_client(self):
        from txratchet.client import connectWebSocket

        port = yield self.listen(WebSocket(Echo()))
        received = []
        done = Deferred()

        class Client(SendTypes):
            def onOpen(self, conn):
                self.report(conn)

            def onMessage(self, conn, msg):
                received.append(msg)
                if len(received) == 3:
                    done.callback(None)

        conn = yield connectWebSocket(reactor, f"ws://{HOST}:{port}/", Client())
        yield done
        conn.close()
        self.assertRefusedAll(received[0].split("\t"))
        self.assertEqual(received[1:], [b"bytearray", b"memoryview"])


def readmeChat():
    """The first example of README.md ("An application"), run as written."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")
    section = readme.split("\n## An application\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(code, namespace)
    return namespace["Chat"]


def closeAfter(port, *messages, path="/"):
    """
    Blocking: send C{messages} over RFC 6455, read until the server closes;
    return its close code and reason, or C{(None, None)} if it did not
    close within 3 seconds.
    """
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(f"ws://{HOST}:{port}{path}", compression=None) as ws:
        for message in messages:
            ws.send(message)
        try:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                ws.recv(timeout=deadline - time.monotonic())
        except ConnectionClosed:
            return ws.close_code, ws.close_reason
        except TimeoutError:
            pass
        return None, None


class Failing(Application):
    """
    C{"raise"} raises; C{"now"} returns a Deferred that has failed already,
    C{"later"} one that fails on a later reactor turn. C{onError} records
    the failure and closes with 1011.
    """

    def __init__(self):
        self.errors = []

    def onMessage(self, conn, msg):
        if msg == "raise":
            raise ZeroDivisionError(msg)
        if msg == "now":
            return fail(ZeroDivisionError(msg))
        if msg == "later":
            return deferLater(reactor, 0.01, self.boom, msg)
        return None

    def boom(self, msg):
        raise ZeroDivisionError(msg)

    def onError(self, conn, failure):
        self.errors.append(failure)
        return CloseConnection(conn, 1011, "Internal error")


class ErrorReportingTests(ServerTestCase):
    """
    Issue 12 items 22 and 23: a handler's failure, raised or from its
    Deferred, is logged once with its traceback and reaches C{onError}.
    """

    def assertLoggedOnce(self, failures, value):
        """One failure event for exactly C{value}, at error level, naming the connection."""
        events = [e for e in failures if e["log_failure"].value is value]
        self.assertEqual(len(events), 1, [formatEvent(e) for e in failures])
        event = events[0]
        self.assertEqual(event["log_level"], LogLevel.error)
        self.assertIn("Connection", formatEvent(event))
        self.assertIn("ZeroDivisionError", event["log_failure"].getTraceback())
        return event

    @inlineCallbacks
    def test_readmeExampleLogsAndCloses1011(self):
        """
        Item 22: with the README's first example (and examples/chat.py),
        C{1/0} in C{onMessage} closes with 1011 "Internal error" and logs
        the traceback once; it used to close with 1000 and log nothing.
        """
        failures = watchFailures(self)
        for chat in (readmeChat(), Chat):

            class Buggy(chat):
                def onMessage(self, sender, msg):
                    return 1 / 0

                def onError(self, conn, failure):
                    self.errors.append(failure)
                    return super().onError(conn, failure)

            app = Buggy()
            app.errors = []
            port = yield self.listen(WebSocket(app))
            closed = yield deferToThread(closeAfter, port, "hi")
            self.assertEqual(closed, (1011, "Internal error"), chat)
            self.assertEqual(len(app.errors), 1)
            event = self.assertLoggedOnce(failures, app.errors[0].value)
            self.assertIn("return 1 / 0", event["log_failure"].getTraceback())
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)

    @inlineCallbacks
    def test_syncAndDeferredFailuresTakeTheSamePath(self):
        """
        Item 23: a handler that raises and one whose Deferred fails (at
        once, or on a later turn) are each logged once and reach
        C{onError}, which closes with 1011; the Deferred's failure used to
        be only logged, and the connection stayed open.
        """
        failures = watchFailures(self)
        app = Failing()
        port = yield self.listen(WebSocket(app))
        for message in ("raise", "now", "later"):
            closed = yield deferToThread(closeAfter, port, message)
            self.assertEqual(closed, (1011, "Internal error"), message)
        self.assertEqual([str(f.value) for f in app.errors], ["raise", "now", "later"])
        for failure in app.errors:
            self.assertLoggedOnce(failures, failure.value)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 3)

    @inlineCallbacks
    def test_defaultOnErrorForADeferred(self):
        """Application's own onError closes a failed Deferred's connection with 1011."""

        class Default(Failing):
            onError = Application.onError

        port = yield self.listen(WebSocket(Default()))
        closed = yield deferToThread(closeAfter, port, "later")
        self.assertEqual(closed, (1011, "Internal error"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    @inlineCallbacks
    def test_lineProtocol(self):
        """A line peer's failed Deferred reaches onError too (its close reason is the last line)."""
        app = Failing()
        port = yield self.listen(LineProtocol(app))

        def talk():
            import socket

            with socket.create_connection((HOST, port), timeout=5) as s:
                s.sendall(b"later\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        return data
                    data += chunk

        data = yield deferToThread(talk)
        self.assertEqual(data, b"Internal error\n")
        self.assertEqual([str(f.value) for f in app.errors], ["later"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    @inlineCallbacks
    def test_client(self):
        """A client application's failed Deferred (from onOpen) reaches its onError."""
        from txratchet.client import connectWebSocket

        server = Recorder()
        port = yield self.listen(WebSocket(server))

        class Client(Failing):
            def onOpen(self, conn):
                return deferLater(reactor, 0.01, self.boom, "client")

        client = Client()
        yield connectWebSocket(reactor, f"ws://{HOST}:{port}/", client)
        conn = yield server.closed.addTimeout(5, reactor)
        self.assertEqual((conn.closeCode, conn.closeReason), (1011, "Internal error"))
        self.assertEqual([str(f.value) for f in client.errors], ["client"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
