"""
permessage-deflate (RFC 7692), sans I/O: negotiation, and per-connection
compression and decompression with bounded memory.

Memory: a compressor costs about C{2**(windowBits + 2) + 2**(memLevel + 9)}
bytes and a decompressor about C{2**windowBits + 7 KiB} (zlib's own
figures). Both are created lazily, on the first message that needs them,
and dropped after each message when context takeover is off, so an idle
connection holds none.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from txratchet.errors import CorruptMessage as CorruptMessage
from txratchet.errors import MalformedExtensions as MalformedExtensions
from txratchet.errors import MessageTooBig as MessageTooBig

NAME = "permessage-deflate"

#: The four octets every sender strips from a compressed message (7.2.1).
TAIL = b"\x00\x00\xff\xff"

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def _token(text: str) -> str:
    text = text.strip()
    if not text or not _TOKEN_CHARS.issuperset(text):
        raise MalformedExtensions(f"not a token: {text!r}")
    return text


def _splitOutsideQuotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            current.append(ch)
            escaped = True
        elif ch == '"':
            current.append(ch)
            quoted = not quoted
        elif ch == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quoted:
        raise MalformedExtensions("unterminated quoted string")
    parts.append("".join(current))
    return parts


def parseExtensions(values: Sequence[str]) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """
    Parse C{Sec-WebSocket-Extensions} header values into offers:
    C{[(name, [(param, value or None), ...]), ...]}, in order.

    @raise MalformedExtensions: the header does not follow RFC 6455 9.1.
    """
    offers: list[tuple[str, list[tuple[str, str | None]]]] = []
    for value in values:
        for item in _splitOutsideQuotes(value, ","):
            if not item.strip():
                continue  # RFC 9110 list syntax tolerates empty elements
            pieces = _splitOutsideQuotes(item, ";")
            name = _token(pieces[0])
            params: list[tuple[str, str | None]] = []
            for piece in pieces[1:]:
                key, sep, raw = piece.partition("=")
                key = _token(key)
                if not sep:
                    params.append((key, None))
                    continue
                raw = raw.strip()
                if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                    # RFC 7230 quoted-pair: a backslash quotes the next character.
                    raw = _QUOTED_PAIR.sub(r"\1", raw[1:-1])
                    # RFC 6455 9.1: a quoted value must still be a token.
                params.append((key, _token(raw)))
            offers.append((name, params))
    return offers


@dataclass(frozen=True)
class DeflateParams:
    """
    The agreed parameters of one connection.

    @ivar serverNoContextTakeover: we reset our compressor after each message.
    @ivar clientNoContextTakeover: the client resets its compressor after
        each message, so our decompressor can be dropped between messages.
    @ivar serverMaxWindowBits: our compressor's window.
    @ivar clientMaxWindowBits: the client's window (bounds our decompressor).
    @ivar serverMaxWindowBitsOffered: the client offered
        C{server_max_window_bits}, so the response must carry it even at 15
        (RFC 7692 7.1.2.1: that is how a server accepts the parameter).
    """

    serverNoContextTakeover: bool
    clientNoContextTakeover: bool
    serverMaxWindowBits: int
    clientMaxWindowBits: int
    serverMaxWindowBitsOffered: bool = False

    def responseHeader(self) -> str:
        """
        The C{Sec-WebSocket-Extensions} value that accepts this agreement.
        """
        parts = [NAME]
        if self.serverNoContextTakeover:
            parts.append("server_no_context_takeover")
        if self.clientNoContextTakeover:
            parts.append("client_no_context_takeover")
        if self.serverMaxWindowBits < 15 or self.serverMaxWindowBitsOffered:
            parts.append(f"server_max_window_bits={self.serverMaxWindowBits}")
        if self.clientMaxWindowBits < 15:
            parts.append(f"client_max_window_bits={self.clientMaxWindowBits}")
        return "; ".join(parts)


def _windowBits(value: str | None) -> int | None:
    # Two ASCII digits at most (8..15): int() is never given thousands of
    # digits or a digit it cannot read (latin-1's superscripts).
    if value is None or not 0 < len(value) <= 2 or not value.isascii() or not value.isdigit():
        return None
    bits = int(value)
    return bits if 8 <= bits <= 15 and value == str(bits) else None


def checkSettings(level: int, memLevel: int, *windowBits: int | None) -> None:
    """
    Reject zlib settings that zlib or RFC 7692 would refuse later, when a
    configuration is made rather than when a peer first connects.

    @raise ValueError: a level outside 0-9 (or -1, zlib's default), a
        memLevel outside 1-9, or window bits outside 8-15 (C{None}: unset).
    """
    if not 0 <= level <= 9 and level != -1:
        raise ValueError("level must be 0-9")
    if not 1 <= memLevel <= 9:
        raise ValueError("memLevel must be 1-9")
    for bits in windowBits:
        if bits is not None and not 8 <= bits <= 15:
            raise ValueError("window bits must be 8-15")


@dataclass(frozen=True)
class PerMessageDeflate:
    """
    Server-side permessage-deflate configuration.

    @ivar level: zlib compression level (0-9).
    @ivar memLevel: zlib memLevel (1-9): compressor memory and speed.
    @ivar serverMaxWindowBits: the largest window we compress with (8-15);
        we announce it when it is below 15, which RFC 7692 allows.
    @ivar clientMaxWindowBits: the window we ask clients to compress with
        when they offer C{client_max_window_bits} (8-15); bounds our
        decompressor's memory (12, as websockets asks: a 4 KiB window
        instead of 32 KiB per connection). A client that does not offer it
        uses 15.
    @ivar serverNoContextTakeover: always reset our compressor per message.
    @ivar clientNoContextTakeover: ask clients to reset theirs per message.
    @ivar minSize: messages shorter than this are sent uncompressed.
    """

    level: int = 6
    memLevel: int = 5
    serverMaxWindowBits: int = 12
    clientMaxWindowBits: int = 12
    serverNoContextTakeover: bool = False
    clientNoContextTakeover: bool = False
    minSize: int = 32

    def __post_init__(self) -> None:
        checkSettings(
            self.level, self.memLevel, self.serverMaxWindowBits, self.clientMaxWindowBits
        )

    def accept(
        self, params: Sequence[tuple[str, str | None]], noContextTakeover: bool = False
    ) -> DeflateParams | None:
        """
        Accept one offer (RFC 7692 7.1), or decline it (C{None}): unknown
        or repeated parameters and invalid values decline the offer.

        @param noContextTakeover: ask for no context takeover both ways
            (to save memory when many connections are open).
        """
        seen: set[str] = set()
        serverNoTakeover = self.serverNoContextTakeover or noContextTakeover
        clientNoTakeover = self.clientNoContextTakeover or noContextTakeover
        serverBits = self.serverMaxWindowBits
        serverBitsOffered = False
        clientBits = 15
        for name, value in params:
            if name in seen:
                return None
            seen.add(name)
            if name == "server_no_context_takeover":
                if value is not None:
                    return None
                serverNoTakeover = True
            elif name == "client_no_context_takeover":
                if value is not None:
                    return None
                clientNoTakeover = True
            elif name == "server_max_window_bits":
                bits = _windowBits(value)
                if bits is None:
                    return None
                serverBits = min(serverBits, bits)
                serverBitsOffered = True
            elif name == "client_max_window_bits":
                if value is None:
                    # zlib-based clients cannot compress with a 256-byte
                    # window: 9 is the smallest worth asking for.
                    clientBits = max(self.clientMaxWindowBits, 9)
                else:
                    bits = _windowBits(value)
                    if bits is None:
                        return None
                    clientBits = min(bits, self.clientMaxWindowBits)
            else:
                return None
        return DeflateParams(
            serverNoTakeover, clientNoTakeover, serverBits, clientBits, serverBitsOffered
        )

    def negotiate(
        self, headerValues: Sequence[str], noContextTakeover: bool = False
    ) -> DeflateParams | None:
        """
        Pick the first acceptable permessage-deflate offer among the
        request's C{Sec-WebSocket-Extensions} values.

        @raise MalformedExtensions: the header does not parse.
        """
        for name, params in parseExtensions(headerValues):
            if name != NAME:
                continue
            accepted = self.accept(params, noContextTakeover)
            if accepted is not None:
                return accepted
        return None


class Deflater:
    """
    Compresses outgoing messages of one connection.
    """

    def __init__(self, config: PerMessageDeflate, params: DeflateParams) -> None:
        self._config = config
        self._params = params
        self._compressor: zlib._Compress | None = None

    def _new(self) -> zlib._Compress:
        bits = self._params.serverMaxWindowBits
        if bits == 8:
            # zlib cannot make raw DEFLATE with a 256-byte window; Huffman
            # coding alone uses no window at all, so any peer can inflate it.
            return zlib.compressobj(
                self._config.level, zlib.DEFLATED, -9, self._config.memLevel,
                zlib.Z_HUFFMAN_ONLY,
            )
        return zlib.compressobj(
            self._config.level, zlib.DEFLATED, -bits, self._config.memLevel
        )

    def compress(self, payload: bytes) -> bytes:
        """
        One message's compressed payload (RFC 7692 7.2.1: the trailing
        C{00 00 ff ff} removed).
        """
        compressor = self._compressor
        if compressor is None:
            compressor = self._new()
        data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if self._params.serverNoContextTakeover:
            self._compressor = None
        else:
            self._compressor = compressor
        if data.endswith(TAIL):
            return data[:-4]
        return data  # pragma: no cover - Z_SYNC_FLUSH always ends so


#: The most a single zlib call may inflate: a bomb is caught after at most
#: this much beyond the limit, and no call builds one huge temporary.
_INFLATE_STEP = 64 * 1024


class Inflater:
    """
    Decompresses incoming messages of one connection, never producing more
    than the size limit allows.
    """

    def __init__(self, params: DeflateParams, maxMessageSize: int) -> None:
        self._params = params
        self.maxMessageSize = maxMessageSize
        self._decompressor: zlib._Decompress | None = None
        self._size = 0
        # A DEFLATE stream ended (a block with BFINAL set) and nothing of
        # the next one has come yet.
        self._ended = False

    def feed(self, payload: bytes, final: bool) -> bytes:
        """
        Inflate the next piece of a compressed message; C{final} marks the
        message's last piece (the stripped tail is put back).

        @raise MessageTooBig: the message inflates beyond the limit.
        @raise CorruptMessage: the data is not valid DEFLATE.
        """
        data = payload + TAIL if final else payload
        pieces: list[bytes] = []
        while True:
            if self._ended:
                # A block with BFINAL set ended the DEFLATE stream (RFC 7692
                # 7.2.3.4). Our own appended tail alone closes the message;
                # anything the peer sent after it (the RFC's example sends
                # one more octet, the header of an empty stored block) is
                # inflated as a new stream.
                if not data or (final and data == TAIL):
                    break
                self._ended = False
            decompressor = self._decompressor
            if decompressor is None:
                decompressor = self._decompressor = zlib.decompressobj(
                    -self._params.clientMaxWindowBits
                )
            step = min(self.maxMessageSize - self._size + 1, _INFLATE_STEP)
            try:
                out = decompressor.decompress(data, step)
            except zlib.error as e:
                raise CorruptMessage(str(e)) from None
            self._size += len(out)
            if self._size > self.maxMessageSize:
                raise MessageTooBig()
            if out:
                pieces.append(out)
            if decompressor.eof:
                data = decompressor.unused_data
                self._decompressor = None
                self._ended = True
                continue
            data = decompressor.unconsumed_tail
            if not data and len(out) < step:
                # All input consumed and nothing more pending.
                break
        if final:
            self._size = 0
            self._ended = False
            if self._params.clientNoContextTakeover:
                self._decompressor = None
        if len(pieces) == 1:
            return pieces[0]
        return b"".join(pieces)
