"""
Tests for the client's side of L{txratchet.websocket.handshake}, the opening handshake
without I/O: URLs, the request of every version (RFC 6455 4.1, HyBi-07/08,
draft-hixie-76 4.1), the checks on the server's answer (RFC 6455 4.1 and
RFC 7692 7.1), and round trips through the server's own sans-I/O
negotiation, including permessage-deflate seen from each side.
"""

from __future__ import annotations

import base64
import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txratchet.websocket import deflate
from txratchet.websocket.deflate import DeflateOffer
from txratchet.websocket.handshake import (
    HIXIE76,
    HYBI07,
    HYBI08,
    RFC6455,
    URL,
    ClientHandshake,
    HandshakeFailed,
    Headers,
    InvalidResponse,
    InvalidStatus,
    InvalidURL,
    RequestParser,
    _hixieKeyNumber,
    acceptKey,
    cookieHeader,
    hixie76Answer,
    negotiate,
    normalizeVersion,
    parseSetCookies,
    parseURL,
)

#: RFC 6455 section 1.3's example key and its accept value.
RFC_KEY = base64.b64decode("dGhlIHNhbXBsZSBub25jZQ==")
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def requestLines(handshake: ClientHandshake) -> list[str]:
    head = handshake.data[: handshake.data.index(b"\r\n\r\n")]
    return head.decode("latin-1").split("\r\n")


def answer(extra: str = "", status: str = "101 Switching Protocols", accept: str = RFC_ACCEPT) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
    ).encode("latin-1")


def serverSide(
    handshake: ClientHandshake,
    subprotocols: tuple[str, ...] = (),
    compression: deflate.PerMessageDeflate | None = None,
) -> tuple[bytes, deflate.DeflateParams | None, str]:
    """
    Run the client's request through the server's parser and negotiation.
    """
    parser = RequestParser()
    request = parser.feed(handshake.data)
    assert request is not None
    agreed: list[deflate.DeflateParams] = []

    def extensions(req: object) -> str | None:
        if compression is None:
            return None
        params = compression.negotiate(request.headers.getAll("sec-websocket-extensions"))
        if params is None:
            return None
        agreed.append(params)
        return params.responseHeader()

    accepted = negotiate(request, subprotocols, extensions=extensions)
    return accepted.response, (agreed[0] if agreed else None), accepted.family


class URLTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        self.assertEqual(parseURL("ws://example.com"), URL(False, "example.com", 80, "/"))
        self.assertEqual(parseURL("wss://example.com"), URL(True, "example.com", 443, "/"))
        url = parseURL("WSS://Example.com:8443/chat/room?a=1&b=2")
        self.assertEqual(url, URL(True, "example.com", 8443, "/chat/room?a=1&b=2"))
        self.assertEqual(str(url), "wss://example.com:8443/chat/room?a=1&b=2")

    def test_hostHeader(self) -> None:
        self.assertEqual(parseURL("ws://h:80/").hostHeader, "h")
        self.assertEqual(parseURL("ws://h:443/").hostHeader, "h:443")
        self.assertEqual(parseURL("wss://h:443/").hostHeader, "h")
        self.assertEqual(parseURL("ws://[::1]:9000/").hostHeader, "[::1]:9000")
        self.assertEqual(parseURL("ws://[::1]:9000/").host, "::1")
        self.assertEqual(parseURL("wss://h:8443/").origin, "https://h:8443")

    def test_userinfo(self) -> None:
        url = parseURL("ws://al%40ice:s%3Acret@h/")
        self.assertEqual(url.userinfo, ("al@ice", "s:cret"))
        handshake = ClientHandshake(url)
        self.assertIn(
            "Authorization: Basic " + base64.b64encode(b"al@ice:s:cret").decode(),
            requestLines(handshake),
        )

    def test_invalid(self) -> None:
        for bad in (
            "http://example.com/",
            "example.com",
            "ws:///path",
            "ws://h/#frag",
            "ws://h/#",
            "ws://h:99999/",
            "ws://h:x/",
            "ws://h/a b",
            "ws://h/\r\nX: y",
        ):
            self.assertRaises(InvalidURL, parseURL, bad)

    def test_versions(self) -> None:
        self.assertEqual(normalizeVersion(13), (RFC6455, "13"))
        self.assertEqual(normalizeVersion("8"), (HYBI08, "8"))
        self.assertEqual(normalizeVersion(7), (HYBI07, "7"))
        self.assertEqual(normalizeVersion("hixie-76"), (HIXIE76, None))
        self.assertEqual(normalizeVersion("Hixie76"), (HIXIE76, None))
        for bad in (9, "12", "hybi-00", ""):
            self.assertRaises(ValueError, normalizeVersion, bad)


