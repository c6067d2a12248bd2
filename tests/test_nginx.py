"""
Behind a real nginx reverse proxy (started by L{tests.services.Nginx} with
the configuration the README recommends): upgrades pass, messages of every
size and compression pass both ways, and C{conn.peer} is what the
C{X-Forwarded-For} chain nginx builds says, believed only as far as
C{trustedProxies} allows.
"""

from __future__ import annotations

import json
import os

from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread

from tests import rawclients, services
from tests.util import ServerTestCase
from txratchet import Application, WebSocket
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
        The client says C{X-Forwarded-For: 203.0.113.5}; nginx appends the
        address it came from, 127.0.0.1, which is trusted: the rightmost
        untrusted address, 203.0.113.5, is C{conn.peer}. (The test client
        itself is on the trusted 127.0.0.1, so its claim is believed; at an
        edge proxy use C{/edge}'s C{X-Forwarded-For $remote_addr}.)
        """
        port = yield self.proxy(WebSocket(WhoAmI(), trustedProxies=["127.0.0.1"]))
        _, plain = yield deferToThread(ask, port)
        _, forwarded = yield deferToThread(ask, port, headers={"X-Forwarded-For": "203.0.113.5"})
        _, edge = yield deferToThread(ask, port, "/edge", {"X-Forwarded-For": "203.0.113.5"})
        self.assertEqual((plain["xff"], plain["peer"]), ("127.0.0.1", "127.0.0.1"))
        self.assertEqual(forwarded["xff"], "203.0.113.5, 127.0.0.1")
        self.assertEqual((forwarded["peer"], forwarded["transportPeer"]), ("203.0.113.5", HOST))
        self.assertEqual((edge["xff"], edge["peer"]), ("127.0.0.1", "127.0.0.1"))

    @inlineCallbacks
    def test_untrustedNginx(self):
        """Without trusting nginx's address, the header is ignored."""
        for trusted in ([], ["10.0.0.0/8"]):
            port = yield self.proxy(WebSocket(WhoAmI(), trustedProxies=trusted))
            _, info = yield deferToThread(ask, port, headers={"X-Forwarded-For": "203.0.113.5"})
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
