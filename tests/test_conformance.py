"""
End-to-end RFC 6455 conformance suite for the server, in the spirit of the
Autobahn fuzzing test categories, derived section by section from RFC 6455.

Every case runs on a fresh connection to C{WebSocket(Echo())} on loopback,
driven by the blocking raw client of L{tests.rawclients} in a thread.  A case
is a script (frames sent, pauses, chops) and the exact I{transcript} the
server must produce in answer: the echoed messages (type and payload), pongs
and server pings in order, the close frame's code, and finally C{EOF}: the
server closing TCP within L{TCP_CLOSE_WAIT} seconds of the closing handshake
(RFC 6455 7.1.1: the server closes TCP first; the client here never does).

Conventions of the transcript:

    - C{("text", payload)} / C{("binary", payload)}: a complete message
      (fragments reassembled), payloads over 48 bytes summarised by length
      and digest;
    - C{("pong", payload)}, C{("ping", payload)}: control frames;
    - C{("close", code)}: the server's close frame (code L{None} for an empty
      payload; an expected tuple of codes accepts any of them);
    - C{("mark", name)}: a point in the script (e.g. "the rest was sent
      only now"), to check that something arrived before it;
    - C{EOF}: the server closed TCP (in time);
    - anything in capitals is a failure observed by the client (timeouts,
      protocol violations by the server, TCP left open).

After the server's close frame the client answers with a close frame of its
own (like Autobahn's client) unless the case says otherwise (section 7.1.7
cases check the server closes TCP after failing even without that answer).
"""

from __future__ import annotations

import functools
import hashlib
import re
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread

from examples.echo import Echo
from tests.rawclients import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    ConnectionClosed,
    HybiClient,
    ProtocolViolation,
    RecvTimeout,
    build_frame,
    parse_close_payload,
)
from tests.util import ServerTestCase
from txratchet import WebSocket

HOST = "127.0.0.1"

#: Seconds the server has to close TCP after the closing handshake / failure.
TCP_CLOSE_WAIT = 2.0
#: Seconds a case waits for the server's close frame (small cases).
CLOSE_WAIT = 2.0
#: The pause of the fail-fast cases: how long the client waits, after the
#: offending bytes, for the close frame before sending the rest.
FAIL_FAST_WAIT = 1.0

# Status codes (RFC 6455 7.4.1).
NORMAL = 1000
PROTOCOL_ERROR = 1002
INVALID_PAYLOAD = 1007
MESSAGE_TOO_BIG = 1009

EOF = ("EOF",)


# ---------------------------------------------------------------------------
# Transcript items
# ---------------------------------------------------------------------------


def summary(payload: bytes) -> bytes | str:
    """Short payloads as they are, long ones as length and digest."""
    if len(payload) <= 48:
        return payload
    return f"<{len(payload)} bytes sha1={hashlib.sha1(payload).hexdigest()[:12]}>"


def _bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def T(payload: bytes | str) -> tuple[str, Any]:
    """An echoed text message."""
    return ("text", summary(_bytes(payload)))


def B(payload: bytes) -> tuple[str, Any]:
    """An echoed binary message."""
    return ("binary", summary(payload))


def PONG(payload: bytes | str = b"") -> tuple[str, Any]:
    return ("pong", summary(_bytes(payload)))


def CLOSE(code: int | tuple[int | None, ...] | None) -> tuple[str, Any]:
    return ("close", code)


def MARK(name: str) -> tuple[str, str]:
    return ("mark", name)


def CLOSED(code: int | tuple[int | None, ...] | None = NORMAL) -> list[tuple[Any, ...]]:
    """The end of every case: the close frame, then the server closes TCP."""
    return [CLOSE(code), EOF]


def FAILED(code: int) -> list[tuple[Any, ...]]:
    """Failed (7.1.7): a close frame with C{code}, then TCP closed."""
    return CLOSED(code)


def _matches(expected: list[tuple[Any, ...]], observed: list[tuple[Any, ...]]) -> bool:
    if len(expected) != len(observed):
        return False
    for e, o in zip(expected, observed, strict=True):
        if e[0] == "close" == o[0] and isinstance(e[1], tuple):
            if o[1] not in e[1]:
                return False
        elif e != o:
            return False
    return True


# ---------------------------------------------------------------------------
# The client side of a case
# ---------------------------------------------------------------------------


def frame(
    opcode: int,
    payload: bytes | str = b"",
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    mask_key: bytes | None = None,
) -> bytes:
    return build_frame(opcode, _bytes(payload), fin, rsv, mask, mask_key)


def closePayload(code: int | None = NORMAL, reason: bytes | str = b"") -> bytes:
    if code is None:
        return b""
    return struct.pack(">H", code) + _bytes(reason)


def headerLength(payloadLength: int) -> int:
    """Length of a masked frame's head for a payload of this length."""
    return 2 + (0 if payloadLength < 126 else 2 if payloadLength <= 0xFFFF else 8) + 4


