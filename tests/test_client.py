"""
End-to-end tests of L{txratchet.client}: the client against real servers
on 127.0.0.1 — txratchet's own (every version), Autobahn|Python's Twisted
server, the `websockets` library (in a child process), Node's `ws`
(tests/node/server.js), TLS with a self-signed certificate — plus the same
application on both ends, reconnection, the command-line client and
handshake failures.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from OpenSSL import SSL
from twisted.application.internet import backoffPolicy
from twisted.internet import endpoints, reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionRefusedError, ProcessDone, ProcessTerminated
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from examples.echo import Echo
from tests.tls import makeCertificate
from txratchet import Application, CloseConnection, SendMessage, Server, WebSocket
from txratchet.client import (
    HandshakeTimedOut,
    InvalidResponse,
    InvalidStatus,
    WebSocketClientService,
    connectWebSocket,
)
from txratchet.client.connect import loadCertificates
from txratchet.components import OriginCheck
from txratchet.websocket import RFC6455
from txratchet.websocket.handshake import GUID

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "tests" / "node"


def withTimeout(d: Deferred[Any], seconds: float, what: str) -> Deferred[Any]:
    """
    Fail C{d} with an explanation if it has not fired within C{seconds}.
    """

    def expire() -> None:
        if not d.called:
            d.errback(AssertionError(f"{what}: nothing after {seconds} s"))

    call = reactor.callLater(seconds, expire)  # type: ignore[attr-defined]

    def cancel(result: Any) -> Any:
        if call.active():
            call.cancel()
        return result

    return d.addBoth(cancel)


@inlineCallbacks
def waitGone(conn: Any, seconds: float = 5.0) -> Any:
    """
    Wait until C{conn}'s connection is gone (for applications that do not
    tell).
    """
    deadline = time.monotonic() + seconds
    while conn.state != 3:  # CLOSED
        if time.monotonic() > deadline:
            raise AssertionError(f"{conn!r} still not closed after {seconds} s")
        yield deferLater(reactor, 0.01, lambda: None)


class Collector(Application):
    """
    A client application that records what arrives and lets a test wait
    for it.
    """

    def __init__(self) -> None:
        self.opened: list[Any] = []
        self.messages: list[str | bytes] = []
        self.errors: list[Failure] = []
        self.closedConns: list[Any] = []
        self._messageWaiters: list[tuple[int, Deferred[list[str | bytes]]]] = []
        self._closeWaiters: list[Deferred[Any]] = []

    def onOpen(self, conn: Any) -> None:
        self.opened.append(conn)

    def onMessage(self, conn: Any, msg: str | bytes) -> None:
        self.messages.append(msg)
        waiting, self._messageWaiters = self._messageWaiters, []
        for count, d in waiting:
            if len(self.messages) >= count:
                d.callback(list(self.messages))
            else:
                self._messageWaiters.append((count, d))

    def onClose(self, conn: Any) -> None:
        self.closedConns.append(conn)
        waiting, self._closeWaiters = self._closeWaiters, []
        for d in waiting:
            d.callback(conn)

    def onError(self, conn: Any, failure: Failure) -> None:
        self.errors.append(failure)

    def waitMessages(self, count: int, seconds: float = 10.0) -> Deferred[list[str | bytes]]:
        d: Deferred[list[str | bytes]] = Deferred()
        if len(self.messages) >= count:
            d.callback(list(self.messages))
        else:
            self._messageWaiters.append((count, d))
        return withTimeout(d, seconds, f"waiting for {count} messages")

    def waitClosed(self, seconds: float = 10.0) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        if self.closedConns:
            d.callback(self.closedConns[-1])
        else:
            self._closeWaiters.append(d)
        return withTimeout(d, seconds, "waiting for onClose")


class EchoServerApp(Collector):
    """
    The server side: echoes, answers "whoami" with what the connection
    tells, closes with 4000 "bye" on "close-me".
    """

    def onMessage(self, conn: Any, msg: str | bytes) -> object:
        super().onMessage(conn, msg)
        if msg == "close-me":
            return CloseConnection(conn, 4000, "bye")
        if msg == "whoami":
            compression = conn.compression
            return SendMessage(
                conn,
                json.dumps(
                    {
                        "protocol": conn.protocol,
                        "path": conn.path,
                        "query": conn.query,
                        "cookies": conn.cookies,
                        "x-test": conn.headers.get("x-test"),
                        "origin": conn.headers.get("origin")
                        or conn.headers.get("sec-websocket-origin"),
                        "user-agent": conn.headers.get("user-agent"),
                        "subprotocol": conn.subprotocol,
                        "compression": None
                        if compression is None
                        else [
                            compression.serverNoContextTakeover,
                            compression.clientNoContextTakeover,
                            compression.serverMaxWindowBits,
                            compression.clientMaxWindowBits,
                        ],
                    }
                ),
            )
        return SendMessage(conn, msg)


class _CountingConn:
    """
    Wraps the bottom connection to count the bytes the server writes; it
    provides the whole L{txratchet.interfaces.LowerConnection} contract.
    """

    def __init__(self, conn: Any, tap: Tap) -> None:
        self._conn = conn
        self._tap = tap
        self.peer = conn.peer
        self.host = conn.host
        self.transport = conn.transport
        self.secure = conn.secure
        self.httpVersion = conn.httpVersion
        self.request = conn.request

    @property
    def writePaused(self) -> bool:
        return bool(self._conn.writePaused)

    @property
    def bufferedWhilePaused(self) -> int:
        return int(self._conn.bufferedWhilePaused)

    def cork(self) -> None:
        self._conn.cork()

    def uncork(self) -> None:
        self._conn.uncork()

    def send(self, data: bytes) -> None:
        self._tap.sent += len(data)
        self._conn.send(data)

    def close(self, *args: Any) -> None:
        self._conn.close()

    def closeWrite(self) -> None:
        self._conn.closeWrite()

    def abort(self) -> None:
        self._conn.abort()

    def pauseReading(self) -> None:
        self._conn.pauseReading()

    def resumeReading(self) -> None:
        self._conn.resumeReading()

    def respond(self, *args: Any) -> None:
        self._conn.respond(*args)


class Tap:
    """
    A decorator between L{Server} and L{WebSocket} that counts the bytes on
    the wire both ways (to see compression at work).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent = 0
        self.received = 0
        self._conns: dict[Any, _CountingConn] = {}

    def onOpen(self, conn: Any) -> object:
        wrapped = self._conns[conn] = _CountingConn(conn, self)
        return self.inner.onOpen(wrapped)

    def onMessage(self, conn: Any, data: bytes) -> object:
        self.received += len(data)
        return self.inner.onMessage(self._conns[conn], data)

    def onClose(self, conn: Any) -> object:
        return self.inner.onClose(self._conns.pop(conn))

    def onError(self, conn: Any, failure: Failure) -> object:
        return self.inner.onError(self._conns.get(conn, conn), failure)


