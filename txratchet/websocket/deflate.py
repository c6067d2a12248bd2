"""
permessage-deflate (RFC 7692), sans I/O, for both sides: the server's
configuration (L{PerMessageDeflate}) and the client's offer
(L{DeflateOffer}) negotiate L{DeflateParams}, named as on the wire
(C{server_*}, C{client_*}); L{DeflateParams.agreement} turns them into the
L{Agreement} of one side, named I{local} (our compressor) and I{remote} (the
peer's compressor, so our decompressor), which L{Deflater} and L{Inflater}
take.

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
from dataclasses import dataclass, fields
from typing import Literal, Protocol

from txratchet.errors import CorruptMessage as CorruptMessage
from txratchet.errors import MalformedExtensions as MalformedExtensions
from txratchet.errors import MessageTooBig as MessageTooBig
from txratchet.websocket.http11 import isToken

NAME = "permessage-deflate"

#: The four octets every sender strips from a compressed message (7.2.1).
TAIL = b"\x00\x00\xff\xff"

_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def _token(text: str) -> str:
    text = text.strip()
    if not isToken(text):
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


#: Which end of the connection an L{Agreement} is for.
Side = Literal["server", "client"]


@dataclass(frozen=True, slots=True)
class Agreement:
    """
    The agreed parameters as one end uses them: I{local} is our compressor,
    I{remote} the peer's compressor, which our decompressor follows.

    @ivar localNoContextTakeover: we reset our compressor after each message.
    @ivar localMaxWindowBits: our compressor's window (8-15).
    @ivar remoteNoContextTakeover: the peer resets its compressor after each
        message, so our decompressor can be dropped between messages.
    @ivar remoteMaxWindowBits: the peer's window (bounds our decompressor).
    """

    localNoContextTakeover: bool
    localMaxWindowBits: int
    remoteNoContextTakeover: bool
    remoteMaxWindowBits: int


@dataclass(frozen=True)
class DeflateParams:
    """
    The agreed parameters of one connection, named as on the wire (what
    C{conn.compression} shows on both sides): the C{server*} fields are the
    server's compressor, the C{client*} fields the client's.

    @ivar serverNoContextTakeover: the server resets its compressor after
        each message.
    @ivar clientNoContextTakeover: the client resets its compressor after
        each message.
    @ivar serverMaxWindowBits: the server's compressor's window.
    @ivar clientMaxWindowBits: the client's compressor's window.
    @ivar serverMaxWindowBitsOffered: the client offered
        C{server_max_window_bits}, so the response must carry it even at 15
        (RFC 7692 7.1.2.1: that is how a server accepts the parameter).
    """

    serverNoContextTakeover: bool
    clientNoContextTakeover: bool
    serverMaxWindowBits: int
    clientMaxWindowBits: int
    serverMaxWindowBitsOffered: bool = False

    def agreement(self, side: Side) -> Agreement:
        """
        These parameters as C{side} (C{"server"} or C{"client"}) uses them.
        """
        server = (self.serverNoContextTakeover, self.serverMaxWindowBits)
        client = (self.clientNoContextTakeover, self.clientMaxWindowBits)
        if side == "server":
            return Agreement(*server, *client)
        if side == "client":
            return Agreement(*client, *server)
        raise ValueError(f"side must be 'server' or 'client', not {side!r}")

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


_NO_TAKEOVER = ("server_no_context_takeover", "client_no_context_takeover")
_WINDOW_BITS = ("server_max_window_bits", "client_max_window_bits")


def _parameters(
    params: Sequence[tuple[str, str | None]], valueless: str = ""
) -> dict[str, int | None]:
    """
    Check the parameters of one offer or answer (RFC 7692 7.1): each of the
    four known ones at most once, the C{*_no_context_takeover} ones without
    a value, the C{*_max_window_bits} ones with 8-15 (C{valueless} names
    the one that may come without: C{client_max_window_bits} in an offer).

    @return: C{{name: window bits, or None}} for each parameter given.
    @raise ValueError: an unknown, repeated or invalid parameter.
    """
    found: dict[str, int | None] = {}
    for name, value in params:
        if name in found:
            raise ValueError(f"repeated parameter {name}")
        if name in _NO_TAKEOVER:
            if value is not None:
                raise ValueError(f"{name} takes no value")
            found[name] = None
        elif name in _WINDOW_BITS:
            if value is None and name == valueless:
                found[name] = None
                continue
            bits = _windowBits(value)
            if bits is None:
                raise ValueError(f"invalid {name}={value}")
            found[name] = bits
        else:
            raise ValueError(f"unknown parameter {name}")
    return found


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
class _Settings:
    """
    What both sides' configurations share: our compressor's zlib level and
    memLevel, checked with their window bits (every C{*MaxWindowBits}
    field) when the configuration is made.
    """

    level: int = 6
    memLevel: int = 8

    def __post_init__(self) -> None:
        checkSettings(
            self.level,
            self.memLevel,
            *(getattr(self, f.name) for f in fields(self) if f.name.endswith("MaxWindowBits")),
        )


@dataclass(frozen=True)
class PerMessageDeflate(_Settings):
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

    memLevel: int = 5
    serverMaxWindowBits: int = 12
    clientMaxWindowBits: int = 12
    serverNoContextTakeover: bool = False
    clientNoContextTakeover: bool = False
    minSize: int = 32

    def accept(
        self, params: Sequence[tuple[str, str | None]], noContextTakeover: bool = False
    ) -> DeflateParams | None:
        """
        Accept one offer (RFC 7692 7.1), or decline it (C{None}): unknown
        or repeated parameters and invalid values decline the offer.

        @param noContextTakeover: ask for no context takeover both ways
            (to save memory when many connections are open).
        """
        try:
            offered = _parameters(params, valueless="client_max_window_bits")
        except ValueError:
            return None
        serverBits = self.serverMaxWindowBits
        asked = offered.get("server_max_window_bits")
        if asked is not None:
            serverBits = min(serverBits, asked)
        clientBits = 15
        if "client_max_window_bits" in offered:
            allowed = offered["client_max_window_bits"]
            if allowed is None:
                # zlib-based clients cannot compress with a 256-byte
                # window: 9 is the smallest worth asking for.
                clientBits = max(self.clientMaxWindowBits, 9)
            else:
                clientBits = min(allowed, self.clientMaxWindowBits)
        return DeflateParams(
            self.serverNoContextTakeover
            or noContextTakeover
            or "server_no_context_takeover" in offered,
            self.clientNoContextTakeover
            or noContextTakeover
            or "client_no_context_takeover" in offered,
            serverBits,
            clientBits,
            "server_max_window_bits" in offered,
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


@dataclass(frozen=True)
class DeflateOffer(_Settings):
    """
    Client-side permessage-deflate configuration: what to offer, how to
    compress, and the check of the server's answer.

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

    clientMaxWindowBits: int = 15
    serverMaxWindowBits: int | None = None
    clientNoContextTakeover: bool = False
    serverNoContextTakeover: bool = False
    minSize: int = 32

    def header(self) -> str:
        """
        The C{Sec-WebSocket-Extensions} offer.
        """
        parts = [NAME]
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

    def accept(self, params: Sequence[tuple[str, str | None]]) -> DeflateParams:
        """
        Check the server's answer to this offer (RFC 7692 7.1).

        @return: the agreement as the server names it (for the client's own
            view: C{.agreement("client")}).
        @raise ValueError: an unknown, repeated or invalid parameter, or one
            that does not answer the offer.
        """
        answered = _parameters(params)
        serverBits = answered.get("server_max_window_bits")
        clientBits = answered.get("client_max_window_bits")
        if serverBits is not None and self.serverMaxWindowBits is not None and (
            serverBits > self.serverMaxWindowBits
        ):
            raise ValueError(f"server_max_window_bits={serverBits} is larger than offered")
        if clientBits is not None and clientBits > self.clientMaxWindowBits:
            raise ValueError(f"client_max_window_bits={clientBits} is larger than offered")
        serverNoTakeover = "server_no_context_takeover" in answered
        if self.serverNoContextTakeover and not serverNoTakeover:
            raise ValueError("server_no_context_takeover was asked for and not granted")
        if self.serverMaxWindowBits is not None and serverBits is None:
            raise ValueError("server_max_window_bits was asked for and not granted")
        return DeflateParams(
            serverNoTakeover,
            self.clientNoContextTakeover or "client_no_context_takeover" in answered,
            15 if serverBits is None else serverBits,
            self.clientMaxWindowBits if clientBits is None else clientBits,
            serverBits is not None,
        )


