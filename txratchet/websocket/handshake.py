"""
The opening handshake, sans I/O: parse an HTTP upgrade request, pick the
WebSocket protocol family it asks for, and answer it.

Supported: draft-hixie-thewebsocketprotocol-76 (MD5 challenge),
HyBi-07 and HyBi-08..12 (C{Sec-WebSocket-Version} 7 and 8) and RFC 6455
(version 13). Everything here is pure: bytes in, values or bytes out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs

from txratchet.errors import HandshakeError as HandshakeError
from txratchet.websocket.http11 import Headers as Headers
from txratchet.websocket.http11 import parseCookies as parseCookies

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

HIXIE76 = "hixie-76"
HYBI07 = "hybi-07"
HYBI08 = "hybi-08"
RFC6455 = "rfc6455"

#: C{Sec-WebSocket-Version} values we speak, newest first, and their names.
VERSIONS: dict[str, str] = {"13": RFC6455, "8": HYBI08, "7": HYBI07}
SUPPORTED_VERSIONS_HEADER = "13, 8, 7"

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

#: RFC 9112 2.3: C{HTTP-version = "HTTP" "/" DIGIT "." DIGIT}.
_HTTP_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]")

#: RFC 9110 5.5: CR, LF and NUL are never allowed inside a field (nor in the
#: request line); a bare one could smuggle a header into a response that
#: echoes the value (Hixie-76's Origin and Location).
_FORBIDDEN_CHARS = re.compile("[\r\n\x00]")

#: A Hixie-76 key number is at most 2**32 - 1 times the count of spaces in a
#: head bounded to a few KB: more significant digits than this can never
#: make a valid key.
_MAX_HIXIE_KEY_DIGITS = 20

#: The draft's keys are at most 34 characters (10 digits, 12 spaces and 12
#: other characters); anything much longer is refused before its digits
#: are counted or converted (int() refuses strings of over 4,300 digits,
#: leading zeros included).
MAX_HIXIE_KEY_LENGTH = 128

#: The longest method accepted (the registered ones have at most 17
#: characters): a longer run of token characters is not an HTTP request.
MAX_METHOD_LENGTH = 32

_TOKEN_CLASS = b"[" + b"".join(re.escape(c.encode()) for c in sorted(_TOKEN_CHARS)) + b"]"

#: RFC 9112 3: C{method SP request-target SP HTTP-version}, where the
#: target may hold anything but space, CR, LF and NUL (what L{RequestParser}
#: accepts in a complete head).
_REQUEST_LINE = re.compile(
    _TOKEN_CLASS + rb"{1,%d} [^ \r\n\x00]+ HTTP/[0-9]\.[0-9]" % MAX_METHOD_LENGTH
)

#: Every prefix of a valid request line (its CR included): what the first
#: bytes of a request must match while its line is still arriving.
_REQUEST_LINE_START = re.compile(
    _TOKEN_CLASS
    + rb"{1,%d}(?: (?:[^ \r\n\x00]+(?: (?:H(?:T(?:T(?:P(?:/(?:[0-9](?:\.(?:[0-9]\r?)?)?)?)?)?)?)?)?)?)?)?"
    % MAX_METHOD_LENGTH
)

#: The prefix of a request line is checked on every read until it is this
#: long, then each time the buffer doubles (linear cost for slow clients).
_LINE_CHECK_ALWAYS = 256


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
    """

    method: str
    target: str
    httpVersion: str
    headers: Headers
    body: bytes = b""
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


def isRequestLineStart(data: bytes) -> bool:
    """
    Can C{data} (what arrived of a request line, without its line end) be
    the start of a valid request line, C{method SP target SP HTTP/x.y}?
    """
    return _REQUEST_LINE_START.fullmatch(data) is not None


