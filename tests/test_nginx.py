"""
Behind a real nginx reverse proxy (started by L{tests.services.Nginx} with
the configuration the README recommends): upgrades pass, messages of every
size and compression pass both ways, and C{conn.peer} is what the
C{X-Forwarded-For} chain nginx builds says, believed only as far as
C{trustedProxies} allows, and never from a header the client wrote.
"""

from __future__ import annotations

import json
import os
import socket

from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread

from tests import rawclients, services
from tests.util import ServerTestCase
from txratchet import Application, WebSocket
from txratchet.components import IpBlackList
from txratchet.components.session import FlaskCookieSessions, SessionProvider

HOST = "127.0.0.1"


class WhoAmI(Application):
    """C{"?"} gets what the server knows about the connection; the rest is echoed."""

    def onMessage(self, conn, msg):
        if msg != "?":
            conn.send(msg)
            return
        conn.send(json.dumps({
            "peer": conn.peer.host,
            "transportPeer": conn.transportPeer.host,
            "xff": conn.headers.get("X-Forwarded-For"),
            "forwarded": conn.headers.get("Forwarded"),
            "proto": conn.headers.get("X-Forwarded-Proto"),
            "host": conn.headers.get("Host"),
            "protocol": conn.protocol,
            "compression": conn.compression is not None,
            "session": getattr(conn, "session", None),
        }))


def ask(port, path="/ws", headers=None, echo=()):
    """
    Through nginx with the C{websockets} client: echo each of C{echo}, then
    ask C{"?"}. Returns C{(echoes, info)}, or C{(status, body)} if refused.
    """
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    try:
        with connect(f"ws://{HOST}:{port}{path}", additional_headers=headers,
                     max_size=None, open_timeout=5) as ws:
            echoes = []
            for message in echo:
                ws.send(message)
                echoes.append(ws.recv(timeout=10))
            ws.send("?")
            return echoes, json.loads(ws.recv(timeout=5))
    except InvalidStatus as e:
        return e.response.status_code, bytes(e.response.body or b"")