#: The default offer: what browsers offer.
DEFAULT_OFFER = DeflateOffer()


class CompressorSettings(Protocol):
    """
    What L{Deflater} reads of a configuration: L{PerMessageDeflate} on a
    server, L{DeflateOffer} on a client.
    """

    @property
    def level(self) -> int: ...

    @property
    def memLevel(self) -> int: ...


class Deflater:
    """
    Compresses outgoing messages of one connection: our compressor follows
    the agreement's I{local} parameters.
    """

    __slots__ = ("_agreement", "_compressor", "_level", "_memLevel")

    def __init__(self, config: CompressorSettings, agreement: Agreement) -> None:
        self._level = config.level
        self._memLevel = config.memLevel
        self._agreement = agreement
        self._compressor: zlib._Compress | None = None

    def _new(self) -> zlib._Compress:
        bits = self._agreement.localMaxWindowBits
        if bits == 8:
            # zlib cannot make raw DEFLATE with a 256-byte window; Huffman
            # coding alone uses no window at all, so any peer can inflate it.
            return zlib.compressobj(
                self._level, zlib.DEFLATED, -9, self._memLevel, zlib.Z_HUFFMAN_ONLY
            )
        return zlib.compressobj(self._level, zlib.DEFLATED, -bits, self._memLevel)

    def compress(self, payload: bytes) -> bytes:
        """
        One message's compressed payload (RFC 7692 7.2.1: the trailing
        C{00 00 ff ff} removed).
        """
        compressor = self._compressor
        if compressor is None:
            compressor = self._new()
        data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if self._agreement.localNoContextTakeover:
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
    Decompresses incoming messages of one connection (following the
    agreement's I{remote} parameters), never producing more than the size
    limit allows.
    """

    __slots__ = ("_agreement", "_decompressor", "_ended", "_size", "maxMessageSize")

    def __init__(self, agreement: Agreement, maxMessageSize: int) -> None:
        self._agreement = agreement
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
                    -self._agreement.remoteMaxWindowBits
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
            if self._agreement.remoteNoContextTakeover:
                self._decompressor = None
        if len(pieces) == 1:
            return pieces[0]
        return b"".join(pieces)
