"""
Tests for L{txratchet.websocket.rfc6455}, derived from RFC 6455 sections
5.1-5.8 (framing), 7.1.5-7.4 (closing) and 8.1 (UTF-8).

Client frames are built here by a deliberately naive encoder (byte-by-byte
masking) so that the reader is not checked against its own encoder.
"""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Iterable, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txratchet.websocket.rfc6455 import (
    BINARY,
    CLOSE,
    CONTINUATION,
    DEFAULT_MAX_MESSAGE_SIZE,
    INVALID_PAYLOAD,
    MESSAGE_TOO_BIG,
    NORMAL_CLOSURE,
    PING,
    PONG,
    PROTOCOL_ERROR,
    TEXT,
    CloseReceived,
    Event,
    Failed,
    FrameReader,
    Ping,
    Pong,
    closePayload,
    encodeFrame,
    frameHeader,
    isValidCloseCode,
    mask,
)

KEY = b"\x37\xfa\x21\x3d"  # RFC 6455 5.7's masking key

FAST = settings(max_examples=40, deadline=None)


def xor(data: bytes, key: bytes, offset: int = 0) -> bytes:
    """
    RFC 6455 5.3, literally: octet i XOR key octet (i + offset) mod 4.
    """
    return bytes(b ^ key[(i + offset) % 4] for i, b in enumerate(data))


def frame(
    opcode: int,
    payload: bytes = b"",
    fin: bool = True,
    rsv: int = 0,
    key: bytes | None = KEY,
    length: int | None = None,
) -> bytes:
    """
    A frame as a client sends it (RFC 5.2). C{length} overrides the
    declared payload length (for headers of frames never sent whole).
    """
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    maskBit = 0x80 if key is not None else 0
    if n <= 125:
        head = bytes([b0, maskBit | n])
    elif n <= 0xFFFF:
        head = bytes([b0, maskBit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, maskBit | 127]) + struct.pack(">Q", n)
    if key is None:
        return head + payload
    return head + key + xor(payload, key)


def text(s: str | bytes, fin: bool = True, opcode: int = TEXT) -> bytes:
    raw = s.encode("utf-8") if isinstance(s, str) else s
    return frame(opcode, raw, fin)


def cont(s: str | bytes, fin: bool = True) -> bytes:
    return text(s, fin, CONTINUATION)


def close(code: int | None = None, reason: bytes = b"") -> bytes:
    payload = b"" if code is None else struct.pack(">H", code) + reason
    return frame(CLOSE, payload)


