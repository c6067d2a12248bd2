"""
Sans-I/O tests of permessage-deflate (RFC 7692): negotiation (sections 5,
6 and 7.1), compression and decompression (7.2, with the worked examples of
7.2.3 byte for byte), and L{FrameReader}'s use of an L{Inflater} (RSV1
rules of section 6, size limits, corrupt data).

Compressed data is checked against plain C{zlib} on the other side, and
client frames are built by L{tests.rawclients.build_frame}, an encoder
independent of the one under test.
"""

from __future__ import annotations

import os
import tracemalloc
import zlib
from collections.abc import Iterable, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.rawclients import build_frame
from txratchet.websocket import deflate
from txratchet.websocket.deflate import (
    TAIL,
    Agreement,
    CorruptMessage,
    DeflateOffer,
    DeflateParams,
    Deflater,
    Inflater,
    MalformedExtensions,
    MessageTooBig,
    PerMessageDeflate,
    parseExtensions,
)
from txratchet.websocket.rfc6455 import (
    BINARY,
    CLOSE,
    CONTINUATION,
    INVALID_PAYLOAD,
    MESSAGE_TOO_BIG,
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
)

FAST = settings(max_examples=40, deadline=None)

#: RSV bits as L{build_frame} takes them (RSV1 = 4, RSV2 = 2, RSV3 = 1).
RSV1, RSV2, RSV3 = 4, 2, 1

# RFC 7692 7.2.3: the worked examples, byte for byte.
HELLO = bytes([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])  # 7.2.3.1
HELLO_FLUSHED = HELLO + bytes([0x00, 0x00, 0xFF, 0xFF])  # 7.2.3.1, before stripping
HELLO_AGAIN = bytes([0xF2, 0x00, 0x11, 0x00, 0x00])  # 7.2.3.2, with context takeover
HELLO_STORED = bytes([0x00, 0x05, 0x00, 0xFA, 0xFF, 0x48, 0x65, 0x6C, 0x6C, 0x6F, 0x00])  # 7.2.3.3
HELLO_BFINAL = bytes([0xF3, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00, 0x00])  # 7.2.3.4
HELLO_TWO_BLOCKS = bytes(
    [0xF2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xCA, 0xC9, 0xC9, 0x07, 0x00]
)  # 7.2.3.5
EMPTY_BLOCK = b"\x00"  # 7.2.3.6: an empty stored block, tail stripped

DEFAULT = PerMessageDeflate()
ALL_BITS = range(8, 16)


def params(
    serverNoContextTakeover: bool = False,
    clientNoContextTakeover: bool = False,
    serverMaxWindowBits: int = 15,
    clientMaxWindowBits: int = 15,
) -> DeflateParams:
    return DeflateParams(
        serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits
    )


def agreement(
    serverNoContextTakeover: bool = False,
    clientNoContextTakeover: bool = False,
    serverMaxWindowBits: int = 15,
    clientMaxWindowBits: int = 15,
) -> Agreement:
    """
    The server's view of L{params}: local = C{server*}, remote = C{client*}.
    """
    return params(
        serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits
    ).agreement("server")


def respond(
    headers: str | Sequence[str],
    config: PerMessageDeflate = DEFAULT,
    noContextTakeover: bool = False,
) -> str | None:
    """
    The server's C{Sec-WebSocket-Extensions} answer to a request carrying
    C{headers} (one value or several header lines), or C{None}.
    """
    if isinstance(headers, str):
        headers = [headers]
    agreed = config.negotiate(headers, noContextTakeover=noContextTakeover)
    return None if agreed is None else agreed.responseHeader()


def clientCompress(
    messages: Iterable[bytes], bits: int = 15, takeover: bool = True, level: int = 6
) -> list[bytes]:
    """
    What an RFC 7692 client sends: each message compressed with plain zlib,
    sync-flushed, the C{00 00 ff ff} tail stripped (7.2.1).
    """
    out = []
    compressor = zlib.compressobj(level, zlib.DEFLATED, -bits)
    for message in messages:
        if not takeover:
            compressor = zlib.compressobj(level, zlib.DEFLATED, -bits)
        data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(TAIL)
        out.append(data[:-4])
    return out


def clientInflate(payloads: Iterable[bytes], bits: int, takeover: bool = True) -> list[bytes]:
    """
    What an RFC 7692 client does with our payloads (7.2.2): append the tail,
    inflate with plain zlib, one decompressor per connection or per message.
    """
    out = []
    decompressor = zlib.decompressobj(-bits)
    for payload in payloads:
        if not takeover:
            decompressor = zlib.decompressobj(-bits)
        out.append(decompressor.decompress(payload + TAIL) + decompressor.flush())
        assert not decompressor.unconsumed_tail
    return out


def frame(
    opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0, mask: bool = True
) -> bytes:
    return build_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask)


def reader(
    agreed: DeflateParams | None = None,
    maxMessageSize: int = 1 << 20,
    requireMask: bool = True,
) -> FrameReader:
    agreed = agreed or params()
    return FrameReader(
        maxMessageSize,
        requireMask=requireMask,
        inflater=Inflater(agreed.agreement("server"), maxMessageSize),
    )


def feed(r: FrameReader, data: bytes, chunk: int | None = None) -> list[Event]:
    if chunk is None:
        return r.receive(data)
    events: list[Event] = []
    for i in range(0, len(data), chunk):
        events += r.receive(data[i : i + chunk])
    return events


def failedCode(events: list[Event]) -> int | None:
    for event in events:
        if isinstance(event, Failed):
            return event.code
    return None


