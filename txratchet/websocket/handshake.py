"""
The opening handshake of both sides, sans I/O.

The server parses an HTTP upgrade request (L{RequestParser}), picks the
WebSocket protocol family it asks for and answers it (L{negotiate}). The
client builds the request for a C{ws://} or C{wss://} URL and checks the
server's answer (L{ClientHandshake})::

    handshake = ClientHandshake("ws://example.com/chat", subprotocols=["chat"])
    send(handshake.data)
    response = None
    while response is None:
        response = handshake.receive(recv())   # raises HandshakeFailed
    frames = handshake.leftover                # bytes that followed the answer

Supported: draft-hixie-thewebsocketprotocol-76 (MD5 challenge),
HyBi-07 and HyBi-08..12 (C{Sec-WebSocket-Version} 7 and 8) and RFC 6455
(version 13). Both sides share one head parser (L{http11.HeadParser}), one
accept key, one Hixie-76 answer and one version table; nothing here does
I/O or imports Twisted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import random
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, quote, unquote, urlsplit

from txratchet.errors import HandshakeError as HandshakeError
from txratchet.errors import HandshakeFailed as HandshakeFailed
from txratchet.errors import InvalidResponse as InvalidResponse
from txratchet.errors import InvalidStatus as InvalidStatus
from txratchet.errors import InvalidURL as InvalidURL
from txratchet.websocket import deflate
from txratchet.websocket.deflate import DEFAULT_OFFER as DEFAULT_OFFER
from txratchet.websocket.deflate import DeflateOffer as DeflateOffer
from txratchet.websocket.http11 import (
    FORBIDDEN_CHARS,
    REQUEST_LINE,
    STATUS_LINE,
    HeadParser,
    Problem,
    isToken,
)
from txratchet.websocket.http11 import MAX_METHOD_LENGTH as MAX_METHOD_LENGTH
from txratchet.websocket.http11 import Headers as Headers
from txratchet.websocket.http11 import cookieHeader as cookieHeader
from txratchet.websocket.http11 import isRequestLineStart as isRequestLineStart
from txratchet.websocket.http11 import parseCookies as parseCookies
from txratchet.websocket.http11 import parseSetCookies as parseSetCookies

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

HIXIE76 = "hixie-76"
HYBI07 = "hybi-07"
HYBI08 = "hybi-08"
RFC6455 = "rfc6455"

#: C{Sec-WebSocket-Version} values we speak, newest first, and their names.
VERSIONS: dict[str, str] = {"13": RFC6455, "8": HYBI08, "7": HYBI07}
SUPPORTED_VERSIONS_HEADER = "13, 8, 7"

#: A Hixie-76 key number is at most 2**32 - 1 times the count of spaces in a
#: head bounded to a few KB: more significant digits than this can never
#: make a valid key.
_MAX_HIXIE_KEY_DIGITS = 20

#: The draft's keys are at most 34 characters (10 digits, 12 spaces and 12
#: other characters); anything much longer is refused before its digits
#: are counted or converted (int() refuses strings of over 4,300 digits,
#: leading zeros included).
MAX_HIXIE_KEY_LENGTH = 128


@dataclass(slots=True)
class Request:
    """
    A parsed opening-handshake request.

    @ivar target: the request target as sent (path and query, or an
        absolute C{http(s)://} URI).
    @ivar path: the path part of C{target}'s resource name, not
        percent-decoded (for an absolute URI, without scheme and authority).
    @ivar query: the raw query string (without C{?}), C{""} if none.
    @ivar params: the query parsed into lists of values per name.
    @ivar body: bytes after the header block that belong to the handshake
        (Hixie-76's 8-byte key3), else C{b""}.
    @ivar protocol: an HTTP/2 extended CONNECT's C{:protocol} (RFC 8441),
        C{None} on HTTP/1.1.
    """

    method: str
    target: str
    httpVersion: str
    headers: Headers
    body: bytes = b""
    protocol: str | None = None
    path: str = field(init=False)
    query: str = field(init=False)
    params: dict[str, list[str]] = field(init=False)
    cookies: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        path, _, query = _resourceName(self.target).partition("?")
        self.path = path
        self.query = query
        self.params = parse_qs(query, keep_blank_values=True)
        self.cookies = parseCookies(self.headers)

    @property
    def isUpgrade(self) -> bool:
        """
        Does the request ask for a WebSocket upgrade at all?
        """
        return "websocket" in self.headers.tokens("upgrade")

    @property
    def protocolFamily(self) -> str | None:
        """
        The protocol family the request's headers point to, or C{None} when
        the version is unsupported or absent.
        """
        version = self.headers.get("sec-websocket-version")
        if version is not None:
            return VERSIONS.get(version.strip())
        if "sec-websocket-key1" in self.headers:
            return HIXIE76
        return None


def _resourceName(target: str) -> str:
    """
    The resource name (path and query) of a request target: the target
    itself in origin-form, its path part in absolute-form (RFC 6455 4.2.1
    item 1 admits an absolute HTTP/HTTPS URI).
    """
    scheme, sep, rest = target.partition("://")
    if sep and scheme.lower() in ("http", "https", "ws", "wss"):
        for i, c in enumerate(rest):
            if c in "/?":
                resource = rest[i:]
                return resource if c == "/" else "/" + resource
        return "/"
    return target


class RequestParser(HeadParser[Request]):
    """
    Incremental parser of one HTTP/1.1 request head (and Hixie-76's key3):
    the server's side of L{HeadParser}, refusing with L{HandshakeError}.

    Bounded: a head longer than C{maxSize} bytes or with more than
    C{maxHeaders} fields is refused (431) before more is buffered; what
    cannot begin a request line is refused (400) as soon as it arrives.
    """

    line = REQUEST_LINE

    __slots__ = ("leftover",)

    def __init__(self, maxSize: int = 16384, maxHeaders: int = 100) -> None:
        super().__init__(maxSize, maxHeaders)
        #: The bytes that followed the request (the first frames).
        self.leftover = b""

    def feed(self, data: bytes) -> Request | None:
        """
        Add C{data}; return the request once it is complete, else C{None}.

        After the request, any further bytes are in L{leftover}.

        @raise HandshakeError: the request is malformed or too large.
        """
        request = HeadParser.feed(self, data)
        if request is None:
            return None
        buf = self.buffer
        if "sec-websocket-key1" in request.headers and (
            "sec-websocket-version" not in request.headers
        ):
            # Hixie-76: the 8-byte key3 follows the head.
            if len(buf) < 8:
                return None
            request.body = bytes(buf[:8])
            del buf[:8]
        self.leftover = bytes(buf)
        buf.clear()
        return request

    def started(self, line: re.Match[str]) -> None:
        if not line[3].startswith("HTTP/1."):
            raise HandshakeError(
                HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
                "HTTP/1.1 is required for a WebSocket upgrade",
            )

    def build(self, line: re.Match[str], headers: Headers) -> Request:
        return Request(line[1], line[2], line[3], headers)

    def exception(self, problem: Problem, message: str) -> HandshakeError:
        if problem is Problem.TOO_LARGE or problem is Problem.TOO_MANY_FIELDS:
            return HandshakeError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, message)
        return HandshakeError(400, message)


@dataclass
class Accepted:
    """
    A successful negotiation.

    @ivar family: the protocol family (L{HIXIE76}, L{HYBI07}, ...).
    @ivar response: the bytes to send back (head, and Hixie-76's answer).
    @ivar subprotocol: the negotiated subprotocol, or C{None}.
    @ivar extensions: the C{Sec-WebSocket-Extensions} answer, or C{None}.
    @ivar status: the answer's status: 101 on HTTP/1.1, 200 for an HTTP/2
        extended CONNECT (RFC 8441), whose C{response} is C{b""}: the
        layer below sends C{status} and C{headers} in a HEADERS frame.
    @ivar headers: the answer's header fields besides the status, lower
        case (HTTP/2 only).
    """

    family: str
    response: bytes
    subprotocol: str | None
    extensions: str | None = None
    status: int = 101
    headers: tuple[tuple[str, str], ...] = ()


def acceptKey(key: str | bytes) -> str:
    """
    The C{Sec-WebSocket-Accept} value for a C{Sec-WebSocket-Key}.
    """
    if isinstance(key, str):
        key = key.encode("ascii")
    return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode("ascii")


def _hixieKeyNumber(key: str) -> int:
    """
    The 32-bit number a Hixie-76 key stands for (its digits divided by its
    count of spaces).

    @raise HandshakeError: 400 for a key that is too long, has no digits
        or spaces, or whose number is not a multiple of its spaces or does
        not fit 32 bits.
    """
    if len(key) > MAX_HIXIE_KEY_LENGTH:
        raise HandshakeError(
            400, "Sec-WebSocket-Key1/Key2 longer than %d characters" % MAX_HIXIE_KEY_LENGTH
        )
    digits = "".join(c for c in key if "0" <= c <= "9")
    spaces = key.count(" ")
    if not digits or spaces == 0 or len(digits.lstrip("0")) > _MAX_HIXIE_KEY_DIGITS:
        raise HandshakeError(400, "Malformed Sec-WebSocket-Key1/Key2")
    number = int(digits)
    if number % spaces or number // spaces > 0xFFFFFFFF:
        raise HandshakeError(400, "Malformed Sec-WebSocket-Key1/Key2")
    return number // spaces


def hixie76Answer(key1: str, key2: str, key3: bytes) -> bytes:
    """
    The 16-byte MD5 challenge answer of draft-hixie-76 (section 5.2).
    """
    challenge = struct.pack(">II", _hixieKeyNumber(key1), _hixieKeyNumber(key2))
    return hashlib.md5(challenge + key3).digest()


def chooseSubprotocol(
    request: Request, supported: Sequence[str]
) -> str | None:
    """
    The first subprotocol the client offered that we support (the client's
    order states its preference).
    """
    if not supported:
        return None
    offered = request.headers.getAll("sec-websocket-protocol")
    for value in offered:
        for item in value.split(","):
            item = item.strip()
            if item in supported:
                return item
    return None


def _statusLine(status: int, reasonPhrase: str) -> str:
    return f"HTTP/1.1 {status} {reasonPhrase}\r\n"


def negotiate(
    request: Request,
    subprotocols: Sequence[str] = (),
    secure: bool = False,
    families: Sequence[str] = (RFC6455, HYBI08, HYBI07, HIXIE76),
    extensions: Callable[[Request], str | None] | None = None,
) -> Accepted:
    """
    Validate an upgrade request and build the answer for its protocol family.

    @param secure: the connection is TLS (Hixie-76's location is C{wss:}).
    @param families: the families this server accepts.
    @param extensions: for the HyBi/RFC 6455 families, given the valid
        request, returns the C{Sec-WebSocket-Extensions} answer (or C{None}
        for none); it may raise L{HandshakeError}.
    @raise HandshakeError: with the status and reason to answer.
    """
    if request.httpVersion == HTTP2:
        return _negotiateExtendedConnect(request, subprotocols, families, extensions)
    headers = request.headers
    if request.method != "GET":
        raise HandshakeError(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "A WebSocket upgrade must use GET",
            [("Allow", "GET")],
        )
    if request.httpVersion != "HTTP/1.1":
        raise HandshakeError(
            HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
            "HTTP/1.1 is required for a WebSocket upgrade",
        )
    if not request.isUpgrade:
        raise HandshakeError(
            400, "Not a WebSocket upgrade request (no 'Upgrade: websocket')"
        )
    if "upgrade" not in headers.tokens("connection"):
        raise HandshakeError(400, "Missing 'Connection: Upgrade'")
    if not headers.get("host") or len(headers.getAll("host")) != 1:
        # RFC 9112 3.2: exactly one Host field, else 400.
        raise HandshakeError(400, "Missing or repeated Host header")
    family = request.protocolFamily
    if family is None or family not in families:
        if family is None and "sec-websocket-version" not in headers:
            raise HandshakeError(400, "Missing Sec-WebSocket-Version")
        versions = ", ".join(
            v for v, name in VERSIONS.items() if name in families
        )
        raise HandshakeError(
            HTTPStatus.UPGRADE_REQUIRED,
            "Unsupported WebSocket version",
            [("Sec-WebSocket-Version", versions or SUPPORTED_VERSIONS_HEADER)],
        )
    subprotocol = chooseSubprotocol(request, subprotocols)
    if family == HIXIE76:
        return _negotiateHixie76(request, subprotocol, secure)
    key = headers.get("sec-websocket-key")
    if key is None or len(headers.getAll("sec-websocket-key")) != 1:
        raise HandshakeError(400, "Missing or repeated Sec-WebSocket-Key")
    key = key.strip()
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(
            400, "Sec-WebSocket-Key must be 16 bytes in base64"
        )
    lines = [
        _statusLine(101, "Switching Protocols"),
        "Upgrade: websocket\r\n",
        "Connection: Upgrade\r\n",
        f"Sec-WebSocket-Accept: {acceptKey(key)}\r\n",
    ]
    if subprotocol is not None:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}\r\n")
    extension = extensions(request) if extensions is not None else None
    if extension is not None:
        lines.append(f"Sec-WebSocket-Extensions: {extension}\r\n")
    lines.append("\r\n")
    return Accepted(family, "".join(lines).encode("latin-1"), subprotocol, extension)


#: The C{httpVersion} of a request that came as an HTTP/2 stream.
HTTP2 = "HTTP/2"


def requestFromHTTP2(fields: Sequence[tuple[bytes | str, bytes | str]]) -> Request:
    """
    A L{Request} from the header block of an HTTP/2 request (as h2 gives
    it: pseudo-header fields first): C{:method}, C{:path} (the target),
    C{:protocol}; C{:authority} becomes the C{Host} field (RFC 9113
    8.3.1), unless one came too. Values are read as Latin-1, as the
    HTTP/1.1 parser reads them.
    """
    method = target = ""
    protocol = authority = None
    regular: list[tuple[str, str]] = []
    for rawName, rawValue in fields:
        name = rawName.decode("latin-1") if isinstance(rawName, bytes) else rawName
        value = rawValue.decode("latin-1") if isinstance(rawValue, bytes) else rawValue
        if not name.startswith(":"):
            regular.append((name, value))
        elif name == ":method":
            method = value
        elif name == ":path":
            target = value
        elif name == ":protocol":
            protocol = value
        elif name == ":authority":
            authority = value
    if authority is not None and not any(name.lower() == "host" for name, _ in regular):
        regular.insert(0, ("host", authority))
    return Request(method, target or "/", HTTP2, Headers(regular), protocol=protocol)


def _negotiateExtendedConnect(
    request: Request,
    subprotocols: Sequence[str],
    families: Sequence[str],
    extensions: Callable[[Request], str | None] | None,
) -> Accepted:
    """
    RFC 8441 section 5: a WebSocket over an HTTP/2 stream is opened by a
    C{CONNECT} with C{:protocol: websocket}; no C{Upgrade}, C{Connection}
    or C{Sec-WebSocket-Key/Accept}; C{Sec-WebSocket-Version},
    C{-Protocol} and C{-Extensions} as in RFC 6455; the answer is 200.
    """
    headers = request.headers
    if request.method != "CONNECT":
        raise HandshakeError(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "A WebSocket over HTTP/2 is opened with an extended CONNECT",
            [("Allow", "CONNECT")],
        )
    if (request.protocol or "").lower() != "websocket":
        raise HandshakeError(
            HTTPStatus.NOT_IMPLEMENTED, f"Unsupported :protocol {request.protocol!r}"
        )
    if RFC6455 not in families:
        raise HandshakeError(HTTPStatus.NOT_IMPLEMENTED, "RFC 6455 WebSockets are turned off")
    version = headers.get("sec-websocket-version")
    if version is None or version.strip() != "13":
        # No 426 in HTTP/2 (it has no Upgrade): 400, naming the version.
        raise HandshakeError(
            400, "Unsupported or missing Sec-WebSocket-Version", [("Sec-WebSocket-Version", "13")]
        )
    if not headers.get("host"):
        raise HandshakeError(400, "Missing :authority")
    subprotocol = chooseSubprotocol(request, subprotocols)
    fields: list[tuple[str, str]] = []
    if subprotocol is not None:
        fields.append(("sec-websocket-protocol", subprotocol))
    extension = extensions(request) if extensions is not None else None
    if extension is not None:
        fields.append(("sec-websocket-extensions", extension))
    return Accepted(RFC6455, b"", subprotocol, extension, 200, tuple(fields))


def _negotiateHixie76(
    request: Request, subprotocol: str | None, secure: bool
) -> Accepted:
    headers = request.headers
    key1 = headers.get("sec-websocket-key1")
    key2 = headers.get("sec-websocket-key2")
    if key1 is None or key2 is None or len(request.body) != 8:
        raise HandshakeError(400, "Hixie-76 needs Sec-WebSocket-Key1/Key2 and key3")
    answer = hixie76Answer(key1, key2, request.body)
    host = headers.get("host") or ""
    scheme = "wss" if secure else "ws"
    lines = [
        _statusLine(101, "WebSocket Protocol Handshake"),
        "Upgrade: WebSocket\r\n",
        "Connection: Upgrade\r\n",
    ]
    origin = headers.get("origin")
    if origin is not None:
        lines.append(f"Sec-WebSocket-Origin: {origin}\r\n")
    lines.append(
        f"Sec-WebSocket-Location: {scheme}://{host}{_resourceName(request.target)}\r\n"
    )
    if subprotocol is not None:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}\r\n")
    lines.append("\r\n")
    return Accepted(
        HIXIE76, "".join(lines).encode("latin-1") + answer, subprotocol
    )


def httpResponse(
    status: int,
    body: bytes | str = b"",
    headers: Sequence[tuple[str, str]] = (),
    contentType: str = "text/plain; charset=utf-8",
) -> bytes:
    """
    A complete, self-delimited HTTP/1.1 response that ends the connection.
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    lines = [_statusLine(status, phrase)]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers)
    lines.append(f"Content-Type: {contentType}\r\n")
    lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("Connection: close\r\n\r\n")
    return "".join(lines).encode("latin-1") + body


def responseHead(status: int, headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """
    An HTTP/1.1 response head: the status line, C{headers}, the blank line.
    """
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    lines = [_statusLine(status, phrase)]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers)
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def errorResponse(error: HandshakeError) -> bytes:
    """
    The HTTP answer to a refused handshake.
    """
    return httpResponse(error.status, error.reason + "\n", error.headers)


# -- The client ----------------------------------------------------------------

#: The default port of each scheme.
DEFAULT_PORTS: dict[str, int] = {"ws": 80, "wss": 443}

#: C{version=} spellings, to (protocol family, C{Sec-WebSocket-Version}):
#: the numbers and names of L{VERSIONS}, and Hixie-76's.
_CLIENT_VERSIONS: dict[str, tuple[str, str | None]] = {
    **{number: (family, number) for number, family in VERSIONS.items()},
    **{family: (family, number) for number, family in VERSIONS.items()},
    HIXIE76: (HIXIE76, None),
    "hixie76": (HIXIE76, None),
    "76": (HIXIE76, None),
}

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

#: Connection-specific fields HTTP/2 forbids (RFC 9113 8.2.2), besides
#: those the handshake owns.
_HTTP2_FORBIDDEN_HEADERS = frozenset(("keep-alive", "proxy-connection", "te"))

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
    if FORBIDDEN_CHARS.search(url) or any(c in url for c in " \t"):
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
    found = _CLIENT_VERSIONS.get(str(version).strip().lower())
    if found is None:
        raise ValueError(
            f"Unsupported WebSocket version {version!r}: use 13, 8, 7 or 'hixie-76'"
        )
    return found


@dataclass
class Response:
    """
    A server's accepted answer.

    @ivar family: the protocol family spoken from now on.
    @ivar status: 101 (HTTP/2: the 2xx C{:status}, 200).
    @ivar reasonPhrase: the status line's reason phrase (empty over HTTP/2).
    @ivar headers: the response headers.
    @ivar subprotocol: the subprotocol the server chose, or C{None}.
    @ivar extensions: the C{Sec-WebSocket-Extensions} answer, or C{None}.
    @ivar compression: the permessage-deflate agreement as the server names
        it (C{.agreement("client")} is the client's view, for
        L{deflate.Deflater} and L{deflate.Inflater}), or C{None}.
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


def _hixieKey(rand: random.Random) -> str:
    """
    One Sec-WebSocket-Key1/Key2 (draft-76 section 4.1, steps 17-26).
    """
    spaces = rand.randint(1, 12)
    number = rand.randint(0, 0xFFFFFFFF // spaces)
    key = list(str(number * spaces))
    for _ in range(rand.randint(1, 12)):
        key.insert(rand.randint(0, len(key)), rand.choice(_HIXIE_NOISE))
    for _ in range(spaces):
        # Never first or last.
        key.insert(rand.randint(1, len(key) - 1), " ")
    return "".join(key)


def _validateHeaders(fields: Sequence[tuple[str, str]]) -> None:
    for name, value in fields:
        if not isToken(name):
            raise ValueError(f"Invalid header name {name!r}")
        if FORBIDDEN_CHARS.search(value):
            raise ValueError(f"Invalid characters in the value of header {name!r}")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(
                f"{name} is set by the handshake itself (use the client's options)"
            )


class ResponseParser(HeadParser[tuple[int, str, Headers]]):
    """
    Incremental parser of one HTTP/1.1 response head: the client's side of
    L{HeadParser}, reporting L{InvalidResponse} (with the status, once the
    status line was read).
    """

    line = STATUS_LINE

    __slots__ = ("status",)

    def __init__(self, maxSize: int = 16384, maxHeaders: int = 100) -> None:
        super().__init__(maxSize, maxHeaders)
        #: The status, once the status line was read.
        self.status: int | None = None

    def started(self, line: re.Match[str]) -> None:
        self.status = int(line[2])

    def build(self, line: re.Match[str], headers: Headers) -> tuple[int, str, Headers]:
        return int(line[2]), line[3] or "", headers

    def exception(self, problem: Problem, message: str) -> InvalidResponse:
        return InvalidResponse(message, self.status)


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
    @param http2: open the socket as an HTTP/2 extended CONNECT stream (RFC
        8441, version 13 only): L{headerBlock} is the request's header
        block to send on a new stream (L{data} is empty),
        L{receiveHeaders} takes the response's header block (C{:status}
        200 accepts) and L{receive} the body of a refusal.
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
        http2: bool = False,
    ) -> None:
        self.url = url if isinstance(url, URL) else parseURL(url)
        self.family, self.version = normalizeVersion(version)
        #: Is this an HTTP/2 extended CONNECT (RFC 8441)?
        self.http2 = http2
        #: The HTTP/2 request's header block (pseudo-header fields first),
        #: names in lower case; empty for HTTP/1.1.
        self.headerBlock: list[tuple[str, str]] = []
        # An HTTP/2 answer: its (status, "", headers) and a refusal's body.
        self._h2head: tuple[int, str, Headers] | None = None
        self._h2body = bytearray()
        if http2 and self.family != RFC6455:
            raise ValueError("WebSockets over HTTP/2 are RFC 6455 only (version 13)")
        self.subprotocols = tuple(subprotocols)
        for proto in self.subprotocols:
            if not isToken(proto):
                raise ValueError(f"Invalid subprotocol {proto!r}")
        extra = list(headers.items() if isinstance(headers, Mapping) else headers)
        _validateHeaders(extra)
        if origin is not None and FORBIDDEN_CHARS.search(origin):
            raise ValueError("Invalid characters in the origin")
        self.compression = compression if self.family != HIXIE76 else None
        self.maxResponseSize = maxResponseSize
        self.maxHeaders = maxHeaders
        self.maxBodySize = maxBodySize
        self._parser = ResponseParser(maxResponseSize, maxHeaders)
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
            key1 = _hixieKey(rand)
            key2 = _hixieKey(rand)
            self.body = bytes(rand.getrandbits(8) for _ in range(8))
            self._expected = hixie76Answer(key1, key2, self.body)
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
        if http2:
            self._http2Request(target, fields)
            return
        #: The request as sent (C{request.headers}, C{request.cookies} ...).
        self.request = Request("GET", target, "HTTP/1.1", Headers(fields), self.body)
        head = f"GET {target} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields)
        #: The bytes to send: the request head (and Hixie-76's key3).
        self.data = (head + "\r\n").encode("latin-1") + self.body

    def _http2Request(self, target: str, fields: list[tuple[str, str]]) -> None:
        """
        RFC 8441 section 4: the request as an extended CONNECT. The fields
        built for HTTP/1.1 lose what HTTP/2 has no use for (C{Upgrade},
        C{Connection}, the key); C{Host} becomes C{:authority}.
        """
        authority = self.url.hostHeader
        regular: list[tuple[str, str]] = []
        for name, value in fields:
            lower = name.lower()
            if lower in ("upgrade", "connection", "sec-websocket-key"):
                continue
            if lower in _HTTP2_FORBIDDEN_HEADERS:
                raise ValueError(f"{name} is not allowed in an HTTP/2 request")
            if lower == "host":
                authority = value
                continue
            regular.append((lower, value))
        self.key = ""
        self._expected = b""
        self.headerBlock = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "https" if self.url.secure else "http"),
            (":path", target),
            (":authority", authority),
            *regular,
        ]
        self.request = Request(
            "CONNECT", target, HTTP2, Headers([("host", authority), *regular]), protocol="websocket"
        )
        self.data = b""

    def receiveHeaders(self, fields: Sequence[tuple[bytes | str, bytes | str]]) -> Response | None:
        """
        An HTTP/2 handshake's: the response's header block (as h2 gives
        it). Returns the L{Response} when the server accepted (C{:status}
        2xx, RFC 8441 section 5); for a refusal, C{None} while its body is
        still to come through L{receive} (or the stream's end,
        L{connectionLost}).

        @raise InvalidStatus: a refusal without a body.
        @raise InvalidResponse: no valid C{:status}, or the subprotocol or
            extensions do not match the request.
        """
        if self._done or not self.http2 or self._h2head is not None:
            raise ValueError("Not waiting for an HTTP/2 response")
        status = ""
        regular: list[tuple[str, str]] = []
        for rawName, rawValue in fields:
            name = rawName.decode("latin-1") if isinstance(rawName, bytes) else rawName
            value = rawValue.decode("latin-1") if isinstance(rawValue, bytes) else rawValue
            if name == ":status":
                status = value
            elif not name.startswith(":"):
                regular.append((name, value))
        headers = Headers(regular)
        if len(status) != 3 or not status.isdigit():
            raise self._end(InvalidResponse(f"Invalid :status {status!r}", None, headers))
        code = int(status)
        self._h2head = (code, "", headers)
        if 200 <= code < 300:
            self._done = True
            return self._negotiated(code, "", headers)
        if (headers.get("content-length") or "").strip() == "0":
            raise self._end(self._refusal())
        return None

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
        if self.http2:
            self._refusalBody(data)
            return None
        parser = self._parser
        try:
            head = parser.feed(data)
        except InvalidResponse as e:
            raise self._end(e) from None
        if head is None:
            return None
        buf = parser.buffer
        status, phrase, headers = head
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

    def _refusalBody(self, data: bytes) -> None:
        head = self._h2head
        if head is None:
            raise ValueError("An HTTP/2 response starts with its header block")
        body = self._h2body
        body += data[: max(0, self.maxBodySize - len(body))]
        length = head[2].get("content-length", "") or ""
        if (
            0 < len(length) <= 20
            and length.isascii()
            and length.isdigit()
            and len(body) >= min(int(length), self.maxBodySize)
        ):
            raise self._end(self._refusal())

    @property
    def _head(self) -> tuple[int, str, Headers] | None:
        return self._h2head if self.http2 else self._parser.head

    @property
    def received(self) -> bool:
        """
        Has any of the server's answer arrived?
        """
        return self._head is not None or bool(self._parser.buffer)

    def connectionLost(self) -> HandshakeFailed:
        """
        The error to report when the connection ends before the answer is
        complete.
        """
        self._done = True
        head = self._head
        if head is not None and (head[0] != 101 if not self.http2 else not 200 <= head[0] < 300):
            return self._refusal()
        if self.http2 and head is None:
            return InvalidResponse("The stream ended before the server answered")
        if self.received:
            return InvalidResponse("The connection closed in the middle of the server's answer")
        return InvalidResponse("The connection closed before the server answered")

    def _end(self, error: HandshakeFailed) -> HandshakeFailed:
        self._done = True
        self._parser.buffer.clear()
        return error

    def _refusal(self) -> InvalidStatus:
        head = self._head
        assert head is not None
        status, phrase, headers = head
        body = bytes((self._h2body if self.http2 else self._parser.buffer)[: self.maxBodySize])
        what = "extended CONNECT" if self.http2 else "upgrade"
        reason = f"The server refused the WebSocket {what}: {status} {phrase}".rstrip()
        text = body.decode("utf-8", "replace").strip()
        if text and len(text) <= 200 and "<" not in text:
            reason += f" ({text})"
        return InvalidStatus(reason, status, headers, body)

    def _invalid(self, reason: str, headers: Headers) -> InvalidResponse:
        return InvalidResponse(reason, self._h2head[0] if self._h2head else 101, headers)

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
        return self._negotiated(101, phrase, headers)

    def _negotiated(self, status: int, phrase: str, headers: Headers) -> Response:
        """
        The subprotocol and extensions of an accepting answer, checked
        against the offer (the same for HTTP/1.1 and HTTP/2).
        """
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
            status,
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
