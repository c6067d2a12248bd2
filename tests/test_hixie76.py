"""
Tests for L{txratchet.websocket.hixie76}, derived from
draft-hixie-thewebsocketprotocol-76 section 4.2 / 5.3 (data framing).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txratchet.websocket.hixie76 import (
    CLOSE_FRAME,
    DEFAULT_MAX_MESSAGE_SIZE,
    BinaryNotSupported,
    ClosingFrame,
    Event,
    Failed,
    FrameReader,
    encodeText,
)


def feed(reader: FrameReader, chunks: Iterable[bytes]) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events += reader.receive(chunk)
    return events


def chop(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted(set(cuts))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def base128(n: int) -> bytes:
    """
    A length as the draft writes it: base 128, most significant digit
    first, the high bit set on every digit but the last.
    """
    digits = [n & 0x7F]
    n >>= 7
    while n:
        digits.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(digits))


def textFrame(s: str | bytes) -> bytes:
    raw = s.encode("utf-8") if isinstance(s, str) else s
    return b"\x00" + raw + b"\xff"


def lengthFrame(frameType: int, body: bytes) -> bytes:
    return bytes([frameType]) + base128(len(body)) + body


class TextFrameTests(SynchronousTestCase):
    """
    Sentinel-delimited frames: 0x00, UTF-8, 0xFF.
    """

    def test_one(self) -> None:
        self.assertEqual(FrameReader().receive(b"\x00hello\xff"), ["hello"])

    def test_empty(self) -> None:
        self.assertEqual(FrameReader().receive(b"\x00\xff"), [""])

    def test_everySplit(self) -> None:
        for s in ("hello", "\u03ba\u1f79\u03c3\u03bc\u03b5", "a\U0001f600b", ""):
            wire = textFrame(s)
            for i in range(len(wire) + 1):
                reader = FrameReader()
                first = reader.receive(wire[:i])
                second = reader.receive(wire[i:])
                self.assertEqual(first + second, [s], (s, i))
                if i < len(wire):
                    self.assertEqual(first, [])

    def test_byteByByte(self) -> None:
        wire = textFrame("h\u00e9llo") + textFrame("x")
        reader = FrameReader()
        events = feed(reader, [wire[i : i + 1] for i in range(len(wire))])
        self.assertEqual(events, ["h\u00e9llo", "x"])

    def test_severalInOneChunk(self) -> None:
        wire = textFrame("a") + textFrame("") + textFrame("\u20ac") + textFrame("b")
        self.assertEqual(FrameReader().receive(wire), ["a", "", "\u20ac", "b"])

    def test_severalSplitEverywhere(self) -> None:
        wire = textFrame("ab") + textFrame("\u00e9") + textFrame("cd")
        for i in range(len(wire) + 1):
            for j in range(i, len(wire) + 1):
                reader = FrameReader()
                self.assertEqual(
                    feed(reader, [wire[:i], wire[i:j], wire[j:]]), ["ab", "\u00e9", "cd"]
                )

    def test_controlCharactersAndNul(self) -> None:
        """
        Only 0xFF ends a frame; 0x00 inside is data.
        """
        self.assertEqual(FrameReader().receive(b"\x00a\x00b\n\xff"), ["a\x00b\n"])

    def test_otherSentinelTypesDiscarded(self) -> None:
        """
        A frame type without the high bit other than 0x00: the data is read
        up to 0xFF and discarded, not decoded.
        """
        wire = b"\x01junk\xff" + b"\x7f\xfe\xed\xa0\x80\xff" + textFrame("ok")
        self.assertEqual(FrameReader().receive(wire), ["ok"])
        for i in range(len(wire) + 1):
            self.assertEqual(feed(FrameReader(), [wire[:i], wire[i:]]), ["ok"])

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.text(max_size=20), max_size=6), st.data())
    def test_randomChunking(self, messages: list[str], data: st.DataObject) -> None:
        try:
            wire = b"".join(encodeText(m) for m in messages)
        except UnicodeEncodeError:  # lone surrogates are not text
            return
        cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=10))
        self.assertEqual(feed(FrameReader(), chop(wire, cuts)), messages)


class ClosingFrameTests(SynchronousTestCase):
    """
    0xFF 0x00 starts (or answers) the closing handshake.
    """

    def test_close(self) -> None:
        self.assertEqual(CLOSE_FRAME, b"\xff\x00")
        self.assertEqual(FrameReader().receive(b"\xff\x00"), [ClosingFrame()])

    def test_split(self) -> None:
        reader = FrameReader()
        self.assertEqual(reader.receive(b"\xff"), [])
        self.assertEqual(reader.receive(b"\x00"), [ClosingFrame()])

    def test_afterMessages(self) -> None:
        wire = textFrame("a") + textFrame("b") + CLOSE_FRAME
        for i in range(len(wire) + 1):
            reader = FrameReader()
            self.assertEqual(feed(reader, [wire[:i], wire[i:]]), ["a", "b", ClosingFrame()])

    def test_nothingAfterClose(self) -> None:
        reader = FrameReader()
        events = reader.receive(textFrame("a") + CLOSE_FRAME + textFrame("b") + CLOSE_FRAME)
        self.assertEqual(events, ["a", ClosingFrame()])
        self.assertEqual(reader.receive(textFrame("c")), [])
        self.assertEqual(reader.receive(CLOSE_FRAME), [])

    def test_closeWithLeadingZeroLengthDigits(self) -> None:
        """
        The length is read by the draft's algorithm: 0x80 0x00 is zero.
        """
        self.assertEqual(FrameReader().receive(b"\xff\x80\x00"), [ClosingFrame()])

    def test_0xFFWithALengthIsNotClose(self) -> None:
        wire = b"\xff\x02ab" + textFrame("still open")
        self.assertEqual(FrameReader().receive(wire), ["still open"])


class LengthPrefixedFrameTests(SynchronousTestCase):
    """
    Frame types with the high bit set carry a base-128 length; their data
    is discarded.
    """

    def test_skipped(self) -> None:
        wire = lengthFrame(0x80, b"abc") + textFrame("x")
        self.assertEqual(FrameReader().receive(wire), ["x"])

    def test_emptyBody(self) -> None:
        wire = lengthFrame(0x80, b"") + lengthFrame(0xFE, b"") + textFrame("x")
        self.assertEqual(FrameReader().receive(wire), ["x"])

    def test_multiByteLength(self) -> None:
        for n in (127, 128, 129, 300, 16383, 16384, 70000):
            body = bytes(i % 256 for i in range(n))  # contains 0x00 and 0xFF
            wire = lengthFrame(0x81, body) + textFrame("after")
            self.assertEqual(FrameReader().receive(wire), ["after"], n)

    def test_base128(self) -> None:
        self.assertEqual(base128(0), b"\x00")
        self.assertEqual(base128(127), b"\x7f")
        self.assertEqual(base128(128), b"\x81\x00")
        self.assertEqual(base128(300), b"\x82\x2c")

    def test_bodyLooksLikeFrames(self) -> None:
        """
        A discarded body holding what looks like frames is not parsed.
        """
        body = textFrame("hidden") + CLOSE_FRAME + b"\x00\x00"
        wire = textFrame("a") + lengthFrame(0x80, body) + textFrame("b")
        for i in range(len(wire) + 1):
            for j in range(i, len(wire) + 1):
                reader = FrameReader()
                self.assertEqual(feed(reader, [wire[:i], wire[i:j], wire[j:]]), ["a", "b"], (i, j))

    def test_byteByByte(self) -> None:
        wire = lengthFrame(0x90, b"\xff\x00" * 100) + textFrame("z")
        reader = FrameReader()
        self.assertEqual(feed(reader, [wire[i : i + 1] for i in range(len(wire))]), ["z"])

    def test_leadingZeroDigitsNotBuffered(self) -> None:
        """
        A length made of endless 0x80 digits (value zero so far) is read
        without buffering it.
        """
        reader = FrameReader(maxMessageSize=1024)
        tracemalloc.start()
        try:
            self.assertEqual(reader.receive(b"\x80"), [])
            piece = b"\x80" * 4096
            before, _ = tracemalloc.get_traced_memory()
            for _ in range(256):
                self.assertEqual(reader.receive(piece), [])
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.assertLess(after - before, 64 * 1024)
        self.assertEqual(reader.receive(b"\x00" + textFrame("x")), ["x"])

    def test_tooLong(self) -> None:
        """
        A length over the limit fails as soon as the digits say so.
        """
        reader = FrameReader(maxMessageSize=1000)
        events = reader.receive(b"\x80" + base128(1001))
        self.assertEqual(len(events), 1)
        self.assertIsInstance(events[0], Failed)
        self.assertEqual(reader.receive(textFrame("x")), [])
        # A huge length fails before all its digits are in.
        reader = FrameReader(maxMessageSize=1000)
        events = reader.receive(b"\x80" + base128(2**80)[:3])
        self.assertEqual(len(events), 1)
        self.assertIsInstance(events[0], Failed)

    def test_atTheLimit(self) -> None:
        reader = FrameReader(maxMessageSize=1000)
        wire = lengthFrame(0x80, b"x" * 1000) + textFrame("ok")
        self.assertEqual(reader.receive(wire), ["ok"])


class FailureTests(SynchronousTestCase):
    """
    Invalid UTF-8 and oversized messages end the reader with one L{Failed}.
    """

    def assertFails(
        self, reader: FrameReader, wire: bytes, before: list[Event] | None = None
    ) -> None:
        events = reader.receive(wire)
        self.assertEqual(events[:-1], before or [])
        self.assertIsInstance(events[-1], Failed)
        failure = events[-1]
        assert isinstance(failure, Failed)
        self.assertIsInstance(failure.reason, str)
        self.assertEqual(reader.receive(textFrame("after") + CLOSE_FRAME), [])

    def test_invalidUTF8(self) -> None:
        for bad in (
            b"\xfe",
            b"\x80",
            b"\xc0\xaf",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"ab\xce",
        ):
            self.assertFails(FrameReader(), textFrame(bad))
            self.assertFails(FrameReader(), textFrame("ok") + textFrame(bad), ["ok"])

    def test_messageOverLimit(self) -> None:
        reader = FrameReader(maxMessageSize=10)
        self.assertEqual(reader.receive(textFrame("x" * 10)), ["x" * 10])
        self.assertFails(reader, textFrame("x" * 11))

    def test_limitCountsBytes(self) -> None:
        reader = FrameReader(maxMessageSize=10)
        self.assertEqual(reader.receive(textFrame("\u00e9" * 5)), ["\u00e9" * 5])
        self.assertFails(reader, textFrame("\u00e9" * 5 + "x"))

    def test_failsBeforeTheTerminator(self) -> None:
        """
        Once more than the limit has arrived without 0xFF, fail at once.
        """
        reader = FrameReader(maxMessageSize=10)
        self.assertFails(reader, b"\x00" + b"a" * 11)

    def test_failsOnTheByteOverTheLimit(self) -> None:
        reader = FrameReader(maxMessageSize=10)
        wire = b"\x00" + b"a" * 20
        for i in range(11):
            self.assertEqual(reader.receive(wire[i : i + 1]), [], i)
        events = reader.receive(wire[11:12])
        self.assertEqual(len(events), 1)
        self.assertIsInstance(events[0], Failed)

    def test_noBufferingBeyondTheLimit(self) -> None:
        """
        1 MB of an unterminated frame in 4 KB pieces, with a 1 KB limit:
        the failure comes with the first piece, and memory stays flat.
        """
        reader = FrameReader(maxMessageSize=1024)
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            events = reader.receive(b"\x00" + b"a" * 4095)
            for _ in range(255):
                events += reader.receive(b"a" * 4096)
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.assertEqual(len(events), 1)
        self.assertIsInstance(events[0], Failed)
        self.assertLess(after - before, 64 * 1024)

    def test_bufferStaysUnderLimitInSmallPieces(self) -> None:
        reader = FrameReader(maxMessageSize=4096)
        events = reader.receive(b"\x00")
        for _ in range(4096):
            events += reader.receive(b"a")
        self.assertEqual(events, [])
        events = reader.receive(b"a")
        self.assertEqual(len(events), 1)
        self.assertIsInstance(events[0], Failed)

    def test_defaultLimit(self) -> None:
        self.assertEqual(FrameReader().maxMessageSize, DEFAULT_MAX_MESSAGE_SIZE)
        self.assertEqual(DEFAULT_MAX_MESSAGE_SIZE, 16 * 1024 * 1024)

    def test_failureAfterMessagesInOneChunk(self) -> None:
        self.assertFails(
            FrameReader(),
            textFrame("a") + textFrame("b") + textFrame(b"\xc3("),
            ["a", "b"],
        )


class EncodeTextTests(SynchronousTestCase):
    """
    L{encodeText}.
    """

    def test_encode(self) -> None:
        self.assertEqual(encodeText("hello"), b"\x00hello\xff")
        self.assertEqual(encodeText(""), b"\x00\xff")
        self.assertEqual(encodeText("\u03ba"), b"\x00\xce\xba\xff")
        self.assertEqual(encodeText("\U0001f600"), b"\x00\xf0\x9f\x98\x80\xff")

    @settings(max_examples=60, deadline=None)
    @given(st.text(max_size=50))
    def test_roundTrip(self, s: str) -> None:
        try:
            wire = encodeText(s)
        except UnicodeEncodeError:
            return
        self.assertEqual(wire.count(b"\xff"), 1)
        self.assertEqual(FrameReader().receive(wire), [s])

    def test_binaryNotSupportedIsATypeError(self) -> None:
        self.assertTrue(issubclass(BinaryNotSupported, TypeError))
