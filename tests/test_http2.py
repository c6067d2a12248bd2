"""
WebSockets over HTTP/2 (RFC 8441) on the TLS port of a WebSocketSite: an h2
client opens sockets as extended CONNECT streams and loads pages on other
streams of the same connection.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest
from twisted.web.resource import Resource
from twisted.web.static import Data
from zope.interface import implementer

from tests import rawclients
from tests.tls import makeCertificate
from tests.util import Recorder, ServerTestCase
from txratchet import SendMessage, WebSocket
from txratchet.components import IpBlackList, OriginCheck
from txratchet.components.session import ISessionStore, SessionProvider

try:
    import h2  # noqa: F401

    from tests.h2client import H2Client
    from txratchet._twisted import http2Usable
    from txratchet.web import WebSocketResource, WebSocketSite

    if not http2Usable():  # h2 without the rest of twisted[http2] (priority)
        raise ImportError("HTTP/2 is not usable")
except ImportError:  # pragma: no cover
    H2Client = None  # type: ignore[assignment,misc]

HOST = "127.0.0.1"
MAX_STREAMS = 0x3  # SETTINGS_MAX_CONCURRENT_STREAMS
TEXT, CLOSE = 0x1, 0x8


class Commands(Recorder):
    """
    Echo, except: "bye" closes (4000), "flood" sends 40 messages of 8 KiB
    to every other socket (and "flooded" to its sender).
    """

    def onMessage(self, conn, msg):
        self.events.append(("message", conn, msg))
        if msg == "bye":
            conn.close(4000, "asked to")
            return None
        if msg == "flood":
            for other in self.conns:
                if other is not conn:
                    for i in range(40):
                        other.send(str(i % 10) * 8192)
            return SendMessage(conn, "flooded")
        return SendMessage(conn, msg)


class HTTP2Tests(ServerTestCase):
    def setUp(self):
        if H2Client is None:
            raise SkipTest("h2 is not installed (pip install 'twisted[http2]')")

    @inlineCallbacks
    def serve(self, app, websocketOptions=None, **siteOptions):
        root = Resource()
        root.putChild(b"", Data(b"<h1>page over h2</h1>", "text/html"))
        root.putChild(b"ws", WebSocketResource(WebSocket(app, **(websocketOptions or {}))))
        self.addCleanup(self._dropAll, app)
        return (yield self.serveRoot(root, **siteOptions))

    @inlineCallbacks
    def serveRoot(self, root, site=None, **siteOptions):
        """
        Serve C{root} (or C{site}) over TLS on 127.0.0.1; returns the port
        and the CA file.
        """
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory, True)
        key, cert = makeCertificate(directory)
        if site is None:
            site = WebSocketSite(root, **siteOptions)
        spec = f"ssl:0:interface={HOST}:privateKey={key}:certKey={cert}"
        port = yield serverFromString(reactor, spec).listen(site)
        self.addCleanup(port.stopListening)
        self.addCleanup(self._dropH2, site)
        return port.getHost().port, str(cert)

    def _dropAll(self, app):
        closed = {event[1] for event in app.events if event[0] == "close"}
        for conn in list(app.conns):
            if conn not in closed:
                conn.transport.abortConnection()

    def _dropH2(self, site):
        for channel in list(site.h2Connections):
            channel.transport.abortConnection()

    @inlineCallbacks
    def test_socketAndPageOnOneConnection(self):
        """
        The server advertises extended CONNECT; a socket opens on one
        stream (200), echoes a masked text frame and closes cleanly
        (close frames, then END_STREAM both ways) while a GET on another
        stream of the same connection gets the page.
        """
        app = Recorder()
        port, cafile = yield self.serve(app)

        def talk():
            c = H2Client(port, cafile)
            out = {"alpn": c.alpn, "enabled": c.connectProtocolEnabled()}
            ws = c.websocket("/ws?room=1")
            out["status"] = c.response(ws).get(b":status")
            c.sendFrame(ws, TEXT, "hello over h2 ✓".encode())
            page = c.get("/")
            out["echo"] = c.frames(ws)
            out["page"] = (c.response(page).get(b":status"), c.body(page))
            c.sendFrame(ws, CLOSE, (1000).to_bytes(2, "big") + b"bye")
            out["closeAnswer"] = c.frames(ws)
            c.pump(lambda: ws in c.ended)  # the server ends its side after its answer
            c.endStream(ws)
            out["reset"] = dict(c.reset)
            c.close()
            return out

        out = yield deferToThread(talk)
        self.assertEqual(out["alpn"], "h2")
        self.assertTrue(out["enabled"])
        self.assertEqual(out["status"], b"200")
        self.assertEqual(out["echo"], [(TEXT, "hello over h2 ✓".encode())])
        self.assertEqual(out["page"], (b"200", b"<h1>page over h2</h1>"))
        self.assertEqual(out["closeAnswer"][0][0], CLOSE)
        self.assertEqual(out["reset"], {})
        conn = yield app.closed
        self.assertEqual(conn.httpVersion, "HTTP/2")
        self.assertEqual(conn.protocol, "rfc6455")
        self.assertEqual(conn.path, "/ws")
        self.assertEqual(conn.query, "room=1")
        self.assertTrue(conn.wasClean)
        self.assertEqual(conn.closeCode, 1000)
        self.assertEqual(app.messages(), ["hello over h2 ✓"])

    @inlineCallbacks
    def test_refusals(self):
        """
        A CONNECT to a path with no socket gets twisted.web's 404, one for
        another :protocol 501, one without Sec-WebSocket-Version 400; each
        is ended and then reset with NO_ERROR, and the connection goes on.
        """
        app = Recorder()
        port, cafile = yield self.serve(app)

        def talk():
            c = H2Client(port, cafile)
            c.connectProtocolEnabled()
            out = {}
            nowhere = c.websocket("/nowhere")
            out["nowhere"] = c.response(nowhere).get(b":status")
            other = c.websocket("/ws", protocol=b"webtransport")
            out["other"] = c.response(other).get(b":status"), c.body(other)
            page = c.get("/")
            out["page"] = c.body(page)
            c.pump(lambda: other in c.reset)
            out["reset"] = c.reset.get(other)
            c.close()
            return out

        out = yield deferToThread(talk)
        self.assertEqual(out["nowhere"], b"404")
        self.assertEqual(out["other"], (b"501", b"Unsupported :protocol 'webtransport'\n"))
        self.assertEqual(out["page"], b"<h1>page over h2</h1>")
        self.assertEqual(out["reset"], 0)
        self.assertEqual(app.conns, [])

    @inlineCallbacks
    def test_http2Off(self):
        """
        WebSocketSite(http2=False) offers only http/1.1 by ALPN.
        """
        app = Recorder()
        port, cafile = yield self.serve(app, http2=False)

        def talk():
            try:
                c = H2Client(port, cafile)
            except Exception as e:
                return repr(e)
            alpn = c.alpn
            c.sock.close()
            return alpn

        self.assertEqual((yield deferToThread(talk)), "http/1.1")

    @inlineCallbacks
    def test_manySocketsCloseAndReset(self):
        """
        Ten sockets on one connection, each echoing its own messages; one
        closed by the server (close frame, END_STREAM), one reset by the
        peer (onClose, not clean, 1006), the others closed by the peer.
        """
        app = Commands()
        port, cafile = yield self.serve(app)

        def talk():
            c = H2Client(port, cafile)
            c.connectProtocolEnabled()
            sids = [c.websocket("/ws") for _ in range(10)]
            statuses = [c.response(sid).get(b":status") for sid in sids]
            for n, sid in enumerate(sids):
                c.sendFrame(sid, TEXT, f"m{n}".encode())
            echoes = [c.frames(sid)[0][1] for sid in sids]
            byServer, byReset, rest = sids[0], sids[1], sids[2:]
            c.sendFrame(byServer, TEXT, b"bye")
            serverClose = c.frames(byServer)
            c.sendFrame(byServer, CLOSE, serverClose[0][1][:2])
            c.pump(lambda: byServer in c.ended)
            c.endStream(byServer)
            c.resetStream(byReset)
            for sid in rest:
                c.sendFrame(sid, CLOSE, (1000).to_bytes(2, "big"))
            for sid in rest:
                c.frames(sid)
                c.pump(lambda sid=sid: sid in c.ended)
                c.endStream(sid)
            page = c.get("/")
            body = c.body(page)
            c.close()
            return statuses, echoes, serverClose, body

        statuses, echoes, serverClose, body = yield deferToThread(talk)
        self.assertEqual(statuses, [b"200"] * 10)
        self.assertEqual(echoes, [f"m{n}".encode() for n in range(10)])
        self.assertEqual(serverClose, [(CLOSE, (4000).to_bytes(2, "big") + b"asked to")])
        self.assertEqual(body, b"<h1>page over h2</h1>")
        for _ in range(50):
            if sum(1 for e in app.events if e[0] == "close") == 10:
                break
            yield deferLater(reactor, 0.05)
        closed = [e[1] for e in app.events if e[0] == "close"]
        self.assertEqual(len(closed), 10)
        byCode = {conn: (conn.closeCode, conn.wasClean) for conn in closed}
        self.assertEqual(byCode[app.conns[0]], (4000, True))
        self.assertEqual(byCode[app.conns[1]], (1006, False))
        self.assertEqual({byCode[conn] for conn in app.conns[2:]}, {(1000, True)})
        self.assertEqual({conn.httpVersion for conn in app.conns}, {"HTTP/2"})

    @inlineCallbacks
    def test_peerThatStopsReading(self):
        """
        A socket whose peer stops reading fills its stream's window: its
        sends then count against maxSendBuffer and, past it, the stream
        is reset (1008) - while another socket and a page on the same
        connection go on.
        """
        app = Commands()
        port, cafile = yield self.serve(app, {"maxSendBuffer": 100_000})

        def talk():
            c = H2Client(port, cafile)
            c.connectProtocolEnabled()
            stuck, fine = c.websocket("/ws"), c.websocket("/ws")
            c.response(stuck)
            c.response(fine)
            c.unread.add(stuck)
            floods = 0
            while stuck not in c.reset and floods < 5:
                # What one read sends leaves at its end: the first flood
                # fills the window, the next ones count against the buffer.
                c.sendFrame(fine, TEXT, b"flood")
                c.frames(fine)
                floods += 1
            c.sendFrame(fine, TEXT, b"still here")
            echo = c.frames(fine)
            received = len(c.data[stuck])
            page = c.body(c.get("/"))
            c.close()
            return c.reset.get(stuck), floods, echo, received, page

        code, floods, echo, received, page = yield deferToThread(talk)
        self.assertEqual(code, 8)  # CANCEL: the socket failed (RFC 8441 5)
        self.assertEqual(floods, 2)
        self.assertEqual(echo, [(TEXT, b"still here")])
        self.assertLessEqual(received, 65535)  # the stream's window, no more
        self.assertEqual(page, b"<h1>page over h2</h1>")
        stuck = app.conns[0]
        for _ in range(50):
            if stuck.closeCode is not None:
                break
            yield deferLater(reactor, 0.05)
        self.assertEqual((stuck.closeCode, stuck.wasClean), (1008, False))

    @inlineCallbacks
    def test_streamLimitAndWindow(self):
        """
        The server lets a peer open C{maxStreams} streams at once (256 by
        default: a page and a hundred-odd sockets; h2's own default is 100)
        and opens a connection window of that many stream windows, so
        sockets that stopped reading cannot starve the others.
        """
        ours, default = Recorder(), Recorder()
        port, cafile = yield self.serve(ours, maxStreams=300)
        defaultPort, defaultCafile = yield self.serve(default)

        def talk(port, cafile):
            c = H2Client(port, cafile)
            c.connectProtocolEnabled()
            c.pump(lambda: c.conn.outbound_flow_control_window > 65535)
            out = c.settings.get(MAX_STREAMS), c.conn.outbound_flow_control_window
            c.close()
            return out

        self.assertEqual((yield deferToThread(talk, port, cafile)), (300, 300 * 65535))
        self.assertEqual(
            (yield deferToThread(talk, defaultPort, defaultCafile)), (256, 256 * 65535)
        )
        self.assertRaises(ValueError, WebSocketSite, Resource(), maxStreams=0)

    @inlineCallbacks
    def test_hundredAndTwentySocketsAndAPage(self):
        """
        One connection carries 120 open sockets and a page at once (past
        h2's default limit of 100 streams), each socket echoing its own.
        """
        app = Recorder()
        port, cafile = yield self.serve(app)

        def talk():
            c = H2Client(port, cafile)
            c.connectProtocolEnabled()
            sids = [c.websocket("/ws") for _ in range(120)]
            statuses = {c.response(sid).get(b":status") for sid in sids}
            page = c.body(c.get("/"))
            for n, sid in enumerate(sids):
                c.sendFrame(sid, TEXT, b"%d" % n)
            echoes = [c.frames(sid)[0][1] for sid in sids]
            c.close()
            return statuses, page, echoes

        statuses, page, echoes = yield deferToThread(talk)
        self.assertEqual(statuses, {b"200"})
        self.assertEqual(page, b"<h1>page over h2</h1>")
        self.assertEqual(echoes, [b"%d" % n for n in range(120)])

    @inlineCallbacks
    def test_refusalsAsOverHTTP11(self):
        """
        Refused handshakes answer the stream with the status an HTTP/1.1
        upgrade gets on the same TLS port: OriginCheck 403, IpBlackList
        403, SessionProvider 403 (no session) and 503 (the store is too
        slow), header limits 431; a CONNECT for another :protocol 501 and
        one to a path with no socket 404 (twisted.web's). The socket a
        valid session opens gets it.
        """
        opened = Recorder()
        apps = {
            b"origin": WebSocket(OriginCheck(Recorder(), ["https://good.example"])),
            b"blocked": WebSocket(IpBlackList(Recorder(), [HOST])),
            b"session": WebSocket(SessionProvider(opened, Store())),
            b"slow": WebSocket(SessionProvider(Recorder(), Store(slow=True), timeout=0.2)),
            b"limits": WebSocket(Recorder(), maxHeaders=10),
        }
        root = Resource()
        for name, layer in apps.items():
            root.putChild(name, WebSocketResource(layer))
        port, cafile = yield self.serveRoot(root)
        cases = [
            ("/origin", [(b"origin", b"https://evil.example")]),
            ("/origin", [(b"origin", b"https://good.example")]),
            ("/blocked", []),
            ("/session", []),
            ("/session", [(b"cookie", b"sid=good")]),
            ("/slow", [(b"cookie", b"sid=good")]),
            ("/limits", [(b"x-filler-%d" % i, b"x") for i in range(20)]),
            ("/nowhere", []),
        ]

        def talk():
            c = H2Client(port, cafile)
            c.connectProtocolEnabled()
            sids = [c.websocket(path, extra=extra) for path, extra in cases]
            other = c.websocket("/origin", protocol=b"webtransport")
            out = [c.response(sid).get(b":status") for sid in [*sids, other]]
            c.close()
            http11 = [
                upgradeStatus(port, cafile, path, extra) for path, extra in cases
            ]
            return out, http11

        statuses, http11 = yield deferToThread(talk)
        self.assertEqual(
            statuses,
            [b"403", b"200", b"403", b"403", b"200", b"503", b"431", b"404", b"501"],
        )
        # The same requests over HTTP/1.1 (101 where HTTP/2 says 200).
        self.assertEqual(
            [s.replace(b"200", b"101") for s in statuses[:-1]], http11
        )
        sessions = [conn.session for conn in opened.conns]
        self.assertIn({"user": "ann"}, sessions)
        self.assertIn("HTTP/2", {conn.httpVersion for conn in opened.conns})

    @inlineCallbacks
    def test_gracefulShutdown(self):
        """
        The layer's shutdown sends 1001 to every socket and the site's
        refuses new streams (RST_STREAM REFUSED_STREAM); once the sockets'
        close handshakes ended their streams the connection gets a GOAWAY
        (NO_ERROR) and is closed, and the shutdown's Deferred fires.
        """
        app = Commands()
        layer = WebSocket(app)
        root = Resource()
        root.putChild(b"", Data(b"<h1>page over h2</h1>", "text/html"))
        root.putChild(b"ws", WebSocketResource(layer))
        site = WebSocketSite(root)
        port, cafile = yield self.serveRoot(root, site=site)
        done = []

        def shutdown():
            d = gatherResults([layer.shutdown(), site.shutdown(timeout=5)])
            d.addCallback(done.append)

        def talk():
            c = H2Client(port, cafile)
            c.connectProtocolEnabled()
            sockets = [c.websocket("/ws"), c.websocket("/ws")]
            statuses = [c.response(sid).get(b":status") for sid in sockets]
            reactor.callFromThread(shutdown)
            closes = [c.frames(sid)[0] for sid in sockets]
            late, page = c.websocket("/ws"), c.get("/")
            c.pump(lambda: late in c.reset and page in c.reset)
            refused = c.reset[late], c.reset[page]
            for sid in sockets:
                c.sendFrame(sid, CLOSE, (1001).to_bytes(2, "big"))
            for sid in sockets:
                c.pump(lambda sid=sid: sid in c.ended)
                c.endStream(sid)
            try:
                c.pump(lambda: False)
            except ConnectionError:
                pass  # closed, after its GOAWAY
            goaway = c.goaway
            c.sock.close()
            return statuses, closes, refused, goaway

        statuses, closes, refused, goaway = yield deferToThread(talk)
        self.assertEqual(statuses, [b"200", b"200"])
        self.assertEqual(
            closes, [(CLOSE, (1001).to_bytes(2, "big") + b"Server shutting down")] * 2
        )
        self.assertEqual(refused, (7, 7))  # REFUSED_STREAM
        self.assertIsNotNone(goaway)
        self.assertEqual((goaway.error_code, goaway.last_stream_id), (0, 7))
        for _ in range(50):
            if done:
                break
            yield deferLater(reactor, 0.05)
        self.assertTrue(done)
        self.assertEqual(site.h2Connections, set())
        self.assertEqual({(c.closeCode, c.wasClean) for c in app.conns}, {(1001, True)})

    @inlineCallbacks
    def test_shutdownWithoutConnections(self):
        """
        A site with no HTTP/2 connection shuts down at once; one made
        afterwards is told to go at once.
        """
        app = Recorder()
        root = Resource()
        root.putChild(b"ws", WebSocketResource(WebSocket(app)))
        site = WebSocketSite(root)
        port, cafile = yield self.serveRoot(root, site=site)
        yield site.shutdown()

        def talk():
            c = H2Client(port, cafile)
            try:
                c.pump(lambda: False)
            except ConnectionError:
                pass
            c.sock.close()
            return c.goaway

        goaway = yield deferToThread(talk)
        self.assertEqual(goaway.error_code, 0)

    @inlineCallbacks
    def test_headTimeout(self):
        """
        An HTTP/2 connection that sends no request within the site's
        headTimeout gets a GOAWAY and is closed.
        """
        port, cafile = yield self.serve(Recorder(), headTimeout=0.3)

        def talk():
            c = H2Client(port, cafile)
            started = time.monotonic()
            try:
                c.pump(lambda: False, limit=5)
            except ConnectionError:
                pass
            c.sock.close()
            return c.goaway, time.monotonic() - started

        goaway, took = yield deferToThread(talk)
        self.assertEqual(goaway.error_code, 0)
        self.assertLess(took, 4)

    @inlineCallbacks
    def test_idleTimeoutSparesOpenSockets(self):
        """
        The site's idle timeout does not close a connection that carries
        an open socket, however quiet; once the socket is gone, it does.
        """
        app = Recorder()
        port, cafile = yield self.serve(app, timeout=0.3)

        def talk():
            c = H2Client(port, cafile)
            c.connectProtocolEnabled()
            ws = c.websocket("/ws")
            c.response(ws)
            time.sleep(1.0)  # three idle timeouts
            c.sendFrame(ws, TEXT, b"still there")
            echo = c.frames(ws)
            c.sendFrame(ws, CLOSE, (1000).to_bytes(2, "big"))
            c.frames(ws)
            c.pump(lambda: ws in c.ended)
            c.endStream(ws)
            try:
                c.pump(lambda: False, limit=5)
            except ConnectionError:
                pass
            c.sock.close()
            return echo, c.goaway

        echo, goaway = yield deferToThread(talk)
        self.assertEqual(echo, [(TEXT, b"still there")])
        self.assertIsNotNone(goaway)


    @inlineCallbacks
    def test_everyFamilyOverHTTP11BesideHTTP2(self):
        """
        While an HTTP/2 connection carries a socket on the TLS port of a
        WebSocketSite, Hixie-76, HyBi-07, HyBi-08 and RFC 6455 clients
        speaking HTTP/1.1 to the same port open theirs and echo
        (C{conn.httpVersion} C{"HTTP/1.1"}), and the HTTP/2 socket goes on.
        """
        app = Recorder()
        root = Resource()
        root.putChild(b"ws", WebSocketResource(WebSocket(app)))
        port, cafile = yield self.serveRoot(root)
        self.addCleanup(self._dropAll, app)

        def talk():
            c = H2Client(port, cafile)
            c.connectProtocolEnabled()
            h2ws = c.websocket("/ws")
            c.response(h2ws)
            echoes = []
            old = TLSHixie76Client(HOST, port, path="/ws")
            old.cafile = cafile
            old.connect()
            old.send_text("hixie-76 ✓")
            echoes.append(old.recv_message())
            old.close()
            for version in (7, 8, 13):
                hybi = TLSHybiClient(HOST, port, path="/ws", version=version)
                hybi.cafile = cafile
                hybi.connect()
                hybi.send_text(f"hybi-{version} ✓")
                echoes.append(hybi.recv_text())
                hybi.close()
            c.sendFrame(h2ws, TEXT, b"h2 still here")
            echoes.append(c.frames(h2ws)[0][1].decode())
            c.close()
            return echoes

        echoes = yield deferToThread(talk)
        self.assertEqual(
            echoes,
            ["hixie-76 ✓", "hybi-7 ✓", "hybi-8 ✓", "hybi-13 ✓", "h2 still here"],
        )
        self.assertEqual(
            [(conn.protocol, conn.httpVersion) for conn in app.conns],
            [
                ("rfc6455", "HTTP/2"),
                ("hixie-76", "HTTP/1.1"),
                ("hybi-07", "HTTP/1.1"),
                ("hybi-08", "HTTP/1.1"),
                ("rfc6455", "HTTP/1.1"),
            ],
        )

@implementer(ISessionStore)
class Store:
    """
    Sessions by the C{sid} cookie: C{good} is Ann's; C{slow}: no lookup
    ever answers.
    """

    cookieNames = ("sid",)

    def __init__(self, slow=False):
        self.slow = slow

    def load(self, sessionId):
        if self.slow:
            return Deferred()
        return succeed({"user": "ann"} if sessionId == "good" else None)


def upgradeStatus(port, cafile, path, extra):
    """
    The status an RFC 6455 upgrade over HTTP/1.1 (TLS, ALPN http/1.1) to
    C{path} with the C{extra} fields gets.
    """
    import socket
    import ssl

    context = ssl.create_default_context(cafile=cafile)
    context.set_alpn_protocols(["http/1.1"])
    fields = b"".join(name + b": " + value + b"\r\n" for name, value in extra)
    head = (
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + fields + b"\r\n"
    )
    with (
        socket.create_connection((HOST, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(head)
        data = b""
        while b"\r\n" not in data and (chunk := tls.recv(4096)):
            data += chunk
    return data.split(b" ", 2)[1]


PAGE = b"""<!doctype html><title>loading</title><script>
const n = 5; let closed = 0, echoed = 0;
for (let i = 0; i < n; i++) {
  const ws = new WebSocket(`wss://${location.host}/ws`);
  ws.onopen = () => ws.send("hello " + i);
  ws.onmessage = e => { if (e.data === "hello " + i) echoed++; ws.close(1000); };
  ws.onclose = e => {
    closed++;
    if (closed === n) document.title = `closed ${echoed} ${e.code} ${e.wasClean}`;
  };
}
</script>"""


class TLSRaw:
    """
    A raw client of L{tests.rawclients} over TLS without ALPN (as clients
    from before HTTP/2 connect): the site speaks HTTP/1.1 to it.
    """

    cafile = ""

    def _open(self):
        import socket
        import ssl

        raw = socket.create_connection((self.host, self.port), self.timeout)
        context = ssl.create_default_context(cafile=self.cafile)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        self.sock.settimeout(self.timeout)


class TLSHixie76Client(TLSRaw, rawclients.Hixie76Client):
    def expected_location(self):
        return "wss" + super().expected_location()[2:]


class TLSHybiClient(TLSRaw, rawclients.HybiClient):
    pass


class HTTP2BrowserTests(ServerTestCase):
    @inlineCallbacks
    def test_chromiumUsesHTTP2Sockets(self):
        """
        A real Chromium loads a page over HTTP/2 and its five wss://
        sockets run as streams of that same connection (RFC 8441, seen on
        the server side), echo and close cleanly.
        """
        from tests import browser_helpers

        if H2Client is None:
            raise SkipTest("h2 is not installed (pip install 'twisted[http2]')")
        missing = browser_helpers.missing_browser_parts()
        if missing:
            raise SkipTest("; ".join(missing))
        from txratchet import http2

        made = []
        original = http2.WebSocketH2Connection.connectionMade

        def counted(channel):
            made.append(channel)
            original(channel)

        self.patch(http2.WebSocketH2Connection, "connectionMade", counted)
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory, True)
        key, cert = makeCertificate(directory)
        app = Recorder()
        root = Resource()
        root.putChild(b"", Data(PAGE, "text/html"))
        root.putChild(b"ws", WebSocketResource(WebSocket(app)))
        spec = f"ssl:0:interface={HOST}:privateKey={key}:certKey={cert}"
        port = yield serverFromString(reactor, spec).listen(WebSocketSite(root))
        self.addCleanup(port.stopListening)

        def browse():
            browser = browser_helpers.Browser(
                directory, extraFlags=[browser_helpers.spki_pin_flag(cert)]
            )
            try:
                browser.driver.get(f"https://localhost:{port.getHost().port}/")
                browser.wait(15).until(lambda d: d.title.startswith("closed"))
                protocol = browser.driver.execute_script(
                    "return performance.getEntriesByType('navigation')[0].nextHopProtocol"
                )
                return browser.driver.title, protocol
            finally:
                browser.quit()

        title, protocol = yield deferToThread(browse)
        self.assertEqual((title, protocol), ("closed 5 1000 true", "h2"))
        self.assertEqual(len(made), 1)  # the page and the sockets: one connection
        self.assertEqual(len(app.conns), 5)
        self.assertEqual({conn.httpVersion for conn in app.conns}, {"HTTP/2"})
        self.assertEqual({(conn.closeCode, conn.wasClean) for conn in app.conns}, {(1000, True)})
        self.assertTrue(all(conn.compression is not None for conn in app.conns))


class TwistdHTTP2Tests(ServerTestCase):
    """
    C{twistd txratchet --web-root ... --tls-cert ...} speaks HTTP/2 by
    default (h2 installed), C{--no-http2} turns it off; on SIGTERM the
    sockets get 1001 and the HTTP/2 connection a GOAWAY once they are
    done. The twistd runs the tree under test (PYTHONPATH), not the
    installed copy.
    """

    timeout = 60

    def setUp(self):
        if H2Client is None:
            raise SkipTest("h2 is not installed (pip install 'twisted[http2]')")

    def startTwistd(self, directory, *args):
        import os
        import subprocess

        from tests.test_twistd import ROOT, TWISTD, freePort

        (directory / "index.html").write_text("<h1>static page</h1>")
        key, cert = makeCertificate(directory)
        port = freePort()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen(
            [
                TWISTD, "-n", "--pidfile=", "txratchet", "--app", "examples.echo.Echo",
                "--port", f"tcp:{port}:interface={HOST}", "--web-root", str(directory),
                "--ws-path", "/ws", "--tls-cert", str(cert), "--tls-key", str(key),
                "--close-timeout", "2", *args,
            ],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )

        def stop():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()

        self.addCleanup(stop)
        return proc, port, str(cert)

    @inlineCallbacks
    def test_http2ByDefaultAndGracefulStop(self):
        from tests.test_twistd import waitForPort

        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory, True)
        proc, port, cafile = self.startTwistd(directory)
        offDirectory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, offDirectory, True)
        off, offPort, offCafile = self.startTwistd(offDirectory, "--no-http2")

        def talk():
            waitForPort(offPort, off)
            plain = H2Client(offPort, offCafile)
            offered = plain.alpn
            plain.sock.close()
            waitForPort(port, proc)
            c = H2Client(port, cafile)
            c.connectProtocolEnabled()
            ws = c.websocket("/ws")
            status = c.response(ws).get(b":status")
            c.sendFrame(ws, TEXT, b"over h2")
            echo = c.frames(ws)
            page = c.body(c.get("/"))
            proc.terminate()
            close = c.frames(ws)
            c.sendFrame(ws, CLOSE, (1001).to_bytes(2, "big"))
            c.pump(lambda: ws in c.ended)
            c.endStream(ws)
            try:
                c.pump(lambda: False)
            except ConnectionError:
                pass
            c.sock.close()
            return offered, c.alpn, status, echo, page, close, c.goaway, proc.wait(15)

        offered, alpn, status, echo, page, close, goaway, code = yield deferToThread(talk)
        self.assertEqual(offered, "http/1.1")
        self.assertEqual((alpn, status), ("h2", b"200"))
        self.assertEqual(echo, [(TEXT, b"over h2")])
        self.assertEqual(page, b"<h1>static page</h1>")
        self.assertEqual(close[0][1][:2], (1001).to_bytes(2, "big"))
        self.assertEqual(goaway.error_code, 0)
        self.assertIn(code, (0, -15))  # twistd re-raises the signal it stopped on


def _wssEcho(port, cafile, path, text):
    """
    An HTTP/1.1 wss:// client (websockets) sends C{text}; returns the echo.
    """
    import ssl

    from websockets.sync.client import connect

    context = ssl.create_default_context(cafile=cafile)
    with connect(f"wss://localhost:{port}{path}", ssl=context, open_timeout=10) as ws:
        ws.send(text)
        return ws.recv(timeout=10)


def _twoH2Sockets(port, cafile):
    """
    Two sockets at unrelated paths over one HTTP/2 connection, and a GET:
    the ALPN choice, the echoes, the GET's status and body.
    """
    c = H2Client(port, cafile)
    try:
        enabled = c.connectProtocolEnabled()
        first, second = c.websocket("/"), c.websocket("/any/path?x=1")
        statuses = [c.response(sid).get(b":status") for sid in (first, second)]
        c.sendFrame(first, TEXT, b"one")
        c.sendFrame(second, TEXT, b"two")
        echoes = [c.frames(first)[0][1], c.frames(second)[0][1]]
        page = c.get("/page")
        status = c.response(page).get(b":status")
        return c.alpn, enabled, statuses, echoes, status, c.body(page)
    finally:
        c.close()


class BareHTTP2Tests(ServerTestCase):
    """
    A bare TLS port (L{txratchet.web.HTTP2Server}, no resource tree):
    ALPN offers h2, every extended CONNECT whatever its path is a socket,
    and HTTP/1.1 clients of every family are served as by C{Server}.
    """

    def setUp(self):
        if H2Client is None:
            raise SkipTest("h2 is not installed (pip install 'twisted[http2]')")

    @inlineCallbacks
    def listen(self, factory):
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory, True)
        key, cert = makeCertificate(directory)
        spec = f"ssl:0:interface={HOST}:privateKey={key}:certKey={cert}"
        port = yield serverFromString(reactor, spec).listen(factory)
        self.addCleanup(port.stopListening)
        self.addCleanup(self._dropH2, factory.site)
        return port.getHost().port, str(cert)

    def _dropH2(self, site):
        for channel in list(site.h2Connections):
            channel.transport.abortConnection()

    @inlineCallbacks
    def test_socketsAtAnyPathAndEveryHTTP11Family(self):
        from txratchet.web import HTTP2Server

        app = Recorder()
        factory = HTTP2Server(WebSocket(app))
        self.addCleanup(HTTP2Tests._dropAll, self, app)
        port, cafile = yield self.listen(factory)

        def talk():
            h2 = _twoH2Sockets(port, cafile)
            echoes = []
            old = TLSHixie76Client(HOST, port, path="/chat")
            old.cafile = cafile
            old.connect()
            old.send_text("hixie-76")
            echoes.append(old.recv_message())
            old.close()
            for version in (7, 8, 13):
                hybi = TLSHybiClient(HOST, port, path="/", version=version)
                hybi.cafile = cafile
                hybi.connect()
                hybi.send_text(f"hybi-{version}")
                echoes.append(hybi.recv_text())
                hybi.close()
            echoes.append(_wssEcho(port, cafile, "/elsewhere", "websockets"))
            return h2, echoes

        h2, echoes = yield deferToThread(talk)
        alpn, enabled, statuses, h2echoes, status, body = h2
        self.assertEqual((alpn, enabled, statuses), ("h2", True, [b"200", b"200"]))
        self.assertEqual(h2echoes, [b"one", b"two"])
        self.assertEqual(status, b"426")
        self.assertIn(b"WebSocket endpoint", body)
        self.assertEqual(echoes, ["hixie-76", "hybi-7", "hybi-8", "hybi-13", "websockets"])
        versions = [conn.httpVersion for conn in app.conns]
        self.assertEqual(versions[:2], ["HTTP/2", "HTTP/2"])
        self.assertEqual(set(versions[2:]), {"HTTP/1.1"})
        self.assertEqual(len(versions), 7)
        self.assertEqual(
            [conn.request.path for conn in app.conns[:2]], ["/", "/any/path"]
        )

    @inlineCallbacks
    def test_httpHandlerAnswersOverHTTP2(self):
        """
        A GET over HTTP/2 gets what the layer's C{httpHandler} answers a
        plain HTTP request on the bare port.
        """
        from txratchet.web import HTTP2Server
        from txratchet.websocket.handshake import httpResponse

        def handler(request):
            if request.path == "/page":
                return httpResponse(200, f"page for {request.method}", [("X-Seen", "yes")])
            return None

        app = Recorder()
        port, cafile = yield self.listen(HTTP2Server(WebSocket(app, httpHandler=handler)))

        def talk():
            c = H2Client(port, cafile)
            try:
                page, other = c.get("/page"), c.get("/other")
                return c.response(page), c.body(page), c.response(other).get(b":status")
            finally:
                c.close()

        headers, body, other = yield deferToThread(talk)
        self.assertEqual(headers[b":status"], b"200")
        self.assertEqual(headers[b"x-seen"], b"yes")
        self.assertNotIn(b"connection", headers)
        self.assertEqual(body, b"page for GET")
        self.assertEqual(other, b"426")

    @inlineCallbacks
    def test_chromiumOnBareTLSPort(self):
        """
        A real Chromium against a bare TLS port (no twisted.web tree): the
        page the layer's C{httpHandler} answers comes over HTTP/2, and its
        five wss:// sockets run as streams of that same connection.
        """
        from tests import browser_helpers
        from txratchet.web import HTTP2Server
        from txratchet.websocket.handshake import httpResponse

        missing = browser_helpers.missing_browser_parts()
        if missing:
            raise SkipTest("; ".join(missing))

        def handler(request):
            return httpResponse(200, PAGE, contentType="text/html")

        app = Recorder()
        factory = HTTP2Server(WebSocket(app, httpHandler=handler))
        self.addCleanup(HTTP2Tests._dropAll, self, app)
        port, cafile = yield self.listen(factory)

        def browse():
            directory = Path(tempfile.mkdtemp())
            browser = browser_helpers.Browser(
                directory, extraFlags=[browser_helpers.spki_pin_flag(Path(cafile))]
            )
            try:
                browser.driver.get(f"https://localhost:{port}/")
                browser.wait(15).until(lambda d: d.title.startswith("closed"))
                protocol = browser.driver.execute_script(
                    "return performance.getEntriesByType('navigation')[0].nextHopProtocol"
                )
                return browser.driver.title, protocol
            finally:
                browser.quit()
                shutil.rmtree(directory, True)

        title, protocol = yield deferToThread(browse)
        self.assertEqual((title, protocol), ("closed 5 1000 true", "h2"))
        self.assertEqual(len(app.conns), 5)
        self.assertEqual({conn.httpVersion for conn in app.conns}, {"HTTP/2"})
        self.assertEqual({conn.path for conn in app.conns}, {"/ws"})

    @inlineCallbacks
    def test_http2Off(self):
        from txratchet.web import HTTP2Server

        app = Recorder()
        self.addCleanup(HTTP2Tests._dropAll, self, app)
        port, cafile = yield self.listen(HTTP2Server(WebSocket(app), http2=False))

        def talk():
            c = H2Client(port, cafile)
            alpn = c.alpn
            c.sock.close()
            return alpn, _wssEcho(port, cafile, "/", "still 1.1")

        self.assertEqual((yield deferToThread(talk)), ("http/1.1", "still 1.1"))


class TwistdBareHTTP2Tests(ServerTestCase):
    """
    C{twistd txratchet --port ssl:...} without C{--web-root}: HTTP/2 on the
    bare TLS port by default, C{--no-http2} turns it off. The twistd runs
    the tree under test (PYTHONPATH), not the installed copy.
    """

    timeout = 60

    def setUp(self):
        if H2Client is None:
            raise SkipTest("h2 is not installed (pip install 'twisted[http2]')")

    def startTwistd(self, directory, *args):
        import os
        import subprocess

        from tests.test_twistd import ROOT, TWISTD, freePort

        key, cert = makeCertificate(directory)
        port = freePort()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen(
            [
                TWISTD, "-n", "--pidfile=", "txratchet", "--app", "examples.echo.Echo",
                "--port", f"ssl:{port}:interface={HOST}:privateKey={key}:certKey={cert}",
                "--close-timeout", "2", *args,
            ],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )

        def stop():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()

        self.addCleanup(stop)
        return proc, port, str(cert)

    @inlineCallbacks
    def test_bareTLSPort(self):
        from tests.test_twistd import waitForPort

        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory, True)
        proc, port, cafile = self.startTwistd(directory)
        off, offPort, offCafile = self.startTwistd(directory, "--no-http2")

        def talk():
            waitForPort(offPort, off)
            plain = H2Client(offPort, offCafile)
            offered = plain.alpn
            plain.sock.close()
            waitForPort(port, proc)
            h2 = _twoH2Sockets(port, cafile)
            old = TLSHixie76Client(HOST, port, path="/")
            old.cafile = cafile
            old.connect()
            old.send_text("hixie-76")
            hixie = old.recv_message()
            old.close()
            return offered, h2, hixie, _wssEcho(port, cafile, "/x", "wss"), _wssEcho(
                offPort, offCafile, "/", "off"
            )

        offered, h2, hixie, wss, wssOff = yield deferToThread(talk)
        alpn, enabled, statuses, echoes, status, _ = h2
        self.assertEqual(offered, "http/1.1")
        self.assertEqual((alpn, enabled, statuses), ("h2", True, [b"200", b"200"]))
        self.assertEqual(echoes, [b"one", b"two"])
        self.assertEqual(status, b"426")
        self.assertEqual((hixie, wss, wssOff), ("hixie-76", "wss", "off"))