class Session:
    """
    One connection: sends what a script says (every method returns the
    session, for chaining) and records what the server sends in L{events}.
    """

    def __init__(self, port: int, timeout: float) -> None:
        self.timeout = timeout
        self.client = self.connect(port, timeout)
        self.events: list[tuple[Any, ...]] = []
        self.closeSeen = False
        self.closeSent = False
        self.eof = False
        self.broken = False
        self._fragOpcode: int | None = None
        self._fragParts: list[bytes] = []

    def connect(self, port: int, timeout: float) -> HybiClient:
        """The opening handshake (HTTP/1.1 here) on a new connection."""
        client = HybiClient(HOST, port, timeout=timeout)
        client.connect()
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client

    # -- sending -----------------------------------------------------------

    def raw(self, data: bytes) -> Session:
        """Send bytes; errors (the server may be gone already) are ignored."""
        try:
            self.client.sock.settimeout(self.timeout)
            self.client.sock.sendall(data)
        except OSError:
            pass
        return self

    def frame(self, opcode: int, payload: bytes | str = b"", **kw: Any) -> Session:
        return self.raw(frame(opcode, payload, **kw))

    def text(self, payload: bytes | str) -> Session:
        return self.frame(OP_TEXT, payload)

    def binary(self, payload: bytes) -> Session:
        return self.frame(OP_BINARY, payload)

    def ping(self, payload: bytes | str = b"") -> Session:
        return self.frame(OP_PING, payload)

    def pong(self, payload: bytes | str = b"") -> Session:
        return self.frame(OP_PONG, payload)

    def close(self, code: int | None = NORMAL, reason: bytes | str = b"") -> Session:
        self.closeSent = True
        return self.frame(OP_CLOSE, closePayload(code, reason))

    def closeSending(self) -> Session:
        """The client sends its close frame itself (no automatic answer)."""
        self.closeSent = True
        return self

    def frags(self, opcode: int, parts: list[bytes | str]) -> Session:
        """One message in C{len(parts)} frames."""
        data = b"".join(
            frame(opcode if i == 0 else OP_CONTINUATION, part, fin=i == len(parts) - 1)
            for i, part in enumerate(parts)
        )
        return self.raw(data)

    def chops(self, data: bytes, size: int, delay: float = 0.0) -> Session:
        """Send C{data} in pieces of C{size} bytes, C{delay} apart."""
        for i in range(0, len(data), size):
            self.raw(data[i : i + size])
            if delay:
                time.sleep(delay)
        return self

    # -- receiving ---------------------------------------------------------

    def _record(self, opcode: int, fin: bool, rsv: int, payload: bytes) -> None:
        if rsv:
            self.events.append(("SERVER SET RSV BITS", rsv, opcode))
        if opcode == OP_CLOSE:
            self.closeSeen = True
            # recv_frame parsed it already (it raises for 1-byte payloads and
            # non-UTF-8 reasons).
            self.events.append(CLOSE(parse_close_payload(payload)[0]))
        elif opcode == OP_PING:
            self.events.append(("ping", summary(payload)))
        elif opcode == OP_PONG:
            self.events.append(PONG(payload))
        elif opcode == OP_CONTINUATION:
            if self._fragOpcode is None:
                self.events.append(("SERVER SENT A CONTINUATION WITHOUT START", summary(payload)))
                return
            self._fragParts.append(payload)
            if fin:
                kind = "text" if self._fragOpcode == OP_TEXT else "binary"
                self._message(kind, b"".join(self._fragParts))
                self._fragOpcode = None
                self._fragParts = []
        else:
            if self._fragOpcode is not None:
                self.events.append(("SERVER INTERLEAVED A DATA FRAME", opcode))
            kind = "text" if opcode == OP_TEXT else "binary"
            if fin:
                self._message(kind, payload)
            else:
                self._fragOpcode = opcode
                self._fragParts = [payload]

    def _message(self, kind: str, payload: bytes) -> None:
        if self.closeSeen:
            kind = kind.upper() + " AFTER THE CLOSE FRAME"
        if kind == "text":
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                self.events.append(("SERVER SENT INVALID UTF-8 TEXT", summary(payload)))
                return
        self.events.append((kind, summary(payload)))

    def _recvOne(self, timeout: float) -> str:
        """
        Receive and record one frame: "frame", "timeout", "eof" or "broken".
        """
        self.client.timeout = max(timeout, 0.001)
        try:
            opcode, fin, rsv, payload = self.client.recv_frame()
        except RecvTimeout:
            return "timeout"
        except ConnectionClosed as e:
            if e.data:
                self.events.append(("TCP CLOSED INSIDE A FRAME", summary(e.data)))
            self.events.append(EOF)
            self.eof = True
            return "eof"
        except ProtocolViolation as e:
            self.events.append(("SERVER VIOLATED THE PROTOCOL", str(e)))
            self.broken = True
            return "broken"
        self._record(opcode, fin, rsv, payload)
        return "frame"

    def _pump(self, seconds: float, until: Callable[[], bool]) -> None:
        deadline = time.monotonic() + seconds
        while not (self.eof or self.broken or until()):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._recvOne(remaining) == "timeout":
                return

    def sleep(self, seconds: float) -> Session:
        """Pause, recording whatever arrives meanwhile."""
        self._pump(seconds, lambda: False)
        return self

    def awaitClose(self, seconds: float = FAIL_FAST_WAIT) -> Session:
        """Wait (bounded) for the server's close frame."""
        self._pump(seconds, lambda: self.closeSeen)
        return self

    def awaitEvents(self, count: int, seconds: float = 1.0) -> Session:
        """Wait (bounded) until C{count} more things arrived."""
        target = len(self.events) + count
        self._pump(seconds, lambda: len(self.events) >= target)
        return self

    def mark(self, name: str) -> Session:
        self.events.append(MARK(name))
        return self

    # -- the end of a case -------------------------------------------------

    def finish(self, reply: bool, closeWait: float) -> None:
        """
        Wait for the server's close frame, answer it (if C{reply}), then wait
        for the server to close TCP.
        """
        self._pump(closeWait, lambda: self.closeSeen)
        if self.eof or self.broken:
            return
        if not self.closeSeen:
            self.events.append(("NO CLOSE FRAME FROM THE SERVER", f"within {closeWait}s"))
            return
        if reply and not self.closeSent:
            code = self.events[[e[0] for e in self.events].index("close")][1]
            if code is None or not (1000 <= code <= 4999) or code in (1004, 1005, 1006, 1015):
                code = None
            self.close(code)
        self._pump(TCP_CLOSE_WAIT, lambda: False)
        if not (self.eof or self.broken):
            self.events.append(
                (
                    "TCP STILL OPEN",
                    f"{TCP_CLOSE_WAIT}s after the close frame; the server must close it",
                )
            )

    def abort(self) -> None:
        try:
            self.client.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------
# Cases and their generated test methods
# ---------------------------------------------------------------------------

Script = Callable[[Session], Any]


@dataclass
class Case:
    name: str
    doc: str
    script: Script
    expected: list[tuple[Any, ...]] | Callable[[], list[tuple[Any, ...]]]
    server: dict[str, Any] = field(default_factory=dict)
    reply: bool = True
    timeout: float = CLOSE_WAIT


def runCase(port: int, case: Case, session: type[Session] = Session) -> list[tuple[Any, ...]]:
    session = session(port, max(case.timeout, 5.0))
    try:
        case.script(session)
        if not session.broken:
            session.finish(case.reply, case.timeout)
    finally:
        session.abort()
    return session.events


def _identifier(name: str) -> str:
    return re.sub(r"\W+", "_", name).strip("_")


def conformance(cls: type) -> type:
    """Make a C{test_<name>} method of every L{Case} in C{cls.cases}."""
    seen: set[str] = set()
    for case in cls.cases:  # type: ignore[attr-defined]
        name = "test_" + _identifier(case.name)
        assert name not in seen, f"duplicate case name {case.name!r}"
        seen.add(name)

        def test(self: ConformanceTestCase, case: Case = case) -> Any:
            return self.runCase(case)

        test.__name__ = name
        test.__qualname__ = f"{cls.__name__}.{name}"
        test.__doc__ = case.doc
        setattr(cls, name, test)
    return cls


class ConformanceTestCase(ServerTestCase):
    cases: list[Case] = []
    #: How a case connects (the HTTP/2 twins of these classes use another).
    session: type[Session] = Session

    def serve(self, case: Case) -> Any:
        """Serve the case's echo server; a Deferred firing with the port."""
        return self.listen(WebSocket(Echo(), **case.server))

    @inlineCallbacks
    def runCase(self, case: Case) -> Any:
        port = yield self.serve(case)
        observed = yield deferToThread(runCase, port, case, self.session)
        expected = case.expected() if callable(case.expected) else case.expected
        if not _matches(expected, observed):
            self.fail(
                f"{case.name}: {case.doc}\n  expected: {expected!r}\n  observed: {observed!r}"
            )


# ---------------------------------------------------------------------------
# Payloads
# ---------------------------------------------------------------------------


