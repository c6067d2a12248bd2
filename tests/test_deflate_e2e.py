"""
permessage-deflate (RFC 7692) end to end: real servers on loopback, talked
to by independent clients that compress -- the C{websockets} library,
Autobahn, Node's C{ws} (tests/node/deflate.js), headless Chromium -- and by
a raw client (L{tests.rawclients.HybiClient}) that checks the frames
themselves: RSV1 set on what the server compressed, payloads that plain
C{zlib} inflates, small messages left alone, bombs refused with 1009.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.compress import (
    PerMessageDeflateOffer,
    PerMessageDeflateResponse,
    PerMessageDeflateResponseAccept,
)
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue

from tests import browser_helpers, rawclients
from tests.rawclients import OP_BINARY, OP_PONG, OP_TEXT
from tests.util import Recorder, ServerTestCase
from txratchet import WebSocket
from txratchet.demo import demoApplication, pageHandler
from txratchet.websocket import deflate
from txratchet.websocket.deflate import PerMessageDeflate

HOST = "127.0.0.1"
PMD = "permessage-deflate"
TAIL = b"\x00\x00\xff\xff"
RSV1 = 4  # as rawclients takes and reports the RSV bits
NODE_DIR = Path(__file__).resolve().parent / "node"

#: 1 MiB of text that compresses well, and 1 MiB that does not.
COMPRESSIBLE = ("permessage-deflate, RFC 7692 ✓ " * 40000)[: 1 << 20]
RANDOM = os.urandom(1 << 20)


def deflateMessage(message: bytes, compressor: Any = None) -> bytes:
    """
    A client's compressed payload (RFC 7692 7.2.1), with plain zlib.
    """
    if compressor is None:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(TAIL)
    return data[:-4]


def bomb(inflatedMiB: int) -> bytes:
    """
    About 1 KB per MiB of zeros it inflates to (DEFLATE's limit is ~1032:1).
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(1 << 20)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    steady = compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return (first + steady * (inflatedMiB - 1))[:-4]


class Spy:
    """
    Counts what the server inflated and compressed (to prove that both
    directions really were compressed), by wrapping L{deflate.Inflater.feed}
    and L{deflate.Deflater.compress}.
    """

    def __init__(self, case: ServerTestCase) -> None:
        self.inflated = 0  # bytes out of the server's inflaters
        self.compressed: list[tuple[int, int]] = []  # (in, out) per message
        feed = deflate.Inflater.feed
        compress = deflate.Deflater.compress

        def spyFeed(inflater: Any, payload: bytes, final: bool) -> bytes:
            out = feed(inflater, payload, final)
            self.inflated += len(out)
            return out

        def spyCompress(deflater: Any, payload: bytes) -> bytes:
            out = compress(deflater, payload)
            self.compressed.append((len(payload), len(out)))
            return out

        case.patch(deflate.Inflater, "feed", spyFeed)
        case.patch(deflate.Deflater, "compress", spyCompress)


# -- websockets ---------------------------------------------------------------


def websocketsSession(port: int, factory: Any = None) -> dict[str, Any]:
    """
    Echo text, binary, 1 MiB compressible and random messages (and the
    compressible one again) with the sync C{websockets} client, offering
    permessage-deflate by default or as C{factory} says.
    """
    from websockets.sync.client import connect

    if factory is None:
        kwargs: dict[str, Any] = {"compression": "deflate"}
    else:
        kwargs = {"compression": None, "extensions": [factory]}
    out: dict[str, Any] = {}
    with connect(f"ws://{HOST}:{port}/", max_size=None, **kwargs) as ws:
        out["request"] = ws.request.headers.get("Sec-WebSocket-Extensions")
        out["response"] = ws.response.headers.get("Sec-WebSocket-Extensions")
        out["extensions"] = [repr(e) for e in ws.protocol.extensions]
        echoes = {}
        for name, message in (
            ("text", "héllo wörld ✓ " * 3),
            ("binary", b"\x00\xff\x01\xfe" * 20),
            ("small", "hi"),
            ("compressible", COMPRESSIBLE),
            ("random", RANDOM),
            ("compressibleAgain", COMPRESSIBLE),
            ("fragmented", ["frag", "mented ", "κόσμε " * 30]),
        ):
            ws.send(message)
            echo = ws.recv()
            expected = "".join(message) if isinstance(message, list) else message
            echoes[name] = echo == expected and type(echo) is type(expected)
        out["echoes"] = echoes
        out["pong"] = ws.ping(b"abc").wait(5)
    out["closeCode"] = ws.close_code
    return out


ALL_ECHOED = {
    "text": True,
    "binary": True,
    "small": True,
    "compressible": True,
    "random": True,
    "compressibleAgain": True,
    "fragmented": True,
}


class WebsocketsClientTests(ServerTestCase):
    """
    The C{websockets} client, with its permessage-deflate variants.
    """

    @inlineCallbacks
    def session(
        self, factory: Any = None, config: PerMessageDeflate | None = None, ratio: int = 10
    ) -> Any:
        recorder = Recorder()
        spy = Spy(self)
        kwargs = {} if config is None else {"compression": config}
        port = yield self.listen(WebSocket(recorder, **kwargs))
        out = yield deferToThread(websocketsSession, port, factory)
        self.assertEqual(out["echoes"], ALL_ECHOED)
        self.assertTrue(out["pong"])
        self.assertEqual(out["closeCode"], 1000)
        [conn] = recorder.conns
        self.assertEqual(conn.compression.responseHeader(), out["response"])
        # Both directions were compressed: the server inflated at least the
        # 3 MiB of large messages, and compressed 1 MiB of text to little.
        self.assertGreater(spy.inflated, 3 << 20)
        size = len(COMPRESSIBLE.encode())
        big = [out_ for n, out_ in spy.compressed if n == size]
        self.assertEqual(len(big), 2)
        self.assertLess(big[0] * ratio, size)
        return out, conn

    @inlineCallbacks
    def test_default(self) -> Any:
        """
        websockets offers client_max_window_bits (no value); we answer with
        our 12-bit window and ask the client for 12 bits too.
        """
        out, conn = yield self.session()
        self.assertEqual(out["request"], f"{PMD}; client_max_window_bits")
        self.assertEqual(
            out["response"], f"{PMD}; server_max_window_bits=12; client_max_window_bits=12"
        )
        self.assertEqual(
            out["extensions"],
            [
                "PerMessageDeflate(remote_no_context_takeover=False, "
                "local_no_context_takeover=False, remote_max_window_bits=12, "
                "local_max_window_bits=12)"
            ],
        )
        self.assertEqual(conn.compression, deflate.DeflateParams(False, False, 12, 12))

    @inlineCallbacks
    def test_clientMaxWindowBits(self) -> Any:
        from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

        out, conn = yield self.session(ClientPerMessageDeflateFactory(client_max_window_bits=10))
        self.assertEqual(out["request"], f"{PMD}; client_max_window_bits=10")
        self.assertEqual(
            out["response"], f"{PMD}; server_max_window_bits=12; client_max_window_bits=10"
        )
        self.assertEqual(conn.compression.clientMaxWindowBits, 10)

    @inlineCallbacks
    def test_serverMaxWindowBits(self) -> Any:
        from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

        for bits in (9, 10, 12, 15):
            out, conn = yield self.session(
                ClientPerMessageDeflateFactory(server_max_window_bits=bits)
            )
            self.assertEqual(out["response"], f"{PMD}; server_max_window_bits={min(bits, 12)}; client_max_window_bits=12")
            self.assertEqual(conn.compression.serverMaxWindowBits, min(bits, 12))

    @inlineCallbacks
    def test_serverMaxWindowBits8(self) -> Any:
        """
        A 256-byte window: zlib cannot compress raw DEFLATE with it, yet what
        we send must inflate with it (websockets uses zlib.decompressobj(-8)).
        """
        from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

        # Huffman coding only: text compresses less than 2:1.
        out, _conn = yield self.session(
            ClientPerMessageDeflateFactory(server_max_window_bits=8), ratio=1
        )
        self.assertEqual(out["response"], f"{PMD}; server_max_window_bits=8; client_max_window_bits=12")
        self.assertIn("remote_max_window_bits=8", out["extensions"][0])

    @inlineCallbacks
    def test_serverMaxWindowBits15(self) -> Any:
        """
        With our window at 15 too, accepting the client's
        server_max_window_bits=15 means echoing it (RFC 7692 7.1.2.1):
        websockets refuses a response without it.
        """
        from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

        out, _conn = yield self.session(
            ClientPerMessageDeflateFactory(server_max_window_bits=15),
            PerMessageDeflate(serverMaxWindowBits=15, memLevel=8),
        )
        self.assertEqual(out["response"], f"{PMD}; server_max_window_bits=15; client_max_window_bits=12")

    @inlineCallbacks
    def test_noContextTakeover(self) -> Any:
        from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

        out, _conn = yield self.session(
            ClientPerMessageDeflateFactory(
                server_no_context_takeover=True,
                client_no_context_takeover=True,
                client_max_window_bits=None,
            )
        )
        self.assertEqual(
            out["request"], f"{PMD}; server_no_context_takeover; client_no_context_takeover"
        )
        self.assertEqual(
            out["response"],
            f"{PMD}; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=12",
        )
        self.assertIn("remote_no_context_takeover=True", out["extensions"][0])
        self.assertIn("local_no_context_takeover=True", out["extensions"][0])

    @inlineCallbacks
    def test_compressionOff(self) -> Any:
        """
        compression=None: the offer is ignored, nothing is compressed.
        """
        recorder = Recorder()
        spy = Spy(self)
        port = yield self.listen(WebSocket(recorder, compression=None))
        out = yield deferToThread(websocketsSession, port)
        self.assertEqual(out["request"], f"{PMD}; client_max_window_bits")
        self.assertIsNone(out["response"])
        self.assertEqual(out["extensions"], [])
        self.assertEqual(out["echoes"], ALL_ECHOED)
        self.assertIsNone(recorder.conns[0].compression)
        self.assertEqual((spy.inflated, spy.compressed), (0, []))


# -- Autobahn -----------------------------------------------------------------


class AutobahnDeflateClient(WebSocketClientProtocol):
    """
    Sends its factory's messages one by one, collecting the echoes and what
    permessage-deflate the handshake agreed.
    """

    def onOpen(self) -> None:
        self.received: list[Any] = []
        self.todo = list(self.factory.messages)
        self.factory.response = self.http_headers.get("sec-websocket-extensions")
        self.factory.inUse = [e.__json__() for e in self.websocket_extensions_in_use]
        self._next()

    def _next(self) -> None:
        msg = self.todo.pop(0)
        binary = isinstance(msg, bytes)
        self.sendMessage(msg if binary else msg.encode("utf-8"), isBinary=binary)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.received.append(payload if isBinary else payload.decode("utf-8"))
        if self.todo:
            self._next()
        else:
            self.sendClose(1000)

    def onClose(self, wasClean: bool, code: int, reason: str) -> None:
        if not self.factory.done.called:
            self.factory.done.callback((getattr(self, "received", None), wasClean, code))


def acceptDeflate(response: Any) -> Any:
    if isinstance(response, PerMessageDeflateResponse):
        return PerMessageDeflateResponseAccept(response)
    return None


class AutobahnClientTests(ServerTestCase):
    """
    Autobahn's client with its permessage-deflate offers.
    """

    @inlineCallbacks
    def session(self, offers: list[Any]) -> Any:
        offered = ", ".join(offer.get_extension_string() for offer in offers)
        recorder = Recorder()
        spy = Spy(self)
        port = yield self.listen(WebSocket(recorder))
        factory = WebSocketClientFactory(f"ws://{HOST}:{port}/ab")
        factory.setProtocolOptions(
            perMessageCompressionOffers=offers, perMessageCompressionAccept=acceptDeflate
        )
        factory.protocol = AutobahnDeflateClient
        factory.messages = ["text ✓" * 20, b"\x01\x02" * 100, "x" * 70000, RANDOM[:70000], "y" * 10]
        factory.done = Deferred()
        yield TCP4ClientEndpoint(reactor, HOST, port).connect(factory)
        received, wasClean, code = yield factory.done
        self.assertEqual(received == factory.messages, True)
        self.assertTrue(wasClean)
        self.assertEqual(code, 1000)
        [conn] = recorder.conns
        [header] = conn.headers.getAll("sec-websocket-extensions")
        self.assertEqual(deflate.parseExtensions([header]), deflate.parseExtensions([offered]))
        self.assertEqual(conn.compression.responseHeader(), factory.response)
        self.assertGreater(spy.inflated, 140000)
        self.assertEqual(len(spy.compressed), 4)  # all but "y" * 10
        self.assertEqual(len(factory.inUse), 1)
        return conn, factory

    @inlineCallbacks
    def test_defaultOffer(self) -> Any:
        conn, factory = yield self.session([PerMessageDeflateOffer()])
        self.assertEqual(
            conn.headers.getAll("sec-websocket-extensions"),
            [f"{PMD}; client_no_context_takeover; client_max_window_bits"],
        )
        self.assertEqual(
            factory.response,
            f"{PMD}; client_no_context_takeover; server_max_window_bits=12; "
            "client_max_window_bits=12",
        )

    @inlineCallbacks
    def test_requestParameters(self) -> Any:
        offer = PerMessageDeflateOffer(
            accept_no_context_takeover=False,
            accept_max_window_bits=True,
            request_no_context_takeover=True,
            request_max_window_bits=10,
        )
        conn, factory = yield self.session([offer])
        self.assertEqual(
            factory.response,
            f"{PMD}; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12",
        )
        self.assertEqual(conn.compression, deflate.DeflateParams(True, False, 10, 12, True))

    @inlineCallbacks
    def test_severalOffers(self) -> Any:
        """
        The first acceptable offer wins.
        """
        offers = [
            PerMessageDeflateOffer(request_max_window_bits=9, accept_no_context_takeover=False),
            PerMessageDeflateOffer(),
        ]
        _conn, factory = yield self.session(offers)
        self.assertEqual(factory.response, f"{PMD}; server_max_window_bits=9; client_max_window_bits=12")


# -- Node ws ------------------------------------------------------------------


class NodeClientTests(ServerTestCase):
    """
    Node's C{ws} with its perMessageDeflate options (tests/node/deflate.js).
    """

    @inlineCallbacks
    def runNode(self, options: Any, config: dict[str, Any] | None = None) -> Any:
        node = shutil.which("node")
        if node is None or not (NODE_DIR / "node_modules" / "ws").is_dir():
            self.fail("Node.js and tests/node/node_modules are needed: npm ci --prefix tests/node")
        recorder = Recorder()
        spy = Spy(self)
        port = yield self.listen(WebSocket(recorder, **(config or {})))
        env = dict(os.environ, TXRATCHET_NODE_TIMEOUT_MS="15000")
        out, err, code = yield getProcessOutputAndValue(
            node,
            [str(NODE_DIR / "deflate.js"), f"ws://{HOST}:{port}/", json.dumps(options)],
            env=env,
            path=str(NODE_DIR),
        )
        details = f"exit {code}\nstdout: {out.decode()[:2000]}\nstderr: {err.decode()[:2000]}"
        self.assertEqual(code, 0, details)
        result = json.loads(out.decode().strip().splitlines()[-1])
        self.assertTrue(result["ok"], details)
        self.assertEqual(
            [(e["name"], e["same"], e["sameType"]) for e in result["echoes"]],
            [
                (name, True, True)
                for name in (
                    "small-text",
                    "binary",
                    "large-text",
                    "random",
                    "large-text-again",
                    "empty-text",
                )
            ],
            details,
        )
        self.assertEqual(result["close"]["code"], 1000)
        [conn] = recorder.conns
        return result, conn, spy

    @inlineCallbacks
    def test_default(self) -> Any:
        result, conn, spy = yield self.runNode({"threshold": 0})
        self.assertEqual(
            conn.headers.getAll("sec-websocket-extensions"), [f"{PMD}; client_max_window_bits"]
        )
        self.assertEqual(result["response"], f"{PMD}; server_max_window_bits=12; client_max_window_bits=12")
        self.assertEqual(result["extensions"], PMD)
        self.assertEqual(result["params"], {"server_max_window_bits": 12, "client_max_window_bits": 12})
        # threshold 0: ws compressed every message, the empty one included.
        self.assertGreaterEqual(spy.inflated, 2 * (1 << 20) + 256 * 1024)

    @inlineCallbacks
    def test_noContextTakeover(self) -> Any:
        result, conn, _spy = yield self.runNode(
            {"serverNoContextTakeover": True, "clientNoContextTakeover": True, "threshold": 0}
        )
        self.assertEqual(
            result["response"],
            f"{PMD}; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=12; client_max_window_bits=12",
        )
        self.assertEqual(
            result["params"],
            {
                "server_no_context_takeover": True,
                "client_no_context_takeover": True,
                "server_max_window_bits": 12,
                "client_max_window_bits": 12,
            },
        )
        self.assertEqual(conn.compression, deflate.DeflateParams(True, True, 12, 12))

    @inlineCallbacks
    def test_serverMaxWindowBits(self) -> Any:
        for bits in (9, 10):
            result, conn, _spy = yield self.runNode({"serverMaxWindowBits": bits, "threshold": 0})
            self.assertEqual(result["response"], f"{PMD}; server_max_window_bits={bits}; client_max_window_bits=12")
            self.assertEqual(conn.compression.serverMaxWindowBits, bits)

    @inlineCallbacks
    def test_clientMaxWindowBits(self) -> Any:
        result, conn, _spy = yield self.runNode(
            {"clientMaxWindowBits": 9, "threshold": 0},
            {"compression": PerMessageDeflate(clientMaxWindowBits=10)},
        )
        self.assertEqual(
            result["response"], f"{PMD}; server_max_window_bits=12; client_max_window_bits=9"
        )
        self.assertEqual(conn.compression.clientMaxWindowBits, 9)

    @inlineCallbacks
    def test_compressionOff(self) -> Any:
        result, _conn, spy = yield self.runNode({"threshold": 0}, {"compression": None})
        self.assertIsNone(result["response"])
        self.assertEqual(result["extensions"], "")
        self.assertEqual((spy.inflated, spy.compressed), (0, []))


# -- A raw client: the frames themselves --------------------------------------


def rawClient(port: int, offer: str | None = f"{PMD}; client_no_context_takeover") -> Any:
    headers = {} if offer is None else {"Sec-WebSocket-Extensions": offer}
    client = rawclients.HybiClient(HOST, port, headers=headers, timeout=10)
    client.connect()
    return client


def rawSession(port: int) -> dict[str, Any]:
    """
    Compressed and plain messages both ways, checked frame by frame.
    """
    out: dict[str, Any] = {}
    client = rawClient(port)
    try:
        out["response"] = client.response_headers.get("sec-websocket-extensions")
        # The server keeps its context (we did not ask otherwise): one
        # decompressor for everything it sends; its window is 12 bits.
        inflater = zlib.decompressobj(-12)

        def roundTrip(opcode: int, message: bytes, compressed: bool = True) -> tuple[int, bytes]:
            if compressed:
                client.send_frame(opcode, deflateMessage(message), rsv=RSV1)
            else:
                client.send_frame(opcode, message)
            op, fin, rsv, payload = client.recv_frame()
            assert op == opcode and fin, (op, fin)
            if rsv == RSV1:
                payload = inflater.decompress(payload + TAIL)
            return rsv, payload

        text = ("squeeze me ✓ " * 1000).encode()
        out["text"] = roundTrip(OP_TEXT, text)
        out["textAgain"] = roundTrip(OP_TEXT, text)
        out["random"] = roundTrip(OP_BINARY, RANDOM[:20000])
        out["small"] = roundTrip(OP_TEXT, b"hi", compressed=False)
        out["smallCompressed"] = roundTrip(OP_TEXT, b"hi")
        out["31"] = roundTrip(OP_BINARY, b"a" * 31)
        out["32"] = roundTrip(OP_BINARY, b"a" * 32)
        out["plainLarge"] = roundTrip(OP_BINARY, b"b" * 5000, compressed=False)
        # A compressed message in three frames with a ping in between.
        payload = deflateMessage(text)
        client.send_frame(OP_TEXT, payload[:10], fin=False, rsv=RSV1)
        client.send_ping(b"between")
        client.send_frame(rawclients.OP_CONTINUATION, payload[10:20], fin=False)
        client.send_frame(rawclients.OP_CONTINUATION, payload[20:])
        frames = [client.recv_frame(), client.recv_frame()]
        out["fragmented"] = [
            (op, rsv, inflater.decompress(p + TAIL) if rsv else p) for op, _, rsv, p in frames
        ]
        out["close"] = client.close()
        out["tcpClosed"] = client.server_closed_tcp
    finally:
        client._close_socket()
    return out


def rawSessionSizes(port: int) -> list[int]:
    """
    The wire sizes of the server's answers to the same message twice.
    """
    client = rawClient(port, PMD)
    try:
        sizes = []
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        for _ in range(2):
            # 3000 bytes of hex: compresses about 2:1 alone, to almost
            # nothing when it can refer to the previous (12-bit window).
            message = RANDOM[:1500].hex().encode()
            client.send_frame(OP_TEXT, deflateMessage(message, compressor), rsv=RSV1)
            _, _, rsv, payload = client.recv_frame()
            assert rsv == RSV1
            sizes.append(len(payload))
        client.close()
        return sizes
    finally:
        client._close_socket()


def rawBomb(port: int, payload: bytes) -> dict[str, Any]:
    client = rawClient(port)
    out: dict[str, Any] = {}
    try:
        try:
            client.send_frame(OP_BINARY, payload, rsv=RSV1)
        except OSError as e:  # the server may stop reading early
            out["sendError"] = repr(e)
        out["close"] = client.expect_close()
        out["tcpClosed"] = client.wait_tcp_closed(10)
    finally:
        client._close_socket()
    return out


def rawRSV1Refused(port: int) -> dict[str, Any]:
    client = rawClient(port)
    try:
        out = {"response": client.response_headers.get("sec-websocket-extensions")}
        client.send_frame(OP_TEXT, deflateMessage(b"Hello"), rsv=RSV1)
        out["close"] = client.expect_close()
        out["tcpClosed"] = client.wait_tcp_closed(10)
        return out
    finally:
        client._close_socket()


class RawClientTests(ServerTestCase):
    """
    What the server puts on the wire, read with plain zlib.
    """

    @inlineCallbacks
    def test_frames(self) -> Any:
        recorder = Recorder()
        port = yield self.listen(WebSocket(recorder))
        out = yield deferToThread(rawSession, port)
        self.assertEqual(
            out["response"], f"{PMD}; client_no_context_takeover; server_max_window_bits=12"
        )
        text = ("squeeze me ✓ " * 1000).encode()
        # RSV1 set, payload inflates with zlib to the message.
        self.assertEqual(out["text"], (RSV1, text))
        self.assertEqual(out["textAgain"], (RSV1, text))
        self.assertEqual(out["random"], (RSV1, RANDOM[:20000]))
        # Below minSize (32 bytes) messages go out uncompressed, whichever
        # way they came in; from 32 bytes on they are compressed.
        self.assertEqual(out["small"], (0, b"hi"))
        self.assertEqual(out["smallCompressed"], (0, b"hi"))
        self.assertEqual(out["31"], (0, b"a" * 31))
        self.assertEqual(out["32"], (RSV1, b"a" * 32))
        self.assertEqual(out["plainLarge"], (RSV1, b"b" * 5000))
        self.assertEqual(out["fragmented"], [(OP_PONG, 0, b"between"), (OP_TEXT, RSV1, text)])
        self.assertEqual(out["close"], (1000, ""))
        self.assertTrue(out["tcpClosed"])
        self.assertEqual(
            recorder.messages(),
            [
                text.decode(),
                text.decode(),
                RANDOM[:20000],
                "hi",
                "hi",
                b"a" * 31,
                b"a" * 32,
                b"b" * 5000,
                text.decode(),
            ],
        )

    @inlineCallbacks
    def test_contextTakeover(self) -> Any:
        """
        With context takeover (the default), the server's second identical
        message refers back to the first: a few bytes on the wire. With
        server_no_context_takeover both are the same size.
        """
        port = yield self.listen(WebSocket(Recorder()))
        first, second = yield deferToThread(rawSessionSizes, port)
        self.assertLess(second, 100)  # 3000 bytes in matches of at most 258
        self.assertGreater(first, 1000)
        port = yield self.listen(
            WebSocket(Recorder(), compression=PerMessageDeflate(serverNoContextTakeover=True))
        )
        first, second = yield deferToThread(rawSessionSizes, port)
        self.assertEqual(first, second)

    @inlineCallbacks
    def test_bomb(self) -> Any:
        """
        About 1 MB that inflates to 1 GiB, against a 1 MiB limit: the server
        fails the connection with 1009 and closes TCP.
        """
        recorder = Recorder()
        port = yield self.listen(WebSocket(recorder, maxMessageSize=1 << 20))
        payload = bomb(1024)
        out = yield deferToThread(rawBomb, port, payload)
        self.assertEqual(out["close"][0], 1009, out)
        self.assertTrue(out["tcpClosed"], out)
        yield recorder.closed
        self.assertEqual(recorder.messages(), [])
        self.assertEqual(recorder.conns[0].closeCode, 1009)

    @inlineCallbacks
    def test_compressionOff(self) -> Any:
        """
        compression=None: no extension in the response, so RSV1 is a
        protocol error (1002).
        """
        recorder = Recorder()
        port = yield self.listen(WebSocket(recorder, compression=None))
        out = yield deferToThread(rawRSV1Refused, port)
        self.assertIsNone(out["response"])
        self.assertEqual(out["close"][0], 1002)
        self.assertTrue(out["tcpClosed"])
        self.assertIsNone(recorder.conns[0].compression)

    @inlineCallbacks
    def test_malformedOffer(self) -> Any:
        port = yield self.listen(WebSocket(Recorder()))
        error = yield deferToThread(self._refused, port, f"{PMD}; server_max_window_bits=")
        self.assertEqual(error.status, 400)

    @staticmethod
    def _refused(port: int, offer: str) -> Any:
        try:
            rawClient(port, offer)._close_socket()
        except rawclients.HandshakeError as e:
            return e
        raise AssertionError("the handshake succeeded")

    @inlineCallbacks
    def test_contextTakeoverLimit(self) -> Any:
        """
        compressionContextTakeoverLimit=1: while one connection compresses,
        the next ones get no context takeover both ways; once it is gone,
        takeover is offered again.
        """
        layer = WebSocket(Recorder(), compressionContextTakeoverLimit=1)
        port = yield self.listen(layer)
        normal = f"{PMD}; server_max_window_bits=12"
        none = f"{PMD}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12"
        first = yield deferToThread(rawClient, port, PMD)
        self.addCleanup(first._close_socket)
        self.assertEqual(first.response_headers.get("sec-websocket-extensions"), normal)
        second = yield deferToThread(rawClient, port, PMD)
        self.addCleanup(second._close_socket)
        self.assertEqual(second.response_headers.get("sec-websocket-extensions"), none)
        self.assertEqual(layer.compressing, 2)
        # The second connection works without context: each message the
        # server sends inflates alone.
        sizes = yield deferToThread(self._twice, second)
        self.assertEqual(sizes[0], sizes[1])
        yield deferToThread(first.close)
        yield deferToThread(second.close)
        for _ in range(100):
            if layer.compressing == 0:
                break
            yield deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(layer.compressing, 0)
        third = yield deferToThread(rawClient, port, PMD)
        self.addCleanup(third._close_socket)
        self.assertEqual(third.response_headers.get("sec-websocket-extensions"), normal)
        yield deferToThread(third.close)

    @staticmethod
    def _twice(client: Any) -> list[int]:
        sizes = []
        message = b"no context takeover " * 50
        for _ in range(2):
            client.send_frame(OP_BINARY, deflateMessage(message), rsv=RSV1)
            _, _, rsv, payload = client.recv_frame()
            assert rsv == RSV1
            assert zlib.decompressobj(-12).decompress(payload + TAIL) == message
            sizes.append(len(payload))
        return sizes


# -- Chromium -----------------------------------------------------------------

BROWSER_SCRIPT = """
const url = arguments[0];
const done = arguments[arguments.length - 1];
const unit = 'Chromium compresses this, txratchet inflates it. ';
const big = unit.repeat(Math.ceil(102400 / unit.length)).slice(0, 102400);
const bytes = new Uint8Array(50000);
for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) % 251;
const todo = [big, big + '!', bytes];
const results = [];
const ws = new WebSocket(url);
ws.binaryType = 'arraybuffer';
ws.onopen = () => ws.send(todo[0]);
ws.onmessage = (e) => {
  const sent = todo.shift();
  let same;
  if (typeof sent === 'string') {
    same = e.data === sent;
  } else {
    const got = new Uint8Array(e.data);
    same = got.length === sent.length && got.every((b, i) => b === sent[i]);
  }
  results.push(same);
  if (todo.length) {
    ws.send(todo[0]);
  } else {
    ws.close(1000);
  }
};
ws.onclose = (e) => done({extensions: ws.extensions, results, code: e.code, clean: e.wasClean});
ws.onerror = () => results.push('error');
"""


class ChromiumTests(ServerTestCase):
    """
    A real browser's permessage-deflate: headless Chromium on the demo page
    (served by L{pageHandler}) opens a WebSocket to an echo server.
    """

    timeout = 60

    @inlineCallbacks
    def test_chromium(self) -> Any:
        missing = browser_helpers.missing_browser_parts()
        if missing:
            self.fail("cannot run the browser test:\n  " + "\n  ".join(missing))
        workdir = Path(tempfile.mkdtemp(prefix="txratchet-deflate-browser-"))
        self.addCleanup(shutil.rmtree, workdir, True)
        spy = Spy(self)
        pagePort = yield self.listen(WebSocket(demoApplication(), httpHandler=pageHandler))
        recorder = Recorder()
        echoPort = yield self.listen(WebSocket(recorder))
        result = yield deferToThread(
            self._browse, workdir, f"http://{HOST}:{pagePort}/", f"ws://{HOST}:{echoPort}/echo"
        )
        self.assertEqual(result["extensions"], f"{PMD}; server_max_window_bits=12; client_max_window_bits=12", result)
        self.assertEqual(result["results"], [True, True, True], result)
        self.assertEqual(result["code"], 1000, result)
        self.assertTrue(result["clean"], result)
        conn = recorder.conns[0]
        self.assertEqual(
            conn.headers.getAll("sec-websocket-extensions"), [f"{PMD}; client_max_window_bits"]
        )
        self.assertEqual(len(recorder.messages()), 3)
        # Chromium compressed (the server inflated 100 KB twice and the
        # binary message), and so did we.
        self.assertGreaterEqual(spy.inflated, 2 * 102400 + 50000)
        self.assertEqual([n for n, _ in spy.compressed][-3:], [102400, 102401, 50000])
        self.assertLess(spy.compressed[-2][1], 1000)

    @staticmethod
    def _browse(workdir: Path, pageURL: str, echoURL: str) -> Any:
        browser = browser_helpers.Browser(workdir)
        try:
            driver = browser.driver
            driver.get(pageURL)
            assert driver.title == "txratchet chat", driver.title
            return driver.execute_async_script(BROWSER_SCRIPT, echoURL)
        finally:
            browser.quit()