def textOfSize(n: int) -> str:
    """
    A string with multi-byte characters whose UTF-8 encoding is C{n} bytes.
    """
    unit = "a\u00e9\u20ac\U0001f600"  # 1 + 2 + 3 + 4 bytes
    s = unit * (n // 10)
    s += "a" * (n - len(s.encode("utf-8")))
    assert len(s.encode("utf-8")) == n
    return s


def binaryOfSize(n: int) -> bytes:
    return bytes(i * 7 % 256 for i in range(n))


def feed(reader: FrameReader, chunks: Iterable[bytes]) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events += reader.receive(chunk)
    return events


def chop(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted(set(cuts))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def chunkings(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """
    Random ways to cut C{data} into chunks.
    """
    return st.lists(st.integers(0, len(data)), max_size=16).map(lambda cuts: chop(data, cuts))


SIZES = (0, 1, 125, 126, 127, 65535, 65536, 70000)


class LengthTests(SynchronousTestCase):
    """
    7-bit, 16-bit and 64-bit payload lengths (RFC 5.2).
    """

    def test_headerSizes(self) -> None:
        for n, headerSize in (
            (0, 2),
            (1, 2),
            (125, 2),
            (126, 4),
            (127, 4),
            (65535, 4),
            (65536, 10),
            (70000, 10),
        ):
            self.assertEqual(len(frame(TEXT, key=None, length=n)), headerSize)

    def test_textAndBinaryOfEverySize(self) -> None:
        for n in SIZES:
            s = textOfSize(n)
            b = binaryOfSize(n)
            reader = FrameReader()
            events = reader.receive(text(s) + frame(BINARY, b))
            self.assertEqual(events, [s, b], n)
            self.assertIsInstance(events[0], str)
            self.assertIsInstance(events[1], bytes)

    def test_smallSizesSplitEverywhere(self) -> None:
        for n in (0, 1, 125, 126, 127):
            s = textOfSize(n)
            b = binaryOfSize(n)
            data = text(s) + frame(BINARY, b)
            for i in range(len(data) + 1):
                reader = FrameReader()
                self.assertEqual(feed(reader, [data[:i], data[i:]]), [s, b], (n, i))

    def test_smallSizesByteByByte(self) -> None:
        for n in (0, 1, 125, 126, 127):
            s = textOfSize(n)
            data = text(s)
            reader = FrameReader()
            events = feed(reader, [data[i : i + 1] for i in range(len(data))])
            self.assertEqual(events, [s], n)

    def test_messageCompletesWithItsLastByte(self) -> None:
        data = text("hello")
        reader = FrameReader()
        self.assertEqual(reader.receive(data[:-1]), [])
        self.assertEqual(reader.receive(data[-1:]), ["hello"])

    @settings(max_examples=40, deadline=None)
    @given(st.sampled_from(SIZES), st.booleans(), st.data())
    def test_randomChunking(self, n: int, isText: bool, data: st.DataObject) -> None:
        message: str | bytes = textOfSize(n) if isText else binaryOfSize(n)
        wire = text(message) if isinstance(message, str) else frame(BINARY, message)
        wire += frame(PING, b"p")
        chunks = data.draw(chunkings(wire))
        self.assertEqual(feed(FrameReader(), chunks), [message, Ping(b"p")])

    def test_exactlyTheLimit(self) -> None:
        reader = FrameReader(maxMessageSize=126)
        self.assertEqual(reader.receive(frame(BINARY, b"x" * 126)), [b"x" * 126])


class RFCExampleTests(SynchronousTestCase):
    """
    The examples of RFC 6455 section 5.7.
    """

    def test_maskedText(self) -> None:
        wire = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
        self.assertEqual(FrameReader().receive(wire), ["Hello"])
        self.assertEqual(text("Hello"), wire)

    def test_maskedPong(self) -> None:
        wire = bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
        self.assertEqual(FrameReader().receive(wire), [Pong(b"Hello")])

    def test_unmaskedExamplesWithoutRequireMask(self) -> None:
        reader = FrameReader(requireMask=False)
        self.assertEqual(reader.receive(b"\x81\x05Hello"), ["Hello"])
        self.assertEqual(reader.receive(b"\x01\x03Hel\x80\x02lo"), ["Hello"])
        self.assertEqual(reader.receive(b"\x89\x05Hello"), [Ping(b"Hello")])
        self.assertEqual(reader.receive(b"\x82\x7e\x01\x00" + b"\xaa" * 256), [b"\xaa" * 256])
        self.assertEqual(
            reader.receive(b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00" + b"\xbb" * 65536),
            [b"\xbb" * 65536],
        )

    def test_maskedAcceptedWithoutRequireMask(self) -> None:
        reader = FrameReader(requireMask=False)
        self.assertEqual(reader.receive(text("Hello")), ["Hello"])

    def test_encodeFrameExamples(self) -> None:
        self.assertEqual(encodeFrame(TEXT, b"Hello"), b"\x81\x05Hello")
        self.assertEqual(
            encodeFrame(TEXT, b"Hello", maskKey=KEY),
            bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]),
        )
        self.assertEqual(encodeFrame(TEXT, b"Hel", fin=False), b"\x01\x03Hel")
        self.assertEqual(encodeFrame(CONTINUATION, b"lo"), b"\x80\x02lo")
        self.assertEqual(encodeFrame(PING, b"Hello"), b"\x89\x05Hello")
        self.assertEqual(encodeFrame(BINARY, b"\0" * 256)[:4], b"\x82\x7e\x01\x00")
        self.assertEqual(
            encodeFrame(BINARY, b"\0" * 65536)[:10],
            b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00",
        )


class SequenceTests(SynchronousTestCase):
    """
    Several frames, fragmentation (RFC 5.4) and control frames (5.5).
    """

    def test_severalInOneChunk(self) -> None:
        wire = text("a") + frame(BINARY, b"b") + frame(PING) + frame(PONG, b"x") + text("")
        self.assertEqual(FrameReader().receive(wire), ["a", b"b", Ping(b""), Pong(b"x"), ""])

    def test_fragmentedTextWithControlInterleaved(self) -> None:
        """
        RFC 5.4: control frames may be injected between fragments.
        """
        wire = (
            text("Hel", fin=False)
            + frame(PING, b"1")
            + cont("l", fin=False)
            + frame(PONG, b"2")
            + frame(PING, b"3")
            + cont("o")
        )
        self.assertEqual(
            FrameReader().receive(wire),
            [Ping(b"1"), Pong(b"2"), Ping(b"3"), "Hello"],
        )

    def test_fragmentedBinary(self) -> None:
        wire = (
            frame(BINARY, b"\x00\x01", fin=False)
            + frame(PONG)
            + frame(CONTINUATION, b"", fin=False)
            + frame(CONTINUATION, b"\xff")
        )
        reader = FrameReader()
        for i in range(len(wire) + 1):
            reader = FrameReader()
            self.assertEqual(feed(reader, [wire[:i], wire[i:]]), [Pong(b""), b"\x00\x01\xff"], i)

    def test_emptyFragments(self) -> None:
        wire = text("", fin=False) + cont("", fin=False) + cont("")
        self.assertEqual(FrameReader().receive(wire), [""])
        wire = frame(BINARY, b"", fin=False) + frame(CONTINUATION, b"")
        self.assertEqual(FrameReader().receive(wire), [b""])

    def test_messagesAfterFragmentedMessage(self) -> None:
        wire = (
            text("a", fin=False)
            + cont("b")
            + text("c")
            + frame(BINARY, b"d", fin=False)
            + frame(CONTINUATION, b"e")
        )
        self.assertEqual(FrameReader().receive(wire), ["ab", "c", b"de"])

    def test_controlPayloads(self) -> None:
        wire = frame(PING, b"x" * 125) + frame(PONG, b"y" * 125) + frame(PING, b"")
        self.assertEqual(
            FrameReader().receive(wire),
            [Ping(b"x" * 125), Pong(b"y" * 125), Ping(b"")],
        )

    def test_controlFrameSplitEverywhere(self) -> None:
        wire = frame(PING, b"0123456789" * 12)
        for i in range(len(wire) + 1):
            reader = FrameReader()
            self.assertEqual(
                reader.receive(wire[:i]), [] if i < len(wire) else [Ping(b"0123456789" * 12)]
            )
            if i < len(wire):
                self.assertEqual(reader.receive(wire[i:]), [Ping(b"0123456789" * 12)])

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def test_randomConversation(self, data: st.DataObject) -> None:
        """
        Any messages, fragmented any way, with pings between fragments and
        chunked any way, come out whole and in order.
        """
        messages = data.draw(
            st.lists(st.one_of(st.text(max_size=40), st.binary(max_size=40)), max_size=6)
        )
        wire = b""
        expected: list[Event] = []
        for n, message in enumerate(messages):
            raw = message.encode("utf-8") if isinstance(message, str) else message
            cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=4)))
            pieces = chop(raw, cuts)
            opcode = TEXT if isinstance(message, str) else BINARY
            for i, piece in enumerate(pieces):
                last = i == len(pieces) - 1
                wire += frame(opcode if i == 0 else CONTINUATION, piece, fin=last)
                if not last and data.draw(st.booleans()):
                    wire += frame(PING, b"%d" % n)
                    expected.append(Ping(b"%d" % n))
            expected.append(message)
        chunks = data.draw(chunkings(wire))
        self.assertEqual(feed(FrameReader(), chunks), expected)