class RequestTests(SynchronousTestCase):
    def test_rfc6455(self) -> None:
        """
        RFC 6455 4.1: the request of section 1.3's example.
        """
        handshake = ClientHandshake(
            "ws://server.example.com/chat",
            subprotocols=["chat", "superchat"],
            origin="http://example.com",
            key=RFC_KEY,
        )
        self.assertEqual(
            requestLines(handshake),
            [
                "GET /chat HTTP/1.1",
                "Host: server.example.com",
                "Upgrade: websocket",
                "Connection: Upgrade",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version: 13",
                "Origin: http://example.com",
                "Sec-WebSocket-Protocol: chat, superchat",
                "User-Agent: txratchet",
            ],
        )
        self.assertTrue(handshake.data.endswith(b"\r\n\r\n"))
        self.assertEqual(handshake.request.path, "/chat")

    def test_randomKeys(self) -> None:
        keys = {ClientHandshake("ws://h/").key for _ in range(20)}
        self.assertEqual(len(keys), 20)
        for key in keys:
            self.assertEqual(len(base64.b64decode(key, validate=True)), 16)
        self.assertRaises(ValueError, ClientHandshake, "ws://h/", key=b"short")

    def test_optionalParts(self) -> None:
        handshake = ClientHandshake(
            "ws://h:8080/p?q=1",
            compression=DeflateOffer(),
            cookies={"session": "abc", "theme": "dark"},
            headers={"X-Test": "yes", "User-Agent": "mine/1.0"},
        )
        lines = requestLines(handshake)
        self.assertEqual(lines[0], "GET /p?q=1 HTTP/1.1")
        self.assertIn("Host: h:8080", lines)
        self.assertIn("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits", lines)
        self.assertIn("Cookie: session=abc; theme=dark", lines)
        self.assertIn("X-Test: yes", lines)
        self.assertIn("User-Agent: mine/1.0", lines)
        self.assertNotIn("User-Agent: txratchet", lines)
        self.assertFalse([line for line in lines if line.lower().startswith("origin")])
        self.assertEqual(handshake.request.cookies, {"session": "abc", "theme": "dark"})
        self.assertEqual(handshake.request.params, {"q": ["1"]})

    def test_hostOverride(self) -> None:
        lines = requestLines(ClientHandshake("ws://10.0.0.1/", headers=[("Host", "virtual.example")]))
        self.assertEqual([line for line in lines if line.startswith("Host")], ["Host: virtual.example"])

    def test_version8Origin(self) -> None:
        """
        HyBi-07/08 carry the origin in Sec-WebSocket-Origin.
        """
        for version in (8, 7):
            lines = requestLines(ClientHandshake("ws://h/", version=version, origin="http://o"))
            self.assertIn(f"Sec-WebSocket-Version: {version}", lines)
            self.assertIn("Sec-WebSocket-Origin: http://o", lines)
            self.assertFalse([line for line in lines if line.startswith("Origin")])

    def test_nonAsciiPath(self) -> None:
        handshake = ClientHandshake("ws://h/caf\u00e9?x=\u00e9")
        self.assertEqual(requestLines(handshake)[0], "GET /caf%C3%A9?x=%C3%A9 HTTP/1.1")

    def test_invalidOptions(self) -> None:
        for headers in (
            [("Upgrade", "h2c")],
            [("Sec-WebSocket-Key", "x")],
            [("Sec-WebSocket-Extensions", "x")],
            [("Bad Name", "x")],
            [("X", "a\r\nInjected: 1")],
        ):
            self.assertRaises(ValueError, ClientHandshake, "ws://h/", headers=headers)
        self.assertRaises(ValueError, ClientHandshake, "ws://h/", subprotocols=["a b"])
        self.assertRaises(ValueError, ClientHandshake, "ws://h/", subprotocols=[""])
        self.assertRaises(ValueError, ClientHandshake, "ws://h/", origin="http://o\r\n")
        self.assertRaises(ValueError, ClientHandshake, "ws://h/", cookies={"a": "b;c"})
        self.assertRaises(ValueError, ClientHandshake, "ws://h/", cookies={"a b": "c"})
        self.assertRaises(ValueError, ClientHandshake, "ws://h/", version=9)

    def test_cookieHeader(self) -> None:
        self.assertEqual(cookieHeader([("a", "1"), ("b", "2")]), "a=1; b=2")
        self.assertEqual(cookieHeader("a=1; b=2"), "a=1; b=2")
        self.assertEqual(cookieHeader({"e": ""}), "e=")
        self.assertRaises(ValueError, cookieHeader, {"a": "x y"})
        self.assertRaises(ValueError, cookieHeader, "a=1\r\n")

    def test_hixie76Request(self) -> None:
        """
        Draft-76 4.1: Upgrade: WebSocket, an Origin, two keys and key3.
        """
        handshake = ClientHandshake("ws://h:9000/demo", version="hixie-76", randomSource=random.Random(1))
        lines = requestLines(handshake)
        self.assertIn("Upgrade: WebSocket", lines)
        self.assertIn("Origin: http://h:9000", lines)
        self.assertFalse([line for line in lines if "Sec-WebSocket-Version" in line])
        self.assertFalse([line for line in lines if "Extensions" in line])
        self.assertEqual(len(handshake.body), 8)
        self.assertTrue(handshake.data.endswith(b"\r\n\r\n" + handshake.body))
        self.assertIsNone(ClientHandshake("ws://h/", version="hixie-76", compression=DeflateOffer()).compression)

    @settings(max_examples=200, deadline=None)
    @given(st.integers(min_value=0, max_value=2**64))
    def test_hixie76Keys(self, seed: int) -> None:
        """
        Every key follows draft-76 4.1 (1-12 spaces, never first or last,
        1-12 noise characters, a number that divides) and the server's
        answer to it is what the client expects.
        """
        handshake = ClientHandshake("ws://h/", version="hixie-76", randomSource=random.Random(seed))
        headers = handshake.request.headers
        key1 = headers.get("sec-websocket-key1")
        key2 = headers.get("sec-websocket-key2")
        assert key1 is not None and key2 is not None
        for key in (key1, key2):
            spaces = key.count(" ")
            self.assertTrue(1 <= spaces <= 12, key)
            self.assertNotEqual(key[0], " ")
            self.assertNotEqual(key[-1], " ")
            noise = [c for c in key if not c.isdigit() and c != " "]
            self.assertTrue(1 <= len(noise) <= 12, key)
            self.assertTrue(all(0x21 <= ord(c) <= 0x7E and not c.isdigit() for c in noise))
            number = int(re.sub("[^0-9]", "", key))
            self.assertEqual(number % spaces, 0)
            self.assertLessEqual(_hixieKeyNumber(key), 0xFFFFFFFF)
        self.assertEqual(hixie76Answer(key1, key2, handshake.body), handshake._expected)


