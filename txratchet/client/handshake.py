"""
The client side of the opening handshake, sans I/O: build the upgrade
request for a C{ws://} or C{wss://} URL and check the server's answer.

Supported: RFC 6455 (C{Sec-WebSocket-Version: 13}), HyBi-07 and HyBi-08..12
(versions 7 and 8) and draft-hixie-thewebsocketprotocol-76 (key1/key2,
key3 and the MD5 answer). Nothing here does I/O or imports Twisted::

    handshake = ClientHandshake("ws://example.com/chat", subprotocols=["chat"])
    send(handshake.data)
    response = None
    while response is None:
        response = handshake.receive(recv())   # raises HandshakeFailed
    frames = handshake.leftover                # bytes that followed the answer
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from txratchet.errors import HandshakeFailed as HandshakeFailed
from txratchet.errors import InvalidResponse as InvalidResponse
from txratchet.errors import InvalidStatus as InvalidStatus
from txratchet.errors import InvalidURL as InvalidURL
from txratchet.websocket import deflate
from txratchet.websocket.handshake import (
    HIXIE76,
    HYBI07,
    HYBI08,
    RFC6455,
    Headers,
    Request,
    acceptKey,
)

#: The default port of each scheme.
DEFAULT_PORTS: dict[str, int] = {"ws": 80, "wss": 443}

#: C{version=} spellings, to (protocol family, C{Sec-WebSocket-Version}).
_VERSIONS: dict[str, tuple[str, str | None]] = {
    "13": (RFC6455, "13"),
    RFC6455: (RFC6455, "13"),
    "8": (HYBI08, "8"),
    HYBI08: (HYBI08, "8"),
    "7": (HYBI07, "7"),
    HYBI07: (HYBI07, "7"),
    HIXIE76: (HIXIE76, None),
    "hixie76": (HIXIE76, None),
    "76": (HIXIE76, None),
}

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_FORBIDDEN_CHARS = re.compile("[\r\n\x00]")
_STATUS_LINE = re.compile(r"HTTP/1\.[0-9] ([0-9]{3})(?: (.*))?")

#: The first 13 bytes of any status line L{_STATUS_LINE} accepts, cut
#: anywhere: a server's answer that does not start like this is refused at
#: once, not after the handshake timeout.
_STATUS_LINE_START = re.compile(
    rb"H(?:T(?:T(?:P(?:/(?:1(?:\.(?:[0-9](?: (?:[0-9](?:[0-9](?:[0-9][ \r]?)?)?)?)?)?)?)?)?)?)?)?"
)

#: Request headers the handshake owns: set them through its options.
_RESERVED_HEADERS = frozenset(
    (
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-key1",
        "sec-websocket-key2",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "content-length",
        "transfer-encoding",
    )
)

#: Draft-76 section 4.1: the characters inserted into a key at random.
_HIXIE_NOISE = [chr(c) for c in range(0x21, 0x30)] + [chr(c) for c in range(0x3A, 0x7F)]


@dataclass(frozen=True)
class URL:
    """
    A parsed WebSocket URL.

    @ivar resource: the path and query to request (at least C{"/"}).
    @ivar userinfo: C{(user, password)} when the URL carries them (sent as
        HTTP Basic authorization), else C{None}.
    """

    secure: bool
    host: str
    port: int
    resource: str = "/"
    userinfo: tuple[str, str] | None = None

    @property
    def scheme(self) -> str:
        return "wss" if self.secure else "ws"

    @property
    def hostHeader(self) -> str:
        """
        The C{Host} header: the host, and the port when not the default.
        """
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == DEFAULT_PORTS[self.scheme]:
            return host
        return f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        """
        The HTTP(S) origin of the same host (sent as C{Origin} to servers
        that require one).
        """
        return ("https://" if self.secure else "http://") + self.hostHeader

    def __str__(self) -> str:
        return f"{self.scheme}://{self.hostHeader}{self.resource}"


def parseURL(url: str) -> URL:
    """
    Parse a C{ws://} or C{wss://} URL (RFC 6455 3).

    @raise InvalidURL: another scheme, no host, a bad port, or a fragment.
    """
    if _FORBIDDEN_CHARS.search(url) or any(c in url for c in " \t"):
        raise InvalidURL(f"{url!r}: whitespace or control characters in the URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InvalidURL(f"{url!r}: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidURL(f"{url!r}: the scheme must be ws:// or wss://")
    if parts.fragment or url.endswith("#"):
        raise InvalidURL(f"{url!r}: a WebSocket URL has no fragment")
    host = parts.hostname
    if not host:
        raise InvalidURL(f"{url!r}: no host")
    if port is None:
        port = DEFAULT_PORTS[scheme]
    elif not 0 < port < 65536:
        raise InvalidURL(f"{url!r}: port out of range")
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    userinfo = None
    if parts.username is not None:
        userinfo = (unquote(parts.username), unquote(parts.password or ""))
    return URL(scheme == "wss", host, port, resource, userinfo)


def normalizeVersion(version: int | str) -> tuple[str, str | None]:
    """
    The protocol family and C{Sec-WebSocket-Version} of a C{version=}
    value: C{13}, C{8}, C{7} or C{"hixie-76"} (strings of the numbers and
    the family names work too).

    @raise ValueError: a version this client does not speak.
    """
    found = _VERSIONS.get(str(version).strip().lower())
    if found is None:
        raise ValueError(
            f"Unsupported WebSocket version {version!r}: use 13, 8, 7 or 'hixie-76'"
        )
    return found


@dataclass(frozen=True)
class DeflateOffer:
    """
    The client side of permessage-deflate (RFC 7692): what to offer and
    how to compress.

    The server's answer names the parameters from both sides; on this side
    the roles swap: I{our} compressor obeys the C{client_*} parameters and
    our decompressor the C{server_*} ones.

    @ivar level: zlib level of our compressor (0-9).
    @ivar memLevel: zlib memLevel of our compressor (1-9).
    @ivar clientMaxWindowBits: the largest window we compress with (8-15);
        always offered as C{client_max_window_bits} (with the value when
        it is below 15), so the server may ask for a smaller one.
    @ivar serverMaxWindowBits: ask the server to compress with at most this
        window (bounds our decompressor's memory), or C{None} to accept its
        choice.
    @ivar clientNoContextTakeover: offer to reset our compressor per message.
    @ivar serverNoContextTakeover: ask the server to reset its compressor
        per message.
    @ivar minSize: messages shorter than this are sent uncompressed.
    """

    level: int = 6
    memLevel: int = 8
    clientMaxWindowBits: int = 15
    serverMaxWindowBits: int | None = None
    clientNoContextTakeover: bool = False
    serverNoContextTakeover: bool = False
    minSize: int = 32

    def __post_init__(self) -> None:
        deflate.checkSettings(
            self.level, self.memLevel, self.clientMaxWindowBits, self.serverMaxWindowBits
        )

    def header(self) -> str:
        """
        The C{Sec-WebSocket-Extensions} offer.
        """
        parts = [deflate.NAME]
        if self.clientNoContextTakeover:
            parts.append("client_no_context_takeover")
        if self.serverNoContextTakeover:
            parts.append("server_no_context_takeover")
        if self.serverMaxWindowBits is not None:
            parts.append(f"server_max_window_bits={self.serverMaxWindowBits}")
        if self.clientMaxWindowBits < 15:
            parts.append(f"client_max_window_bits={self.clientMaxWindowBits}")
        else:
            parts.append("client_max_window_bits")
        return "; ".join(parts)

    def accept(self, params: Sequence[tuple[str, str | None]]) -> deflate.DeflateParams:
        """
        Check the server's answer to our offer (RFC 7692 7.1).

        @return: the agreement as the server names it: C{server*} fields
            are the server's compressor (our decompressor), C{client*}
            fields ours (see L{swapped}).
        @raise ValueError: an unknown, repeated or invalid parameter, or one
            that does not answer our offer.
        """
        seen: set[str] = set()
        serverNoTakeover = False
        clientNoTakeover = self.clientNoContextTakeover
        serverBits = 15
        clientBits = self.clientMaxWindowBits
        for name, value in params:
            if name in seen:
                raise ValueError(f"repeated parameter {name}")
            seen.add(name)
            if name in ("server_no_context_takeover", "client_no_context_takeover"):
                if value is not None:
                    raise ValueError(f"{name} takes no value")
                if name == "server_no_context_takeover":
                    serverNoTakeover = True
                else:
                    clientNoTakeover = True
            elif name in ("server_max_window_bits", "client_max_window_bits"):
                bits = _windowBits(value)
                if bits is None:
                    raise ValueError(f"invalid {name}={value}")
                if name == "server_max_window_bits":
                    if self.serverMaxWindowBits is not None and bits > self.serverMaxWindowBits:
                        raise ValueError(
                            f"server_max_window_bits={bits} is larger than offered"
                        )
                    serverBits = bits
                else:
                    if bits > self.clientMaxWindowBits:
                        raise ValueError(
                            f"client_max_window_bits={bits} is larger than offered"
                        )
                    clientBits = bits
            else:
                raise ValueError(f"unknown parameter {name}")
        if self.serverNoContextTakeover and not serverNoTakeover:
            raise ValueError("server_no_context_takeover was asked for and not granted")
        if self.serverMaxWindowBits is not None and "server_max_window_bits" not in seen:
            raise ValueError("server_max_window_bits was asked for and not granted")
        return deflate.DeflateParams(
            serverNoTakeover,
            clientNoTakeover,
            serverBits,
            clientBits,
            "server_max_window_bits" in seen,
        )

    def compressorConfig(self) -> deflate.PerMessageDeflate:
        """
        The configuration L{deflate.Deflater} takes (level and memLevel).
        """
        return deflate.PerMessageDeflate(
            level=self.level, memLevel=self.memLevel, minSize=self.minSize
        )


def swapped(params: deflate.DeflateParams) -> deflate.DeflateParams:
    """
    The agreement seen from the client: L{deflate.Deflater} compresses with
    the C{server*} fields and L{deflate.Inflater} inflates with the
    C{client*} ones, so a client gives them its own (C{client_*}) and the
    server's (C{server_*}) parameters respectively.
    """
    return deflate.DeflateParams(
        serverNoContextTakeover=params.clientNoContextTakeover,
        clientNoContextTakeover=params.serverNoContextTakeover,
        serverMaxWindowBits=params.clientMaxWindowBits,
        clientMaxWindowBits=params.serverMaxWindowBits,
    )


def _windowBits(value: str | None) -> int | None:
    # Two ASCII digits at most (8..15): int() is never given thousands of
    # digits or a digit it cannot read (latin-1's superscripts).
    if value is None or not 0 < len(value) <= 2 or not value.isascii() or not value.isdigit():
        return None
    bits = int(value)
    return bits if 8 <= bits <= 15 and value == str(bits) else None


#: The default offer: what browsers offer.
DEFAULT_OFFER = DeflateOffer()


@dataclass
class Response:
    """
    A server's accepted answer.

    @ivar family: the protocol family spoken from now on.
    @ivar status: 101.
    @ivar reasonPhrase: the status line's reason phrase.
    @ivar headers: the response headers.
    @ivar subprotocol: the subprotocol the server chose, or C{None}.
    @ivar extensions: the C{Sec-WebSocket-Extensions} answer, or C{None}.
    @ivar compression: the permessage-deflate agreement as the server names
        it (pass it through L{swapped} for L{deflate.Deflater} and
        L{deflate.Inflater}), or C{None}.
    @ivar cookies: what the server set with C{Set-Cookie}, C{{name: value}}.
    """

    family: str
    status: int
    reasonPhrase: str
    headers: Headers
    subprotocol: str | None = None
    extensions: str | None = None
    compression: deflate.DeflateParams | None = None
    cookies: dict[str, str] = field(default_factory=dict)


def parseSetCookies(headers: Headers) -> dict[str, str]:
    """
    The name and value of every C{Set-Cookie} (attributes ignored; the last
    one of a name wins, as a cookie jar would keep it).
    """
    cookies: dict[str, str] = {}
    for value in headers.getAll("set-cookie"):
        pair = value.split(";", 1)[0]
        name, sep, val = pair.partition("=")
        name = name.strip()
        if sep and name:
            val = val.strip()
            if len(val) >= 2 and val[0] == val[-1] == '"':
                val = val[1:-1]
            cookies[name] = val
    return cookies


def _hixieKey(rand: random.Random) -> tuple[str, int]:
    """
    One Sec-WebSocket-Key1/Key2 and its number (draft-76 section 4.1,
    steps 17-26).
    """
    spaces = rand.randint(1, 12)
    number = rand.randint(0, 0xFFFFFFFF // spaces)
    key = list(str(number * spaces))
    for _ in range(rand.randint(1, 12)):
        key.insert(rand.randint(0, len(key)), rand.choice(_HIXIE_NOISE))
    for _ in range(spaces):
        # Never first or last.
        key.insert(rand.randint(1, len(key) - 1), " ")
    return "".join(key), number


def _validateHeaders(fields: Sequence[tuple[str, str]]) -> None:
    for name, value in fields:
        if not name or not _TOKEN_CHARS.issuperset(name):
            raise ValueError(f"Invalid header name {name!r}")
        if _FORBIDDEN_CHARS.search(value):
            raise ValueError(f"Invalid characters in the value of header {name!r}")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(
                f"{name} is set by the handshake itself (use the client's options)"
            )


def cookieHeader(cookies: Mapping[str, str] | Sequence[tuple[str, str]] | str) -> str:
    """
    The C{Cookie} header value for C{cookies} (RFC 6265 4.2.1).

    @raise ValueError: a name that is not a token, or a value with
        characters a cookie cannot carry.
    """
    if isinstance(cookies, str):
        if _FORBIDDEN_CHARS.search(cookies):
            raise ValueError("Invalid characters in the Cookie header")
        return cookies.strip()
    pairs = cookies.items() if isinstance(cookies, Mapping) else cookies
    out = []
    for name, value in pairs:
        if not name or not _TOKEN_CHARS.issuperset(name):
            raise ValueError(f"Invalid cookie name {name!r}")
        if any(c in value for c in ';,"\\') or any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in value):
            raise ValueError(f"Invalid characters in the value of cookie {name!r}")
        out.append(f"{name}={value}")
    return "; ".join(out)


class ClientHandshake:
    """
    One opening handshake: L{data} is the request to send; L{receive} takes
    the server's bytes until it returns the L{Response} (or raises).

    @param url: a C{ws://}/C{wss://} URL or a parsed L{URL}.
    @param version: C{13} (RFC 6455), C{8} (HyBi-08..12), C{7} (HyBi-07) or
        C{"hixie-76"}.
    @param subprotocols: offered in order of preference.
    @param headers: more request headers, C{[(name, value)]} or a mapping;
        a C{Host}, C{Origin} or C{User-Agent} here replaces the default.
    @param cookies: sent as one C{Cookie} header (a mapping, pairs, or the
        header's value).
    @param origin: the C{Origin} (C{Sec-WebSocket-Origin} for versions 7
        and 8); none by default, except for Hixie-76, which requires one
        (the URL's host is used).
    @param compression: the permessage-deflate offer (not for Hixie-76),
        or C{None}.
    @param maxResponseSize: the largest response head accepted.
    @param maxHeaders: the most header fields accepted in the response.
    @param maxBodySize: how much of a refusal's body is kept (and waited
        for, when it has a C{Content-Length}).
    @param key: the 16 random bytes of C{Sec-WebSocket-Key} (for tests).
    @param randomSource: the random generator for Hixie-76 keys (for tests).
    """

    def __init__(
        self,
        url: URL | str,
        *,
        version: int | str = 13,
        subprotocols: Sequence[str] = (),
        headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        cookies: Mapping[str, str] | Sequence[tuple[str, str]] | str | None = None,
        origin: str | None = None,
        compression: DeflateOffer | None = None,
        maxResponseSize: int = 16384,
        maxHeaders: int = 100,
        maxBodySize: int = 65536,
        key: bytes | None = None,
        randomSource: random.Random | None = None,
    ) -> None:
        self.url = url if isinstance(url, URL) else parseURL(url)
        self.family, self.version = normalizeVersion(version)
        self.subprotocols = tuple(subprotocols)
        for proto in self.subprotocols:
            if not proto or not _TOKEN_CHARS.issuperset(proto):
                raise ValueError(f"Invalid subprotocol {proto!r}")
        extra = list(headers.items() if isinstance(headers, Mapping) else headers)
        _validateHeaders(extra)
        if origin is not None and _FORBIDDEN_CHARS.search(origin):
            raise ValueError("Invalid characters in the origin")
        self.compression = compression if self.family != HIXIE76 else None
        self.maxResponseSize = maxResponseSize
        self.maxHeaders = maxHeaders
        self.maxBodySize = maxBodySize
        self._buffer = bytearray()
        self._head: tuple[int, str, Headers] | None = None
        self._done = False
        #: Bytes the server sent after its answer (the first frames).
        self.leftover = b""

        given = {name.lower() for name, _ in extra}
        fields: list[tuple[str, str]] = []
        if "host" not in given:
            fields.append(("Host", self.url.hostHeader))
        self.key = ""
        self._expected: bytes | str = b""
        self.body = b""
        if self.family == HIXIE76:
            fields += [("Upgrade", "WebSocket"), ("Connection", "Upgrade")]
            rand = randomSource if randomSource is not None else random.SystemRandom()
            key1, number1 = _hixieKey(rand)
            key2, number2 = _hixieKey(rand)
            self.body = bytes(rand.getrandbits(8) for _ in range(8))
            self._expected = hashlib.md5(
                struct.pack(">II", number1, number2) + self.body
            ).digest()
            if "origin" in given:
                origin = next(v for n, v in extra if n.lower() == "origin")
            elif origin is None:
                origin = self.url.origin
            if "origin" not in given:
                fields.append(("Origin", origin))
            self.origin: str | None = origin
            fields += [("Sec-WebSocket-Key1", key1), ("Sec-WebSocket-Key2", key2)]
        else:
            fields += [("Upgrade", "websocket"), ("Connection", "Upgrade")]
            raw = key if key is not None else os.urandom(16)
            if len(raw) != 16:
                raise ValueError("The key must be 16 bytes")
            self.key = base64.b64encode(raw).decode("ascii")
            self._expected = acceptKey(self.key)
            fields.append(("Sec-WebSocket-Key", self.key))
            assert self.version is not None
            fields.append(("Sec-WebSocket-Version", self.version))
            self.origin = origin
            originHeader = "Origin" if self.family == RFC6455 else "Sec-WebSocket-Origin"
            if origin is not None and originHeader.lower() not in given:
                fields.append((originHeader, origin))
        if self.subprotocols:
            fields.append(("Sec-WebSocket-Protocol", ", ".join(self.subprotocols)))
        if self.compression is not None:
            fields.append(("Sec-WebSocket-Extensions", self.compression.header()))
        if cookies:
            fields.append(("Cookie", cookieHeader(cookies)))
        userinfo = self.url.userinfo
        if userinfo is not None and "authorization" not in given:
            credentials = f"{userinfo[0]}:{userinfo[1]}".encode()
            fields.append(("Authorization", "Basic " + base64.b64encode(credentials).decode()))
        if "user-agent" not in given:
            fields.append(("User-Agent", "txratchet"))
        fields += extra
        target = quote(self.url.resource, safe="/?&=%:@!$'()*+,;~-._")
        #: The request as sent (C{request.headers}, C{request.cookies} ...).
        self.request = Request("GET", target, "HTTP/1.1", Headers(fields), self.body)
        head = f"GET {target} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields)
        #: The bytes to send: the request head (and Hixie-76's key3).
        self.data = (head + "\r\n").encode("latin-1") + self.body

    # -- The response ------------------------------------------------------

    def receive(self, data: bytes) -> Response | None:
        """
        Take the server's next bytes; return the L{Response} once the
        answer is complete and valid (what follows it is in L{leftover}),
        else C{None}.

        @raise InvalidStatus: the server refused (with the status, headers
            and the refusal's body).
        @raise InvalidResponse: the answer is malformed, too large or does
            not match the request.
        """
        if self._done:
            raise ValueError("The handshake is over")
        buf = self._buffer
        start = max(0, len(buf) - 3)
        buf += data
        if self._head is None:
            end = buf.find(b"\r\n\r\n", start)
            if end < 0:
                if buf and _STATUS_LINE_START.fullmatch(buf, 0, 13) is None:
                    raise self._end(
                        InvalidResponse(
                            f"The server's answer is not an HTTP/1.1 response: {bytes(buf[:20])!r}"
                        )
                    )
                if len(buf) > self.maxResponseSize:
                    raise self._end(
                        InvalidResponse(
                            "Response head larger than %d bytes" % self.maxResponseSize
                        )
                    )
                return None
            if end + 4 > self.maxResponseSize:
                raise self._end(
                    InvalidResponse("Response head larger than %d bytes" % self.maxResponseSize)
                )
            self._head = self._parseHead(bytes(buf[:end]))
            del buf[: end + 4]
        status, phrase, headers = self._head
        if status != 101:
            length = headers.get("content-length", "")
            if (
                length is not None
                and 0 < len(length) <= 20
                and length.isascii()
                and length.isdigit()
                and len(buf) < min(int(length), self.maxBodySize)
            ):
                return None  # wait for the reason the server gives
            raise self._end(self._refusal())
        if self.family == HIXIE76:
            if len(buf) < 16:
                return None
            answer = bytes(buf[:16])
            del buf[:16]
            response = self._checkHixie76(phrase, headers, answer)
        else:
            response = self._checkHybi(phrase, headers)
        self.leftover = bytes(buf)
        buf.clear()
        self._done = True
        return response

    @property
    def received(self) -> bool:
        """
        Has any of the server's answer arrived?
        """
        return self._head is not None or bool(self._buffer)

    def connectionLost(self) -> HandshakeFailed:
        """
        The error to report when the connection ends before the answer is
        complete.
        """
        self._done = True
        if self._head is not None and self._head[0] != 101:
            return self._refusal()
        if self._head is not None or self._buffer:
            return InvalidResponse("The connection closed in the middle of the server's answer")
        return InvalidResponse("The connection closed before the server answered")

    def _end(self, error: HandshakeFailed) -> HandshakeFailed:
        self._done = True
        self._buffer = bytearray()
        return error

    def _refusal(self) -> InvalidStatus:
        assert self._head is not None
        status, phrase, headers = self._head
        body = bytes(self._buffer[: self.maxBodySize])
        reason = f"The server refused the WebSocket upgrade: {status} {phrase}".rstrip()
        text = body.decode("utf-8", "replace").strip()
        if text and len(text) <= 200 and "<" not in text:
            reason += f" ({text})"
        return InvalidStatus(reason, status, headers, body)

    def _parseHead(self, head: bytes) -> tuple[int, str, Headers]:
        text = head.decode("latin-1")
        lines = text.split("\r\n")
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise self._end(InvalidResponse(f"Malformed status line: {lines[0][:80]!r}"))
        status = int(match.group(1))
        phrase = match.group(2) or ""
        if len(lines) - 1 > self.maxHeaders:
            raise self._end(
                InvalidResponse("More than %d header fields in the response" % self.maxHeaders, status)
            )
        fields: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t"):
                raise self._end(InvalidResponse("Obsolete header line folding", status))
            name, sep, value = line.partition(":")
            if not sep or not name or not _TOKEN_CHARS.issuperset(name) or "\x00" in value:
                raise self._end(InvalidResponse(f"Malformed header line: {line[:80]!r}", status))
            fields.append((name, value.strip(" \t")))
        return status, phrase, Headers(fields)

    def _invalid(self, reason: str, headers: Headers) -> InvalidResponse:
        return InvalidResponse(reason, 101, headers)

    def _checkUpgrade(self, headers: Headers) -> None:
        if "websocket" not in headers.tokens("upgrade"):
            raise self._invalid("The response has no 'Upgrade: websocket'", headers)
        if "upgrade" not in headers.tokens("connection"):
            raise self._invalid("The response has no 'Connection: Upgrade'", headers)

    def _checkSubprotocol(self, headers: Headers) -> str | None:
        values = headers.getAll("sec-websocket-protocol")
        if not values:
            return None
        chosen = values[0].strip()
        if len(values) > 1 or "," in chosen:
            raise self._invalid("The server chose several subprotocols", headers)
        if chosen not in self.subprotocols:
            if not self.subprotocols:
                raise self._invalid(
                    f"The server chose subprotocol {chosen!r}; none was offered", headers
                )
            raise self._invalid(
                f"The server chose subprotocol {chosen!r}, not one of "
                f"{', '.join(self.subprotocols)}",
                headers,
            )
        return chosen

    def _checkHybi(self, phrase: str, headers: Headers) -> Response:
        self._checkUpgrade(headers)
        accepts = headers.getAll("sec-websocket-accept")
        if len(accepts) != 1:
            raise self._invalid("The response must have one Sec-WebSocket-Accept", headers)
        if accepts[0].strip() != self._expected:
            raise self._invalid(
                "Wrong Sec-WebSocket-Accept: %r, expected %r" % (accepts[0], self._expected),
                headers,
            )
        subprotocol = self._checkSubprotocol(headers)
        values = headers.getAll("sec-websocket-extensions")
        compression = None
        extensions = None
        if values:
            extensions = ", ".join(values)
            try:
                agreed = deflate.parseExtensions(values)
            except deflate.MalformedExtensions as e:
                raise self._invalid(f"Malformed Sec-WebSocket-Extensions: {e}", headers) from None
            for name, params in agreed:
                if name != deflate.NAME or self.compression is None:
                    raise self._invalid(
                        f"The server accepted extension {name!r}, which was not offered",
                        headers,
                    )
                if compression is not None:
                    raise self._invalid("The server accepted permessage-deflate twice", headers)
                try:
                    compression = self.compression.accept(params)
                except ValueError as e:
                    raise self._invalid(
                        f"Invalid permessage-deflate answer: {e}", headers
                    ) from None
        return Response(
            self.family,
            101,
            phrase,
            headers,
            subprotocol,
            extensions,
            compression,
            parseSetCookies(headers),
        )

    def _checkHixie76(self, phrase: str, headers: Headers, answer: bytes) -> Response:
        self._checkUpgrade(headers)
        if answer != self._expected:
            raise self._invalid("Wrong Hixie-76 challenge answer", headers)
        location = headers.get("sec-websocket-location")
        expected = str(self.url)
        if location is None or location.strip() != expected:
            raise self._invalid(
                f"Sec-WebSocket-Location {location!r} does not match {expected!r}", headers
            )
        origin = headers.get("sec-websocket-origin")
        if self.origin is not None and (origin is None or origin.strip() != self.origin):
            raise self._invalid(
                f"Sec-WebSocket-Origin {origin!r} does not match {self.origin!r}", headers
            )
        subprotocol = self._checkSubprotocol(headers)
        return Response(
            self.family, 101, phrase, headers, subprotocol, cookies=parseSetCookies(headers)
        )


__all__ = [
    "DEFAULT_OFFER",
    "DEFAULT_PORTS",
    "URL",
    "ClientHandshake",
    "DeflateOffer",
    "HandshakeFailed",
    "InvalidResponse",
    "InvalidStatus",
    "InvalidURL",
    "Response",
    "cookieHeader",
    "normalizeVersion",
    "parseSetCookies",
    "parseURL",
    "swapped",
]