class FailureTests(SynchronousTestCase):
    """
    Every MUST-fail case of RFC 5 yields exactly one final L{Failed}, and
    nothing follows it.
    """

    AFTER = text("after") + frame(PING, b"p") + close(1000)

    def assertFails(
        self,
        wire: bytes | Sequence[bytes],
        code: int,
        before: Sequence[Event] = (),
        reader: FrameReader | None = None,
    ) -> Failed:
        """
        Feeding C{wire} (one chunk or a list of chunks) yields C{before}
        then one L{Failed} with C{code}, with the last chunk; afterwards the
        reader is silent.
        """
        if reader is None:
            reader = FrameReader()
        chunks = [wire] if isinstance(wire, bytes) else list(wire)
        events: list[Event] = []
        for chunk in chunks[:-1]:
            events += reader.receive(chunk)
            self.assertFalse([e for e in events if isinstance(e, Failed)], events)
        events += reader.receive(chunks[-1])
        self.assertEqual(events[:-1], list(before))
        failure = events[-1]
        assert isinstance(failure, Failed), events
        self.assertEqual(failure.code, code, failure)
        self.assertIsInstance(failure.reason, str)
        self.assertEqual(reader.receive(self.AFTER), [])
        self.assertEqual(reader.receive(b""), [])
        return failure

    def test_rsvBits(self) -> None:
        for rsv in range(1, 8):
            self.assertFails(frame(TEXT, b"x", rsv=rsv), PROTOCOL_ERROR)
            self.assertFails(frame(PING, b"x", rsv=rsv), PROTOCOL_ERROR)
            self.assertFails(frame(CONTINUATION, b"x", rsv=rsv), PROTOCOL_ERROR)

    def test_rsvOnContinuation(self) -> None:
        self.assertFails(text("a", fin=False) + frame(CONTINUATION, b"b", rsv=4), PROTOCOL_ERROR)

    def test_reservedOpcodes(self) -> None:
        for opcode in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
            self.assertFails(frame(opcode, b"x"), PROTOCOL_ERROR)
            self.assertFails(frame(opcode), PROTOCOL_ERROR)
            self.assertFails(text("ok") + frame(opcode), PROTOCOL_ERROR, ["ok"])

    def test_reservedOpcodeInsideFragmentedMessage(self) -> None:
        self.assertFails(text("a", fin=False) + frame(3, b"x"), PROTOCOL_ERROR)

    def test_unmasked(self) -> None:
        for opcode in (TEXT, BINARY, PING, PONG, CLOSE):
            self.assertFails(frame(opcode, b"", key=None), PROTOCOL_ERROR)
            self.assertFails(frame(opcode, b"xy", key=None), PROTOCOL_ERROR)
        self.assertFails(text("a", fin=False) + frame(CONTINUATION, b"b", key=None), PROTOCOL_ERROR)

    def test_unmaskedHeaderAlone(self) -> None:
        """
        The 2-byte header is enough to know the frame is unmasked.
        """
        self.assertFails(frame(TEXT, b"xyz", key=None)[:2], PROTOCOL_ERROR)

    def test_controlFrameTooLong(self) -> None:
        for opcode in (PING, PONG, CLOSE):
            wire = frame(opcode, b"x" * 126)
            self.assertFails(wire, PROTOCOL_ERROR)
            # The header alone is enough.
            self.assertFails(wire[:8], PROTOCOL_ERROR)
            self.assertFails(frame(opcode, length=2**20)[:14], PROTOCOL_ERROR)

    def test_fragmentedControlFrame(self) -> None:
        for opcode in (PING, PONG, CLOSE):
            self.assertFails(frame(opcode, b"x", fin=False), PROTOCOL_ERROR)
            self.assertFails(frame(opcode, b"", fin=False), PROTOCOL_ERROR)

    def test_continuationWithoutMessage(self) -> None:
        self.assertFails(cont("x"), PROTOCOL_ERROR)
        self.assertFails(cont("x", fin=False), PROTOCOL_ERROR)
        self.assertFails(text("a") + cont("b"), PROTOCOL_ERROR, ["a"])
        self.assertFails(text("a", fin=False) + cont("b") + cont("c"), PROTOCOL_ERROR, ["ab"])

    def test_newMessageInsideFragmentedMessage(self) -> None:
        for first in (TEXT, BINARY):
            for second in (TEXT, BINARY):
                for fin in (True, False):
                    self.assertFails(
                        frame(first, b"a", fin=False) + frame(second, b"b", fin=fin),
                        PROTOCOL_ERROR,
                    )
        self.assertFails(
            text("a", fin=False) + frame(PING) + text("b"), PROTOCOL_ERROR, [Ping(b"")]
        )

    def test_lengthTopBitSet(self) -> None:
        head = bytes([0x82, 0xFF]) + struct.pack(">Q", 2**63 + 5) + KEY
        self.assertFails(head, PROTOCOL_ERROR)
        unmasked = bytes([0x82, 0x7F]) + struct.pack(">Q", 2**63 + 5)
        self.assertFails(unmasked, PROTOCOL_ERROR, reader=FrameReader(requireMask=False))
        self.assertFails(bytes([0x82, 0xFF]) + struct.pack(">Q", 2**64 - 1) + KEY, PROTOCOL_ERROR)

    def test_tooBigFromHeaderAlone(self) -> None:
        """
        A frame declaring 2**40 bytes fails with 1009 as soon as its header
        arrives, without allocating anything for it.
        """
        head = frame(BINARY, length=2**40)
        self.assertEqual(len(head), 14)
        tracemalloc.start()
        try:
            reader = FrameReader()
            events = reader.receive(head)
            self.assertEqual(len(events), 1)
            self.assertEqual(reader.receive(b"\0" * 65536), [])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        failure = events[0]
        assert isinstance(failure, Failed)
        self.assertEqual(failure.code, MESSAGE_TOO_BIG)
        self.assertLess(peak, 1024 * 1024)

    def test_tooBig(self) -> None:
        reader = FrameReader(maxMessageSize=1000)
        self.assertFails(frame(BINARY, b"x" * 1001), MESSAGE_TOO_BIG, reader=reader)
        reader = FrameReader(maxMessageSize=1000)
        self.assertFails(text("x" * 1001), MESSAGE_TOO_BIG, reader=reader)
        reader = FrameReader(maxMessageSize=1000)
        # The header is enough.
        self.assertFails(frame(BINARY, b"x" * 1001)[:8], MESSAGE_TOO_BIG, reader=reader)

    def test_tooBigAcrossFragments(self) -> None:
        reader = FrameReader(maxMessageSize=1000)
        first = frame(BINARY, b"x" * 600, fin=False) + frame(PING)
        header = frame(CONTINUATION, b"y" * 401)[:8]
        self.assertFails([first, header], MESSAGE_TOO_BIG, [Ping(b"")], reader=reader)

    def test_fragmentsUpToTheLimit(self) -> None:
        reader = FrameReader(maxMessageSize=1000)
        wire = text("x" * 600, fin=False) + cont("y" * 400) + text("z" * 1000)
        self.assertEqual(reader.receive(wire), ["x" * 600 + "y" * 400, "z" * 1000])

    def test_limitIsPerMessage(self) -> None:
        reader = FrameReader(maxMessageSize=10)
        wire = frame(BINARY, b"x" * 10) * 5
        self.assertEqual(reader.receive(wire), [b"x" * 10] * 5)

    def test_defaultLimit(self) -> None:
        self.assertEqual(FrameReader().maxMessageSize, DEFAULT_MAX_MESSAGE_SIZE)
        self.assertFails(frame(BINARY, length=DEFAULT_MAX_MESSAGE_SIZE + 1)[:14], MESSAGE_TOO_BIG)

    def test_invalidUTF8(self) -> None:
        for bad in (
            b"\xff",
            b"\xfe",
            b"\x80",
            b"\xc0\xaf",  # overlong '/'
            b"\xe0\x80\xaf",  # overlong '/'
            b"\xed\xa0\x80",  # U+D800
            b"\xed\xbf\xbf",  # U+DFFF
            b"\xf4\x90\x80\x80",  # U+110000
            b"\xf8\x88\x80\x80\x80",
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
        ):
            self.assertFails(text(bad), INVALID_PAYLOAD)
            self.assertFails(text(b"ok" + bad + b"ok"), INVALID_PAYLOAD)

    def test_truncatedUTF8AtEnd(self) -> None:
        for tail in (b"\xce", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed"):
            self.assertFails(text(b"ab" + tail), INVALID_PAYLOAD)
            self.assertFails(text(b"ab", fin=False) + cont(tail), INVALID_PAYLOAD)
            # The final frame being empty does not help.
            self.assertFails(text(tail, fin=False) + cont(b""), INVALID_PAYLOAD)

    def test_failFastAcrossFragments(self) -> None:
        """
        RFC 8.1: fail as soon as the invalid bytes arrive, before the final
        fragment.
        """
        first = text("\u03ba\u1f79\u03c3\u03bc\u03b5", fin=False)
        second = cont(b"ab\xf4\x90\x80\x80cd", fin=False)
        self.assertFails([first, second], INVALID_PAYLOAD)

    def test_failFastWithinAFrame(self) -> None:
        """
        One frame fed in three chops (valid / invalid / rest): the second
        chop fails.
        """
        payload = b"valid \xce\xba " + b"\xf4\x90\x80\x80" + b" rest" * 20
        wire = text(payload)
        start = len(wire) - len(payload)
        valid = start + len(b"valid \xce\xba ")
        self.assertFails([wire[:valid], wire[valid : valid + 4]], INVALID_PAYLOAD)
        # Even split inside the invalid sequence, it fails when the first
        # invalid byte pair arrives.
        self.assertFails([wire[:valid], wire[valid : valid + 2]], INVALID_PAYLOAD)

    def test_surrogatePrefixFailsAtOnce(self) -> None:
        wire = text(b"ab\xed\xa0\x80cd")
        cut = len(wire) - 3
        self.assertFails([wire[: cut - 1], wire[cut - 1 : cut]], INVALID_PAYLOAD)
        self.assertFails(wire[:cut], INVALID_PAYLOAD)
        # As the end of a fragment.
        self.assertFails(text(b"ab\xed\xa0", fin=False), INVALID_PAYLOAD)
        self.assertFails([text(b"ab\xed", fin=False), cont(b"\xa0", fin=False)], INVALID_PAYLOAD)

    def test_otherImpossiblePrefixesFailAtOnce(self) -> None:
        for prefix in (b"\xf4\x90", b"\xe0\x80", b"\xf0\x80", b"\xc0", b"\xf5", b"\xff"):
            wire = text(b"ab" + prefix + b"\x80\x80\x80")
            self.assertFails(wire[: len(wire) - 3], INVALID_PAYLOAD)
            self.assertFails(text(b"ab" + prefix, fin=False), INVALID_PAYLOAD)

    def test_validPrefixesAtChopEndAreFine(self) -> None:
        for char in ("\ud7ff", "\ue000", "\uffff", "\U00010000", "\U0010ffff", "\u00e9"):
            raw = char.encode("utf-8")
            for i in range(1, len(raw)):
                wire = text(raw)
                cut = len(wire) - len(raw) + i
                reader = FrameReader()
                self.assertEqual(reader.receive(wire[:cut]), [])
                self.assertEqual(reader.receive(wire[cut:]), [char])
                reader = FrameReader()
                self.assertEqual(reader.receive(text(raw[:i], fin=False)), [], (char, i))
                self.assertEqual(reader.receive(cont(raw[i:])), [char])

    def test_binaryIsNotValidated(self) -> None:
        self.assertEqual(FrameReader().receive(frame(BINARY, b"\xff\xed\xa0")), [b"\xff\xed\xa0"])

    def test_failureAfterEvents(self) -> None:
        self.assertFails(
            text("a") + frame(PING, b"p") + frame(TEXT, b"x", rsv=1),
            PROTOCOL_ERROR,
            ["a", Ping(b"p")],
        )


class UTF8SplitTests(SynchronousTestCase):
    """
    Valid UTF-8 split anywhere, across fragments or chunks, is accepted.
    """

    SAMPLES = (
        "\u03ba\u1f79\u03c3\u03bc\u03b5",  # "kosme", RFC-style test string
        "\U0001f600\U0001f389",
        "a\u00e9\u20ac\U0001f600z",
        "\ud7ff\ue000\U0010ffff",
    )

    def test_acrossTwoFragments(self) -> None:
        for s in self.SAMPLES:
            raw = s.encode("utf-8")
            for i in range(len(raw) + 1):
                wire = text(raw[:i], fin=False) + cont(raw[i:])
                self.assertEqual(FrameReader().receive(wire), [s], (s, i))

    def test_acrossThreeFragments(self) -> None:
        for s in self.SAMPLES:
            raw = s.encode("utf-8")
            for i in range(len(raw) + 1):
                for j in range(i, len(raw) + 1):
                    wire = (
                        text(raw[:i], fin=False)
                        + frame(PING)
                        + cont(raw[i:j], fin=False)
                        + cont(raw[j:])
                    )
                    self.assertEqual(FrameReader().receive(wire), [Ping(b""), s], (s, i, j))

    def test_acrossChunksOfOneFrame(self) -> None:
        for s in self.SAMPLES:
            wire = text(s)
            for i in range(len(wire) + 1):
                for j in range(i, len(wire) + 1):
                    reader = FrameReader()
                    self.assertEqual(feed(reader, [wire[:i], wire[i:j], wire[j:]]), [s], (s, i, j))

    @settings(max_examples=60, deadline=None)
    @given(st.text(min_size=1, max_size=30), st.data())
    def test_anyTextAnySplit(self, s: str, data: st.DataObject) -> None:
        try:
            raw = s.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates are not text
            return
        cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=5)))
        pieces = chop(raw, cuts)
        wire = b"".join(
            frame(TEXT if i == 0 else CONTINUATION, p, fin=i == len(pieces) - 1)
            for i, p in enumerate(pieces)
        )
        chunks = data.draw(chunkings(wire))
        self.assertEqual(feed(FrameReader(), chunks), [s])


