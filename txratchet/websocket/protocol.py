"""
The WebSocket protocol for one connection, either side, sans I/O.

L{WebSocketProtocol} holds everything about a connection that is not I/O:
its L{State}, the opening handshake (answered on a server, sent on a
client), which family's L{Codec} frames its messages, permessage-deflate,
the closing handshake, failing with the right code, pong answers, and the
keepalive decisions. Bytes go in through L{WebSocketProtocol.receive},
which returns events; every method that must put something on the wire
returns the bytes. Time is passed in; nothing here sets a timer, writes,
logs or imports Twisted: the glue (L{txratchet.WebSocket},
L{txratchet.client.WebSocketClient}) does that, and the same object runs
over TCP, TLS, a twisted.web upgrade or an HTTP/2 stream.

Control events are handled by the caller, in order, by calling the
matching method (L{pong}, L{closeReceived}, L{fail}): so a reply the
application sends to a message that arrived just before the peer's close
frame still goes out before our answer to that close.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from txratchet.errors import HandshakeError, HandshakeFailed, MalformedExtensions
from txratchet.websocket import deflate, hixie76, rfc6455
from txratchet.websocket.events import CloseReceived, Event, FrameEvent, Opened, RequestReceived
from txratchet.websocket.handshake import (
    HIXIE76,
    HYBI07,
    HYBI08,
    RFC6455,
    Accepted,
    ClientHandshake,
    Request,
    RequestParser,
    Response,
    errorResponse,
    negotiate,
)

#: Every family a server accepts unless told otherwise.
ALL_FAMILIES = (RFC6455, HYBI08, HYBI07, HIXIE76)


class Side(enum.Enum):
    """
    Which end of the connection we are: it decides masking (a client masks
    what it sends, a server refuses unmasked frames) and who closes the
    TCP connection after the closing handshake (the server, RFC 6455 7.1.1).
    """

    SERVER = "server"
    CLIENT = "client"


class State(enum.IntEnum):
    """
    The states of RFC 6455 4.1/7.1 (C{readyState} in browsers).
    """

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


CONNECTING = State.CONNECTING
OPEN = State.OPEN
CLOSING = State.CLOSING
CLOSED = State.CLOSED
SERVER = Side.SERVER
CLIENT = Side.CLIENT


class Reader(Protocol):
    """
    A family's incremental frame reader.
    """

    def receive(self, data: bytes) -> Sequence[FrameEvent]:
        """
        Consume C{data}; return the events it completes, in order.
        """

    def buffered(self) -> int:
        """
        Bytes held for a message still arriving.
        """

    def stop(self) -> None:
        """
        Ignore all further data and let go of what is held.
        """


class Codec(Protocol):
    """
    One protocol family's framing: L{rfc6455.Codec} (RFC 6455, HyBi-07/08)
    and L{hixie76.Codec} (Hixie-76) provide it. The protocol never asks
    which family it speaks; it asks its codec what the family can do.
    """

    #: Does a close frame carry a code and reason?
    hasCloseCodes: bool
    #: Are there ping and pong frames?
    hasPing: bool
    #: Are there binary messages?
    hasBinary: bool
    #: L{frame}, bound once and shared by every connection.
    framer: Callable[[str | bytes], tuple[bytes, bytes]]

    def reader(
        self, maxMessageSize: int, maxFrameSize: int | None, inflater: deflate.Inflater | None
    ) -> Reader:
        """
        A reader for what the peer sends.
        """

    def frame(self, message: str | bytes) -> tuple[bytes, bytes]:
        """
        A whole message as (header, payload).
        """

    def frameBytes(self, opcode: int, payload: bytes, rsv: int = 0) -> tuple[bytes, bytes]:
        """
        A frame of C{opcode} with C{payload} (compressed messages).
        """

    def control(self, opcode: int, payload: bytes) -> bytes:
        """
        A whole control frame (C{b""} when the family has none).
        """

    def close(self, code: int | None, reason: str) -> bytes:
        """
        A whole close frame.
        """


@dataclass(slots=True)
class Liveness:
    """
    A keepalive decision (see L{WebSocketProtocol.liveness}).

    @ivar ping: a ping frame to send now, or C{None}.
    @ivar close: C{(code, reason)} to close the connection with, or C{None}.
    @ivar nextCheck: when to ask again (a time on the caller's clock), or
        C{None} when no check is due.
    """

    ping: bytes | None
    close: tuple[int, str] | None
    nextCheck: float | None


@dataclass(frozen=True, slots=True)
class Limits:
    """
    The limits and timeouts of a connection: one object shared by every
    connection of a layer (a connection holds a reference, not copies).

    @ivar maxMessageSize: the largest message accepted (1009 beyond).
    @ivar maxFrameSize: the largest data frame accepted (1009 beyond), or
        C{None}.
    @ivar maxHandshakeSize: a server's limit on the request head (431),
        and on what may arrive while the application decides.
    @ivar maxHeaders: a server's limit on request header fields (431).
    @ivar pingInterval: see L{WebSocketProtocol.liveness}.
    @ivar pingTimeout: see L{WebSocketProtocol.liveness}.
    @ivar idleTimeout: see L{WebSocketProtocol.liveness}.
    """

    maxMessageSize: int = rfc6455.DEFAULT_MAX_MESSAGE_SIZE
    maxFrameSize: int | None = None
    maxHandshakeSize: int = 16384
    maxHeaders: int = 100
    pingInterval: float | None = None
    pingTimeout: float | None = None
    idleTimeout: float | None = None


class _Opening:
    """
    What only the opening handshake needs; dropped once it is over.
    """

    __slots__ = ("accepted", "deflateConfig", "handshake", "held", "heldSize", "parser")

    def __init__(self, parser: RequestParser | None, handshake: ClientHandshake | None) -> None:
        self.parser = parser
        self.handshake = handshake
        self.accepted: Accepted | None = None
        self.deflateConfig: deflate.PerMessageDeflate | deflate.DeflateOffer | None = None
        self.held: list[bytes] | None = None
        self.heldSize = 0


def codecFor(family: str, side: Side) -> Codec:
    """
    The codec of C{family} for C{side}.
    """
    if family == HIXIE76:
        return hixie76.CODEC
    return rfc6455.SERVER_CODEC if side is SERVER else rfc6455.CLIENT_CODEC


class WebSocketProtocol:
    """
    One WebSocket connection's protocol state, either side.

    A server's starts reading the opening handshake request
    (L{receive} returns a L{RequestReceived}); the caller then calls
    L{negotiate}, and L{accept} or L{refuse}. A client's is given a
    L{ClientHandshake}: L{connect} returns the request to send, and
    L{receive} returns L{Opened} once the server accepted it.

    Once open, L{receive} returns messages (C{str}, C{bytes}) and control
    events (L{rfc6455.Ping}, L{rfc6455.Pong}, L{CloseReceived},
    L{rfc6455.Failed}); L{frame} frames a message to send.

    @ivar side: L{SERVER} or L{CLIENT}.
    @ivar state: the L{State}.
    @ivar family: the protocol family, once known (C{'rfc6455'}, ...).
    @ivar subprotocol: the negotiated subprotocol, or C{None}.
    @ivar compression: the agreed permessage-deflate parameters (as the
        server names them), or C{None}.
    @ivar request: the handshake request (received by a server, sent by a
        client).
    @ivar response: a client's: the server's response, once open.
    @ivar closeCode: the code of the peer's close frame; when we failed the
        connection, the code we failed it with; 1006 once lost without a
        closing handshake.
    @ivar closeReason: the reason that came with it.
    @ivar wasClean: did the closing handshake complete?
    @ivar failed: did we fail the connection (nothing more is read)?
    @ivar lastReceived: when something last arrived (set by the caller, on
        its clock, when keepalive or idle timeouts are on).
    @ivar leftover: a server's: what arrived after the request, for
        L{receive} once the connection is open.
    """

    __slots__ = (
        "_codec",
        "_compressMin",
        "_deflater",
        "_opening",
        "_pingSentAt",
        "_reader",
        "closeCode",
        "closeReason",
        "compression",
        "failed",
        "family",
        "lastReceived",
        "leftover",
        "limits",
        "request",
        "response",
        "side",
        "state",
        "subprotocol",
        "wasClean",
    )

    def __init__(
        self,
        side: Side,
        *,
        handshake: ClientHandshake | None = None,
        limits: Limits | None = None,
        **options: Any,
    ) -> None:
        """
        @param handshake: a client's opening handshake (required for
            L{CLIENT}, refused for L{SERVER}).
        @param limits: the connection's L{Limits} (a layer shares one among
            its connections).
        @param options: or the fields of L{Limits} as keywords, for a
            connection of its own.
        """
        if (handshake is None) is (side is CLIENT):
            raise ValueError("A client protocol needs a handshake; a server's takes none")
        if limits is None:
            limits = Limits(**options)
        elif options:
            raise TypeError("Give limits or its fields, not both")
        self.limits = limits
        self.side = side
        self.state = CONNECTING
        self.family: str | None = None
        self.subprotocol: str | None = None
        self.compression: deflate.DeflateParams | None = None
        self.request: Request | None = handshake.request if handshake is not None else None
        self.response: Response | None = None
        self.closeCode: int | None = None
        self.closeReason = ""
        self.wasClean = False
        self.failed = False
        self.lastReceived = 0.0
        self.leftover = b""
        self._pingSentAt: float | None = None
        self._opening: _Opening | None = _Opening(
            RequestParser(limits.maxHandshakeSize, limits.maxHeaders)
            if handshake is None
            else None,
            handshake,
        )
        self._codec: Codec | None = None
        self._reader: Reader | None = None
        self._deflater: deflate.Deflater | None = None
        self._compressMin = 0

    # -- Receiving -------------------------------------------------------------

    def receive(self, data: bytes) -> Sequence[Event]:
        """
        Consume bytes from the peer; return the events they complete.

        @raise HandshakeError: a server's: the request is malformed or too
            large (answer it with L{refuse}).
        @raise HandshakeFailed: a client's: the server refused or broke
            the handshake (the state is then L{CLOSED}).
        """
        reader = self._reader
        if reader is not None:
            return reader.receive(data)
        opening = self._opening
        if self.state is not CONNECTING or opening is None:
            return ()
        if opening.handshake is not None:
            handshake = opening.handshake
            return self._answer(handshake, lambda: handshake.receive(data))
        return self._requestData(opening, data)

    def buffered(self) -> int:
        """
        Bytes held for a message still arriving (spread over reads).
        """
        reader = self._reader
        return reader.buffered() if reader is not None else 0

    def stopReading(self) -> None:
        """
        Ignore whatever else arrives, and let go of the message in progress.
        """
        reader = self._reader
        if reader is not None:
            reader.stop()

    # -- A server's opening handshake ------------------------------------------

    def _requestData(self, opening: _Opening, data: bytes) -> Sequence[Event]:
        parser = opening.parser
        if parser is None:
            held = opening.held
            if held is not None:
                # The application is still deciding (onRequest): keep what
                # the client sends meanwhile, within bounds.
                held.append(data)
                opening.heldSize += len(data)
                limits = self.limits
                if opening.heldSize > limits.maxHandshakeSize + limits.maxMessageSize:
                    raise HandshakeError(400, "Too much data before the handshake ended")
            return ()
        request = parser.feed(data)
        if request is None:
            return ()
        opening.parser = None
        self.request = request
        leftover = parser.leftover
        opening.held = [leftover]
        opening.heldSize = len(leftover)
        upgrade = request.isUpgrade or "sec-websocket-key1" in request.headers
        return (RequestReceived(request, upgrade),)

    def requestReceived(self, request: Request) -> Sequence[Event]:
        """
        A server's: the opening request, already read by the layer below
        (an HTTP/2 stream's extended CONNECT, RFC 8441) instead of parsed
        from bytes by L{receive}. Returns the L{RequestReceived}; bytes fed
        to L{receive} from now on are held until L{accept}, as those that
        follow an HTTP/1.1 request.

        @raise HandshakeError: 431: more fields than C{maxHeaders}, or
            larger than C{maxHandshakeSize} (answer it with L{refuse}).
        """
        opening = self._opening
        if self.side is not SERVER or opening is None or opening.parser is None:
            raise RuntimeError("A request is received once, by a server, before any bytes")
        opening.parser = None
        # The same limits as a request head read from bytes (431), its
        # size counted as the HTTP/1.1 head it stands for.
        limits = self.limits
        if len(request.headers) > limits.maxHeaders:
            raise HandshakeError(431, f"More than {limits.maxHeaders} header fields")
        size = len(request.method) + len(request.target) + 12
        size += sum(len(name) + len(value) + 4 for name, value in request.headers)
        if size > limits.maxHandshakeSize:
            raise HandshakeError(431, f"Request head larger than {limits.maxHandshakeSize} bytes")
        self.request = request
        opening.held = []
        opening.heldSize = 0
        return (RequestReceived(request, True),)

    def negotiate(
        self,
        subprotocols: Sequence[str] = (),
        *,
        families: Sequence[str] = ALL_FAMILIES,
        compression: deflate.PerMessageDeflate | None = None,
        noContextTakeover: bool = False,
        secure: bool = False,
    ) -> Accepted:
        """
        Validate the upgrade request and choose what to answer, without
        answering yet (the application may still refuse: L{refuse}).

        @param noContextTakeover: offer permessage-deflate without context
            takeover both ways (frees zlib state between messages).
        @param secure: the connection is TLS (Hixie-76 names the scheme).
        @raise HandshakeError: the request cannot be accepted.
        """
        request = self.request
        opening = self._opening
        if request is None or opening is None or self.state is not CONNECTING:
            raise RuntimeError("No handshake request to negotiate")

        def extensions(request: Request) -> str | None:
            offers = request.headers.getAll("sec-websocket-extensions")
            if compression is None or not offers:
                return None
            try:
                params = compression.negotiate(offers, noContextTakeover=noContextTakeover)
            except MalformedExtensions as e:
                raise HandshakeError(400, f"Malformed Sec-WebSocket-Extensions: {e}") from None
            if params is None:
                return None
            self.compression = params
            return params.responseHeader()

        accepted = negotiate(
            request,
            subprotocols,
            secure=secure,
            families=families,
            extensions=extensions if compression is not None else None,
        )
        opening.accepted = accepted
        opening.deflateConfig = compression
        self.family = accepted.family
        self.subprotocol = accepted.subprotocol
        return accepted

    @property
    def accepted(self) -> Accepted | None:
        """
        A server's negotiated answer (L{negotiate}), until L{accept}: for
        an HTTP/2 request, its C{status} and C{headers} are the answer.
        """
        opening = self._opening
        return opening.accepted if opening is not None else None

    def accept(self) -> bytes:
        """
        Accept the negotiated handshake: the connection is open. Returns
        the response to send; then feed L{leftover} to L{receive}.
        """
        opening = self._opening
        accepted = opening.accepted if opening is not None else None
        if opening is None or accepted is None or self.state is not CONNECTING:
            raise RuntimeError("No negotiated handshake to accept")
        self._opening = None
        self.leftover = b"".join(opening.held or ())
        config = opening.deflateConfig
        params = self.compression
        self._open(
            accepted.family,
            params.agreement("server") if params is not None and config is not None else None,
            config,
        )
        return accepted.response

    def refuse(self, error: HandshakeError) -> bytes:
        """
        Refuse the handshake; returns the HTTP answer to send before
        closing.
        """
        self.endHandshake()
        return errorResponse(error)

    def endHandshake(self) -> None:
        """
        No WebSocket on this connection (a refusal, or a plain HTTP request
        answered by the caller): what arrives is ignored.
        """
        self.state = CLOSED
        self._opening = None

    # -- A client's opening handshake -----------------------------------------

    def connect(self) -> bytes:
        """
        A client's: the opening handshake request to send.
        """
        handshake = self.handshake
        if handshake is None:
            raise RuntimeError("A server does not send a handshake request")
        return handshake.data

    @property
    def handshake(self) -> ClientHandshake | None:
        """
        A client's opening handshake while it is going on (C{None} on a
        server, and once it is over).
        """
        opening = self._opening
        return opening.handshake if opening is not None else None

    def responseReceived(
        self, fields: Sequence[tuple[bytes | str, bytes | str]]
    ) -> Sequence[Event]:
        """
        A client's over HTTP/2 (its handshake made with C{http2=True}): the
        response's header block, as the layer below read it from the
        stream. Returns L{Opened} when the server accepted; a refusal's
        body then comes through L{receive}.

        @raise HandshakeFailed: the server refused or broke the handshake
            (the state is then L{CLOSED}).
        """
        handshake = self.handshake
        if handshake is None or not handshake.http2 or self.state is not CONNECTING:
            raise RuntimeError("No HTTP/2 handshake waiting for its response")
        return self._answer(handshake, lambda: handshake.receiveHeaders(fields))

    def _answer(
        self, handshake: ClientHandshake, read: Callable[[], Response | None]
    ) -> Sequence[Event]:
        """
        The server's answer, as C{read} gets it from C{handshake} (HTTP/1.1
        bytes or an HTTP/2 header block): L{Opened} once it accepted;
        L{CLOSED} if it refused or broke the handshake.
        """
        try:
            response = read()
        except HandshakeFailed:
            self.state = CLOSED
            raise
        return () if response is None else self._responded(handshake, response)

    def _responded(self, handshake: ClientHandshake, response: Response) -> Sequence[Event]:
        self.response = response
        self.subprotocol = response.subprotocol
        offer = handshake.compression
        agreed = response.compression
        agreement = None
        if agreed is not None and offer is not None:
            self.compression = agreed
            agreement = agreed.agreement("client")
        self._open(response.family, agreement, offer)
        self._opening = None
        events: list[Event] = [Opened(response)]
        leftover = handshake.leftover
        if leftover and self._reader is not None:
            events.extend(self._reader.receive(leftover))
        return events

    def _open(
        self,
        family: str,
        agreement: deflate.Agreement | None,
        config: deflate.PerMessageDeflate | deflate.DeflateOffer | None,
    ) -> None:
        codec = codecFor(family, self.side)
        inflater = None
        if agreement is not None and config is not None:
            self._deflater = deflate.Deflater(config, agreement)
            self._compressMin = config.minSize
            inflater = deflate.Inflater(agreement, self.limits.maxMessageSize)
        self._codec = codec
        self._reader = codec.reader(self.limits.maxMessageSize, self.limits.maxFrameSize, inflater)
        self.family = family
        self.state = OPEN

    # -- Sending -----------------------------------------------------------------

    @property
    def codec(self) -> Codec | None:
        """
        The family's codec, once open.
        """
        return self._codec

    @property
    def compressing(self) -> bool:
        """
        Does this connection compress (permessage-deflate agreed)?
        """
        return self._deflater is not None

    @property
    def reader(self) -> Reader | None:
        """
        Once open, the family's frame reader: what L{receive} hands the
        bytes to from then on (a caller on a hot path may call it
        directly, with L{Reader.buffered}).
        """
        return self._reader

    @property
    def framer(self) -> Callable[[str | bytes], tuple[bytes, bytes]]:
        """
        Once open, the fastest callable that does what L{frame} does for
        this connection: the codec's own (which frames a broadcast once)
        unless messages are compressed.
        """
        codec = self._codec
        if codec is None or self._deflater is not None:
            return self.frame
        return codec.framer

    def frame(self, message: str | bytes) -> tuple[bytes, bytes]:
        """
        Frame a message (C{str}: text, C{bytes}: binary) as (header,
        payload) to send in that order; call only while L{OPEN}.

        @raise BinaryNotSupported: C{bytes} over Hixie-76.
        """
        deflater = self._deflater
        codec = self._codec
        assert codec is not None
        if deflater is None:
            return codec.frame(message)
        if message.__class__ is str:
            payload = message.encode("utf-8")
            opcode = rfc6455.TEXT
        else:
            payload = message  # type: ignore[assignment]
            opcode = rfc6455.BINARY
        if len(payload) >= self._compressMin:
            return codec.frameBytes(opcode, deflater.compress(payload), 0x40)
        return codec.frameBytes(opcode, payload)

    def ping(self, payload: bytes = b"") -> bytes:
        """
        A ping frame (C{b""} when not open, or for Hixie-76).

        @raise ValueError: C{payload} is over 125 bytes.
        """
        if len(payload) > 125:
            raise ValueError("A ping payload is at most 125 bytes")
        codec = self._codec
        if self.state is not OPEN or codec is None or not codec.hasPing:
            return b""
        return codec.control(rfc6455.PING, payload)

    def pong(self, payload: bytes) -> bytes:
        """
        The answer to a L{rfc6455.Ping} (C{b""} once closing).
        """
        codec = self._codec
        if self.state is not OPEN or codec is None:
            return b""
        return codec.control(rfc6455.PONG, payload)

    # -- Closing -----------------------------------------------------------------

    def close(self, code: int = rfc6455.NORMAL_CLOSURE, reason: str = "") -> bytes:
        """
        Start the closing handshake: returns our close frame (C{b""} unless
        open). The connection is L{CLOSING} until the transport is lost.

        @raise ValueError: C{code} may not be sent (RFC 6455 7.4).
        """
        codec = self._codec
        if self.state is not OPEN or codec is None:
            return b""
        if codec.hasCloseCodes and not rfc6455.isValidCloseCode(code):
            raise ValueError("%r is not a close code an endpoint may send" % code)
        self.state = CLOSING
        return codec.close(code, reason)

    def closeReceived(self, event: CloseReceived) -> tuple[bytes, bool]:
        """
        The peer's close frame: it started the closing handshake, or
        answered ours.

        @return: our answer to send (C{b""} when we had sent our close
            already), and whether to close the transport now (the server
            does, RFC 6455 7.1.1; a client waits for the server to).
        """
        answer = b""
        codec = self._codec
        if self.state is OPEN and codec is not None:
            answer = codec.close(event.code, "")
        if not self.failed:
            code = event.code
            if code is None and codec is not None and codec.hasCloseCodes:
                code = rfc6455.NO_STATUS_RECEIVED  # RFC 6455 7.1.5
            self.closeCode = code
            self.closeReason = event.reason
            self.wasClean = True
        self.state = CLOSING
        return answer, self.side is SERVER

    def fail(self, code: int, reason: str, sendClose: bool = True) -> bytes:
        """
        Fail the connection (RFC 6455 7.1.7) with C{code}: nothing more is
        read. Returns our close frame (when open and C{sendClose}); the
        caller then shuts its sending side.
        """
        self.failed = True
        self.stopReading()
        codec = self._codec
        out = b""
        if codec is not None and not codec.hasCloseCodes:
            self.closeReason = reason  # no codes: the reason is all there is
        if self.state is OPEN and codec is not None:
            if codec.hasCloseCodes:
                self.closeCode = code
                self.closeReason = reason
            if sendClose:
                out = codec.close(code, reason)
        if self.state is not CLOSED:
            self.state = CLOSING
        return out

    def connectionLost(self) -> bool:
        """
        The transport is gone.

        @return: was the connection open (the application saw it open, and
            now sees it close)?
        """
        wasOpen = self._codec is not None and self.state in (OPEN, CLOSING)
        self.state = CLOSED
        self._deflater = None
        self._opening = None
        if self.closeCode is None and not self.wasClean:
            self.closeCode = rfc6455.ABNORMAL_CLOSURE
        return wasOpen

    # -- Keepalive ---------------------------------------------------------------

    @property
    def watchesActivity(self) -> bool:
        """
        Must the caller keep L{lastReceived} up to date?
        """
        return bool(self.limits.pingInterval or self.limits.idleTimeout)

    def liveness(self, now: float) -> Liveness:
        """
        The keepalive decision at time C{now} (on the clock L{lastReceived}
        is set with): close an idle connection (1000, "Idle timeout", after
        C{idleTimeout} without receiving anything), close one whose peer
        did not answer a keepalive ping within C{pingTimeout} (1011), send a
        ping after C{pingInterval} of silence (not in Hixie-76, which has
        none); and when to ask again.
        """
        if self.state is not OPEN:
            return Liveness(None, None, None)
        last = self.lastReceived
        limits = self.limits
        if limits.idleTimeout and now - last >= limits.idleTimeout:
            return Liveness(None, (rfc6455.NORMAL_CLOSURE, "Idle timeout"), None)
        ping = None
        codec = self._codec
        interval = limits.pingInterval if codec is not None and codec.hasPing else None
        if interval:
            sentAt = self._pingSentAt
            if sentAt is not None and last >= sentAt:
                self._pingSentAt = sentAt = None  # anything received proves liveness
            if sentAt is not None:
                if now - sentAt >= (limits.pingTimeout or interval):
                    return Liveness(None, (rfc6455.INTERNAL_ERROR, "Keepalive ping timeout"), None)
            elif now - last >= interval:
                self._pingSentAt = now
                ping = self.ping(b"keepalive")
        return Liveness(ping, None, self.nextLivenessCheck())

    def nextLivenessCheck(self) -> float | None:
        """
        When the next keepalive decision is due, or C{None}.
        """
        deadlines = []
        limits = self.limits
        if limits.idleTimeout:
            deadlines.append(self.lastReceived + limits.idleTimeout)
        codec = self._codec
        interval = limits.pingInterval
        if interval and (codec is None or codec.hasPing):
            sentAt = self._pingSentAt
            if sentAt is not None:
                deadlines.append(sentAt + (limits.pingTimeout or interval))
            else:
                deadlines.append(self.lastReceived + interval)
        return min(deadlines) if deadlines else None

    def __repr__(self) -> str:
        return (
            f"<WebSocketProtocol {self.side.value} {self.family or 'connecting'} {self.state.name}>"
        )


__all__ = [
    "ALL_FAMILIES",
    "CLIENT",
    "CLOSED",
    "CLOSING",
    "CONNECTING",
    "OPEN",
    "SERVER",
    "Codec",
    "Liveness",
    "Reader",
    "Side",
    "State",
    "WebSocketProtocol",
    "codecFor",
]
