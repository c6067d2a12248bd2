"""
WebSockets in a twisted.web site (one port with pages, static files and a
WSGI app), TLS, the origin check, the block list, trusted proxies and the
onRequest hook; real clients on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint, serverFromString
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.python import usage
from twisted.trial.unittest import SkipTest
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data, File
from twisted.web.wsgi import WSGIResource

from examples.echo import Echo
from tests import rawclients
from tests.test_twistd import ROOT, TWISTD, TwistdTestCase, freePort, waitForPort
from tests.tls import makeCertificate
from tests.util import ServerTestCase
from txratchet import Application, Server, WebSocket, proxy
from txratchet.components import Decorator, IpBlackList, OriginCheck
from txratchet.components.origin import parsePattern
from txratchet.tap import Options
from txratchet.web import SafeFile, WebSocketResource, WebSocketSite
from txratchet.websocket.handshake import HandshakeError, Headers

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

    @inlineCallbacks
    def test_alpnOffersOnlyHTTP11(self):
        """
        With C{http2=False}, a TLS client offering h2 and http/1.1 by ALPN
        (as browsers do) is given http/1.1, which the site then speaks, and
        gets its page; even with the h2 package installed, for which
        twisted.web's Site offers h2.
        """
        chosen, data = yield self._alpnGet(http2=False)
        self.assertEqual(chosen, "http/1.1")
        self.assertIn(b"<html>home</html>", data)

    @inlineCallbacks
    def test_alpnOffersHTTP2(self):
        """
        By default (h2 installed: the C{http2} extra) the site offers h2
        first; a client offering only http/1.1 still gets it and the page.
        """
        from txratchet._twisted import http2Usable

        if not http2Usable():
            raise SkipTest("HTTP/2 is not installed (pip install 'txratchet[http2]')")
        chosen, _ = yield self._alpnGet(http2=True)
        self.assertEqual(chosen, "h2")
        chosen, data = yield self._alpnGet(http2=True, offer=["http/1.1"])
        self.assertEqual(chosen, "http/1.1")
        self.assertIn(b"<html>home</html>", data)

    @inlineCallbacks
    def _alpnGet(self, http2, offer=("h2", "http/1.1")):
        """
        Offer C{offer} by ALPN to a TLS WebSocketSite(http2=C{http2}); the
        protocol chosen, and what a GET / over HTTP/1.1 got (when chosen).
        """
        key, cert = makeCertificate(self._certDir())
        spec = f"ssl:0:interface={HOST}:privateKey={key}:certKey={cert}"
        root = Resource()
        root.putChild(b"", Data(b"<html>home</html>", "text/html"))
        root.putChild(b"ws", WebSocketResource(WebSocket(Echo())))
        port = yield serverFromString(reactor, spec).listen(WebSocketSite(root, http2=http2))
        self.addCleanup(port.stopListening)
        sitePort = port.getHost().port

        def get():
            import socket

            context = ssl.create_default_context(cafile=str(cert))
            context.set_alpn_protocols(list(offer))
            with (
                socket.create_connection((HOST, sitePort), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                chosen = tls.selected_alpn_protocol()
                if chosen != "http/1.1":
                    return chosen, b""
                tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                data = b""
                while b"</html>" not in data and (chunk := tls.recv(65536)):
                    data += chunk
            return chosen, data

        return (yield deferToThread(get))

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

    def test_hostPortPatterns(self):
        """
        Issue 12, item 25: C{host:port} and C{*.domain:port} match the
        origin's host and effective port (the scheme's default when it has
        none), whatever the scheme; C{scheme://host} means its default port.
        """
        check = OriginCheck(Echo(), ["localhost:8133", "*.example.com:8443", "Example.org:80",
                                     "[::1]:8080", "https://secure.test", "http://*.dev.test"])
        allowed = ["http://localhost:8133", "https://localhost:8133", "http://LOCALHOST:8133",
                   "https://a.example.com:8443", "https://a.b.example.com:8443",
                   "http://example.org", "http://example.org:80", "https://example.org:80",
                   "http://[::1]:8080", "https://secure.test", "https://secure.test:443",
                   "http://x.dev.test", "http://x.dev.test:80"]
        refused = ["http://localhost", "http://localhost:8134", "http://127.0.0.1:8133",
                   "http://localhost:8133.evil.test", "https://example.com:8443",
                   "https://a.example.com", "https://example.org", "http://example.org:8080",
                   "http://[::1]", "http://[::2]:8080", "http://secure.test",
                   "https://secure.test:8443", "https://x.dev.test", "http://dev.test",
                   "http://localhost:99999", "http://localhost:x", "null", "", "localhost:8133"]
        for origin in allowed:
            self.assertTrue(check.isAllowed(origin), origin)
        for origin in refused:
            self.assertFalse(check.isAllowed(origin), origin)

    def test_sameHost(self):
        """
        C{sameHost}: an http(s) origin whose host and effective port are the
        request's C{Host} header's is the page's own (what the push and
        Flask chat examples allow); any other host or port is not.
        """
        from txratchet.components.origin import isSameHost

        same = [("http://127.0.0.1:8080", "127.0.0.1:8080"), ("https://Chat.Test", "chat.test"),
                ("https://chat.test", "chat.test:443"), ("http://chat.test:80", "CHAT.test"),
                ("http://[::1]:8080", "[::1]:8080"), ("https://chat.test:8443", "chat.test:8443")]
        other = [("http://evil.example", "chat.test"), ("http://chat.test:8081", "chat.test:8080"),
                 ("http://chat.test", "chat.test:443"), ("https://chat.test", "chat.test:80"),
                 ("null", "chat.test"), ("ws://chat.test", "chat.test"),
                 ("http://chat.test", None), ("http://chat.test", "chat.test:x"),
                 ("http://chat.test.evil.example", "chat.test")]
        for origin, host in same:
            self.assertTrue(isSameHost(origin, host), (origin, host))
        for origin, host in other:
            self.assertFalse(isSameHost(origin, host), (origin, host))

    @inlineCallbacks
    def test_sameHostHandshake(self):
        """
        C{OriginCheck(sameHost=True)}: the page's own origin opens, another
        site's page gets 403, and the allowed list still counts.
        """
        port = yield self.listen(WebSocket(OriginCheck(Echo(), ["friend.test"], sameHost=True)))
        host = f"127.0.0.1:{port}"  # what the raw client sends as Host

        def handshakeStatus(port, origin):
            c = rawclients.HybiClient(HOST, port, origin=origin)
            try:
                c.connect()
            except rawclients.HandshakeError as e:
                return e.status
            c.close()
            return 101

        for origin, status in [(f"http://{host}", 101), ("http://friend.test", 101),
                               ("https://evil.example", 403), (f"http://127.0.0.1:{port + 1}", 403)]:
            got = yield deferToThread(handshakeStatus, port, origin)
            self.assertEqual(got, status, origin)

    def test_malformedPatternsRefused(self):
        """
        Issue 12, item 25: a pattern that could never match (or would match
        everything) is a ValueError at construction, and one line from
        twistd's option parsing.
        """
        for bad, why in [
            ("", "not a host"), ("*", "leave OriginCheck out"), ("null", "not a host"),
            ("example.com/app", "path"), ("https://example.com/app", "path"),
            ("example.com:", "bad port"), ("example.com:0", "bad port"),
            ("example.com:65536", "bad port"), ("example.com:https", "bad port"),
            ("::1", "brackets"), ("[::1", "unclosed"), ("[::g]:80", "IPv6"),
            ("*example.com", "expected host"), ("a.*.example.com", "expected host"),
            ("1.2.3", "IPv4"), ("*.127.0.0.1", "no subdomains"), ("user@example.com", "user"),
            ("ht tp://example.com", "scheme"),
        ]:
            with self.assertRaises(ValueError, msg=bad) as e:
                OriginCheck(Echo(), ["good.test", bad])
            self.assertIn(why, str(e.exception), bad)
            with self.assertRaises(usage.UsageError, msg=bad) as e:
                Options().parseOptions(["--origin", f"good.test,{bad}" if bad else "*"])
            self.assertTrue(str(e.exception).startswith("--origin: "), str(e.exception))
            self.assertNotIn("\n", str(e.exception))
        self.assertEqual(parsePattern("https://App.Test:8443/"), ("https", "app.test", False, 8443))
        self.assertEqual(parsePattern("*.bücher.example"), (None, "xn--bcher-kva.example", True, None))
        # One pattern given as a string is that pattern, not its letters.
        self.assertEqual(OriginCheck(Echo(), "example.com").allowed, ["example.com"])

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

    @inlineCallbacks
    def test_hostPortOriginHandshake(self):
        """Issue 12, item 25: what a browser on http://localhost:8133 sends passes C{localhost:8133}."""
        port = yield self.listen(WebSocket(OriginCheck(Echo(), ["localhost:8133"])))

        def talk(origin, version=13):
            c = rawclients.HybiClient(HOST, port, origin=origin, version=version)
            try:
                c.connect()
            except rawclients.HandshakeError as e:
                return e.status
            c.close()
            return 101

        for origin, status in [("http://localhost:8133", 101), ("https://localhost:8133", 101),
                               ("http://localhost:8134", 403), ("http://localhost", 403)]:
            self.assertEqual((yield deferToThread(talk, origin)), status, origin)
        self.assertEqual((yield deferToThread(talk, "http://localhost:8133", 8)), 101)

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

    def test_mappedAddressesMatchBothWays(self):
        """
        Issue 12, item 20: an IPv4 address and its IPv4-mapped IPv6 form
        (how a dual-stack port shows IPv4 peers) are one address, in the
        block list and in the peer, networks included.
        """
        for spec in ("127.0.0.5", "::ffff:127.0.0.5", "::FFFF:7f00:5"):
            blocked = IpBlackList(Echo(), [spec])
            for host in ("127.0.0.5", "::ffff:127.0.0.5"):
                self.assertTrue(blocked.isBlocked(host), (spec, host))
            for host in ("127.0.0.6", "::ffff:127.0.0.6", "::5", "::127.0.0.5", "nonsense", ""):
                self.assertFalse(blocked.isBlocked(host), (spec, host))
        wide = IpBlackList(Echo(), ["::ffff:127.0.0.0/104"])
        self.assertTrue(wide.isBlocked("127.1.2.3"))
        self.assertTrue(wide.isBlocked("::ffff:127.1.2.3"))
        self.assertFalse(wide.isBlocked("10.0.0.1"))
        ipv6 = IpBlackList(Echo(), ["::/0"])
        self.assertTrue(ipv6.isBlocked("2001:db8::1"))
        self.assertFalse(ipv6.isBlocked("::ffff:192.0.2.1"), "an IPv4 peer, however spelt")
        # "::ffff:10.0.0.0/8" is ::/8 (every IPv4-mapped address): refused, with the fix.
        with self.assertRaises(ValueError) as e:
            IpBlackList(Echo(), ["::ffff:10.0.0.0/8"])
        self.assertIn("write 10.0.0.0/8 or ::ffff:10.0.0.0/104", str(e.exception))
        # Lifting a block works in either spelling.
        blocked = IpBlackList(Echo(), ["::ffff:127.0.0.5"])
        blocked.unblock("127.0.0.5")
        self.assertFalse(blocked.isBlocked("::ffff:127.0.0.5"))
        self.assertEqual(proxy.parseNetwork("::ffff:127.0.0.0/104"), proxy.parseNetwork("127.0.0.0/8"))

    @inlineCallbacks
    def test_blockOnDualStackPort(self):
        """
        Issue 12, item 20, with real sockets: a client at 127.0.0.5 reaches
        an IPv6 socket that takes IPv4 (bound to C{::ffff:127.0.0.1}, the
        loopback share of a C{tcp6:...:interface=\\:\\:} port: its peers show
        up as C{::ffff:127.0.0.5}) and an IPv4 one; either spelling of the
        address blocks it on both, inside and around the WebSocket layer.
        """
        request = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        for spec in ("::ffff:127.0.0.5", "127.0.0.5"):
            for dualStack in (True, False):
                inside = yield self.listenOn(WebSocket(IpBlackList(WhoAmI(), [spec])), dualStack)
                around = yield self.listenOn(IpBlackList(WebSocket(WhoAmI()), [spec]), dualStack)
                case = (spec, dualStack)
                a = yield deferToThread(requestFrom, "127.0.0.5", inside, request)
                b = yield deferToThread(requestFrom, "127.0.0.5", around, request)
                other = yield deferToThread(askPeer, "127.0.0.6", inside)
                self.assertTrue(a.startswith(b"HTTP/1.1 403 "), (case, a))
                self.assertEqual(b, b"", case)
                self.assertEqual(other, "::ffff:127.0.0.6" if dualStack else "127.0.0.6", case)

    @inlineCallbacks
    def listenOn(self, app, dualStack):
        """
        C{Server(app)} on an IPv6 socket that takes IPv4 connections to
        127.0.0.1 (C{dualStack}), or on a plain IPv4 one; the port number.
        """
        if dualStack:
            endpoint = TCP6ServerEndpoint(reactor, 0, interface="::ffff:127.0.0.1")
        else:
            endpoint = TCP4ServerEndpoint(reactor, 0, interface=HOST)
        port = yield endpoint.listen(Server(app))
        self.addCleanup(port.stopListening)
        self.addCleanup(self._dropConnections, app)
        return port.getHost().port