class CloseTests(SynchronousTestCase):
    """
    Close frames (RFC 5.5.1, 7.1.5, 7.1.6, 7.4).
    """

    def test_empty(self) -> None:
        self.assertEqual(FrameReader().receive(close()), [CloseReceived(None, "")])

    def test_oneBytePayload(self) -> None:
        reader = FrameReader()
        events = reader.receive(frame(CLOSE, b"\x03"))
        self.assertEqual(len(events), 1)
        assert isinstance(events[0], Failed)
        self.assertEqual(events[0].code, PROTOCOL_ERROR)
        self.assertEqual(reader.receive(close(1000)), [])

    def test_everyCode(self) -> None:
        valid = set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))
        for code in range(5001):
            events = FrameReader().receive(close(code))
            if code in valid:
                self.assertEqual(events, [CloseReceived(code, "")], code)
            else:
                self.assertEqual(len(events), 1, code)
                failure = events[0]
                assert isinstance(failure, Failed), code
                self.assertEqual(failure.code, PROTOCOL_ERROR, code)
            self.assertEqual(isValidCloseCode(code), code in valid, code)

    def test_largeCodes(self) -> None:
        for code in (5000, 9999, 0xFFFF):
            events = FrameReader().receive(close(code))
            assert isinstance(events[0], Failed)
            self.assertEqual(events[0].code, PROTOCOL_ERROR)

    def test_reason(self) -> None:
        self.assertEqual(
            FrameReader().receive(close(1001, "bye \u2713".encode())),
            [CloseReceived(1001, "bye \u2713")],
        )
        reason = "\u00e9" * 61 + "x"
        self.assertEqual(len(reason.encode()), 123)
        self.assertEqual(
            FrameReader().receive(close(4000, reason.encode())),
            [CloseReceived(4000, reason)],
        )

    def test_invalidReason(self) -> None:
        for bad in (b"\xff", b"ok\xed\xa0\x80", b"\xce"):
            reader = FrameReader()
            events = reader.receive(close(1000, bad))
            self.assertEqual(len(events), 1)
            assert isinstance(events[0], Failed)
            self.assertEqual(events[0].code, INVALID_PAYLOAD)
            self.assertEqual(reader.receive(close(1000)), [])

    def test_splitEverywhere(self) -> None:
        wire = close(1000, b"done")
        for i in range(len(wire) + 1):
            reader = FrameReader()
            self.assertEqual(feed(reader, [wire[:i], wire[i:]]), [CloseReceived(1000, "done")])

    def test_dataAfterCloseIgnored(self) -> None:
        reader = FrameReader()
        events = reader.receive(text("a") + close(1000) + text("b") + close(1001))
        self.assertEqual(events, ["a", CloseReceived(1000, "")])
        self.assertEqual(reader.receive(text("c") + close(1000)), [])
        self.assertEqual(reader.receive(b"\x00\x00garbage"), [])

    def test_closeInsideFragmentedMessage(self) -> None:
        wire = text("a", fin=False) + close(1000)
        self.assertEqual(FrameReader().receive(wire), [CloseReceived(1000, "")])