class ChildServer(ProcessProtocol):
    """
    A server in a child process that prints one JSON line (with its port)
    once it listens, and exits when its stdin is closed.
    """

    def __init__(self) -> None:
        self.ready: Deferred[dict[str, Any]] = Deferred()
        self.ended: Deferred[None] = Deferred()
        self.out = b""
        self.err = b""

    def outReceived(self, data: bytes) -> None:
        self.out += data
        if not self.ready.called and b"\n" in self.out:
            self.ready.callback(json.loads(self.out.split(b"\n", 1)[0]))

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        if not self.ready.called:
            self.ready.errback(
                AssertionError(f"the server exited: {self.err.decode('utf-8', 'replace')}")
            )
        self.ended.callback(None)


class Collected(ProcessProtocol):
    """
    A child's whole output and exit status.
    """

    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.done: Deferred[tuple[bytes, bytes, int | None]] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        status: int | None = None
        if reason.check(ProcessDone):
            status = 0
        elif reason.check(ProcessTerminated):
            status = reason.value.exitCode
        self.done.callback((self.out, self.err, status))


class ClientTestCase(TestCase):
    timeout = 30

    @inlineCallbacks
    def listen(self, app: Any, port: int = 0) -> Any:
        """
        Serve C{Server(app)} on loopback; return the listening port.
        """
        listening = yield endpoints.TCP4ServerEndpoint(reactor, port, interface=HOST).listen(
            Server(app)
        )
        self.addCleanup(listening.stopListening)
        return listening

    @inlineCallbacks
    def serve(self, app: Any, **options: Any) -> Any:
        """
        Serve C{WebSocket(app, **options)}; return the base URL. Open
        connections are closed (and waited for) after the test.
        """
        layer = WebSocket(app, **options)
        self.addCleanup(layer.shutdown)
        port = yield self.listen(layer)
        return f"ws://{HOST}:{port.getHost().port}"

    @inlineCallbacks
    def connect(self, url: str, app: Collector, **options: Any) -> Any:
        """
        L{connectWebSocket}, closing the connection (and waiting for it to
        be gone) after the test.
        """
        conn = yield connectWebSocket(reactor, url, app, **options)

        @inlineCallbacks
        def closeIt() -> Any:
            if conn not in app.closedConns:
                conn.close()
                yield app.waitClosed()

        self.addCleanup(closeIt)
        return conn

    @inlineCallbacks
    def spawnServer(self, executable: str, args: list[str], path: str | None = None) -> Any:
        """
        Start a L{ChildServer}; return its ready line. It is stopped (stdin
        closed, killed if it lingers) after the test.
        """
        proto = ChildServer()
        transport = reactor.spawnProcess(  # type: ignore[attr-defined]
            proto, executable, [executable, *args], env=dict(os.environ), path=path
        )

        @inlineCallbacks
        def stop() -> Any:
            transport.closeStdin()
            killer = reactor.callLater(5, transport.signalProcess, "KILL")  # type: ignore[attr-defined]
            yield proto.ended
            if killer.active():
                killer.cancel()

        self.addCleanup(stop)
        ready = yield withTimeout(proto.ready, 15, f"starting {args}")
        return ready


