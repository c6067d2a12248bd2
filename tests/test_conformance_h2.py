"""
The RFC 6455 conformance suite of L{tests.test_conformance} again, through
HTTP/2 (RFC 8441): every case runs on a WebSocket bootstrapped by an
extended CONNECT on a fresh HTTP/2 connection (TLS, ALPN h2) to a
L{WebSocketSite} serving C{WebSocket(Echo())}, with the same script and the
same expected transcript.

RFC 8441 5 keeps the frame layer of RFC 6455 unchanged (masking included)
and maps the closing of TCP onto the stream: where a case expects the
server to close TCP (C{EOF}), here the server must end its side of the
stream (END_STREAM) or reset it (RST_STREAM), within the same time, and
leave the HTTP/2 connection open (the page's other streams share it).  The
client (L{tests.h2client.StreamSocket}) sends the case's bytes as DATA
frames on the stream, one or more per write (the peer's windows and frame
size permitting: chops stay chops), and reads the stream's DATA as it
would read TCP.

No case is about the HTTP/1.1 handshake, so none is skipped: the opening
handshake of RFC 8441 is covered by L{tests.test_http2}.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.trial.unittest import SkipTest
from twisted.web.resource import Resource

from examples.echo import Echo
from tests import test_conformance as rfc6455
from tests.rawclients import HybiClient
from tests.tls import makeCertificate
from txratchet import WebSocket

try:
    import h2  # noqa: F401

    from tests.h2client import H2Client
    from txratchet.web import WebSocketResource, WebSocketSite
except ImportError:  # pragma: no cover
    H2Client = None  # type: ignore[assignment,misc]

PATH = "/ws"

#: Cases that cannot apply over HTTP/2, with the reason (none so far).
SKIPPED: dict[str, str] = {}

_certificates = tempfile.TemporaryDirectory(prefix="txratchet-h2-conformance-")


@functools.cache
def certificate() -> tuple[str, str]:
    """One key and self-signed certificate for the whole module."""
    key, cert = makeCertificate(Path(_certificates.name))
    return str(key), str(cert)


class HandshakeFailed(Exception):
    """The server did not open the WebSocket stream."""


class H2Session(rfc6455.Session):
    """
    A case's session over one extended CONNECT stream of its own HTTP/2
    connection: the raw client's socket is the stream.
    """

    def connect(self, port: int, timeout: float) -> HybiClient:
        h2client = H2Client(port, certificate()[1])
        try:
            if h2client.alpn != "h2" or not h2client.connectProtocolEnabled():
                raise HandshakeFailed(f"no extended CONNECT (ALPN {h2client.alpn!r})")
            sid = h2client.websocket(PATH)
            status = h2client.response(sid).get(b":status")
            if status != b"200":
                raise HandshakeFailed(f"CONNECT answered {status!r}, reset {h2client.reset}")
        except BaseException:
            h2client.close()
            raise
        client = HybiClient(rfc6455.HOST, port, path=PATH, timeout=timeout)
        self.stream = h2client.streamSocket(sid, timeout)
        client.sock = cast(Any, self.stream)
        return client

    def finish(self, reply: bool, closeWait: float) -> None:
        """
        The end of the case, then: the stream's end must have left the
        HTTP/2 connection up (it answers a PING, no GOAWAY), since the
        other streams of a page share it.
        """
        super().finish(reply, closeWait)
        if self.stream.lost or not self.stream.client.alive():
            self.events.append(("HTTP/2 CONNECTION CLOSED", repr(self.stream.client.goaway)))


class HTTP2ConformanceTestCase(rfc6455.ConformanceTestCase):
    """
    Runs the cases of its RFC 6455 twin through an HTTP/2 stream.
    """

    session = H2Session

    def setUp(self) -> None:
        if H2Client is None:
            raise SkipTest("h2 is not installed (pip install 'twisted[http2]')")

    @inlineCallbacks
    def serve(self, case: rfc6455.Case) -> Any:
        if case.name in SKIPPED:
            raise SkipTest(SKIPPED[case.name])
        layer = WebSocket(Echo(), **case.server)
        root = Resource()
        root.putChild(PATH[1:].encode(), WebSocketResource(layer))
        site = WebSocketSite(root)
        key, cert = certificate()
        spec = f"ssl:0:interface={rfc6455.HOST}:privateKey={key}:certKey={cert}"
        port = yield serverFromString(reactor, spec).listen(site)
        self.addCleanup(port.stopListening)
        self.addCleanup(self._dropConnections, layer)
        return port.getHost().port


def _twins() -> dict[str, type]:
    """
    An HTTP/2 twin of every conformance class of L{tests.test_conformance}:
    C{Section52BaseFramingTests} -> C{Section52BaseFramingOverHTTP2Tests}.
    """
    twins = {}
    for name, cls in sorted(vars(rfc6455).items()):
        if not (
            isinstance(cls, type)
            and issubclass(cls, rfc6455.ConformanceTestCase)
            and cls is not rfc6455.ConformanceTestCase
        ):
            continue
        twinName = name.removesuffix("Tests") + "OverHTTP2Tests"
        doc = f"The cases of L{{tests.test_conformance.{name}}} through an HTTP/2 stream."
        twin = type(twinName, (HTTP2ConformanceTestCase,), {
            "cases": cls.cases, "__doc__": doc, "__module__": __name__,
        })
        twins[twinName] = rfc6455.conformance(twin)
    return twins


globals().update(_twins())