class ResponseTests(SynchronousTestCase):
    def handshake(self, **kwargs: object) -> ClientHandshake:
        kwargs.setdefault("key", RFC_KEY)
        return ClientHandshake("ws://server.example.com/chat", **kwargs)  # type: ignore[arg-type]

    def test_accepted(self) -> None:
        handshake = self.handshake(subprotocols=["chat", "superchat"])
        response = handshake.receive(
            answer("Sec-WebSocket-Protocol: superchat\r\nSet-Cookie: id=7; Path=/\r\n") + b"\x81\x02hi"
        )
        assert response is not None
        self.assertEqual(response.family, RFC6455)
        self.assertEqual(response.subprotocol, "superchat")
        self.assertEqual(response.cookies, {"id": "7"})
        self.assertIsNone(response.compression)
        self.assertEqual(handshake.leftover, b"\x81\x02hi")
        self.assertRaises(ValueError, handshake.receive, b"more")

    @given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=60))
    def test_anySplit(self, sizes: list[int]) -> None:
        """
        The answer may arrive in pieces of any size.
        """
        data = answer("Sec-WebSocket-Protocol: chat\r\n") + b"rest"
        handshake = self.handshake(subprotocols=["chat"])
        response = None
        pos = 0
        for size in sizes:
            if pos >= len(data):
                break
            response = handshake.receive(data[pos : pos + size])
            pos += size
            if response is not None:
                break
        if response is None:
            response = handshake.receive(data[pos:])
            pos = len(data)
        assert response is not None
        self.assertEqual(response.subprotocol, "chat")
        self.assertEqual(handshake.leftover + data[pos:], b"rest")

    def assertInvalid(self, data: bytes, message: str, **kwargs: object) -> InvalidResponse:
        handshake = self.handshake(**kwargs)
        error = self.assertRaises(InvalidResponse, handshake.receive, data)
        self.assertIn(message, str(error))
        return error

    def test_caseInsensitiveTokens(self) -> None:
        response = self.handshake().receive(
            b"HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n"
            b"sec-websocket-accept: " + RFC_ACCEPT.encode() + b"\r\n\r\n"
        )
        self.assertIsNotNone(response)

    def test_missingUpgrade(self) -> None:
        self.assertInvalid(
            b"HTTP/1.1 101 OK\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
            + RFC_ACCEPT.encode() + b"\r\n\r\n",
            "no 'Upgrade: websocket'",
        )

    def test_missingConnection(self) -> None:
        self.assertInvalid(
            b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: "
            + RFC_ACCEPT.encode() + b"\r\n\r\n",
            "no 'Connection: Upgrade'",
        )

    def test_wrongAccept(self) -> None:
        error = self.assertInvalid(answer(accept=acceptKey("other")), "Wrong Sec-WebSocket-Accept")
        self.assertEqual(error.status, 101)
        self.assertInvalid(
            answer(f"Sec-WebSocket-Accept: {RFC_ACCEPT}\r\n"), "one Sec-WebSocket-Accept"
        )
        self.assertInvalid(
            b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            "one Sec-WebSocket-Accept",
        )

    def test_subprotocols(self) -> None:
        self.assertInvalid(answer("Sec-WebSocket-Protocol: chat\r\n"), "none was offered")
        self.assertInvalid(
            answer("Sec-WebSocket-Protocol: other\r\n"), "not one of chat", subprotocols=["chat"]
        )
        self.assertInvalid(
            answer("Sec-WebSocket-Protocol: chat, b\r\n"), "several", subprotocols=["chat", "b"]
        )
        self.assertInvalid(
            answer("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: b\r\n"),
            "several",
            subprotocols=["chat", "b"],
        )
        # Offered but not chosen is fine (the server speaks none of them).
        response = self.handshake(subprotocols=["chat"]).receive(answer())
        assert response is not None
        self.assertIsNone(response.subprotocol)

    def test_extensions(self) -> None:
        offer = DeflateOffer()
        self.assertInvalid(
            answer("Sec-WebSocket-Extensions: permessage-deflate\r\n"), "not offered"
        )
        self.assertInvalid(
            answer("Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n"),
            "'x-webkit-deflate-frame'",
            compression=offer,
        )
        self.assertInvalid(
            answer("Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n"),
            "twice",
            compression=offer,
        )
        self.assertInvalid(
            answer('Sec-WebSocket-Extensions: permessage-deflate; a="b\r\n'),
            "Malformed Sec-WebSocket-Extensions",
            compression=offer,
        )
        for params, message in (
            ("foo", "unknown parameter foo"),
            ("server_no_context_takeover; server_no_context_takeover", "repeated"),
            ("server_no_context_takeover=1", "takes no value"),
            ("server_max_window_bits", "invalid server_max_window_bits"),
            ("server_max_window_bits=16", "invalid"),
            ("server_max_window_bits=7", "invalid"),
            ("client_max_window_bits=010", "invalid"),
            ("client_max_window_bits", "invalid"),
        ):
            self.assertInvalid(
                answer(f"Sec-WebSocket-Extensions: permessage-deflate; {params}\r\n"),
                message,
                compression=offer,
            )

    def test_deflateAnswers(self) -> None:
        """
        RFC 7692 7.1: what the server may and must answer to each offer.
        """
        for offer, reply, expected in (
            (DeflateOffer(), "", deflate.DeflateParams(False, False, 15, 15)),
            (
                DeflateOffer(),
                "; server_max_window_bits=10; client_max_window_bits=9",
                deflate.DeflateParams(False, False, 10, 9, True),
            ),
            (
                DeflateOffer(),
                "; server_no_context_takeover; client_no_context_takeover",
                deflate.DeflateParams(True, True, 15, 15),
            ),
            (
                DeflateOffer(clientNoContextTakeover=True, clientMaxWindowBits=12),
                "",
                deflate.DeflateParams(False, True, 15, 12),
            ),
            (
                DeflateOffer(serverMaxWindowBits=11, serverNoContextTakeover=True),
                "; server_max_window_bits=9; server_no_context_takeover",
                deflate.DeflateParams(True, False, 9, 15, True),
            ),
        ):
            response = self.handshake(compression=offer).receive(
                answer(f"Sec-WebSocket-Extensions: permessage-deflate{reply}\r\n")
            )
            assert response is not None
            self.assertEqual(response.compression, expected, (offer, reply))
        for offer, reply, message in (
            (DeflateOffer(clientMaxWindowBits=10), "; client_max_window_bits=12", "larger than offered"),
            (DeflateOffer(serverMaxWindowBits=10), "; server_max_window_bits=12", "larger than offered"),
            (DeflateOffer(serverMaxWindowBits=10), "", "server_max_window_bits was asked for"),
            (DeflateOffer(serverNoContextTakeover=True), "", "server_no_context_takeover was asked"),
        ):
            self.assertInvalid(
                answer(f"Sec-WebSocket-Extensions: permessage-deflate{reply}\r\n"),
                message,
                compression=offer,
            )

    def test_offerHeaders(self) -> None:
        self.assertEqual(DeflateOffer().header(), "permessage-deflate; client_max_window_bits")
        self.assertEqual(
            DeflateOffer(
                clientMaxWindowBits=10,
                serverMaxWindowBits=12,
                clientNoContextTakeover=True,
                serverNoContextTakeover=True,
            ).header(),
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover; "
            "server_max_window_bits=12; client_max_window_bits=10",
        )
        for bad in ({"level": 10}, {"memLevel": 0}, {"clientMaxWindowBits": 7}, {"serverMaxWindowBits": 16}):
            self.assertRaises(ValueError, DeflateOffer, **bad)

    def test_refusalWithBody(self) -> None:
        """
        A refusal is reported with its status, headers and body; a body
        announced by Content-Length is waited for.
        """
        handshake = self.handshake()
        head = b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\n"
        self.assertIsNone(handshake.receive(head + b"Origin not "))
        error = self.assertRaises(InvalidStatus, handshake.receive, b"allowed\n\r\n")
        self.assertEqual(error.status, 403)
        self.assertEqual(error.body, b"Origin not allowed\n\r\n")
        self.assertEqual(error.headers.get("content-type"), "text/plain")
        self.assertEqual(
            str(error), "The server refused the WebSocket upgrade: 403 Forbidden (Origin not allowed)"
        )
        self.assertIsInstance(error, HandshakeFailed)

    def test_refusalWithoutLength(self) -> None:
        error = self.assertRaises(
            InvalidStatus,
            self.handshake().receive,
            b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13, 8\r\n\r\n<html>",
        )
        self.assertEqual(error.status, 426)
        self.assertEqual(error.headers.get("sec-websocket-version"), "13, 8")
        self.assertEqual(str(error), "The server refused the WebSocket upgrade: 426 Upgrade Required")

    def test_refusalCutShort(self) -> None:
        handshake = self.handshake()
        self.assertIsNone(handshake.receive(b"HTTP/1.1 500 Oops\r\nContent-Length: 100\r\n\r\nboom"))
        error = handshake.connectionLost()
        self.assertIsInstance(error, InvalidStatus)
        self.assertEqual((error.status, error.body), (500, b"boom"))

    def test_bodyKeptBounded(self) -> None:
        handshake = ClientHandshake("ws://h/", maxBodySize=10)
        error = self.assertRaises(
            InvalidStatus,
            handshake.receive,
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 50,
        )
        self.assertEqual(error.body, b"x" * 10)

    def test_connectionLost(self) -> None:
        self.assertIn("before the server answered", str(self.handshake().connectionLost()))
        handshake = self.handshake()
        self.assertIsNone(handshake.receive(b"HTTP/1.1 101 Swi"))
        self.assertTrue(handshake.received)
        self.assertIn("in the middle", str(handshake.connectionLost()))

    def test_malformed(self) -> None:
        for data, message in (
            (b"HTTP/1.1 101\r\n\r\n", "no 'Upgrade: websocket'"),
            (b"HTTP/2 101 OK\r\n\r\n", "Malformed status line"),
            (b"ICY 200 OK\r\n\r\n", "Malformed status line"),
            (b"HTTP/1.1 1O1 OK\r\n\r\n", "Malformed status line"),
            (answer("X-Folded: a\r\n b\r\n"), "folding"),
            (answer("No colon\r\n"), "Malformed header line"),
            (answer("Bad Name: x\r\n"), "Malformed header line"),
        ):
            self.assertInvalid(data, message)

    def test_notHTTPRefusedAtOnce(self) -> None:
        """
        Issue 12 item 21, client side: an answer that cannot start a
        status line is refused as it arrives (whole or byte by byte), not
        after the handshake timeout; valid starts wait.
        """
        for data in (b" HTTP/1.1 101", b"HTTP/2 101", b"HTTP/1.1 1011", b"\x16\x03\x03\x00", b"<html>"):
            error = self.assertRaises(InvalidResponse, self.handshake().receive, data)
            self.assertIn("not an HTTP/1.1 response", str(error))
            handshake = self.handshake()
            with self.assertRaises(InvalidResponse):
                for i in range(len(data)):
                    handshake.receive(data[i : i + 1])
        rng = random.Random(21)
        for _ in range(200):
            self.assertRaises(InvalidResponse, self.handshake().receive, rng.randbytes(4096))
        handshake = self.handshake()
        for piece in (b"H", b"TTP/1.1 1", b"01", b" Switching"):
            self.assertIsNone(handshake.receive(piece))

    def test_hugeNumbers(self) -> None:
        """
        Issue 12 item 13, client side: a Content-Length or a window size of
        thousands of digits (over int()'s limit) or a latin-1 superscript
        digit is not a ValueError: the refusal is reported, the extension
        answer is invalid.
        """
        for length in ("9" * 5000, "0" * 5000 + "5", "\u00b2"):
            error = self.assertRaises(
                InvalidStatus,
                self.handshake().receive,
                f"HTTP/1.1 403 Forbidden\r\nContent-Length: {length}\r\n\r\nno".encode("latin-1"),
            )
            self.assertEqual((error.status, error.body), (403, b"no"))
        for bits in ("0" * 5000 + "9", "9" * 5000, "\u00b9\u00b2"):
            self.assertInvalid(
                answer(
                    f"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits={bits}\r\n"
                ),
                "Sec-WebSocket-Extensions" if bits[0] == "\u00b9" else "server_max_window_bits",
                compression=DeflateOffer(),
            )

    def test_limits(self) -> None:
        handshake = ClientHandshake("ws://h/", maxResponseSize=200)
        error = self.assertRaises(
            InvalidResponse, handshake.receive, b"HTTP/1.1 101 OK\r\nX: " + b"a" * 300
        )
        self.assertIn("larger than 200 bytes", str(error))
        handshake = ClientHandshake("ws://h/", maxResponseSize=200)
        self.assertRaises(
            InvalidResponse, handshake.receive, b"HTTP/1.1 101 OK\r\nX: " + b"a" * 200 + b"\r\n\r\n"
        )
        handshake = ClientHandshake("ws://h/", maxHeaders=3)
        error = self.assertRaises(
            InvalidResponse, handshake.receive, b"HTTP/1.1 101 OK\r\n" + b"X: y\r\n" * 4 + b"\r\n"
        )
        self.assertIn("More than 3 header fields", str(error))

    def test_setCookies(self) -> None:
        headers = Headers(
            [("Set-Cookie", "a=1; Path=/; HttpOnly"), ("Set-Cookie", 'b="two"'), ("Set-Cookie", "a=3"),
             ("Set-Cookie", "broken")]
        )
        self.assertEqual(parseSetCookies(headers), {"a": "3", "b": "two"})