class MaskTests(SynchronousTestCase):
    """
    L{mask}: RFC 5.3.
    """

    def test_rfcExample(self) -> None:
        self.assertEqual(mask(b"Hello", KEY), b"\x7f\x9f\x4d\x51\x58")

    def test_empty(self) -> None:
        self.assertEqual(mask(b"", KEY), b"")
        self.assertEqual(mask(b"", KEY, 3), b"")

    def test_memoryview(self) -> None:
        self.assertEqual(mask(memoryview(b"xxHelloxx")[2:7], KEY), b"\x7f\x9f\x4d\x51\x58")

    def test_keepsLeadingAndTrailingZeros(self) -> None:
        self.assertEqual(mask(b"\0" * 9, b"\0\0\0\0"), b"\0" * 9)
        self.assertEqual(mask(KEY * 3, KEY), b"\0" * 12)

    @settings(max_examples=100, deadline=None)
    @given(st.binary(max_size=300), st.binary(min_size=4, max_size=4), st.integers(0, 3))
    def test_matchesDefinition(self, data: bytes, key: bytes, offset: int) -> None:
        masked = mask(data, key, offset)
        self.assertIsInstance(masked, bytes)
        self.assertEqual(masked, xor(data, key, offset))
        self.assertEqual(mask(masked, key, offset), data)

    @settings(max_examples=100, deadline=None)
    @given(
        st.binary(max_size=300),
        st.binary(min_size=4, max_size=4),
        st.lists(st.integers(0, 300), max_size=8),
    )
    def test_inPieces(self, data: bytes, key: bytes, cuts: list[int]) -> None:
        """
        Masking pieces with the running offset equals masking the whole.
        """
        out = b""
        offset = 0
        for piece in chop(data, [c for c in cuts if c <= len(data)]):
            out += mask(piece, key, offset)
            offset += len(piece)
        self.assertEqual(out, mask(data, key))

    def test_offsetIsModuloFour(self) -> None:
        for offset in range(4, 12):
            self.assertEqual(mask(b"abcdefg", KEY, offset), mask(b"abcdefg", KEY, offset % 4))