class FromAddress(rawclients.HybiClient):
    """A raw RFC 6455 client whose socket is bound to C{source} (another loopback address)."""

    def __init__(self, source, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.source = source

    def _open(self):
        self.sock = socket.create_connection(
            (self.host, self.port), self.timeout, source_address=(self.source, 0)
        )
        self.sock.settimeout(self.timeout)


def askFrom(source, port, path, headers):
    """C{"?"} from C{source} through nginx: the server's answer, or the refusal's status."""
    c = FromAddress(source, HOST, port, path, headers=headers)
    try:
        c.connect()
    except rawclients.HandshakeError as e:
        return e.status
    c.send_text("?")
    info = json.loads(c.recv_text())
    c.close()
    return info


SPOOF = {"Forwarded": "for=198.51.100.7", "X-Forwarded-For": "198.51.100.8"}


class NginxTests(ServerTestCase):
    @inlineCallbacks
    def proxy(self, app):
        """Serve C{app} on loopback with nginx in front; nginx's port."""
        upstream = yield self.listen(app)
        self.nginx = services.Nginx(services.tempDir(self, "nginx-"), upstream)
        yield deferToThread(self.nginx.start)
        self.addCleanup(deferToThread, self.nginx.stop)
        return self.nginx.port

    @inlineCallbacks
    def test_echoThroughNginx(self):
        """Text, binary, a 4 MiB message, compression, HyBi-08 and RFC 6455 framing."""
        port = yield self.proxy(WebSocket(WhoAmI(), trustedProxies=["127.0.0.1"]))
        big = os.urandom(4 << 20)  # incompressible: 4 MiB on the wire, both ways
        echoes, info = yield deferToThread(ask, port, echo=["héllo", b"\x00\xff", big])
        self.assertEqual(echoes, ["héllo", b"\x00\xff", big])
        self.assertEqual(info["protocol"], "rfc6455")
        self.assertTrue(info["compression"], "permessage-deflate negotiated through nginx")
        self.assertEqual(info["host"], "127.0.0.1")
        self.assertEqual(info["proto"], "http")

        def raw(version):
            c = rawclients.HybiClient(HOST, port, "/ws", version=version)
            c.connect()
            c.send_text("raw ✓")
            answer = c.recv_text()
            c.close()
            return answer

        self.assertEqual((yield deferToThread(raw, 8)), "raw ✓")
        self.assertEqual((yield deferToThread(raw, 13)), "raw ✓")
        self.assertIn('"GET /ws HTTP/1.1" 101', (self.nginx.workdir / "access.log").read_text())

    @inlineCallbacks
    def test_peerFromTrustedNginx(self):
        """
        At C{/chain} the client says C{X-Forwarded-For: 203.0.113.5}; nginx
        appends the address it came from, 127.0.0.1, which is trusted: the
        rightmost untrusted address, 203.0.113.5, is C{conn.peer}. (The test
        client itself is on the trusted 127.0.0.1, so its claim is believed;
        at the edge the README's C{X-Forwarded-For $remote_addr} at C{/ws}
        overwrites it.)
        """
        port = yield self.proxy(WebSocket(WhoAmI(), trustedProxies=["127.0.0.1"]))
        _, plain = yield deferToThread(ask, port)
        _, chained = yield deferToThread(ask, port, "/chain", {"X-Forwarded-For": "203.0.113.5"})
        _, edge = yield deferToThread(ask, port, "/ws", {"X-Forwarded-For": "203.0.113.5"})
        self.assertEqual((plain["xff"], plain["peer"]), ("127.0.0.1", "127.0.0.1"))
        self.assertEqual(chained["xff"], "203.0.113.5, 127.0.0.1")
        self.assertEqual((chained["peer"], chained["transportPeer"]), ("203.0.113.5", HOST))
        self.assertEqual((edge["xff"], edge["peer"]), ("127.0.0.1", "127.0.0.1"))

    @inlineCallbacks
    def test_forwardedSpoofBlocked(self):
        """
        Issue 12, item 1: behind the README's nginx, with nginx trusted and
        127.0.0.5 blocked, a client at 127.0.0.5 claiming another address in
        C{Forwarded} (and C{X-Forwarded-For}) is still refused (403): nginx
        overwrites C{X-Forwarded-For} and clears C{Forwarded}, and only
        C{X-Forwarded-For} (the C{proxyHeader} default) is believed anyway,
        even through a location that lets C{Forwarded} pass.
        """
        port = yield self.proxy(
            WebSocket(IpBlackList(WhoAmI(), ["127.0.0.5"]), trustedProxies=["127.0.0.1"])
        )
        for path in ("/ws", "/passforwarded"):
            status = yield deferToThread(askFrom, "127.0.0.5", port, path, SPOOF)
            self.assertEqual(status, 403, path)
        other = yield deferToThread(askFrom, "127.0.0.6", port, "/ws", SPOOF)
        self.assertEqual(other["peer"], "127.0.0.6")

    @inlineCallbacks
    def test_forwardedSpoofIgnored(self):
        """
        C{conn.peer} is the client's real address whatever it claims; the
        README's location does not even pass the client's C{Forwarded} on.
        """
        port = yield self.proxy(WebSocket(WhoAmI(), trustedProxies=["127.0.0.1"]))
        viaReadme = yield deferToThread(askFrom, "127.0.0.5", port, "/ws", SPOOF)
        passed = yield deferToThread(askFrom, "127.0.0.5", port, "/passforwarded", SPOOF)
        self.assertEqual(
            (viaReadme["peer"], viaReadme["xff"], viaReadme["forwarded"]),
            ("127.0.0.5", "127.0.0.5", None),
        )
        self.assertEqual((passed["peer"], passed["forwarded"]), ("127.0.0.5", "for=198.51.100.7"))

    def test_readmeSaysWhatIsTested(self):
        """The README's nginx block is the one these tests run (the upstream aside)."""
        readme = (services.REPO_ROOT / "README.md").read_text("utf-8")
        lines = [line.strip() for line in readme.splitlines()]
        for snippet in (services.NGINX_LOCATION.format(upstream=8080), services.NGINX_MAP):
            wanted = [line.strip() for line in snippet.splitlines()]
            self.assertTrue(
                any(lines[i : i + len(wanted)] == wanted for i in range(len(lines))),
                "README.md's nginx block differs from tests/services.py:\n" + snippet,
            )

    @inlineCallbacks
    def test_untrustedNginx(self):
        """Without trusting nginx's address, the header is ignored."""
        for trusted in ([], ["10.0.0.0/8"]):
            port = yield self.proxy(WebSocket(WhoAmI(), trustedProxies=trusted))
            _, info = yield deferToThread(
                ask, port, "/chain", {"X-Forwarded-For": "203.0.113.5"}
            )
            self.assertEqual(info["xff"], "203.0.113.5, 127.0.0.1")
            self.assertEqual(info["peer"], "127.0.0.1", trusted)

    @inlineCallbacks
    def test_sessionThroughNginx(self):
        """The session cookie passes nginx; a refusal (403) comes back through it."""
        from flask import Flask

        flaskApp = Flask(__name__)
        flaskApp.secret_key = "nginx test"
        with flaskApp.test_request_context():
            from flask.sessions import SecureCookieSessionInterface

            cookie = SecureCookieSessionInterface().get_signing_serializer(flaskApp).dumps(
                {"name": "ann"}
            )
        app = WebSocket(SessionProvider(WhoAmI(), FlaskCookieSessions(flaskApp)),
                        trustedProxies=["127.0.0.1"])
        port = yield self.proxy(app)
        _, info = yield deferToThread(ask, port, headers={"Cookie": f"session={cookie}"})
        refused = yield deferToThread(ask, port)
        self.assertEqual(info["session"], {"name": "ann"})
        self.assertEqual(refused, (403, b"A valid session is required\n"))
