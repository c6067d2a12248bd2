"""
WebSockets in a twisted.web site (one port with pages, static files and a
WSGI app), TLS, the origin check, the block list, trusted proxies and the
onRequest hook; real clients on loopback.
"""

from __future__ import annotations

import json
import shutil
import ssl
import tempfile
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint, serverFromString
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data, File
from twisted.web.wsgi import WSGIResource

from examples.echo import Echo
from tests import rawclients
from tests.tls import makeCertificate
from tests.util import ServerTestCase
from txratchet import Application, Server, WebSocket
from txratchet.components import Decorator, IpBlackList, OriginCheck
from txratchet.web import WebSocketResource
from txratchet.websocket.handshake import HandshakeError

HOST = "127.0.0.1"


class WhoAmI(Application):
    def onMessage(self, conn, msg):
        conn.send(json.dumps({
            "path": conn.path, "query": conn.query, "protocol": conn.protocol,
            "peer": conn.peer.host, "transportPeer": conn.transportPeer.host,
            "cookies": conn.cookies,
        }))


def wsgiApp(environ, startResponse):
    startResponse("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi says hi from " + environ["PATH_INFO"].encode()]


class SiteTests(ServerTestCase):
    @inlineCallbacks
    def makeSite(self, app, endpoint=None):
        static = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, static, True)
        (static / "hello.txt").write_text("static hello")
        root = Resource()
        root.putChild(b"", Data(b"<html>home</html>", "text/html"))
        root.putChild(b"static", File(str(static)))
        root.putChild(b"wsgi", WSGIResource(reactor, reactor.getThreadPool(), wsgiApp))
        root.putChild(b"ws", WebSocketResource(app))
        site = Site(root)
        if endpoint is None:
            endpoint = TCP4ServerEndpoint(reactor, 0, interface=HOST)
        port = yield endpoint.listen(site)
        self.addCleanup(port.stopListening)
        self.addCleanup(self._dropConnections, app)
        return port.getHost().port

    @inlineCallbacks
    def test_onePortForEverything(self):
        port = yield self.makeSite(WebSocket(WhoAmI()))

        def talk():
            from websockets.sync.client import connect

            get = lambda path: rawclients.raw_request(  # noqa: E731
                HOST, port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
            )
            out = {"home": get("/"), "static": get("/static/hello.txt"),
                   "wsgi": get("/wsgi/page"), "plain": get("/ws")}
            with connect(f"ws://{HOST}:{port}/ws?room=1",
                         additional_headers={"Cookie": "sid=42"}) as ws:
                ws.send("?")
                out["modern"] = json.loads(ws.recv())
            h = rawclients.Hixie76Client(HOST, port, "/ws")
            h.connect()
            h.send_text("?")
            out["hixie"] = json.loads(h.recv_message())
            h.close()
            c = rawclients.HybiClient(HOST, port, "/ws", version=8)
            c.connect()
            c.send_text("?")
            out["hybi"] = json.loads(c.recv_text())
            c.close()
            return out

        out = yield deferToThread(talk)
        self.assertIn(b"<html>home</html>", out["home"])
        self.assertIn(b"static hello", out["static"])
        self.assertIn(b"wsgi says hi from /page", out["wsgi"])
        self.assertTrue(out["plain"].startswith(b"HTTP/1.1 426 "), out["plain"][:80])
        self.assertIn(b"sec-websocket-version: 13, 8, 7", out["plain"].lower())
        self.assertIn(b" 426 Upgrade Required", out["plain"])
        self.assertEqual(out["modern"]["path"], "/ws")
        self.assertEqual(out["modern"]["query"], "room=1")
        self.assertEqual(out["modern"]["cookies"], {"sid": "42"})
        self.assertEqual(out["modern"]["protocol"], "rfc6455")
        self.assertEqual(out["hixie"]["protocol"], "hixie-76")
        self.assertEqual(out["hybi"]["protocol"], "hybi-08")

    @inlineCallbacks
    def test_wss(self):
        """wss:// through the resource and through a bare Server, with a real TLS client."""
        key, cert = makeCertificate(self._certDir())
        spec = f"ssl:0:interface={HOST}:privateKey={key}:certKey={cert}"
        sitePort = yield self.makeSite(WebSocket(Echo()), serverFromString(reactor, spec))
        bare = yield serverFromString(reactor, spec).listen(Server(WebSocket(WhoAmI())))
        self.addCleanup(bare.stopListening)
        barePort = bare.getHost().port

        def talk():
            from websockets.sync.client import connect

            context = ssl.create_default_context(cafile=str(cert))
            with connect(f"wss://localhost:{sitePort}/ws", ssl=context) as ws:
                ws.send("secure ✓")
                first = ws.recv()
            with connect(f"wss://localhost:{barePort}/", ssl=context) as ws:
                ws.send("?")
                second = json.loads(ws.recv())
            return first, second

        first, second = yield deferToThread(talk)
        self.assertEqual(first, "secure ✓")
        self.assertEqual(second["protocol"], "rfc6455")

    def _certDir(self):
        d = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, d, True)
        return d


