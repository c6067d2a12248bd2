"""
The client's WebSockets over HTTP/2 (RFC 8441): connectWebSocket(...,
http2=True) against the branch's own server (a WebSocketSite over TLS
offering h2 by ALPN on 127.0.0.1). Several sockets share one TCP
connection; echo, compression, subprotocols, closes both ways, resets,
refusals, and the fallbacks when the server speaks HTTP/1.1 only.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.resource import Resource
from twisted.web.static import Data

from tests.tls import makeCertificate
from tests.util import Recorder
from txratchet import Application, WebSocket
from txratchet.client import connectWebSocket
from txratchet.errors import HTTP2Unavailable, InvalidStatus

try:
    import h2  # noqa: F401

    from txratchet.client import http2 as clienth2
    from txratchet.web import WebSocketResource, WebSocketSite
except ImportError:  # pragma: no cover
    clienth2 = None  # type: ignore[assignment]

HOST = "127.0.0.1"


class Client(Application):
    """
    Records what arrives; lets a test wait for messages and the close.
    """

    def __init__(self, subprotocols: tuple[str, ...] = ()) -> None:
        self.subprotocols = subprotocols
        self.messages: list[str | bytes] = []
        self.closed: Deferred[Any] = Deferred()
        self._waiting: list[tuple[int, Deferred[list[str | bytes]]]] = []

    def onMessage(self, conn: Any, msg: str | bytes) -> None:
        self.messages.append(msg)
        still = []
        for count, d in self._waiting:
            if len(self.messages) >= count:
                d.callback(list(self.messages))
            else:
                still.append((count, d))
        self._waiting = still

    def onClose(self, conn: Any) -> None:
        self.closed.callback(conn)

    def wait(self, count: int) -> Deferred[list[str | bytes]]:
        d: Deferred[list[str | bytes]] = Deferred()
        if len(self.messages) >= count:
            d.callback(list(self.messages))
        else:
            self._waiting.append((count, d))
        return d.addTimeout(10, reactor)


class Commands(Recorder):
    """
    Echo, except "close" (the server closes with 4000) and "reset" (the
    server resets the stream).
    """

    def onMessage(self, conn: Any, msg: str | bytes) -> Any:
        if msg == "close":
            conn.close(4000, "asked to")
            return None
        if msg == "reset":
            conn.transport.abortConnection()
            return None
        if msg == "flood":
            for n in range(10):
                conn.send(str(n) * 200_000)
            return None
        return super().onMessage(conn, msg)


class HTTP2ClientTests(TestCase):
    timeout = 30

    def setUp(self) -> None:
        if clienth2 is None:
            raise SkipTest("h2 is not installed (pip install 'twisted[http2]')")
        self.tcpConnections = 0

    @inlineCallbacks
    def serve(self, app: Any, layerOptions: dict[str, Any] | None = None, **siteOptions: Any) -> Any:
        """
        A WebSocketSite on TLS with the socket at /ws; returns its wss URL.
        """
        directory = Path(tempfile.mkdtemp(prefix="txratchet-h2c-"))
        self.addCleanup(shutil.rmtree, directory, True)
        key, cert = makeCertificate(directory)
        self.cafile = str(cert)
        root = Resource()
        root.putChild(b"", Data(b"<h1>page</h1>", "text/html"))
        layer = WebSocket(app, **(layerOptions or {}))
        root.putChild(b"ws", WebSocketResource(layer))
        site = WebSocketSite(root, **siteOptions)
        build = site.buildProtocol

        def counting(addr: Any) -> Any:
            self.tcpConnections += 1
            return build(addr)

        site.buildProtocol = counting  # type: ignore[method-assign]
        spec = f"ssl:0:interface={HOST}:privateKey={key}:certKey={cert}"
        port = yield serverFromString(reactor, spec).listen(site)
        self.addCleanup(port.stopListening)
        self.addCleanup(self._dropAll, app)
        return f"wss://{HOST}:{port.getHost().port}/ws"

    def _dropAll(self, app: Any) -> Any:
        for conn in list(app.conns):
            conn.transport.abortConnection()
        # The pooled client connections are gone once their sockets are.
        lost = [proto.lost for proto in clienth2.pool.connections()]
        for proto in clienth2.pool.connections():
            proto.close()
        return deferLater(reactor, 0.05).addCallback(lambda _: lost)

    def connect(self, url: str, app: Any, **options: Any) -> Deferred[Any]:
        options.setdefault("caCertificates", self.cafile)
        options.setdefault("http2", True)
        return connectWebSocket(reactor, url, app, **options)

    @inlineCallbacks
    def waitFor(self, condition: Any, seconds: float = 10.0) -> Any:
        for _ in range(int(seconds / 0.02)):
            if condition():
                return
            yield deferLater(reactor, 0.02)
        self.fail("condition not met in time")

    @inlineCallbacks
    def test_severalSocketsOneConnection(self) -> Any:
        """
        Three sockets to the same server share one TCP (TLS) connection:
        each is a stream of it (server side), echoes text and binary, and
        says it runs over HTTP/2; the client closes them (1000, clean on
        both sides), and the connection closes with the last.
        """
        server = Recorder()
        url = yield self.serve(server)
        clients = [Client() for _ in range(3)]
        conns = yield self.gather([self.connect(url + f"?n={n}", c) for n, c in enumerate(clients)])
        self.assertEqual([c.httpVersion for c in conns], ["HTTP/2"] * 3)
        self.assertEqual(self.tcpConnections, 1)
        self.assertEqual(len(clienth2.pool.connections()), 1)
        h2conn = clienth2.pool.connections()[0]
        for n, conn in enumerate(conns):
            conn.send(f"text {n} ✓")
            conn.send(bytes([n]) * 100_000)
        for n, client in enumerate(clients):
            got = yield client.wait(2)
            self.assertEqual(got, [f"text {n} ✓", bytes([n]) * 100_000])
        self.assertEqual(len(server.conns), 3)
        self.assertEqual({c.httpVersion for c in server.conns}, {"HTTP/2"})
        self.assertEqual(len({c.transport.connection for c in server.conns}), 1)
        self.assertEqual(sorted(c.query for c in server.conns), ["n=0", "n=1", "n=2"])
        for conn in conns:
            conn.close(1000, "done")
        for client in clients:
            conn = yield client.closed.addTimeout(10, reactor)
            self.assertTrue(conn.wasClean)
            self.assertEqual(conn.closeCode, 1000)
        yield self.waitFor(lambda: len([e for e in server.events if e[0] == "close"]) == 3)
        self.assertEqual({(c.closeCode, c.wasClean) for c in server.conns}, {(1000, True)})
        yield h2conn.lost.addTimeout(10, reactor)
        self.assertEqual(clienth2.pool.connections(), [])

    def gather(self, ds: list[Deferred[Any]]) -> Deferred[list[Any]]:
        from twisted.internet.defer import gatherResults

        return gatherResults(ds, consumeErrors=True)

    @inlineCallbacks
    def test_streamLimit(self) -> Any:
        """
        Past the server's MAX_CONCURRENT_STREAMS (maxStreams=2), the pool
        opens a second connection for the third socket, even when all
        three asked before the server's SETTINGS came.
        """
        server = Recorder()
        url = yield self.serve(server, maxStreams=2)
        clients = [Client() for _ in range(3)]
        conns = yield self.gather([self.connect(url, c) for c in clients])
        self.assertEqual(self.tcpConnections, 2)
        self.assertEqual(len(clienth2.pool.connections()), 2)
        self.assertEqual(len({c.transport.connection for c in server.conns}), 2)
        for n, conn in enumerate(conns):
            conn.send(f"m{n}")
        for n, client in enumerate(clients):
            got = yield client.wait(1)
            self.assertEqual(got, [f"m{n}"])

    @inlineCallbacks
    def test_subprotocolAndCompression(self) -> Any:
        """
        The subprotocol and permessage-deflate are negotiated as over
        HTTP/1.1 (from the 200's headers).
        """
        server = Recorder()
        url = yield self.serve(server, {"subprotocols": ["chat", "other"]})
        client = Client(subprotocols=("nope", "chat"))
        conn = yield self.connect(url, client)
        self.assertEqual(conn.subprotocol, "chat")
        self.assertIsNotNone(conn.compression)
        self.assertEqual(conn.response.status, 200)
        message = "compress me " * 5000
        conn.send(message)
        got = yield client.wait(1)
        self.assertEqual(got, [message])
        self.assertEqual(server.conns[0].subprotocol, "chat")
        self.assertIsNotNone(server.conns[0].compression)

    @inlineCallbacks
    def test_serverClosesAndResets(self) -> Any:
        """
        A close the server starts reaches the client with its code (clean);
        a stream the server resets is a lost connection (not clean, 1006),
        and the other socket of the connection goes on.
        """
        server = Commands()
        url = yield self.serve(server)
        closing, resetting, other = Client(), Client(), Client()
        conns = yield self.gather([self.connect(url, c) for c in (closing, resetting, other)])
        conns[0].send("close")
        closed = yield closing.closed.addTimeout(10, reactor)
        self.assertEqual((closed.closeCode, closed.closeReason, closed.wasClean), (4000, "asked to", True))
        conns[1].send("reset")
        reset = yield resetting.closed.addTimeout(10, reactor)
        self.assertFalse(reset.wasClean)
        self.assertEqual(reset.closeCode, 1006)
        conns[2].send("still here")
        got = yield other.wait(1)
        self.assertEqual(got, ["still here"])
        self.assertEqual(self.tcpConnections, 1)

    @inlineCallbacks
    def test_refused(self) -> Any:
        """
        A CONNECT to a path without a socket: InvalidStatus with the status.
        """
        server = Recorder()
        url = yield self.serve(server)
        d = self.connect(url.replace("/ws", "/nowhere"), Client())
        failure = yield self.assertFailure(d, InvalidStatus)
        self.assertEqual(failure.status, 404)

    @inlineCallbacks
    def test_http11OnlyServer(self) -> Any:
        """
        A server that does not offer h2: http2=True fails with
        HTTP2Unavailable; http2=None falls back to HTTP/1.1.
        """
        server = Recorder()
        url = yield self.serve(server, http2=False)
        failure = yield self.assertFailure(self.connect(url, Client()), HTTP2Unavailable)
        self.assertIn("http/1.1", str(failure))
        conn = yield self.connect(url, Client(), http2=None)
        self.assertEqual(conn.httpVersion, "HTTP/1.1")
        conn.close()

    @inlineCallbacks
    def test_http2OffByDefault(self) -> Any:
        """
        Without http2=, the client upgrades over HTTP/1.1 as it always did.
        """
        server = Recorder()
        url = yield self.serve(server)
        client = Client()
        conn = yield connectWebSocket(reactor, url, client, caCertificates=self.cafile)
        self.assertEqual(conn.httpVersion, "HTTP/1.1")
        conn.send("hello")
        yield client.wait(1)
        self.assertEqual(server.conns[0].httpVersion, "HTTP/1.1")
        conn.close()
        yield client.closed.addTimeout(10, reactor)

    @inlineCallbacks
    def test_flowControl(self) -> Any:
        """
        While the server's handler is busy it does not take the stream's
        DATA, so the stream window runs out: that socket's writes are
        paused (writePaused) and queued, while another socket of the same
        connection goes on; once the server reads again, everything
        arrives in order and the pause ends.
        """
        gate: Deferred[None] = Deferred()

        class Slow(Recorder):
            async def onMessage(self, conn: Any, msg: str | bytes) -> Any:  # type: ignore[override]
                if conn.path == "/ws" and conn.query == "slow":
                    await gate
                return super().onMessage(conn, msg)

        server = Slow()
        url = yield self.serve(server)
        slow, fast = Client(), Client()
        slowConn, fastConn = yield self.gather(
            [self.connect(url + "?slow", slow, compression=None), self.connect(url, fast)]
        )
        lower = slowConn._outer
        chunk = b"x" * 50_000
        for _ in range(8):
            slowConn.send(chunk)
        yield self.waitFor(lambda: lower.writePaused)
        self.assertGreater(lower.transport.outSize, 0)
        fastConn.send("meanwhile")
        got = yield fast.wait(1)
        self.assertEqual(got, ["meanwhile"])
        self.assertEqual(slow.messages, [])
        gate.callback(None)
        got = yield slow.wait(8)
        self.assertEqual(got, [chunk] * 8)
        yield self.waitFor(lambda: not lower.writePaused)
        self.assertEqual(lower.transport.outSize, 0)
        self.assertEqual(self.tcpConnections, 1)

    @inlineCallbacks
    def test_busyClientHoldsItsStream(self) -> Any:
        """
        A client handler still busy (async onMessage) stops taking its
        stream's DATA: it waits unacknowledged, within the stream's window,
        while another socket of the connection goes on; then everything
        arrives in order.
        """
        gate: Deferred[None] = Deferred()

        class Busy(Client):
            async def onMessage(self, conn: Any, msg: str | bytes) -> None:  # type: ignore[override]
                await gate
                super().onMessage(conn, msg)

        server = Commands()
        url = yield self.serve(server)
        busy, other = Busy(), Client()
        busyConn, otherConn = yield self.gather(
            [self.connect(url, busy, compression=None), self.connect(url, other)]
        )
        busyConn.send("flood")
        stream = busyConn._outer.transport
        yield self.waitFor(lambda: stream._held)
        otherConn.send("meanwhile")
        got = yield other.wait(1)
        self.assertEqual(got, ["meanwhile"])
        self.assertEqual(busy.messages, [])
        h2conn = clienth2.pool.connections()[0]
        window = h2conn.streamWindow
        self.assertLessEqual(sum(len(d) for d, _ in stream._held), window)
        gate.callback(None)
        got = yield busy.wait(10)
        self.assertEqual(got, [str(n) * 200_000 for n in range(10)])

    @inlineCallbacks
    def test_service(self) -> Any:
        """
        WebSocketClientService(http2=True) keeps a socket over HTTP/2 open:
        after the server resets its stream, the next one opens (on a new
        HTTP/2 connection, the first one having closed with its last
        socket); stopping the service closes with 1001.
        """
        from txratchet.client import WebSocketClientService

        server = Commands()
        url = yield self.serve(server)
        client = Client()
        service = WebSocketClientService(
            reactor,
            url,
            client,
            http2=True,
            caCertificates=self.cafile,
            retryPolicy=lambda attempt: 0.05,
        )
        service.startService()
        self.addCleanup(service.stopService)
        first = yield service.whenOpen().addTimeout(10, reactor)
        self.assertEqual(first.httpVersion, "HTTP/2")
        first.send("reset")
        yield client.closed.addTimeout(10, reactor)
        client.closed = Deferred()
        yield self.waitFor(lambda: service.connection not in (None, first))
        second = service.connection
        self.assertEqual(second.httpVersion, "HTTP/2")
        second.send("again")
        got = yield client.wait(1)
        self.assertEqual(got, ["again"])
        yield service.stopService()
        closed = yield client.closed.addTimeout(10, reactor)
        self.assertEqual((closed.closeCode, closed.wasClean), (1001, True))
        yield deferLater(reactor, 0)  # out of the service's state machine

    @inlineCallbacks
    def test_badCertificate(self) -> Any:
        """
        A certificate that does not verify fails the connection with the
        TLS error, as over HTTP/1.1.
        """
        from OpenSSL.SSL import Error as TLSError

        server = Recorder()
        url = yield self.serve(server)
        yield self.assertFailure(
            connectWebSocket(reactor, url, Client(), http2=True), TLSError
        )

    def test_http2NeedsWss(self) -> None:
        """
        http2=True on a ws:// URL or an old version is refused at once.
        """
        with self.assertRaises(ValueError):
            connectWebSocket(reactor, "ws://127.0.0.1:1/", Client(), http2=True)
        with self.assertRaises(ValueError):
            connectWebSocket(reactor, "wss://127.0.0.1:1/", Client(), http2=True, version=8)




class HypercornTests(TestCase):
    """
    Against an independent server: Hypercorn (ASGI, RFC 8441), run as a
    subprocess with tests/hypercorn_echo.py.
    """

    timeout = 30

    @inlineCallbacks
    def setUp(self) -> Any:
        try:
            import hypercorn  # noqa: F401
        except ImportError:
            raise SkipTest("hypercorn is not installed (the test extra has it)") from None
        if clienth2 is None:
            raise SkipTest("h2 is not installed")
        directory = Path(tempfile.mkdtemp(prefix="txratchet-hypercorn-"))
        self.addCleanup(shutil.rmtree, directory, True)
        key, cert = makeCertificate(directory)
        self.cafile = str(cert)
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        root = Path(__file__).resolve().parent.parent
        process = subprocess.Popen(
            [sys.executable, "-m", "hypercorn", "--certfile", str(cert), "--keyfile", str(key),
             "--bind", f"{HOST}:{port}", "tests.hypercorn_echo:app"],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(self._stop, process)
        for _ in range(200):
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None:
                    self.fail("hypercorn exited")
                yield deferLater(reactor, 0.05)
        else:
            self.fail("hypercorn did not start")
        self.url = f"wss://{HOST}:{port}/echo"

    def _stop(self, process: subprocess.Popen[bytes]) -> None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    @inlineCallbacks
    def test_echoAndClose(self) -> Any:
        """
        Two sockets on one HTTP/2 connection to Hypercorn (its scope says
        HTTP/2), subprotocol and permessage-deflate negotiated, text and
        binary echoed; Hypercorn's close (4001) and ours (1000) are clean,
        and the connection closes with the last socket.
        """
        clients = [Client(subprotocols=("a", "b")), Client()]
        conns = yield gatherResults(
            [
                connectWebSocket(reactor, self.url, c, http2=True, caCertificates=self.cafile)
                for c in clients
            ],
            consumeErrors=True,
        )
        self.assertEqual([c.httpVersion for c in conns], ["HTTP/2", "HTTP/2"])
        self.assertEqual(len(clienth2.pool.connections()), 1)
        h2conn = clienth2.pool.connections()[0]
        self.assertEqual(conns[0].subprotocol, "b")
        self.assertIsNotNone(conns[0].compression)
        for conn in conns:
            conn.send("version")
            conn.send(b"\x00\xff" * 50_000)
        for client in clients:
            got = yield client.wait(2)
            self.assertEqual(got, ["2", b"\x00\xff" * 50_000])
        conns[0].send("close")
        conns[1].close(1000)
        for client, code in zip(clients, (4001, 1000), strict=True):
            closed = yield client.closed.addTimeout(10, reactor)
            self.assertEqual((closed.closeCode, closed.wasClean), (code, True))
        yield h2conn.lost.addTimeout(10, reactor)


class HandshakeTests(TestCase):
    """
    The sans-I/O side: ClientHandshake(http2=True) and
    WebSocketProtocol.responseReceived, without any I/O.
    """

    def test_request(self) -> None:
        """
        An extended CONNECT: pseudo-header fields first, :authority from
        the URL (or a Host given), no Upgrade/Connection/key, lower-case
        names; the request as a server would read it.
        """
        from txratchet.websocket.deflate import DEFAULT_OFFER
        from txratchet.websocket.handshake import ClientHandshake

        h = ClientHandshake(
            "wss://example.com:8443/chat?room=1",
            subprotocols=["a", "b"],
            compression=DEFAULT_OFFER,
            headers=[("X-Token", "t")],
            origin="https://example.com",
            http2=True,
        )
        self.assertEqual(h.data, b"")
        self.assertEqual(
            h.headerBlock[:5],
            [
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "https"),
                (":path", "/chat?room=1"),
                (":authority", "example.com:8443"),
            ],
        )
        names = [name for name, _ in h.headerBlock[5:]]
        self.assertEqual(names, [n.lower() for n in names])
        for absent in ("upgrade", "connection", "sec-websocket-key", "host"):
            self.assertNotIn(absent, names)
        fields = dict(h.headerBlock)
        self.assertEqual(fields["sec-websocket-version"], "13")
        self.assertEqual(fields["sec-websocket-protocol"], "a, b")
        self.assertEqual(fields["x-token"], "t")
        self.assertIn("permessage-deflate", fields["sec-websocket-extensions"])
        self.assertEqual((h.request.method, h.request.protocol), ("CONNECT", "websocket"))
        self.assertEqual((h.request.path, h.request.query), ("/chat", "room=1"))
        other = ClientHandshake("wss://10.0.0.1/", headers={"Host": "example.org"}, http2=True)
        self.assertEqual(dict(other.headerBlock)[":authority"], "example.org")
        with self.assertRaises(ValueError):
            ClientHandshake("wss://example.com/", version=8, http2=True)
        with self.assertRaises(ValueError):
            ClientHandshake("wss://example.com/", headers={"Keep-Alive": "5"}, http2=True)

    def test_responses(self) -> None:
        """
        200 opens (subprotocol and deflate checked as over HTTP/1.1); an
        unoffered subprotocol is InvalidResponse; a refusal waits for its
        body (Content-Length) or the stream's end.
        """
        from txratchet.errors import InvalidResponse
        from txratchet.websocket.events import Opened
        from txratchet.websocket.handshake import ClientHandshake
        from txratchet.websocket.protocol import CLIENT, OPEN, WebSocketProtocol

        proto = WebSocketProtocol(
            CLIENT, handshake=ClientHandshake("wss://h/", subprotocols=["a"], http2=True)
        )
        events = proto.responseReceived([(b":status", b"200"), (b"sec-websocket-protocol", b"a")])
        self.assertIsInstance(events[0], Opened)
        self.assertEqual((proto.state, proto.subprotocol, proto.response.status), (OPEN, "a", 200))

        wrong = ClientHandshake("wss://h/", subprotocols=["a"], http2=True)
        with self.assertRaises(InvalidResponse):
            wrong.receiveHeaders([(":status", "200"), ("sec-websocket-protocol", "z")])
        bad = ClientHandshake("wss://h/", http2=True)
        with self.assertRaises(InvalidResponse):
            bad.receiveHeaders([(":status", "2000")])

        refused = ClientHandshake("wss://h/", http2=True)
        self.assertIsNone(refused.receiveHeaders([(":status", "403"), ("content-length", "8")]))
        self.assertIsNone(refused.receive(b"go "))
        with self.assertRaises(InvalidStatus) as caught:
            refused.receive(b"away\n")
        self.assertEqual((caught.exception.status, caught.exception.body), (403, b"go away\n"))

        ended = ClientHandshake("wss://h/", http2=True)
        ended.receiveHeaders([(":status", "404")])
        ended.receive(b"nothing here")
        error = ended.connectionLost()
        self.assertIsInstance(error, InvalidStatus)
        self.assertEqual((error.status, error.body), (404, b"nothing here"))
        self.assertIsInstance(ClientHandshake("wss://h/", http2=True).connectionLost(), InvalidResponse)
