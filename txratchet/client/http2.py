"""
The client's WebSockets over HTTP/2 (RFC 8441): each socket is an extended
C{CONNECT} stream of one HTTP/2 connection, shared by every socket to the
same host, port and TLS settings.

Twisted has no HTTP/2 client; this is a small one on C{h2} (python-hyper),
enough for tunnels:

  - L{H2ClientProtocol} is one TLS connection. It offers C{h2} by ALPN
    (through the TLS options L{txratchet.client.clientEndpoint} makes),
    starts HTTP/2 once the TLS handshake chose it, and is ready once the
    server's first SETTINGS enabled extended CONNECT
    (C{SETTINGS_ENABLE_CONNECT_PROTOCOL = 1}); otherwise it fails with
    L{HTTP2Unavailable}.
  - L{ClientStream} is one stream, the transport of a
    L{txratchet.client.ClientProtocol} (the same one a TCP connection
    gets) over a L{ClientStreamConnection}: the WebSocket client layer
    sends its request as the stream's HEADERS (L{ClientStreamConnection.sendRequest})
    and gets the response's header block back
    (L{txratchet.client.ClientConnection.responseReceived}); RFC 6455
    frames (masked) then travel in DATA frames.
  - Flow control: what a socket sends waits for the peer's windows in its
    stream's own queue; while anything waits the stream pauses its
    producer (the socket's C{writePaused}, so the send-buffer policy
    applies per socket). What arrives is acknowledged (C{WINDOW_UPDATE})
    as the socket takes it: a socket whose reading is paused holds its
    stream's DATA and stops its own stream only.
  - Closing: the socket's close ends our side (C{END_STREAM}) after what
    is queued; when the server ended its side first (it closes after the
    closing handshake, as a server closes TCP) ours follows. A stream
    both sides ended is the socket's connection lost (clean). An abort
    resets the stream (C{RST_STREAM CANCEL}); a reset by the server, a
    GOAWAY that leaves the stream out, or the connection's loss is a lost
    connection (C{wasClean} false).
  - L{H2Pool}: connections by key (host, port, TLS settings, bind
    address); a new socket takes a stream of a connection with room
    (C{MAX_CONCURRENT_STREAMS}) or opens a new connection. A connection
    is closed (GOAWAY, then TLS close) as soon as its last socket is gone:
    no idle connection stays behind (no timer, no surprise for tests or
    shutdown), at the cost of a new TLS handshake for a socket opened
    after all others closed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IHandshakeListener,
    IProducer,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    ISSLTransport,
    IStreamClientEndpoint,
    ITransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet.client.connect import ClientTransportConnection
from txratchet.client.layer import WebSocketClient
from txratchet.errors import HTTP2Unavailable
from txratchet.interfaces import IApplication

log = Logger()

#: What a stream's peer-ended marker looks like among held DATA.
_END = b"\0end"


@implementer(IHandshakeListener)
class H2ClientProtocol(Protocol):
    """
    One HTTP/2 connection (over TLS) whose streams carry WebSockets.

    @cvar connectionWindow: the connection-level receive window opened at
        the start, so a stream whose socket stopped reading holds only its
        own stream window, never the whole connection.
    @cvar streamWindow: each stream's receive window.
    @ivar streams: the open streams by stream id.
    @ivar reserved: sockets promised a stream that have not opened it yet.
    @ivar usable: ready, and may still open streams (no GOAWAY, not closing).
    @ivar lost: a Deferred firing once the TCP connection is gone.
    """

    connectionWindow = 16 * 1024 * 1024
    streamWindow = 1024 * 1024

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        conn = self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        # The first SETTINGS frame says them: each stream may bring 1 MiB
        # before we acknowledge (h2's default, 64 KiB, would stall a
        # large message on every round trip), and no server push.
        values: dict[Any, int] = dict(conn.local_settings.items())
        values[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = self.streamWindow
        values[h2.settings.SettingCodes.ENABLE_PUSH] = 0
        conn.local_settings = h2.settings.Settings(client=True, initial_values=values)
        self.streams: dict[int, ClientStream] = {}
        self.reserved = 0
        self.usable = False
        self.failure: Failure | None = None
        self.gone = False
        self.lost: Deferred[None] = Deferred()
        self._settings = False
        self._waiters: list[Deferred[H2ClientProtocol]] = []
        #: Called once the connection can take no new stream (the pool's).
        self.onUnusable: Callable[[H2ClientProtocol], None] | None = None

    # -- Becoming ready ---------------------------------------------------------

    def whenReady(self) -> Deferred[H2ClientProtocol]:
        """
        Fires with this connection once the server enabled extended
        CONNECT; fails with L{HTTP2Unavailable} (or the connection's
        failure) otherwise.
        """
        if self.failure is not None:
            return fail(self.failure)
        if self.usable:
            d: Deferred[H2ClientProtocol] = Deferred()
            d.callback(self)
            return d
        d = Deferred()
        self._waiters.append(d)
        return d

    def hasRoom(self) -> bool:
        """
        May one more socket take a stream of this connection?
        """
        if self.failure is not None or self.gone or (self._settings and not self.usable):
            return False
        limit = self.conn.remote_settings.max_concurrent_streams
        return len(self.streams) + self.reserved < limit

    def full(self) -> bool:
        """
        Does the server allow no more open streams right now (its
        C{MAX_CONCURRENT_STREAMS}, known once its SETTINGS came)?
        """
        limit = self.conn.remote_settings.max_concurrent_streams
        return self.conn.open_outbound_streams >= limit or not self.usable

    def connectionMade(self) -> None:
        if not ISSLTransport.providedBy(self.transport):
            self._unavailable("WebSockets over HTTP/2 need TLS (a wss:// URL)")

    def handshakeCompleted(self) -> None:
        negotiated = getattr(self.transport, "negotiatedProtocol", None)
        if negotiated != b"h2":
            chosen = negotiated.decode("latin-1") if negotiated else "no protocol"
            self._unavailable(f"The server chose {chosen} by ALPN, not h2")
            return
        conn = self.conn
        conn.initiate_connection()
        increment = self.connectionWindow - conn.inbound_flow_control_window
        if increment > 0:
            conn.increment_flow_control_window(increment)
        self._flush()

    def _settingsReceived(self) -> None:
        self._settings = True
        if self.conn.remote_settings.enable_connect_protocol != 1:
            self._unavailable(
                "The server speaks HTTP/2 but does not enable extended CONNECT "
                "(SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441)"
            )
            return
        self.usable = True
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(self)

    def _unavailable(self, reason: str) -> None:
        self._failed(Failure(HTTP2Unavailable(reason)))
        self.close()

    def _failed(self, failure: Failure) -> None:
        if self.failure is None and not self.usable:
            self.failure = failure
        self._becomeUnusable()
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(failure)

    def connectFailed(self, failure: Failure) -> None:
        """
        The TCP or TLS connection could not be made.
        """
        self.gone = True
        self._failed(failure)
        self.lost.callback(None)

    def _becomeUnusable(self) -> None:
        self.usable = False
        hook, self.onUnusable = self.onUnusable, None
        if hook is not None:
            hook(self)

    # -- Streams ---------------------------------------------------------------

    def openStream(self, protocol: IProtocol) -> ClientStream:
        """
        Open a stream (reserved through the pool) for C{protocol}: the
        stream becomes its transport; the stream id is taken when the
        protocol sends its request.
        """
        self.reserved -= 1
        stream = ClientStream(self, protocol)
        protocol.makeConnection(stream)
        return stream

    def release(self) -> None:
        """
        A reservation that will not be used (the caller gave up).
        """
        self.reserved -= 1
        self._checkIdle()

    def _checkIdle(self) -> None:
        if not self.streams and self.reserved <= 0 and (self.usable or self._settings):
            self.close()

    def close(self) -> None:
        """
        Close the connection: GOAWAY, then the TLS close (streams still
        open are lost).
        """
        self._becomeUnusable()
        if self.gone or self.transport is None:
            return
        try:
            self.conn.close_connection()
        except h2.exceptions.ProtocolError:
            pass  # HTTP/2 never started (ALPN said otherwise)
        self._flush()
        self.transport.loseConnection()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.gone and self.transport is not None:
            self.transport.write(data)

    def sendStream(self, stream: ClientStream) -> None:
        """
        Send what C{stream} queued, as far as the windows allow; then its
        END_STREAM when it is ending and nothing is left.
        """
        sid = stream.streamID
        if sid is None or stream.finished:
            return
        conn = self.conn
        out = stream.out
        try:
            while out:
                window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                if window <= 0:
                    break
                chunk = out[0]
                if len(chunk) <= window:
                    out.popleft()
                else:
                    out[0] = chunk[window:]
                    chunk = chunk[:window]
                stream.outSize -= len(chunk)
                conn.send_data(sid, chunk)
            if not out and stream.ending and not stream.localEnded:
                conn.end_stream(sid)
                stream.localEnded = True
        except h2.exceptions.StreamClosedError:
            out.clear()
            stream.outSize = 0
        self._flush()
        stream.blocked(bool(out))
        if stream.localEnded and stream.remoteEnded:
            stream.finish(Failure(ConnectionDone()))

    def acknowledge(self, streamID: int, length: int) -> None:
        """
        C{length} flow-controlled bytes of C{streamID} were consumed.
        """
        if length and not self.gone:
            self.conn.acknowledge_received_data(length, streamID)
            self._flush()

    def streamGone(self, stream: ClientStream) -> None:
        if stream.streamID is not None and self.streams.get(stream.streamID) is stream:
            del self.streams[stream.streamID]
        self._checkIdle()

    # -- Receiving -------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            log.info("HTTP/2 protocol error from the server: {e}", e=e)
            self._flush()  # the GOAWAY h2 queued
            self._failed(Failure(HTTP2Unavailable(f"HTTP/2 protocol error: {e}")))
            if self.transport is not None:
                self.transport.loseConnection()
            return
        for event in events:
            self._event(event)
        self._flush()

    def _event(self, event: Any) -> None:
        cls = type(event)
        if cls is h2.events.DataReceived:
            stream = self.streams.get(event.stream_id)
            if stream is None:
                self.acknowledge(event.stream_id, event.flow_controlled_length)
            else:
                stream.dataReceived(event.data, event.flow_controlled_length)
        elif cls is h2.events.ResponseReceived:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.headersReceived(event.headers)
        elif cls is h2.events.StreamEnded:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.remoteEnd()
        elif cls is h2.events.StreamReset:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.finish(
                    Failure(
                        ConnectionLost(
                            f"The server reset the HTTP/2 stream (error code {event.error_code})"
                        )
                    )
                )
        elif cls is h2.events.WindowUpdated:
            if event.stream_id:
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    self.sendStream(stream)
            else:
                for stream in list(self.streams.values()):
                    self.sendStream(stream)
        elif cls is h2.events.RemoteSettingsChanged:
            if not self._settings:
                self._settingsReceived()
            else:
                for stream in list(self.streams.values()):
                    self.sendStream(stream)  # the initial window may have grown
        elif cls is h2.events.ConnectionTerminated:
            self._becomeUnusable()
            last = event.last_stream_id or 0
            reason = Failure(ConnectionLost(f"The server sent GOAWAY (error code {event.error_code})"))
            for sid, stream in list(self.streams.items()):
                if sid > last or event.error_code:
                    stream.finish(reason)
            if not self.streams and self.transport is not None:
                self.transport.loseConnection()

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: B008
        self.gone = True
        self._failed(reason)
        for stream in list(self.streams.values()):
            stream.finish(reason)
        self.streams.clear()
        self.lost.callback(None)


@implementer(ITransport, IConsumer, IPushProducer)
class ClientStream:
    """
    One extended CONNECT stream, as the transport of the protocol it
    carries (a L{txratchet.client.ClientProtocol}).

    @ivar streamID: the stream id, once the request was sent.
    @ivar out: what waits for the peer's windows, and L{outSize} its size.
    """

    disconnecting = False

    def __init__(self, connection: H2ClientProtocol, protocol: IProtocol) -> None:
        self.connection = connection
        self.protocol = protocol
        self.streamID: int | None = None
        self.lower: ClientStreamConnection | None = None
        self.producer: IPushProducer | None = None
        self.out: deque[bytes] = deque()
        self.outSize = 0
        self.reading = True
        self.localEnded = False
        self.remoteEnded = False
        self.ending = False
        self.finished = False
        self._writeBlocked = False
        self._held: deque[tuple[bytes, int]] = deque()

    def clientConnection(self, app: IApplication) -> ClientStreamConnection:
        """
        The lower connection a L{txratchet.client.ClientProtocol} runs over
        this stream (instead of a L{ClientTransportConnection}).
        """
        self.lower = ClientStreamConnection(app, self)
        return self.lower

    # -- The request and the response ------------------------------------------

    def sendHeaders(self, headerBlock: Sequence[tuple[str, str]]) -> None:
        """
        Take a stream id and send the request's header block on it.
        """
        connection = self.connection
        if self.streamID is not None or self.finished:
            raise RuntimeError("The request was sent already")
        conn = connection.conn
        try:
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headerBlock])
        except (h2.exceptions.ProtocolError, ValueError) as e:
            reason = Failure(ConnectionLost(f"Could not open an HTTP/2 stream: {e}"))
            connection.clock.callLater(0, self.finish, reason)
            return
        self.streamID = sid
        connection.streams[sid] = self
        connection._flush()

    def headersReceived(self, headers: Sequence[tuple[bytes, bytes]]) -> None:
        lower = self.lower
        if lower is not None and not self.finished:
            lower.responseReceived(headers)

    # -- Receiving -----------------------------------------------------------------

    def dataReceived(self, data: bytes, length: int) -> None:
        if self.finished:
            self.connection.acknowledge(self._sid, length)
            return
        if not self.reading or self._held:
            self._held.append((data, length))
            return
        if data:
            self.protocol.dataReceived(data)
        # Acknowledged once taken: a WINDOW_UPDATE when h2 sees fit.
        self.connection.acknowledge(self._sid, length)

    @property
    def _sid(self) -> int:
        assert self.streamID is not None
        return self.streamID

    def remoteEnd(self) -> None:
        if self._held:
            self._held.append((_END, 0))
            return
        self._remoteEnded()

    def _remoteEnded(self) -> None:
        self.remoteEnded = True
        if self.localEnded:
            self.finish(Failure(ConnectionDone()))
        else:
            # The server ended its side (after the closing handshake, as a
            # server closes TCP): end ours after what is queued.
            self.loseConnection()

    def finish(self, reason: Failure) -> None:
        """
        The stream is over (both sides ended, reset, or the connection
        lost): the carried protocol's connection is lost.
        """
        if self.finished:
            return
        self.finished = True
        held = sum(length for _, length in self._held)
        self._held.clear()
        self.out.clear()
        self.outSize = 0
        if held and self.streamID is not None:
            self.connection.acknowledge(self.streamID, held)
        self.connection.streamGone(self)
        self.protocol.connectionLost(reason)

    # -- ITransport ------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.finished or self.ending or not data:
            return
        self.out.append(data)
        self.outSize += len(data)
        self.connection.sendStream(self)

    def writeSequence(self, iovec: Iterable[bytes]) -> None:
        self.write(b"".join(iovec))

    def loseConnection(self) -> None:
        """
        End our side (END_STREAM) after what is queued.
        """
        if self.finished or self.ending:
            return
        self.ending = True
        if self.streamID is None:
            self.connection.clock.callLater(0, self.finish, Failure(ConnectionDone()))
            return
        self.connection.sendStream(self)

    def abortConnection(self) -> None:
        """
        Reset the stream (RST_STREAM CANCEL), dropping what is queued; the
        connection is reported lost on the next reactor turn, as a TCP
        abort is.
        """
        if self.finished:
            return
        self.ending = True
        self.out.clear()
        self.outSize = 0
        sid = self.streamID
        connection = self.connection
        if sid is not None and not connection.gone:
            try:
                connection.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            except h2.exceptions.StreamClosedError:
                pass
            connection._flush()
        if sid is not None and connection.streams.get(sid) is self:
            del connection.streams[sid]  # what still arrives for it is dropped
        connection.clock.callLater(0, self.finish, Failure(ConnectionAborted()))

    def getPeer(self) -> IAddress:
        return self.connection.transport.getPeer()  # type: ignore[no-any-return,union-attr]

    def getHost(self) -> IAddress:
        return self.connection.transport.getHost()  # type: ignore[no-any-return,union-attr]

    def getPeerCertificate(self) -> Any:
        return self.connection.transport.getPeerCertificate()  # type: ignore[union-attr]

    # -- IConsumer: the lower connection is our producer ---------------------------

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self.producer = producer  # type: ignore[assignment]

    def unregisterProducer(self) -> None:
        self.producer = None

    def blocked(self, blocked: bool) -> None:
        """
        Is something waiting for the peer's windows? Pause or resume the
        producer (the socket's C{writePaused}).
        """
        if blocked == self._writeBlocked:
            return
        self._writeBlocked = blocked
        producer = self.producer
        if producer is not None and not self.finished:
            if blocked:
                producer.pauseProducing()
            else:
                producer.resumeProducing()

    # -- IPushProducer: reading paused by back-pressure or a busy handler ---------

    def pauseProducing(self) -> None:
        self.reading = False

    def resumeProducing(self) -> None:
        self.reading = True
        held = self._held
        consumed = 0
        while held and self.reading and not self.finished:
            data, length = held.popleft()
            if data is _END:
                self._remoteEnded()
                continue
            consumed += length
            if data:
                self.protocol.dataReceived(data)
        if consumed and self.streamID is not None:
            self.connection.acknowledge(self.streamID, consumed)

    def stopProducing(self) -> None:
        self.abortConnection()

    def __repr__(self) -> str:
        return f"<ClientStream {self.streamID}>"


class ClientStreamConnection(ClientTransportConnection):
    """
    The lower connection of a socket on an HTTP/2 stream: a
    L{ClientTransportConnection} whose transport is the L{ClientStream},
    which sends the request as HEADERS and hands the response's header
    block to the WebSocket connection.
    """

    httpVersion = "HTTP/2"
    transport: ClientStream

    def __init__(self, app: IApplication, stream: ClientStream) -> None:
        super().__init__(app, stream)  # type: ignore[arg-type]
        # Always TLS (the connection is), never written through a socket.
        self.secure = True
        self._throughNext = False

    def pauseProducing(self) -> None:
        # The stream's window is used up: writes wait in its queue
        # (writePaused; the send-buffer policy counts them), but reading
        # goes on. Over TCP the client stops reading too, with the
        # kernel's megabytes of buffers on both sides; with HTTP/2's
        # windows an echoing server that also stops reading while its
        # writes wait would deadlock both within one window.
        self.writePaused = True

    def resumeProducing(self) -> None:
        self.writePaused = False
        self.bufferedWhilePaused = 0

    def resumeReading(self) -> None:
        # Not held back by writePaused (see pauseProducing).
        self._readPaused = False
        if not self.closed:
            self.transport.resumeProducing()

    def sendRequest(self, headerBlock: Sequence[tuple[str, str]]) -> None:
        self.transport.sendHeaders(headerBlock)

    def responseReceived(self, headers: Sequence[tuple[bytes, bytes]]) -> None:
        """
        The response's header block: to the WebSocket connection above.
        """
        app = self.app
        ws = app.connectionFor(self) if isinstance(app, WebSocketClient) else None
        if ws is None:
            self.abort()
            return
        ws.responseReceived(headers)

    def __repr__(self) -> str:
        return f"<ClientStreamConnection stream={self.transport.streamID} peer={self.peer}>"


class H2Pool:
    """
    The HTTP/2 connections sockets share, by key (host, port, TLS settings,
    bind address: see L{txratchet.client.clientEndpoint}).

    @ivar unsupported: keys whose server could not give a WebSocket over
        HTTP/2 (for C{http2=None}, which then goes straight to HTTP/1.1).
    """

    def __init__(self) -> None:
        self._connections: dict[Hashable, list[H2ClientProtocol]] = {}
        self.unsupported: set[Hashable] = set()

    def connections(self, key: Hashable | None = None) -> list[H2ClientProtocol]:
        """
        The connections that may take new sockets (for C{key}, or all).
        """
        if key is not None:
            return list(self._connections.get(key, ()))
        return [proto for protos in self._connections.values() for proto in protos]

    def acquire(
        self,
        key: Hashable,
        connect: Callable[[IProtocolFactory], Deferred[Any]],
        clock: Any,
    ) -> tuple[H2ClientProtocol, Deferred[H2ClientProtocol]]:
        """
        Reserve a stream on a connection for C{key} with room, made with
        C{connect} (an endpoint's) when there is none.

        @return: the connection and a Deferred firing once it is ready.
        """
        for proto in self._connections.get(key, ()):
            if proto.hasRoom():
                proto.reserved += 1
                return proto, proto.whenReady()
        proto = H2ClientProtocol(clock)
        proto.reserved = 1
        self._connections.setdefault(key, []).append(proto)

        def unusable(p: H2ClientProtocol) -> None:
            protos = self._connections.get(key)
            if protos is not None and p in protos:
                protos.remove(p)
                if not protos:
                    del self._connections[key]

        proto.onUnusable = unusable
        ready = proto.whenReady()
        d = connect(Factory.forProtocol(lambda: proto))
        d.addErrback(proto.connectFailed)
        return proto, ready


#: The pool L{txratchet.client.connectWebSocket} and
#: L{txratchet.client.WebSocketClientService} use.
pool = H2Pool()


@implementer(IStreamClientEndpoint)
class HTTP2Endpoint:
    """
    An endpoint whose connections are extended CONNECT streams of a shared
    HTTP/2 connection (made with C{endpoint}, TLS offering C{h2} by ALPN).

    @param key: what the connection is shared by (see L{H2Pool}).
    @param fallback: where to connect instead when the server cannot give
        a WebSocket over HTTP/2 (C{http2=None}); without one, connecting
        fails with L{HTTP2Unavailable}.
    """

    def __init__(
        self,
        reactor: Any,
        endpoint: IStreamClientEndpoint,
        key: Hashable,
        fallback: IStreamClientEndpoint | None = None,
        pool: H2Pool = pool,
    ) -> None:
        self._reactor = reactor
        self._endpoint = endpoint
        self._key = key
        self._fallback = fallback
        self._pool = pool

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        pool = self._pool
        fallback = self._fallback
        if fallback is not None and self._key in pool.unsupported:
            return fallback.connect(protocolFactory)
        result: Deferred[IProtocol] = Deferred()

        def ready(h2conn: H2ClientProtocol) -> None:
            if result.called:
                h2conn.release()
                return
            if h2conn.full():
                # Reserved before the server said its stream limit (or it
                # sent GOAWAY since): another connection, then.
                h2conn.release()
                acquire()
                return
            transport = h2conn.transport
            assert transport is not None
            protocol = protocolFactory.buildProtocol(transport.getPeer())
            if protocol is None:
                h2conn.release()
                result.errback(ConnectionAborted("The factory built no protocol"))
                return
            h2conn.openStream(protocol)
            result.callback(protocol)

        def failed(failure: Failure) -> None:
            if result.called:
                return
            if fallback is not None and failure.check(HTTP2Unavailable):
                pool.unsupported.add(self._key)
                fallback.connect(protocolFactory).chainDeferred(result)
                return
            result.errback(failure)

        def acquire() -> None:
            _, waiting = pool.acquire(self._key, self._endpoint.connect, self._reactor)
            waiting.addCallbacks(ready, failed)

        acquire()
        return result


__all__ = [
    "ClientStream",
    "ClientStreamConnection",
    "H2ClientProtocol",
    "H2Pool",
    "HTTP2Endpoint",
    "pool",
]
