"""
Tests of L{txratchet.testing}, the kit that runs an application behind the
real stack in memory: every protocol family, permessage-deflate, refusals
by the decorators, sessions, closing from either side, keepalive and the
other timers on the clock, errors, Deferreds and the line protocol.

Where the kit reports what crossed the wire, the tests check it against
what the server side saw (its own connection object), so a bug in the
kit's client cannot hide behind the same bug in its report.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor, task
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.interfaces import ISSLTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.util import Recorder
from txratchet import Application, CloseConnection, HandshakeError, SendMessage, WebSocket
from txratchet.components import IpBlackList, OriginCheck, SessionProvider, TwistedWebSessions
from txratchet.errors import InvalidResponse, InvalidStatus
from txratchet.interfaces import IConnection
from txratchet.testing import LineTestClient, TestClient, TestServer
from txratchet.websocket import State
from txratchet.websocket.deflate import DeflateOffer

FAMILIES = ("rfc6455", "hybi-08", "hybi-07", "hixie-76")


class Echo(Application):
    def onMessage(self, conn: IConnection, message: str | bytes) -> object:
        return SendMessage(conn, message)


class Commands(Recorder):
    """
    Echo, remember every event, and obey a few text commands.
    """

    def onMessage(self, conn: Any, msg: str | bytes) -> object:
        if msg == "boom":
            raise ZeroDivisionError("boom")
        if isinstance(msg, str) and msg.startswith("close "):
            _, code, reason = msg.split(" ", 2)
            self.events.append(("message", conn, msg))
            return CloseConnection(conn, int(code), reason)
        if msg == "big":
            for _ in range(64):
                conn.send(b"x" * 16384)
            return None
        return super().onMessage(conn, msg)

    def onError(self, conn: Any, failure: Any) -> object:
        super().onError(conn, failure)
        return CloseConnection(conn, 1011, "Internal error")


class FamilyTests(SynchronousTestCase):
    """
    The kit speaks each protocol family, through the real handshake.
    """

    def test_eachFamily(self) -> None:
        for family in FAMILIES:
            app = Recorder()
            server = TestServer(app)
            client = server.connect("/chat?room=1", family=family)
            self.assertEqual(client.status, 101, family)
            self.assertTrue(client.open, family)
            self.assertEqual(client.family, family)
            (conn,) = app.conns
            self.assertIs(client.serverConnection, conn)
            self.assertEqual(conn.protocol, family)
            client.send("héllo")
            self.assertEqual(client.receiveNow(), "héllo")
            if family != "hixie-76":
                client.send(b"\x00\xff")
                self.assertEqual(client.receiveBytes(), b"\x00\xff")
            self.assertEqual(app.messages(), ["héllo"] + ([b"\x00\xff"] if family != "hixie-76" else []))

    def test_versionNumbers(self) -> None:
        """
        C{family} also takes C{Sec-WebSocket-Version} numbers.
        """
        for version, family in ((13, "rfc6455"), (8, "hybi-08"), (7, "hybi-07")):
            client = TestServer(Echo()).connect(family=version)
            self.assertEqual(client.serverConnection.protocol, family)  # type: ignore[union-attr]

    def test_familiesOption(self) -> None:
        """
        A family the layer does not accept is refused with 426, and the
        options reach the layer.
        """
        server = TestServer(Echo(), families=["rfc6455"])
        client = server.connect(family="hybi-08")
        self.assertEqual(client.status, 426)
        self.assertIsInstance(client.error, InvalidStatus)
        self.assertEqual(client.error.headers.get("sec-websocket-version"), "13")  # type: ignore[union-attr]
        self.assertTrue(client.closed)
        self.assertEqual(client.state, State.CLOSED)

    def test_deflate(self) -> None:
        """
        With C{compression=True} permessage-deflate is agreed and the
        server's messages arrive compressed (fewer bytes than the text).
        """
        server = TestServer(Echo())
        client = server.connect(compression=True)
        self.assertIsNotNone(client.compression)
        self.assertIsNotNone(client.serverConnection.compression)  # type: ignore[union-attr]
        before = client.bytesReceived
        text = "all work and no play " * 500
        client.send(text)
        self.assertEqual(client.receiveNow(), text)
        self.assertLess(client.bytesReceived - before, len(text) // 10)
        client.send(b"\x01" * 5000)
        self.assertEqual(client.receiveNow(), b"\x01" * 5000)

    def test_deflateOffer(self) -> None:
        """
        A L{DeflateOffer} of one's own is offered as it is; and the server
        side may refuse compression altogether.
        """
        client = TestServer(Echo()).connect(compression=DeflateOffer(serverNoContextTakeover=True))
        self.assertTrue(client.compression.serverNoContextTakeover)  # type: ignore[union-attr]
        client = TestServer(Echo(), compression=None).connect(compression=True)
        self.assertIsNone(client.compression)
        client.send("plain")
        self.assertEqual(client.receiveNow(), "plain")

    def test_noDeflateByDefault(self) -> None:
        client = TestServer(Echo()).connect()
        self.assertIsNone(client.compression)


class RequestTests(SynchronousTestCase):
    """
    What the test client sends reaches the application's connection.
    """

    def test_requestDetails(self) -> None:
        app = Recorder()
        server = TestServer(app, subprotocols=["chat.v2", "chat.v1"])
        client = server.connect(
            "/rooms/1?user=ann&user=bob&x=",
            headers={"X-Token": "t0k"},
            cookies={"sid": "abc", "theme": "dark"},
            subprotocols=["chat.v1", "chat.v2"],
            origin="https://app.example",
            peer=("203.0.113.5", 4321),
            host="example.com:8443",
        )
        (conn,) = app.conns
        self.assertEqual(conn.path, "/rooms/1")
        self.assertEqual(conn.query, "user=ann&user=bob&x=")
        self.assertEqual(conn.params, {"user": ["ann", "bob"], "x": [""]})
        self.assertEqual(conn.headers.get("x-token"), "t0k")
        self.assertEqual(conn.headers.get("Host"), "example.com:8443")
        self.assertEqual(conn.headers.get("Origin"), "https://app.example")
        self.assertEqual(conn.cookies, {"sid": "abc", "theme": "dark"})
        self.assertEqual(conn.peer, IPv4Address("TCP", "203.0.113.5", 4321))
        self.assertEqual(conn.subprotocol, "chat.v1")
        self.assertEqual(client.subprotocol, "chat.v1")
        self.assertEqual(client.handshake.request.cookies, {"sid": "abc", "theme": "dark"})

    def test_peers(self) -> None:
        """
        A host alone gets a port of its own per client; IPv6 hosts give
        IPv6 addresses; a Twisted address is used as it is.
        """
        app = Recorder()
        server = TestServer(app)
        server.connect(peer="10.0.0.1")
        server.connect(peer="10.0.0.1")
        server.connect(peer="2001:db8::1")
        address = IPv4Address("TCP", "192.0.2.9", 1)
        server.connect(peer=address)
        a, b, c, d = (conn.peer for conn in app.conns)
        self.assertEqual((a.host, b.host), ("10.0.0.1", "10.0.0.1"))
        self.assertNotEqual(a.port, b.port)
        self.assertIsInstance(c, IPv6Address)
        self.assertIs(d, address)

    def test_url(self) -> None:
        """
        A whole URL may be given; C{wss://} (or C{secure=True}) makes the
        transport a TLS one, which Hixie-76's answer names.
        """
        app = Recorder()
        server = TestServer(app)
        client = server.connect("wss://chat.example/ws", family="hixie-76")
        self.assertTrue(client.open)
        self.assertTrue(ISSLTransport.providedBy(client.transport))
        self.assertEqual(client.response.headers.get("sec-websocket-location"), "wss://chat.example/ws")  # type: ignore[union-attr]
        client = server.connect("/ws", secure=True)
        self.assertTrue(client.open)
        self.assertEqual(app.conns[1].headers.get("host"), "localhost")
        with self.assertRaises(ValueError):
            server.connect("ws-no-slash")


class RefusalTests(SynchronousTestCase):
    """
    A decorator's refusal shows as the HTTP status and body the client got.
    """

    def test_originCheck(self) -> None:
        app = Recorder()
        server = TestServer(OriginCheck(app, ["https://chat.example"]))
        refused = server.connect(origin="https://evil.example")
        self.assertEqual(refused.status, 403)
        self.assertEqual(refused.body, b"Origin not allowed: https://evil.example\n")
        self.assertIsNone(refused.response)
        self.assertFalse(refused.open)
        self.assertTrue(refused.closed)
        self.assertIsNone(refused.closeCode)
        self.assertEqual(app.conns, [])
        failure = self.failureResultOf(refused.whenOpen(), InvalidStatus)
        self.assertEqual(failure.value.status, 403)
        with self.assertRaises(AssertionError) as raised:
            refused.receiveNow()
        self.assertIn("403", str(raised.exception))
        with self.assertRaises(AssertionError):
            refused.send("hi")

        accepted = server.connect(origin="https://chat.example")
        self.assertEqual(accepted.status, 101)
        self.assertIs(self.successResultOf(accepted.whenOpen()), accepted)
        # HyBi sends its origin in Sec-WebSocket-Origin; the check reads it.
        self.assertEqual(server.connect(family="hybi-08", origin="https://evil.example").status, 403)
        self.assertEqual(server.connect(family="hybi-08", origin="https://chat.example").status, 101)
        self.assertEqual(len(app.conns), 2)

    def test_blackListInside(self) -> None:
        server = TestServer(IpBlackList(Echo(), ["203.0.113.0/24"]))
        self.assertEqual(server.connect(peer="203.0.113.7").status, 403)
        self.assertEqual(server.connect(peer="198.51.100.7").status, 101)

    def test_blackListAround(self) -> None:
        """
        A stack with the layer inside it: a blocked peer's TCP connection
        is closed before any answer.
        """
        clock = task.Clock()
        app = Recorder()
        server = TestServer(IpBlackList(WebSocket(app, clock=clock), ["203.0.113.0/24"]))
        self.assertIs(server.clock, clock)
        self.assertIs(server.app, app)
        blocked = server.connect(peer="203.0.113.7")
        self.assertTrue(blocked.closed)
        self.assertIsNone(blocked.status)
        self.assertIsInstance(blocked.error, InvalidResponse)
        self.assertEqual(server.connect(peer="198.51.100.7").status, 101)
        self.assertEqual(len(app.conns), 1)

    def test_builtStackChecks(self) -> None:
        clock = task.Clock()
        with self.assertRaises(TypeError):
            TestServer(WebSocket(Echo(), clock=clock), pingInterval=1)
        with self.assertRaises(ValueError):
            TestServer(WebSocket(Echo(), clock=clock), clock=task.Clock())
        # A layer on the reactor's clock serves, but cannot be advanced.
        server = TestServer(WebSocket(Echo()))
        self.assertTrue(server.connect().open)
        with self.assertRaises(TypeError):
            server.advance(1)

    def test_requestHandlerError(self) -> None:
        """
        An C{onRequest} that refuses with its own status.
        """

        class Paywall(Application):
            def onRequest(self, conn: IConnection, request: Any) -> object:
                if "paid" not in request.params:
                    raise HandshakeError(402, "Pay first")
                return None

        server = TestServer(Paywall())
        client = server.connect("/")
        self.assertEqual((client.status, client.body), (402, b"Pay first\n"))
        self.assertTrue(server.connect("/?paid").open)


class SessionTests(SynchronousTestCase):
    def test_twistedWebSession(self) -> None:
        """
        C{SessionProvider} finds the session the cookie names; without
        one, the handshake is refused.
        """
        clock = task.Clock()
        site = Site(Resource(), reactor=clock)
        session = site.makeSession()
        session.user = "ann"  # type: ignore[attr-defined]

        class Hello(Application):
            def onOpen(self, conn: Any) -> object:
                conn.send(f"Hello, {conn.session.user}")
                return None

        server = TestServer(SessionProvider(Hello(), TwistedWebSessions(site)), clock=clock)
        client = server.connect(cookies={"TWISTED_SESSION": session.uid.decode()})
        self.assertEqual(client.receiveText(), "Hello, ann")
        refused = server.connect(cookies={"TWISTED_SESSION": "nope"})
        self.assertEqual((refused.status, refused.body), (403, b"A valid session is required\n"))
        self.assertEqual(server.connect().status, 403)
        session.expire()


class CloseTests(SynchronousTestCase):
    def test_clientCloses(self) -> None:
        """
        The client's close code and reason reach the application, whose
        C{onClose} has run when C{close} returns; the server echoes the code.
        """
        app = Recorder()
        client = TestServer(app).connect()
        client.close(4000, "done")
        self.assertTrue(client.closed)
        (conn,) = app.conns
        self.assertEqual(app.events[-1], ("close", conn))
        self.assertEqual((conn.closeCode, conn.closeReason, conn.wasClean), (4000, "done", True))
        self.assertEqual((client.closeCode, client.wasClean), (4000, True))
        self.assertEqual(client.serverCloseFrame, (4000, ""))
        self.assertIs(self.successResultOf(client.whenClosed()), client)

    def test_serverCloses(self) -> None:
        app = Commands()
        for family in FAMILIES:
            client = TestServer(app).connect(family=family)
            client.send("close 4001 bye now")
            self.assertTrue(client.closed, family)
            if family == "hixie-76":
                self.assertEqual(client.closeCode, 1005)  # no codes in Hixie-76
            else:
                self.assertEqual((client.closeCode, client.closeReason), (4001, "bye now"))
            self.assertTrue(client.wasClean)
            self.assertEqual(app.events[-1], ("close", app.conns[-1]))

    def test_disconnect(self) -> None:
        """
        A dropped connection: the application sees 1006.
        """
        app = Recorder()
        client = TestServer(app).connect()
        client.disconnect()
        self.assertTrue(client.closed)
        self.assertEqual(client.closeCode, 1006)
        self.assertFalse(client.wasClean)
        self.assertEqual(app.conns[0].closeCode, 1006)
        self.assertEqual(app.events[-1][0], "close")
        with self.assertRaises(AssertionError):
            client.send("too late")

    def test_error(self) -> None:
        """
        A handler that raises: logged, C{onError} closes with 1011, and
        the client sees it.
        """
        app = Commands()
        client = TestServer(app).connect()
        client.send("boom")
        self.assertEqual((client.closeCode, client.closeReason), (1011, "Internal error"))
        self.assertTrue(client.closed)
        self.assertEqual([e[0] for e in app.events], ["open", "error", "close"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_protocolError(self) -> None:
        """
        Raw bytes the server must refuse: an unmasked frame fails the
        connection with 1002.
        """
        app = Recorder()
        client = TestServer(app).connect()
        client.sendRaw(b"\x81\x02hi")
        self.assertEqual(client.closeCode, 1002)
        self.assertTrue(client.closed)
        self.assertEqual(app.conns[0].closeCode, 1002)

    def test_closeTimeout(self) -> None:
        """
        A client that never answers the server's close frame is aborted
        after C{closeTimeout}, on the clock.
        """
        app = Commands()
        server = TestServer(app, closeTimeout=3)
        client = server.connect()
        client.answerClose = False
        client.send("close 1000 bye")
        self.assertEqual(client.serverCloseFrame, (1000, "bye"))
        self.assertFalse(client.closed)
        server.advance(2.9)
        self.assertFalse(client.closed)
        server.advance(0.1)
        self.assertTrue(client.closed)
        self.assertFalse(app.conns[0].wasClean)

    def test_shutdown(self) -> None:
        app = Recorder()
        server = TestServer(app)
        clients = [server.connect(), server.connect(family="hybi-07"), server.connect(family="hixie-76")]
        d = server.shutdown()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual([c.closeCode for c in clients], [1001, 1001, 1005])
        self.assertTrue(all(c.closed for c in clients))
        self.assertEqual(server.connections, [])


class ShutdownTimeoutTests(SynchronousTestCase):
    def test_rudeClientAborted(self) -> None:
        """
        A client that does not answer the shutdown's close frame holds it
        up until C{closeTimeout} passes on the clock, then is aborted.
        """
        app = Recorder()
        server = TestServer(app, closeTimeout=5)
        polite, rude = server.connect(), server.connect()
        rude.answerClose = False
        d = server.shutdown()
        self.assertTrue(polite.closed)
        self.assertNoResult(d)
        server.advance(4.9)
        self.assertFalse(rude.closed)
        server.advance(0.1)
        self.assertTrue(rude.closed)
        self.assertEqual(rude.serverCloseFrame, (1001, "Server shutting down"))
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(len([e for e in app.events if e[0] == "close"]), 2)


class TimeTests(SynchronousTestCase):
    """
    The layers' timers run on the server's clock, which the test moves.
    """

    def test_keepaliveAnswered(self) -> None:
        server = TestServer(Echo(), pingInterval=10, pingTimeout=5)
        client = server.connect()
        server.advance(9.9)
        self.assertEqual(client.pings, [])
        server.advance(0.1)
        self.assertEqual(client.pings, [b"keepalive"])
        server.advance(100)
        self.assertTrue(client.open)
        self.assertEqual(len(client.pings), 11)  # at 10, 20, ... 110

    def test_keepaliveUnanswered(self) -> None:
        server = TestServer(Echo(), pingInterval=10, pingTimeout=5)
        client = server.connect()
        client.autoPong = False
        server.advance(14.9)
        self.assertTrue(client.open)
        server.advance(0.1)
        self.assertEqual((client.closeCode, client.closeReason), (1011, "Keepalive ping timeout"))
        self.assertTrue(client.closed)

    def test_messagesKeepAlive(self) -> None:
        """
        Anything the client sends proves it is alive.
        """
        server = TestServer(Echo(), idleTimeout=30)
        client = server.connect()
        for _ in range(5):
            server.advance(20)
            client.send("still here")
        self.assertTrue(client.open)
        server.advance(30)
        self.assertEqual((client.closeCode, client.closeReason), (1000, "Idle timeout"))

    def test_clientPing(self) -> None:
        client = TestServer(Echo()).connect()
        client.ping(b"are you there")
        self.assertEqual(client.pongs, [b"are you there"])

    def test_messageTimeout(self) -> None:
        """
        Half a frame, then silence: 1008 after C{messageTimeout}.
        """
        server = TestServer(Echo(), messageTimeout=2)
        client = server.connect()
        client.sendRaw(b"\x81\x85abcdxy")
        server.advance(1.9)
        self.assertTrue(client.open)
        server.advance(0.1)
        self.assertEqual(client.closeCode, 1008)

    def test_handshakeTimeout(self) -> None:
        """
        C{advance} reaches the handshake timer of a stack that never
        answers.
        """

        class Undecided(Application):
            def onRequest(self, conn: IConnection, request: Any) -> object:
                return Deferred()

        server = TestServer(Undecided(), handshakeTimeout=10)
        client = server.connect()
        self.assertIsNone(client.status)
        self.assertEqual(client.state, State.CONNECTING)
        server.advance(10)
        self.assertEqual(client.status, 408)


class DeliveryTests(SynchronousTestCase):
    """
    Messages the application sends later, and the kit's Deferreds.
    """

    def test_receiveNothing(self) -> None:
        client = TestServer(Echo()).connect()
        self.assertEqual(client.receiveAll(), [])
        with self.assertRaises(AssertionError) as raised:
            client.receiveNow()
        self.assertIn("the connection is open", str(raised.exception))

    def test_receivedAndOrder(self) -> None:
        """
        C{received} keeps every message; the receive methods read them in
        order, once.
        """
        client = TestServer(Echo()).connect()
        for message in ("a", b"b", "c", '{"n": 1}'):
            client.send(message)
        self.assertEqual(client.receiveNow(), "a")
        self.assertEqual(self.successResultOf(client.receive()), b"b")
        self.assertEqual(client.receiveAll(), ["c", '{"n": 1}'])
        self.assertEqual(client.received, ["a", b"b", "c", '{"n": 1}'])
        client.sendJSON({"n": 2})
        self.assertEqual(client.receiveJSON(), {"n": 2})
        client.send(b"bin")
        with self.assertRaises(AssertionError):
            client.receiveText()
        client.send("text")
        with self.assertRaises(AssertionError):
            client.receiveBytes()

    def test_deferredReply(self) -> None:
        """
        An application that answers with a Deferred the test fires: the
        answer is there at the next call, and fires a waiting receive.
        """
        pending: list[Deferred[object]] = []

        class Later(Application):
            def onMessage(self, conn: IConnection, message: str | bytes) -> object:
                d: Deferred[object] = Deferred()
                d.addCallback(lambda _: SendMessage(conn, message))
                pending.append(d)
                return d

        fake = task.Clock()  # the reactor the kit's Deferreds wait on
        server = TestServer(Later(), reactor=fake)
        client = server.connect()
        client.send("one")
        self.assertEqual(client.receiveAll(), [])
        pending.pop().callback(None)
        self.assertEqual(client.receiveNow(), "one")

        client.send("two")
        d = client.receive()
        self.assertNoResult(d)
        pending.pop().callback(None)
        self.assertNoResult(d)  # delivered on the reactor's next turn
        fake.advance(0)
        self.assertEqual(self.successResultOf(d), "two")
        self.assertEqual(fake.getDelayedCalls(), [])

    def test_receiveTimeout(self) -> None:
        fake = task.Clock()
        client = TestServer(Echo(), reactor=fake).connect()
        d = client.receive(timeout=2)
        fake.advance(2)
        failure = self.failureResultOf(d, AssertionError)
        self.assertIn("No message arrived within 2 s", str(failure.value))
        self.assertEqual(fake.getDelayedCalls(), [])

    def test_receiveAfterClose(self) -> None:
        """
        Messages received before the close are still read; then a receive
        fails at once.
        """
        app = Commands()
        client = TestServer(app).connect()
        client.send("last words")
        client.send("close 1000 bye")
        self.assertEqual(self.successResultOf(client.receive()), "last words")
        failure = self.failureResultOf(client.receive(), AssertionError)
        self.assertIn("closed (1000 'bye')", str(failure.value))

    def test_waitingReceiveFailsOnClose(self) -> None:
        fake = task.Clock()
        client = TestServer(Echo(), reactor=fake).connect()
        d = client.receive()
        client.disconnect()
        self.failureResultOf(d, AssertionError)
        self.assertEqual(fake.getDelayedCalls(), [])

    def test_laterHandshake(self) -> None:
        """
        An C{onRequest} that decides later: C{whenOpen} fires once it did.
        """
        decisions: list[Deferred[None]] = []

        class Later(Application):
            def onRequest(self, conn: IConnection, request: Any) -> object:
                d: Deferred[None] = Deferred()
                decisions.append(d)
                return d

            def onOpen(self, conn: IConnection) -> object:
                conn.send("welcome")
                return None

        fake = task.Clock()
        server = TestServer(Later(), reactor=fake)
        client = server.connect()
        opened = client.whenOpen()
        self.assertNoResult(opened)
        decisions.pop().callback(None)
        fake.advance(0)
        self.assertIs(self.successResultOf(opened), client)
        self.assertEqual(client.receiveNow(), "welcome")

        refused = server.connect()
        opened = refused.whenOpen()
        decisions.pop().errback(HandshakeError(403, "No"))
        fake.advance(0)
        self.assertEqual(self.failureResultOf(opened, InvalidStatus).value.status, 403)

    def test_flowControl(self) -> None:
        """
        A client that stops reading: past 64 KiB the server stops writing
        to it (and reading from it), and past C{maxSendBuffer} the layer's
        policy drops it (1008).
        """
        from examples.chat import Chat

        server = TestServer(Chat(), maxSendBuffer=100_000)
        alice, bob = server.connect(), server.connect()
        bob.stopReading()
        for _ in range(20):
            alice.send("x" * 16384)
        self.assertTrue(bob.closed)
        self.assertEqual(bob.closeCode, 1006)  # aborted: no close frame could pass
        self.assertEqual(bob.serverConnection.closeCode, 1008)  # type: ignore[union-attr]
        self.assertTrue(alice.open)

        app = Commands()
        server = TestServer(app)
        client = server.connect()
        client.stopReading()
        client.send("big")  # 1 MiB in one read
        self.assertEqual(client.received, [])
        lower = app.conns[-1].transport.producer
        self.assertTrue(lower.writePaused)
        client.startReading()
        self.assertEqual(len(client.receiveAll()), 64)
        self.assertFalse(lower.writePaused)


class LineTests(SynchronousTestCase):
    def test_chatAcrossProtocols(self) -> None:
        """
        A line client joins the WebSocket clients of the same application.
        """
        from examples.chat import Chat

        server = TestServer(Chat())
        browser = server.connect()
        telnet = server.connectLine(peer="198.51.100.1")
        self.assertIsInstance(telnet, LineTestClient)
        browser.send("from the browser\nwith a newline")
        self.assertEqual(telnet.receiveNow(), "from the browser\\nwith a newline")
        telnet.send("from telnet")
        self.assertEqual(browser.receiveNow(), "from telnet")
        telnet.close()
        self.assertTrue(telnet.closed)
        browser.send("anyone?")
        self.assertEqual(telnet.receiveAll(), [])

    def test_lineServer(self) -> None:
        """
        A stack built on L{LineProtocol}: only line clients connect.
        """
        from txratchet import LineProtocol

        clock = task.Clock()
        app = Commands()
        server = TestServer(LineProtocol(app, clock=clock, closeTimeout=1))
        with self.assertRaises(TypeError):
            server.connect()
        client = server.connectLine()
        client.sendRaw(b"one\r\ntwo\n\xff\n")
        # Not UTF-8: bytes (0xFF is not a control byte: not escaped).
        self.assertEqual(client.receiveAll(), ["one", "two", b"\xff"])
        client.send("close 1000 bye")
        self.assertEqual(client.receiveAll(), ["bye"])
        self.assertTrue(client.closed)


class AsyncHandlerTests(SynchronousTestCase):
    """
    Applications with C{async def} handlers: the kit holds what the client
    sends while the server paused reading for a coroutine, and delivers
    the answers once it ends.
    """

    def test_orderKept(self) -> None:
        pending: list[Deferred[None]] = []
        cancelled: list[str | bytes] = []

        class Slow(Application):
            async def onMessage(self, conn: IConnection, message: str | bytes) -> object:
                d: Deferred[None] = Deferred()
                pending.append(d)
                try:
                    await d
                except BaseException:
                    cancelled.append(message)
                    raise
                return SendMessage(conn, message)

        server = TestServer(Slow())
        client = server.connect()
        client.send("one")
        client.send("two")
        self.assertEqual(len(pending), 1)  # "two" waits for "one"'s handler
        self.assertEqual(client.serverConnection.transport.producerState, "paused")  # type: ignore[union-attr]
        pending[0].callback(None)
        self.assertEqual(client.receiveNow(), "one")
        self.assertEqual(len(pending), 2)
        pending[1].callback(None)
        self.assertEqual(client.receiveNow(), "two")

        client.send("three")
        client.disconnect()
        self.assertEqual(cancelled, ["three"])

    def test_awaitTheClock(self) -> None:
        """
        A handler that awaits the server's clock answers once the test
        advances it.
        """

        class Timer(Application):
            clock: task.Clock

            async def onMessage(self, conn: IConnection, message: str | bytes) -> object:
                await task.deferLater(self.clock, 5, lambda: None)
                return SendMessage(conn, f"{message} after 5 s")

        app = Timer()
        server = TestServer(app)
        app.clock = server.clock  # type: ignore[assignment]
        client = server.connect()
        client.send("ping")
        server.advance(4)
        self.assertEqual(client.receiveAll(), [])
        server.advance(1)
        self.assertEqual(client.receiveNow(), "ping after 5 s")

    def test_asyncErrorCloses(self) -> None:
        class Broken(Application):
            async def onOpen(self, conn: IConnection) -> object:
                await succeed(None)
                raise ValueError("no database")

        client = TestServer(Broken()).connect()
        self.assertEqual((client.closeCode, client.closeReason), (1011, "Internal error"))
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)


class AsynchronousTests(TestCase):
    """
    The kit under trial's asynchronous TestCase, with the real reactor.
    """

    @inlineCallbacks
    def test_receiveWaits(self) -> Any:
        """
        A reply that comes on a later reactor turn fires C{receive()}.
        """

        class Slow(Application):
            def onMessage(self, conn: IConnection, message: str | bytes) -> object:
                return task.deferLater(reactor, 0.01, SendMessage, conn, message)

        client = TestServer(Slow()).connect()
        client.send("later")
        self.assertEqual(client.receiveAll(), [])
        message = yield client.receive()
        self.assertEqual(message, "later")

    async def test_await(self) -> None:
        client = TestServer(Echo()).connect()
        client.send(json.dumps([1, 2]))
        self.assertEqual(await client.receive(), "[1, 2]")
        client.close()
        self.assertIs(await client.whenClosed(), client)

    @inlineCallbacks
    def test_sessionStoreLater(self) -> Any:
        """
        A session store that answers on a later turn: C{whenOpen} waits.
        """

        class SlowStore:
            cookieNames = ("sid",)

            def load(self, sessionId: str) -> Deferred[Any]:
                return task.deferLater(reactor, 0.01, lambda: {"name": sessionId})

        class Hello(Application):
            def onOpen(self, conn: Any) -> object:
                conn.send("hi " + conn.session["name"])
                return None

        server = TestServer(SessionProvider(Hello(), SlowStore()))  # type: ignore[arg-type]
        client = server.connect(cookies={"sid": "ann"})
        self.assertIsNone(client.status)
        yield client.whenOpen()
        self.assertEqual((yield client.receive()), "hi ann")


class KitTests(SynchronousTestCase):
    def test_notCollected(self) -> None:
        """
        pytest does not take the kit's classes for test classes.
        """
        for cls in (TestServer, TestClient, LineTestClient):
            self.assertIs(cls.__test__, False)  # type: ignore[attr-defined]

    def test_connectionsAndRepr(self) -> None:
        server = TestServer(Echo())
        client = server.connect("/x")
        self.assertEqual(len(server.connections), 1)
        self.assertIn("ws://localhost/x rfc6455: the connection is open", repr(client))
        client.close()
        self.assertEqual(server.connections, [])
        self.assertIn("closed", repr(client))

    def test_succeedHelper(self) -> None:
        """
        An already-fired Deferred from a handler is as good as a value.
        """

        class Now(Application):
            def onMessage(self, conn: IConnection, message: str | bytes) -> object:
                return succeed(SendMessage(conn, message))

        client = TestServer(Now()).connect()
        client.send("now")
        self.assertEqual(client.receiveNow(), "now")