def bomb(inflatedMiB: int) -> bytes:
    """
    A DEFLATE stream (tail stripped) that inflates to C{inflatedMiB} MiB of
    zeros, built without ever holding them: after the first MiB, zlib emits
    the same bytes for every further MiB of zeros.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(1 << 20)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    steady = compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert steady == compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return (first + steady * (inflatedMiB - 1))[:-4]


# ---------------------------------------------------------------------------
# Negotiation (RFC 7692 5, 7.1)
# ---------------------------------------------------------------------------

PMD = "permessage-deflate"
S12 = "server_max_window_bits=12"  # the default configuration's window

#: (request header value(s), expected response header or None for
#: "declined", with the default configuration).
NEGOTIATION_TABLE: list[tuple[str | list[str], str | None]] = [
    # No parameters: the server announces its smaller window (7.1.2.1).
    (PMD, f"{PMD}; {S12}"),
    # 7.1.1.1 / 7.1.1.2: accepted by echoing them.
    (f"{PMD}; server_no_context_takeover", f"{PMD}; server_no_context_takeover; {S12}"),
    (f"{PMD}; client_no_context_takeover", f"{PMD}; client_no_context_takeover; {S12}"),
    (
        f"{PMD}; server_no_context_takeover; client_no_context_takeover",
        f"{PMD}; server_no_context_takeover; client_no_context_takeover; {S12}",
    ),
    (
        f"{PMD}; client_no_context_takeover; server_no_context_takeover",
        f"{PMD}; server_no_context_takeover; client_no_context_takeover; {S12}",
    ),
    # 7.1.2.1: server_max_window_bits, echoed with the same or a smaller value.
    *[
        (f"{PMD}; server_max_window_bits={n}", f"{PMD}; server_max_window_bits={min(n, 12)}")
        for n in ALL_BITS
    ],
    # 7.1.2.2: client_max_window_bits; without a value, the server may ask
    # for any window (this configuration asks for 12) ...
    (f"{PMD}; client_max_window_bits", f"{PMD}; {S12}; client_max_window_bits=12"),
    # ... with a value, the client will not exceed it; we answer the smaller
    # of it and ours.
    *[
        (
            f"{PMD}; client_max_window_bits={n}",
            f"{PMD}; {S12}; client_max_window_bits={min(n, 12)}",
        )
        for n in ALL_BITS
    ],
    # Everything at once, in any order.
    (
        f"{PMD}; client_max_window_bits=10; server_max_window_bits=9; "
        "client_no_context_takeover; server_no_context_takeover",
        f"{PMD}; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=9; client_max_window_bits=10",
    ),
    # Invalid values decline the offer (7.1.2.1/7.1.2.2: 8-15, decimal, no
    # leading zeros).
    *[
        (f"{PMD}; {name}={value}", None)
        for name in ("server_max_window_bits", "client_max_window_bits")
        for value in ("7", "16", "0", "08", "015", "abc", "+9", "9a", "99999999999999999999")
    ],
    # server_max_window_bits has no valueless form; the takeover ones no value.
    (f"{PMD}; server_max_window_bits", None),
    (f"{PMD}; server_no_context_takeover=1", None),
    (f"{PMD}; client_no_context_takeover=true", None),
    (f"{PMD}; server_no_context_takeover=x", None),
    # Quoted values (RFC 6455 9.1): unquoted, they must be tokens; then the
    # same rules apply.
    (f'{PMD}; server_max_window_bits="10"', f"{PMD}; server_max_window_bits=10"),
    (f'{PMD}; client_max_window_bits="9"', f"{PMD}; {S12}; client_max_window_bits=9"),
    (f'{PMD}; server_max_window_bits="1\\0"', f"{PMD}; server_max_window_bits=10"),
    (f'{PMD}; server_max_window_bits="abc"', None),
    (f'{PMD}; server_max_window_bits="16"', None),
    (f'{PMD}; server_max_window_bits="08"', None),
    # Repeated parameters decline the offer (7, "MUST decline").
    (f"{PMD}; server_no_context_takeover; server_no_context_takeover", None),
    (f"{PMD}; client_no_context_takeover; client_no_context_takeover", None),
    (f"{PMD}; server_max_window_bits=10; server_max_window_bits=10", None),
    (f"{PMD}; server_max_window_bits=10; server_max_window_bits=11", None),
    (f"{PMD}; client_max_window_bits; client_max_window_bits=10", None),
    # Unknown parameters decline the offer (7).
    (f"{PMD}; foo", None),
    (f"{PMD}; foo=1", None),
    (f"{PMD}; Server_No_Context_Takeover", None),
    (f"{PMD}; no_context_takeover", None),
    # Several offers in one header: the first acceptable one wins (5.1).
    (f"{PMD}; server_max_window_bits=10, {PMD}", f"{PMD}; server_max_window_bits=10"),
    (f"{PMD}, {PMD}; server_max_window_bits=10", f"{PMD}; {S12}"),
    (f"{PMD}; foo, {PMD}; client_no_context_takeover", f"{PMD}; client_no_context_takeover; {S12}"),
    (
        f"{PMD}; server_max_window_bits=7, {PMD}; server_max_window_bits=9",
        f"{PMD}; server_max_window_bits=9",
    ),
    (f"{PMD}; x, {PMD}; y, {PMD}; z", None),
    # ... and across header lines, in order.
    ([f"{PMD}; bogus", f"{PMD}; server_max_window_bits=9"], f"{PMD}; server_max_window_bits=9"),
    (
        [f"{PMD}; server_max_window_bits=11", f"{PMD}; server_max_window_bits=9"],
        f"{PMD}; server_max_window_bits=11",
    ),
    (
        [f"{PMD}; a, {PMD}; b", f"{PMD}; c", f"{PMD}; client_max_window_bits=13"],
        f"{PMD}; {S12}; client_max_window_bits=12",
    ),
    # Other extensions are ignored, with their parameters.
    ("x-webkit-deflate-frame", None),
    ("deflate-frame; no_context_takeover", None),
    ("permessage-bzip2, permessage-deflate2", None),
    (
        f"x-webkit-deflate-frame, {PMD}; client_max_window_bits",
        f"{PMD}; {S12}; client_max_window_bits=12",
    ),
    (f"foo; server_max_window_bits=9, {PMD}", f"{PMD}; {S12}"),
    (["foo", "bar; baz=1", PMD], f"{PMD}; {S12}"),
    # Whitespace and empty list elements (RFC 9110 5.6.1) are tolerated.
    (f"{PMD};server_max_window_bits=10", f"{PMD}; server_max_window_bits=10"),
    (f"  {PMD} ;  server_max_window_bits = 10 ", f"{PMD}; server_max_window_bits=10"),
    (f"\t{PMD}\t;\tclient_no_context_takeover\t", f"{PMD}; client_no_context_takeover; {S12}"),
    (f", ,{PMD},,", f"{PMD}; {S12}"),
    ([], None),
    ([""], None),
]

#: Headers that do not follow RFC 6455 9.1 at all: the handshake fails.
MALFORMED = [
    ";",
    f"{PMD};",
    f"{PMD};;",
    f"{PMD}; =10",
    f"{PMD}; server_max_window_bits=",
    f'{PMD}; server_max_window_bits="10',
    f'{PMD}; server_max_window_bits=""',
    f'{PMD}; server_max_window_bits="1 0"',
    f"{PMD}; server_max_window_bits=1 0",
    f"{PMD}; server max_window_bits",
    "per message-deflate",
    "permessage-deflate/1",
    f"{PMD}; x=@",
    f"{PMD}; x=a,b=",
    '"permessage-deflate"',
    # Malformed anywhere in the header, even in an extension we ignore.
    f'{PMD}, foo; bar="unterminated',
    f"foo; =1, {PMD}",
    f"{PMD}; server_max_window_bits=\uff11\uff10",  # fullwidth digits
]


class NegotiationTableTests(SynchronousTestCase):
    """
    RFC 7692 7.1 against a table of offers, with the default configuration
    (server window 12, clients may use 15).
    """

    def test_table(self) -> None:
        wrong = []
        for headers, expected in NEGOTIATION_TABLE:
            try:
                got = respond(headers)
            except MalformedExtensions as e:
                got = f"MalformedExtensions({e})"
            if got != expected:
                wrong.append(f"{headers!r}: expected {expected!r}, got {got!r}")
        self.assertEqual(wrong, [], "\n".join(wrong))

    def test_malformed(self) -> None:
        wrong = []
        for header in MALFORMED:
            try:
                got = respond(header)
            except MalformedExtensions:
                continue
            wrong.append(f"{header!r} parsed, answer {got!r}")
        self.assertEqual(wrong, [], "\n".join(wrong))

    def test_responsesAreAcceptable(self) -> None:
        """
        Every response header parses, names permessage-deflate once, has no
        repeated or unknown parameters, and gives values only to the window
        parameters, within the offer's bounds (7.1.2.1, 7.1.2.2).
        """
        known = {
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
        }
        for _headers, expected in NEGOTIATION_TABLE:
            if expected is None:
                continue
            [(name, responseParams)] = parseExtensions([expected])
            self.assertEqual(name, PMD)
            names = [n for n, _ in responseParams]
            self.assertEqual(len(names), len(set(names)), expected)
            self.assertLessEqual(set(names), known, expected)
            for n, value in responseParams:
                if n.endswith("_window_bits"):
                    self.assertIsNotNone(value, expected)
                    self.assertIn(int(value), ALL_BITS)
                else:
                    self.assertIsNone(value, expected)

    def test_agreedParameters(self) -> None:
        """
        The agreement records what each side uses, not just the header.
        """
        agreed = DEFAULT.negotiate(
            [
                f"{PMD}; client_max_window_bits=10; server_max_window_bits=9; client_no_context_takeover"
            ]
        )
        self.assertEqual(
            (
                agreed.serverNoContextTakeover,
                agreed.clientNoContextTakeover,
                agreed.serverMaxWindowBits,
                agreed.clientMaxWindowBits,
            ),
            (False, True, 9, 10),
        )
        agreed = DEFAULT.negotiate([PMD])
        self.assertEqual(
            (
                agreed.serverNoContextTakeover,
                agreed.clientNoContextTakeover,
                agreed.serverMaxWindowBits,
                agreed.clientMaxWindowBits,
            ),
            (False, False, 12, 15),
        )

    def test_parseExtensions(self) -> None:
        self.assertEqual(
            parseExtensions([f'foo, {PMD}; a; b=1; c="x"', f"bar;d=e , {PMD}"]),
            [
                ("foo", []),
                (PMD, [("a", None), ("b", "1"), ("c", "x")]),
                ("bar", [("d", "e")]),
                (PMD, []),
            ],
        )

    def test_quotedCommaAndSemicolon(self) -> None:
        """
        Separators inside a quoted string do not split it; after unquoting
        the value is not a token, so the header is malformed.
        """
        for header in (f'{PMD}; x="a,b"', f'{PMD}; x="a;b"'):
            self.assertRaises(MalformedExtensions, respond, header)


class ServerConfigurationTests(SynchronousTestCase):
    """
    The server's own settings shape its answers (RFC 7692 7.1).
    """

    def test_serverNoContextTakeover(self) -> None:
        """
        7.1.1.1: the server may announce server_no_context_takeover unasked.
        """
        config = PerMessageDeflate(serverNoContextTakeover=True)
        self.assertEqual(respond(PMD, config), f"{PMD}; server_no_context_takeover; {S12}")
        self.assertTrue(config.negotiate([PMD]).serverNoContextTakeover)

    def test_clientNoContextTakeover(self) -> None:
        """
        7.1.1.2: the server may ask for client_no_context_takeover unasked.
        """
        config = PerMessageDeflate(clientNoContextTakeover=True)
        self.assertEqual(respond(PMD, config), f"{PMD}; client_no_context_takeover; {S12}")

    def test_noContextTakeoverArgument(self) -> None:
        """
        The memory-saving mode (compressionContextTakeoverLimit) asks for no
        context takeover both ways on any offer.
        """
        both = f"{PMD}; server_no_context_takeover; client_no_context_takeover; {S12}"
        self.assertEqual(respond(PMD, noContextTakeover=True), both)
        self.assertEqual(
            respond(f"{PMD}; client_no_context_takeover", noContextTakeover=True), both
        )
        self.assertIsNone(respond(f"{PMD}; foo", noContextTakeover=True))

    def test_serverWindow15(self) -> None:
        """
        With a 15-bit window the parameter is left out unless the client
        offered it: then it must be echoed, even at 15 (7.1.2.1: "A server
        accepts an extension negotiation offer with this parameter by
        including the server_max_window_bits extension parameter in the
        extension negotiation response").
        """
        config = PerMessageDeflate(serverMaxWindowBits=15)
        self.assertEqual(respond(PMD, config), PMD)
        for n in ALL_BITS:
            self.assertEqual(
                respond(f"{PMD}; server_max_window_bits={n}", config),
                f"{PMD}; server_max_window_bits={n}",
            )

    def test_serverWindowVariants(self) -> None:
        for ours in ALL_BITS:
            config = PerMessageDeflate(serverMaxWindowBits=ours)
            expected = PMD if ours == 15 else f"{PMD}; server_max_window_bits={ours}"
            self.assertEqual(respond(PMD, config), expected)
            for theirs in ALL_BITS:
                agreed = config.negotiate([f"{PMD}; server_max_window_bits={theirs}"])
                self.assertEqual(agreed.serverMaxWindowBits, min(ours, theirs))

    def test_clientWindow(self) -> None:
        """
        7.1.2.2: without client_max_window_bits in the offer the server must
        not send it (and so must inflate with 15 bits); with it, the server
        may send a value no larger than the client's hint.
        """
        config = PerMessageDeflate(clientMaxWindowBits=10)
        agreed = config.negotiate([PMD])
        self.assertEqual(agreed.clientMaxWindowBits, 15)
        self.assertEqual(agreed.responseHeader(), f"{PMD}; {S12}")
        self.assertEqual(
            respond(f"{PMD}; client_max_window_bits", config),
            f"{PMD}; {S12}; client_max_window_bits=10",
        )
        self.assertEqual(
            respond(f"{PMD}; client_max_window_bits=13", config),
            f"{PMD}; {S12}; client_max_window_bits=10",
        )
        self.assertEqual(
            respond(f"{PMD}; client_max_window_bits=9", config),
            f"{PMD}; {S12}; client_max_window_bits=9",
        )
        self.assertEqual(
            config.negotiate([f"{PMD}; client_max_window_bits=9"]).clientMaxWindowBits, 9
        )

    def test_invalidConfigurations(self) -> None:
        for kwargs in (
            {"serverMaxWindowBits": 7},
            {"serverMaxWindowBits": 16},
            {"clientMaxWindowBits": 7},
            {"clientMaxWindowBits": 16},
            {"level": 10},
            {"level": -2},
            {"memLevel": 0},
            {"memLevel": 10},
        ):
            self.assertRaises(ValueError, PerMessageDeflate, **kwargs)

    def test_responseHeaderFromParams(self) -> None:
        self.assertEqual(params().responseHeader(), PMD)
        self.assertEqual(
            params(True, True, 8, 9).responseHeader(),
            f"{PMD}; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=8; client_max_window_bits=9",
        )


class AgreementTests(SynchronousTestCase):
    """
    L{DeflateParams.agreement}: the wire's C{server_*}/C{client_*} names
    turned into one end's local (our compressor) and remote (the peer's
    compressor, our decompressor) parameters.
    """

    ASYMMETRIC = DeflateParams(
        serverNoContextTakeover=True,
        clientNoContextTakeover=False,
        serverMaxWindowBits=9,
        clientMaxWindowBits=13,
    )

    def test_server(self) -> None:
        self.assertEqual(
            self.ASYMMETRIC.agreement("server"),
            Agreement(
                localNoContextTakeover=True,
                localMaxWindowBits=9,
                remoteNoContextTakeover=False,
                remoteMaxWindowBits=13,
            ),
        )

    def test_client(self) -> None:
        self.assertEqual(
            self.ASYMMETRIC.agreement("client"),
            Agreement(
                localNoContextTakeover=False,
                localMaxWindowBits=13,
                remoteNoContextTakeover=True,
                remoteMaxWindowBits=9,
            ),
        )

    def test_badSide(self) -> None:
        self.assertRaises(ValueError, self.ASYMMETRIC.agreement, "peer")

    def test_frozenWithSlots(self) -> None:
        agreed = self.ASYMMETRIC.agreement("server")
        self.assertRaises(AttributeError, setattr, agreed, "localMaxWindowBits", 15)
        self.assertFalse(hasattr(agreed, "__dict__"))

    def test_bothEndsTalk(self) -> None:
        """
        Each end compresses with its local window and inflates with its
        remote one: with asymmetric windows and takeover, both directions
        round-trip, and the client's compressor really uses the 13-bit
        window (plain zlib with 13 bits reads it), the server's the 9-bit.
        """
        server = self.ASYMMETRIC.agreement("server")
        client = self.ASYMMETRIC.agreement("client")
        serverDeflater, serverInflater = Deflater(DEFAULT, server), Inflater(server, 1 << 20)
        clientDeflater = Deflater(DeflateOffer(), client)
        clientInflater = Inflater(client, 1 << 20)
        messages = [os.urandom(200) * 30, b"hello " * 500, b"hello " * 500]
        down = [serverDeflater.compress(m) for m in messages]
        up = [clientDeflater.compress(m) for m in messages]
        self.assertEqual([clientInflater.feed(p, True) for p in down], messages)
        self.assertEqual([serverInflater.feed(p, True) for p in up], messages)
        self.assertEqual(clientInflate(down, 9, takeover=False), messages)
        self.assertEqual(clientInflate(up, 13), messages)

    def test_remoteWindowBoundsInflater(self) -> None:
        """
        The remote window is what the decompressor keeps: a client's
        inflater with remote 9 bits refuses data that refers 10000 bytes
        back (the server broke the agreement).
        """
        message = os.urandom(10000)
        first, second = clientCompress([message, message], 15)
        inflater = Inflater(self.ASYMMETRIC.agreement("client"), 1 << 20)
        self.assertEqual(inflater.feed(first, True), message)
        self.assertRaises(CorruptMessage, inflater.feed, second, True)


class DeflateOfferTests(SynchronousTestCase):
    """
    L{DeflateOffer}, the client's side: its offer and the check of the
    server's answer (RFC 7692 7.1), with the same parameter rules as the
    server's L{PerMessageDeflate} (one parser for both).
    """

    def accept(self, answer: str, offer: DeflateOffer | None = None) -> DeflateParams:
        [(name, answered)] = parseExtensions([answer])
        self.assertEqual(name, PMD)
        return (offer or DeflateOffer()).accept(answered)

    def test_serverAnswersItsOwnOffer(self) -> None:
        """
        What our server answers to what our client offers is accepted, and
        both name the same agreement.
        """
        for offer in (
            DeflateOffer(),
            DeflateOffer(clientMaxWindowBits=10, serverMaxWindowBits=11),
            DeflateOffer(clientNoContextTakeover=True, serverNoContextTakeover=True),
        ):
            for config in (DEFAULT, PerMessageDeflate(serverMaxWindowBits=15, clientMaxWindowBits=9)):
                agreed = config.negotiate([offer.header()])
                assert agreed is not None
                accepted = self.accept(agreed.responseHeader(), offer)
                for side in ("server", "client"):
                    self.assertEqual(
                        accepted.agreement(side), agreed.agreement(side), (offer, config)
                    )

    def test_defaults(self) -> None:
        self.assertEqual(self.accept(PMD), DeflateParams(False, False, 15, 15))
        self.assertEqual(
            self.accept(PMD, DeflateOffer(clientMaxWindowBits=11, clientNoContextTakeover=True)),
            DeflateParams(False, True, 15, 11),
        )

    def test_invalidAnswers(self) -> None:
        """
        The rules both sides share: unknown, repeated and valueless or
        out-of-range parameters; the server declines such an offer
        (C{None}), the client refuses such an answer (C{ValueError}, saying
        which).
        """
        for params_, message in (
            ("x=1", "unknown parameter x"),
            ("server_no_context_takeover; server_no_context_takeover", "repeated"),
            ("client_no_context_takeover=1", "takes no value"),
            ("server_max_window_bits", "invalid server_max_window_bits=None"),
            ("server_max_window_bits=7", "invalid server_max_window_bits=7"),
            ("client_max_window_bits=16", "invalid client_max_window_bits=16"),
            ("client_max_window_bits=09", "invalid client_max_window_bits=09"),
        ):
            header = f"{PMD}; {params_}"
            error = self.assertRaises(ValueError, self.accept, header)
            self.assertIn(message, str(error))
            if not params_.startswith("client_max_window_bits=1"):
                self.assertIsNone(DEFAULT.negotiate([header]), header)

    def test_valuelessClientWindowOnlyInOffers(self) -> None:
        """
        C{client_max_window_bits} without a value is a client's hint
        (7.1.2.2): fine in an offer, invalid in an answer.
        """
        self.assertIsNotNone(DEFAULT.negotiate([f"{PMD}; client_max_window_bits"]))
        self.assertRaises(ValueError, self.accept, f"{PMD}; client_max_window_bits")

    def test_notWhatWasOffered(self) -> None:
        for offer, answer, message in (
            (DeflateOffer(clientMaxWindowBits=10), "client_max_window_bits=12", "larger than offered"),
            (DeflateOffer(serverMaxWindowBits=10), "server_max_window_bits=12", "larger than offered"),
            (DeflateOffer(serverMaxWindowBits=10), "", "server_max_window_bits was asked for"),
            (DeflateOffer(serverNoContextTakeover=True), "", "server_no_context_takeover was asked"),
        ):
            header = f"{PMD}; {answer}" if answer else PMD
            error = self.assertRaises(ValueError, self.accept, header, offer)
            self.assertIn(message, str(error))

    def test_compressesWithItsSettings(self) -> None:
        """
        L{Deflater} takes the offer itself as its configuration (level and
        memLevel).
        """
        stored = Deflater(DeflateOffer(level=0), agreement()).compress(b"a" * 1000)
        packed = Deflater(DeflateOffer(level=9), agreement()).compress(b"a" * 1000)
        self.assertGreater(len(stored), 1000)
        self.assertLess(len(packed), 50)
        self.assertIs(deflate.DEFAULT_OFFER, deflate.DEFAULT_OFFER)
        self.assertEqual(deflate.DEFAULT_OFFER, DeflateOffer())


# ---------------------------------------------------------------------------
# Compression and decompression (RFC 7692 7.2)
# ---------------------------------------------------------------------------


def inflateAll(inflater: Inflater, pieces: Sequence[bytes]) -> bytes:
    return b"".join(inflater.feed(p, i == len(pieces) - 1) for i, p in enumerate(pieces))


class RFCExampleTests(SynchronousTestCase):
    """
    RFC 7692 7.2.3's examples, byte for byte.
    """

    def test_compressHello(self) -> None:
        """
        7.2.3.1: "Hello" compresses to f2 48 cd c9 c9 07 00 (one fixed
        Huffman block, sync flush, tail stripped), with every window.
        """
        for bits in ALL_BITS:
            deflater = Deflater(DEFAULT, agreement(serverMaxWindowBits=bits))
            self.assertEqual(deflater.compress(b"Hello"), HELLO, bits)
        # What plain zlib produces before the tail is stripped.
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.assertEqual(c.compress(b"Hello") + c.flush(zlib.Z_SYNC_FLUSH), HELLO_FLUSHED)

    def test_contextTakeover(self) -> None:
        """
        7.2.3.2: the second "Hello" refers back to the first
        (f2 00 11 00 00) unless context takeover is off.
        """
        for bits in range(9, 16):
            deflater = Deflater(DEFAULT, agreement(serverMaxWindowBits=bits))
            self.assertEqual([deflater.compress(b"Hello") for _ in range(2)], [HELLO, HELLO_AGAIN])
            deflater = Deflater(
                DEFAULT, agreement(serverNoContextTakeover=True, serverMaxWindowBits=bits)
            )
            self.assertEqual([deflater.compress(b"Hello") for _ in range(3)], [HELLO] * 3)

    def test_inflateHello(self) -> None:
        for bits in ALL_BITS:
            inflater = Inflater(agreement(clientMaxWindowBits=bits), 1000)
            self.assertEqual(inflater.feed(HELLO, True), b"Hello")

    def test_inflateSharedWindow(self) -> None:
        inflater = Inflater(agreement(), 1000)
        self.assertEqual(
            [inflater.feed(m, True) for m in (HELLO, HELLO_AGAIN, HELLO_AGAIN, HELLO)],
            [b"Hello"] * 4,
        )

    def test_inflateSharedWindowWithoutTakeover(self) -> None:
        """
        A client that agreed to client_no_context_takeover must not refer
        to an earlier message; if it does, the data is corrupt (no history).
        """
        inflater = Inflater(agreement(clientNoContextTakeover=True), 1000)
        self.assertEqual(inflater.feed(HELLO, True), b"Hello")
        self.assertEqual(inflater.feed(HELLO, True), b"Hello")
        self.assertRaises(CorruptMessage, inflater.feed, HELLO_AGAIN, True)

    def test_inflateStoredBlock(self) -> None:
        """
        7.2.3.3: a block with no compression, then the header octet of an
        empty stored block that our appended tail completes.
        """
        self.assertEqual(Inflater(agreement(), 1000).feed(HELLO_STORED, True), b"Hello")

    def test_inflateBFinal(self) -> None:
        """
        7.2.3.4: a block with BFINAL set, followed by one octet (the header
        of an empty stored block) so that it inflates like the others.
        """
        inflater = Inflater(agreement(), 1000)
        self.assertEqual(inflater.feed(HELLO_BFINAL, True), b"Hello")
        # The connection goes on: later messages still inflate.
        self.assertEqual(inflater.feed(HELLO, True), b"Hello")
        self.assertEqual(inflater.feed(HELLO_AGAIN, True), b"Hello")
        self.assertEqual(inflater.feed(HELLO_BFINAL, True), b"Hello")
        self.assertEqual(inflater.feed(HELLO_BFINAL, True), b"Hello")
        self.assertEqual(inflater.feed(HELLO, True), b"Hello")

    def test_inflateBFinalPieces(self) -> None:
        """
        The BFINAL example split anywhere, and without the trailing octet
        (a stream that simply ends), inflates the same.
        """
        for cut in range(len(HELLO_BFINAL) + 1):
            inflater = Inflater(agreement(), 1000)
            pieces = [HELLO_BFINAL[:cut], HELLO_BFINAL[cut:]]
            self.assertEqual(inflateAll(inflater, pieces), b"Hello", cut)
            self.assertEqual(inflater.feed(HELLO, True), b"Hello", cut)
        for pieces in (
            [HELLO_BFINAL[:-1]],
            [HELLO_BFINAL[:-1], b""],
            [HELLO_BFINAL[:-1], b"", b""],
        ):
            inflater = Inflater(agreement(), 1000)
            self.assertEqual(inflateAll(inflater, pieces), b"Hello", pieces)
            self.assertEqual(inflater.feed(HELLO, True), b"Hello", pieces)

    def test_inflateTwoFinalStreams(self) -> None:
        """
        Two BFINAL-terminated streams in one message both count.
        """
        c1 = zlib.compressobj(6, zlib.DEFLATED, -15)
        c2 = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = c1.compress(b"Hello, ") + c1.flush() + c2.compress(b"world") + c2.flush()
        self.assertEqual(Inflater(agreement(), 1000).feed(payload, True), b"Hello, world")

    def test_inflateTwoBlocks(self) -> None:
        """
        7.2.3.5: two DEFLATE blocks in one message.
        """
        self.assertEqual(Inflater(agreement(), 1000).feed(HELLO_TWO_BLOCKS, True), b"Hello")

    def test_emptyFragment(self) -> None:
        """
        7.2.3.6: a sender that already sent its data flushed (tail and all,
        in a non-final fragment) ends the message with a final fragment
        holding 00: an empty stored block, tail stripped.
        """
        inflater = Inflater(agreement(), 1000)
        self.assertEqual(inflateAll(inflater, [HELLO_FLUSHED, EMPTY_BLOCK]), b"Hello")
        self.assertEqual(inflater.feed(HELLO_AGAIN, True), b"Hello")

    def test_emptyFragmentMissing(self) -> None:
        """
        Without that block the message ends in 00 00 ff ff 00 00 ff ff once
        the tail is appended: the start of a stored block that never ends.
        zlib cannot tell us so at once; the broken stream is caught by the
        next message (with context takeover; without it nothing is kept).
        """
        inflater = Inflater(agreement(), 1000)
        self.assertEqual(inflateAll(inflater, [HELLO_FLUSHED, b""]), b"Hello")
        self.assertRaises(CorruptMessage, inflater.feed, HELLO, True)
        inflater = Inflater(agreement(clientNoContextTakeover=True), 1000)
        self.assertEqual(inflateAll(inflater, [HELLO_FLUSHED, b""]), b"Hello")
        self.assertEqual(inflater.feed(HELLO, True), b"Hello")

    def test_emptyMessage(self) -> None:
        deflater = Deflater(DEFAULT, agreement())
        self.assertEqual(deflater.compress(b""), EMPTY_BLOCK)
        for payload in (EMPTY_BLOCK, b""):
            self.assertEqual(Inflater(agreement(), 1000).feed(payload, True), b"")

    def test_rfcFrames(self) -> None:
        """
        7.2.3.1 and 7.2.3.3's frames, as written (unmasked: we read them as
        a client would), through L{FrameReader}; RSV1 only on the first.
        """
        cases = [
            bytes([0xC1, 0x07]) + HELLO,
            bytes([0x41, 0x03, 0xF2, 0x48, 0xCD]) + bytes([0x80, 0x04, 0xC9, 0xC9, 0x07, 0x00]),
            bytes([0xC1, 0x0B]) + HELLO_STORED,
            bytes([0xC1, 0x08]) + HELLO_BFINAL,
            bytes([0xC1, 0x0D]) + HELLO_TWO_BLOCKS,
        ]
        for data in cases:
            for chunk in (None, 1):
                self.assertEqual(
                    feed(reader(requireMask=False), data, chunk), ["Hello"], (data.hex(), chunk)
                )
        # 7.2.3.2's two messages on one connection.
        data = bytes([0xC1, 0x07]) + HELLO + bytes([0xC1, 0x05]) + HELLO_AGAIN
        self.assertEqual(feed(reader(requireMask=False), data), ["Hello", "Hello"])


MESSAGES = st.lists(
    st.one_of(
        st.binary(max_size=3000),
        st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=40), st.integers(1, 400)),
        st.text(max_size=500).map(lambda s: s.encode("utf-8")),
    ),
    min_size=1,
    max_size=6,
)


class RoundTripTests(SynchronousTestCase):
    """
    Our Deflater against plain zlib decompressors and plain zlib
    compressors against our Inflater, with every window size and with and
    without context takeover both ways.
    """

    @FAST
    @given(MESSAGES, st.sampled_from(ALL_BITS), st.booleans(), st.sampled_from([0, 1, 6, 9]))
    def test_deflaterToZlib(self, messages, bits, noTakeover, level) -> None:
        """
        What we send inflates with plain zlib using the agreed window (8
        included: a zlib.decompressobj(-8) must read it) -- and, when we
        agreed to no context takeover, each message alone.
        """
        config = PerMessageDeflate(level=level)
        agreed = agreement(serverNoContextTakeover=noTakeover, serverMaxWindowBits=bits)
        deflater = Deflater(config, agreed)
        payloads = [deflater.compress(m) for m in messages]
        self.assertEqual(clientInflate(payloads, bits), messages)
        if noTakeover:
            self.assertEqual(clientInflate(payloads, bits, takeover=False), messages)

    @FAST
    @given(MESSAGES, st.sampled_from(range(9, 16)), st.booleans(), st.data())
    def test_zlibToInflater(self, messages, bits, noTakeover, data) -> None:
        """
        What an RFC 7692 zlib client sends inflates, whole or cut anywhere.
        """
        agreed = agreement(clientNoContextTakeover=noTakeover, clientMaxWindowBits=bits)
        inflater = Inflater(agreed, 1 << 20)
        for message, payload in zip(
            messages, clientCompress(messages, bits, takeover=not noTakeover), strict=True
        ):
            cuts = sorted(
                data.draw(st.lists(st.integers(0, len(payload)), max_size=4), label="cuts")
            )
            pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
            self.assertEqual(inflateAll(inflater, pieces), message)

    @FAST
    @given(MESSAGES)
    def test_clientWindow8(self, messages) -> None:
        """
        zlib cannot compress with an 8-bit window (it uses 9 when asked
        for 8): a client told client_max_window_bits=8 still sends data our
        8-bit inflater reads, because a 9-bit zlib window never reaches
        further back than 250 bytes.
        """
        self.assertRaises(ValueError, zlib.compressobj, 6, zlib.DEFLATED, -8)
        inflater = Inflater(agreement(clientMaxWindowBits=8), 1 << 20)
        for message, payload in zip(messages, clientCompress(messages, 9), strict=True):
            self.assertEqual(inflater.feed(payload, True), message)

    def test_serverWindow8(self) -> None:
        """
        server_max_window_bits=8 (7.1.2.1 allows it; zlib cannot make raw
        DEFLATE with it): what we send must inflate with a 256-byte window.
        """
        agreed = DEFAULT.negotiate([f"{PMD}; server_max_window_bits=8"])
        self.assertEqual(agreed.serverMaxWindowBits, 8)
        deflater = Deflater(DEFAULT, agreed.agreement("server"))
        messages = [os.urandom(300) * 20, b"abcdefgh" * 1000, os.urandom(5000)] * 2
        payloads = [deflater.compress(m) for m in messages]
        self.assertEqual(clientInflate(payloads, 8), messages)
        self.assertLess(len(payloads[1]), 8000 // 2)  # still compresses

    def test_roundTripOurselves(self) -> None:
        for bits in range(9, 16):
            for noTakeover in (False, True):
                agreed = agreement(noTakeover, noTakeover, bits, bits)
                deflater = Deflater(DEFAULT, agreed)
                inflater = Inflater(agreed, 1 << 22)
                for message in (b"", b"x", os.urandom(70000), b"abc" * 100000):
                    self.assertEqual(inflater.feed(deflater.compress(message), True), message)

    def test_largeCompressible(self) -> None:
        message = b"The quick brown fox jumps over the lazy dog. " * 50000
        payload = Deflater(DEFAULT, agreement()).compress(message)
        self.assertLess(len(payload), len(message) // 50)
        self.assertEqual(clientInflate([payload], 12), [message])


#: Payloads that are not valid DEFLATE.
CORRUPT = [
    b"\xff\xff\xff\xff",  # BTYPE 11 (reserved)
    b"\x07",  # BFINAL 1, BTYPE 11
    b"\x00\x05\x00\x00\x00Hello",  # a stored block whose NLEN is not ~LEN
    HELLO_AGAIN,  # refers 5 bytes back with no history
]


class InflaterLimitTests(SynchronousTestCase):
    """
    The size limit applies to the inflated message, while inflating.
    """

    def test_exactlyAtLimit(self) -> None:
        message = b"a" * 100000
        [payload] = clientCompress([message])
        self.assertEqual(Inflater(agreement(), 100000).feed(payload, True), message)
        self.assertRaises(MessageTooBig, Inflater(agreement(), 99999).feed, payload, True)

    def test_limitAcrossPieces(self) -> None:
        message = os.urandom(50) * 2000
        [payload] = clientCompress([message])
        inflater = Inflater(agreement(), len(message) - 1)
        with self.assertRaises(MessageTooBig):
            for i in range(0, len(payload), 10):
                inflater.feed(payload[i : i + 10], i + 10 >= len(payload))

    def test_limitPerMessage(self) -> None:
        """
        The count starts over with every message, with context takeover.
        """
        messages = [b"b" * 60000] * 5
        inflater = Inflater(agreement(), 60000)
        for message, payload in zip(messages, clientCompress(messages), strict=True):
            self.assertEqual(inflater.feed(payload, True), message)

    def test_corrupt(self) -> None:
        for payload in CORRUPT:
            self.assertRaises(CorruptMessage, Inflater(agreement(), 1000).feed, payload, True)

    def test_window(self) -> None:
        """
        A client that agreed to a 9-bit window yet refers 10000 bytes back
        into the previous message breaks the agreement: our decompressor
        kept only 512 bytes of history, so the data is corrupt (not a
        silently wrong message).
        """
        message = os.urandom(10000)
        first, second = clientCompress([message, message], 15)
        self.assertLess(len(second), 100)
        inflater = Inflater(agreement(clientMaxWindowBits=9), 1 << 20)
        self.assertEqual(inflater.feed(first, True), message)
        self.assertRaises(CorruptMessage, inflater.feed, second, True)
        inflater = Inflater(agreement(), 1 << 20)
        self.assertEqual([inflater.feed(p, True) for p in (first, second)], [message] * 2)


class MemoryTests(SynchronousTestCase):
    """
    zlib state costs what the module docstring says, lazily, and is
    dropped between messages without context takeover.
    """

    def measure(self, make):
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = make()
            return tracemalloc.get_traced_memory()[0] - before, kept
        finally:
            tracemalloc.stop()

    def test_defaultConfiguration(self) -> None:
        agreed = DEFAULT.negotiate([f"{PMD}; client_max_window_bits"]).agreement("server")
        message = os.urandom(3000) + b"a" * 5000
        [payload] = clientCompress([message])

        def compressor():
            d = Deflater(DEFAULT, agreed)
            d.compress(message)
            return d

        def decompressor():
            i = Inflater(agreed, 1 << 20)
            i.feed(payload, True)
            return i

        size, _ = self.measure(compressor)
        # 2**(12 + 2) + 2**(5 + 9) = 32 KiB, plus zlib's own bookkeeping.
        self.assertLess(size, 48 * 1024)
        size, _ = self.measure(decompressor)
        # 2**15 + about 7 KiB.
        self.assertLess(size, 48 * 1024)

    def test_largestConfiguration(self) -> None:
        config = PerMessageDeflate(serverMaxWindowBits=15, memLevel=8)
        agreed = config.negotiate([PMD]).agreement("server")

        def compressor():
            d = Deflater(config, agreed)
            d.compress(os.urandom(3000))
            return d

        size, _ = self.measure(compressor)
        # 2**17 + 2**17 = 256 KiB.
        self.assertGreater(size, 250 * 1024)
        self.assertLess(size, 280 * 1024)

    def test_lazyAndDropped(self) -> None:
        """
        No zlib state before the first message; none kept after each one
        without context takeover.
        """
        agreed = agreement(True, True, 15, 15)
        size, _ = self.measure(lambda: (Deflater(DEFAULT, agreed), Inflater(agreed, 1 << 20)))
        self.assertLess(size, 2048)

        def used():
            d = Deflater(DEFAULT, agreed)
            i = Inflater(agreed, 1 << 20)
            i.feed(d.compress(b"hello hello hello" * 100), True)
            return d, i

        size, _ = self.measure(used)
        self.assertLess(size, 2048)


# ---------------------------------------------------------------------------
# FrameReader with an inflater (RFC 7692 6, 7.2.2)
# ---------------------------------------------------------------------------


def compressedFrames(opcode: int, payload: bytes, pieces: int, rsv: int = RSV1) -> bytes:
    """
    One compressed message in C{pieces} frames: RSV1 only on the first.
    """
    size = max(1, -(-len(payload) // pieces))
    chunks = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    out = []
    for i, chunk in enumerate(chunks):
        out.append(
            frame(
                opcode if i == 0 else CONTINUATION,
                chunk,
                fin=i == len(chunks) - 1,
                rsv=rsv if i == 0 else 0,
            )
        )
    return b"".join(out)


class FrameReaderInflaterTests(SynchronousTestCase):
    """
    RFC 7692 6: RSV1 on a message's first frame marks it compressed; the
    message's frames are joined, then inflated (7.2.2).
    """

    def test_compressedText(self) -> None:
        text = "héllo wörld ✓ " * 100
        [payload] = clientCompress([text.encode("utf-8")])
        self.assertEqual(reader().receive(frame(TEXT, payload, rsv=RSV1)), [text])

    def test_compressedBinary(self) -> None:
        message = os.urandom(1000) * 3
        [payload] = clientCompress([message])
        self.assertEqual(reader().receive(frame(BINARY, payload, rsv=RSV1)), [message])

    def test_fragmentedEveryByte(self) -> None:
        """
        A compressed message in several frames, with pings between them,
        fed one byte at a time: control frames come out at once, the
        message when its last frame ends.
        """
        text = "ünïcödé ✓ fragments " * 40
        [payload] = clientCompress([text.encode("utf-8")])
        for pieces in (1, 2, 3, 7, len(payload)):
            data = compressedFrames(TEXT, payload, pieces)
            self.assertEqual(feed(reader(), data, 1), [text], pieces)
        # Interleaved control frames.
        third = len(payload) // 3
        data = (
            frame(TEXT, payload[:third], fin=False, rsv=RSV1)
            + frame(PING, b"p1")
            + frame(CONTINUATION, payload[third : 2 * third], fin=False)
            + frame(PONG, b"p2")
            + frame(PING, b"")
            + frame(CONTINUATION, payload[2 * third :])
            + frame(CLOSE, b"\x03\xe8")
        )
        for chunk in (None, 1, 2, 5):
            self.assertEqual(
                feed(reader(), data, chunk),
                [Ping(b"p1"), Pong(b"p2"), Ping(b""), text, CloseReceived(1000, "")],
                chunk,
            )

    def test_everySplitPoint(self) -> None:
        """
        A two-frame compressed message split at every byte of its payload
        and delivered in two TCP reads split at every byte.
        """
        message = b"split me " * 30
        [payload] = clientCompress([message])
        for cut in range(len(payload) + 1):
            data = frame(BINARY, payload[:cut], fin=False, rsv=RSV1) + frame(
                CONTINUATION, payload[cut:]
            )
            self.assertEqual(reader().receive(data), [message], cut)
        data = frame(BINARY, payload, rsv=RSV1)
        for cut in range(len(data) + 1):
            r = reader()
            self.assertEqual(r.receive(data[:cut]) + r.receive(data[cut:]), [message], cut)

    def test_contextTakeoverAcrossMessages(self) -> None:
        """
        Compressed messages share the window; an uncompressed one between
        them (RSV1 clear) is delivered as is and does not touch it.
        """
        messages = [b"shared window " * 20, b"shared window " * 20 + b"!", b"more " * 50]
        payloads = clientCompress(messages)
        self.assertLess(len(payloads[1]), 20)  # refers back to the first
        data = (
            frame(BINARY, payloads[0], rsv=RSV1)
            + frame(BINARY, b"plain, not compressed")
            + frame(TEXT, "plain text ✓".encode())
            + compressedFrames(BINARY, payloads[1], 3)
            + frame(BINARY, payloads[2], rsv=RSV1)
        )
        for chunk in (None, 1, 7):
            self.assertEqual(
                feed(reader(), data, chunk),
                [messages[0], b"plain, not compressed", "plain text ✓", messages[1], messages[2]],
            )

    def test_uncompressedMessageAccepted(self) -> None:
        """
        RFC 7692 6: a message without RSV1 is not compressed, even on a
        connection that agreed to compress. Its bytes are not inflated.
        """
        raw = HELLO  # valid DEFLATE, but not marked compressed
        events = reader().receive(
            frame(BINARY, raw) + frame(TEXT, b"plain", fin=False) + frame(CONTINUATION, b" text")
        )
        self.assertEqual(events, [raw, "plain text"])

    def test_emptyCompressedMessage(self) -> None:
        for payload in (b"", EMPTY_BLOCK):
            self.assertEqual(reader().receive(frame(TEXT, payload, rsv=RSV1)), [""])
            self.assertEqual(reader().receive(frame(BINARY, payload, rsv=RSV1)), [b""])
        data = (
            frame(TEXT, b"", fin=False, rsv=RSV1)
            + frame(CONTINUATION, HELLO, fin=False)
            + frame(CONTINUATION, b"")
        )
        self.assertEqual(reader().receive(data), ["Hello"])

    def test_rsv1OnContinuation(self) -> None:
        """
        RFC 7692 6.1: RSV1 is set only on the first frame of a message.
        """
        for first in (0, RSV1):
            data = frame(BINARY, HELLO[:3], fin=False, rsv=first) + frame(
                CONTINUATION, HELLO[3:], rsv=RSV1
            )
            events = reader().receive(data)
            self.assertEqual(failedCode(events), PROTOCOL_ERROR, first)
            self.assertEqual(len(events), 1)

    def test_rsv1OnControlFrames(self) -> None:
        """
        RFC 7692 6: the extension does not apply to control frames.
        """
        for opcode, payload in ((PING, b""), (PONG, b"x"), (CLOSE, b"\x03\xe8")):
            events = reader().receive(frame(opcode, payload, rsv=RSV1))
            self.assertEqual(failedCode(events), PROTOCOL_ERROR, opcode)
            # In the middle of a compressed message too.
            events = reader().receive(
                frame(TEXT, HELLO[:3], fin=False, rsv=RSV1) + frame(opcode, payload, rsv=RSV1)
            )
            self.assertEqual(failedCode(events), PROTOCOL_ERROR, opcode)

    def test_otherReservedBits(self) -> None:
        """
        permessage-deflate gives meaning to RSV1 only: RSV2 and RSV3 still
        fail the connection (RFC 6455 5.2), alone or with RSV1.
        """
        for rsv in (RSV2, RSV3, RSV1 | RSV2, RSV1 | RSV3, RSV1 | RSV2 | RSV3, RSV2 | RSV3):
            for opcode in (TEXT, BINARY):
                events = reader().receive(frame(opcode, HELLO, rsv=rsv))
                self.assertEqual(failedCode(events), PROTOCOL_ERROR, (rsv, opcode))
            events = reader().receive(
                frame(TEXT, HELLO[:2], fin=False, rsv=RSV1)
                + frame(CONTINUATION, HELLO[2:], rsv=rsv)
            )
            self.assertEqual(failedCode(events), PROTOCOL_ERROR, rsv)

    def test_rsv1WithoutAgreement(self) -> None:
        """
        Without the extension, RSV1 is a protocol error (RFC 6455 5.2).
        """
        events = FrameReader().receive(frame(TEXT, HELLO, rsv=RSV1))
        self.assertEqual(failedCode(events), PROTOCOL_ERROR)

    def test_corruptData(self) -> None:
        """
        Data that does not inflate fails the connection with 1007 (as
        invalid payload data), in one frame or many.
        """
        for payload in CORRUPT:
            for pieces in (1, 3):
                events = feed(reader(), compressedFrames(BINARY, payload, pieces), 1)
                self.assertEqual(failedCode(events), INVALID_PAYLOAD, (payload, pieces))
                self.assertIsInstance(events[-1], Failed)

    def test_invalidUTF8AfterInflating(self) -> None:
        [payload] = clientCompress([b"ok \xff\xfe not utf-8"])
        events = reader().receive(frame(TEXT, payload, rsv=RSV1))
        self.assertEqual(failedCode(events), INVALID_PAYLOAD)
        # A multi-byte character split across fragments is fine.
        [payload] = clientCompress(["✓".encode()])
        data = b"".join(
            frame(
                TEXT if i == 0 else CONTINUATION,
                payload[i : i + 1],
                fin=i == len(payload) - 1,
                rsv=RSV1 if i == 0 else 0,
            )
            for i in range(len(payload))
        )
        self.assertEqual(reader().receive(data), ["✓"])

    def test_inflatedSizeLimit(self) -> None:
        """
        The limit applies to the inflated size: a message of exactly the
        limit passes, one byte more fails with 1009, in one frame or many.
        """
        message = b"z" * 50000
        [payload] = clientCompress([message])
        for pieces in (1, 4):
            data = compressedFrames(BINARY, payload, pieces)
            self.assertEqual(reader(maxMessageSize=50000).receive(data), [message])
            events = reader(maxMessageSize=49999).receive(data)
            self.assertEqual(failedCode(events), MESSAGE_TOO_BIG)

    def test_smallBomb(self) -> None:
        """
        A few KB that inflate to megabytes: 1009.
        """
        payload = bomb(4)
        self.assertLess(len(payload), 5000)
        for pieces in (1, 3, 1000):
            events = feed(
                reader(maxMessageSize=1 << 20), compressedFrames(BINARY, payload, pieces), 512
            )
            self.assertEqual(failedCode(events), MESSAGE_TOO_BIG)

    def test_bombAcrossFragments(self) -> None:
        """
        Each fragment alone is under the limit; together they are not.
        """
        payload = bomb(4)
        events = feed(reader(maxMessageSize=3 << 20), compressedFrames(BINARY, payload, 4), 100)
        self.assertEqual(failedCode(events), MESSAGE_TOO_BIG)

    def test_gigabyteBomb(self) -> None:
        """
        About 1 MB that inflates to 1 GiB (DEFLATE's ratio is at most about
        1032:1) is stopped at the limit: 1009, quickly, and the memory used
        meanwhile stays well under twice the limit.
        """
        payload = bomb(1024)
        self.assertLess(len(payload), 1100 * 1024)
        limit = 8 << 20
        data = frame(BINARY, payload, rsv=RSV1)
        for chunk in (65536, None):
            r = reader(maxMessageSize=limit)
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                events = feed(r, data, chunk)
                peak = tracemalloc.get_traced_memory()[1] - base
            finally:
                tracemalloc.stop()
            self.assertEqual(failedCode(events), MESSAGE_TOO_BIG, chunk)
            self.assertIn("inflates beyond", events[-1].reason)
            self.assertLess(peak, limit * 1.5, (chunk, peak / limit))
            del r, events

    def test_maxMessageSizeMatchesInflater(self) -> None:
        """
        The layer gives both the same limit; the reader's own limit on the
        wire size still applies to compressed frames.
        """
        [payload] = clientCompress([os.urandom(5000)])
        events = reader(maxMessageSize=4000).receive(frame(BINARY, payload, rsv=RSV1))
        self.assertEqual(failedCode(events), MESSAGE_TOO_BIG)

    def test_fragmentOfEmptyPieces(self) -> None:
        """
        Empty frames anywhere in a compressed message change nothing.
        """
        data = (
            frame(BINARY, b"", fin=False, rsv=RSV1)
            + frame(CONTINUATION, b"", fin=False)
            + frame(CONTINUATION, HELLO, fin=False)
            + frame(CONTINUATION, b"", fin=False)
            + frame(CONTINUATION, b"")
        )
        self.assertEqual(feed(reader(), data, 1), [b"Hello"])


class ModuleTests(SynchronousTestCase):
    def test_constants(self) -> None:
        self.assertEqual(deflate.NAME, PMD)
        self.assertEqual(TAIL, b"\x00\x00\xff\xff")