class EncodingTests(SynchronousTestCase):
    """
    L{frameHeader}, L{encodeFrame}, L{closePayload}.
    """

    def test_frameHeaderLengths(self) -> None:
        self.assertEqual(frameHeader(TEXT, 0), b"\x81\x00")
        self.assertEqual(frameHeader(TEXT, 125), b"\x81\x7d")
        self.assertEqual(frameHeader(TEXT, 126), b"\x81\x7e\x00\x7e")
        self.assertEqual(frameHeader(BINARY, 127), b"\x82\x7e\x00\x7f")
        self.assertEqual(frameHeader(BINARY, 65535), b"\x82\x7e\xff\xff")
        self.assertEqual(frameHeader(BINARY, 65536), b"\x82\x7f" + struct.pack(">Q", 65536))
        self.assertEqual(frameHeader(BINARY, 2**40), b"\x82\x7f" + struct.pack(">Q", 2**40))
        self.assertEqual(frameHeader(BINARY, 2**63 - 1), b"\x82\x7f" + struct.pack(">Q", 2**63 - 1))

    def test_frameHeaderBits(self) -> None:
        self.assertEqual(frameHeader(TEXT, 1, fin=False), b"\x01\x01")
        self.assertEqual(frameHeader(CONTINUATION, 1), b"\x80\x01")
        self.assertEqual(frameHeader(PING, 0), b"\x89\x00")
        self.assertEqual(frameHeader(PONG, 0), b"\x8a\x00")
        self.assertEqual(frameHeader(CLOSE, 2), b"\x88\x02")
        self.assertEqual(frameHeader(TEXT, 1, rsv=0x40), b"\xc1\x01")

    def test_frameHeaderNeverMasked(self) -> None:
        for n in SIZES:
            self.assertFalse(frameHeader(BINARY, n)[1] & 0x80)

    def test_encodeFrameMatchesClientFrames(self) -> None:
        for n in SIZES:
            payload = binaryOfSize(n)
            self.assertEqual(encodeFrame(BINARY, payload, maskKey=KEY), frame(BINARY, payload))
            self.assertEqual(encodeFrame(BINARY, payload), frame(BINARY, payload, key=None))
            self.assertEqual(
                encodeFrame(TEXT, payload, fin=False),
                frame(TEXT, payload, fin=False, key=None),
            )

    @settings(max_examples=40, deadline=None)
    @given(st.binary(max_size=200), st.binary(min_size=4, max_size=4), st.booleans())
    def test_encodeFrameRoundTrip(self, payload: bytes, key: bytes, fin: bool) -> None:
        wire = encodeFrame(BINARY, payload, fin=fin, maskKey=key)
        if not fin:
            wire += encodeFrame(CONTINUATION, b"", maskKey=key)
        self.assertEqual(FrameReader().receive(wire), [payload])
        self.assertEqual(
            FrameReader(requireMask=False).receive(encodeFrame(BINARY, payload)), [payload]
        )

    def test_closePayload(self) -> None:
        self.assertEqual(closePayload(), b"\x03\xe8")
        self.assertEqual(closePayload(NORMAL_CLOSURE), b"\x03\xe8")
        self.assertEqual(closePayload(None), b"")
        self.assertEqual(closePayload(None, "ignored"), b"")
        self.assertEqual(closePayload(4000, "bye \u2713"), b"\x0f\xa0bye \xe2\x9c\x93")

    def test_closePayloadTruncation(self) -> None:
        for unit in ("a", "\u00e9", "\u20ac", "\U0001f600"):
            for count in range(1, 130):
                reason = unit * count
                payload = closePayload(1000, reason)
                raw = reason.encode("utf-8")
                self.assertLessEqual(len(payload), 125)
                kept = payload[2:].decode("utf-8")
                self.assertTrue(reason.startswith(kept))
                if len(raw) <= 123:
                    self.assertEqual(kept, reason)
                else:
                    self.assertGreater(len(payload), 125 - len(unit.encode("utf-8")))

    @settings(max_examples=100, deadline=None)
    @given(st.text(max_size=200), st.integers(1000, 4999))
    def test_closePayloadAnyReason(self, reason: str, code: int) -> None:
        try:
            raw = reason.encode("utf-8")
        except UnicodeEncodeError:
            return
        payload = closePayload(code, reason)
        self.assertLessEqual(len(payload), 125)
        self.assertEqual(struct.unpack(">H", payload[:2])[0], code)
        kept = payload[2:]
        self.assertTrue(raw.startswith(kept))
        kept.decode("utf-8")  # never a split sequence
        self.assertGreaterEqual(len(kept), min(len(raw), 123) - 3)
        if isValidCloseCode(code):
            events = FrameReader().receive(frame(CLOSE, payload))
            self.assertEqual(events, [CloseReceived(code, kept.decode("utf-8"))])