def requestFrom(source, port, request, timeout=2.0):
    """L{rawclients.raw_request} to 127.0.0.1 from another loopback address."""
    chunks = []
    with socket.create_connection((HOST, port), timeout, source_address=(source, 0)) as sock:
        sock.sendall(request)
        for _ in range(100):
            try:
                data = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not data or data.endswith(b"\r\n\r\n"):
                chunks.append(data)
                break
            chunks.append(data)
    return b"".join(chunks)


def askPeer(source, port, headers=None):
    """C{conn.peer.host} as the server sees a client from C{source}."""

    class From(rawclients.HybiClient):
        def _open(self):
            self.sock = socket.create_connection(
                (self.host, self.port), self.timeout, source_address=(source, 0)
            )
            self.sock.settimeout(self.timeout)

    c = From(HOST, port, headers=headers)
    c.connect()
    c.send_text("?")
    info = json.loads(c.recv_text())
    c.close()
    return info["peer"]


class ProxyTests(ServerTestCase):
    @inlineCallbacks
    def _peer(self, trusted, headers, **options):
        port = yield self.listen(WebSocket(WhoAmI(), trustedProxies=trusted, **options))

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
        peer = yield self._peer(["127.0.0.1"], {"Forwarded": 'for="[2001:db8::1]:4711";proto=https'},
                                proxyHeader="Forwarded")
        self.assertEqual(peer[0], "2001:db8::1")

    @inlineCallbacks
    def test_onlyTheChosenHeader(self):
        """
        Issue 12, item 1: only C{proxyHeader} is believed (default
        C{X-Forwarded-For}); a C{Forwarded} the proxy passed on from the
        client is not.
        """
        both = {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=198.51.100.7"}
        default = yield self._peer(["127.0.0.1"], both)
        chosen = yield self._peer(["127.0.0.1"], both, proxyHeader="forwarded")
        onlyForwarded = yield self._peer(["127.0.0.1"], {"Forwarded": "for=198.51.100.7"})
        realIp = yield self._peer(["127.0.0.1"], {**both, "X-Real-IP": "192.0.2.1"},
                                  proxyHeader="X-Real-IP")
        self.assertEqual(default[0], "203.0.113.9")
        self.assertEqual(chosen[0], "198.51.100.7")
        self.assertEqual(onlyForwarded[0], HOST)
        self.assertEqual(realIp[0], "192.0.2.1")

    def test_proxyHeaderChoice(self):
        """Unit: which header L{proxy.clientAddress} reads, and refused names."""
        trusted = proxy.parseNetworks(["127.0.0.1"])
        headers = Headers([("X-Forwarded-For", "203.0.113.9"), ("Forwarded", "for=198.51.100.7"),
                           ("X-Real-IP", "192.0.2.1")])
        self.assertEqual(proxy.clientAddress(HOST, headers, trusted), "203.0.113.9")
        self.assertEqual(proxy.clientAddress(HOST, headers, trusted, "X-Forwarded-For"), "203.0.113.9")
        self.assertEqual(proxy.clientAddress(HOST, headers, trusted, "Forwarded"), "198.51.100.7")
        self.assertEqual(proxy.clientAddress(HOST, headers, trusted, "x-real-ip"), "192.0.2.1")
        self.assertIsNone(proxy.clientAddress("192.0.2.9", headers, trusted))
        self.assertIsNone(
            proxy.clientAddress(HOST, Headers([("Forwarded", "for=198.51.100.7")]), trusted)
        )
        # A Forwarded element without "for" (here the proxy's own) stops the chain.
        self.assertIsNone(proxy.clientAddress(
            HOST, Headers([("Forwarded", "for=198.51.100.7, proto=https")]), trusted, "Forwarded"
        ))
        for bad in ("X-Forwarded-Four", "", "Host"):
            with self.assertRaises(ValueError) as e:
                WebSocket(Echo(), trustedProxies=["127.0.0.1"], proxyHeader=bad)
            self.assertIn("X-Forwarded-For, Forwarded, X-Real-IP", str(e.exception))

    @inlineCallbacks
    def test_mappedTrustedProxy(self):
        """
        Issue 12, item 20 for trusted proxies: C{::ffff:127.0.0.1} trusts the
        IPv4 peer 127.0.0.1 and vice versa, on real IPv4 and dual-stack sockets.
        """
        xff = {"X-Forwarded-For": "203.0.113.9"}
        mapped = yield self._peer(["::ffff:127.0.0.1"], xff)
        self.assertEqual(mapped[0], "203.0.113.9")
        layer = WebSocket(WhoAmI(), trustedProxies=["127.0.0.0/8"])
        port = yield OriginAndBlockTests.listenOn(self, layer, True)
        self.assertEqual((yield deferToThread(askPeer, "127.0.0.5", port, xff)), "203.0.113.9")
        self.assertTrue(proxy.inNetworks("::ffff:127.0.0.1", proxy.parseNetworks(["127.0.0.1"])))

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

    @inlineCallbacks
    def test_pathStrOrBytes(self):
        """
        Issue 14: the path is the whole request path, C{"/ws"} or (as
        C{putChild} names are bytes) C{b"/ws"}, both routing the socket the
        same way; a relative C{"ws"}, which no request would match, is a
        ValueError at once.
        """
        from websockets.sync.client import connect

        from txratchet.web import WebSocketRouter

        for bad in ("ws", b"ws", ""):
            with self.assertRaises(ValueError) as raised:
                WebSocketRouter(bad, WebSocketResource(WebSocket(WhoAmI())), Resource())
            self.assertIn("must be the whole request path, starting with '/'", str(raised.exception))
        for path in ("/ws", b"/ws"):
            layer = WebSocket(WhoAmI())
            pages = Resource()
            pages.putChild(b"ws", Data(b"the page at /ws", "text/plain"))
            root = WebSocketRouter(path, WebSocketResource(layer), pages)
            port = yield TCP4ServerEndpoint(reactor, 0, interface=HOST).listen(Site(root))
            self.addCleanup(port.stopListening)
            self.addCleanup(self._dropConnections, layer)
            portNumber = port.getHost().port

            def talk(portNumber=portNumber):
                page = rawclients.raw_request(
                    HOST, portNumber, b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                with connect(f"ws://{HOST}:{portNumber}/ws?x=1") as ws:
                    ws.send("?")
                    return page, json.loads(ws.recv(timeout=5))

            page, info = yield deferToThread(talk)
            self.assertIn(b"the page at /ws", page, path)
            self.assertEqual((info["path"], info["query"]), ("/ws", "x=1"), path)


def makeTree(parent):
    """
    A web root with what must not leak (dotfiles, a dot-directory, a
    directory without an index, symlinks out of it) and what may be served;
    the root's path.
    """
    outside = parent / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside secret")
    root = parent / "root"
    (root / ".git").mkdir(parents=True)
    (root / "sub").mkdir()
    (root / "withindex").mkdir()
    (root / "index.html").write_text("<h1>home</h1>")
    (root / ".env").write_text("PASSWORD=hunter2")
    (root / ".git" / "config").write_text("[core]")
    (root / "sub" / "a.txt").write_text("file a")
    (root / "withindex" / "index.html").write_text("sub index")
    os.symlink(outside / "secret.txt", root / "secret.txt")
    os.symlink(outside, root / "outdir")
    os.symlink(root / "sub" / "a.txt", root / "alias.txt")  # stays inside: served
    os.symlink(root / "sub", root / "sublink")
    return root


def getStatus(port, path):
    """The status and body of C{GET path} (a raw request: the path is sent as it is)."""
    answer = rawclients.raw_request(
        HOST, port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


#: Path, and what a default (safe) web root answers.
SAFE_ANSWERS = [
    ("/", 200, b"<h1>home</h1>"),
    ("/sub/a.txt", 200, b"file a"),
    ("/alias.txt", 200, b"file a"),
    ("/sublink/a.txt", 200, b"file a"),
    ("/withindex/", 200, b"sub index"),
    ("/.env", 404, None),
    ("/.git/config", 404, None),
    ("/.git/", 404, None),
    ("/sub/", 404, None),
    ("/secret.txt", 404, None),
    ("/outdir/secret.txt", 404, None),
    ("/outdir/", 404, None),
    ("/%2eenv", 404, None),
    ("/sub/..%2f.env", 404, None),
    ("/sub/%2e%2e/.env", 404, None),
    ("/a%00b", 404, None),
    ("/sub/a.txt%00", 404, None),
]


class SafeFileTests(ServerTestCase):
    """Issue 12, item 19: L{SafeFile} in a real Site on loopback, each option on its own."""

    @inlineCallbacks
    def serve(self, **options):
        parent = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, parent, True)
        root = makeTree(parent)
        port = yield TCP4ServerEndpoint(reactor, 0, interface=HOST).listen(
            Site(SafeFile(str(root), **options))
        )
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def answers(self, port, paths):
        return deferToThread(lambda: {path: getStatus(port, path) for path in paths})

    @inlineCallbacks
    def test_safeByDefault(self):
        port = yield self.serve()
        got = yield self.answers(port, [path for path, _, _ in SAFE_ANSWERS])
        for path, status, body in SAFE_ANSWERS:
            self.assertEqual(got[path][0], status, path)
            if body is not None:
                self.assertEqual(got[path][1], body, path)
            else:
                self.assertNotIn(b"hunter2", got[path][1])

    @inlineCallbacks
    def test_listings(self):
        """Listings when asked, without the dotfiles and the symlinks out of the root."""
        port = yield self.serve(listings=True)
        got = yield self.answers(port, ["/sub/", "/.git/", "/.env", "/secret.txt"])
        self.assertEqual(got["/sub/"][0], 200)
        self.assertIn(b"a.txt", got["/sub/"][1])
        self.assertEqual([got[p][0] for p in ("/.git/", "/.env", "/secret.txt")], [404] * 3)

    @inlineCallbacks
    def test_dotfiles(self):
        port = yield self.serve(dotfiles=True)
        got = yield self.answers(port, ["/.env", "/.git/config", "/sub/", "/secret.txt"])
        self.assertEqual(got["/.env"], (200, b"PASSWORD=hunter2"))
        self.assertEqual(got["/.git/config"], (200, b"[core]"))
        self.assertEqual((got["/sub/"][0], got["/secret.txt"][0]), (404, 404))

    @inlineCallbacks
    def test_followSymlinks(self):
        port = yield self.serve(followSymlinks=True)
        got = yield self.answers(port, ["/secret.txt", "/outdir/secret.txt", "/.env", "/outdir/"])
        self.assertEqual(got["/secret.txt"], (200, b"outside secret"))
        self.assertEqual(got["/outdir/secret.txt"], (200, b"outside secret"))
        self.assertEqual((got["/.env"][0], got["/outdir/"][0]), (404, 404))

    def test_listingHidesWhatIsNotServed(self):
        parent = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, parent, True)
        root = makeTree(parent)
        names = SafeFile(str(root), listings=True).listNames()
        self.assertEqual(names, ["alias.txt", "index.html", "sub", "sublink", "withindex"])
        everything = SafeFile(str(root), listings=True, dotfiles=True, followSymlinks=True)
        self.assertIn(".env", everything.listNames())
        self.assertIn("outdir", everything.listNames())


class WebRootTwistdTests(TwistdTestCase):
    """
    Issue 12, items 19 and 25 through C{twistd txratchet}: C{--web-root} is
    safe by default and each C{--web-*} flag allows one thing back;
    C{--origin localhost:PORT} lets that page's socket in.
    """

    def test_webRootSafeByDefault(self):
        parent = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, parent, True)
        root = makeTree(parent)
        safe, loose = freePort(), freePort()
        procs = [
            self.startTwistd(
                "--app", "examples.echo.Echo", "--port", f"tcp:{safe}:interface={HOST}",
                "--web-root", str(root), "--ws-path", "/ws", "--origin", f"localhost:{safe}",
            ),
            self.startTwistd(
                "--app", "examples.echo.Echo", "--port", f"tcp:{loose}:interface={HOST}",
                "--web-root", str(root), "--web-listings", "--web-dotfiles",
                "--web-follow-symlinks",
            ),
        ]

        def talk():
            from websockets.exceptions import InvalidStatus
            from websockets.sync.client import connect

            waitForPort(safe, procs[0])
            waitForPort(loose, procs[1])
            out = {
                "safe": {path: getStatus(safe, path) for path, _, _ in SAFE_ANSWERS},
                "loose": {path: getStatus(loose, path)
                          for path in ("/sub/", "/.env", "/.git/config", "/secret.txt")},
            }
            with connect(f"ws://{HOST}:{safe}/ws", origin=f"http://localhost:{safe}") as ws:
                ws.send("same page")
                out["echo"] = ws.recv(timeout=5)
            try:
                connect(f"ws://{HOST}:{safe}/ws", origin="http://localhost:1")
                out["other"] = 101
            except InvalidStatus as e:
                out["other"] = e.response.status_code
            return out

        def check(out):
            for path, status, body in SAFE_ANSWERS:
                self.assertEqual(out["safe"][path][0], status, path)
                if body is not None:
                    self.assertEqual(out["safe"][path][1], body, path)
            loose = out["loose"]
            self.assertEqual(loose["/sub/"][0], 200)
            self.assertIn(b"a.txt", loose["/sub/"][1])
            self.assertEqual(loose["/.env"], (200, b"PASSWORD=hunter2"))
            self.assertEqual(loose["/.git/config"], (200, b"[core]"))
            self.assertEqual(loose["/secret.txt"], (200, b"outside secret"))
            self.assertEqual((out["echo"], out["other"]), ("same page", 403))

        return deferToThread(talk).addCallback(check)

    def test_blockOnDualStackPort(self):
        """
        Issue 12, item 20 through twistd: on an IPv6 port taking IPv4
        (C{tcp6:...:interface=\\:\\:ffff\\:127.0.0.1}, the loopback share of
        C{interface=\\:\\:}), C{--block} in either spelling refuses the peer.
        """
        port = freePort()
        proc = self.startTwistd(
            "--app", "examples.echo.Echo",
            "--port", f"tcp6:{port}:interface=\\:\\:ffff\\:127.0.0.1",
            "--block", "::ffff:127.0.0.5,127.0.0.7",
        )
        request = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")

        def talk():
            waitForPort(port, proc)
            return {source: requestFrom(source, port, request).split(b"\r\n")[0]
                    for source in ("127.0.0.5", "127.0.0.6", "127.0.0.7")}

        def check(heads):
            self.assertEqual(heads, {"127.0.0.5": b"HTTP/1.1 403 Forbidden",
                                     "127.0.0.6": b"HTTP/1.1 101 Switching Protocols",
                                     "127.0.0.7": b"HTTP/1.1 403 Forbidden"})

        return deferToThread(talk).addCallback(check)

    def test_badOptionsRefused(self):
        """A bad --origin or --proxy-header: a line naming the option and the fault, status 1."""
        for args, expected in [
            (["--origin", "localhost:8133/chat"], "--origin: origin pattern 'localhost:8133/chat' "),
            (["--proxy-header", "X-Forwarded-Four"], "--proxy-header: proxy header must be one of "),
        ]:
            env = dict(os.environ)
            env.pop("PYTHONPATH", None)
            result = subprocess.run(
                [TWISTD, "-n", "--pidfile=", "txratchet", *args],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
            )
            self.assertEqual(result.returncode, 1, result)
            self.assertIn(expected, result.stdout + result.stderr)
            self.assertNotIn("Traceback", result.stdout + result.stderr)


