"""
Tests for L{txratchet.websocket.handshake}, derived from RFC 6455 (1.3, 4.2.1,
4.2.2), draft-hixie-thewebsocketprotocol-76 (1.3, 5.2) and RFC 9110/9112 for
the HTTP parts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txratchet.websocket.handshake import (
    HIXIE76,
    HYBI07,
    HYBI08,
    RFC6455,
    SUPPORTED_VERSIONS_HEADER,
    VERSIONS,
    Accepted,
    ClientHandshake,
    HandshakeError,
    Headers,
    InvalidResponse,
    Request,
    RequestParser,
    ResponseParser,
    acceptKey,
    chooseSubprotocol,
    errorResponse,
    hixie76Answer,
    httpResponse,
    isRequestLineStart,
    negotiate,
    parseCookies,
)

#: The client handshake of RFC 6455 section 1.3 (with its version line).
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def hybiRequestBytes(
    version: str = "13",
    target: str = "/chat",
    extra: Sequence[str] = (),
    omit: Sequence[str] = (),
    method: str = "GET",
    httpVersion: str = "HTTP/1.1",
) -> bytes:
    """
    A HyBi / RFC 6455 opening handshake, as a client sends it.
    """
    fields = [
        ("Host", "server.example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", RFC_KEY),
        ("Origin", "http://example.com"),
        ("Sec-WebSocket-Protocol", "chat, superchat"),
        ("Sec-WebSocket-Version", version),
    ]
    omitted = {o.lower() for o in omit}
    lines = [f"{method} {target} {httpVersion}"]
    lines += [f"{n}: {v}" for n, v in fields if n.lower() not in omitted]
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


#: The client handshake of draft-hixie-76 section 1.3, its key3 and answer.
HIXIE_HEAD = (
    b"GET /demo HTTP/1.1\r\n"
    b"Host: example.com\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n"
    b"Sec-WebSocket-Protocol: sample\r\n"
    b"Upgrade: WebSocket\r\n"
    b"Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n"
    b"Origin: http://example.com\r\n"
    b"\r\n"
)
HIXIE_KEY3 = b"^n:ds[4U"
HIXIE_ANSWER = b"8jKS'y:G*Co,Wxa-"


def hixieHead(target: str = "/demo", omit: Sequence[str] = ()) -> bytes:
    """
    The draft's example head, with another target or without some fields.
    """
    lines = HIXIE_HEAD.split(b"\r\n")
    lines[0] = f"GET {target} HTTP/1.1".encode()
    omitted = {o.lower().encode() for o in omit}
    kept = [line for line in lines if line.split(b":", 1)[0].lower() not in omitted]
    return b"\r\n".join(kept)


def parse(raw: bytes, **kwargs: int) -> Request:
    """
    Parse a whole request, which must be complete.
    """
    request = RequestParser(**kwargs).feed(raw)
    assert request is not None
    return request


def request(
    fields: Sequence[tuple[str, str]],
    target: str = "/chat",
    method: str = "GET",
    httpVersion: str = "HTTP/1.1",
    body: bytes = b"",
) -> Request:
    """
    A L{Request} built directly from its fields.
    """
    return Request(method, target, httpVersion, Headers(fields), body)


def hybiFields(version: str = "13", key: str = RFC_KEY) -> list[tuple[str, str]]:
    return [
        ("Host", "server.example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", version),
    ]


class HeadersTests(SynchronousTestCase):
    """
    L{Headers}: case-insensitive lookups, arrival order kept.
    """

    def setUp(self) -> None:
        self.headers = Headers(
            [
                ("Host", "example.com"),
                ("X-Thing", "a"),
                ("x-thing", "b, C"),
                ("Connection", "keep-alive,  Upgrade ,"),
                ("Empty", ""),
            ]
        )

    def test_getCaseInsensitive(self) -> None:
        for name in ("host", "HOST", "Host", "hOsT"):
            self.assertEqual(self.headers.get(name), "example.com")

    def test_getJoinsRepeatedFields(self) -> None:
        self.assertEqual(self.headers.get("X-THING"), "a, b, C")

    def test_getDefault(self) -> None:
        self.assertIsNone(self.headers.get("missing"))
        self.assertEqual(self.headers.get("missing", "d"), "d")
        self.assertEqual(self.headers.get("empty", "d"), "")

    def test_getAll(self) -> None:
        self.assertEqual(self.headers.getAll("x-thing"), ["a", "b, C"])
        self.assertEqual(self.headers.getAll("missing"), [])

    def test_getAllIsACopy(self) -> None:
        self.headers.getAll("x-thing").append("z")
        self.assertEqual(self.headers.getAll("x-thing"), ["a", "b, C"])

    def test_tokens(self) -> None:
        self.assertEqual(self.headers.tokens("connection"), ["keep-alive", "upgrade"])
        self.assertEqual(self.headers.tokens("X-Thing"), ["a", "b", "c"])
        self.assertEqual(self.headers.tokens("missing"), [])
        self.assertEqual(self.headers.tokens("empty"), [])

    def test_contains(self) -> None:
        self.assertIn("HOST", self.headers)
        self.assertIn("empty", self.headers)
        self.assertNotIn("missing", self.headers)
        self.assertFalse(1 in self.headers)

    def test_iterKeepsOrderAndCase(self) -> None:
        self.assertEqual(
            [name for name, _ in self.headers],
            ["Host", "X-Thing", "x-thing", "Connection", "Empty"],
        )
        self.assertEqual(len(self.headers), 5)

    def test_repr(self) -> None:
        self.assertIn("'example.com'", repr(self.headers))

    def test_empty(self) -> None:
        headers = Headers()
        self.assertEqual(len(headers), 0)
        self.assertIsNone(headers.get("host"))


class ParseCookiesTests(SynchronousTestCase):
    """
    L{parseCookies} is lenient (RFC 6265 5.4).
    """

    def cookies(self, *values: str) -> dict[str, str]:
        return parseCookies(Headers([("Cookie", v) for v in values]))

    def test_simple(self) -> None:
        self.assertEqual(self.cookies("a=1; b=2"), {"a": "1", "b": "2"})

    def test_noSpaces(self) -> None:
        self.assertEqual(self.cookies("a=1;b=2"), {"a": "1", "b": "2"})

    def test_quotedValue(self) -> None:
        self.assertEqual(self.cookies('sid="x y"; t=""'), {"sid": "x y", "t": ""})

    def test_loneQuoteKept(self) -> None:
        self.assertEqual(self.cookies('q="'), {"q": '"'})

    def test_valueContainingEquals(self) -> None:
        self.assertEqual(self.cookies("e=a=b"), {"e": "a=b"})

    def test_emptyValue(self) -> None:
        self.assertEqual(self.cookies("f="), {"f": ""})

    def test_malformedPairsSkipped(self) -> None:
        self.assertEqual(self.cookies("junk; =v; ; d=4;;  =  ; g = 7 "), {"d": "4", "g": "7"})

    def test_severalHeaders(self) -> None:
        self.assertEqual(self.cookies("a=1", "b=2; c=3"), {"a": "1", "b": "2", "c": "3"})

    def test_firstOccurrenceWins(self) -> None:
        self.assertEqual(self.cookies("a=1; a=2", "a=3"), {"a": "1"})

    def test_headerNameCaseInsensitive(self) -> None:
        self.assertEqual(parseCookies(Headers([("COOKIE", "a=1")])), {"a": "1"})

    def test_none(self) -> None:
        self.assertEqual(parseCookies(Headers([("Host", "x")])), {})

    @settings(max_examples=50, deadline=None)
    @given(st.text(max_size=60))
    def test_neverRaises(self, value: str) -> None:
        result = self.cookies(value)
        for name in result:
            self.assertTrue(name)
            self.assertEqual(name, name.strip())


class RequestTests(SynchronousTestCase):
    """
    L{Request}'s derived attributes.
    """

    def test_pathQueryParams(self) -> None:
        r = request([("Host", "h")], target="/chat?room=1&room=2&x=&y")
        self.assertEqual(r.path, "/chat")
        self.assertEqual(r.query, "room=1&room=2&x=&y")
        self.assertEqual(r.params, {"room": ["1", "2"], "x": [""], "y": [""]})

    def test_noQuery(self) -> None:
        r = request([("Host", "h")], target="/a/b")
        self.assertEqual((r.path, r.query, r.params), ("/a/b", "", {}))

    def test_emptyQuery(self) -> None:
        r = request([("Host", "h")], target="/a?")
        self.assertEqual((r.path, r.query, r.params), ("/a", "", {}))

    def test_paramsPercentDecoded(self) -> None:
        r = request([("Host", "h")], target="/a%20b?k=%20v+w&%C3%A9=1")
        self.assertEqual(r.path, "/a%20b")
        self.assertEqual(r.params, {"k": [" v w"], "\u00e9": ["1"]})

    def test_queryKeepsLaterQuestionMarks(self) -> None:
        r = request([("Host", "h")], target="/p?a=1?2")
        self.assertEqual((r.path, r.query), ("/p", "a=1?2"))
        self.assertEqual(r.params, {"a": ["1?2"]})

    def test_absoluteForm(self) -> None:
        """
        RFC 6455 4.2.1 (1): the Request-URI may be an absolute HTTP/HTTPS
        URI containing the resource name.
        """
        cases = {
            "http://example.com/chat?x=1": ("/chat", "x=1"),
            "https://example.com:8443/a/b": ("/a/b", ""),
            "HTTP://example.com": ("/", ""),
            "http://example.com?x=1": ("/", "x=1"),
        }
        for target, expected in cases.items():
            r = request([("Host", "h")], target=target)
            self.assertEqual((r.path, r.query), expected, target)
            self.assertEqual(r.target, target)

    def test_cookies(self) -> None:
        r = request([("Cookie", "a=1"), ("Cookie", "b=2")])
        self.assertEqual(r.cookies, {"a": "1", "b": "2"})

    def test_isUpgrade(self) -> None:
        self.assertTrue(request([("Upgrade", "websocket")]).isUpgrade)
        self.assertTrue(request([("Upgrade", "WebSocket")]).isUpgrade)
        self.assertTrue(request([("upgrade", "h2c, WEBSOCKET")]).isUpgrade)
        self.assertFalse(request([("Upgrade", "h2c")]).isUpgrade)
        self.assertFalse(request([("Host", "h")]).isUpgrade)

    def test_protocolFamily(self) -> None:
        cases: list[tuple[list[tuple[str, str]], str | None]] = [
            ([("Sec-WebSocket-Version", "13")], RFC6455),
            ([("Sec-WebSocket-Version", " 13 ")], RFC6455),
            ([("Sec-WebSocket-Version", "8")], HYBI08),
            ([("Sec-WebSocket-Version", "7")], HYBI07),
            ([("Sec-WebSocket-Version", "12")], None),
            ([("Sec-WebSocket-Version", "")], None),
            ([("Sec-WebSocket-Key1", "1 2")], HIXIE76),
            ([("Sec-WebSocket-Key1", "1 2"), ("Sec-WebSocket-Version", "13")], RFC6455),
            ([("Host", "h")], None),
        ]
        for fields, family in cases:
            self.assertEqual(request(fields).protocolFamily, family, fields)

    def test_versionTable(self) -> None:
        self.assertEqual(VERSIONS, {"13": RFC6455, "8": HYBI08, "7": HYBI07})
        self.assertEqual(SUPPORTED_VERSIONS_HEADER, "13, 8, 7")


class RequestParserTests(SynchronousTestCase):
    """
    L{RequestParser}: incremental, bounded parsing of a request head.
    """

    def assertRefused(self, raw: bytes, status: int, **kwargs: int) -> HandshakeError:
        error = self.assertRaises(HandshakeError, RequestParser(**kwargs).feed, raw)
        self.assertEqual(error.status, status)
        return error

    def test_rfcRequest(self) -> None:
        r = parse(hybiRequestBytes())
        self.assertEqual((r.method, r.target, r.httpVersion), ("GET", "/chat", "HTTP/1.1"))
        self.assertEqual(r.headers.get("sec-websocket-key"), RFC_KEY)
        self.assertEqual(r.headers.get("origin"), "http://example.com")
        self.assertEqual(r.headers.tokens("sec-websocket-protocol"), ["chat", "superchat"])
        self.assertEqual(r.body, b"")
        self.assertEqual(r.protocolFamily, RFC6455)

    def test_leftoverAfterHybiRequest(self) -> None:
        raw = hybiRequestBytes()
        frames = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
        parser = RequestParser()
        self.assertIsNotNone(parser.feed(raw + frames))
        self.assertEqual(parser.leftover, frames)

    def test_noLeftover(self) -> None:
        parser = RequestParser()
        parser.feed(hybiRequestBytes())
        self.assertEqual(parser.leftover, b"")

    def test_everySplit(self) -> None:
        """
        Split at every byte boundary, the same request comes out, once the
        last byte of the head arrives.
        """
        raw = hybiRequestBytes()
        whole = parse(raw)
        for i in range(len(raw)):
            parser = RequestParser()
            self.assertIsNone(parser.feed(raw[:i]), i)
            r = parser.feed(raw[i:])
            self.assertIsNotNone(r, i)
            assert r is not None
            self.assertEqual(list(r.headers), list(whole.headers))
            self.assertEqual(r.target, whole.target)
            self.assertEqual(parser.leftover, b"")

    def test_byteByByte(self) -> None:
        raw = hybiRequestBytes() + b"XY"
        parser = RequestParser()
        head = len(raw) - 2
        for i in range(head - 1):
            self.assertIsNone(parser.feed(raw[i : i + 1]), i)
        r = parser.feed(raw[head - 1 : head + 2])
        self.assertIsNotNone(r)
        self.assertEqual(parser.leftover, b"XY")

    def test_terminatorSplitThreeWays(self) -> None:
        raw = hybiRequestBytes()
        for cut in range(len(raw) - 4, len(raw)):
            for cut2 in range(cut, len(raw)):
                parser = RequestParser()
                self.assertIsNone(parser.feed(raw[:cut]))
                self.assertIsNone(parser.feed(raw[cut:cut2]))
                self.assertIsNotNone(parser.feed(raw[cut2:]))

    def test_hixieKey3(self) -> None:
        """
        A Hixie-76 head is followed by the 8-byte key3, which becomes the
        body; the request is not complete without it.
        """
        parser = RequestParser()
        self.assertIsNone(parser.feed(HIXIE_HEAD))
        self.assertIsNone(parser.feed(HIXIE_KEY3[:7]))
        r = parser.feed(HIXIE_KEY3[7:])
        assert r is not None
        self.assertEqual(r.body, HIXIE_KEY3)
        self.assertEqual(r.protocolFamily, HIXIE76)
        self.assertEqual(parser.leftover, b"")

    def test_hixieEverySplit(self) -> None:
        """
        The Hixie-76 head, key3 and frames sent right after it, split at
        every byte boundary: the body is key3 and the frames are leftover
        (the leftover of the call that returned the request, plus what was
        not fed yet).
        """
        frames = b"\x00hello\xff\x00\xce\xba\xff"
        raw = HIXIE_HEAD + HIXIE_KEY3 + frames
        complete = len(HIXIE_HEAD) + len(HIXIE_KEY3)
        for i in range(len(raw) + 1):
            parser = RequestParser()
            r = parser.feed(raw[:i])
            if r is None:
                self.assertLess(i, complete)
                r = parser.feed(raw[i:])
                assert r is not None
                leftover = parser.leftover
            else:
                self.assertGreaterEqual(i, complete)
                leftover = parser.leftover + raw[i:]
            self.assertEqual(r.body, HIXIE_KEY3, i)
            self.assertEqual(leftover, frames, i)

    def test_hixieByteByByte(self) -> None:
        raw = HIXIE_HEAD + HIXIE_KEY3
        parser = RequestParser()
        for i in range(len(raw) - 1):
            self.assertIsNone(parser.feed(raw[i : i + 1]))
        r = parser.feed(raw[-1:])
        assert r is not None
        self.assertEqual(r.body, HIXIE_KEY3)

    def test_hybiHasNoBody(self) -> None:
        """
        With a version header there is no key3, even if Key1 is present.
        """
        raw = hybiRequestBytes(extra=["Sec-WebSocket-Key1: 1 2"])
        parser = RequestParser()
        r = parser.feed(raw + b"12345678")
        assert r is not None
        self.assertEqual(r.body, b"")
        self.assertEqual(parser.leftover, b"12345678")

    def test_headerValuesTrimmed(self) -> None:
        r = parse(b"GET / HTTP/1.1\r\nA:x\r\nB: \t y \t \r\nC:\r\n\r\n")
        self.assertEqual(list(r.headers), [("A", "x"), ("B", "y"), ("C", "")])

    def test_headerValueKeepsInnerSpaceAndColon(self) -> None:
        r = parse(b"GET / HTTP/1.1\r\nHost: h:80\r\nX: a  b\r\n\r\n")
        self.assertEqual(r.headers.get("host"), "h:80")
        self.assertEqual(r.headers.get("x"), "a  b")

    def test_latin1Values(self) -> None:
        r = parse(b"GET / HTTP/1.1\r\nX: caf\xe9\r\n\r\n")
        self.assertEqual(r.headers.get("x"), "caf\xe9")

    def test_noHeaders(self) -> None:
        r = parse(b"GET / HTTP/1.1\r\n\r\n")
        self.assertEqual(len(r.headers), 0)

    def test_http10ParsedButRefusedByNegotiate(self) -> None:
        r = parse(hybiRequestBytes(httpVersion="HTTP/1.0"))
        self.assertEqual(r.httpVersion, "HTTP/1.0")
        error = self.assertRaises(HandshakeError, negotiate, r)
        self.assertEqual(error.status, 505)

    def test_otherMajorVersion(self) -> None:
        for version in ("HTTP/2.0", "HTTP/0.9", "HTTP/3.0"):
            self.assertRefused(hybiRequestBytes(httpVersion=version), 505)

    def test_malformedRequestLine(self) -> None:
        for line in (
            b"GET /chat",
            b"GET",
            b"GET  /chat HTTP/1.1",
            b"GET /chat  HTTP/1.1",
            b"GET /chat HTTP/1.1 x",
            b" GET /chat HTTP/1.1",
            b"GET /chat HTTP/1.1 ",
            b"GET /chat FOO",
            b"GET /chat http/1.1",
            b"GET /chat HTTP/1",
            b"GET /chat HTTP/1.1x",
            b"GET /chat HTTP/11.1",
            b"G(T /chat HTTP/1.1",
            b"GET /ch\x00at HTTP/1.1",
            b"GET /ch\rat HTTP/1.1",
            b"GET /ch\nat HTTP/1.1",
            b"",
        ):
            self.assertRefused(line + b"\r\nHost: h\r\n\r\n", 400)

    def test_malformedHeaderLine(self) -> None:
        for line in (
            b"NoColon",
            b": value",
            b"Host : h",
            b"Ho st: h",
            b"Ho@st: h",
            b"Ho\xe9st: h",
            b" Folded: continuation",
            b"\tFolded: continuation",
            b"X: a\nInjected: b",
            b"X: a\rInjected: b",
            b"X: a\x00b",
        ):
            raw = b"GET / HTTP/1.1\r\nHost: h\r\n" + line + b"\r\n\r\n"
            self.assertRefused(raw, 400)

    def test_obsFoldAfterHeader(self) -> None:
        raw = b"GET / HTTP/1.1\r\nX: a\r\n  b\r\n\r\n"
        self.assertRefused(raw, 400)

    def test_headTooLarge(self) -> None:
        """
        A complete head of exactly C{maxSize} bytes (CRLFCRLF included) is
        accepted; one byte more is refused with 431.
        """
        base = b"GET / HTTP/1.1\r\nX: \r\n\r\n"
        size = 200
        fits = base.replace(b"X: ", b"X: " + b"a" * (size - len(base)))
        self.assertEqual(len(fits), size)
        parse(fits, maxSize=size)
        over = fits.replace(b"X: ", b"X: a")
        self.assertRefused(over, 431, maxSize=size)

    def test_headTooLargeWithLeftover(self) -> None:
        """
        Leftover bytes after the head do not count against the limit.
        """
        raw = hybiRequestBytes()
        parser = RequestParser(maxSize=len(raw))
        self.assertIsNotNone(parser.feed(raw + b"x" * 10000))
        self.assertEqual(len(parser.leftover), 10000)

    def test_refusesEarlyWithoutTerminator(self) -> None:
        """
        1 MB without CRLFCRLF, fed in 4 KB pieces: refused as soon as the
        buffer passes C{maxSize}, not after buffering it all.
        """
        for maxSize in (16384, 4096, 10000):
            parser = RequestParser(maxSize=maxSize)
            piece = b"GET /" + b"a" * 4091
            piece = piece[:4096]
            fed = 0
            with self.assertRaises(HandshakeError) as caught:
                for _ in range(256):
                    parser.feed(piece)
                    fed += len(piece)
                    piece = b"b" * 4096
            self.assertEqual(caught.exception.status, 431)
            self.assertLessEqual(fed, maxSize)

    def test_refusesEarlyWithLines(self) -> None:
        """
        A long stream of short header lines is refused early too, by the
        line count.
        """
        parser = RequestParser(maxHeaders=100)
        parser.feed(b"GET / HTTP/1.1\r\n")
        with self.assertRaises(HandshakeError) as caught:
            for i in range(10000):
                parser.feed(b"X-%d: y\r\n" % i)
        self.assertEqual(caught.exception.status, 431)
        self.assertEqual(i, 100)

    def test_notARequestLineRefusedAtOnce(self) -> None:
        """
        Issue 12 item 21: bytes that cannot begin a request line are
        refused (400) as soon as they arrive, whole or byte by byte, not
        after the handshake timeout; a line that is complete but malformed
        is refused at its CRLF, before the rest of the head.
        """
        for raw in (
            b" GET / HTTP/1.1",
            b"GET  /",
            b"GET /chat  HTTP/1.1",
            b"GET /chat HTTP/1.1 x",
            b"GET /chat HTTPS",
            b"GET /chat HTTP/1.1x",
            b"GET /ch\x00at",
            b"GET /ch\rat HTTP/1.1",
            b"GET\r\n",
            b"GET /chat\r\nHost: x\r\n",
            b"GET /chat HTTP/1.1\nHost: x",
            b"G(T / HTTP/1.1",
            b"A" * 33,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello
            b"\r\nGET / HTTP/1.1",
        ):
            error = self.assertRaises(HandshakeError, RequestParser().feed, raw)
            self.assertEqual(error.status, 400, raw)
            parser = RequestParser()
            with self.assertRaises(HandshakeError, msg=raw) as caught:
                for i in range(len(raw)):
                    parser.feed(raw[i : i + 1])
            self.assertEqual(caught.exception.status, 400)

    def test_requestLinePrefixesWait(self) -> None:
        """
        Every prefix of a valid head waits for more, including a long
        target arriving slowly (checked as it grows) and a line whose
        version is one the head parser answers with 505.
        """
        for raw in (
            hybiRequestBytes(),
            HIXIE_HEAD,
            hybiRequestBytes(target="/" + "a" * 3000),
            hybiRequestBytes(httpVersion="HTTP/2.0"),
            hybiRequestBytes(method="M" * 32),
        ):
            head = raw[: raw.index(b"\r\n\r\n") + 2]
            parser = RequestParser()
            for i in range(0, len(head), 7):
                self.assertIsNone(parser.feed(head[i : i + 7]))
        self.assertRefused(hybiRequestBytes(method="M" * 33), 400)
        self.assertRefused(hybiRequestBytes(httpVersion="HTTP/2.0"), 505)

    def test_randomNoiseRefusedAtOnce(self) -> None:
        """
        Issue 12 item 21: of 1,000 chunks of 4 KiB of random bytes (fixed
        seed), none is left waiting for more: each is refused with 400.
        """
        rng = random.Random(12)
        waiting = 0
        for _ in range(1000):
            noise = rng.randbytes(4096)
            try:
                waiting += RequestParser().feed(noise) is None
            except HandshakeError as e:
                self.assertEqual(e.status, 400)
        self.assertEqual(waiting, 0)

    def test_maxHeaders(self) -> None:
        def head(n: int) -> bytes:
            return b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(n)) + b"\r\n"

        r = parse(head(100), maxHeaders=100)
        self.assertEqual(len(r.headers), 100)
        self.assertRefused(head(101), 431, maxHeaders=100)
        parse(head(5), maxHeaders=5)
        self.assertRefused(head(6), 431, maxHeaders=5)

    def test_maxHeadersIncremental(self) -> None:
        """
        Whatever the split, C{maxHeaders} fields pass and one more fails.
        """

        def head(n: int) -> bytes:
            return b"GET / HTTP/1.1\r\n" + b"X: v\r\n" * n + b"\r\n"

        ok, bad = head(3), head(4)
        for i in range(len(ok) + 1):
            parser = RequestParser(maxHeaders=3)
            if parser.feed(ok[:i]) is None:
                self.assertIsNotNone(parser.feed(ok[i:]))
        for i in range(len(bad) + 1):
            parser = RequestParser(maxHeaders=3)
            with self.assertRaises(HandshakeError) as caught:
                parser.feed(bad[:i])
                parser.feed(bad[i:])
            self.assertEqual(caught.exception.status, 431)

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def test_randomChunking(self, data: st.DataObject) -> None:
        frames = b"\x00abc\xff"
        raw = HIXIE_HEAD + HIXIE_KEY3 + frames
        cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=12)))
        pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
        parser = RequestParser()
        result = None
        rest = b""
        for n, piece in enumerate(pieces):
            result = parser.feed(piece)
            if result is not None:
                rest = parser.leftover + b"".join(pieces[n + 1 :])
                break
        assert result is not None
        self.assertEqual(result.body, HIXIE_KEY3)
        self.assertEqual(rest, frames)


def fieldsOf(head: Request | tuple[int, str, Headers] | None) -> Headers:
    """
    The fields of a request or of a response head.
    """
    assert head is not None
    return head[2] if isinstance(head, tuple) else head.headers


#: A response head as a server sends it.
RESPONSE_HEAD = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: " + RFC_ACCEPT.encode() + b"\r\n"
    b"\r\n"
)


class HeadParserTests(SynchronousTestCase):
    """
    L{http11.HeadParser}: one parser for request heads (L{RequestParser},
    the server's) and response heads (L{ResponseParser}, the client's),
    with the same limits and field checks; only the start line's grammar
    and the error each side raises differ.
    """

    #: Each kind: its parser, a valid head, and the exception it raises.
    KINDS = (
        (RequestParser, hybiRequestBytes(), HandshakeError),
        (ResponseParser, RESPONSE_HEAD, InvalidResponse),
    )

    def test_sameHeadWholeOrCut(self) -> None:
        """
        Whole or cut anywhere, the same fields.
        """
        for parser, raw, _ in self.KINDS:
            data = raw + b"rest"
            head = parser().feed(data)
            for cut in range(1, len(data)):
                p = parser()
                first = p.feed(data[:cut])
                self.assertEqual(first is None, cut < len(raw), cut)
                self.assertIsNotNone(p.feed(data[cut:]))
                self.assertEqual(list(fieldsOf(p.head)), list(fieldsOf(head)))

    def test_responseHead(self) -> None:
        parser = ResponseParser()
        head = parser.feed(RESPONSE_HEAD + b"\x81\x00")
        assert head is not None
        status, phrase, headers = head
        self.assertEqual((status, phrase), (101, "Switching Protocols"))
        self.assertEqual(headers.get("sec-websocket-accept"), RFC_ACCEPT)
        self.assertEqual(bytes(parser.buffer), b"\x81\x00")
        self.assertEqual(parser.feed(b"more"), head)
        self.assertEqual(bytes(parser.buffer), b"\x81\x00more")
        refusal = ResponseParser().feed(b"HTTP/1.0 403\r\n\r\n")
        assert refusal is not None
        self.assertEqual((refusal[0], refusal[1], len(refusal[2])), (403, "", 0))

    def test_sizeLimit(self) -> None:
        """
        A head of exactly C{maxSize} bytes passes; one more byte is refused,
        whole or as it arrives without its end.
        """
        for parser, raw, error in self.KINDS:
            size = len(raw)
            self.assertIsNotNone(parser(maxSize=size).feed(raw))
            over = raw.replace(b"Upgrade: websocket", b"Upgrade: websocket ")
            caught = self.assertRaises(error, parser(maxSize=size).feed, over)
            self.assertIn("larger than %d bytes" % size, str(caught))
            p = parser(maxSize=size)
            p.feed(raw[: raw.index(b"\r\n") + 2] + b"X: ")
            with self.assertRaises(error) as ended:
                for _ in range(size):
                    p.feed(b"a" * 7)
            self.assertIn("larger than %d bytes" % size, str(ended.exception))

    def test_fieldLimit(self) -> None:
        """
        C{maxHeaders} fields pass, one more is refused, whole or cut
        anywhere.
        """
        for parser, raw, error in self.KINDS:
            count = raw.count(b"\r\n") - 2
            for cut in range(0, len(raw) + 1, 5):
                p = parser(maxHeaders=count)
                if p.feed(raw[:cut]) is None:
                    self.assertIsNotNone(p.feed(raw[cut:]))
            more = raw[:-2] + b"X: y\r\n\r\n"
            for cut in range(0, len(more) + 1, 5):
                p = parser(maxHeaders=count)
                with self.assertRaises(error) as caught:
                    p.feed(more[:cut])
                    p.feed(more[cut:])
                self.assertIn("More than %d header fields" % count, str(caught.exception))

    def test_badFieldLines(self) -> None:
        """
        Both sides refuse obs-fold, names that are not tokens, a missing
        colon, and CR, LF or NUL inside a value (RFC 9110 5.5, 9112 5).
        """
        for parser, raw, error in self.KINDS:
            for line, message in (
                (b" Folded: x", "folding"),
                (b"\tFolded: x", "folding"),
                (b"NoColon", "Malformed header line"),
                (b": empty name", "Malformed header line"),
                (b"Bad Name: x", "Malformed header line"),
                (b"Bad\xe9: x", "Malformed header line"),
                (b"X: a\rb", "Malformed header line"),
                (b"X: a\nb", "Malformed header line"),
                (b"X: a\x00b", "Malformed header line"),
            ):
                bad = raw[:-2] + line + b"\r\n\r\n"
                caught = self.assertRaises(error, parser().feed, bad)
                self.assertIn(message, str(caught), (parser, line))

    def test_cleanHeadValuesKept(self) -> None:
        """
        Values keep inner spaces, colons, tabs and latin-1; only the
        surrounding white space goes.
        """
        for parser, raw, _ in self.KINDS:
            head = parser().feed(raw[:-2] + b"X-A: \t a: b\tc \xe9 \t\r\n\r\n")
            self.assertEqual(fieldsOf(head).get("x-a"), "a: b\tc \xe9")

    def test_notAStartLineRefusedAtOnce(self) -> None:
        """
        What cannot begin the kind's start line is refused as soon as it
        arrives; a request line is not a status line and the other way round.
        """
        for parser, raw, error in self.KINDS:
            other = RESPONSE_HEAD if parser is RequestParser else hybiRequestBytes()
            for noise in (other[:12], b"\x16\x03\x01\x02\x00", b" " + raw[:10]):
                self.assertRaises(error, parser().feed, noise)
                p = parser()
                with self.assertRaises(error):
                    for i in range(len(noise)):
                        p.feed(noise[i : i + 1])

    def test_statusLinePrefixesWait(self) -> None:
        line = b"HTTP/1.1 403 Forbidden by the rules\r\n"
        for i in range(1, len(line) + 1):
            self.assertIsNone(ResponseParser().feed(line[:i]), line[:i])
        for bad in (
            b"HTTP/1.1 1011",
            b"HTTP/1.1 101 a\x00b",
            b"HTTP/1.1 101 a\rb",
            b"HTTP/2 101",
            b"http/1.1 101",
        ):
            self.assertRaises(InvalidResponse, ResponseParser().feed, bad)

    def test_statusInResponseErrors(self) -> None:
        """
        A client's error carries the status once the status line was read.
        """
        caught = self.assertRaises(
            InvalidResponse, ResponseParser().feed, b"HTTP/1.1 403 No\r\n X: folded\r\n\r\n"
        )
        self.assertEqual(caught.status, 403)
        caught = self.assertRaises(InvalidResponse, ResponseParser().feed, b"ICY 200 OK\r\n\r\n")
        self.assertIsNone(caught.status)
        self.assertIn("Malformed status line: 'ICY 200 OK'", str(caught))

    def test_requestStatuses(self) -> None:
        """
        A server's refusals: 431 for the limits, 505 for another HTTP
        major version (before the fields are read), 400 for the rest.
        """
        for raw, status, kwargs in (
            (hybiRequestBytes(), 431, {"maxSize": 20}),
            (hybiRequestBytes(), 431, {"maxHeaders": 2}),
            (b"GET / HTTP/2.0\r\nBad Name: x\r\n\r\n", 505, {}),
            (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, {}),
            (b"GET /\r\n\r\n", 400, {}),
            (b"\x16\x03", 400, {}),
        ):
            caught = self.assertRaises(HandshakeError, RequestParser(**kwargs).feed, raw)
            self.assertEqual(caught.status, status, raw)


class IsRequestLineStartTests(SynchronousTestCase):
    def test_prefixes(self) -> None:
        line = b"GET /chat?x=1 HTTP/1.1"
        for i in range(1, len(line) + 1):
            self.assertTrue(isRequestLineStart(line[:i]), line[:i])
        self.assertTrue(isRequestLineStart(line + b"\r"))
        for bad in (b" GET", b"GET  /", b"GET / HTTP/1.1 ", b"\x16\x03", b"M" * 33, b"GET /\x00"):
            self.assertFalse(isRequestLineStart(bad), bad)


class SharedHixie76AnswerTests(SynchronousTestCase):
    """
    One Hixie-76 implementation for both sides: the client's keys are
    what the server's parser reads, and the answer the client expects is
    the one the server's L{negotiate} sends (both from L{hixie76Answer}).
    """

    @settings(max_examples=50, deadline=None)
    @given(st.integers(min_value=0, max_value=2**32))
    def test_clientAndServerAgree(self, seed: int) -> None:
        client = ClientHandshake(
            "ws://example.com/demo", version="hixie-76", randomSource=random.Random(seed)
        )
        request = parse(client.data)
        key1 = request.headers.get("sec-websocket-key1")
        key2 = request.headers.get("sec-websocket-key2")
        assert key1 is not None and key2 is not None
        self.assertEqual(request.body, client.body)
        answer = negotiate(request).response[-16:]
        self.assertEqual(answer, hixie76Answer(key1, key2, client.body))
        self.assertEqual(answer, client._expected)


class AcceptKeyTests(SynchronousTestCase):
    """
    L{acceptKey}: RFC 6455 1.3 / 4.2.2 (5.4).
    """

    def test_rfcExample(self) -> None:
        self.assertEqual(acceptKey(RFC_KEY), RFC_ACCEPT)
        self.assertEqual(acceptKey(RFC_KEY.encode()), RFC_ACCEPT)

    def test_other(self) -> None:
        # A second, widely published key/accept pair.
        self.assertEqual(acceptKey("x3JJHMbDL1EzLkh9GBhXDw=="), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=")


class Hixie76AnswerTests(SynchronousTestCase):
    """
    L{hixie76Answer}: draft-hixie-76 section 5.2 (and 1.3).
    """

    def test_draftSection52Example(self) -> None:
        self.assertEqual(
            hixie76Answer(
                "18x 6]8vM;54 *(5:  {   U1]8  z [  8",
                "1_ tx7X d  <  nw  334J702) 7]o}` 0",
                b"Tm[K T2u",
            ),
            b"fQJ,fN/4F4!~K~MH",
        )

    def test_draftSection13Example(self) -> None:
        self.assertEqual(
            hixie76Answer("4 @1  46546xW%0l 1 5", "12998 5 Y3 1  .P00", HIXIE_KEY3),
            HIXIE_ANSWER,
        )

    def assertMalformed(self, key1: str, key2: str = "1 2") -> None:
        error = self.assertRaises(HandshakeError, hixie76Answer, key1, key2, b"12345678")
        self.assertEqual(error.status, 400)
        error = self.assertRaises(HandshakeError, hixie76Answer, key2, key1, b"12345678")
        self.assertEqual(error.status, 400)

    def test_noSpaces(self) -> None:
        self.assertMalformed("12345")

    def test_noDigits(self) -> None:
        self.assertMalformed("a b c")

    def test_notAMultiple(self) -> None:
        self.assertMalformed("1 0 1")  # 101 / 2

    def test_tooLarge(self) -> None:
        # 4294967296 / 1 does not fit 32 bits.
        self.assertMalformed("42949 67296")
        hixie76Answer("42949 67295", "1 2", b"12345678")

    def test_hugeDigitCount(self) -> None:
        """
        A key with thousands of digits is a 400, not an exception from
        C{int()}'s digit limit.
        """
        self.assertMalformed("1 " + "9" * 5000)
        self.assertMalformed("1 " + "9" * 50)

    def test_thousandsOfLeadingZeros(self) -> None:
        """
        Issue 12 item 13: 4,400 leading zeros (over int()'s 4,300-digit
        limit) are a 400 with a clear reason, not a ValueError.
        """
        self.assertMalformed("0" * 4400 + "1 2")
        error = self.assertRaises(
            HandshakeError, hixie76Answer, "0" * 4400 + "1 2", "1 2", b"12345678"
        )
        self.assertIn("longer than 128 characters", error.reason)

    def test_keyLength(self) -> None:
        """
        Keys are bounded to 128 characters: the draft's are at most 34.
        """
        key = "25" + " " * 125 + "0"  # 250 / 125
        self.assertEqual(len(key), 128)
        self.assertEqual(
            hixie76Answer(key, "1 2", b"12345678"), hixie76Answer("2 ", "1 2", b"12345678")
        )
        self.assertMalformed(key + "x")

    def test_leadingZeros(self) -> None:
        self.assertEqual(
            hixie76Answer("000000000000000000000000000001 2", "1 2", b"12345678"),
            hixie76Answer("1 2", "1 2", b"12345678"),
        )

    def test_nonAsciiDigitsIgnored(self) -> None:
        self.assertEqual(
            hixie76Answer("1\u0663 2\u00b2", "1 2", b"12345678"),
            hixie76Answer("1 2", "1 2", b"12345678"),
        )


class NegotiateTests(SynchronousTestCase):
    """
    L{negotiate}: RFC 6455 4.2.1 / 4.2.2 and draft-hixie-76.
    """

    def assertRefused(self, r: Request, status: int, **kwargs: object) -> HandshakeError:
        error = self.assertRaises(HandshakeError, negotiate, r, **kwargs)
        self.assertEqual(error.status, status)
        return error

    def test_rfc6455Response(self) -> None:
        accepted = negotiate(parse(hybiRequestBytes()))
        self.assertEqual(accepted.family, RFC6455)
        self.assertIsNone(accepted.subprotocol)
        self.assertEqual(
            accepted.response,
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            b"\r\n",
        )

    def test_rfc6455ResponseWithSubprotocol(self) -> None:
        accepted = negotiate(parse(hybiRequestBytes()), ["chat"])
        self.assertEqual(accepted.subprotocol, "chat")
        self.assertEqual(
            accepted.response,
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            b"Sec-WebSocket-Protocol: chat\r\n"
            b"\r\n",
        )

    def test_hybiVersions(self) -> None:
        for version, family in (("13", RFC6455), ("8", HYBI08), ("7", HYBI07)):
            for secure in (False, True):
                accepted = negotiate(parse(hybiRequestBytes(version=version)), secure=secure)
                self.assertEqual(
                    accepted,
                    Accepted(
                        family,
                        b"HTTP/1.1 101 Switching Protocols\r\n"
                        b"Upgrade: websocket\r\n"
                        b"Connection: Upgrade\r\n"
                        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                        b"\r\n",
                        None,
                    ),
                )

    def test_keyWithSurroundingWhitespace(self) -> None:
        r = request(hybiFields(key="  " + RFC_KEY + " "))
        self.assertIn(RFC_ACCEPT.encode(), negotiate(r).response)

    def test_headerNamesCaseInsensitive(self) -> None:
        raw = hybiRequestBytes().replace(b"Sec-WebSocket-Key", b"sec-websocket-key")
        raw = raw.replace(b"Upgrade: websocket", b"UPGRADE: WebSocket")
        raw = raw.replace(b"Connection: Upgrade", b"connection: keep-alive, UPGRADE")
        self.assertEqual(negotiate(parse(raw)).family, RFC6455)

    def test_hixie76Response(self) -> None:
        """
        The draft's section 1.3 example, byte for byte.
        """
        r = parse(HIXIE_HEAD + HIXIE_KEY3)
        accepted = negotiate(r, ["sample"])
        self.assertEqual(accepted.family, HIXIE76)
        self.assertEqual(accepted.subprotocol, "sample")
        self.assertEqual(
            accepted.response,
            b"HTTP/1.1 101 WebSocket Protocol Handshake\r\n"
            b"Upgrade: WebSocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Origin: http://example.com\r\n"
            b"Sec-WebSocket-Location: ws://example.com/demo\r\n"
            b"Sec-WebSocket-Protocol: sample\r\n"
            b"\r\n" + HIXIE_ANSWER,
        )

    def test_hixie76SecureAndQuery(self) -> None:
        r = parse(hixieHead("/demo?x=1&y=%20") + HIXIE_KEY3)
        accepted = negotiate(r, secure=True)
        self.assertIsNone(accepted.subprotocol)
        self.assertEqual(
            accepted.response,
            b"HTTP/1.1 101 WebSocket Protocol Handshake\r\n"
            b"Upgrade: WebSocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Origin: http://example.com\r\n"
            b"Sec-WebSocket-Location: wss://example.com/demo?x=1&y=%20\r\n"
            b"\r\n" + HIXIE_ANSWER,
        )

    def test_hixie76AbsoluteTarget(self) -> None:
        r = parse(hixieHead("http://example.com/demo?q") + HIXIE_KEY3)
        self.assertIn(
            b"\r\nSec-WebSocket-Location: ws://example.com/demo?q\r\n",
            negotiate(r).response,
        )

    def test_hixie76NoOrigin(self) -> None:
        r = parse(hixieHead(omit=["Origin"]) + HIXIE_KEY3)
        response = negotiate(r).response
        self.assertNotIn(b"Origin", response)
        self.assertTrue(response.endswith(b"\r\n\r\n" + HIXIE_ANSWER))

    def test_hixie76MissingKey2(self) -> None:
        r = request(
            [
                ("Host", "example.com"),
                ("Upgrade", "WebSocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key1", "4 @1  46546xW%0l 1 5"),
            ],
            body=HIXIE_KEY3,
        )
        self.assertRefused(r, 400)

    def test_hixie76NoKey3(self) -> None:
        head = parse(HIXIE_HEAD + HIXIE_KEY3)
        for body in (b"", b"1234567", b"123456789"):
            r = Request(head.method, head.target, head.httpVersion, head.headers, body)
            self.assertRefused(r, 400)

    def test_hixie76BadKey(self) -> None:
        raw = HIXIE_HEAD.replace(
            b"12998 5 Y3 1  .P00", b"12998 5 Y3 1  .P01"
        )  # not a multiple of 5
        self.assertRefused(parse(raw + HIXIE_KEY3), 400)

    def test_unsupportedVersion(self) -> None:
        """
        RFC 6455 4.2.2: 426 with the versions we speak.
        """
        for version in ("12", "14", "0", "13, 8", "abc", ""):
            error = self.assertRefused(parse(hybiRequestBytes(version=version)), 426)
            self.assertEqual(error.headers, [("Sec-WebSocket-Version", "13, 8, 7")])
            response = errorResponse(error)
            self.assertTrue(response.startswith(b"HTTP/1.1 426 Upgrade Required\r\n"))
            self.assertIn(b"\r\nSec-WebSocket-Version: 13, 8, 7\r\n", response)

    def test_versionNotInFamilies(self) -> None:
        r = parse(hybiRequestBytes(version="8"))
        error = self.assertRefused(r, 426, families=(RFC6455, HIXIE76))
        self.assertEqual(error.headers, [("Sec-WebSocket-Version", "13")])
        error = self.assertRefused(
            parse(hybiRequestBytes(version="13")), 426, families=(HYBI08, HYBI07)
        )
        self.assertEqual(error.headers, [("Sec-WebSocket-Version", "8, 7")])

    def test_hixieNotInFamilies(self) -> None:
        r = parse(HIXIE_HEAD + HIXIE_KEY3)
        error = self.assertRefused(r, 426, families=(RFC6455,))
        self.assertEqual(error.headers, [("Sec-WebSocket-Version", "13")])

    def test_missingVersion(self) -> None:
        self.assertRefused(parse(hybiRequestBytes(omit=["Sec-WebSocket-Version"])), 400)

    def test_missingUpgrade(self) -> None:
        self.assertRefused(parse(hybiRequestBytes(omit=["Upgrade"])), 400)
        raw = hybiRequestBytes().replace(b"Upgrade: websocket", b"Upgrade: h2c")
        self.assertRefused(parse(raw), 400)

    def test_missingConnection(self) -> None:
        self.assertRefused(parse(hybiRequestBytes(omit=["Connection"])), 400)
        raw = hybiRequestBytes().replace(b"Connection: Upgrade", b"Connection: keep-alive")
        self.assertRefused(parse(raw), 400)

    def test_missingHost(self) -> None:
        self.assertRefused(parse(hybiRequestBytes(omit=["Host"])), 400)
        self.assertRefused(
            parse(
                hybiRequestBytes(extra=[], omit=["Host"]).replace(b"\r\n\r\n", b"\r\nHost:\r\n\r\n")
            ),
            400,
        )

    def test_repeatedHost(self) -> None:
        self.assertRefused(parse(hybiRequestBytes(extra=["Host: other"])), 400)

    def test_missingKey(self) -> None:
        self.assertRefused(parse(hybiRequestBytes(omit=["Sec-WebSocket-Key"])), 400)

    def test_repeatedKey(self) -> None:
        self.assertRefused(parse(hybiRequestBytes(extra=["Sec-WebSocket-Key: " + RFC_KEY])), 400)

    def test_badKey(self) -> None:
        for key in (
            "",
            "not base64!",
            "dGhlIHNhbXBsZSBub25jZQ",  # unpadded
            "dGhlIHNhbXBsZSBub25j",  # 15 bytes
            "dGhlIHNhbXBsZSBub25jZQE=",  # 17 bytes
            "dGhlIHNhbXBs ZSBub25jZQ==",
            "dGhlIHNhbXBsZSBub25jZQ==\u00e9",
        ):
            self.assertRefused(request(hybiFields(key=key)), 400)

    def test_notGet(self) -> None:
        for method in ("POST", "HEAD", "PUT", "get"):
            error = self.assertRefused(parse(hybiRequestBytes(method=method)), 405)
            self.assertEqual(error.headers, [("Allow", "GET")])
            self.assertIn(b"\r\nAllow: GET\r\n", errorResponse(error))

    def test_http10(self) -> None:
        self.assertRefused(parse(hybiRequestBytes(httpVersion="HTTP/1.0")), 505)
        self.assertRefused(parse(hixieHead().replace(b"HTTP/1.1", b"HTTP/1.0") + HIXIE_KEY3), 505)


class SubprotocolTests(SynchronousTestCase):
    """
    The client's order states its preference (RFC 6455 4.2.2 (5.4)).
    """

    def withProtocols(self, *values: str) -> Request:
        return request(hybiFields() + [("Sec-WebSocket-Protocol", v) for v in values])

    def test_clientOrder(self) -> None:
        r = self.withProtocols("chat, superchat")
        self.assertEqual(chooseSubprotocol(r, ["superchat", "chat"]), "chat")
        self.assertEqual(chooseSubprotocol(r, ["superchat"]), "superchat")
        self.assertEqual(negotiate(r, ["superchat", "chat"]).subprotocol, "chat")

    def test_severalHeaders(self) -> None:
        r = self.withProtocols("a", "b, c")
        self.assertEqual(chooseSubprotocol(r, ["c", "b"]), "b")
        accepted = negotiate(r, ["c"])
        self.assertEqual(accepted.subprotocol, "c")
        self.assertIn(b"\r\nSec-WebSocket-Protocol: c\r\n", accepted.response)

    def test_noMatch(self) -> None:
        r = self.withProtocols("chat")
        self.assertIsNone(chooseSubprotocol(r, ["other"]))
        accepted = negotiate(r, ["other"])
        self.assertIsNone(accepted.subprotocol)
        self.assertNotIn(b"Sec-WebSocket-Protocol", accepted.response)

    def test_noneSupported(self) -> None:
        r = self.withProtocols("chat")
        self.assertIsNone(chooseSubprotocol(r, []))
        self.assertIsNone(negotiate(r).subprotocol)

    def test_noneOffered(self) -> None:
        r = request(hybiFields())
        self.assertIsNone(chooseSubprotocol(r, ["chat"]))
        self.assertNotIn(b"Sec-WebSocket-Protocol", negotiate(r, ["chat"]).response)

    def test_spacesAndEmptyItems(self) -> None:
        r = self.withProtocols(" ,  , chat ,")
        self.assertEqual(chooseSubprotocol(r, ["chat"]), "chat")


class ResponseTests(SynchronousTestCase):
    """
    L{httpResponse} and L{errorResponse}.
    """

    def test_httpResponse(self) -> None:
        self.assertEqual(
            httpResponse(200, "h\u00e9", [("X-A", "1")], "text/html"),
            b"HTTP/1.1 200 OK\r\n"
            b"X-A: 1\r\n"
            b"Content-Type: text/html\r\n"
            b"Content-Length: 3\r\n"
            b"Connection: close\r\n\r\n"
            b"h\xc3\xa9",
        )

    def test_unknownStatus(self) -> None:
        self.assertTrue(httpResponse(599).startswith(b"HTTP/1.1 599 Error\r\n"))

    def test_errorResponse(self) -> None:
        response = errorResponse(HandshakeError(400, "Nope"))
        head, _, body = response.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 400 Bad Request\r\n"))
        self.assertIn(b"\r\nContent-Length: 5", head)
        self.assertIn(b"\r\nConnection: close", head)
        self.assertEqual(body, b"Nope\n")

    def test_errorStatusesFromParser(self) -> None:
        for raw, line in (
            (b"GET / HTTP/2.0\r\n\r\n", b"HTTP/1.1 505 HTTP Version Not Supported\r\n"),
            (b"GET /\r\n\r\n", b"HTTP/1.1 400 Bad Request\r\n"),
        ):
            error = self.assertRaises(HandshakeError, RequestParser().feed, raw)
            self.assertTrue(errorResponse(error).startswith(line))
        error = self.assertRaises(
            HandshakeError, RequestParser(maxSize=10).feed, b"GET / HTTP/1.1\r\n"
        )
        self.assertTrue(
            errorResponse(error).startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        )