def textPayload(n: int) -> bytes:
    return (b"*The quick brown fox jumps over the lazy dog. " * (n // 46 + 1))[:n]


def binaryPayload(n: int) -> bytes:
    return (bytes(range(256)) * (n // 256 + 1))[:n]


@functools.cache
def bigText(n: int) -> bytes:
    """C{n} (a multiple of 16) bytes of valid multi-byte UTF-8."""
    unit = "abcdefgκ€𝄞".encode()
    assert len(unit) == 16 and n % 16 == 0
    return unit * (n // 16)


@functools.cache
def bigBinary(n: int) -> bytes:
    return binaryPayload(n)


MiB = 1024 * 1024
KOSME = "κόσμε".encode()


# ---------------------------------------------------------------------------
# 5.2 Base framing
# ---------------------------------------------------------------------------

_LENGTHS = [0, 1, 125, 126, 127, 128, 65535, 65536, 65537, MiB]
_B65536_FRAME = frame(OP_BINARY, binaryPayload(65536))


def _framingCases() -> list[Case]:
    cases = []
    for n in _LENGTHS:
        t, b = textPayload(n), binaryPayload(n)
        cases.append(
            Case(
                f"text_{n}",
                f"A {n}-byte text message (7-bit, 16-bit or 64-bit length) is echoed.",
                lambda s, t=t: s.text(t).close(),
                [T(t), *CLOSED()],
                timeout=5.0,
            )
        )
        cases.append(
            Case(
                f"binary_{n}",
                f"A {n}-byte binary message is echoed as binary.",
                lambda s, b=b: s.binary(b).close(),
                [B(b), *CLOSED()],
                timeout=5.0,
            )
        )
    t, b = textPayload(65536), binaryPayload(65536)
    cases += [
        Case(
            "text_65536_in_997_byte_chops",
            "A 65536-byte text frame delivered in chops of 997 bytes is echoed.",
            lambda s: s.chops(frame(OP_TEXT, t), 997).close(),
            [T(t), *CLOSED()],
        ),
        Case(
            "binary_65536_in_997_byte_chops",
            "A 65536-byte binary frame delivered in chops of 997 bytes is echoed.",
            lambda s: s.chops(frame(OP_BINARY, b), 997).close(),
            [B(b), *CLOSED()],
        ),
        Case(
            "text_125_bytewise",
            "A 125-byte text frame delivered one byte at a time is echoed.",
            lambda s: s.chops(frame(OP_TEXT, textPayload(125)), 1, 0.0005).close(),
            [T(textPayload(125)), *CLOSED()],
        ),
        Case(
            "binary_126_bytewise_head",
            "A frame with a 16-bit length whose head arrives byte by byte.",
            lambda s: s.chops(frame(OP_BINARY, binaryPayload(126)), 1, 0.0005).close(),
            [B(binaryPayload(126)), *CLOSED()],
        ),
        Case(
            "binary_65536_bytewise_head",
            "A frame with a 64-bit length whose 14-byte head arrives byte by byte.",
            lambda s: s.chops(_B65536_FRAME[:14], 1, 0.001).raw(_B65536_FRAME[14:]).close(),
            [B(b), *CLOSED()],
        ),
        Case(
            "pipelined_messages",
            "Twenty messages of both types in one TCP write are echoed in order.",
            lambda s: s.closeSending().raw(
                b"".join(
                    frame(OP_TEXT if i % 2 else OP_BINARY, b"message %d" % i) for i in range(20)
                )
                + frame(OP_CLOSE, closePayload(NORMAL))
            ),
            [
                (T if i % 2 else B)(b"message %d" % i)  # type: ignore[operator]
                for i in range(20)
            ]
            + CLOSED(),
        ),
        Case(
            "length_msb_set",
            "5.2: the most significant bit of a 64-bit length MUST be 0: 1002.",
            lambda s: s.raw(bytes([0x82, 0xFF]) + struct.pack(">Q", 1 << 63) + b"\x00" * 4),
            FAILED(PROTOCOL_ERROR),
        ),
    ]
    return cases


@conformance
class Section52BaseFramingTests(ConformanceTestCase):
    """
    RFC 6455 5.2 (base framing protocol): payload lengths in the 7-bit,
    16-bit and 64-bit encodings, frames delivered in odd chops, pipelining
    (Autobahn cases 1.x and 9.x, small).
    """

    cases = _framingCases()


# ---------------------------------------------------------------------------
# 5.3 Client-to-server masking
# ---------------------------------------------------------------------------


@conformance
class Section53MaskingTests(ConformanceTestCase):
    """
    RFC 6455 5.1 and 5.3: a client masks every frame (any key, including
    all-zero); the server MUST close the connection on an unmasked frame
    (with 1002, 7.4.1) and MUST NOT mask its own frames (checked by every
    case: the client rejects masked server frames).
    """

    cases = [
        Case(
            "zero_mask_key",
            "5.3: the all-zero masking key is a valid key.",
            lambda s: s.frame(OP_TEXT, "Hello", mask_key=b"\0\0\0\0").close(),
            [T("Hello"), *CLOSED()],
        ),
        Case(
            "ff_mask_key",
            "5.3: masking key ff ff ff ff.",
            lambda s: s.frame(OP_BINARY, b"\x00\xff", mask_key=b"\xff" * 4).close(),
            [B(b"\x00\xff"), *CLOSED()],
        ),
        Case(
            "unmasked_text",
            "5.1: an unmasked frame from a client fails the connection (1002).",
            lambda s: s.frame(OP_TEXT, "Hello", mask=False),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "unmasked_empty_binary",
            "5.1: an unmasked empty frame fails the connection (1002).",
            lambda s: s.frame(OP_BINARY, b"", mask=False),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "unmasked_ping",
            "5.1: an unmasked ping fails the connection (1002) and is not answered.",
            lambda s: s.frame(OP_PING, "ping", mask=False),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "unmasked_after_valid",
            "5.1: a valid message is echoed, then an unmasked frame fails (1002).",
            lambda s: s.text("Hello").frame(OP_TEXT, "world", mask=False).ping("x"),
            [T("Hello"), *FAILED(PROTOCOL_ERROR)],
        ),
        Case(
            "unmasked_continuation",
            "5.1: an unmasked continuation frame fails (1002), nothing is echoed.",
            lambda s: s.frame(OP_TEXT, "frag", fin=False).frame(
                OP_CONTINUATION, "ment", mask=False
            ),
            FAILED(PROTOCOL_ERROR),
        ),
    ]


# ---------------------------------------------------------------------------
# 5.4 Fragmentation
# ---------------------------------------------------------------------------


@conformance
class Section54FragmentationTests(ConformanceTestCase):
    """
    RFC 6455 5.4 (fragmentation; Autobahn cases 5.x): fragmented messages
    are reassembled, control frames may be injected between fragments but
    are never fragmented themselves, and fragments of different messages
    never interleave.
    """

    cases = [
        Case(
            "text_2_fragments",
            "5.4: a text message in two fragments is echoed whole.",
            lambda s: s.frags(OP_TEXT, ["fragment1", "fragment2"]).close(),
            [T("fragment1fragment2"), *CLOSED()],
        ),
        Case(
            "binary_2_fragments",
            "5.4: a binary message in two fragments is echoed whole, as binary.",
            lambda s: s.frags(OP_BINARY, [b"\x00\x01", b"\xfe\xff"]).close(),
            [B(b"\x00\x01\xfe\xff"), *CLOSED()],
        ),
        Case(
            "text_2_fragments_bytewise",
            "5.4: two fragments delivered one byte at a time.",
            lambda s: s.chops(
                frame(OP_TEXT, "fragment1", fin=False) + frame(OP_CONTINUATION, "fragment2"),
                1,
                0.0005,
            ).close(),
            [T("fragment1fragment2"), *CLOSED()],
        ),
        Case(
            "text_1_byte_fragments",
            "5.4: a message in one-byte fragments.",
            lambda s: s.frags(OP_TEXT, [bytes([c]) for c in b"fragmented"]).close(),
            [T("fragmented"), *CLOSED()],
        ),
        Case(
            "binary_100_fragments",
            "5.4: a binary message in a hundred fragments.",
            lambda s: s.frags(OP_BINARY, [bytes([i]) * 10 for i in range(100)]).close(),
            [B(b"".join(bytes([i]) * 10 for i in range(100))), *CLOSED()],
        ),
        Case(
            "empty_fragments",
            "5.4: empty fragments, also first and last, contribute nothing.",
            lambda s: s.frags(OP_TEXT, ["", "frag", "", "ment", ""]).close(),
            [T("fragment"), *CLOSED()],
        ),
        Case(
            "all_fragments_empty",
            "5.4: three empty fragments make an empty text message.",
            lambda s: s.frags(OP_TEXT, ["", "", ""]).close(),
            [T(""), *CLOSED()],
        ),
        Case(
            "ping_between_fragments",
            "5.4/5.5: a ping between fragments is answered at once, then the echo.",
            lambda s: (
                s.frame(OP_TEXT, "fragment1", fin=False)
                .ping("pongme!")
                .frame(OP_CONTINUATION, "fragment2")
                .close()
            ),
            [PONG("pongme!"), T("fragment1fragment2"), *CLOSED()],
        ),
        Case(
            "ping_between_fragments_bytewise",
            "As above, delivered one byte at a time.",
            lambda s: s.chops(
                frame(OP_TEXT, "fragment1", fin=False)
                + frame(OP_PING, "pongme!")
                + frame(OP_CONTINUATION, "fragment2"),
                1,
                0.0005,
            ).close(),
            [PONG("pongme!"), T("fragment1fragment2"), *CLOSED()],
        ),
        Case(
            "pings_between_binary_fragments",
            "5.4: several pings between binary fragments, answered in order.",
            lambda s: (
                s.frame(OP_BINARY, b"\x01", fin=False)
                .ping("a")
                .frame(OP_CONTINUATION, b"\x02", fin=False)
                .ping("b")
                .ping("c")
                .frame(OP_CONTINUATION, b"\x03")
                .close()
            ),
            [PONG("a"), PONG("b"), PONG("c"), B(b"\x01\x02\x03"), *CLOSED()],
        ),
        Case(
            "pong_between_fragments",
            "5.4/5.5.3: an unsolicited pong between fragments is ignored.",
            lambda s: (
                s.frame(OP_TEXT, "fragment1", fin=False)
                .pong("unsolicited")
                .frame(OP_CONTINUATION, "fragment2")
                .close()
            ),
            [T("fragment1fragment2"), *CLOSED()],
        ),
        Case(
            "pings_between_fragments_with_pause",
            "Autobahn 5.19: the first ping is answered while the message is "
            "still incomplete (before the pause ends), the second too.",
            lambda s: (
                s.frame(OP_TEXT, "fragment1", fin=False)
                .frame(OP_CONTINUATION, "fragment2", fin=False)
                .ping("pongme 1!")
                .awaitEvents(1)
                .mark("after pause")
                .frame(OP_CONTINUATION, "fragment3", fin=False)
                .frame(OP_CONTINUATION, "fragment4", fin=False)
                .ping("pongme 2!")
                .frame(OP_CONTINUATION, "fragment5")
                .close()
            ),
            [
                PONG("pongme 1!"),
                MARK("after pause"),
                PONG("pongme 2!"),
                T("fragment1fragment2fragment3fragment4fragment5"),
                *CLOSED(),
            ],
        ),
        Case(
            "fragmented_ping",
            "5.4/5.5: control frames MUST NOT be fragmented: a ping in two fragments fails (1002).",
            lambda s: s.frame(OP_PING, "fragment1", fin=False).frame(OP_CONTINUATION, "fragment2"),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "fragmented_pong",
            "5.4/5.5: a fragmented pong fails (1002).",
            lambda s: s.frame(OP_PONG, "fragment1", fin=False).frame(OP_CONTINUATION, "fragment2"),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "fragmented_close",
            "5.4/5.5: a close frame with FIN clear fails (1002).",
            lambda s: s.frame(OP_CLOSE, closePayload(NORMAL), fin=False),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "fragmented_ping_inside_message",
            "5.4: a ping with FIN clear inside a fragmented message fails (1002).",
            lambda s: (
                s.frame(OP_TEXT, "frag", fin=False)
                .frame(OP_PING, "x", fin=False)
                .frame(OP_CONTINUATION, "ment")
            ),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "continuation_without_start_fin",
            "5.4: a continuation frame (FIN set) with nothing to continue fails (1002).",
            lambda s: s.frame(OP_CONTINUATION, "non-continuation payload"),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "continuation_without_start_nofin",
            "5.4: a continuation frame (FIN clear) with nothing to continue fails (1002).",
            lambda s: s.frame(OP_CONTINUATION, "non-continuation payload", fin=False),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "continuation_without_start_bytewise",
            "As above, delivered one byte at a time.",
            lambda s: s.chops(frame(OP_CONTINUATION, "non-continuation payload"), 1, 0.0005),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "continuation_after_complete_message",
            "Autobahn 5.15: a message, then a continuation with nothing to "
            "continue: the message is echoed, then 1002.",
            lambda s: s.raw(
                frame(OP_TEXT, "fragment1", fin=False)
                + frame(OP_CONTINUATION, "fragment2")
                + frame(OP_CONTINUATION, "fragment3", fin=False)
                + frame(OP_TEXT, "fragment4")
            ),
            [T("fragment1fragment2"), *FAILED(PROTOCOL_ERROR)],
        ),
        Case(
            "continuation_nofin_then_message",
            "Autobahn 5.16: a continuation with FIN clear and nothing to "
            "continue, then a fragmented message: 1002, nothing echoed.",
            lambda s: s.raw(
                (
                    frame(OP_CONTINUATION, "fragment1", fin=False)
                    + frame(OP_TEXT, "fragment2", fin=False)
                    + frame(OP_CONTINUATION, "fragment3")
                )
                * 2
            ),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "continuation_fin_then_message",
            "Autobahn 5.17: as above with FIN set on the stray continuation.",
            lambda s: s.raw(
                (
                    frame(OP_CONTINUATION, "fragment1")
                    + frame(OP_TEXT, "fragment2", fin=False)
                    + frame(OP_CONTINUATION, "fragment3")
                )
                * 2
            ),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "text_inside_fragmented_text",
            "Autobahn 5.18: a second text frame (not a continuation) inside a fragmented message fails (1002).",
            lambda s: s.frame(OP_TEXT, "fragment1", fin=False).frame(OP_TEXT, "fragment2"),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "binary_inside_fragmented_text",
            "5.4: a binary frame inside a fragmented text message fails (1002).",
            lambda s: (
                s.frame(OP_TEXT, "fragment1", fin=False)
                .frame(OP_BINARY, b"\x00")
                .frame(OP_CONTINUATION, "fragment2")
            ),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "text_inside_fragmented_binary",
            "5.4: a text frame (FIN clear) inside a fragmented binary message fails (1002).",
            lambda s: (
                s.frame(OP_BINARY, b"\x01", fin=False)
                .frame(OP_TEXT, "x", fin=False)
                .frame(OP_CONTINUATION, b"\x02")
            ),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "valid_then_interleaved_messages",
            "5.4: a message is echoed; then interleaved fragments fail (1002) before anything else.",
            lambda s: (
                s.text("Hello")
                .frame(OP_TEXT, "a", fin=False)
                .frame(OP_BINARY, b"b", fin=False)
                .ping("x")
            ),
            [T("Hello"), *FAILED(PROTOCOL_ERROR)],
        ),
    ]


# ---------------------------------------------------------------------------
# 5.5 Control frames, 5.5.2 Ping, 5.5.3 Pong
# ---------------------------------------------------------------------------

_PINGS = [f"payload-{i}" for i in range(10)]


@conformance
class Section55PingPongTests(ConformanceTestCase):
    """
    RFC 6455 5.5 (control frames: payload of 125 bytes at most, never
    fragmented), 5.5.2 (a ping is answered by a pong with the same payload,
    "as soon as is practical"), 5.5.3 (an unsolicited pong is ignored)
    (Autobahn cases 2.x).
    """

    cases = [
        Case(
            "ping_empty",
            "5.5.2: a ping without payload is answered by a pong without payload.",
            lambda s: s.ping().close(),
            [PONG(), *CLOSED()],
        ),
        Case(
            "ping_text_payload",
            "5.5.2: the pong has the ping's Application data.",
            lambda s: s.ping("Hello, world!").close(),
            [PONG("Hello, world!"), *CLOSED()],
        ),
        Case(
            "ping_binary_payload",
            "5.5.2: a binary ping payload comes back unchanged.",
            lambda s: s.ping(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff").close(),
            [PONG(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"), *CLOSED()],
        ),
        Case(
            "ping_125",
            "5.5: a control frame may carry 125 bytes.",
            lambda s: s.ping(b"\xfe" * 125).close(),
            [PONG(b"\xfe" * 125), *CLOSED()],
        ),
        Case(
            "ping_125_bytewise",
            "5.5: a 125-byte ping delivered one byte at a time.",
            lambda s: s.chops(frame(OP_PING, b"\xfe" * 125), 1, 0.0005).close(),
            [PONG(b"\xfe" * 125), *CLOSED()],
        ),
        Case(
            "ping_126",
            "5.5: a control frame over 125 bytes fails the connection (1002), no pong.",
            lambda s: s.ping(b"\xfe" * 126),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "pong_126",
            "5.5: a pong over 125 bytes fails the connection (1002).",
            lambda s: s.pong(b"\xfe" * 126),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "ping_126_after_valid",
            "5.5: a message is echoed, then a 126-byte ping fails (1002).",
            lambda s: s.text("Hello").ping(b"x" * 126).ping("y"),
            [T("Hello"), *FAILED(PROTOCOL_ERROR)],
        ),
        Case(
            "unsolicited_pong_empty",
            "5.5.3: an unsolicited pong without payload is ignored.",
            lambda s: s.pong().close(),
            CLOSED(),
        ),
        Case(
            "unsolicited_pong_payload",
            "5.5.3: an unsolicited pong with payload is ignored.",
            lambda s: s.pong("unsolicited pong payload").close(),
            CLOSED(),
        ),
        Case(
            "unsolicited_pong_then_ping",
            "5.5.3: an unsolicited pong is ignored, the following ping answered.",
            lambda s: s.pong("unsolicited pong payload").ping("ping payload").close(),
            [PONG("ping payload"), *CLOSED()],
        ),
        Case(
            "pong_125_ignored",
            "5.5.3: a 125-byte unsolicited pong is ignored.",
            lambda s: s.pong(b"\x01" * 125).text("after").close(),
            [T("after"), *CLOSED()],
        ),
        Case(
            "ten_pings",
            "5.5.2: ten pings are answered by ten pongs, in order.",
            lambda s: s.raw(b"".join(frame(OP_PING, p) for p in _PINGS)).close(),
            [*(PONG(p) for p in _PINGS), *CLOSED()],
        ),
        Case(
            "ten_pings_bytewise",
            "5.5.2: ten pings delivered in chops of 2 bytes, ten pongs in order.",
            lambda s: s.chops(b"".join(frame(OP_PING, p) for p in _PINGS), 2, 0.0005).close(),
            [*(PONG(p) for p in _PINGS), *CLOSED()],
        ),
        Case(
            "hundred_pings",
            "5.5.2: a hundred pings in one write, a hundred pongs in order.",
            lambda s: s.raw(b"".join(frame(OP_PING, b"%d" % i) for i in range(100))).close(),
            [*(PONG(b"%d" % i) for i in range(100)), *CLOSED()],
        ),
        Case(
            "ping_pong_and_messages",
            "5.5.2/5.6: pings, pongs and messages mixed; pongs and echoes each in order.",
            lambda s: (
                s.text("one")
                .awaitEvents(1)
                .ping("1")
                .awaitEvents(1)
                .pong("ignored")
                .binary(b"two")
                .awaitEvents(1)
                .ping("2")
                .close()
            ),
            [T("one"), PONG("1"), B(b"two"), PONG("2"), *CLOSED()],
        ),
    ]


# ---------------------------------------------------------------------------
# 5.2 / 5.8 Reserved bits and opcodes
# ---------------------------------------------------------------------------


def _reservedCases() -> list[Case]:
    cases = [
        Case(
            "rsv1_text",
            "5.2: RSV1 set without a negotiated extension fails (1002).",
            lambda s: s.frame(OP_TEXT, "Hello", rsv=4),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "rsv2_after_valid_then_ping",
            "Autobahn 3.2: a message is echoed, then RSV2 fails (1002); the "
            "following ping is not answered.",
            lambda s: s.text("Hello").frame(OP_TEXT, "Hello", rsv=2).ping("ping"),
            [T("Hello"), *FAILED(PROTOCOL_ERROR)],
        ),
        Case(
            "rsv3_after_valid_framewise",
            "Autobahn 3.3: as above with RSV1+RSV2, frame-wise chops.",
            lambda s: (
                s.text("Hello").sleep(0.05).frame(OP_TEXT, "Hello", rsv=6).sleep(0.05).ping("ping")
            ),
            [T("Hello"), *FAILED(PROTOCOL_ERROR)],
        ),
        Case(
            "rsv4_after_valid_bytewise",
            "Autobahn 3.4: as above with RSV1, octet-wise chops.",
            lambda s: s.chops(
                frame(OP_TEXT, "Hello") + frame(OP_TEXT, "Hello", rsv=4) + frame(OP_PING, "p"),
                1,
                0.0005,
            ),
            [T("Hello"), *FAILED(PROTOCOL_ERROR)],
        ),
        Case(
            "rsv5_binary",
            "Autobahn 3.5: a binary frame with RSV1+RSV3 fails (1002).",
            lambda s: s.frame(OP_BINARY, b"\x00\xff", rsv=5),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "rsv6_ping",
            "Autobahn 3.6: a ping with RSV1+RSV2 fails (1002), no pong.",
            lambda s: s.frame(OP_PING, "ping", rsv=6),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "rsv7_close",
            "Autobahn 3.7: a close frame with all RSV bits fails (1002).",
            lambda s: s.frame(OP_CLOSE, closePayload(NORMAL), rsv=7),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "rsv_on_continuation",
            "5.2: RSV set on a continuation frame fails (1002), nothing echoed.",
            lambda s: s.frame(OP_TEXT, "frag", fin=False).frame(OP_CONTINUATION, "ment", rsv=1),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "rsv_on_pong",
            "5.2: RSV set on a pong fails (1002).",
            lambda s: s.frame(OP_PONG, "x", rsv=2),
            FAILED(PROTOCOL_ERROR),
        ),
    ]
    for rsv in range(1, 8):
        cases.append(
            Case(
                f"rsv_{rsv}_empty_text",
                f"5.2: RSV bits {rsv:03b} on an empty text frame fail (1002).",
                lambda s, rsv=rsv: s.frame(OP_TEXT, "", rsv=rsv),
                FAILED(PROTOCOL_ERROR),
            )
        )
    for op in [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]:
        kind = "non-control" if op < 8 else "control"
        cases.append(
            Case(
                f"opcode_{op}",
                f"5.2: reserved {kind} opcode {op} fails the connection (1002).",
                lambda s, op=op: s.frame(op, ""),
                FAILED(PROTOCOL_ERROR),
            )
        )
        cases.append(
            Case(
                f"opcode_{op}_with_payload_after_valid",
                f"Autobahn 4.x: a message is echoed, then reserved opcode {op} "
                "with payload fails (1002); the following ping is not answered.",
                lambda s, op=op: s.text("Hello").frame(op, "reserved opcode payload").ping("p"),
                [T("Hello"), *FAILED(PROTOCOL_ERROR)],
            )
        )
    cases.append(
        Case(
            "opcode_3_inside_fragmented_message",
            "5.2: a reserved opcode between fragments fails (1002).",
            lambda s: (
                s.frame(OP_TEXT, "frag", fin=False).frame(3, "x").frame(OP_CONTINUATION, "ment")
            ),
            FAILED(PROTOCOL_ERROR),
        )
    )
    return cases


@conformance
class Section58ReservedBitsAndOpcodesTests(ConformanceTestCase):
    """
    RFC 6455 5.2 and 5.8 (extensibility): RSV1-3 MUST be 0 unless an
    extension defining them was negotiated (none is here), and a reserved
    opcode (3-7, 11-15) MUST fail the connection; 7.4.1: with 1002.
    Everything before the offending frame is still processed (Autobahn
    cases 3.x and 4.x).
    """

    cases = _reservedCases()


# ---------------------------------------------------------------------------
# 5.5.1 and 7.1 Closing the connection
# ---------------------------------------------------------------------------


@conformance
class Section71ClosingHandshakeTests(ConformanceTestCase):
    """
    RFC 6455 5.5.1 (the Close frame: answered by a Close; no data after it)
    and 7.1.1-7.1.6 (closing: the server closes TCP first, promptly; a ping
    or data after the client's close is not processed) (Autobahn 7.1.x).
    """

    cases = [
        Case(
            "echo_then_close",
            "7.1.1 (Autobahn 7.1.1): a message is echoed, then the closing handshake.",
            lambda s: s.text("Hello World!").close(),
            [T("Hello World!"), *CLOSED()],
        ),
        Case(
            "close_immediately",
            "7.1.2: the server answers a close frame and closes TCP.",
            lambda s: s.close(),
            CLOSED(),
        ),
        Case(
            "two_close_frames",
            "5.5.1 (Autobahn 7.1.2): a second close frame is ignored; one close back.",
            lambda s: s.close().close(),
            CLOSED(),
        ),
        Case(
            "ping_after_close",
            "5.5.2 (Autobahn 7.1.3): a ping after the client's close is not answered.",
            lambda s: s.close().ping("after close"),
            CLOSED(),
        ),
        Case(
            "text_after_close",
            "5.5.1 (Autobahn 7.1.4): a message after the client's close is not echoed.",
            lambda s: s.close().text("after close"),
            CLOSED(),
        ),
        Case(
            "data_and_pings_after_close_one_write",
            "5.5.1: everything after the close frame in the same write is ignored.",
            lambda s: s.closeSending().raw(
                frame(OP_CLOSE, closePayload(NORMAL))
                + frame(OP_TEXT, "a")
                + frame(OP_PING, "b")
                + frame(OP_BINARY, b"c")
                + frame(OP_CLOSE, closePayload(NORMAL))
            ),
            CLOSED(),
        ),
        Case(
            "garbage_after_close",
            "5.5.1: even invalid frames after the close frame are ignored.",
            lambda s: s.closeSending().raw(
                frame(OP_CLOSE, closePayload(NORMAL)) + frame(5, "x", rsv=7)
            ),
            CLOSED(),
        ),
        Case(
            "close_inside_fragmented_message",
            "Autobahn 7.1.5: a close between fragments closes normally; the "
            "message is never completed or echoed.",
            lambda s: (
                s.frame(OP_TEXT, "fragment1", fin=False).close().frame(OP_CONTINUATION, "fragment2")
            ),
            CLOSED(),
        ),
        Case(
            "close_inside_fragmented_binary_one_write",
            "7.1.2: a close between binary fragments, all in one write.",
            lambda s: s.closeSending().raw(
                frame(OP_BINARY, b"\x01", fin=False)
                + frame(OP_CLOSE, closePayload(NORMAL))
                + frame(OP_CONTINUATION, b"\x02")
            ),
            CLOSED(),
        ),
        Case(
            "large_message_close_ping",
            "Autobahn 7.1.6: a 256 KiB message, a close and a ping in one write: "
            "the message is echoed, then the close, no pong.",
            lambda s: s.closeSending().raw(
                frame(OP_TEXT, textPayload(256 * 1024))
                + frame(OP_CLOSE, closePayload(NORMAL))
                + frame(OP_PING, "ping")
            ),
            [T(textPayload(256 * 1024)), *CLOSED()],
            timeout=5.0,
        ),
        Case(
            "close_bytewise",
            "7.1.2: a close frame delivered one byte at a time.",
            lambda s: s.closeSending().chops(
                frame(OP_CLOSE, closePayload(NORMAL, "bye")), 1, 0.0005
            ),
            CLOSED(),
        ),
    ]


# ---------------------------------------------------------------------------
# 7.1.7 Failing the connection
# ---------------------------------------------------------------------------


@conformance
class Section717FailTests(ConformanceTestCase):
    """
    RFC 6455 7.1.7 (_Fail the WebSocket Connection_): the server sends a
    close frame with the appropriate code, then closes TCP (7.1.1) and MUST
    NOT keep processing data, including a close frame in answer: so it
    closes TCP promptly even if the client never answers.
    """

    cases = [
        Case(
            "reserved_opcode_no_reply",
            "7.1.7: after failing on a reserved opcode the server closes TCP by itself.",
            lambda s: s.frame(4, "x"),
            FAILED(PROTOCOL_ERROR),
            reply=False,
        ),
        Case(
            "invalid_utf8_no_reply",
            "7.1.7/8.1: after failing on invalid UTF-8 the server closes TCP by itself.",
            lambda s: s.text(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"),
            FAILED(INVALID_PAYLOAD),
            reply=False,
        ),
        Case(
            "unmasked_no_reply",
            "7.1.7/5.1: after failing on an unmasked frame the server closes TCP by itself.",
            lambda s: s.frame(OP_TEXT, "x", mask=False),
            FAILED(PROTOCOL_ERROR),
            reply=False,
        ),
        Case(
            "ping_126_no_reply",
            "7.1.7/5.5: after failing on an oversized ping the server closes TCP by itself.",
            lambda s: s.ping(b"x" * 126),
            FAILED(PROTOCOL_ERROR),
            reply=False,
        ),
        Case(
            "too_big_no_reply",
            "7.1.7/10.4: after failing on an oversized message the server closes TCP by itself.",
            lambda s: s.binary(b"x" * 2000),
            FAILED(MESSAGE_TOO_BIG),
            server={"maxMessageSize": 1024},
            reply=False,
        ),
        Case(
            "data_after_failure_ignored",
            "7.1.7: after failing, data that follows is not processed (no echo, no pong).",
            lambda s: s.raw(
                frame(OP_TEXT, "Hello", rsv=1)
                + frame(OP_TEXT, "ignored")
                + frame(OP_PING, "ignored")
            ),
            FAILED(PROTOCOL_ERROR),
            reply=False,
        ),
    ]


# ---------------------------------------------------------------------------
# 7.4 Status codes and close frame payloads
# ---------------------------------------------------------------------------

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]
VALID_CODES += [3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


def _statusCases() -> list[Case]:
    cases = []
    for code in VALID_CODES:
        cases.append(
            Case(
                f"close_code_{code}",
                f"7.4/5.5.1 (Autobahn 7.7.x): close code {code} is echoed.",
                lambda s, code=code: s.close(code),
                CLOSED(code),
            )
        )
    for code in INVALID_CODES:
        cases.append(
            Case(
                f"close_code_{code}_invalid",
                f"7.4.1/7.4.2 (Autobahn 7.9.x): close code {code} MUST NOT be "
                "sent; receiving it fails the connection (1002).",
                lambda s, code=code: s.close(code),
                FAILED(PROTOCOL_ERROR),
            )
        )
    cases += [
        Case(
            "close_empty_payload",
            "5.5.1 (Autobahn 7.3.1): a close without payload is answered by a "
            "close without payload (or 1000).",
            lambda s: s.close(None),
            CLOSED((None, NORMAL)),
        ),
        Case(
            "close_1_byte_payload",
            "5.5.1 (Autobahn 7.3.2): a 1-byte close payload is invalid (1002).",
            lambda s: s.closeSending().frame(OP_CLOSE, b"\x03"),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "close_1000_no_reason",
            "5.5.1 (Autobahn 7.3.3): close 1000 without a reason.",
            lambda s: s.close(NORMAL),
            CLOSED(),
        ),
        Case(
            "close_1000_with_reason",
            "5.5.1 (Autobahn 7.3.4): close 1000 with a reason.",
            lambda s: s.close(NORMAL, "Hello World!"),
            CLOSED(),
        ),
        Case(
            "close_1000_utf8_reason",
            "5.5.1: a reason with multi-byte UTF-8.",
            lambda s: s.close(NORMAL, "κόσμε 𝄞"),
            CLOSED(),
        ),
        Case(
            "close_123_byte_reason",
            "5.5 (Autobahn 7.3.5): a 123-byte reason makes the 125-byte maximum.",
            lambda s: s.close(NORMAL, "*" * 123),
            CLOSED(),
        ),
        Case(
            "close_124_byte_reason",
            "5.5 (Autobahn 7.3.6): a 124-byte reason makes a 126-byte control frame (1002).",
            lambda s: s.close(NORMAL, "*" * 124),
            FAILED(PROTOCOL_ERROR),
        ),
        Case(
            "close_invalid_utf8_reason",
            "5.5.1/8.1 (Autobahn 7.5.1): a reason that is not UTF-8 fails (1007).",
            lambda s: s.close(
                NORMAL, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"
            ),
            FAILED(INVALID_PAYLOAD),
        ),
        Case(
            "close_truncated_utf8_reason",
            "5.5.1/8.1: a reason ending in a truncated sequence fails (1007).",
            lambda s: s.close(NORMAL, KOSME + b"\xce"),
            FAILED(INVALID_PAYLOAD),
        ),
        Case(
            "close_invalid_code_and_reason",
            "7.4: an invalid code with a valid reason fails (1002).",
            lambda s: s.close(1005, "reason"),
            FAILED(PROTOCOL_ERROR),
        ),
    ]
    return cases


@conformance
class Section74StatusCodeTests(ConformanceTestCase):
    """
    RFC 6455 7.4 (status codes: 1000-1003 and 1007-1014 defined, 3000-4999
    for libraries and applications; 1004-1006, 1015 and the rest of
    0-2999 are not to be sent) and 5.5.1 (the close payload: empty, or a
    code plus a UTF-8 reason, 125 bytes at most).  A valid code is echoed
    back (Autobahn cases 7.3.x, 7.5.x, 7.7.x, 7.9.x, 7.13.x).
    """

    cases = _statusCases()


# ---------------------------------------------------------------------------
# 8.1 UTF-8
# ---------------------------------------------------------------------------

VALID_UTF8 = {
    "ascii": b"Hello-world",
    "latin": "Hello-µ@ßöäüàá-UTF-8!!".encode(),
    "kosme": KOSME,
    "nul": b"\x00",
    "u0080": b"\xc2\x80",
    "u07ff": b"\xdf\xbf",
    "u0800": b"\xe0\xa0\x80",
    "ud7ff": b"\xed\x9f\xbf",
    "ue000": b"\xee\x80\x80",
    "ufdd0_nonchar": b"\xef\xb7\x90",
    "ufdef_nonchar": b"\xef\xb7\xaf",
    "ufffd": b"\xef\xbf\xbd",
    "ufffe_nonchar": b"\xef\xbf\xbe",
    "uffff_nonchar": b"\xef\xbf\xbf",
    "u10000": b"\xf0\x90\x80\x80",
    "u1fffe_nonchar": b"\xf0\x9f\xbf\xbe",
    "u10fffe_nonchar": b"\xf4\x8f\xbf\xbe",
    "u10ffff": b"\xf4\x8f\xbf\xbf",
    "mixed": "aé€𝄞\U0010ffff\ufeffz".encode(),
}

INVALID_UTF8 = {
    # Overlong encodings.
    "overlong_c0_80": b"\xc0\x80",
    "overlong_slash_c0_af": b"\xc0\xaf",
    "overlong_c1_bf": b"\xc1\xbf",
    "overlong_e0_80_80": b"\xe0\x80\x80",
    "overlong_slash_e0_80_af": b"\xe0\x80\xaf",
    "overlong_e0_9f_bf": b"\xe0\x9f\xbf",
    "overlong_f0_80_80_80": b"\xf0\x80\x80\x80",
    "overlong_slash_f0_80_80_af": b"\xf0\x80\x80\xaf",
    "overlong_f0_8f_bf_bf": b"\xf0\x8f\xbf\xbf",
    "five_byte_f8_88_80_80_80": b"\xf8\x88\x80\x80\x80",
    "six_byte_fc_84_80_80_80_80": b"\xfc\x84\x80\x80\x80\x80",
    # UTF-16 surrogates.
    "surrogate_d800": b"\xed\xa0\x80",
    "surrogate_db7f": b"\xed\xad\xbf",
    "surrogate_db80": b"\xed\xae\x80",
    "surrogate_dbff": b"\xed\xaf\xbf",
    "surrogate_dc00": b"\xed\xb0\x80",
    "surrogate_df80": b"\xed\xbe\x80",
    "surrogate_dfff": b"\xed\xbf\xbf",
    "surrogate_pair": b"\xed\xa0\x80\xed\xb0\x80",
    "surrogate_in_text": KOSME + b"\xed\xa0\x80edited",
    # Beyond U+10FFFF.
    "u110000_f4_90_80_80": b"\xf4\x90\x80\x80",
    "f7_bf_bf_bf": b"\xf7\xbf\xbf\xbf",
    "f5_80_80_80": b"\xf5\x80\x80\x80",
    "lone_f5": b"\xf5",
    "lone_f8": b"\xf8",
    "lone_fe": b"\xfe",
    "lone_ff": b"\xff",
    "fe_fe_ff_ff": b"\xfe\xfe\xff\xff",
    # Lone continuation bytes.
    "lone_80": b"\x80",
    "lone_bf": b"\xbf",
    "continuations_80_bf_80_bf": b"\x80\xbf\x80\xbf",
    "extra_continuation": KOSME + b"\x80",
    "continuation_after_ascii": b"Hello\x80world",
    # Sequences truncated at the end of the message.
    "truncated_c2": b"\xc2",
    "truncated_df": b"\xdf",
    "truncated_e0": b"\xe0",
    "truncated_e0_a0": b"\xe0\xa0",
    "truncated_ef_bf": b"\xef\xbf",
    "truncated_f0": b"\xf0",
    "truncated_f0_90": b"\xf0\x90",
    "truncated_f0_90_80": b"\xf0\x90\x80",
    "truncated_f4_8f_bf": b"\xf4\x8f\xbf",
    "truncated_after_text": KOSME + b"\xce",
    # Sequences cut short by another character.
    "incomplete_c2_41": b"\xc2\x41",
    "incomplete_e0_a0_41": b"\xe0\xa0\x41",
    "incomplete_f0_90_80_41": b"\xf0\x90\x80\x41",
    "incomplete_c2_c2_80": b"\xc2\xc2\x80",
}


def _splitEverywhere(data: bytes) -> bytes:
    """One two-fragment message per split position of C{data}."""
    return b"".join(
        frame(OP_TEXT, data[:i], fin=False) + frame(OP_CONTINUATION, data[i:])
        for i in range(len(data) + 1)
    )


def _failFast(name: str, parts: tuple[bytes, bytes, bytes], chops: bool, doc: str) -> Case:
    """
    The second of three parts makes the text invalid: the client waits
    (up to L{FAIL_FAST_WAIT}) before sending the third, and the server's
    1007 must come before the mark.
    """
    if chops:
        data = frame(OP_TEXT, b"".join(parts))
        head = headerLength(len(b"".join(parts)))
        cut1 = head + len(parts[0])
        cut2 = cut1 + len(parts[1])
        pieces = [data[:cut1], data[cut1:cut2], data[cut2:]]
    else:
        pieces = [
            frame(OP_TEXT, parts[0], fin=False),
            frame(OP_CONTINUATION, parts[1], fin=False),
            frame(OP_CONTINUATION, parts[2]),
        ]
    return Case(
        name,
        doc,
        lambda s: (
            s.raw(pieces[0])
            .sleep(0.2)
            .mark("2nd part sent")
            .raw(pieces[1])
            .awaitClose()
            .mark("3rd part sent")
            .raw(pieces[2])
        ),
        [MARK("2nd part sent"), CLOSE(INVALID_PAYLOAD), MARK("3rd part sent"), EOF],
    )


def _utf8Cases() -> list[Case]:
    cases = [
        Case(
            "empty_text",
            "8.1 (Autobahn 6.1.1): an empty text message is echoed.",
            lambda s: s.text("").close(),
            [T(""), *CLOSED()],
        ),
    ]
    for name, data in VALID_UTF8.items():
        cases.append(
            Case(
                f"valid_{name}",
                f"8.1 (Autobahn 6.2/6.5-6.23): valid UTF-8 {data!r} is echoed.",
                lambda s, data=data: s.text(data).close(),
                [T(data), *CLOSED()],
            )
        )
        cases.append(
            Case(
                f"valid_{name}_1_byte_fragments",
                f"8.1/5.6 (Autobahn 6.2.3): valid UTF-8 {data!r} in one-byte "
                "fragments (code points split across fragments) is echoed.",
                lambda s, data=data: s.frags(OP_TEXT, [bytes([c]) for c in data]).close(),
                [T(data), *CLOSED()],
            )
        )
    for name, data in [("kosme", KOSME), ("mixed", VALID_UTF8["mixed"])]:
        cases.append(
            Case(
                f"valid_{name}_split_in_two_everywhere",
                f"8.1 (Autobahn 6.2.2): {data!r} split into two fragments at "
                "every position, one message each, all echoed.",
                lambda s, data=data: s.raw(_splitEverywhere(data)).close(),
                [*(T(data) for _ in range(len(data) + 1)), *CLOSED()],
            )
        )
    cases.append(
        Case(
            "valid_mixed_bytewise_chops",
            "8.1: one frame with multi-byte text, delivered one byte at a time.",
            lambda s: s.chops(frame(OP_TEXT, VALID_UTF8["mixed"]), 1, 0.0005).close(),
            [T(VALID_UTF8["mixed"]), *CLOSED()],
        )
    )
    for name, data in INVALID_UTF8.items():
        cases.append(
            Case(
                f"invalid_{name}",
                f"8.1 (Autobahn 6.3-6.21): invalid UTF-8 {data!r} fails the connection (1007).",
                lambda s, data=data: s.text(data),
                FAILED(INVALID_PAYLOAD),
            )
        )
        cases.append(
            Case(
                f"invalid_{name}_1_byte_fragments",
                f"8.1: invalid UTF-8 {data!r} in one-byte fragments fails (1007).",
                lambda s, data=data: s.frags(OP_TEXT, [bytes([c]) for c in data]),
                FAILED(INVALID_PAYLOAD),
            )
        )
    cases += [
        Case(
            "valid_then_invalid",
            "8.1: a valid message is echoed, then an invalid one fails (1007).",
            lambda s: s.text(KOSME).text(b"\xed\xa0\x80").text("never"),
            [T(KOSME), *FAILED(INVALID_PAYLOAD)],
        ),
        Case(
            "truncated_at_final_empty_fragment",
            "8.1: a sequence left incomplete when the message ends (with an "
            "empty final fragment) fails (1007).",
            lambda s: s.frags(OP_TEXT, [KOSME + b"\xce", b""]),
            FAILED(INVALID_PAYLOAD),
        ),
        Case(
            "truncated_across_fragments",
            "8.1: a four-byte sequence spread over fragments but one byte short fails (1007).",
            lambda s: s.frags(OP_TEXT, [b"\xf0", b"\x90", b"\x80"]),
            FAILED(INVALID_PAYLOAD),
        ),
        Case(
            "binary_not_validated",
            "5.6: binary data is not UTF-8 validated.",
            lambda s: s.binary(b"\xed\xa0\x80\xff\xc0\x80").close(),
            [B(b"\xed\xa0\x80\xff\xc0\x80"), *CLOSED()],
        ),
        _failFast(
            "fail_fast_2nd_of_3_fragments",
            (KOSME, b"\xf4\x90\x80\x80", b"edited"),
            False,
            "8.1 (Autobahn 6.4.1): the 2nd of 3 fragments holds U+110000; the "
            "1007 close arrives before the 3rd fragment is sent.",
        ),
        _failFast(
            "fail_fast_2nd_of_3_fragments_one_byte",
            (KOSME + b"\xf4", b"\x90", b"\x80\x80edited"),
            False,
            "8.1 (Autobahn 6.4.2): the 2nd of 3 fragments is the single byte "
            "that makes the text invalid; 1007 before the 3rd is sent.",
        ),
        _failFast(
            "fail_fast_2nd_of_3_chops",
            (KOSME, b"\xf4\x90\x80\x80", b"edited"),
            True,
            "8.1 (Autobahn 6.4.3): one frame in 3 chops, the 2nd holds "
            "U+110000; 1007 before the 3rd chop is sent.",
        ),
        _failFast(
            "fail_fast_2nd_of_3_chops_one_byte",
            (KOSME + b"\xf4", b"\x90", b"\x80\x80edited"),
            True,
            "8.1 (Autobahn 6.4.4): one frame in 3 chops, the 2nd is the single "
            "invalid byte; 1007 before the 3rd chop is sent.",
        ),
        _failFast(
            "fail_fast_surrogate_2nd_of_3_fragments",
            (b"Hello", b"\xed\xa0\x80", b"world"),
            False,
            "8.1: the 2nd of 3 fragments is a surrogate; 1007 before the 3rd is sent.",
        ),
        _failFast(
            "fail_fast_lone_continuation_2nd_of_3_chops",
            (b"Hello", b"\x80", b"world"),
            True,
            "8.1: the 2nd of 3 chops is a lone continuation byte; 1007 before the 3rd.",
        ),
    ]
    return cases


@conformance
class Section81Utf8Tests(ConformanceTestCase):
    """
    RFC 6455 8.1 (and 5.6): text is UTF-8 (RFC 3629: no overlongs, no
    surrogates, nothing above U+10FFFF; noncharacters are valid); a text
    message (or a close reason) that is not fails the connection with 1007
    (7.4.1), even when the sequence is split across fragments.  Invalid
    bytes fail at once, without waiting for the rest of the frame or message
    (Autobahn cases 6.x, including the fail-fast 6.4.x).
    """

    cases = _utf8Cases()


# ---------------------------------------------------------------------------
# 10.4 Limits
# ---------------------------------------------------------------------------


def _fragmented4MiB() -> bytes:
    data = bigText(4 * MiB)
    n = len(data) // 64
    return b"".join(
        frame(OP_TEXT if i == 0 else OP_CONTINUATION, data[i * 64 : (i + 1) * 64], fin=i == n - 1)
        for i in range(n)
    )


def _tooBigHead(opcode: int, length: int) -> bytes:
    """The head of a masked frame announcing C{length} bytes (none follow)."""
    return bytes([0x80 | opcode, 0xFF]) + struct.pack(">Q", length) + b"\x01\x02\x03\x04"


SMALL = {"maxMessageSize": 1024}


@conformance
class Section104LimitsTests(ConformanceTestCase):
    """
    RFC 6455 10.4 (implementation-specific limits on frame and message
    size, to avoid denial of service): up to the limit (16 MiB by default)
    messages are echoed however they are framed (Autobahn 9.x); beyond it
    the connection fails with 1009 (7.4.1), as soon as the size is known.
    """

    cases = [
        Case(
            "text_16MiB",
            "10.4 (Autobahn 9.1.6): a 16 MiB text message (the default limit) is echoed.",
            lambda s: s.text(bigText(16 * MiB)).close(),
            lambda: [T(bigText(16 * MiB)), *CLOSED()],
            timeout=30.0,
        ),
        Case(
            "binary_16MiB",
            "10.4 (Autobahn 9.2.6): a 16 MiB binary message is echoed.",
            lambda s: s.binary(bigBinary(16 * MiB)).close(),
            lambda: [B(bigBinary(16 * MiB)), *CLOSED()],
            timeout=30.0,
        ),
        Case(
            "text_4MiB_in_64_byte_fragments",
            "10.4 (Autobahn 9.3.1): a 4 MiB text message in 65536 fragments of 64 bytes is echoed.",
            lambda s: s.raw(_fragmented4MiB()).close(),
            lambda: [T(bigText(4 * MiB)), *CLOSED()],
            timeout=30.0,
        ),
        Case(
            "default_limit_exceeded_by_head",
            "10.4: a frame announcing 16 MiB + 1 fails with 1009 at once, "
            "without waiting for the payload.",
            lambda s: s.raw(_tooBigHead(OP_BINARY, 16 * MiB + 1)),
            FAILED(MESSAGE_TOO_BIG),
        ),
        Case(
            "at_limit",
            "10.4: a message of exactly maxMessageSize bytes is echoed.",
            lambda s: s.text(textPayload(1024)).close(),
            [T(textPayload(1024)), *CLOSED()],
            server=SMALL,
        ),
        Case(
            "at_limit_fragmented",
            "10.4: a message of exactly maxMessageSize bytes in fragments is echoed.",
            lambda s: s.frags(
                OP_BINARY, [binaryPayload(1024)[i : i + 100] for i in range(0, 1024, 100)]
            ).close(),
            [B(binaryPayload(1024)), *CLOSED()],
            server=SMALL,
        ),
        Case(
            "text_over_limit",
            "10.4/7.4.1: a text message one byte over the limit fails (1009).",
            lambda s: s.text(textPayload(1025)),
            FAILED(MESSAGE_TOO_BIG),
            server=SMALL,
        ),
        Case(
            "binary_over_limit",
            "10.4/7.4.1: a binary message one byte over the limit fails (1009).",
            lambda s: s.binary(binaryPayload(1025)),
            FAILED(MESSAGE_TOO_BIG),
            server=SMALL,
        ),
        Case(
            "fragments_over_limit",
            "10.4: fragments each under the limit but together over it fail (1009).",
            lambda s: s.frags(OP_TEXT, [textPayload(400)] * 3),
            FAILED(MESSAGE_TOO_BIG),
            server=SMALL,
        ),
        Case(
            "fragments_over_limit_fail_fast",
            "10.4: the fragment that crosses the limit fails (1009) before the rest is sent.",
            lambda s: (
                s.frame(OP_BINARY, binaryPayload(600), fin=False)
                .frame(OP_CONTINUATION, binaryPayload(600), fin=False)
                .awaitClose()
                .mark("rest sent")
                .frame(OP_CONTINUATION, b"x")
            ),
            [CLOSE(MESSAGE_TOO_BIG), MARK("rest sent"), EOF],
            server=SMALL,
        ),
        Case(
            "over_limit_by_head",
            "10.4: a frame announcing 1 GiB fails with 1009 without waiting for the payload.",
            lambda s: s.raw(_tooBigHead(OP_TEXT, 1 << 30)),
            FAILED(MESSAGE_TOO_BIG),
            server=SMALL,
        ),
        Case(
            "valid_then_over_limit",
            "10.4: a message under the limit is echoed, then one over it fails (1009).",
            lambda s: s.binary(b"small").binary(binaryPayload(2048)).ping("x"),
            [B(b"small"), *FAILED(MESSAGE_TOO_BIG)],
            server=SMALL,
        ),
        Case(
            "control_frames_not_counted",
            "10.4: with a 100-byte limit a 125-byte ping is still answered.",
            lambda s: s.ping(b"p" * 125).close(),
            [PONG(b"p" * 125), *CLOSED()],
            server={"maxMessageSize": 100},
        ),
    ]