class OriginAndBlockTests(ServerTestCase):
    def test_originPatterns(self):
        check = OriginCheck(Echo(), ["example.com", "*.example.org", "https://app.test:8443"])
        self.assertTrue(check.isAllowed("https://example.com"))
        self.assertTrue(check.isAllowed("http://EXAMPLE.com:8080"))
        self.assertFalse(check.isAllowed("https://evil.example.com"))
        self.assertTrue(check.isAllowed("https://a.b.example.org"))
        self.assertFalse(check.isAllowed("https://example.org"))
        self.assertFalse(check.isAllowed("https://badexample.org"))
        self.assertTrue(check.isAllowed("https://app.test:8443"))
        self.assertFalse(check.isAllowed("http://app.test:8443"))
        self.assertFalse(check.isAllowed("null"))

    @inlineCallbacks
    def test_originRefused(self):
        port = yield self.listen(WebSocket(OriginCheck(Echo(), ["good.test"])))

        def talk(origin, version=13):
            c = rawclients.HybiClient(HOST, port, origin=origin, version=version)
            try:
                c.connect()
            except rawclients.HandshakeError as e:
                return e.status, e.response
            c.send_text("hi")
            answer = c.recv_text()
            c.close()
            return 101, answer

        good = yield deferToThread(talk, "https://good.test")
        bad = yield deferToThread(talk, "https://evil.test")
        badHybi = yield deferToThread(talk, "https://evil.test", 8)
        self.assertEqual(good, (101, "hi"))
        self.assertEqual(bad[0], 403)
        self.assertIn(b"Origin not allowed: https://evil.test", bad[1] + (yield self._body(port)))
        self.assertEqual(badHybi[0], 403)

    def _body(self, port):
        return deferToThread(
            rawclients.raw_request, HOST, port,
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Origin: https://evil.test\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )

    @inlineCallbacks
    def test_blockListInsideAndAround(self):
        inside = yield self.listen(WebSocket(IpBlackList(Echo(), ["127.0.0.0/8"])))
        around = yield self.listen(IpBlackList(WebSocket(Echo()), ["127.0.0.1"]))
        allowed = yield self.listen(WebSocket(IpBlackList(Echo(), ["10.0.0.0/8", "::1"])))
        request = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        a = yield deferToThread(rawclients.raw_request, HOST, inside, request)
        b = yield deferToThread(rawclients.raw_request, HOST, around, request)
        c = yield deferToThread(rawclients.raw_request, HOST, allowed, request, 0.5)
        self.assertTrue(a.startswith(b"HTTP/1.1 403 "), a)
        self.assertEqual(b, b"", "closed without a word before any layer saw it")
        self.assertTrue(c.startswith(b"HTTP/1.1 101 "), c)


class ProxyTests(ServerTestCase):
    @inlineCallbacks
    def _peer(self, trusted, headers):
        port = yield self.listen(WebSocket(WhoAmI(), trustedProxies=trusted))

        def talk():
            c = rawclients.HybiClient(HOST, port, headers=headers)
            c.connect()
            c.send_text("?")
            info = json.loads(c.recv_text())
            c.close()
            return info

        info = yield deferToThread(talk)
        return info["peer"], info["transportPeer"]

    @inlineCallbacks
    def test_trustedProxy(self):
        peer = yield self._peer(["127.0.0.1"], {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"})
        self.assertEqual(peer, ("203.0.113.9", HOST))

    @inlineCallbacks
    def test_chainOfTrustedProxies(self):
        peer = yield self._peer(["127.0.0.0/8", "10.0.0.0/8"],
                                {"X-Forwarded-For": "1.2.3.4, 203.0.113.9, 10.1.1.1"})
        self.assertEqual(peer[0], "203.0.113.9")

    @inlineCallbacks
    def test_forwardedHeader(self):
        peer = yield self._peer(["127.0.0.1"], {"Forwarded": 'for="[2001:db8::1]:4711";proto=https'})
        self.assertEqual(peer[0], "2001:db8::1")

    @inlineCallbacks
    def test_untrustedPeerIgnored(self):
        peer = yield self._peer(["10.0.0.0/8"], {"X-Forwarded-For": "203.0.113.9"})
        self.assertEqual(peer, (HOST, HOST))


class Slow(Decorator):
    """Decides after a delay: accept, or refuse with 401."""

    def __init__(self, app, refuse):
        super().__init__(app)
        self.refuse = refuse

    def onRequest(self, conn, request):
        def decide():
            if self.refuse:
                raise HandshakeError(401, "Who are you?")

        return deferLater(reactor, 0.1, decide)


class OnRequestTests(ServerTestCase):
    @inlineCallbacks
    def test_asynchronousDecision(self):
        yes = yield self.listen(WebSocket(Slow(Echo(), False)))
        no = yield self.listen(WebSocket(Slow(Echo(), True)))

        def talk(port):
            c = rawclients.HybiClient(HOST, port)
            # Frames sent before the answer are kept until the decision.
            try:
                c.connect()
            except rawclients.HandshakeError as e:
                return e.status
            c.send_text("early")
            answer = c.recv_text()
            c.close()
            return answer

        self.assertEqual((yield deferToThread(talk, yes)), "early")
        self.assertEqual((yield deferToThread(talk, no)), 401)


class RouterTests(ServerTestCase):
    @inlineCallbacks
    def test_socketAtRootNextToWSGI(self):
        """WebSocketRouter: upgrades at / go to the socket, the rest to a WSGI app."""
        from txratchet.web import WebSocketRouter

        layer = WebSocket(WhoAmI())
        root = WebSocketRouter(
            "/", WebSocketResource(layer), WSGIResource(reactor, reactor.getThreadPool(), wsgiApp)
        )
        port = yield TCP4ServerEndpoint(reactor, 0, interface=HOST).listen(Site(root))
        self.addCleanup(port.stopListening)
        self.addCleanup(self._dropConnections, layer)
        portNumber = port.getHost().port

        def talk():
            from websockets.sync.client import connect

            pages = [
                rawclients.raw_request(
                    HOST, portNumber, f"GET {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
                )
                for p in ("/", "/deep/page")
            ]
            with connect(f"ws://{HOST}:{portNumber}/") as ws:
                ws.send("?")
                info = json.loads(ws.recv())
            return pages, info

        pages, info = yield deferToThread(talk)
        self.assertIn(b"wsgi says hi from /", pages[0])
        self.assertIn(b"wsgi says hi from /deep/page", pages[1])
        self.assertEqual(info["path"], "/")
