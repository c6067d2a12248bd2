"""
HyBi-07..17 / RFC 6455 framing, sans I/O.

L{FrameReader} turns received bytes into whole messages and control events,
enforcing every MUST of RFC 6455 section 5 that applies to a server: client
frames are masked, reserved bits and opcodes fail the connection, control
frames are short and unfragmented, fragments are in order, text is UTF-8
(checked as soon as bytes arrive, even inside one frame), and sizes are
bounded before anything is buffered. The encoding functions build frames.
"""

from __future__ import annotations

import codecs
import importlib
import os
import struct
from collections.abc import Callable
from typing import cast

from txratchet.websocket import deflate
from txratchet.websocket.events import CloseReceived as CloseReceived
from txratchet.websocket.events import Failed as Failed
from txratchet.websocket.events import FrameEvent
from txratchet.websocket.events import Ping as Ping
from txratchet.websocket.events import Pong as Pong

CONTINUATION = 0x0
TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
PING = 0x9
PONG = 0xA

_DATA_OPCODES = frozenset((CONTINUATION, TEXT, BINARY))
_CONTROL_OPCODES = frozenset((CLOSE, PING, PONG))

NORMAL_CLOSURE = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
NO_STATUS_RECEIVED = 1005
ABNORMAL_CLOSURE = 1006
INVALID_PAYLOAD = 1007
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
MANDATORY_EXTENSION = 1010
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013

#: Codes an endpoint may put in a close frame (RFC 6455 7.4.1 and the IANA
#: registry: 1012-1014 were registered later; 1004-1006 and 1015 never go
#: on the wire).
_SENDABLE_CODES = frozenset(
    (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)
)

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024

_utf8Decoder = codecs.getincrementaldecoder("utf-8")
_pack2 = struct.Struct(">BB").pack
_pack4 = struct.Struct(">BBH").pack
_pack10 = struct.Struct(">BBQ").pack
_unpackH = struct.Struct(">H").unpack_from
_unpackQ = struct.Struct(">Q").unpack_from


def isValidCloseCode(code: int) -> bool:
    """
    May C{code} appear in a close frame (RFC 6455 7.4)?
    """
    return code in _SENDABLE_CODES or 3000 <= code <= 4999


#: XOR with one byte value is a byte translation: one table per value.
_XOR_TABLES = [bytes(i ^ k for i in range(256)) for k in range(256)]


def _loadAccelerator() -> Callable[[bytes | memoryview, bytes], bytes] | None:
    """
    A compiled masking routine from a well-kept library, when one is
    installed (optional: the pure-Python paths below are always there;
    C{TXRATCHET_PURE_PYTHON=1} in the environment turns it off).
    """
    if os.environ.get("TXRATCHET_PURE_PYTHON"):
        return None
    try:
        speedups = importlib.import_module("websockets.speedups")
    except ImportError:
        return None
    # It takes any buffer: a memoryview slice is unmasked without a copy.
    return cast(Callable[[bytes | memoryview, bytes], bytes], speedups.apply_mask)


_accelerated = _loadAccelerator()