class RequestParser:
    """
    Incremental parser of one HTTP/1.1 request head (and Hixie-76's key3).

    Bounded: a head longer than C{maxSize} bytes or with more than
    C{maxHeaders} fields is refused (431) before more is buffered.
    """

    def __init__(self, maxSize: int = 16384, maxHeaders: int = 100) -> None:
        self.maxSize = maxSize
        self.maxHeaders = maxHeaders
        self._buffer = bytearray()
        self._request: Request | None = None
        # How much of the request line was found a valid prefix (-1: the
        # whole line arrived and is valid).
        self._lineChecked = 0
        self.leftover = b""

    def feed(self, data: bytes) -> Request | None:
        """
        Add C{data}; return the request once it is complete, else C{None}.

        After the request, any further bytes are in L{leftover}.

        @raise HandshakeError: the request is malformed or too large.
        """
        buf = self._buffer
        start = max(0, len(buf) - 3)
        buf += data
        if self._request is None:
            end = buf.find(b"\r\n\r\n", start)
            if end < 0:
                if self._lineChecked >= 0 and buf:
                    self._checkRequestLine(buf)
                if len(buf) > self.maxSize:
                    raise HandshakeError(
                        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                        "Request head larger than %d bytes" % self.maxSize,
                    )
                if buf.count(b"\r\n") > self.maxHeaders + 1:
                    raise HandshakeError(
                        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                        "More than %d header fields" % self.maxHeaders,
                    )
                return None
            if end + 4 > self.maxSize:
                raise HandshakeError(
                    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "Request head larger than %d bytes" % self.maxSize,
                )
            self._request = self._parseHead(bytes(buf[:end]))
            del buf[: end + 4]
        request = self._request
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

    def _checkRequestLine(self, buf: bytearray) -> None:
        """
        Refuse at once what cannot become a valid request line (binary
        noise, a TLS hello on a plain port, a line that starts with a space
        or has two in a row) instead of waiting for the rest of the head
        until the handshake times out.

        The line is checked whole once its CRLF arrived; before that, what
        arrived must be the start of one (checked on every read while it is
        short, then each time it doubles: linear in its length).
        """
        eol = buf.find(b"\r\n")
        if eol >= 0:
            if _REQUEST_LINE.fullmatch(buf, 0, eol) is None:
                raise HandshakeError(400, "Malformed request line")
            self._lineChecked = -1
            return
        size = len(buf)
        if size <= _LINE_CHECK_ALWAYS or size >= 2 * self._lineChecked:
            if _REQUEST_LINE_START.fullmatch(buf) is None:
                raise HandshakeError(400, "Not an HTTP request line")
            self._lineChecked = size

    def _parseHead(self, head: bytes) -> Request:
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes all
            raise HandshakeError(400, "Undecodable request head") from None
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        if (
            len(parts) != 3
            or not parts[0]
            or len(parts[0]) > MAX_METHOD_LENGTH
            or not parts[1]
            or not _TOKEN_CHARS.issuperset(parts[0])
            or _FORBIDDEN_CHARS.search(lines[0])
            or not _HTTP_VERSION.fullmatch(parts[2])
        ):
            raise HandshakeError(400, "Malformed request line")
        method, target, version = parts
        if not version.startswith("HTTP/1."):
            raise HandshakeError(
                HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
                "HTTP/1.1 is required for a WebSocket upgrade",
            )
        if len(lines) - 1 > self.maxHeaders:
            raise HandshakeError(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                "More than %d header fields" % self.maxHeaders,
            )
        fields: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t"):
                raise HandshakeError(400, "Obsolete header line folding")
            name, sep, value = line.partition(":")
            if (
                not sep
                or not name
                or not _TOKEN_CHARS.issuperset(name)
                or _FORBIDDEN_CHARS.search(value)
            ):
                raise HandshakeError(400, "Malformed header line: %r" % line[:80])
            fields.append((name, value.strip(" \t")))
        return Request(method, target, version, Headers(fields))


@dataclass
class Accepted:
    """
    A successful negotiation.

    @ivar family: the protocol family (L{HIXIE76}, L{HYBI07}, ...).
    @ivar response: the bytes to send back (head, and Hixie-76's answer).
    @ivar subprotocol: the negotiated subprotocol, or C{None}.
    @ivar extensions: the C{Sec-WebSocket-Extensions} answer, or C{None}.
    """

    family: str
    response: bytes
    subprotocol: str | None
    extensions: str | None = None


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


def errorResponse(error: HandshakeError) -> bytes:
    """
    The HTTP answer to a refused handshake.
    """
    return httpResponse(error.status, error.reason + "\n", error.headers)