class Hixie76ResponseTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.handshake = ClientHandshake(
            "ws://example.com:8080/demo?x=1", version="hixie-76", subprotocols=["sample"],
            randomSource=random.Random(7),
        )
        headers = self.handshake.request.headers
        self.answer = hixie76Answer(
            headers.get("sec-websocket-key1") or "", headers.get("sec-websocket-key2") or "",
            self.handshake.body,
        )

    def response(self, location: str = "ws://example.com:8080/demo?x=1",
                 origin: str = "http://example.com:8080", protocol: str = "sample") -> bytes:
        return (
            "HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Origin: {origin}\r\n"
            f"Sec-WebSocket-Location: {location}\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
        ).encode()

    def test_accepted(self) -> None:
        data = self.response() + self.answer + b"\x00hi\xff"
        self.assertIsNone(self.handshake.receive(data[: len(data) - 10]))
        response = self.handshake.receive(data[len(data) - 10 :])
        assert response is not None
        self.assertEqual((response.family, response.subprotocol), (HIXIE76, "sample"))
        self.assertEqual(self.handshake.leftover, b"\x00hi\xff")

    def test_wrongAnswer(self) -> None:
        error = self.assertRaises(
            InvalidResponse, self.handshake.receive, self.response() + bytes(16)
        )
        self.assertIn("challenge", str(error))

    def test_wrongLocation(self) -> None:
        error = self.assertRaises(
            InvalidResponse, self.handshake.receive,
            self.response(location="ws://evil.example/demo") + self.answer,
        )
        self.assertIn("Sec-WebSocket-Location", str(error))

    def test_wrongOrigin(self) -> None:
        error = self.assertRaises(
            InvalidResponse, self.handshake.receive,
            self.response(origin="http://evil.example") + self.answer,
        )
        self.assertIn("Sec-WebSocket-Origin", str(error))

    def test_wrongProtocol(self) -> None:
        self.assertRaises(
            InvalidResponse, self.handshake.receive, self.response(protocol="other") + self.answer
        )