class OwnServerTests(ClientTestCase):
    """
    Against txratchet's own server, every protocol family.
    """

    @inlineCallbacks
    def _echo(self, version: Any, expected: str) -> Any:
        server = EchoServerApp()
        url = yield self.serve(server)
        app = Collector()
        conn = yield self.connect(url + "/echo?room=1", app, version=version)
        self.assertEqual(conn.protocol, expected)
        self.assertEqual(app.opened, [conn])
        self.assertEqual((conn.path, conn.query, conn.params), ("/echo", "room=1", {"room": ["1"]}))
        big = "é" + "x" * (1 << 20)
        messages: list[str | bytes] = ["héllo ✓", "", big]
        if expected != "hixie-76":
            messages += [b"\x00\xffbinary", b"", bytes(range(256)) * 300]
        for m in messages:
            conn.send(m)
        got = yield app.waitMessages(len(messages))
        self.assertEqual(len(got), len(messages))
        for sent, received in zip(messages, got, strict=True):
            self.assertEqual(type(sent), type(received))
            self.assertTrue(sent == received, f"{sent[:20]!r}... came back different")
        conn.close(4001, "client done")
        closed = yield app.waitClosed()
        serverConn = yield server.waitClosed()
        self.assertIs(closed, conn)
        self.assertTrue(conn.wasClean)
        if expected != "hixie-76":
            self.assertEqual(conn.closeCode, 4001)
            self.assertEqual((serverConn.closeCode, serverConn.closeReason), (4001, "client done"))
        self.assertEqual(serverConn.protocol, expected)

    def test_echoRFC6455(self) -> Any:
        return self._echo(13, "rfc6455")

    def test_echoHybi08(self) -> Any:
        return self._echo(8, "hybi-08")

    def test_echoHybi07(self) -> Any:
        return self._echo("7", "hybi-07")

    def test_echoHixie76(self) -> Any:
        return self._echo("hixie-76", "hixie-76")

    @inlineCallbacks
    def test_whatTheServerSees(self) -> Any:
        """
        Subprotocol, cookies, extra headers and origin reach the server, in
        every family (version 8 sends Sec-WebSocket-Origin).
        """
        server = EchoServerApp()
        url = yield self.serve(server, subprotocols=["superchat", "chat"])
        for version, family in ((13, "rfc6455"), (8, "hybi-08"), ("hixie-76", "hixie-76")):
            app = Collector()
            conn = yield self.connect(
                url + "/who?x=1",
                app,
                version=version,
                subprotocols=["chat", "superchat"],
                cookies={"session": "abc123", "theme": "dark"},
                headers=[("X-Test", "txratchet-client")],
                origin="http://example.com",
            )
            self.assertEqual(conn.subprotocol, "chat")
            conn.send("whoami")
            (answer,) = yield app.waitMessages(1)
            who = json.loads(answer)
            self.assertEqual(who["protocol"], family)
            self.assertEqual((who["path"], who["query"]), ("/who", "x=1"))
            self.assertEqual(who["cookies"], {"session": "abc123", "theme": "dark"})
            self.assertEqual(who["x-test"], "txratchet-client")
            self.assertEqual(who["origin"], "http://example.com")
            self.assertEqual(who["user-agent"], "txratchet")
            self.assertEqual(who["subprotocol"], "chat")
            conn.close()
            yield app.waitClosed()

    @inlineCallbacks
    def test_deflateNegotiatedAndUsed(self) -> Any:
        """
        permessage-deflate is offered by default and compresses both ways:
        far fewer bytes cross the wire than the messages hold.
        """
        server = EchoServerApp()
        layer = WebSocket(server)
        self.addCleanup(layer.shutdown)
        tap = Tap(layer)
        port = yield self.listen(tap)
        app = Collector()
        conn = yield self.connect(f"ws://{HOST}:{port.getHost().port}/", app)
        self.assertIsNotNone(conn.compression)
        conn.send("whoami")
        (answer,) = yield app.waitMessages(1)
        serverSide = json.loads(answer)["compression"]
        mine = conn.compression
        self.assertEqual(
            serverSide,
            [
                mine.serverNoContextTakeover,
                mine.clientNoContextTakeover,
                mine.serverMaxWindowBits,
                mine.clientMaxWindowBits,
            ],
        )
        sentBefore, receivedBefore = tap.sent, tap.received
        text = json.dumps([{"user": "alice", "text": "hello everybody", "n": i} for i in range(4000)])
        binary = b"\x00\x01\x02\x03" * 50000
        for m in (text, binary, text):
            conn.send(m)
        got = yield app.waitMessages(4)
        self.assertEqual(got[1:], [text, binary, text])
        payload = 2 * len(text) + len(binary)
        self.assertLess(tap.received - receivedBefore, payload // 10)
        self.assertLess(tap.sent - sentBefore, payload // 10)

    @inlineCallbacks
    def test_noCompression(self) -> Any:
        server = EchoServerApp()
        url = yield self.serve(server)
        app = Collector()
        conn = yield self.connect(url, app, compression=None)
        self.assertIsNone(conn.compression)
        self.assertNotIn("sec-websocket-extensions", conn.response.headers)
        conn.send("x" * 1000)
        got = yield app.waitMessages(1)
        self.assertEqual(got, ["x" * 1000])

    @inlineCallbacks
    def test_serverCloses(self) -> Any:
        """
        The server's close code and reason reach C{conn.closeCode} and
        C{conn.closeReason}; the client waits for the server to close TCP.
        """
        server = EchoServerApp()
        url = yield self.serve(server)
        for version in (13, 8):
            app = Collector()
            conn = yield self.connect(url, app, version=version)
            conn.send("close-me")
            closed = yield app.waitClosed()
            self.assertEqual((closed.closeCode, closed.closeReason, closed.wasClean), (4000, "bye", True))
        app = Collector()
        conn = yield self.connect(url, app, version="hixie-76")
        conn.send("close-me")
        closed = yield app.waitClosed()
        self.assertTrue(closed.wasClean)

    @inlineCallbacks
    def test_serverShutdown(self) -> Any:
        """
        A server going away (1001) is a clean close for the client.
        """
        server = EchoServerApp()
        layer = WebSocket(server)
        port = yield self.listen(layer)
        app = Collector()
        conn = yield self.connect(f"ws://{HOST}:{port.getHost().port}/", app)
        yield layer.shutdown()
        closed = yield app.waitClosed()
        self.assertIs(closed, conn)
        self.assertEqual((conn.closeCode, conn.closeReason, conn.wasClean), (1001, "Server shutting down", True))

    @inlineCallbacks
    def test_keepalive(self) -> Any:
        """
        Client keepalive pings (masked) are answered by the server.
        """
        server = EchoServerApp()
        url = yield self.serve(server)
        app = Collector()
        conn = yield self.connect(url, app, pingInterval=0.05, pingTimeout=0.5)
        yield deferLater(reactor, 0.4, lambda: None)
        self.assertEqual(app.closedConns, [])
        conn.send("still here")
        got = yield app.waitMessages(1)
        self.assertEqual(got, ["still here"])

    @inlineCallbacks
    def test_commandsFromClientHandlers(self) -> Any:
        """
        Client handlers may return commands, executed as on a server.
        """

        class Greeter(Collector):
            def onOpen(self, conn: Any) -> object:
                super().onOpen(conn)
                return SendMessage(conn, "hello from onOpen")

            def onMessage(self, conn: Any, msg: str | bytes) -> object:
                super().onMessage(conn, msg)
                return CloseConnection(conn, 4005, "got it")

        server = EchoServerApp()
        url = yield self.serve(server)
        app = Greeter()
        conn = yield self.connect(url, app)
        closed = yield app.waitClosed()
        self.assertIs(closed, conn)
        self.assertEqual(app.messages, ["hello from onOpen"])
        serverConn = yield server.waitClosed()
        self.assertEqual((serverConn.closeCode, serverConn.closeReason), (4005, "got it"))


class AutobahnEcho(WebSocketServerProtocol):
    def onConnect(self, request: Any) -> Any:
        self.factory.requests.append(request)
        if request.protocols:
            return request.protocols[0]
        return None

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not isBinary and payload == b"close-me":
            self.sendClose(4000, "bye")
            return
        self.sendMessage(payload, isBinary)


class AutobahnTests(ClientTestCase):
    """
    Against Autobahn|Python's Twisted server (versions 8 and 13).
    """

    @inlineCallbacks
    def _autobahn(self, version: int, expected: str) -> Any:
        factory = WebSocketServerFactory()
        factory.protocol = AutobahnEcho
        factory.requests = []

        def accept(offers: list[Any]) -> Any:
            for offer in offers:
                if isinstance(offer, PerMessageDeflateOffer):
                    return PerMessageDeflateOfferAccept(offer)
            return None

        factory.setProtocolOptions(perMessageCompressionAccept=accept)
        port = yield endpoints.TCP4ServerEndpoint(reactor, 0, interface=HOST).listen(factory)
        self.addCleanup(port.stopListening)
        url = f"ws://{HOST}:{port.getHost().port}/ab"
        app = Collector()
        conn = yield self.connect(
            url,
            app,
            version=version,
            subprotocols=["chat"],
            cookies={"session": "abc"},
            headers={"X-Test": "autobahn"},
        )
        self.assertEqual(conn.protocol, expected)
        self.assertEqual(conn.subprotocol, "chat")
        self.assertIsNotNone(conn.compression)
        request = factory.requests[0]
        self.assertEqual(request.headers["cookie"], "session=abc")
        self.assertEqual(request.headers["x-test"], "autobahn")
        self.assertEqual(request.version, version)
        messages: list[str | bytes] = ["text ✓", b"\x01\x02", "y" * 70000, b"z" * 200000]
        for m in messages:
            conn.send(m)
        got = yield app.waitMessages(len(messages))
        self.assertEqual(got, messages)
        conn.send("close-me")
        closed = yield app.waitClosed()
        self.assertEqual((closed.closeCode, closed.closeReason, closed.wasClean), (4000, "bye", True))

    def test_rfc6455(self) -> Any:
        return self._autobahn(13, "rfc6455")

    def test_hybi08(self) -> Any:
        return self._autobahn(8, "hybi-08")

    @inlineCallbacks
    def test_clientCloses(self) -> Any:
        factory = WebSocketServerFactory()
        factory.protocol = AutobahnEcho
        factory.requests = []
        port = yield endpoints.TCP4ServerEndpoint(reactor, 0, interface=HOST).listen(factory)
        self.addCleanup(port.stopListening)
        app = Collector()
        conn = yield self.connect(f"ws://{HOST}:{port.getHost().port}/", app)
        self.assertIsNone(conn.compression)  # this server declines it
        conn.close(1000, "done")
        closed = yield app.waitClosed()
        self.assertEqual((closed.closeCode, closed.wasClean), (1000, True))


WEBSOCKETS_SERVER = r"""
import asyncio, json, sys
from websockets.asyncio.server import serve

async def handler(ws):
    if ws.request.path == "/close":
        await ws.close(4000, "bye")
        return
    async for message in ws:
        if message == "whoami":
            await ws.send(json.dumps({
                "path": ws.request.path,
                "headers": {k.lower(): v for k, v in ws.request.headers.raw_items()},
                "subprotocol": ws.subprotocol,
                "extensions": [e.name for e in ws.protocol.extensions],
            }))
        elif message == "close-me":
            await ws.close(4000, "bye")
        else:
            await ws.send(message)

async def main():
    async with serve(handler, "127.0.0.1", 0, compression="deflate",
                     subprotocols=["chat", "superchat"], max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


class WebsocketsTests(ClientTestCase):
    """
    Against the `websockets` library's asyncio server, compression on.
    """

    @inlineCallbacks
    def test_echoCompressedAndClose(self) -> Any:
        ready = yield self.spawnServer(sys.executable, ["-c", WEBSOCKETS_SERVER])
        url = f"ws://{HOST}:{ready['port']}"
        app = Collector()
        conn = yield self.connect(
            url + "/ws", app, subprotocols=["superchat"], cookies="a=1; b=2",
            headers=[("X-Test", "websockets")],
        )
        self.assertEqual(conn.subprotocol, "superchat")
        self.assertIsNotNone(conn.compression)
        conn.send("whoami")
        (answer,) = yield app.waitMessages(1)
        who = json.loads(answer)
        self.assertEqual(who["extensions"], ["permessage-deflate"])
        self.assertEqual(who["headers"]["cookie"], "a=1; b=2")
        self.assertEqual(who["headers"]["x-test"], "websockets")
        self.assertEqual(who["subprotocol"], "superchat")
        messages: list[str | bytes] = ["héllo", b"\x00\x01", "w" * 300000, bytes(100000)]
        for m in messages:
            conn.send(m)
        got = yield app.waitMessages(1 + len(messages))
        self.assertEqual(got[1:], messages)
        conn.send("close-me")
        closed = yield app.waitClosed()
        self.assertEqual((closed.closeCode, closed.closeReason, closed.wasClean), (4000, "bye", True))

        # A server that closes right after the handshake.
        app = Collector()
        yield self.connect(url + "/close", app, subprotocols=["chat"])
        closed = yield app.waitClosed()
        self.assertEqual((closed.closeCode, closed.closeReason), (4000, "bye"))


class NodeTests(ClientTestCase):
    """
    Against Node's `ws` server (tests/node/server.js).
    """

    @inlineCallbacks
    def test_node(self) -> Any:
        node = shutil.which("node")
        if node is None or not (NODE_DIR / "node_modules" / "ws").is_dir():
            self.fail("Node.js and `npm ci --prefix tests/node` are needed")
        ready = yield self.spawnServer(node, [str(NODE_DIR / "server.js")], path=str(NODE_DIR))
        url = f"ws://{HOST}:{ready['port']}"
        app = Collector()
        conn = yield self.connect(
            url + "/echo?q=1", app, subprotocols=["chat"], cookies={"session": "abc123"},
            headers={"X-Test": "node"},
        )
        self.assertEqual(conn.subprotocol, "chat")
        self.assertIsNotNone(conn.compression)
        conn.send("whoami")
        (answer,) = yield app.waitMessages(1)
        who = json.loads(answer)
        self.assertEqual(who["url"], "/echo?q=1")
        self.assertEqual(who["headers"]["cookie"], "session=abc123")
        self.assertEqual(who["headers"]["x-test"], "node")
        self.assertEqual(who["protocol"], "chat")
        self.assertIn("permessage-deflate", who["extensions"])
        messages: list[str | bytes] = ["κόσμε", b"\xff\x00", "n" * 200000, b"b" * 100000]
        for m in messages:
            conn.send(m)
        got = yield app.waitMessages(1 + len(messages))
        self.assertEqual(got[1:], messages)
        conn.send("close-me")
        closed = yield app.waitClosed()
        self.assertEqual((closed.closeCode, closed.closeReason, closed.wasClean), (4000, "bye", True))

        app = Collector()
        yield self.connect(url + "/close", app)
        closed = yield app.waitClosed()
        self.assertEqual((closed.closeCode, closed.closeReason, closed.wasClean), (4000, "bye", True))


class TLSTests(ClientTestCase):
    """
    wss:// with a self-signed certificate.
    """

    @inlineCallbacks
    def setUp(self) -> Any:
        directory = Path(tempfile.mkdtemp(prefix="txratchet-client-"))
        self.addCleanup(shutil.rmtree, directory, True)
        self.key, self.cert = makeCertificate(directory)
        self.server = EchoServerApp()
        layer = WebSocket(self.server)
        self.addCleanup(layer.shutdown)
        port = yield endpoints.serverFromString(
            reactor, f"ssl:0:interface={HOST}:privateKey={self.key}:certKey={self.cert}"
        ).listen(Server(layer))
        self.addCleanup(port.stopListening)
        self.url = f"wss://{HOST}:{port.getHost().port}/secure"

    @inlineCallbacks
    def test_verifiedWithCustomCA(self) -> Any:
        app = Collector()
        conn = yield self.connect(self.url, app, caCertificates=str(self.cert))
        self.assertTrue(ISSLTransport.providedBy(conn.transport))
        conn.send("over TLS")
        got = yield app.waitMessages(1)
        self.assertEqual(got, ["over TLS"])
        self.assertTrue(self.server.opened[0]._outer.secure)

    @inlineCallbacks
    def test_tlsOptions(self) -> Any:
        from twisted.internet.ssl import trustRootFromCertificates

        options = optionsForClientTLS(
            HOST, trustRoot=trustRootFromCertificates(loadCertificates(self.cert.read_bytes()))
        )
        app = Collector()
        conn = yield self.connect(self.url, app, tlsOptions=options, version="hixie-76")
        self.assertEqual(conn.protocol, "hixie-76")
        conn.send("hixie over TLS")
        got = yield app.waitMessages(1)
        self.assertEqual(got, ["hixie over TLS"])

    @inlineCallbacks
    def test_refusedWithoutTheCA(self) -> Any:
        app = Collector()
        d = connectWebSocket(reactor, self.url, app)
        failure = yield self.assertFailure(d, SSL.Error)
        self.assertIn("certificate verify failed", str(failure))
        self.assertEqual(app.opened, [])
        self.assertEqual(self.server.opened, [])


class Counter(Application):
    """
    The same class on both ends: answers n with n + 1, and closes once it
    receives LIMIT.
    """

    LIMIT = 20

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.closed: Deferred[Any] = Deferred()

    def onMessage(self, conn: Any, msg: str | bytes) -> object:
        n = int(msg)
        self.seen.append(n)
        if n >= self.LIMIT:
            return CloseConnection(conn, 1000, "done")
        return SendMessage(conn, str(n + 1))

    def onClose(self, conn: Any) -> None:
        self.closed.callback(conn)


class SameApplicationTests(ClientTestCase):
    """
    An application class works unchanged as server and as client.
    """

    @inlineCallbacks
    def test_counterBothEnds(self) -> Any:
        serverApp = Counter()
        url = yield self.serve(serverApp)
        clientApp = Counter()
        conn = yield connectWebSocket(reactor, url, clientApp)
        conn.send("0")
        clientConn = yield withTimeout(clientApp.closed, 10, "client close")
        serverConn = yield withTimeout(serverApp.closed, 10, "server close")
        self.assertEqual(serverApp.seen, list(range(0, 21, 2)))
        self.assertEqual(clientApp.seen, list(range(1, 20, 2)))
        self.assertEqual((clientConn.closeCode, clientConn.closeReason), (1000, "done"))
        self.assertEqual(serverConn.closeCode, 1000)

    @inlineCallbacks
    def test_exampleEchoAsClient(self) -> Any:
        """
        examples/echo.py's Echo, as a client, echoes what the server sends.
        """

        class Greeter(Collector):
            def onOpen(self, conn: Any) -> object:
                super().onOpen(conn)
                return SendMessage(conn, "ping ✓")

            def onMessage(self, conn: Any, msg: str | bytes) -> object:
                super().onMessage(conn, msg)
                if len(self.messages) < 3:
                    return SendMessage(conn, msg + ("!" if isinstance(msg, str) else b"!"))
                return CloseConnection(conn, 4010, "enough")

        server = Greeter()
        url = yield self.serve(server)
        conn = yield connectWebSocket(reactor, url, Echo())
        yield server.waitClosed()
        yield waitGone(conn)
        self.assertEqual(server.messages, ["ping ✓", "ping ✓!", "ping ✓!!"])
        self.assertEqual(conn.closeCode, 4010)


class Subscriber(Collector):
    """
    Subscribes in C{onOpen}: redone on every new connection.
    """

    def onOpen(self, conn: Any) -> object:
        super().onOpen(conn)
        return SendMessage(conn, "subscribe")


class ReconnectTests(ClientTestCase):
    @inlineCallbacks
    def test_reconnectAfterServerRestart(self) -> Any:
        started = time.monotonic()
        first = EchoServerApp()
        firstLayer = WebSocket(first)
        port = yield self.listen(firstLayer)
        number = port.getHost().port
        attempts: list[tuple[int, float]] = []
        policy = backoffPolicy(
            initialDelay=0.05, maxDelay=0.4, factor=2, jitter=lambda: random.random() * 0.02
        )

        def retryPolicy(attempt: int) -> float:
            delay = policy(attempt)
            attempts.append((attempt, delay))
            return delay

        reconnected: Deferred[Any] = Deferred()

        def onReconnect(conn: Any) -> object:
            reconnected.callback(conn)
            return SendMessage(conn, "resubscribed")

        app = Subscriber()
        service = WebSocketClientService(
            reactor, f"ws://{HOST}:{number}/feed", app, retryPolicy=retryPolicy,
            onReconnect=onReconnect,
        )
        service.startService()
        self.addCleanup(service.stopService)
        conn1 = yield withTimeout(service.whenOpen(), 5, "first connection")
        self.assertIs(service.connection, conn1)
        got = yield first.waitMessages(1)
        self.assertEqual(got, ["subscribe"])

        # The server goes away; the client keeps trying with growing delays.
        yield port.stopListening()
        yield firstLayer.shutdown()
        closed = yield app.waitClosed()
        self.assertEqual(closed.closeCode, 1001)
        deadline = time.monotonic() + 5
        while len(attempts) < 3 and time.monotonic() < deadline:
            yield deferLater(reactor, 0.02, lambda: None)
        self.assertGreaterEqual(len(attempts), 3)
        delays = [d for _, d in attempts]
        self.assertEqual([a for a, _ in attempts], list(range(1, len(attempts) + 1)))
        self.assertLess(delays[0], delays[1])
        self.assertLess(delays[1], delays[2])

        # Back on the same port: the client reconnects and resubscribes.
        second = EchoServerApp()
        yield self.serve_on(second, number)
        conn2 = yield withTimeout(reconnected, 5, "reconnection")
        self.assertIsNot(conn2, conn1)
        self.assertEqual(app.opened, [conn1, conn2])
        got = yield second.waitMessages(2)
        self.assertEqual(got, ["subscribe", "resubscribed"])
        opened = yield service.whenOpen()
        self.assertIs(opened, conn2)
        self.assertEqual(service.openCount, 2)

        # Stopping the service closes the connection cleanly (1001).
        yield service.stopService()
        closed = yield app.waitClosed()
        self.assertIs(closed, conn2)
        serverConn = yield second.waitClosed()
        self.assertEqual((serverConn.closeCode, conn2.wasClean), (1001, True))
        self.assertLess(time.monotonic() - started, 10)

    @inlineCallbacks
    def serve_on(self, app: Any, number: int) -> Any:
        layer = WebSocket(app)
        self.addCleanup(layer.shutdown)
        yield self.listen(layer, number)

    @inlineCallbacks
    def test_refusedHandshakesAreRetried(self) -> Any:
        """
        A refused handshake counts as a failed attempt; whenOpen can give up.
        """
        url = yield self.serve(OriginCheck(EchoServerApp(), ["example.com"]))
        app = Collector()
        service = WebSocketClientService(
            reactor, url, app, origin="http://evil.example",
            retryPolicy=backoffPolicy(initialDelay=0.02, maxDelay=0.05, jitter=lambda: 0),
        )
        service.startService()
        self.addCleanup(service.stopService)
        failure = yield self.assertFailure(service.whenOpen(failAfterFailures=3), InvalidStatus)
        self.assertEqual(failure.status, 403)
        self.assertEqual(app.opened, [])
        # (ClientService cannot be stopped from inside its own callbacks.)
        yield deferLater(reactor, 0, lambda: None)


class CommandLineTests(ClientTestCase):
    """
    C{python -m txratchet.client} as a child process.
    """

    @inlineCallbacks
    def runClient(self, args: list[str], stdin: bytes) -> Any:
        proto = Collected()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        transport = reactor.spawnProcess(  # type: ignore[attr-defined]
            proto, sys.executable, [sys.executable, "-m", "txratchet.client", *args], env=env
        )
        transport.write(stdin)
        transport.closeStdin()
        killer = reactor.callLater(15, transport.signalProcess, "KILL")  # type: ignore[attr-defined]
        result = yield proto.done
        if killer.active():
            killer.cancel()
        return result

    @inlineCallbacks
    def test_echoTwoLines(self) -> Any:
        server = EchoServerApp()
        url = yield self.serve(server)
        out, err, status = yield self.runClient([url + "/cli"], "hello\nwörld ✓\n".encode())
        self.assertEqual(out.decode("utf-8"), "hello\nwörld ✓\n", err)
        self.assertEqual(status, 0, err)
        self.assertIn(b"Connected to", err)
        self.assertEqual(server.messages, ["hello", "wörld ✓"])

    @inlineCallbacks
    def test_optionsAndBinary(self) -> Any:
        server = EchoServerApp()
        url = yield self.serve(server, subprotocols=["chat"])
        out, err, status = yield self.runClient(
            [url, "-V", "8", "-p", "chat", "-H", "X-Test: cli", "-c", "k=v",
             "--send-binary", "-b", "hex", "-q"],
            b"abc\n\x00\x01",
        )
        self.assertEqual((out, err, status), (b"616263\n0001\n", b"", 0))
        conn = server.opened[0]
        self.assertEqual(
            (conn.protocol, conn.subprotocol, conn.headers.get("x-test"), conn.cookies),
            ("hybi-08", "chat", "cli", {"k": "v"}),
        )

    @inlineCallbacks
    def test_serverClosesFirst(self) -> Any:
        server = EchoServerApp()
        url = yield self.serve(server)
        out, err, status = yield self.runClient([url, "-V", "hixie-76"], b"one\nclose-me\ntwo\n")
        self.assertEqual(out, b"one\n")
        self.assertEqual(status, 0, err)

    @inlineCallbacks
    def test_refused(self) -> Any:
        url = yield self.serve(OriginCheck(EchoServerApp(), ["example.com"]))
        _out, err, status = yield self.runClient([url, "-o", "http://evil.example"], b"x\n")
        self.assertEqual(status, 1)
        self.assertIn(b"403", err)

    @inlineCallbacks
    def test_passwordIsNeverPrinted(self) -> Any:
        """
        The URL's password is shown as *** in what the command prints
        (issue 12, item 27): a closed port, and a URL it refuses.
        """
        listening = yield endpoints.TCP4ServerEndpoint(reactor, 0, interface=HOST).listen(Factory())
        closed = listening.getHost().port
        yield listening.stopListening()
        for url, expected in (
            (f"ws://alice:s3cret@{HOST}:{closed}/", b"Could not connect to ws://alice:***@"),
            (f"ws://alice:s3cret@{HOST}:99999/", b"'ws://alice:***@127.0.0.1:99999/'"),
        ):
            out, err, status = yield self.runClient([url], b"")
            self.assertEqual(status, 1 if b"Could" in expected else 2, err)
            self.assertNotIn(b"s3cret", out + err)
            self.assertIn(expected, err)


def _acceptFor(head: bytes) -> str:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            return base64.b64encode(hashlib.sha1(value.strip() + GUID).digest()).decode()
    return ""


class RawServer(Protocol):
    """
    Reads a request head and answers with C{factory.answer(head)}.
    """

    def connectionMade(self) -> None:
        self.buffer = b""
        self.factory.protocols.append(self)
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        if self.buffer is None:
            self.received += data
            return
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            head = self.buffer.split(b"\r\n\r\n", 1)[0]
            self.buffer = None
            answer = self.factory.answer(head)
            if answer is not None:
                self.transport.write(answer)

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.lost.append(reason)


class HandshakeFailureTests(ClientTestCase):
    @inlineCallbacks
    def rawServer(self, answer: Any) -> Any:
        factory = Factory.forProtocol(RawServer)
        factory.answer = answer
        factory.protocols = []
        factory.lost = []
        port = yield self.listen_raw(factory)
        self.rawFactory = factory

        def dropAll() -> Any:
            for proto in factory.protocols:
                proto.transport.abortConnection()
            return deferLater(reactor, 0.01, lambda: None)

        self.addCleanup(dropAll)
        return f"ws://{HOST}:{port.getHost().port}/raw"

    @inlineCallbacks
    def listen_raw(self, factory: Any) -> Any:
        port = yield endpoints.TCP4ServerEndpoint(reactor, 0, interface=HOST).listen(factory)
        self.addCleanup(port.stopListening)
        return port

    @inlineCallbacks
    def test_403(self) -> Any:
        url = yield self.serve(OriginCheck(EchoServerApp(), ["example.com"]))
        app = Collector()
        d = connectWebSocket(reactor, url, app, origin="http://evil.example")
        error = yield self.assertFailure(d, InvalidStatus)
        self.assertEqual(error.status, 403)
        self.assertIn("403", str(error))
        self.assertIn("Origin not allowed: http://evil.example", str(error))
        self.assertIn(b"Origin not allowed", error.body)
        self.assertEqual(app.opened, [])
        self.assertEqual(app.closedConns, [])

    @inlineCallbacks
    def test_426(self) -> Any:
        url = yield self.serve(EchoServerApp(), families=(RFC6455,))
        d = connectWebSocket(reactor, url, Collector(), version=8)
        error = yield self.assertFailure(d, InvalidStatus)
        self.assertEqual(error.status, 426)
        self.assertEqual(error.headers.get("sec-websocket-version"), "13")
        self.assertIn("426 Upgrade Required", str(error))

    @inlineCallbacks
    def test_wrongAcceptKey(self) -> Any:
        url = yield self.rawServer(
            lambda head: b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        )
        app = Collector()
        error = yield self.assertFailure(connectWebSocket(reactor, url, app), InvalidResponse)
        self.assertIn("Wrong Sec-WebSocket-Accept", str(error))
        self.assertEqual(error.status, 101)
        self.assertEqual(app.opened, [])

    def _good(self, extra: bytes = b"", after: bytes = b"") -> Any:
        def answer(head: bytes) -> bytes:
            return (
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + _acceptFor(head).encode()
                + b"\r\n"
                + extra
                + b"\r\n"
                + after
            )

        return answer

    @inlineCallbacks
    def test_subprotocolNotOffered(self) -> Any:
        url = yield self.rawServer(self._good(b"Sec-WebSocket-Protocol: nope\r\n"))
        d = connectWebSocket(reactor, url, Collector(), subprotocols=["chat"])
        error = yield self.assertFailure(d, InvalidResponse)
        self.assertIn("'nope'", str(error))

    @inlineCallbacks
    def test_extensionNotOffered(self) -> Any:
        url = yield self.rawServer(self._good(b"Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n"))
        d = connectWebSocket(reactor, url, Collector())
        error = yield self.assertFailure(d, InvalidResponse)
        self.assertIn("x-webkit-deflate-frame", str(error))

    @inlineCallbacks
    def test_framesRightAfterTheResponse(self) -> Any:
        """
        Frames in the same packet as the response reach the application
        right after onOpen.
        """
        url = yield self.rawServer(self._good(after=b"\x81\x05early\x82\x02\x00\x01"))
        app = Collector()
        conn = yield self.connect(url, app, compression=None, closeTimeout=0.1)
        self.assertEqual(app.messages, ["early", b"\x00\x01"])
        self.assertEqual(app.opened, [conn])

    @inlineCallbacks
    def test_maskedServerFrame(self) -> Any:
        """
        A server must not mask: the client fails the connection with 1002.
        """
        key = b"\x01\x02\x03\x04"
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(b"hi"))
        url = yield self.rawServer(self._good(after=b"\x81\x82" + key + masked))
        app = Collector()
        conn = yield connectWebSocket(reactor, url, app, compression=None, closeTimeout=0.5)
        closed = yield app.waitClosed()
        self.assertIs(closed, conn)
        self.assertEqual(app.messages, [])
        self.assertEqual((conn.closeCode, conn.closeReason), (1002, "Server frame masked"))
        # Our close frame went out, masked.
        sent = self.rawFactory.protocols[0].received
        self.assertEqual(sent[:2], b"\x88\x95")
        payload = bytes(b ^ sent[2 + i % 4] for i, b in enumerate(sent[6:]))
        self.assertEqual(payload, struct.pack(">H", 1002) + b"Server frame masked")

    @inlineCallbacks
    def test_timeout(self) -> Any:
        url = yield self.rawServer(lambda head: None)
        d = connectWebSocket(reactor, url, Collector(), handshakeTimeout=0.2)
        error = yield self.assertFailure(d, HandshakeTimedOut)
        self.assertIn("0.2 s", str(error))

    @inlineCallbacks
    def test_closedBeforeAnswering(self) -> Any:
        def dropSoon(head: bytes) -> bytes:
            reactor.callLater(0.05, self.rawFactory.protocols[0].transport.loseConnection)  # type: ignore[attr-defined]
            return b"HTTP/1.1 101 Swi"

        url = yield self.rawServer(dropSoon)
        d = connectWebSocket(reactor, url, Collector())
        error = yield self.assertFailure(d, InvalidResponse)
        self.assertIn("in the middle of the server's answer", str(error))

    @inlineCallbacks
    def test_oversizedResponse(self) -> Any:
        url = yield self.rawServer(lambda head: b"HTTP/1.1 101 OK\r\nX: " + b"a" * 20000)
        d = connectWebSocket(reactor, url, Collector())
        error = yield self.assertFailure(d, InvalidResponse)
        self.assertIn("larger than 16384 bytes", str(error))

    @inlineCallbacks
    def test_connectionRefused(self) -> Any:
        port = yield self.listen_raw(Factory.forProtocol(Protocol))
        number = port.getHost().port
        yield port.stopListening()
        d = connectWebSocket(reactor, f"ws://{HOST}:{number}/", Collector())
        yield self.assertFailure(d, ConnectionRefusedError)

    @inlineCallbacks
    def test_cancel(self) -> Any:
        """
        Cancelling the Deferred during the handshake drops the connection.
        """
        url = yield self.rawServer(lambda head: None)
        app = Collector()
        d = connectWebSocket(reactor, url, app)
        yield deferLater(reactor, 0.1, lambda: None)
        d.cancel()
        from twisted.internet.defer import CancelledError

        yield self.assertFailure(d, CancelledError)
        yield deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(len(self.rawFactory.lost), 1)
        self.assertEqual(app.opened, [])

    def test_badOptions(self) -> None:
        self.assertRaises(ValueError, connectWebSocket, reactor, "http://x/", Collector())
        self.assertRaises(ValueError, connectWebSocket, reactor, "ws://x/", Collector(), version=9)
        self.assertRaises(
            ValueError, connectWebSocket, reactor, "ws://x/", Collector(), headers={"Upgrade": "x"}
        )
        self.assertRaises(
            ValueError, connectWebSocket, reactor, "ws://x/", Collector(), caCertificates="x.pem"
        )
