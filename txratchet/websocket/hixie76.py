"""
draft-hixie-thewebsocketprotocol-76 framing, sans I/O.

Text frames are C{0x00 <UTF-8> 0xFF}; the closing handshake is C{0xFF 0x00}.
Frames whose type byte has the high bit set carry a base-128 length; the
draft defines no such data frame, so they are skipped (bounded), except
C{0xFF 0x00}. The protocol has no binary messages.
"""

from __future__ import annotations

from dataclasses import dataclass

CLOSE_FRAME = b"\xff\x00"

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024


class BinaryNotSupported(TypeError):
    """
    Hixie-76 cannot carry binary messages; nothing was sent.
    """


def encodeText(text: str) -> bytes:
    """
    One text frame.
    """
    return b"\x00" + text.encode("utf-8") + b"\xff"


@dataclass(slots=True)
class ClosingFrame:
    """
    The peer sent C{0xFF 0x00}: it starts or answers the closing handshake.
    """


@dataclass(slots=True)
class Failed:
    """
    The peer broke the protocol (or a limit); close the connection.
    """

    reason: str


Event = str | ClosingFrame | Failed


class FrameReader:
    """
    Incremental reader of Hixie-76 frames: L{receive} returns C{str}
    messages, a L{ClosingFrame} or a final L{Failed}.
    """

    def __init__(self, maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.maxMessageSize = maxMessageSize
        self._buffer = bytearray()
        self._scanned = 0
        self._skip = 0
        self._done = False

    def receive(self, data: bytes) -> list[Event]:
        """
        Consume C{data}; return the events it completes.
        """
        events: list[Event] = []
        if self._done:
            return events
        buf = self._buffer
        buf += data
        pos = 0
        end = len(buf)
        while pos < end:
            if self._skip:
                take = min(self._skip, end - pos)
                self._skip -= take
                pos += take
                continue
            frameType = buf[pos]
            if frameType & 0x80:
                # A length-prefixed frame: base-128 length, high bit = more.
                length = 0
                i = pos + 1
                while i < end:
                    b = buf[i]
                    length = (length << 7) | (b & 0x7F)
                    i += 1
                    if not b & 0x80:
                        break
                    if length > self.maxMessageSize:
                        break
                else:
                    break  # the length is not complete yet
                if length > self.maxMessageSize:
                    events.append(Failed("Frame larger than the message limit"))
                    self._done = True
                    break
                if frameType == 0xFF and length == 0:
                    events.append(ClosingFrame())
                    self._done = True
                    pos = i
                    break
                pos = i
                self._skip = length
                continue
            # A sentinel-delimited frame: find the 0xFF, scanning new bytes only.
            stop = buf.find(b"\xff", max(pos + 1, self._scanned))
            if stop < 0:
                self._scanned = end
                if end - pos - 1 > self.maxMessageSize:
                    events.append(Failed("Message larger than the limit"))
                    self._done = True
                break
            self._scanned = 0
            if stop - pos - 1 > self.maxMessageSize:
                events.append(Failed("Message larger than the limit"))
                self._done = True
                break
            if frameType == 0x00:
                try:
                    events.append(buf[pos + 1 : stop].decode("utf-8"))
                except UnicodeDecodeError:
                    events.append(Failed("Invalid UTF-8 in a text frame"))
                    self._done = True
                    break
            pos = stop + 1
        if pos:
            del buf[:pos]
            if self._scanned:
                self._scanned -= pos
        return events