class RoundTripTests(SynchronousTestCase):
    """
    The client's request through the server's own negotiation, and the
    server's answer back through the client's checks.
    """

    def test_everyVersion(self) -> None:
        for version, family in ((13, RFC6455), (8, HYBI08), (7, HYBI07), ("hixie-76", HIXIE76)):
            handshake = ClientHandshake(
                "ws://127.0.0.1:9000/room?id=3", version=version, subprotocols=["b", "a"],
                compression=DeflateOffer(), cookies={"s": "1"},
            )
            response, agreed, serverFamily = serverSide(
                handshake, ("a", "b"), deflate.PerMessageDeflate()
            )
            self.assertEqual(serverFamily, family)
            result = handshake.receive(response + b"frames")
            assert result is not None
            self.assertEqual(result.family, family)
            self.assertEqual(result.subprotocol, "b")
            self.assertEqual(handshake.leftover, b"frames")
            if family == HIXIE76:
                self.assertIsNone(result.compression)
            else:
                assert agreed is not None and result.compression is not None
                self.assertEqual(result.compression.serverMaxWindowBits, agreed.serverMaxWindowBits)
                self.assertEqual(result.compression.clientMaxWindowBits, agreed.clientMaxWindowBits)
                self.assertEqual(
                    (result.compression.serverNoContextTakeover, result.compression.clientNoContextTakeover),
                    (agreed.serverNoContextTakeover, agreed.clientNoContextTakeover),
                )

    def test_serverDeclinesCompression(self) -> None:
        handshake = ClientHandshake("ws://h/", compression=DeflateOffer())
        response, agreed, _ = serverSide(handshake, compression=None)
        result = handshake.receive(response)
        assert result is not None
        self.assertIsNone(agreed)
        self.assertIsNone(result.compression)

    @settings(max_examples=60, deadline=None)
    @given(
        clientBits=st.integers(min_value=8, max_value=15),
        askServerBits=st.one_of(st.none(), st.integers(min_value=8, max_value=15)),
        serverBits=st.integers(min_value=8, max_value=15),
        serverAsksClientBits=st.integers(min_value=8, max_value=15),
        clientNoTakeover=st.booleans(),
        serverNoTakeover=st.booleans(),
        messages=st.lists(
            st.one_of(st.binary(max_size=3000), st.text(max_size=500).map(str.encode)),
            min_size=1,
            max_size=6,
        ),
    )
    def test_deflateRolesSwap(
        self,
        clientBits: int,
        askServerBits: int | None,
        serverBits: int,
        serverAsksClientBits: int,
        clientNoTakeover: bool,
        serverNoTakeover: bool,
        messages: list[bytes],
    ) -> None:
        """
        With whatever was agreed, what the client compresses (with its own
        agreement, local = client_*) the server inflates (its remote =
        client_*), and the other way round, message after message (context
        takeover included).
        """
        offer = DeflateOffer(
            clientMaxWindowBits=clientBits,
            serverMaxWindowBits=askServerBits,
            clientNoContextTakeover=clientNoTakeover,
        )
        config = deflate.PerMessageDeflate(
            serverMaxWindowBits=serverBits,
            clientMaxWindowBits=serverAsksClientBits,
            serverNoContextTakeover=serverNoTakeover,
        )
        handshake = ClientHandshake("ws://h/", compression=offer)
        response, agreed, _ = serverSide(handshake, compression=config)
        result = handshake.receive(response)
        assert result is not None and agreed is not None and result.compression is not None
        mine = result.compression.agreement("client")
        theirs = agreed.agreement("server")
        # Each compressor never uses a larger window than the other end inflates.
        self.assertLessEqual(mine.localMaxWindowBits, theirs.remoteMaxWindowBits)
        self.assertLessEqual(theirs.localMaxWindowBits, mine.remoteMaxWindowBits)
        self.assertEqual(mine.localNoContextTakeover, theirs.remoteNoContextTakeover)
        self.assertEqual(theirs.localNoContextTakeover, mine.remoteNoContextTakeover)
        clientDeflater = deflate.Deflater(offer, mine)
        clientInflater = deflate.Inflater(mine, 1 << 20)
        serverDeflater = deflate.Deflater(config, theirs)
        serverInflater = deflate.Inflater(theirs, 1 << 20)
        for message in messages:
            self.assertEqual(serverInflater.feed(clientDeflater.compress(message), True), message)
            self.assertEqual(clientInflater.feed(serverDeflater.compress(message), True), message)
