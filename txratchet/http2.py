"""
WebSockets over HTTP/2 (RFC 8441): a socket is an extended CONNECT stream of
an HTTP/2 connection whose other streams keep serving C{twisted.web}.

It extends Twisted's own HTTP/2 channel
(C{twisted.web._http2.H2Connection}, built on C{h2}) instead of running a
second HTTP/2 stack:

  - L{WebSocketH2Connection} advertises C{SETTINGS_ENABLE_CONNECT_PROTOCOL
    = 1} in its first SETTINGS frame and opens a large connection-level
    receive window (so a stream paused by back-pressure holds only its own
    stream window, never the whole connection). A request whose
    C{:method} is C{CONNECT} with a C{:protocol} becomes a L{TunnelStream}
    (Twisted's L{H2Stream}, which it extends) and is dispatched to the
    resource tree at once, without waiting for an end of stream that a
    tunnel never sends. The resource at its C{:path} decides: a
    L{txratchet.web.WebSocketResource} takes the stream over (L{carry}),
    anything else answers as for any request (404, 405, ...).
  - A taken-over stream carries a L{StreamProtocol} (the same
    L{txratchet.server.ServerProtocol} as a TCP port, over a
    L{StreamConnection}, a L{txratchet.connection.TransportConnection}
    whose transport is the stream): the WebSocket layer gets the request
    already read (L{LowerConnection.request}), answers it with
    L{LowerConnection.respond} (C{:status 200}, or the refusal's status and
    reason) and then exchanges RFC 6455 frames in DATA frames.
  - Flow control is Twisted's, per stream: what we send waits in
    Twisted's queue for the peer's window, and the stream's producer (the
    L{StreamConnection}) is paused when the window is used up
    (C{writePaused}: the send-buffer policy applies per socket); what we
    receive is acknowledged (C{WINDOW_UPDATE}) only once the WebSocket took
    it, so a paused socket stops its own stream only.
  - Closing: a clean close ends our side (C{END_STREAM}) after what is
    queued; the stream is let go once the peer ended its side too (or
    reset it). L{TunnelStream.abortConnection} resets it (C{RST_STREAM}).
    A reset from the peer, or the connection's loss, is the socket's
    connection lost. A refusal is answered and ended, then reset with
    C{NO_ERROR} (RFC 9113 8.1: the request's body is not wanted); a
    socket that fails is reset with C{CANCEL}.
  - Limits and shutdown: C{SETTINGS_MAX_CONCURRENT_STREAMS} is the site's
    C{maxStreams}, and the connection window that many stream windows;
    L{WebSocketH2Connection.goAway} refuses new streams
    (C{REFUSED_STREAM}) and sends C{GOAWAY} once the streams are done; the
    site's idle timeout spares a connection carrying an open socket, and
    C{headTimeout} bounds the wait for the first request.

What of Twisted's private API this needs (the fence, L{txratchet._twisted},
checks it at first use, L{txratchet._twisted.missingH2Internals}; the
reset with an error code goes through L{txratchet._twisted.resetStream},
which calls C{_tryToWriteControlData}, with a fallback): the module
C{twisted.web._http2}; the
methods C{H2Connection._requestReceived} (overridden: where a request's
stream is made) and C{H2Connection._requestDone} (overridden: where a
stream is let go; kept until the peer ended its side); the ivars C{conn},
C{streams} and C{priority}; the methods streams call (C{writeHeaders},
C{writeDataToStream}, C{endRequest}, C{abortRequest}, C{openStreamWindow},
C{remainingOutboundWindow}) and those it calls on streams
(C{receiveDataChunk}, C{requestComplete}, C{connectionLost},
C{windowUpdated}, C{flowControlBlocked}). Twisted 23.8 to 26.10 have them.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Sequence
from typing import Any

import h2.errors
import h2.settings
from hyperframe.frame import GoAwayFrame
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._http2 import H2Connection, H2Stream

from txratchet._twisted import resetStream, writeControlData
from txratchet.connection import TransportConnection
from txratchet.interfaces import IApplication
from txratchet.server import ServerProtocol
from txratchet.websocket.handshake import Request, requestFromHTTP2

ENABLE_CONNECT_PROTOCOL = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL
MAX_CONCURRENT_STREAMS = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
NO_ERROR = h2.errors.ErrorCodes.NO_ERROR
CANCEL = h2.errors.ErrorCodes.CANCEL
REFUSED_STREAM = h2.errors.ErrorCodes.REFUSED_STREAM

#: Streams a connection may have open at once by default: a page's
#: resources and a hundred-odd sockets (h2's own default is 100).
DEFAULT_MAX_STREAMS = 256

#: The largest flow-control window HTTP/2 allows (RFC 9113 6.9.1).
MAX_WINDOW = 2**31 - 1

log = Logger()

#: What a stream's peer-ended marker looks like among held DATA.
_END = object()

# What _requestDone does with a tunnel stream (TunnelStream.localEnd).
_DONE = 0  # let it go
_KEEP = 1  # we ended our side; wait for the peer's
_RESET = 2  # an answer that was not a tunnel: reset what the peer still sends


def isExtendedConnect(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """
    Is this header block (pseudo-header fields first, as h2 checked them)
    an extended CONNECT (RFC 8441 section 4: C{:method CONNECT} with a
    C{:protocol})?
    """
    method = protocol = None
    for name, value in headers:
        if not name.startswith(b":"):
            break
        if name == b":method":
            method = value
        elif name == b":protocol":
            protocol = value
    return method == b"CONNECT" and protocol is not None


class WebSocketH2Connection(H2Connection):
    """
    Twisted's HTTP/2 channel with RFC 8441: extended CONNECT streams are
    L{TunnelStream}s, which a L{txratchet.web.WebSocketResource} takes over.

    @param maxStreams: C{SETTINGS_MAX_CONCURRENT_STREAMS}: the streams
        (pages and sockets) the peer may have open at once.
    @param headTimeout: seconds the peer has to send its first request
        (C{HEADERS}) before the connection is closed; C{None}: no limit.
    @ivar connectionWindow: the connection-level receive window opened at
        the start (h2 keeps it that size as data is acknowledged):
        C{maxStreams} stream windows, so streams whose sockets stopped
        reading (each holding at most its own window unacknowledged)
        cannot use up the window the other streams need.
    @ivar goingAway: L{goAway} was called: new streams are refused.
    """

    #: Seconds a connection that was told to go (or timed out) has to
    #: close before it is aborted.
    dropGrace = 2.0
    # Set by the channel that hands the connection over (as Twisted's own
    # generic channel sets them on its H2Connection).
    requestFactory: Any = None
    site: Any = None

    def __init__(
        self,
        reactor: Any = None,
        maxStreams: int = DEFAULT_MAX_STREAMS,
        headTimeout: float | None = None,
    ) -> None:
        super().__init__(reactor)
        if maxStreams < 1:
            raise ValueError("maxStreams must be at least 1")
        self.maxStreams = maxStreams
        self.headTimeout = headTimeout
        self.goingAway = False
        self._goAwaySent = False
        self._headTimer: IDelayedCall | None = None
        self._dropTimer: IDelayedCall | None = None
        self._gone: list[Deferred[None]] | None = []
        # The first SETTINGS frame says it (a later one would race the
        # client's first request): h2 sends local_settings as they are
        # at initiate_connection, and a value set now would only be
        # pending until acknowledged.
        values: dict[Any, int] = dict(self.conn.local_settings.items())
        values[ENABLE_CONNECT_PROTOCOL] = 1
        values[MAX_CONCURRENT_STREAMS] = maxStreams
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values=values)
        streamWindow = self.conn.local_settings.initial_window_size
        self.connectionWindow = min(MAX_WINDOW, maxStreams * streamWindow)

    def connectionMade(self) -> None:
        super().connectionMade()
        conn = self.conn
        increment = self.connectionWindow - conn.inbound_flow_control_window
        if increment > 0 and self.transport is not None:
            conn.increment_flow_control_window(increment)
            self.transport.write(conn.data_to_send())
        site = self.site
        connections = getattr(site, "h2Connections", None)
        if isinstance(connections, set):
            connections.add(self)
            if getattr(site, "shuttingDown", False):
                self.goAway()
                return
        if self.headTimeout:
            self._headTimer = self.callLater(self.headTimeout, self._headTimedOut)

    def _headTimedOut(self) -> None:
        self._headTimer = None
        if self.transport is not None:
            log.info("txratchet: no HTTP/2 request from {peer} in time", peer=self.transport.getPeer())
        self._drop()

    def timeoutConnection(self) -> None:
        """
        The site's idle timeout: not while a socket is open on a stream
        (the WebSocket layer has its own idle and keepalive timeouts; a
        quiet socket is not an idle connection).
        """
        if any(
            isinstance(stream, TunnelStream) and stream.opened and not stream.lost
            for stream in self.streams.values()
        ):
            self.setTimeout(self.timeOut)  # the timer that fired is spent
            return
        super().timeoutConnection()
        self._unregister()

    def _unregister(self) -> None:
        """
        Stop being the transport's producer (the channel that handed the
        connection over registered it, for back-pressure): a TLS transport
        closes only once its producer is gone, and Twisted's channel
        calls C{loseConnection} without unregistering (it never registers).
        """
        transport: Any = self.transport
        if transport is not None:
            transport.unregisterProducer()

    # -- Graceful shutdown ------------------------------------------------------------

    def goAway(self, timeout: float | None = None) -> Deferred[None]:
        """
        Shut the connection down gracefully: new streams are refused
        (C{RST_STREAM REFUSED_STREAM}: the peer may retry them elsewhere);
        once the streams open are done (the sockets' own close, a C{1001}
        from the layer's C{shutdown}, ends theirs), or after C{timeout}
        seconds, a C{GOAWAY} (C{NO_ERROR}) and the connection is closed.

        The C{GOAWAY} comes last, as Hypercorn sends it: an h2-based peer
        (h2 closes its connection state on a C{GOAWAY}) could neither
        receive nor send on its open streams after it, nor finish their
        close handshakes.

        @return: a Deferred that fires once the connection is gone.
        """
        gone = self._gone
        if gone is None or self.transport is None:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        gone.append(waiter)
        if self.goingAway:
            return waiter
        self.goingAway = True
        self._cancelHeadTimer()
        if not self.streams:
            self._drop()
            return waiter
        if timeout is not None:
            self._dropTimer = self.callLater(timeout, self._drop)
        return waiter

    def _drop(self) -> None:
        """
        Close now: h2's GOAWAY, then the transport (aborted if it is not
        gone within L{dropGrace}).
        """
        transport: Any = self.transport
        if transport is None or self._gone is None:
            return
        self.goingAway = True
        self._cancelHeadTimer()
        if self._dropTimer is not None and self._dropTimer.active():
            self._dropTimer.cancel()
        self._sendGoAway()
        self._unregister()
        transport.loseConnection()
        self._dropTimer = self.callLater(self.dropGrace, transport.abortConnection)

    def _sendGoAway(self) -> None:
        """
        Write a C{GOAWAY} (C{NO_ERROR}, the last stream we took), once.
        Not h2's own (C{close_connection}), which closes its state machine:
        after a timeout, Twisted's send loop would fail on the DATA still
        queued for streams open.
        """
        if self._goAwaySent or self.transport is None:
            return
        self._goAwaySent = True
        frame = GoAwayFrame(0)
        frame.last_stream_id = self.conn.highest_inbound_stream_id
        frame.error_code = NO_ERROR
        writeControlData(self)
        self.transport.write(frame.serialize())

    def _cancelHeadTimer(self) -> None:
        timer, self._headTimer = self._headTimer, None
        if timer is not None and timer.active():
            timer.cancel()

    # -- Twisted's hooks (private) ----------------------------------------------

    def _requestReceived(self, event: Any) -> None:
        self._cancelHeadTimer()
        if self.goingAway:
            self._refuseStream(event)
            return
        headers = event.headers
        if not isExtendedConnect(headers):
            super()._requestReceived(event)
            return
        webHeaders = list(headers)
        if not any(name == b"content-length" for name, _ in webHeaders):
            # A CONNECT has no content (RFC 9110 9.3.6); without a length
            # twisted.web would make a temporary file for a body.
            webHeaders.append((b"content-length", b"0"))
        plain = copy.copy(event)
        plain.headers = webHeaders
        # Twisted's own bookkeeping (send queue, priority, cleanup), with
        # a plain stream that is then replaced.
        super()._requestReceived(plain)
        stream = TunnelStream(
            event.stream_id,
            self,
            webHeaders,
            self.requestFactory,
            self.site,
            self.factory,
            headers,
        )
        self.streams[event.stream_id] = stream
        stream.dispatch()

    def _requestDone(self, streamID: int) -> None:
        stream = self.streams.get(streamID)
        if isinstance(stream, TunnelStream):
            action = stream.localEnd()
            if action == _KEEP:
                # Our END_STREAM is sent; the peer's is still to come (and
                # its close frame may be on its way): keep the stream for
                # its DATA, off the send loop (its queue is empty).
                self.priority.block(streamID)
                return
            if action == _RESET:
                self.abortRequest(streamID)  # comes back here, and is done
                return
        super()._requestDone(streamID)
        if isinstance(stream, TunnelStream):
            stream.streamClosed()
        if self.goingAway and not self.streams and self._gone is not None:
            self._drop()

    def _refuseStream(self, event: Any) -> None:
        """
        A stream opened after L{goAway}: reset it (C{REFUSED_STREAM}: the
        peer may retry it elsewhere), never dispatched. Twisted's
        bookkeeping holds it until this batch of frames is handled (its
        other frames may be in it).
        """
        streamID = event.stream_id
        plain = copy.copy(event)
        plain.headers = [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"https")]
        super()._requestReceived(plain)
        self.streams[streamID] = _RefusedStream(self, streamID)
        self.conn.reset_stream(streamID, error_code=REFUSED_STREAM)
        writeControlData(self)
        self.callLater(0, lambda: self._forget(streamID))

    def _forget(self, streamID: int) -> None:
        if isinstance(self.streams.get(streamID), _RefusedStream):
            self._requestDone(streamID)

    def tunnelEnded(self, streamID: int) -> None:
        """
        Both sides of a tunnel stream ended: let it go.
        """
        self._requestDone(streamID)

    def connectionLost(  # type: ignore[override]
        self, reason: Failure, _cancelTimeouts: bool = True
    ) -> None:
        # What the sockets' onClose do while Twisted walks its streams
        # must not end or reset one (that would change the dict it walks).
        for stream in list(self.streams.values()):
            if isinstance(stream, TunnelStream):
                stream.lost = True
        self._cancelHeadTimer()
        timer, self._dropTimer = self._dropTimer, None
        if timer is not None and timer.active():
            timer.cancel()
        # Twisted calls this itself after a loseConnection (a GOAWAY from
        # the peer, a protocol error): let the transport close.
        self._unregister()
        super().connectionLost(reason, _cancelTimeouts)
        connections = getattr(self.site, "h2Connections", None)
        if isinstance(connections, set):
            connections.discard(self)
        gone, self._gone = self._gone, None
        for waiter in gone or ():
            waiter.callback(None)


class _RefusedStream:
    """
    What stands for a refused stream (L{WebSocketH2Connection._refuseStream})
    among Twisted's streams until it is let go: what arrives is dropped
    (its window given back).
    """

    def __init__(self, connection: WebSocketH2Connection, streamID: int) -> None:
        self.connection = connection
        self.streamID = streamID

    def receiveDataChunk(self, data: bytes, flowControlledLength: int) -> None:
        self.connection.openStreamWindow(self.streamID, flowControlledLength)

    def requestComplete(self) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        pass

    def windowUpdated(self) -> None:
        pass

    def flowControlBlocked(self) -> None:
        pass


class TunnelStream(H2Stream):
    """
    An extended CONNECT stream: dispatched to the resource tree at once; a
    resource may L{carry} a protocol over it (DATA in and out), or answer
    it as any request.

    @ivar webRequest: the C{twisted.web} request dispatched for it.
    @ivar rawHeaders: the header block as received (with C{:protocol}).
    @ivar tunnel: the protocol the stream carries, once taken over.
    @ivar opened: was a 2xx answer sent (the stream is a tunnel)?
    @ivar lost: reset (either side) or the connection lost.
    """

    def __init__(
        self,
        streamID: int,
        connection: WebSocketH2Connection,
        headers: list[tuple[bytes, bytes]],
        requestFactory: Any,
        site: Any,
        factory: Any,
        rawHeaders: Sequence[tuple[bytes, bytes]],
    ) -> None:
        made: list[Any] = []

        def makeRequest(channel: Any, queued: Any) -> Any:
            request = requestFactory(channel, queued=queued)
            made.append(request)
            return request

        super().__init__(streamID, connection, headers, makeRequest, site, factory)
        self.webRequest = made[0]
        self.connection = connection
        self.rawHeaders = rawHeaders
        self.tunnel: Any = None
        self.opened = False
        self.lost = False
        self.remoteEnded = False
        self.localEnded = False
        self._ending = False
        self._aborting = False
        self._finished = False
        self._held: deque[tuple[Any, int]] = deque()

    def dispatch(self) -> None:
        """
        Hand the request to the resource tree now (a tunnel's request never
        ends).
        """
        self.webRequest.requestReceived(self.command, self.path, b"HTTP/2")

    def carry(self, protocol: Any) -> None:
        """
        Take the stream over for C{protocol}: it gets the stream as its
        transport and the DATA that arrives from now on.
        """
        self.tunnel = protocol
        protocol.makeConnection(self)

    def respond(self, status: int, headers: Sequence[tuple[str, str]], body: bytes = b"") -> None:
        """
        Answer the request: a HEADERS frame with C{status} and C{headers},
        then C{body}. A 2xx answer opens the tunnel.
        """
        if self.lost or self._ending:
            return
        fields = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
        ]
        if body:
            fields.append((b"content-length", b"%d" % len(body)))
        self.opened = 200 <= status < 300
        self.connection.writeHeaders(b"HTTP/2", b"%d" % status, b"", fields, self.streamID)
        if body:
            self.write(body)

    # -- What the connection calls ---------------------------------------------------

    def receiveDataChunk(self, data: bytes, flowControlledLength: int) -> None:
        if self.tunnel is None or self.lost or self._finished:
            # Refused, answered as a page, or gone: dropped (but the
            # connection's window must still get the bytes back).
            self.connection.openStreamWindow(self.streamID, flowControlledLength)
            return
        if not self.producing or self._held:
            self._held.append((data, flowControlledLength))
            return
        if data:
            self.tunnel.dataReceived(data)
        # Acknowledged once taken: a WINDOW_UPDATE when h2 sees fit.
        self.connection.openStreamWindow(self.streamID, flowControlledLength)

    def requestComplete(self) -> None:
        if self._held:
            self._held.append((_END, 0))
            return
        self._peerEnded()

    def _peerEnded(self) -> None:
        self.remoteEnded = True
        if self.tunnel is None or self.lost:
            return
        if self.localEnded:
            self.connection.tunnelEnded(self.streamID)
        else:
            # The peer ended its side: end ours once what is queued is
            # sent (the answer to its close frame, say); the stream ends
            # then, and with it the socket.
            self.loseConnection()

    def connectionLost(self, reason: Failure) -> None:
        self.lost = True
        super().connectionLost(reason)  # the web request hears of it
        self._finish(reason)

    def localEnd(self) -> int:
        """
        Our END_STREAM was sent (or we reset the stream): what
        L{WebSocketH2Connection._requestDone} does now.
        """
        if self.lost or self.remoteEnded:
            return _DONE
        if self.tunnel is not None and self.opened:
            self.localEnded = True
            return _KEEP
        self.lost = True
        return _RESET

    def streamClosed(self) -> None:
        """
        Twisted let the stream go: the carried protocol's connection is lost.
        """
        self.lost = True
        if self._aborting:
            # As a TCP abort: reported on the next reactor turn, not inside
            # the caller (a send that overflowed, a timer).
            reason = Failure(ConnectionAborted())
            self.connection.callLater(0, lambda: self._finish(reason))
        else:
            self._finish(Failure(ConnectionDone()))

    def _finish(self, reason: Failure) -> None:
        if self._finished:
            return
        self._finished = True
        held = sum(length for _, length in self._held)
        self._held.clear()
        if held:
            self.connection.openStreamWindow(self.streamID, held)
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.connectionLost(reason)

    # -- ITransport, for the carried protocol -------------------------------------

    def write(self, data: bytes) -> None:
        if self.lost or self._ending or not data:
            return
        super().write(data)

    def writeSequence(self, iovec: Sequence[bytes]) -> None:
        self.write(b"".join(iovec))

    def loseConnection(self) -> None:
        """
        End our side (END_STREAM) after what is queued.
        """
        if self.lost or self._ending:
            return
        self._ending = True
        self.connection.endRequest(self.streamID)

    def requestDone(self, request: Any) -> None:
        # A resource answered (not a tunnel): the same end.
        self.loseConnection()

    def abortConnection(self) -> None:
        """
        Reset the stream (RST_STREAM), dropping what is queued.
        """
        if self.lost:
            return
        self.lost = True
        self._aborting = True
        # CANCEL: the socket failed (RFC 8441 section 5, a TCP reset's twin).
        resetStream(self.connection, self.streamID, CANCEL)

    # -- IPushProducer: reading paused by back-pressure or a busy handler ---------

    def pauseProducing(self) -> None:
        self.producing = False

    def resumeProducing(self) -> None:
        self.producing = True
        held = self._held
        consumed = 0
        while held and self.producing and not self.lost:
            data, length = held.popleft()
            if data is _END:
                self._peerEnded()
                continue
            consumed += length
            if data:
                self.tunnel.dataReceived(data)
        if consumed:
            self.connection.openStreamWindow(self.streamID, consumed)


class StreamConnection(TransportConnection):
    """
    The connection at the bottom of a socket carried by an HTTP/2 stream:
    a L{TransportConnection} whose transport is the L{TunnelStream}, with
    the request it came with (L{request}) and L{respond}.
    """

    httpVersion = "HTTP/2"
    __slots__ = ("request",)

    def __init__(self, app: IApplication, stream: TunnelStream, request: Request) -> None:
        super().__init__(app, stream)
        self.secure = stream.isSecure()
        self.request = request

    def respond(
        self, status: int, headers: Sequence[tuple[str, str]], body: bytes = b""
    ) -> None:
        if not self.closed:
            self.transport.respond(status, headers, body)

    def __repr__(self) -> str:
        return f"<StreamConnection stream={self.transport.streamID} peer={self.peer}>"


class StreamProtocol(ServerProtocol):
    """
    L{txratchet.server.ServerProtocol} over a L{TunnelStream}.
    """

    def __init__(self, app: IApplication, request: Request) -> None:
        super().__init__(app)
        self.request = request

    def connectionMade(self) -> None:
        self._open(StreamConnection(self.app, self.transport, self.request))  # type: ignore[arg-type]


def carryWebSocket(stream: TunnelStream, app: IApplication) -> None:
    """
    Run C{app} (a L{txratchet.WebSocket} layer, or a decorator of one) over
    C{stream}, whose request it then checks and answers.
    """
    stream.carry(StreamProtocol(app, requestFromHTTP2(stream.rawHeaders)))


__all__ = [
    "StreamConnection",
    "StreamProtocol",
    "TunnelStream",
    "WebSocketH2Connection",
    "carryWebSocket",
    "isExtendedConnect",
]