class FloodTests(SynchronousTestCase):
    """
    Many tiny frames cost memory in proportion to the payload, not to the
    number of frames (no per-fragment objects are kept).
    """

    def _peak(self, data: bytes) -> int:
        reader = FrameReader()
        tracemalloc.start()
        try:
            for i in range(0, len(data), 65536):
                self.assertEqual(reader.receive(data[i : i + 65536]), [])
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def test_emptyContinuationFlood(self):
        data = frame(BINARY, b"", fin=False) + frame(CONTINUATION, b"", fin=False) * 100000
        self.assertLess(self._peak(data), 1 << 20)

    def test_oneByteFragments(self):
        """100,000 one-byte fragments: far below 34 bytes per fragment."""
        data = text("a", fin=False) + cont("b", fin=False) * 100000
        self.assertLess(self._peak(data), 1 << 20)


class FrameLimitTests(SynchronousTestCase):
    def test_frameOverLimit(self):
        """maxFrameSize bounds each data frame, from its header alone."""
        reader = FrameReader(maxFrameSize=100)
        events = reader.receive(frame(BINARY, b"", length=101)[:8])
        self.assertEqual(events, [Failed(MESSAGE_TOO_BIG, "Frame larger than 100 bytes")])

    def test_fragmentsUnderFrameLimit(self):
        reader = FrameReader(maxFrameSize=100)
        events = reader.receive(
            frame(BINARY, b"a" * 100, fin=False) + frame(CONTINUATION, b"b" * 100)
        )
        self.assertEqual(events, [b"a" * 100 + b"b" * 100])


class PureMaskTests(SynchronousTestCase):
    """The pure-Python masking paths, even where an accelerator is installed."""

    def test_everyPathMatchesTheRFC(self):
        import os

        from txratchet.websocket import rfc6455

        self.patch(rfc6455, "_accelerated", None)
        for n in (1, 63, 64, 65, 255, 1023, 1024, 1025, 4097, 70001):
            data, key = os.urandom(n), os.urandom(4)
            for offset in range(4):
                self.assertEqual(rfc6455.mask(data, key, offset), xor(data, key, offset))
