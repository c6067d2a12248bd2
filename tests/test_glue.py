"""
Fast tests of the Twisted glue: the server and client WebSocket connections
over an in-memory transport (L{StringTransport}) and a fake clock
(L{task.Clock}), in milliseconds, through the public API only.

Frames and handshakes are built and checked with the small independent
helpers below (C{struct}, C{hashlib}, C{zlib}), never with txratchet's own
codecs, so a bug shared by encoder and decoder cannot hide.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from typing import Any

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.util import EndsTransport
from txratchet import Application, Server, WebSocket
from txratchet.client import (
    Client,
    HandshakeTimedOut,
    InvalidResponse,
    InvalidStatus,
    WebSocketClient,
)
from txratchet.errors import HandshakeError

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3's example key
ADDRESS = IPv4Address("TCP", "127.0.0.1", 1234)

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

#: About a millisecond, exact in binary floating point: deadlines checked
#: "a tick before" and "at" add up exactly (0.001 steps would not).
TICK = 2.0**-10


# -- Independent frame and handshake helpers ----------------------------------


def acceptFor(key: str | bytes) -> str:
    """
    RFC 6455 4.2.2: base64(SHA-1(key + GUID)).
    """
    if isinstance(key, str):
        key = key.encode("ascii")
    return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode("ascii")


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = b"\x37\xfa\x21\x3d",
) -> bytes:
    """
    One RFC 6455 frame (5.2); masked (as a client sends) unless C{mask} is
    C{None}.
    """
    first = (0x80 if fin else 0) | rsv | opcode
    maskBit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, maskBit | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, maskBit | 126, n)
    else:
        head = struct.pack("!BBQ", first, maskBit | 127, n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def closeFrame(code: int | None = 1000, reason: bytes = b"", **kw: Any) -> bytes:
    payload = b"" if code is None else struct.pack("!H", code) + reason
    return frame(CLOSE, payload, **kw)


class Frame:
    def __init__(self, fin: bool, rsv: int, opcode: int, masked: bool, payload: bytes) -> None:
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.masked = masked
        self.payload = payload

    @property
    def closeCode(self) -> int | None:
        assert self.opcode == CLOSE
        return struct.unpack("!H", self.payload[:2])[0] if self.payload else None

    @property
    def closeReason(self) -> bytes:
        return self.payload[2:]

    def __repr__(self) -> str:
        return f"<Frame fin={self.fin} rsv={self.rsv} op={self.opcode} {self.payload[:40]!r}>"


def parseFrames(data: bytes) -> list[Frame]:
    """
    Parse whole frames (unmasking masked ones); trailing bytes are an error.
    """
    frames = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        n = b1 & 0x7F
        pos += 2
        if n == 126:
            (n,) = struct.unpack("!H", data[pos : pos + 2])
            pos += 2
        elif n == 127:
            (n,) = struct.unpack("!Q", data[pos : pos + 8])
            pos += 8
        masked = bool(b1 & 0x80)
        if masked:
            key = data[pos : pos + 4]
            pos += 4
        payload = data[pos : pos + n]
        if len(payload) != n:
            raise AssertionError(f"truncated frame: {data!r}")
        pos += n
        if masked:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        frames.append(Frame(bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F, masked, payload))
    return frames


def parseHead(data: bytes) -> tuple[bytes, dict[str, str], bytes]:
    """
    Split an HTTP head: (start line, {lower-case name: value}, the rest).
    """
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError(f"no complete HTTP head in {data!r}")
    lines = head.split(b"\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, rest


def upgradeRequest(
    path: str = "/chat", version: int | None = 13, key: str = KEY, extra: str = ""
) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: example.com",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
    ]
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    if version in (7, 8):
        lines.append("Sec-WebSocket-Origin: http://example.com")
    else:
        lines.append("Origin: http://example.com")
    text = "\r\n".join(lines) + "\r\n" + extra + "\r\n"
    return text.encode("latin-1")


#: The example keys of draft-hixie-thewebsocketprotocol-76, section 1.3.
HIXIE_KEY1 = "4 @1  46546xW%0l 1 5"
HIXIE_KEY2 = "12998 5 Y3 1  .P00"
HIXIE_KEY3 = b"^n:ds[4U"


def hixieAnswer(key1: str, key2: str, key3: bytes) -> bytes:
    """
    Hixie-76: MD5 of the two key numbers (digits / spaces) and key3.
    """

    def number(key: str) -> int:
        digits = int("".join(c for c in key if c.isdigit()))
        return digits // key.count(" ")

    return hashlib.md5(struct.pack("!II", number(key1), number(key2)) + key3).digest()


def hixieRequest(path: str = "/chat") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key2: {HIXIE_KEY2}\r\n"
        "Upgrade: WebSocket\r\n"
        f"Sec-WebSocket-Key1: {HIXIE_KEY1}\r\n"
        "Origin: http://example.com\r\n"
        "\r\n"
    ).encode("latin-1") + HIXIE_KEY3


# -- The in-memory transport and a recording application -----------------------


class RecordingTransport(EndsTransport):
    """
    An L{EndsTransport} (each write, and how the connection was ended:
    C{loseConnection} after a flush, C{loseWriteConnection} our half-close,
    C{abortConnection} at once) that takes any write and reads as
    disconnected once aborted.
    """

    def __init__(self, **kw: Any) -> None:
        StringTransport.__init__(self, lenient=True, **kw)
        self.writes: list[bytes] = []
        self.ends: list[str] = []
        self.pauses: list[str] = []

    def abortConnection(self) -> None:
        super().abortConnection()
        self.disconnected = True
        self.disconnecting = True

    def take(self) -> bytes:
        """
        What was written since the last call.
        """
        data = self.value()
        self.clear()
        self.writes = []
        return data

    def frames(self) -> list[Frame]:
        return parseFrames(self.take())


class Recorder(Application):
    """
    Records every event; echoes messages when C{echo} is set.
    """

    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.events: list[tuple[Any, ...]] = []
        self.conns: list[Any] = []

    def onOpen(self, conn: Any) -> None:
        self.conns.append(conn)
        self.events.append(("open",))

    def onMessage(self, conn: Any, message: str | bytes) -> None:
        self.events.append(("message", message))
        if self.echo:
            conn.send(message)

    def onClose(self, conn: Any) -> None:
        self.events.append(("close", conn.closeCode, conn.wasClean, conn.closeReason))

    def onError(self, conn: Any, failure: Failure) -> None:
        self.events.append(("error", failure.value))

    def messages(self) -> list[str | bytes]:
        return [e[1] for e in self.events if e[0] == "message"]

    def closes(self) -> list[tuple[Any, ...]]:
        return [e[1:] for e in self.events if e[0] == "close"]


def advance(clock: task.Clock, seconds: float) -> None:
    """
    Move C{clock} on by C{seconds}, stopping at each call due on the way, as
    a reactor would: C{Clock.advance} alone runs them all at the end time,
    so a timer re-armed by one of them would start late.
    """
    end = clock.seconds() + seconds
    for _ in range(10000):
        due = [c.getTime() for c in clock.getDelayedCalls() if c.getTime() <= end]
        if not due:
            break
        clock.advance(max(0.0, min(due) - clock.seconds()))
    else:
        raise AssertionError("timers keep re-arming without time passing")
    clock.advance(end - clock.seconds())


def lost(proto: Any) -> None:
    """
    The transport reports the connection gone (as Twisted would).
    """
    proto.connectionLost(Failure(ConnectionDone()))


class ServerCase(SynchronousTestCase):
    """
    One WebSocket layer over a fake clock; connections over in-memory
    transports.
    """

    app: Recorder
    layer: WebSocket
    clock: task.Clock

    def serve(self, app: Recorder | None = None, **options: Any) -> None:
        self.clock = task.Clock()
        self.app = app if app is not None else Recorder()
        self.layer = WebSocket(self.app, clock=self.clock, **options)
        self.factory = Server(self.layer)

    def connect(self) -> tuple[Any, RecordingTransport]:
        proto = self.factory.buildProtocol(ADDRESS)
        transport = RecordingTransport()
        proto.makeConnection(transport)
        return proto, transport

    def opened(self, request: bytes | None = None) -> tuple[Any, RecordingTransport, Any]:
        """
        A connection past an RFC 6455 handshake: (protocol, transport, conn).
        """
        proto, transport = self.connect()
        proto.dataReceived(request or upgradeRequest())
        status, _, rest = parseHead(transport.take())
        self.assertEqual(status, b"HTTP/1.1 101 Switching Protocols")
        self.assertEqual(rest, b"")
        return proto, transport, self.app.conns[-1]


# -- The server's opening handshake ---------------------------------------------


class ServerHandshakeTests(ServerCase):
    def setUp(self) -> None:
        self.serve()

    def test_rfc6455(self) -> None:
        """
        A version-13 request is answered 101 with the accept key of RFC 6455
        4.2.2, and the application gets a connection describing it.
        """
        proto, transport = self.connect()
        self.assertEqual(transport.value(), b"")
        proto.dataReceived(upgradeRequest("/chat?room=a&room=b&x=1"))
        status, headers, rest = parseHead(transport.take())
        self.assertEqual(status, b"HTTP/1.1 101 Switching Protocols")
        self.assertEqual(headers["upgrade"].lower(), "websocket")
        self.assertEqual(headers["connection"].lower(), "upgrade")
        self.assertEqual(headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        self.assertEqual(headers["sec-websocket-accept"], acceptFor(KEY))
        self.assertNotIn("sec-websocket-extensions", headers)
        self.assertEqual(rest, b"")
        self.assertEqual(self.app.events, [("open",)])
        conn = self.app.conns[0]
        self.assertEqual(conn.protocol, "rfc6455")
        self.assertEqual(conn.path, "/chat")
        self.assertEqual(conn.params, {"room": ["a", "b"], "x": ["1"]})
        self.assertIsNone(conn.subprotocol)
        self.assertEqual(transport.ends, [])

        proto.dataReceived(frame(TEXT, "héllo".encode()))
        self.assertEqual(self.app.messages(), ["héllo"])
        (echo,) = transport.frames()
        self.assertEqual((echo.fin, echo.rsv, echo.opcode, echo.masked), (True, 0, TEXT, False))
        self.assertEqual(echo.payload, "héllo".encode())

    def test_requestInPieces(self) -> None:
        """
        A request (and a frame right behind it) arriving a byte at a time
        gets the same answer once complete.
        """
        proto, transport = self.connect()
        data = upgradeRequest() + frame(BINARY, b"\x00\xff")
        for i in range(len(data)):
            proto.dataReceived(data[i : i + 1])
        status, headers, rest = parseHead(transport.take())
        self.assertEqual(status, b"HTTP/1.1 101 Switching Protocols")
        self.assertEqual(headers["sec-websocket-accept"], acceptFor(KEY))
        self.assertEqual(parseFrames(rest)[0].payload, b"\x00\xff")
        self.assertEqual(self.app.messages(), [b"\x00\xff"])

    def test_frameInTheSameReadAsTheRequest(self) -> None:
        """
        Frames that arrive in the request's read are delivered after
        onOpen.
        """
        proto, _transport = self.connect()
        proto.dataReceived(upgradeRequest() + frame(TEXT, b"one") + frame(TEXT, b"two"))
        self.assertEqual(self.app.events, [("open",), ("message", "one"), ("message", "two")])

    def _hybi(self, version: int, family: str) -> None:
        proto, transport = self.connect()
        key = base64.b64encode(bytes(range(16))).decode()
        proto.dataReceived(upgradeRequest(version=version, key=key))
        status, headers, _rest = parseHead(transport.take())
        self.assertEqual(status, b"HTTP/1.1 101 Switching Protocols")
        self.assertEqual(headers["sec-websocket-accept"], acceptFor(key))
        self.assertEqual(self.app.conns[0].protocol, family)
        proto.dataReceived(frame(TEXT, b"draft"))
        self.assertEqual([f.payload for f in transport.frames()], [b"draft"])

    def test_hybi08(self) -> None:
        """
        Sec-WebSocket-Version 8 (HyBi-08..12) is accepted, framed as RFC 6455.
        """
        self._hybi(8, "hybi-08")

    def test_hybi07(self) -> None:
        """
        Sec-WebSocket-Version 7 (HyBi-07) is accepted, framed as RFC 6455.
        """
        self._hybi(7, "hybi-07")

    def test_unsupportedVersion(self) -> None:
        """
        An unknown version gets 426 listing the versions spoken (RFC 6455
        4.4), and the connection is closed.
        """
        proto, transport = self.connect()
        proto.dataReceived(upgradeRequest(version=9))
        status, headers, _ = parseHead(transport.take())
        self.assertTrue(status.startswith(b"HTTP/1.1 426 "), status)
        self.assertEqual(
            [v.strip() for v in headers["sec-websocket-version"].split(",")], ["13", "8", "7"]
        )
        self.assertEqual(transport.ends, ["loseConnection"])
        self.assertEqual(self.app.events, [])

    def test_hixie76(self) -> None:
        """
        A Hixie-76 request gets the draft's 101 and the MD5 answer of its
        keys; messages are 0x00 ... 0xFF frames.
        """
        proto, transport = self.connect()
        proto.dataReceived(hixieRequest("/chat?a=1"))
        status, headers, rest = parseHead(transport.take())
        self.assertEqual(status, b"HTTP/1.1 101 WebSocket Protocol Handshake")
        self.assertEqual(headers["upgrade"], "WebSocket")
        self.assertEqual(headers["connection"], "Upgrade")
        self.assertEqual(headers["sec-websocket-origin"], "http://example.com")
        self.assertEqual(headers["sec-websocket-location"], "ws://example.com/chat?a=1")
        answer = hixieAnswer(HIXIE_KEY1, HIXIE_KEY2, HIXIE_KEY3)
        self.assertEqual(answer, b"8jKS'y:G*Co,Wxa-")  # the draft's own example
        self.assertEqual(rest, answer)
        conn = self.app.conns[0]
        self.assertEqual(conn.protocol, "hixie-76")
        proto.dataReceived(b"\x00h\xc3\xa9\xff\x00two\xff")
        self.assertEqual(self.app.messages(), ["hé", "two"])
        self.assertEqual(transport.take(), b"\x00h\xc3\xa9\xff\x00two\xff")

    def test_hixie76Close(self) -> None:
        """
        The Hixie-76 closing frame (0xFF 0x00) is answered in kind and the
        server closes the connection.
        """
        proto, transport = self.connect()
        proto.dataReceived(hixieRequest())
        transport.take()
        proto.dataReceived(b"\xff\x00")
        self.assertEqual(transport.take(), b"\xff\x00")
        self.assertEqual(transport.ends, ["loseConnection"])
        lost(proto)
        (close,) = self.app.closes()
        self.assertTrue(close[1])  # wasClean

    def test_handshakeTimeout(self) -> None:
        """
        A client that does not finish its request within handshakeTimeout
        gets 408 and is disconnected; the application never hears of it.
        """
        self.serve(handshakeTimeout=3.0)
        proto, transport = self.connect()
        proto.dataReceived(upgradeRequest()[:30])
        advance(self.clock, 3 - TICK)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(transport.ends, [])
        advance(self.clock, TICK)
        status, _, _ = parseHead(transport.take())
        self.assertTrue(status.startswith(b"HTTP/1.1 408 "), status)
        self.assertEqual(transport.ends, ["loseConnection"])
        lost(proto)
        self.assertEqual(self.app.events, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_handshakeTimeoutCancelled(self) -> None:
        """
        Once open, the handshake timer is gone.
        """
        self.serve(handshakeTimeout=3.0, closeTimeout=None)
        _proto, transport, _conn = self.opened()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        advance(self.clock, 10)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(transport.ends, [])

    def test_plainHTTP(self) -> None:
        """
        A plain HTTP request (no upgrade) gets 400 and is closed.
        """
        proto, transport = self.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        status, headers, body = parseHead(transport.take())
        self.assertTrue(status.startswith(b"HTTP/1.1 400 "), status)
        self.assertEqual(int(headers["content-length"]), len(body))
        self.assertEqual(transport.ends, ["loseConnection"])
        self.assertEqual(self.app.events, [])

    def test_refusedByOnRequest(self) -> None:
        """
        onRequest raising HandshakeError answers its status, reason and
        headers; onOpen is never called.
        """

        class Refuser(Recorder):
            def onRequest(self, conn: Any, request: Any) -> None:
                self.events.append(("request", conn.path, request.headers.get("origin")))
                raise HandshakeError(403, "Go away", [("X-Why", "origin")])

        self.serve(Refuser())
        proto, transport = self.connect()
        proto.dataReceived(upgradeRequest())
        status, headers, body = parseHead(transport.take())
        self.assertTrue(status.startswith(b"HTTP/1.1 403 "), status)
        self.assertEqual(headers["x-why"], "origin")
        self.assertIn(b"Go away", body)
        self.assertEqual(transport.ends, ["loseConnection"])
        lost(proto)
        self.assertEqual(self.app.events, [("request", "/chat", "http://example.com")])

    def test_onRequestDeferred(self) -> None:
        """
        onRequest may decide later: frames sent meanwhile wait, and are read
        after onOpen once it accepts; a later HandshakeError refuses.
        """
        decisions: list[Deferred[None]] = []

        class Later(Recorder):
            def onRequest(self, conn: Any, request: Any) -> Deferred[None]:
                d: Deferred[None] = Deferred()
                decisions.append(d)
                return d

        self.serve(Later())
        proto, transport = self.connect()
        proto.dataReceived(upgradeRequest() + frame(TEXT, b"early"))
        self.assertEqual(transport.value(), b"")
        decisions[0].callback(None)
        status, _, rest = parseHead(transport.take())
        self.assertEqual(status, b"HTTP/1.1 101 Switching Protocols")
        self.assertEqual([f.payload for f in parseFrames(rest)], [b"early"])
        self.assertEqual(self.app.events, [("open",), ("message", "early")])

        proto2, transport2 = self.connect()
        proto2.dataReceived(upgradeRequest())
        decisions[1].errback(HandshakeError(401, "Who are you"))
        status, _, _ = parseHead(transport2.take())
        self.assertTrue(status.startswith(b"HTTP/1.1 401 "), status)
        self.assertEqual(transport2.ends, ["loseConnection"])
        self.assertEqual(len(self.app.conns), 1)

    def test_subprotocol(self) -> None:
        """
        A subprotocol both sides speak is agreed; none in common is no
        Sec-WebSocket-Protocol header, and still a 101.
        """
        self.serve(subprotocols=["chat"])
        proto, transport = self.connect()
        proto.dataReceived(upgradeRequest(extra="Sec-WebSocket-Protocol: other, chat\r\n"))
        _, headers, _ = parseHead(transport.take())
        self.assertEqual(headers["sec-websocket-protocol"], "chat")
        self.assertEqual(self.app.conns[0].subprotocol, "chat")

        proto, transport = self.connect()
        proto.dataReceived(upgradeRequest(extra="Sec-WebSocket-Protocol: other\r\n"))
        status, headers, _ = parseHead(transport.take())
        self.assertEqual(status, b"HTTP/1.1 101 Switching Protocols")
        self.assertNotIn("sec-websocket-protocol", headers)
        self.assertIsNone(self.app.conns[1].subprotocol)

    def test_noCompressionUnlessOffered(self) -> None:
        """
        permessage-deflate is agreed only when offered, and never with
        compression=None.
        """
        offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        proto, transport = self.connect()
        proto.dataReceived(upgradeRequest(extra=offer))
        _, headers, _ = parseHead(transport.take())
        self.assertTrue(headers["sec-websocket-extensions"].startswith("permessage-deflate"))

        self.serve(compression=None)
        proto, transport = self.connect()
        proto.dataReceived(upgradeRequest(extra=offer))
        _, headers, _ = parseHead(transport.take())
        self.assertNotIn("sec-websocket-extensions", headers)
        self.assertIsNone(self.app.conns[0].compression)

    def test_compressedMessages(self) -> None:
        """
        With permessage-deflate agreed, a compressed client message (RSV1)
        is inflated, and a long answer is compressed so that plain zlib
        inflates it (RFC 7692 7.2).
        """
        offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
        proto, transport = self.connect()
        proto.dataReceived(upgradeRequest(extra=offer))
        parseHead(transport.take())
        text = "compress me " * 20
        compressor = zlib.compressobj(wbits=-15)
        data = compressor.compress(text.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
        self.assertEqual(data[-4:], b"\x00\x00\xff\xff")
        proto.dataReceived(frame(TEXT, data[:-4], rsv=0x40))
        self.assertEqual(self.app.messages(), [text])
        (answer,) = transport.frames()
        self.assertEqual((answer.rsv, answer.opcode), (0x40, TEXT))
        self.assertLess(len(answer.payload), len(text))
        inflated = zlib.decompressobj(wbits=-15).decompress(answer.payload + b"\x00\x00\xff\xff")
        self.assertEqual(inflated, text.encode())


# -- The closing handshake, from both sides, and failing ------------------------


class ServerCloseTests(ServerCase):
    def setUp(self) -> None:
        self.serve(closeTimeout=2.0)
        self.proto, self.transport, self.conn = self.opened()

    def test_applicationCloses(self) -> None:
        """
        close() sends a close frame and keeps the connection until the peer
        answers; then the server closes TCP (RFC 6455 7.1.1) and the close
        is clean, with the peer's code.
        """
        self.conn.close(4000, "bye")
        self.assertEqual(self.transport.take(), b"\x88\x05\x0f\xa0bye")
        self.assertEqual(self.transport.ends, [])
        self.conn.send("too late")  # dropped: the connection is closing
        self.assertEqual(self.transport.value(), b"")
        self.proto.dataReceived(closeFrame(4000, b"ok"))
        self.assertEqual(self.transport.value(), b"")  # no second close frame
        self.assertEqual(self.transport.ends, ["loseConnection"])
        lost(self.proto)
        self.assertEqual(self.app.closes(), [(4000, True, "ok")])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_applicationClosesInOnMessage(self) -> None:
        """
        A message answered and then closed in the same onMessage: the answer
        precedes the close frame, in one write.
        """

        class Bye(Recorder):
            def onMessage(self, conn: Any, message: str | bytes) -> None:
                conn.send("last")
                conn.close(1000)

        self.serve(Bye())
        proto, transport, _conn = self.opened()
        proto.dataReceived(frame(TEXT, b"hi") + frame(TEXT, b"ignored?"))
        self.assertEqual(len(transport.writes), 1)
        frames = parseFrames(transport.take())
        self.assertEqual(
            [(f.opcode, f.payload) for f in frames], [(TEXT, b"last"), (CLOSE, b"\x03\xe8")]
        )

    def test_peerCloses(self) -> None:
        """
        The peer's close frame is answered with its code, then the server
        closes TCP; the code and reason are the peer's.
        """
        self.proto.dataReceived(closeFrame(1001, b"going away"))
        (answer,) = self.transport.frames()
        self.assertEqual((answer.opcode, answer.masked, answer.closeCode), (CLOSE, False, 1001))
        self.assertEqual(self.transport.ends, ["loseConnection"])
        lost(self.proto)
        self.assertEqual(self.app.closes(), [(1001, True, "going away")])

    def test_peerClosesWithoutCode(self) -> None:
        """
        An empty close frame is answered with an empty close frame (a 1005
        must not be sent, RFC 6455 7.4.1).
        """
        self.proto.dataReceived(closeFrame(None))
        self.assertEqual(self.transport.take(), b"\x88\x00")
        self.assertEqual(self.transport.ends, ["loseConnection"])

    def test_nothingAfterPeerClose(self) -> None:
        """
        Frames behind the peer's close frame are not delivered.
        """
        self.proto.dataReceived(closeFrame(1000) + frame(TEXT, b"after"))
        self.assertEqual(self.app.messages(), [])
        self.assertEqual([f.opcode for f in self.transport.frames()], [CLOSE])

    def test_closeTimeout(self) -> None:
        """
        A peer that never answers our close frame is aborted after
        closeTimeout; the close is not clean (1006).
        """
        self.conn.close()
        self.assertEqual(self.transport.take(), b"\x88\x02\x03\xe8")
        advance(self.clock, 2 - TICK)
        self.assertEqual(self.transport.ends, [])
        advance(self.clock, TICK)
        self.assertEqual(self.transport.ends, ["abortConnection"])
        lost(self.proto)
        self.assertEqual(self.app.closes(), [(1006, False, "")])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closeTimeoutAfterAnswer(self) -> None:
        """
        After answering the peer's close, a connection whose flush never
        ends (the peer stopped reading) is aborted after closeTimeout.
        """
        self.proto.dataReceived(closeFrame(1000))
        self.assertEqual(self.transport.ends, ["loseConnection"])
        advance(self.clock, 2.0)
        self.assertEqual(self.transport.ends, ["loseConnection", "abortConnection"])
        lost(self.proto)
        self.assertEqual(self.app.closes(), [(1000, True, "")])

    def test_noCloseTimeout(self) -> None:
        """
        closeTimeout=None: nothing is aborted, however long the peer waits.
        """
        self.serve(closeTimeout=None)
        _proto, transport, conn = self.opened()
        conn.close()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(transport.ends, [])

    def test_lostWithoutClose(self) -> None:
        """
        A connection that just drops is closed abnormally: 1006, not clean.
        """
        lost(self.proto)
        self.assertEqual(self.app.closes(), [(1006, False, "")])

    def test_pingAnswered(self) -> None:
        """
        A ping gets a pong with the same payload; a pong gets nothing.
        """
        self.proto.dataReceived(frame(PING, b"are you there") + frame(PONG, b"unsolicited"))
        (pong,) = self.transport.frames()
        self.assertEqual((pong.opcode, pong.masked, pong.payload), (PONG, False, b"are you there"))
        self.assertEqual(self.app.messages(), [])

    def test_fragmentedMessage(self) -> None:
        """
        A message in three fragments, a ping between them, is one message.
        """
        self.proto.dataReceived(
            frame(TEXT, b"one ", fin=False)
            + frame(PING, b"p")
            + frame(CONT, b"two ", fin=False)
            + frame(CONT, b"three")
        )
        self.assertEqual(self.app.messages(), ["one two three"])
        frames = self.transport.frames()
        self.assertEqual(
            [(f.opcode, f.payload) for f in frames], [(PONG, b"p"), (TEXT, b"one two three")]
        )


class FailTests(ServerCase):
    """
    A peer breaking the protocol: the connection is failed (RFC 6455
    7.1.7) with the right code, the close frame is flushed and our side of
    TCP shut (half-close), and nothing more from the peer is processed.
    """

    def fails(self, data: bytes, code: int, **options: Any) -> Frame:
        self.serve(closeTimeout=2.0, **options)
        proto, transport, _conn = self.opened()
        proto.dataReceived(data)
        frames = transport.frames()
        self.assertEqual([f.opcode for f in frames], [CLOSE], frames)
        self.assertEqual(frames[0].closeCode, code)
        self.assertFalse(frames[0].masked)
        self.assertEqual(transport.ends, ["loseWriteConnection"])
        self.assertFalse(transport.disconnecting)
        # The peer's answer and anything else are read and thrown away.
        proto.dataReceived(frame(TEXT, b"more") + closeFrame(code))
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.app.messages(), [])
        # The peer closing its side ends it; closeCode is ours.
        lost(proto)
        self.assertEqual(self.app.closes()[0][:2], (code, False))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        return frames[0]

    def test_unmasked(self) -> None:
        self.fails(frame(TEXT, b"plain", mask=None), 1002)

    def test_reservedBits(self) -> None:
        self.fails(frame(TEXT, b"x", rsv=0x20), 1002)

    def test_unknownOpcode(self) -> None:
        self.fails(frame(0x3, b"x"), 1002)

    def test_fragmentedControlFrame(self) -> None:
        self.fails(frame(PING, b"x", fin=False), 1002)

    def test_longControlFrame(self) -> None:
        self.fails(frame(PING, b"x" * 126), 1002)

    def test_continuationWithoutStart(self) -> None:
        self.fails(frame(CONT, b"x"), 1002)

    def test_invalidCloseCode(self) -> None:
        self.fails(closeFrame(1005), 1002)

    def test_invalidUTF8(self) -> None:
        self.fails(frame(TEXT, b"ok \xff"), 1007)

    def test_invalidUTF8AcrossFragments(self) -> None:
        self.fails(frame(TEXT, b"\xe2\x82", fin=False) + frame(CONT, b"\x28"), 1007)

    def test_invalidUTF8CloseReason(self) -> None:
        self.fails(closeFrame(1000, b"\xc3"), 1007)

    def test_tooBig(self) -> None:
        self.fails(frame(BINARY, b"x" * 101), 1009, maxMessageSize=100)

    def test_tooBigFragments(self) -> None:
        self.fails(
            frame(TEXT, b"x" * 60, fin=False) + frame(CONT, b"x" * 60), 1009, maxMessageSize=100
        )

    def test_tooBigHeaderAlone(self) -> None:
        """
        A frame announcing too large a payload fails from its header.
        """
        self.fails(frame(BINARY, b"x" * 70000)[:14], 1009, maxMessageSize=65536)

    def test_failTimeout(self) -> None:
        """
        A peer that never closes its side after a failure is aborted after
        closeTimeout.
        """
        self.serve(closeTimeout=2.0)
        proto, transport, conn = self.opened()
        proto.dataReceived(frame(TEXT, b"\xff"))
        self.assertEqual(transport.ends, ["loseWriteConnection"])
        advance(self.clock, 2.0)
        self.assertEqual(transport.ends, ["loseWriteConnection", "abortConnection"])
        lost(proto)
        self.assertEqual(self.app.closes(), [(1007, False, conn.closeReason)])

    def test_halfCloseWithoutLoseWriteConnection(self) -> None:
        """
        Over a transport that cannot half-close, failing closes it.
        """
        self.serve()
        proto = self.factory.buildProtocol(ADDRESS)
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(upgradeRequest())
        transport.clear()
        proto.dataReceived(frame(TEXT, b"x", mask=None))
        (close,) = parseFrames(transport.value())
        self.assertEqual(close.closeCode, 1002)
        self.assertTrue(transport.disconnecting)


# -- The client side -------------------------------------------------------------


def switchingProtocols(key: str, extra: str = "") -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {acceptFor(key)}\r\n" + extra + "\r\n"
    ).encode("latin-1")


class ClientCase(SynchronousTestCase):
    def connectClient(
        self, url: str = "ws://example.com/chat", **options: Any
    ) -> tuple[Any, RecordingTransport, Any]:
        """
        A client connection over an in-memory transport, its request sent:
        (protocol, transport, the client's WebSocket connection).
        """
        self.clock = task.Clock()
        self.app = Recorder(echo=False)
        self.layer = WebSocketClient(self.app, url, clock=self.clock, **options)
        proto = Client(self.layer).buildProtocol(IPv4Address("TCP", "192.0.2.1", 80))
        transport = RecordingTransport()
        proto.makeConnection(transport)
        (ws,) = self.layer.connections
        return proto, transport, ws

    def openClient(self, **options: Any) -> tuple[Any, RecordingTransport, Any]:
        options.setdefault("closeTimeout", 2.0)
        options.setdefault("compression", None)
        proto, transport, ws = self.connectClient(**options)
        _, headers, _ = parseHead(transport.take())
        proto.dataReceived(switchingProtocols(headers["sec-websocket-key"]))
        self.assertEqual(self.app.events, [("open",)])
        return proto, transport, ws


class ClientTests(ClientCase):
    def test_request(self) -> None:
        """
        The client writes an RFC 6455 upgrade request for the URL, with a
        fresh 16-byte key per connection and the default deflate offer.
        """
        _proto, transport, _ = self.connectClient("ws://example.com:8080/chat?room=1")
        start, headers, rest = parseHead(transport.take())
        self.assertEqual(start, b"GET /chat?room=1 HTTP/1.1")
        self.assertEqual(headers["host"], "example.com:8080")
        self.assertEqual(headers["upgrade"].lower(), "websocket")
        self.assertEqual(headers["connection"].lower(), "upgrade")
        self.assertEqual(headers["sec-websocket-version"], "13")
        self.assertEqual(len(base64.b64decode(headers["sec-websocket-key"], validate=True)), 16)
        self.assertTrue(headers["sec-websocket-extensions"].startswith("permessage-deflate"))
        self.assertEqual(rest, b"")
        self.assertEqual(self.app.events, [])

        proto2 = Client(self.layer).buildProtocol(ADDRESS)
        transport2 = RecordingTransport()
        proto2.makeConnection(transport2)
        _, headers2, _ = parseHead(transport2.take())
        self.assertNotEqual(headers2["sec-websocket-key"], headers["sec-websocket-key"])

    def test_opens(self) -> None:
        """
        A valid 101 opens the connection: onOpen, whenOpen fires, frames
        right behind the answer are delivered, and what the client sends
        is masked.
        """
        proto, transport, ws = self.connectClient(compression=None)
        opened = ws.whenOpen()
        self.assertNoResult(opened)
        _, headers, _ = parseHead(transport.take())
        self.assertNotIn("sec-websocket-extensions", headers)
        proto.dataReceived(
            switchingProtocols(headers["sec-websocket-key"]) + frame(TEXT, b"welcome", mask=None)
        )
        self.assertIs(self.successResultOf(opened), ws)
        self.assertEqual(self.app.events, [("open",), ("message", "welcome")])
        self.assertIs(self.app.conns[0], ws)
        self.assertEqual(ws.protocol, "rfc6455")
        self.assertEqual(ws.path, "/chat")
        ws.send("hello")
        ws.send(b"\x00\x01")
        frames = transport.frames()
        self.assertEqual(
            [(f.opcode, f.masked, f.payload) for f in frames],
            [(TEXT, True, b"hello"), (BINARY, True, b"\x00\x01")],
        )

    def test_hybi08(self) -> None:
        """
        version=8 asks for HyBi-08 and opens on its 101.
        """
        proto, transport, ws = self.connectClient(version=8, compression=None)
        _, headers, _ = parseHead(transport.take())
        self.assertEqual(headers["sec-websocket-version"], "8")
        proto.dataReceived(switchingProtocols(headers["sec-websocket-key"]))
        self.assertEqual(ws.protocol, "hybi-08")
        ws.send("x")
        (sent,) = transport.frames()
        self.assertEqual((sent.masked, sent.payload), (True, b"x"))

    def test_hixie76(self) -> None:
        """
        A Hixie-76 client sends two keys and eight bytes, and opens on the
        MD5 answer computed from them; messages are 0x00 ... 0xFF frames.
        """
        proto, transport, ws = self.connectClient(version="hixie-76")
        start, headers, key3 = parseHead(transport.take())
        self.assertEqual(start, b"GET /chat HTTP/1.1")
        self.assertEqual(headers["upgrade"], "WebSocket")
        self.assertEqual(len(key3), 8)
        answer = hixieAnswer(headers["sec-websocket-key1"], headers["sec-websocket-key2"], key3)
        proto.dataReceived(
            b"HTTP/1.1 101 WebSocket Protocol Handshake\r\n"
            b"Upgrade: WebSocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Origin: " + headers["origin"].encode() + b"\r\n"
            b"Sec-WebSocket-Location: ws://example.com/chat\r\n"
            b"\r\n" + answer + b"\x00hi\xff"
        )
        self.assertEqual(self.app.events, [("open",), ("message", "hi")])
        self.assertEqual(ws.protocol, "hixie-76")
        ws.send("h\xe9")
        self.assertEqual(transport.take(), b"\x00h\xc3\xa9\xff")

    def test_hixie76WrongAnswer(self) -> None:
        proto, transport, ws = self.connectClient(version="hixie-76")
        opened = ws.whenOpen()
        _, headers, _ = parseHead(transport.take())
        proto.dataReceived(
            b"HTTP/1.1 101 WebSocket Protocol Handshake\r\n"
            b"Upgrade: WebSocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Origin: " + headers["origin"].encode() + b"\r\n"
            b"Sec-WebSocket-Location: ws://example.com/chat\r\n"
            b"\r\n" + b"0123456789abcdef"
        )
        lost(proto)
        self.failureResultOf(opened, InvalidResponse)
        self.assertEqual(self.app.events, [])

    def test_pingAnswered(self) -> None:
        """
        The server's ping gets a masked pong with its payload.
        """
        proto, transport, _ = self.openClient()
        proto.dataReceived(frame(PING, b"beat", mask=None))
        (pong,) = transport.frames()
        self.assertEqual((pong.opcode, pong.masked, pong.payload), (PONG, True, b"beat"))

    def test_badAccept(self) -> None:
        """
        A 101 with the wrong accept key fails the handshake
        (InvalidResponse); the application never hears of the connection.
        """
        proto, transport, ws = self.connectClient(compression=None)
        opened = ws.whenOpen()
        transport.take()
        proto.dataReceived(switchingProtocols(KEY))
        self.assertTrue(transport.disconnecting)
        lost(proto)
        self.failureResultOf(opened, InvalidResponse)
        self.assertEqual(self.app.events, [])

    def test_refused(self) -> None:
        """
        A 403 fails the handshake with InvalidStatus, carrying the status
        and the body.
        """
        proto, transport, ws = self.connectClient()
        opened = ws.whenOpen()
        proto.dataReceived(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nno")
        self.assertFalse(transport.disconnecting)  # the body is not all there yet
        proto.dataReceived(b"pe")
        self.assertTrue(transport.disconnecting)
        lost(proto)
        error = self.failureResultOf(opened, InvalidStatus).value
        self.assertEqual((error.status, error.body), (403, b"nope"))
        self.assertEqual(self.app.events, [])

    def test_handshakeTimeout(self) -> None:
        """
        A server that does not answer within handshakeTimeout: the
        connection is aborted and the handshake fails with
        HandshakeTimedOut.
        """
        proto, transport, ws = self.connectClient(handshakeTimeout=3.0)
        opened = ws.whenOpen()
        proto.dataReceived(b"HTTP/1.1 101 Switching")
        advance(self.clock, 3 - TICK)
        self.assertEqual(transport.ends, [])
        advance(self.clock, TICK)
        self.assertEqual(transport.ends, ["abortConnection"])
        lost(proto)
        self.failureResultOf(opened, HandshakeTimedOut)
        self.assertEqual(self.app.events, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_serverCloses(self) -> None:
        """
        The server's close is answered (masked, same code) and the client
        waits for the server to close TCP (RFC 6455 7.1.1).
        """
        proto, transport, _ = self.openClient()
        proto.dataReceived(closeFrame(4001, b"done", mask=None))
        (answer,) = transport.frames()
        self.assertEqual((answer.opcode, answer.masked, answer.closeCode), (CLOSE, True, 4001))
        self.assertEqual(transport.ends, [])
        lost(proto)
        self.assertEqual(self.app.closes(), [(4001, True, "done")])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_serverNeverClosesTCP(self) -> None:
        """
        A server that leaves TCP open after the closing handshake is
        dropped after closeTimeout.
        """
        proto, transport, _ = self.openClient()
        proto.dataReceived(closeFrame(1000, mask=None))
        transport.take()
        advance(self.clock, 2 - TICK)
        self.assertEqual(transport.ends, [])
        advance(self.clock, TICK)
        self.assertEqual(transport.ends, ["abortConnection"])
        lost(proto)
        self.assertEqual(self.app.closes(), [(1000, True, "")])

    def test_clientCloses(self) -> None:
        """
        close() sends a masked close frame; the server's answer completes
        the handshake, and the client still leaves TCP to the server.
        """
        proto, transport, ws = self.openClient()
        ws.close(4000, "bye")
        (close,) = transport.frames()
        self.assertEqual((close.opcode, close.masked, close.payload), (CLOSE, True, b"\x0f\xa0bye"))
        proto.dataReceived(closeFrame(4000, b"ok", mask=None))
        self.assertEqual(transport.value(), b"")
        self.assertEqual(transport.ends, [])
        lost(proto)
        self.assertEqual(self.app.closes(), [(4000, True, "ok")])

    def test_clientCloseUnanswered(self) -> None:
        """
        A server that never answers the client's close is dropped after
        closeTimeout.
        """
        proto, transport, ws = self.openClient()
        ws.close()
        advance(self.clock, 2.0)
        self.assertEqual(transport.ends, ["abortConnection"])
        lost(proto)
        self.assertEqual(self.app.closes(), [(1006, False, "")])

    def test_maskedServerFrame(self) -> None:
        """
        A masked frame from the server fails the connection with 1002 (RFC
        6455 5.1); the message is not delivered.
        """
        proto, transport, _ = self.openClient()
        proto.dataReceived(frame(TEXT, b"masked"))
        (close,) = transport.frames()
        self.assertEqual((close.opcode, close.masked, close.closeCode), (CLOSE, True, 1002))
        self.assertEqual(self.app.messages(), [])
        self.assertIn(transport.ends, (["loseWriteConnection"], ["loseConnection"]))
        lost(proto)
        self.assertEqual(self.app.closes()[0][:2], (1002, False))

    def test_keepalive(self) -> None:
        """
        The client's keepalive pings are masked, too.
        """
        _proto, transport, _ = self.openClient(pingInterval=5.0)
        advance(self.clock, 5.0)
        (ping,) = transport.frames()
        self.assertEqual((ping.opcode, ping.masked), (PING, True))


# -- Keepalive and idle timeout ---------------------------------------------------


class KeepaliveTests(ServerCase):
    def test_pingAfterSilence(self) -> None:
        """
        After pingInterval without receiving anything, the server pings; a
        pong keeps the connection, and the next ping comes after another
        interval of silence.
        """
        self.serve(pingInterval=10.0, pingTimeout=5.0, closeTimeout=2.0)
        proto, transport, _ = self.opened()
        advance(self.clock, 10 - TICK)
        self.assertEqual(transport.value(), b"")
        advance(self.clock, TICK)
        (ping,) = transport.frames()
        self.assertEqual((ping.opcode, ping.masked, ping.fin), (PING, False, True))
        advance(self.clock, 2.0)
        proto.dataReceived(frame(PONG, ping.payload))  # at 12 s
        advance(self.clock, 10 - TICK)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(transport.ends, [])
        advance(self.clock, TICK)  # 22 s: 10 s after the pong
        self.assertEqual([f.opcode for f in transport.frames()], [PING])

    def test_anyDataAnswers(self) -> None:
        """
        Any frame received after the ping proves the peer alive.
        """
        self.serve(pingInterval=10.0, pingTimeout=5.0)
        proto, transport, _ = self.opened()
        advance(self.clock, 10.0)
        self.assertEqual([f.opcode for f in transport.frames()], [PING])
        advance(self.clock, 1.0)
        proto.dataReceived(frame(TEXT, b"still here"))
        transport.take()
        advance(self.clock, 4.0)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(transport.ends, [])

    def test_dataPostponesPing(self) -> None:
        """
        The interval counts from the last thing received.
        """
        self.serve(pingInterval=10.0)
        proto, transport, _ = self.opened()
        advance(self.clock, 6.0)
        proto.dataReceived(frame(BINARY, b"x"))
        transport.take()
        advance(self.clock, 10 - TICK)
        self.assertEqual(transport.value(), b"")
        advance(self.clock, TICK)
        self.assertEqual([f.opcode for f in transport.frames()], [PING])

    def test_pingTimeout(self) -> None:
        """
        No answer within pingTimeout: close with 1011, then abort after
        closeTimeout.
        """
        self.serve(pingInterval=10.0, pingTimeout=5.0, closeTimeout=2.0)
        proto, transport, _ = self.opened()
        advance(self.clock, 10.0)
        transport.take()
        advance(self.clock, 5 - TICK)
        self.assertEqual(transport.value(), b"")
        advance(self.clock, TICK)
        (close,) = transport.frames()
        self.assertEqual((close.opcode, close.closeCode), (CLOSE, 1011))
        advance(self.clock, 2.0)
        self.assertEqual(transport.ends, ["abortConnection"])
        lost(proto)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_pingTimeoutDefaultsToInterval(self) -> None:
        self.serve(pingInterval=10.0)
        _, transport, _ = self.opened()
        advance(self.clock, 10.0)
        transport.take()
        advance(self.clock, 10 - TICK)
        self.assertEqual(transport.value(), b"")
        advance(self.clock, TICK)
        self.assertEqual([f.closeCode for f in transport.frames()], [1011])

    def test_idleTimeout(self) -> None:
        """
        A connection that receives nothing for idleTimeout is closed with
        1000 "Idle timeout"; receiving restarts the count.
        """
        self.serve(idleTimeout=30.0)
        proto, transport, _ = self.opened()
        advance(self.clock, 20.0)
        proto.dataReceived(frame(TEXT, b"hi"))
        transport.take()
        advance(self.clock, 30 - TICK)
        self.assertEqual(transport.value(), b"")
        advance(self.clock, TICK)
        (close,) = transport.frames()
        self.assertEqual((close.closeCode, close.closeReason), (1000, b"Idle timeout"))
        proto.dataReceived(closeFrame(1000))
        self.assertEqual(transport.ends, ["loseConnection"])

    def test_sendingDoesNotCountAsActivity(self) -> None:
        """
        What the server sends does not keep a connection from being idle.
        """
        self.serve(idleTimeout=5.0)
        _, transport, conn = self.opened()
        for _ in range(4):
            advance(self.clock, 1.0)
            conn.send("tick")
        advance(self.clock, 1.0)
        self.assertEqual([f.opcode for f in transport.frames()][-1], CLOSE)

    def test_hixie76NoPing(self) -> None:
        """
        Hixie-76 has no ping: pingInterval sends nothing there.
        """
        self.serve(pingInterval=1.0)
        proto, transport = self.connect()
        proto.dataReceived(hixieRequest())
        transport.take()
        advance(self.clock, 10.0)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(transport.ends, [])

    def test_hixie76IdleTimeout(self) -> None:
        """
        The idle timeout closes Hixie-76 connections with its closing frame.
        """
        self.serve(idleTimeout=5.0)
        proto, transport = self.connect()
        proto.dataReceived(hixieRequest())
        transport.take()
        advance(self.clock, 5.0)
        self.assertEqual(transport.take(), b"\xff\x00")

    def test_timersCancelledWhenLost(self) -> None:
        self.serve(pingInterval=10.0, idleTimeout=30.0, messageTimeout=5.0)
        proto, _, _ = self.opened()
        proto.dataReceived(frame(TEXT, b"part", fin=False))
        self.assertNotEqual(self.clock.getDelayedCalls(), [])
        lost(proto)
        self.assertEqual(self.clock.getDelayedCalls(), [])


# -- Incomplete messages: messageTimeout and maxIncompleteBytes -------------------


class IncompleteMessageTests(ServerCase):
    def assertFailed(self, transport: RecordingTransport, code: int) -> None:
        frames = transport.frames()
        self.assertEqual([(f.opcode, f.closeCode) for f in frames], [(CLOSE, code)])
        self.assertEqual(transport.ends, ["loseWriteConnection"])

    def test_messageTimeoutFragments(self) -> None:
        """
        A message whose first fragment came but not its last is failed with
        1008 after messageTimeout.
        """
        self.serve(messageTimeout=5.0)
        proto, transport, _ = self.opened()
        proto.dataReceived(frame(TEXT, b"start", fin=False))
        advance(self.clock, 2.0)
        proto.dataReceived(frame(CONT, b" more", fin=False))  # still not done
        advance(self.clock, 3 - TICK)
        self.assertEqual(transport.value(), b"")
        advance(self.clock, TICK)
        self.assertFailed(transport, 1008)
        lost(proto)
        self.assertEqual(self.app.closes()[0][:2], (1008, False))
        self.assertEqual(self.app.messages(), [])

    def test_messageTimeoutPartialFrame(self) -> None:
        """
        The same for a single frame that arrives in part.
        """
        self.serve(messageTimeout=5.0)
        proto, transport, _ = self.opened()
        proto.dataReceived(frame(BINARY, b"x" * 50)[:20])
        advance(self.clock, 5.0)
        self.assertFailed(transport, 1008)

    def test_messageCompletedInTime(self) -> None:
        """
        A message completed within messageTimeout is delivered and its
        timer is gone.
        """
        self.serve(messageTimeout=5.0)
        proto, transport, _ = self.opened()
        data = frame(BINARY, b"y" * 50)
        proto.dataReceived(data[:20])
        advance(self.clock, 4.0)
        proto.dataReceived(data[20:])
        self.assertEqual(self.app.messages(), [b"y" * 50])
        transport.take()
        advance(self.clock, 10.0)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(transport.ends, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_messageTimeoutPerMessage(self) -> None:
        """
        A message that starts in the read that completes the previous one
        is timed from that read.
        """
        self.serve(messageTimeout=5.0)
        proto, transport, _ = self.opened()
        proto.dataReceived(frame(TEXT, b"a", fin=False))
        advance(self.clock, 4.0)
        proto.dataReceived(frame(CONT, b"b") + frame(TEXT, b"c", fin=False))
        self.assertEqual(self.app.messages(), ["ab"])
        transport.take()
        advance(self.clock, 5 - TICK)  # 9 s: 5 s since "c" began
        self.assertEqual(transport.value(), b"")
        advance(self.clock, TICK)
        self.assertFailed(transport, 1008)

    def test_maxIncompleteBytes(self) -> None:
        """
        The bytes incomplete messages hold are bounded across the layer's
        connections: the one that would pass maxIncompleteBytes is failed
        with 1013; the others carry on, and a lost one frees its share.
        """
        self.serve(maxMessageSize=100, maxIncompleteBytes=100, messageTimeout=None)
        proto1, transport1, _ = self.opened()
        proto2, transport2, _ = self.opened()
        proto1.dataReceived(frame(BINARY, b"1" * 60, fin=False))
        self.assertEqual(transport1.value(), b"")
        proto2.dataReceived(frame(BINARY, b"2" * 60, fin=False))
        self.assertFailed(transport2, 1013)
        self.assertEqual(transport1.value(), b"")
        proto1.dataReceived(frame(CONT, b"1" * 40))
        self.assertEqual(self.app.messages(), [b"1" * 100])
        lost(proto2)

        proto3, transport3, _ = self.opened()
        proto1.dataReceived(frame(BINARY, b"1" * 60, fin=False))
        lost(proto1)
        proto3.dataReceived(frame(BINARY, b"3" * 90, fin=False))
        self.assertEqual(transport3.value(), b"")
        self.assertEqual(transport3.ends, [])

    def test_maxIncompleteBytesTooSmall(self) -> None:
        """
        A budget smaller than one message could never let it arrive.
        """
        self.assertRaises(
            ValueError, WebSocket, Recorder(), maxMessageSize=100, maxIncompleteBytes=99
        )


# -- Send-buffer policy --------------------------------------------------------------


class SendBufferTests(ServerCase):
    """
    A peer that stops reading: the transport pauses its producer (the
    connection below the WebSocket), the server stops reading from that
    peer, and once more than maxSendBuffer bytes are queued for it the
    sendBufferPolicy applies.
    """

    def stopReading(self, transport: RecordingTransport) -> None:
        """
        The transport's buffer is full: it pauses its producer (the
        connection txratchet registered), which stops reading.
        """
        self.assertIsNotNone(transport.producer)
        transport.producer.pauseProducing()  # type: ignore[union-attr]
        self.assertEqual(transport.producerState, "paused")

    def readAgain(self, transport: RecordingTransport) -> None:
        transport.producer.resumeProducing()  # type: ignore[union-attr]
        self.assertEqual(transport.producerState, "producing")

    def test_close(self) -> None:
        """
        "close": the connection is aborted, with closeCode 1008.
        """
        self.serve(maxSendBuffer=100, sendBufferPolicy="close")
        proto, transport, conn = self.opened()
        self.stopReading(transport)
        conn.send(b"a" * 150)
        self.assertEqual(transport.frames()[0].payload, b"a" * 150)
        conn.send(b"b")
        self.assertEqual(transport.value(), b"")
        self.assertEqual(transport.ends, ["abortConnection"])
        self.assertEqual(conn.closeCode, 1008)
        conn.send(b"c")
        self.assertEqual(transport.value(), b"")
        lost(proto)
        self.assertEqual(self.app.closes(), [(1008, False, "Send buffer overflow")])

    def test_drop(self) -> None:
        """
        "drop": messages are discarded until the peer reads again.
        """
        self.serve(maxSendBuffer=100, sendBufferPolicy="drop")
        _, transport, conn = self.opened()
        self.stopReading(transport)
        conn.send(b"a" * 150)
        transport.take()
        conn.send("dropped 1")
        conn.send("dropped 2")
        self.assertEqual(transport.value(), b"")
        self.assertEqual(transport.ends, [])
        self.readAgain(transport)
        conn.send("sent")
        self.assertEqual([f.payload for f in transport.frames()], [b"sent"])

    def test_callable(self) -> None:
        """
        A callable decides per message, given (conn, message): True drops.
        """
        calls: list[tuple[Any, Any]] = []

        def policy(conn: Any, message: str | bytes) -> bool:
            calls.append((conn, message))
            return message == "drop me"

        self.serve(maxSendBuffer=100, sendBufferPolicy=policy)
        _, transport, conn = self.opened()
        conn.send("before")
        self.stopReading(transport)
        conn.send("small")
        conn.send(b"a" * 150)
        self.assertEqual(calls, [])
        transport.take()
        conn.send("drop me")
        conn.send("keep me")
        self.assertEqual(calls, [(conn, "drop me"), (conn, "keep me")])
        self.assertEqual([f.payload for f in transport.frames()], [b"keep me"])
        self.assertEqual(transport.ends, [])

    def test_noBackPressureNoLimit(self) -> None:
        """
        Without back-pressure, any amount goes out.
        """
        self.serve(maxSendBuffer=100)
        _, transport, conn = self.opened()
        for _ in range(5):
            conn.send(b"z" * 150)
        self.assertEqual(len(transport.frames()), 5)
        self.assertEqual(transport.ends, [])

    def test_resumeResetsCount(self) -> None:
        """
        What was queued before the peer read again no longer counts.
        """
        self.serve(maxSendBuffer=100)
        _, transport, conn = self.opened()
        self.stopReading(transport)
        conn.send(b"a" * 150)
        self.readAgain(transport)
        self.stopReading(transport)
        conn.send("fine")
        self.assertEqual([f.payload for f in transport.frames()], [b"a" * 150, b"fine"])
        self.assertEqual(transport.ends, [])

    def test_invalidPolicy(self) -> None:
        self.assertRaises(ValueError, WebSocket, Recorder(), sendBufferPolicy="ignore")


# -- Cork, partial reads, frame sizes --------------------------------------------------


class WriteTests(ServerCase):
    def setUp(self) -> None:
        self.serve()
        self.proto, self.transport, self.conn = self.opened()

    def test_answersOfOneReadInOneWrite(self) -> None:
        """
        Several messages in one read: the answers leave in order, in one
        transport write.
        """
        self.proto.dataReceived(frame(TEXT, b"1") + frame(BINARY, b"2") + frame(TEXT, b"3"))
        self.assertEqual(len(self.transport.writes), 1)
        frames = parseFrames(self.transport.writes[0])
        self.assertEqual(
            [(f.opcode, f.payload) for f in frames], [(TEXT, b"1"), (BINARY, b"2"), (TEXT, b"3")]
        )

    def test_pongsAndAnswersInOrder(self) -> None:
        self.proto.dataReceived(frame(TEXT, b"a") + frame(PING, b"p") + frame(TEXT, b"b"))
        self.assertEqual(len(self.transport.writes), 1)
        frames = parseFrames(self.transport.writes[0])
        self.assertEqual([f.opcode for f in frames], [TEXT, PONG, TEXT])

    def test_sendOutsideAReadIsWrittenAtOnce(self) -> None:
        """
        A message sent outside a read (from a timer, another connection's
        message) is not held back.
        """
        self.clock.callLater(1.0, self.conn.send, "tick")
        advance(self.clock, 1.0)
        self.assertEqual(len(self.transport.writes), 1)
        self.assertEqual(parseFrames(self.transport.writes[0])[0].payload, b"tick")

    def test_frameInPieces(self) -> None:
        """
        A frame split anywhere (even inside its header and mask) is one
        message once complete.
        """
        data = frame(TEXT, b"x" * 300)  # 16-bit length header
        pieces = [data[:1], data[1:3], data[3:7], data[7:100], data[100:]]
        for piece in pieces[:-1]:
            self.proto.dataReceived(piece)
            self.assertEqual(self.app.messages(), [])
        self.proto.dataReceived(pieces[-1])
        self.assertEqual(self.app.messages(), ["x" * 300])
        self.assertEqual(len(self.transport.writes), 1)

    def test_frameAndAHalf(self) -> None:
        """
        A read with one frame and part of the next: the first is answered
        at once, the second when it is complete.
        """
        data = frame(TEXT, b"first") + frame(TEXT, b"second")
        self.proto.dataReceived(data[:15])
        self.assertEqual([f.payload for f in self.transport.frames()], [b"first"])
        self.proto.dataReceived(data[15:])
        self.assertEqual([f.payload for f in self.transport.frames()], [b"second"])

    def test_payloadLengths(self) -> None:
        """
        The server's frames use the shortest length encoding (RFC 6455
        5.2): 7 bits up to 125, 16 bits up to 65535, then 64 bits.
        """
        for size, lengthByte, headerSize in [
            (125, 125, 2),
            (126, 126, 4),
            (65535, 126, 4),
            (65536, 127, 10),
            (70000, 127, 10),
        ]:
            self.conn.send(b"q" * size)
            data = self.transport.take()
            self.assertEqual(data[0], 0x82)
            self.assertEqual(data[1], lengthByte)
            self.assertEqual(len(data), headerSize + size)
            self.assertEqual(parseFrames(data)[0].payload, b"q" * size)

    def test_broadcastSameBytes(self) -> None:
        """
        One message sent to several connections gives each the same frame.
        """
        _, transport2, conn2 = self.opened()
        message = "to everyone"
        for c in (self.conn, conn2):
            c.send(message)
        self.assertEqual(self.transport.value(), transport2.value())
        self.assertEqual(parseFrames(transport2.value())[0].payload, b"to everyone")

    def test_sendTypes(self) -> None:
        """
        str is text, bytes-like is binary; anything else is a TypeError and
        sends nothing.
        """
        self.conn.send(bytearray(b"ba"))
        self.conn.send(memoryview(b"mv"))
        self.assertRaises(TypeError, self.conn.send, 5)
        self.assertEqual(
            [(f.opcode, f.payload) for f in self.transport.frames()],
            [(BINARY, b"ba"), (BINARY, b"mv")],
        )


# -- Graceful shutdown ------------------------------------------------------------------


class ShutdownTests(ServerCase):
    def test_shutdown(self) -> None:
        """
        shutdown() sends 1001 to every peer, and fires once all are gone:
        those that answer close normally, the rest are aborted after
        closeTimeout.
        """
        self.serve(closeTimeout=3.0)
        proto1, transport1, _ = self.opened()
        proto2, transport2, _ = self.opened()
        proto3, transport3 = self.connect()
        proto3.dataReceived(hixieRequest())
        transport3.take()
        proto4, transport4 = self.connect()  # still in its handshake

        done = self.layer.shutdown()
        self.assertNoResult(done)
        for transport in (transport1, transport2):
            (close,) = transport.frames()
            self.assertEqual((close.closeCode, close.closeReason), (1001, b"Server shutting down"))
        self.assertEqual(transport3.take(), b"\xff\x00")
        self.assertEqual(transport4.value(), b"")
        self.assertEqual(transport4.ends, ["loseConnection"])
        lost(proto4)

        proto1.dataReceived(closeFrame(1001))
        self.assertEqual(transport1.ends, ["loseConnection"])
        lost(proto1)
        proto3.dataReceived(b"\xff\x00")
        lost(proto3)
        self.assertNoResult(done)

        advance(self.clock, 3.0)
        self.assertEqual(set(transport2.ends), {"abortConnection"})
        self.assertNoResult(done)
        lost(proto2)
        self.assertIsNone(self.successResultOf(done))
        self.assertEqual(self.layer.connections, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_shutdownAllAnswer(self) -> None:
        """
        With every peer answering, shutdown fires without waiting.
        """
        self.serve(closeTimeout=3.0)
        opened = [self.opened() for _ in range(3)]
        done = self.layer.shutdown(4002, "maintenance")
        for proto, transport, _ in opened:
            (close,) = transport.frames()
            self.assertEqual((close.closeCode, close.closeReason), (4002, b"maintenance"))
            proto.dataReceived(closeFrame(4002))
            lost(proto)
        self.successResultOf(done)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_shutdownNothingOpen(self) -> None:
        self.serve()
        self.successResultOf(self.layer.shutdown())
