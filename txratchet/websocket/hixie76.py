"""
draft-hixie-thewebsocketprotocol-76 framing, sans I/O.

Text frames are C{0x00 <UTF-8> 0xFF}; the closing handshake is C{0xFF 0x00}.
Frames whose type byte has the high bit set carry a base-128 length; the
draft defines no such data frame, so they are skipped (bounded), except
C{0xFF 0x00}. The protocol has no binary messages.
"""

from __future__ import annotations

from collections.abc import Callable

from txratchet.errors import BinaryNotSupported as BinaryNotSupported
from txratchet.websocket.events import CloseReceived, FrameEvent
from txratchet.websocket.events import Failed as Failed

PROTOCOL_ERROR = 1002
INVALID_PAYLOAD = 1007
MESSAGE_TOO_BIG = 1009

CLOSE_FRAME = b"\xff\x00"

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024


def encodeText(text: str) -> bytes:
    """
    One text frame.
    """
    return b"\x00" + text.encode("utf-8") + b"\xff"


def ClosingFrame() -> CloseReceived:
    """
    The event for the closing frame C{0xFF 0x00}: a close without a code.
    """
    return CloseReceived(None, "")


Event = FrameEvent


# Reader states.
_FRAME_TYPE = 0  # waiting for a frame type byte
_LENGTH = 1  # reading the base-128 length of a length-prefixed frame
_SKIP = 2  # discarding the body of a length-prefixed frame
_TEXT = 3  # inside a sentinel-delimited frame, until 0xFF


class FrameReader:
    """
    Incremental reader of Hixie-76 frames: L{receive} returns C{str}
    messages, a L{CloseReceived} (without a code) or a final L{Failed}.

    Only the payload of the text frame in progress is buffered, and never
    more than C{maxMessageSize} bytes of it: an oversized frame fails as
    soon as its size is known to exceed the limit. Frames the draft says to
    discard (sentinel frames of a type other than 0x00, length-prefixed
    frames other than C{0xFF 0x00}) are skipped without buffering.
    """

    __slots__ = ("_buffer", "_done", "_frameType", "_length", "_skip", "_state", "maxMessageSize")

    def __init__(self, maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.maxMessageSize = maxMessageSize
        self._state = _FRAME_TYPE
        self._frameType = 0
        self._length = 0
        self._skip = 0
        self._buffer = bytearray()
        self._done = False

    def receive(self, data: bytes) -> list[Event]:
        """
        Consume C{data}; return the events it completes.
        """
        events: list[Event] = []
        if self._done:
            return events
        pos = 0
        end = len(data)
        while pos < end:
            state = self._state
            if state == _FRAME_TYPE:
                frameType = self._frameType = data[pos]
                pos += 1
                if frameType & 0x80:
                    self._state = _LENGTH
                    self._length = 0
                else:
                    self._state = _TEXT
                continue
            if state == _TEXT:
                stop = data.find(b"\xff", pos)
                piece = end if stop < 0 else stop
                if self._frameType == 0x00:
                    if len(self._buffer) + (piece - pos) > self.maxMessageSize:
                        events.append(Failed(MESSAGE_TOO_BIG, "Message larger than the limit"))
                        self._fail()
                        break
                    self._buffer += data[pos:piece]
                pos = piece
                if stop < 0:
                    break
                pos += 1
                self._state = _FRAME_TYPE
                if self._frameType == 0x00:
                    raw = self._buffer
                    self._buffer = bytearray()
                    try:
                        events.append(raw.decode("utf-8"))
                    except UnicodeDecodeError:
                        events.append(Failed(INVALID_PAYLOAD, "Invalid UTF-8 in a text frame"))
                        self._fail()
                        break
                continue
            if state == _LENGTH:
                # Base-128 digits, most significant first; high bit = more.
                b = data[pos]
                pos += 1
                length = self._length = (self._length << 7) | (b & 0x7F)
                if length > self.maxMessageSize:
                    events.append(Failed(MESSAGE_TOO_BIG, "Frame larger than the message limit"))
                    self._fail()
                    break
                if b & 0x80:
                    continue
                if self._frameType == 0xFF and length == 0:
                    events.append(CloseReceived(None, ""))
                    self._fail()
                    break
                self._skip = length
                self._state = _SKIP if length else _FRAME_TYPE
                continue
            # _SKIP
            take = min(self._skip, end - pos)
            self._skip -= take
            pos += take
            if not self._skip:
                self._state = _FRAME_TYPE
        return events

    def buffered(self) -> int:
        """
        The bytes held for the text frame in progress.
        """
        return len(self._buffer)

    def stop(self) -> None:
        """
        Ignore all further data and let go of the frame in progress.
        """
        self._fail()

    def _fail(self) -> None:
        """
        Stop reading (after a failure or the closing frame).
        """
        self._done = True
        self._buffer = bytearray()


class Codec:
    """
    Hixie-76 framing behind the interface every family's codec has (see
    L{txratchet.websocket.protocol.Codec}): text only, no ping, a closing
    frame without a code. Frames are the same both ways and for every
    connection: the last one is kept for broadcasts.
    """

    hasCloseCodes = False
    hasPing = False
    hasBinary = False

    __slots__ = ("_lastFrame", "_lastMessage", "framer")

    def __init__(self) -> None:
        self._lastMessage: object = None
        self._lastFrame: tuple[bytes, bytes] = (b"", b"")
        #: L{frame}, bound once: what every connection framing with this
        #: codec calls (a bound method per connection would cost 64 bytes).
        self.framer: Callable[[str | bytes], tuple[bytes, bytes]] = self.frame

    def reader(
        self, maxMessageSize: int, maxFrameSize: int | None, inflater: object
    ) -> FrameReader:
        """
        A reader of what the peer sends (the draft has no frame size of
        its own, nor compression).
        """
        return FrameReader(maxMessageSize)

    def frame(self, message: str | bytes) -> tuple[bytes, bytes]:
        """
        One text frame, as (frame, C{b""}).

        @raise BinaryNotSupported: for C{bytes}.
        """
        if message is self._lastMessage:
            return self._lastFrame
        if message.__class__ is not str:
            raise BinaryNotSupported("Hixie-76 connections cannot carry binary messages")
        frame = (encodeText(message), b"")
        self._lastMessage = message
        self._lastFrame = frame
        return frame

    def frameBytes(self, opcode: int, payload: bytes, rsv: int = 0) -> tuple[bytes, bytes]:
        """
        Not a thing in Hixie-76 (no opcodes, no compression).
        """
        raise BinaryNotSupported("Hixie-76 has no frames but text")

    def control(self, opcode: int, payload: bytes) -> bytes:
        """
        Hixie-76 has no control frames but the closing one: nothing.
        """
        return b""

    def close(self, code: int | None, reason: str) -> bytes:
        """
        The closing frame (the draft carries no code or reason).
        """
        return CLOSE_FRAME


CODEC = Codec()
