"""
HTTP/1.1 heads, sans I/O: one incremental parser for request heads (the
server's side of the opening handshake) and response heads (the client's),
with its bounds and checks; header fields, tokens and cookies.

The parser knows the grammar; what a problem is called, and which error
carries it, is the caller's (a server answers 400/431, a client reports an
invalid response): see L{HeadParser.error}.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

#: RFC 9110 5.6.2: the characters of a token (methods, field names,
#: subprotocols, extension names, cookie names).
TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

#: RFC 9110 5.5: CR, LF and NUL are never allowed inside a field (nor in a
#: start line); a bare one could smuggle a header into a response that
#: echoes the value (Hixie-76's Origin and Location).
FORBIDDEN_CHARS = re.compile("[\r\n\x00]")


def isToken(text: str) -> bool:
    """
    Is C{text} a non-empty token (RFC 9110 5.6.2)?
    """
    return bool(text) and TOKEN_CHARS.issuperset(text)


class Headers:
    """
    HTTP header fields in arrival order, looked up case-insensitively.
    """

    __slots__ = ("_indexed", "_list", "_packed")

    def __init__(self, fields: Sequence[tuple[str, str]] = ()) -> None:
        self._list: list[tuple[str, str]] | None = list(fields)
        self._packed = ""
        self._indexed: dict[str, list[str]] | None = None

    @property
    def _fields(self) -> list[tuple[str, str]]:
        fields = self._list
        if fields is None:
            fields = self._list = [
                (name, value)
                for name, _, value in (
                    line.partition(":") for line in self._packed.split("\n")
                )
            ]
            self._packed = ""
        return fields

    @property
    def _index(self) -> dict[str, list[str]]:
        index = self._indexed
        if index is None:
            index = self._indexed = {}
            for name, value in self._fields:
                index.setdefault(name.lower(), []).append(value)
        return index

    def compact(self) -> None:
        """
        Keep the fields as one string until they are next read: an open
        connection holds its request headers at a fraction of the cost of
        a list of pairs and a lookup index (both come back on demand).
        """
        self._indexed = None
        fields = self._list
        if not fields or any(
            ":" in name or "\n" in name or "\n" in value for name, value in fields
        ):
            return  # empty, or not safely packable: kept as they are
        self._packed = "\n".join([f"{name}:{value}" for name, value in fields])
        self._list = None

    def get(self, name: str, default: str | None = None) -> str | None:
        """
        All values of C{name} joined by C{", "} (RFC 9110 5.3), or
        C{default}.
        """
        values = self._index.get(name.lower())
        if not values:
            return default
        return ", ".join(values)

    def getAll(self, name: str) -> list[str]:
        """
        Every value of C{name}, one per field line.
        """
        return list(self._index.get(name.lower(), ()))

    def tokens(self, name: str) -> list[str]:
        """
        The comma-separated, lower-cased tokens of C{name}.
        """
        return [
            t.strip().lower()
            for value in self._index.get(name.lower(), ())
            for t in value.split(",")
            if t.strip()
        ]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"


def _cookiePairs(pairs: Iterable[str]) -> Iterator[tuple[str, str]]:
    """
    The C{name=value} pairs among C{pairs}, values unquoted; malformed
    pairs are skipped (RFC 6265 5.2 and 5.4 are lenient).
    """
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if sep and name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            yield name, value


def parseCookies(headers: Headers) -> dict[str, str]:
    """
    Parse every C{Cookie} header of a request leniently (RFC 6265 5.4):
    malformed pairs are skipped, never fatal; the first occurrence of a
    name wins.
    """
    cookies: dict[str, str] = {}
    for value in headers.getAll("cookie"):
        for name, val in _cookiePairs(value.split(";")):
            cookies.setdefault(name, val)
    return cookies


def parseSetCookies(headers: Headers) -> dict[str, str]:
    """
    The name and value of every C{Set-Cookie} of a response (attributes
    ignored; the last one of a name wins, as a cookie jar would keep it).
    """
    return dict(
        _cookiePairs(value.split(";", 1)[0] for value in headers.getAll("set-cookie"))
    )


def cookieHeader(cookies: Mapping[str, str] | Sequence[tuple[str, str]] | str) -> str:
    """
    The C{Cookie} header value a client sends for C{cookies} (RFC 6265
    4.2.1).

    @raise ValueError: a name that is not a token, or a value with
        characters a cookie cannot carry.
    """
    if isinstance(cookies, str):
        if FORBIDDEN_CHARS.search(cookies):
            raise ValueError("Invalid characters in the Cookie header")
        return cookies.strip()
    pairs = cookies.items() if isinstance(cookies, Mapping) else cookies
    out = []
    for name, value in pairs:
        if not isToken(name):
            raise ValueError(f"Invalid cookie name {name!r}")
        if any(c in value for c in ';,"\\') or any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in value):
            raise ValueError(f"Invalid characters in the value of cookie {name!r}")
        out.append(f"{name}={value}")
    return "; ".join(out)


# -- Start lines ---------------------------------------------------------------


def everyPrefix(*atoms: bytes) -> re.Pattern[bytes]:
    """
    A pattern that fully matches every prefix of the concatenation of
    C{atoms}: what may arrive of a line before its end.

    Each atom must itself match every non-empty prefix of what it matches
    (a character class, C{X+}, C{XE{lb}1,nE{rb}}, an optional group).
    """
    pattern = b""
    for atom in reversed(atoms):
        pattern = atom + (b"(?:" + pattern + b")?" if pattern else b"")
    return re.compile(pattern)


@dataclass(frozen=True)
class StartLine:
    """
    The grammar of a head's first line.

    @ivar request: a request line (else a status line).
    @ivar whole: the line without its CRLF, with three groups.
    @ivar start: every prefix of the line, its CR included.
    @ivar text: L{whole} for the decoded (latin-1) line.
    """

    request: bool
    whole: re.Pattern[bytes]
    start: re.Pattern[bytes]
    text: re.Pattern[str]


def startLine(request: bool, whole: bytes, *atoms: bytes) -> StartLine:
    return StartLine(
        request, re.compile(whole), everyPrefix(*atoms), re.compile(whole.decode("latin-1"))
    )


#: The longest method accepted (the registered ones have at most 17
#: characters): a longer run of token characters is not an HTTP request.
MAX_METHOD_LENGTH = 32

_METHOD = (
    b"["
    + b"".join(re.escape(c.encode()) for c in sorted(TOKEN_CHARS))
    + b"]{1,%d}" % MAX_METHOD_LENGTH
)
_TARGET = rb"[^ \r\n\x00]+"
_DIGIT = b"[0-9]"

#: RFC 9112 3: C{method SP request-target SP HTTP-version}, where the
#: target may hold anything but space, CR, LF and NUL.
REQUEST_LINE = startLine(
    True,
    rb"(%s) (%s) (HTTP/[0-9]\.[0-9])" % (_METHOD, _TARGET),
    _METHOD, b" ", _TARGET, b" ", b"H", b"T", b"T", b"P", b"/", _DIGIT, rb"\.", _DIGIT, b"\r",
)

#: RFC 9112 4: C{HTTP-version SP status-code [ SP reason-phrase ]}, HTTP/1
#: only (an upgrade is HTTP/1.1's); the reason has no CR, LF or NUL.
STATUS_LINE = startLine(
    False,
    rb"(HTTP/1\.[0-9]) ([0-9]{3})(?: ([^\r\n\x00]*))?",
    b"H", b"T", b"T", b"P", b"/", b"1", rb"\.", _DIGIT, b" ", _DIGIT, _DIGIT, _DIGIT,
    rb"(?: [^\r\n\x00]*)?", b"\r",
)


def isRequestLineStart(data: bytes) -> bool:
    """
    Can C{data} (what arrived of a request line, without its line end) be
    the start of a valid request line, C{method SP target SP HTTP/x.y}?
    """
    return REQUEST_LINE.start.fullmatch(data) is not None


# -- Heads ---------------------------------------------------------------------


class Problem(enum.Enum):
    """
    What is wrong with a head, and what a server's refusal of a request
    and a client's error about a response call it (C{%}-formats, see
    L{HeadParser.error}).
    """

    #: What arrived cannot begin a start line (noise, TLS, another protocol).
    NOT_HTTP = (
        "Not an HTTP request line",
        "The server's answer is not an HTTP/1.1 response: %(detail)r",
    )
    #: The start line arrived whole and is malformed.
    BAD_LINE = ("Malformed request line", "Malformed status line: %(detail)r")
    #: The head is longer than C{maxSize}.
    TOO_LARGE = (
        "Request head larger than %(maxSize)d bytes",
        "Response head larger than %(maxSize)d bytes",
    )
    #: More than C{maxHeaders} field lines.
    TOO_MANY_FIELDS = (
        "More than %(maxHeaders)d header fields",
        "More than %(maxHeaders)d header fields in the response",
    )
    #: A field line starts with white space (RFC 9112 5.2).
    FOLDED = ("Obsolete header line folding",) * 2
    #: A field line without a token name and a colon, or with CR, LF or NUL.
    BAD_FIELD = ("Malformed header line: %(detail)r",) * 2


#: The start line is checked on every read until it is this long, then
#: each time the buffer doubles (linear cost for slow peers).
_LINE_CHECK_ALWAYS = 256

HeadT = TypeVar("HeadT")


class HeadParser(Generic[HeadT]):
    """
    Incremental parser of one HTTP/1.1 head (start line and fields), for
    requests and responses alike; a subclass names the start line's
    grammar (L{line}), builds the head (L{build}) and makes the exception
    that reports a problem (L{exception}).

    Bounded: a head longer than C{maxSize} bytes or with more than
    C{maxHeaders} fields is refused before more is buffered, and what
    cannot begin the start line is refused as soon as it arrives, not
    after a timeout.

    @ivar head: the parsed head, once complete.
    @ivar buffer: the bytes after the head (a body, the first frames).
    """

    #: The grammar of the first line.
    line: ClassVar[StartLine]

    __slots__ = ("_lineChecked", "buffer", "head", "maxHeaders", "maxSize")

    def __init__(self, maxSize: int = 16384, maxHeaders: int = 100) -> None:
        self.maxSize = maxSize
        self.maxHeaders = maxHeaders
        self.buffer = bytearray()
        self.head: HeadT | None = None
        # How much of the start line was found a valid prefix (-1: the
        # whole line arrived and is valid).
        self._lineChecked = 0

    def feed(self, data: bytes) -> HeadT | None:
        """
        Add C{data}; return the head once it is complete, else C{None}.
        Bytes after the head (and any fed later) are in L{buffer}.

        @raise Exception: what L{error} makes of a malformed or too
            large head.
        """
        buf = self.buffer
        if self.head is not None:
            buf += data
            return self.head
        start = max(0, len(buf) - 3)
        buf += data
        end = buf.find(b"\r\n\r\n", start)
        if end < 0:
            if self._lineChecked >= 0 and buf:
                self._checkLine(buf)
            if len(buf) > self.maxSize:
                raise self.error(Problem.TOO_LARGE)
            if buf.count(b"\r\n") > self.maxHeaders + 1:
                raise self.error(Problem.TOO_MANY_FIELDS)
            return None
        if end + 4 > self.maxSize:
            raise self.error(Problem.TOO_LARGE)
        head = self.head = self._parse(bytes(buf[:end]))
        del buf[: end + 4]
        return head

    def _checkLine(self, buf: bytearray) -> None:
        """
        Refuse at once what cannot become a valid start line (binary noise,
        a TLS hello on a plain port, a line that starts with a space or has
        two in a row) instead of waiting for the rest of the head until the
        handshake times out.

        The line is checked whole once its CRLF arrived; before that, what
        arrived must be the start of one (checked on every read while it is
        short, then each time it doubles: linear in its length).
        """
        eol = buf.find(b"\r\n")
        if eol >= 0:
            match = self.line.whole.fullmatch(buf, 0, eol)
            if match is None:
                raise self.error(Problem.BAD_LINE, bytes(buf[:eol]).decode("latin-1")[:80])
            self._lineChecked = -1
            return
        size = len(buf)
        if size <= _LINE_CHECK_ALWAYS or size >= 2 * self._lineChecked:
            if self.line.start.fullmatch(buf) is None:
                raise self.error(Problem.NOT_HTTP, bytes(buf[:20]))
            self._lineChecked = size

    def _parse(self, head: bytes) -> HeadT:
        text = head.decode("latin-1")
        lines = text.split("\r\n")
        match = self.line.text.fullmatch(lines[0])
        if match is None:
            raise self.error(Problem.BAD_LINE, lines[0][:80])
        self.started(match)
        count = len(lines) - 1
        if count > self.maxHeaders:
            raise self.error(Problem.TOO_MANY_FIELDS)
        # No NUL, and every CR and LF in a line end: then no value needs
        # its own search (three scans of the head instead of one per field).
        clean = "\x00" not in text and text.count("\r") == count == text.count("\n")
        fields: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t"):
                raise self.error(Problem.FOLDED)
            name, sep, value = line.partition(":")
            if (
                not sep
                or not name
                or not TOKEN_CHARS.issuperset(name)
                or (not clean and FORBIDDEN_CHARS.search(value))
            ):
                raise self.error(Problem.BAD_FIELD, line[:80])
            fields.append((name, value.strip(" \t")))
        return self.build(match, Headers(fields))

    def started(self, line: re.Match[str]) -> None:
        """
        The start line is valid (its three parts are C{line}'s groups);
        raise to refuse it before the fields are read.
        """

    def build(self, line: re.Match[str], headers: Headers) -> HeadT:
        """
        The head made of its start line and fields.
        """
        raise NotImplementedError

    def error(self, problem: Problem, detail: object = None) -> Exception:
        """
        The exception to raise for C{problem}: L{exception} given what the
        problem is called on this side, formatted with C{maxSize},
        C{maxHeaders} and C{detail} (the offending line cut to 80 characters
        or, for L{Problem.NOT_HTTP}, the first 20 bytes).
        """
        message = problem.value[0 if self.line.request else 1] % {
            "maxSize": self.maxSize,
            "maxHeaders": self.maxHeaders,
            "detail": detail,
        }
        return self.exception(problem, message)

    def exception(self, problem: Problem, message: str) -> Exception:
        """
        The exception that reports C{problem} (a server's refusal, a
        client's invalid response).
        """
        raise NotImplementedError