#: For payloads of n < 126 bytes: the 4-byte key, read as an integer and
#: multiplied by C{_REPEAT[n]}, repeats itself over the payload; C{_LOW[n]}
#: cuts it to n bytes. Unmasking a small frame is then a few integer ops.
_REPEAT = [sum(1 << (32 * i) for i in range((n + 3) // 4)) for n in range(126)]
_LOW = [(1 << (8 * n)) - 1 for n in range(126)]
_fromBytes = int.from_bytes


def mask(data: bytes | memoryview, key: bytes, offset: int = 0) -> bytes:
    """
    XOR C{data} with the 4-byte masking C{key}, starting at byte C{offset}
    of the key stream (to continue a frame unmasked in pieces).

    Never byte by byte in Python: small payloads are XORed as two big
    integers, large ones as four strided byte translations (about 1 GB/s
    in pure Python); a compiled routine is used when one is installed.
    """
    n = len(data)
    if n == 0:
        return b""
    if n <= 64 and not offset:
        return (
            int.from_bytes(data, "little")
            ^ int.from_bytes((key * 16)[:n], "little")
        ).to_bytes(n, "little")
    offset &= 3
    if offset:
        key = key[offset:] + key[:offset]
    if _accelerated is not None and n > 256:
        return _accelerated(data, key)
    if n < 1024:
        stream = (key * ((n >> 2) + 1))[:n]
        return (
            int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")
        ).to_bytes(n, "little")
    raw = bytes(data)
    out = bytearray(raw)
    tables = _XOR_TABLES
    out[0::4] = raw[0::4].translate(tables[key[0]])
    out[1::4] = raw[1::4].translate(tables[key[1]])
    out[2::4] = raw[2::4].translate(tables[key[2]])
    out[3::4] = raw[3::4].translate(tables[key[3]])
    return bytes(out)


def frameHeader(opcode: int, length: int, fin: bool = True, rsv: int = 0) -> bytes:
    """
    The header of an unmasked frame (what a server sends).

    @param rsv: the RSV1-3 bits, already in place (C{0x40} is RSV1).
    """
    b0 = (0x80 if fin else 0) | rsv | opcode
    if length < 126:
        return _pack2(b0, length)
    if length < 0x10000:
        return _pack4(b0, 126, length)
    return _pack10(b0, 127, length)


def encodeFrame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    rsv: int = 0,
    maskKey: bytes | None = None,
) -> bytes:
    """
    A whole frame; masked with C{maskKey} when one is given (client side).
    """
    header = bytearray(frameHeader(opcode, len(payload), fin, rsv))
    if maskKey is None:
        return bytes(header) + payload
    header[1] |= 0x80
    return bytes(header) + maskKey + mask(payload, maskKey)


def closePayload(code: int | None = NORMAL_CLOSURE, reason: str = "") -> bytes:
    """
    The payload of a close frame; the reason is cut so the payload fits 125
    bytes without splitting a UTF-8 sequence.
    """
    if code is None:
        return b""
    raw = reason.encode("utf-8")
    if len(raw) > 123:
        raw = raw[:123].decode("utf-8", "ignore").encode("utf-8")
    return struct.pack(">H", code) + raw


Event = FrameEvent


class FrameReader:
    """
    Incremental reader of the frames a client sends to a server.

    Call L{receive} with every chunk of bytes; it returns the events they
    complete, in order: C{str} (a text message), C{bytes} (a binary message),
    L{Ping}, L{Pong}, L{CloseReceived}, or a final L{Failed}. After
    L{Failed} or L{CloseReceived} the reader ignores further data (RFC 6455
    7.1.7: nothing more is processed after a failure).

    @ivar maxMessageSize: the largest message accepted (bytes of payload);
        a frame that would make a message larger fails with 1009 as soon as
        its header arrives, before any of its payload is buffered.
    @ivar maxFrameSize: the largest data frame payload accepted (1009
        beyond), or C{None} for no limit besides C{maxMessageSize}.
    @ivar rejectMask: fail masked frames (a client reading a server).
    @ivar inflater: when permessage-deflate was agreed, decompresses
        messages whose first frame has RSV1 set; the size limit then
        applies to the inflated message, enforced while inflating.
    """

    __slots__ = (
        "_buffer",
        "_compressed",
        "_decoder",
        "_done",
        "_fin",
        "_inFrame",
        "_maskKey",
        "_maskOffset",
        "_messageOpcode",
        "_pending",
        "_remaining",
        "_single",
        "_size",
        "inflater",
        "maxFrameSize",
        "maxMessageSize",
        "rejectMask",
        "requireMask",
    )

    def __init__(
        self,
        maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE,
        requireMask: bool = True,
        maxFrameSize: int | None = None,
        inflater: deflate.Inflater | None = None,
        rejectMask: bool = False,
    ) -> None:
        self.maxMessageSize = maxMessageSize
        self.maxFrameSize = maxFrameSize
        self.inflater = inflater
        self.rejectMask = rejectMask
        self._compressed = False
        self.requireMask = requireMask
        self._pending = b""
        # Frame in progress (payload not fully consumed).
        self._inFrame = False
        self._fin = False
        self._remaining = 0
        self._maskKey: bytes | None = None
        self._maskOffset = 0
        # Message in progress.
        self._messageOpcode = -1
        self._single: str | bytes | None = None  # a message in one piece
        self._buffer: bytearray | None = None  # a message in several pieces
        self._size = 0
        self._decoder: codecs.IncrementalDecoder | None = None
        # Terminal states.
        self._done = False

    def receive(self, data: bytes) -> list[Event]:
        """
        Consume C{data}; return the events it completes.
        """
        events: list[Event] = []
        if self._done:
            return events
        if self._pending:
            data = self._pending + data
            self._pending = b""
        end = len(data)
        pos = 0
        smallLimit = min(125, self.maxMessageSize, self.maxFrameSize or 125)
        top = 0x80 + smallLimit
        fast = self.requireMask
        append = events.append
        view = memoryview(data)
        while True:
            if self._inFrame:
                avail = end - pos
                remaining = self._remaining
                if avail < remaining:
                    if avail == 0:
                        break
                    take = avail
                else:
                    take = remaining
                chunk = view[pos : pos + take]
                pos += take
                self._remaining = remaining - take
                key = self._maskKey
                if key is not None:
                    payload = mask(chunk, key, self._maskOffset)
                    self._maskOffset = (self._maskOffset + take) & 3
                else:
                    payload = bytes(chunk)
                if self._compressed:
                    inflated = self._inflate(payload)
                    if isinstance(inflated, Failed):
                        events.append(inflated)
                        self._fail()
                        break
                    payload = inflated
                failure = self._addPayload(payload)
                if failure is not None:
                    events.append(failure)
                    self._fail()
                    break
                if self._remaining:
                    break
                self._inFrame = False
                if self._fin:
                    message = self._finishMessage()
                    if message.__class__ is Failed:
                        events.append(message)
                        self._fail()
                        break
                    events.append(message)
                continue

            if fast and self._messageOpcode < 0:
                # A run of whole, small, masked text or binary frames (what
                # chatty peers send): the checks of the general path below,
                # folded into a few comparisons per frame.
                while end - pos >= 6:
                    b0 = data[pos]
                    b1 = data[pos + 1]
                    if b1 < 0x80 or b1 > top or (b0 != 0x81 and b0 != 0x82):
                        break
                    length = b1 - 0x80
                    start = pos + 6
                    stop = start + length
                    if stop > end:
                        break
                    pos = stop
                    payload = (
                        _fromBytes(data[start:stop], "little")
                        ^ _fromBytes(data[start - 4 : start], "little") * _REPEAT[length]
                        & _LOW[length]
                    ).to_bytes(length, "little")
                    if b0 == 0x82:
                        append(payload)
                        continue
                    try:
                        append(payload.decode("utf-8"))
                    except UnicodeDecodeError:
                        append(Failed(INVALID_PAYLOAD, "Invalid UTF-8 in a text message"))
                        self._fail()
                        return events
                if pos == end:
                    break

            # A new frame header.
            if end - pos < 2:
                break
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            headerSize = 2
            if length == 126:
                headerSize = 4
            elif length == 127:
                headerSize = 10
            masked = b1 & 0x80
            if masked:
                headerSize += 4
            if end - pos < headerSize:
                break
            if length == 126:
                length = _unpackH(data, pos + 2)[0]
            elif length == 127:
                length = _unpackQ(data, pos + 2)[0]
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            failure = self._checkHeader(b0, opcode, fin, masked, length)
            if failure is not None:
                events.append(failure)
                self._fail()
                break
            if opcode >= 8:
                # Control frames are small: wait until all of it is here.
                if end - pos < headerSize + length:
                    break
                start = pos + headerSize
                pos = start + length
                raw = view[start:pos]
                payload = (
                    mask(raw, data[start - 4 : start]) if masked else bytes(raw)
                )
                event = self._control(opcode, payload)
                events.append(event)
                if event.__class__ is Failed:
                    self._fail()
                    break
                if event.__class__ is CloseReceived:
                    self._fail()
                    break
                continue
            # A data frame.
            pos += headerSize
            self._maskKey = data[pos - 4 : pos] if masked else None
            self._maskOffset = 0
            self._fin = bool(fin)
            self._remaining = length
            self._inFrame = True
            if opcode != CONTINUATION:
                self._compressed = bool(b0 & 0x40)
                self._messageOpcode = opcode
                self._size = 0
                self._decoder = None
                self._single = None
                self._buffer = None
            self._size += length
            if length == 0:
                # Let the loop finish the (empty) frame.
                continue

        if pos < end and not self._done:
            # An incomplete header or control frame.
            self._pending = data[pos:]
        return events

    def buffered(self) -> int:
        """
        The bytes held for the message in progress: what a message that
        spans reads or fragments pins (a message read whole holds none).
        """
        buffer = self._buffer
        return 0 if buffer is None else len(buffer)

    def stop(self) -> None:
        """
        Ignore all further data and let go of the message in progress.
        """
        self._fail()

    def _fail(self) -> None:
        self._done = True
        # Nothing more is processed: what was held is garbage now.
        self._pending = b""
        self._buffer = None
        self._single = None
        self._decoder = None

    def _checkHeader(
        self, b0: int, opcode: int, fin: int, masked: int, length: int
    ) -> Failed | None:
        rsv = b0 & 0x70
        if rsv:
            if self.inflater is None or rsv != 0x40:
                return Failed(PROTOCOL_ERROR, "Reserved bits set without an extension")
            if opcode not in (TEXT, BINARY):
                return Failed(
                    PROTOCOL_ERROR,
                    "RSV1 set on a control frame"
                    if opcode >= 8
                    else "RSV1 set on a frame that does not start a message",
                )
        if opcode >= 8:
            if opcode not in _CONTROL_OPCODES:
                return Failed(PROTOCOL_ERROR, "Reserved control opcode %d" % opcode)
            if not fin:
                return Failed(PROTOCOL_ERROR, "Fragmented control frame")
            if length > 125:
                return Failed(PROTOCOL_ERROR, "Control frame payload over 125 bytes")
        elif opcode not in _DATA_OPCODES:
            return Failed(PROTOCOL_ERROR, "Reserved data opcode %d" % opcode)
        elif opcode == CONTINUATION:
            if self._messageOpcode < 0:
                return Failed(PROTOCOL_ERROR, "Continuation frame without a message")
        elif self._messageOpcode >= 0:
            return Failed(
                PROTOCOL_ERROR, "New data frame before the fragmented message ended"
            )
        if self.requireMask and not masked:
            return Failed(PROTOCOL_ERROR, "Client frame not masked")
        if self.rejectMask and masked:
            return Failed(PROTOCOL_ERROR, "Server frame masked")
        if length >> 63:
            return Failed(PROTOCOL_ERROR, "Payload length with the high bit set")
        if opcode < 8:
            if self.maxFrameSize is not None and length > self.maxFrameSize:
                return Failed(
                    MESSAGE_TOO_BIG, "Frame larger than %d bytes" % self.maxFrameSize
                )
            size = (self._size if opcode == CONTINUATION else 0) + length
            limit = self.maxMessageSize
            if self.inflater is not None and (
                self._compressed if opcode == CONTINUATION else b0 & 0x40
            ):
                # Incompressible data grows a little when deflated; the real
                # limit, on the inflated size, is enforced while inflating.
                limit += (limit >> 6) + 1024
            if size > limit:
                return Failed(
                    MESSAGE_TOO_BIG,
                    "Message larger than %d bytes" % self.maxMessageSize,
                )
        return None

    def _inflate(self, payload: bytes) -> bytes | Failed:
        inflater = self.inflater
        assert inflater is not None
        try:
            return inflater.feed(payload, self._fin and self._remaining == 0)
        except deflate.MessageTooBig:
            return Failed(
                MESSAGE_TOO_BIG,
                "Message inflates beyond %d bytes" % inflater.maxMessageSize,
            )
        except deflate.CorruptMessage as e:
            return Failed(INVALID_PAYLOAD, "Invalid compressed data: %s" % e)

    def _addPayload(self, payload: bytes) -> Failed | None:
        buffer = self._buffer
        if buffer is None and self._fin and self._remaining == 0:
            # The whole message in one piece (the common case): no copy.
            if self._messageOpcode != TEXT:
                self._single = payload
                return None
            try:
                self._single = payload.decode("utf-8")
            except UnicodeDecodeError:
                return Failed(INVALID_PAYLOAD, "Invalid UTF-8 in a text message")
            return None
        if buffer is None:
            # Pieces go into one bytearray: no per-fragment objects, so a
            # peer sending 1-byte fragments costs no more memory per byte.
            buffer = self._buffer = bytearray()
        if self._messageOpcode == TEXT:
            # Validate as the bytes arrive (fail fast); decode once at the end.
            decoder = self._decoder
            if payload.isascii() and (decoder is None or not decoder.getstate()[0]):
                buffer += payload  # valid as it is: no character was left open
                return None
            if decoder is None:
                decoder = self._decoder = _utf8Decoder("strict")
            try:
                decoder.decode(payload, False)
            except UnicodeDecodeError:
                return Failed(INVALID_PAYLOAD, "Invalid UTF-8 in a text message")
            pendingBytes = decoder.getstate()[0]
            if (
                len(pendingBytes) >= 2
                and pendingBytes[0] == 0xED
                and pendingBytes[1] >= 0xA0
            ):
                # CPython waits for the third byte; a surrogate is already sure.
                return Failed(INVALID_PAYLOAD, "Invalid UTF-8 in a text message")
        buffer += payload
        return None

    def _finishMessage(self) -> str | bytes | Failed:
        opcode = self._messageOpcode
        single = self._single
        buffer = self._buffer
        decoder = self._decoder
        self._messageOpcode = -1
        self._single = None
        self._buffer = None
        self._decoder = None
        self._size = 0
        if single is not None:
            return single
        if buffer is None:  # pragma: no cover - a finished message has a piece
            buffer = bytearray()
        if opcode == TEXT:
            if decoder is not None:
                try:
                    decoder.decode(b"", True)
                except UnicodeDecodeError:
                    return Failed(INVALID_PAYLOAD, "Invalid UTF-8 in a text message")
            return buffer.decode("utf-8")
        return bytes(buffer)

    def _control(self, opcode: int, payload: bytes) -> Event:
        if opcode == PING:
            return Ping(payload)
        if opcode == PONG:
            return Pong(payload)
        if not payload:
            return CloseReceived(None, "")
        if len(payload) == 1:
            return Failed(PROTOCOL_ERROR, "Close frame with a 1-byte payload")
        code = _unpackH(payload, 0)[0]
        if not isValidCloseCode(code):
            return Failed(PROTOCOL_ERROR, "Invalid close code %d" % code)
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            return Failed(INVALID_PAYLOAD, "Invalid UTF-8 in the close reason")
        return CloseReceived(code, reason)


#: Frames with payloads shorter than this are sent whole; longer payloads
#: go apart from their header, without a copy.
SMALL_FRAME = 4096

#: The headers of unfragmented, unmasked small frames, by payload length.
_TEXT_HEADERS = [frameHeader(TEXT, n) for n in range(126)]
_BINARY_HEADERS = [frameHeader(BINARY, n) for n in range(126)]


class Codec:
    """
    RFC 6455 framing (and HyBi-07/08, whose frames are the same) for one
    side, behind the interface every family's codec has (see
    L{txratchet.websocket.protocol.Codec}).

    A server's frames are unmasked, so the same bytes can go to every
    connection: L{frame} keeps the last message it framed and frames a
    broadcast once. A client masks every frame with a fresh key.
    """

    hasCloseCodes = True
    hasPing = True
    hasBinary = True

    __slots__ = ("_lastFrame", "_lastMessage", "framer", "masks")

    def __init__(self, masks: bool) -> None:
        self.masks = masks
        self._lastMessage: object = None
        self._lastFrame: tuple[bytes, bytes] = (b"", b"")
        #: L{frame}, bound once: what every connection framing with this
        #: codec calls (a bound method per connection would cost 64 bytes).
        self.framer: Callable[[str | bytes], tuple[bytes, bytes]] = self.frame

    def reader(
        self,
        maxMessageSize: int,
        maxFrameSize: int | None,
        inflater: deflate.Inflater | None,
    ) -> FrameReader:
        """
        A reader of what the peer sends: a server requires masked frames, a
        client refuses them (RFC 6455 5.1).
        """
        return FrameReader(
            maxMessageSize,
            requireMask=not self.masks,
            rejectMask=self.masks,
            maxFrameSize=maxFrameSize,
            inflater=inflater,
        )

    def frame(self, message: str | bytes) -> tuple[bytes, bytes]:
        """
        A whole message in one frame, as (header, payload): a small frame
        is whole in the header (the payload is C{b""}); a large payload is
        not copied into the header, so it is written without a join.
        """
        if self.masks:
            if message.__class__ is str:
                return self.frameBytes(TEXT, message.encode("utf-8"))
            return self.frameBytes(BINARY, message)  # type: ignore[arg-type]
        if message is self._lastMessage:
            return self._lastFrame
        if message.__class__ is str:
            payload = message.encode("utf-8")
            headers = _TEXT_HEADERS
            opcode = TEXT
        else:
            payload = message  # type: ignore[assignment]
            headers = _BINARY_HEADERS
            opcode = BINARY
        n = len(payload)
        header = headers[n] if n < 126 else frameHeader(opcode, n)
        # A small frame whole, joined once for every connection it goes to
        # (a broadcast's); a large payload apart, never copied.
        frame = (header + payload, b"") if n < SMALL_FRAME else (header, payload)
        self._lastMessage = message
        self._lastFrame = frame
        return frame

    def frameBytes(self, opcode: int, payload: bytes, rsv: int = 0) -> tuple[bytes, bytes]:
        """
        One whole frame of C{opcode} (masked by a client), as (header,
        payload).
        """
        header = frameHeader(opcode, len(payload), True, rsv)
        if not self.masks:
            return (header + payload, b"") if len(payload) < SMALL_FRAME else (header, payload)
        key = os.urandom(4)
        if len(payload) < SMALL_FRAME:
            return header[:1] + bytes((header[1] | 0x80,)) + header[2:] + key + mask(payload, key), b""
        return header[:1] + bytes((header[1] | 0x80,)) + header[2:] + key, mask(payload, key)

    def control(self, opcode: int, payload: bytes) -> bytes:
        """
        A control frame (close, ping, pong), whole.
        """
        header, rest = self.frameBytes(opcode, payload)
        return header + rest

    def close(self, code: int | None, reason: str) -> bytes:
        """
        A close frame with C{code} (none when C{None}) and C{reason}.
        """
        return self.control(CLOSE, closePayload(code, reason))


#: The codecs of each side (a server's caches the last frame: shared, a
#: broadcast is framed once whichever connection frames it first).
SERVER_CODEC = Codec(masks=False)
CLIENT_CODEC = Codec(masks=True)