class WebSocketSiteTests(ServerTestCase):
    """
    Issue 12 item 21 on a twisted.web port: L{WebSocketSite} refuses what
    cannot be an HTTP request at once and bounds the first request head in
    time, as a bare WebSocket port does; a plain C{Site} waited for a whole
    line or its 12-hour idle timeout.
    """

    @inlineCallbacks
    def serve(self, **kwargs):
        from txratchet.web import WebSocketSite

        root = Resource()
        root.putChild(b"", Data(b"<html>home</html>", "text/html"))
        layer = WebSocket(Echo())
        root.putChild(b"ws", WebSocketResource(layer))
        port = yield TCP4ServerEndpoint(reactor, 0, interface=HOST).listen(
            WebSocketSite(root, **kwargs)
        )
        self.addCleanup(port.stopListening)
        self.addCleanup(self._dropConnections, layer)
        return port.getHost().port

    @inlineCallbacks
    def test_garbageRefusedAtOnce(self):
        """Each gets 400 well before the client gives up (3 s), the server's head timeout being 10 s."""
        import random

        port = yield self.serve()
        noise = [random.Random(seed).randbytes(4096) for seed in range(3)]
        garbage = [
            b" GET / HTTP/1.1",
            b"GET  /",
            b"GET /x  HTTP/1.1",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b" " + noise[0],
            b"GET " + noise[1],
            noise[2],
        ]
        answers = yield deferToThread(
            lambda: [rawclients.raw_request(HOST, port, g, timeout=3) for g in garbage]
        )
        for data, answer in zip(garbage, answers, strict=True):
            self.assertTrue(answer.startswith(b"HTTP/1.1 400 "), (data[:20], answer[:60]))

    @inlineCallbacks
    def test_headTimeout(self):
        port = yield self.serve(headTimeout=0.3)
        answer = yield deferToThread(
            rawclients.raw_request, HOST, port, b"GET / HTTP/1.1\r\nHost: x\r\n", 3
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 408 "), answer)

    @inlineCallbacks
    def test_pagesAndSocketsUnchanged(self):
        """
        Pages (also a second request on a kept-alive connection) and the
        WebSocket work, and a WebSocket idle longer than the head timeout
        stays open.
        """
        port = yield self.serve(headTimeout=0.3)

        def talk():
            import http.client

            from websockets.sync.client import connect

            page = http.client.HTTPConnection(HOST, port, timeout=5)
            bodies = []
            for _ in range(2):
                page.request("GET", "/")
                bodies.append(page.getresponse().read())
            page.close()
            with connect(f"ws://{HOST}:{port}/ws") as ws:
                import time

                time.sleep(0.6)
                ws.send("still here")
                return bodies, ws.recv(timeout=5)

        bodies, echo = yield deferToThread(talk)
        self.assertEqual(bodies, [b"<html>home</html>"] * 2)
        self.assertEqual(echo, "still here")


class WebRootHeadTwistdTests(TwistdTestCase):
    """
    Issue 12 item 21 through C{twistd txratchet --web-root}: the port is a
    L{WebSocketSite}, so noise gets 400 at once and a request head that
    does not arrive gets 408 after C{--handshake-timeout}.
    """

    def test_garbageAndSlowHead(self):
        parent = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, parent, True)
        port = freePort()
        proc = self.startTwistd(
            "--app", "examples.echo.Echo", "--port", f"tcp:{port}:interface={HOST}",
            "--web-root", str(parent), "--handshake-timeout", "0.5",
        )

        def talk():
            waitForPort(port, proc)
            return [
                rawclients.raw_request(HOST, port, data, timeout=3)
                for data in (b" GET / HTTP/1.1", b"GET  /", b"GET / HTTP/1.1\r\nHost: x\r\n")
            ]

        def check(answers):
            self.assertTrue(answers[0].startswith(b"HTTP/1.1 400 "), answers[0])
            self.assertTrue(answers[1].startswith(b"HTTP/1.1 400 "), answers[1])
            self.assertTrue(answers[2].startswith(b"HTTP/1.1 408 "), answers[2])

        return deferToThread(talk).addCallback(check)
