"""
WebSockets over HTTP/2 (RFC 8441) on the TLS port of a WebSocketSite: an h2
client opens sockets as extended CONNECT streams and loads pages on other
streams of the same connection.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest
from twisted.web.resource import Resource
from twisted.web.static import Data

from tests.tls import makeCertificate
from tests.util import Recorder, ServerTestCase
from txratchet import SendMessage, WebSocket

try:
    import h2  # noqa: F401

    from tests.h2client import H2Client
    from txratchet.web import WebSocketResource, WebSocketSite
except ImportError:  # pragma: no cover
    H2Client = None  # type: ignore[assignment,misc]

HOST = "127.0.0.1"
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
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory, True)
        key, cert = makeCertificate(directory)
        root = Resource()
        root.putChild(b"", Data(b"<h1>page over h2</h1>", "text/html"))
        root.putChild(b"ws", WebSocketResource(WebSocket(app, **(websocketOptions or {}))))
        site = WebSocketSite(root, **siteOptions)
        spec = f"ssl:0:interface={HOST}:privateKey={key}:certKey={cert}"
        port = yield serverFromString(reactor, spec).listen(site)
        self.addCleanup(port.stopListening)
        self.addCleanup(self._dropAll, app)
        return port.getHost().port, str(cert)

    def _dropAll(self, app):
        for conn in list(app.conns):
            conn.transport.abortConnection()

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
        self.assertIsNotNone(code)
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


def spkiPin(certPath: Path) -> str:
    """
    Chromium's --ignore-certificate-errors-spki-list value for a certificate:
    trust that key alone (not every certificate, as
    --ignore-certificate-errors would).
    """
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(certPath.read_bytes()).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


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
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
            from selenium.webdriver.support.ui import WebDriverWait

            options = webdriver.ChromeOptions()
            options.binary_location = browser_helpers.CHROMIUM
            for flag in browser_helpers.CHROMIUM_FLAGS:
                options.add_argument(flag)
            options.add_argument(f"--user-data-dir={directory / 'profile'}")
            options.add_argument(f"--ignore-certificate-errors-spki-list={spkiPin(cert)}")
            service = Service(executable_path=browser_helpers.CHROMEDRIVER)
            driver = webdriver.Chrome(service=service, options=options)
            try:
                driver.set_page_load_timeout(15)
                driver.get(f"https://localhost:{port.getHost().port}/")
                WebDriverWait(driver, 15).until(lambda d: d.title.startswith("closed"))
                protocol = driver.execute_script(
                    "return performance.getEntriesByType('navigation')[0].nextHopProtocol"
                )
                return driver.title, protocol
            finally:
                driver.quit()

        title, protocol = yield deferToThread(browse)
        self.assertEqual((title, protocol), ("closed 5 1000 true", "h2"))
        self.assertEqual(len(made), 1)  # the page and the sockets: one connection
        self.assertEqual(len(app.conns), 5)
        self.assertEqual({conn.httpVersion for conn in app.conns}, {"HTTP/2"})
        self.assertEqual({(conn.closeCode, conn.wasClean) for conn in app.conns}, {(1000, True)})
        self.assertTrue(all(conn.compression is not None for conn in app.conns))
