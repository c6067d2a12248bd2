"""
Connection objects: the bottom one wraps a Twisted transport, and each
decorating layer wraps the connection below it.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from twisted.internet import tcp
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IPushProducer,
    IReactorTime,
    ISSLTransport,
    ITransport,
)
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet._twisted import throughSocket, writable
from txratchet.commands import execute
from txratchet.interfaces import IApplication, IConnection, LowerConnection, concurrentMessages
from txratchet.stats import NOT_OPEN, FamilyStats
from txratchet.websocket.http11 import Headers
from txratchet.websocket.protocol import CLOSED, OPEN, State

if TYPE_CHECKING:
    from txratchet.websocket.handshake import Request

log = Logger()


def checkMessage(message: object) -> str | bytes:
    """
    What C{send} makes of a message that is neither exactly C{str} nor
    C{bytes} (the callers test for those first, so the common case costs
    nothing more): exactly one of them. A C{str} subclass becomes C{str}
    (text); C{bytearray}, C{memoryview} and C{bytes} subclasses become
    C{bytes} (a copy: what was handed over cannot change while queued).

    @raise TypeError: for anything else, which would otherwise be sent as
        garbage (C{bytes(5)} is five NUL bytes) or fail somewhere
        confusing.
    """
    if isinstance(message, str):
        return str.__str__(message)
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message)
    raise TypeError(f"send() takes str or bytes-like, not {type(message).__name__}")


@implementer(IConnection)
class Connection:
    """
    Behaviour shared by every connection a layer hands to the application:
    attributes for the application's own use, and error reporting.

    Connections hash by identity, so they can live in sets and dicts.

    @ivar app: the application this connection is handed to.
    @ivar attributes: a dict for the application's per-connection state.
    """

    protocol = "tcp"
    peer: Any = None
    #: The session a L{txratchet.components.SessionProvider} in the stack
    #: loaded for this connection (whatever its store keeps); C{None}
    #: without one.
    session: Any = None
    __slots__ = ("__dict__", "__weakref__", "_attributes", "app")

    # What a connection without an opening handshake (a line peer, the
    # TCP connection under a layer) tells of one, for IConnection:
    # nothing. The WebSocket connections override these.
    closeCode: int | None = None
    closeReason = ""
    wasClean = False
    #: Did we start closing, or is the connection gone? (Not on WebSocket
    #: connections, whose L{state} says more.)
    closed: bool

    @property
    def path(self) -> str:
        return ""

    @property
    def query(self) -> str:
        return ""

    @property
    def params(self) -> dict[str, list[str]]:
        return {}

    @property
    def headers(self) -> Headers:
        return Headers()

    @property
    def cookies(self) -> dict[str, str]:
        return {}

    @property
    def subprotocol(self) -> str | None:
        return None

    @property
    def request(self) -> Request | None:
        return None

    @property
    def state(self) -> State:
        """
        C{OPEN}, then C{CLOSED} once closing started (there is no closing
        handshake to wait for).
        """
        return CLOSED if self.closed else OPEN

    def __init__(self, app: IApplication) -> None:
        self.app = app
        self._attributes: dict[str, Any] | None = None

    @property
    def attributes(self) -> dict[str, Any]:
        # Made on first use: most connections never need one.
        attributes = self._attributes
        if attributes is None:
            attributes = self._attributes = {}
        return attributes

    @attributes.setter
    def attributes(self, value: dict[str, Any]) -> None:
        self._attributes = value

    def send(self, message: str | bytes) -> None:
        raise NotImplementedError()

    def close(self, code: int = 1000, reason: str = "") -> None:
        raise NotImplementedError()

    # -- Handlers that are coroutines ----------------------------------------------
    #
    # Kept in the instance __dict__, made only for applications with async
    # handlers: a connection of a synchronous application pays nothing.

    #: Is an C{onOpen} or C{onMessage} coroutine of this connection still
    #: running? Messages then wait in C{_waiting}, in order, and reading from
    #: the peer is paused (the next ones wait in the kernel).
    _busy: bool = False
    _waiting: deque[str | bytes] | None = None
    #: Coroutines of this connection still running (to cancel when it is lost).
    _tasks: set[Deferred[object]] | None = None
    #: Is the connection lost (its coroutines cancelled)?
    _lost: bool = False

    def startHandler(self, coroutine: Coroutine[Any, Any, object]) -> None:
        """
        Run C{coroutine}, what an C{async def} C{onOpen} or C{onMessage} of
        this connection returned (L{execute} hands it here): its result is
        executed as a handler's, its failure goes to C{onError}, and it is
        cancelled if the connection is lost first. Until it ends, this
        connection's next messages wait, unless the application declares
        C{concurrentMessages = True}.
        """
        d: Deferred[object] = Deferred.fromCoroutine(coroutine)
        if d.called:
            # It ended without waiting for anything: nothing to track.
            d.addCallbacks(execute, self.reportError, callbackArgs=(self,))
            return
        if self._lost:
            d.addErrback(lambda _: None)
            d.cancel()
            return
        tasks = self._tasks
        if tasks is None:
            tasks = self._tasks = set()
        tasks.add(d)
        serial = not concurrentMessages(self.app)
        if serial:
            self._busy = True
        d.addBoth(self._coroutineEnded, d, serial)

    def _coroutineEnded(self, result: object, d: Deferred[object], serial: bool) -> None:
        if self._lost:
            # Cancelled because the connection was lost (or it ended while
            # being cancelled): nothing left to act on.
            if isinstance(result, Failure) and not result.check(CancelledError):
                log.failure("A handler failed after its connection was lost", result)
            return
        cast(set[Deferred[object]], self._tasks).discard(d)
        if isinstance(result, Failure):
            self.reportError(result)
        else:
            execute(result, self)
        if serial:
            self._busy = False
            self._deliverWaiting()

    def _wait(self, message: str | bytes) -> None:
        """
        Keep C{message} until the handler coroutine running ends; the first
        one kept pauses reading from the peer.
        """
        waiting = self._waiting
        if waiting is None:
            waiting = self._waiting = deque()
        if not waiting:
            self._pauseReading()
        waiting.append(message)

    def _deliverWaiting(self) -> None:
        waiting = self._waiting
        if not waiting:
            return
        while waiting and not self._busy and not self._lost:
            message = waiting.popleft()
            try:
                result = self.app.onMessage(self, message)
            except Exception:
                self.reportError(Failure())
            else:
                execute(result, self)
        if not waiting and not self._lost:
            self._resumeReading()

    def _cancelHandlers(self) -> None:
        """
        The connection is lost: cancel its handler coroutines still running
        (C{CancelledError} is raised where each one waits) and drop the
        messages waiting for them, before C{onClose}.
        """
        if self._tasks is None and self._waiting is None:
            return  # never ran a coroutine
        tasks = self._tasks
        self._lost = True
        self._tasks = None
        self._busy = False
        waiting = self._waiting
        if waiting:
            log.debug("Dropping {n} messages waiting for a handler", n=len(waiting))
        self._waiting = None
        if tasks:
            for d in list(tasks):
                d.cancel()

    def _pauseReading(self) -> None:
        """
        Stop reading from the peer (a handler coroutine is still busy).
        """
        raise NotImplementedError()

    def _resumeReading(self) -> None:
        raise NotImplementedError()

    #: Set once a C{"drop"} send-buffer policy skips messages to this peer
    #: (so that is logged once); subclasses that apply a policy set it.
    _dropping: bool

    def _sendBufferFull(self, policy: Any, limit: int, message: object) -> bool:
        """
        Apply a layer's C{sendBufferPolicy} to C{message} for a peer that
        stopped reading with over C{limit} bytes queued for it: the same
        rules for every kind of connection.

        @return: should C{message} be dropped? (C{"close"} drops it and
            the peer, through L{_overflowed}.)
        """
        if callable(policy):
            return bool(policy(self, message))
        if policy == "drop":
            if not self._dropping:
                self._dropping = True
                log.info("{peer} stopped reading; dropping what is sent to it", peer=self.peer)
            return True
        log.info(
            "{peer} stopped reading: over {limit} bytes queued; closing",
            peer=self.peer,
            limit=limit,
        )
        self._overflowed()
        return True

    def _overflowed(self) -> None:
        """
        Drop a peer the C{"close"} send-buffer policy gave up on, with
        close code 1008 (Policy Violation), "Send buffer overflow".
        """
        raise NotImplementedError()

    def reportError(self, failure: Failure) -> None:
        """
        Log C{failure} (once, at error level, with its traceback and this
        connection), then give it to the application's C{onError} for this
        connection and carry out what it returns.

        Every failure of a handler comes here, raised or from a failed
        Deferred, so none is hidden by an C{onError} that only closes the
        connection. An C{onError} that raises, or returns a Deferred that
        fails, is logged too (and not reported again).
        """
        log.failure(
            "Unhandled error on {conn!r}; passing it to {app}.onError",
            failure,
            level=LogLevel.error,
            conn=self,
            app=type(self.app).__name__,
        )
        try:
            result = self.app.onError(self, failure)
        except Exception:
            log.failure(
                "onError raised while handling {original}",
                original=failure.getErrorMessage(),
                level=LogLevel.error,
            )
            return
        execute(result)


# Is a read being handled? And the connections sent to meanwhile.
_holding = False
_held: list[TransportConnection] = []


def holdWrites() -> bool:
    """
    A read starts being handled: until L{releaseWrites}, what is sent to
    any connection is held (corked) instead of written, then written at
    once, one send per connection. A broadcast triggered by a read that
    carried several messages thus costs one send per receiver, not one per
    message, and no reactor turn (Twisted's queued C{write} would cost two
    C{epoll_ctl} calls per receiver and wait for the next turn).

    What is held is bounded by what the handlers of one read send, as the
    answers to the connection being read are (L{TransportConnection.cork}).

    @return: is this the outermost read (the one to call L{releaseWrites})?
    """
    global _holding
    if _holding:
        return False
    _holding = True
    return True


def releaseWrites() -> None:
    """
    The outermost read is handled: write what L{holdWrites} held, each
    connection's in one send.
    """
    global _holding, _held
    _holding = False
    if _held:
        held, _held = _held, []
        for conn in held:
            conn.uncork()


# What a transport can do besides ITransport, found once per connection.
# Producer and consumer by the interfaces Twisted's transports declare
# (TLS wrappers declare those of the transport under them); half-close and
# abort by the methods, which ITransport does not declare and transports
# have without ITCPTransport (test transports, standard I/O).
_CONSUMER = 1  # IConsumer: takes us as its streaming producer
_PRODUCER = 2  # IPushProducer: can stop and resume reading
_HALF_CLOSE = 4  # loseWriteConnection, and not TLS
_ABORT = 8  # abortConnection


#: Abilities by transport class, for the classes that declare them on the
#: class alone (a TLS wrapper declares its transport's on each instance).
_classAbilities: dict[type, int] = {}


def _abilities(transport: ITransport, secure: bool) -> int:
    cls = type(transport)
    if cls is tcp.Server and not secure:
        # Every accepted TCP connection: found once, not per connection.
        abilities = _classAbilities.get(cls)
        if abilities is None:
            abilities = _classAbilities[cls] = _findAbilities(transport, secure)
        return abilities
    return _findAbilities(transport, secure)


def _findAbilities(transport: ITransport, secure: bool) -> int:
    abilities = 0
    if IConsumer.providedBy(transport):
        abilities |= _CONSUMER
    if IPushProducer.providedBy(transport):
        abilities |= _PRODUCER
    if not secure and callable(getattr(transport, "loseWriteConnection", None)):
        abilities |= _HALF_CLOSE
    if callable(getattr(transport, "abortConnection", None)):
        abilities |= _ABORT
    return abilities


@implementer(IPushProducer)
class TransportConnection(Connection):
    """
    The connection at the bottom of the stack, over a Twisted transport: a
    L{LowerConnection} (every member of it, none optional). C{send} writes
    bytes, C{close} loses the connection once the written bytes are
    flushed.

    It is the transport's streaming producer: when the peer stops reading
    and the transport's buffer fills, it stops reading from that peer (so an
    echo flood cannot grow memory) and counts what is written meanwhile in
    L{bufferedWhilePaused}, for the layers above to enforce their limits.

    Writes go to the socket at once when Twisted has nothing queued for it
    (write-through, plain TCP and UNIX sockets only; see
    L{txratchet._twisted}); otherwise, and over TLS, through the
    transport's C{write}, which queues them for the next reactor turn.

    @ivar transport: the Twisted transport.
    @ivar peer: the peer's address.
    @ivar host: our own address.
    @ivar secure: is the transport TLS?
    @ivar writePaused: is the transport's write buffer over its limit?
    @ivar bufferedWhilePaused: bytes written since it went over.
    @ivar closed: did we start closing, or is the connection gone?
    @ivar counts: where the bytes written are counted (C{bytesOut}): the
        family counters of the layer above, once open (L{countSent}).
    """

    protocol = "tcp"
    #: See L{LowerConnection.httpVersion}.
    httpVersion = "HTTP/1.1"
    #: See L{LowerConnection.request}: over a transport, requests come as bytes.
    request: Any = None
    __slots__ = (
        "_abilities",
        "_corked",
        "_socket",
        "_throughNext",
        "bufferedWhilePaused",
        "closed",
        "counts",
        "host",
        "peer",
        "secure",
        "transport",
        "writePaused",
    )

    transport: Any
    host: Any
    secure: bool
    writePaused: bool
    bufferedWhilePaused: int
    closed: bool

    def __init__(self, app: IApplication, transport: ITransport) -> None:
        super().__init__(app)
        self.transport = transport
        self.peer = transport.getPeer()
        self.host = transport.getHost()
        self.secure = ISSLTransport.providedBy(transport)
        self.closed = False
        self.writePaused = False
        self.bufferedWhilePaused = 0
        self._corked: list[bytes] | None = None
        self.counts = NOT_OPEN
        self._abilities = _abilities(transport, self.secure)
        # Write-through (see _writeThrough) on plain sockets only: TLS and
        # other transports keep Twisted's own path. It starts after the
        # first answer: a one-off answer such as a handshake's is cheaper
        # queued.
        self._socket: socket.socket | None = None
        self._throughNext = not self.secure
        if self._abilities & _CONSUMER:
            cast(IConsumer, transport).registerProducer(self, True)

    def send(self, message: str | bytes) -> None:
        """
        Write C{message} (C{str} is encoded as UTF-8): held while corked
        or while another connection's read is handled (see L{holdWrites}),
        else to the socket at once when nothing is queued before it.

        @raise TypeError: C{message} is not C{str} or bytes-like.
        """
        if type(message) is not bytes:
            if type(message) is not str:
                message = checkMessage(message)
            if isinstance(message, str):
                message = message.encode("utf-8")
        if self.closed:
            return
        if self.writePaused:
            self.bufferedWhilePaused += len(message)
        corked = self._corked
        if corked is not None:
            corked.append(message)
            return
        if _holding:
            # A peer other than the one being read (a broadcast's): held
            # to the end of the read, so the deliveries of all its
            # messages to this peer leave in one send.
            self._corked = [message]
            _held.append(self)
            return
        # Counted here and where held writes leave: once per read, not per
        # message, on the hot paths.
        self.counts.bytesOut += len(message)
        sock = self._socket
        if sock is not None:
            if writable(self.transport):
                # Outside any read (a timer, a backplane): at once, not on
                # the next reactor turn.
                try:
                    sent = sock.send(message)
                except OSError:
                    sent = 0  # full, or failed: Twisted's write reports it
                if sent < len(message):
                    self.transport.write(message[sent:])
                return
        elif self._throughNext:
            # The first answer goes Twisted's way; the next ones through.
            self._throughNext = False
            self._socket = throughSocket(self.transport)
        self.transport.write(message)

    def respond(
        self, status: int, headers: Sequence[tuple[str, str]], body: bytes = b""
    ) -> None:
        """
        An HTTP/1.1 response head with C{status} and C{headers}, then
        C{body} (L{LowerConnection.respond}; WebSocket layers send their
        HTTP/1.1 answers as bytes).
        """
        from txratchet.websocket.handshake import responseHead

        self.send(responseHead(status, headers) + body)

    def cork(self) -> None:
        """
        Hold what is sent until L{uncork}: the answers to the messages of one
        read go to the transport in one write (pipelined peers send many
        messages per read, and each transport write has a cost).
        """
        if self._corked is None:
            self._corked = []

    def uncork(self) -> None:
        """
        Write what was held since L{cork}, in order, at once.
        """
        corked = self._corked
        self._corked = None
        if corked:
            self._writeThrough(corked)

    def startRead(self) -> bool:
        """
        A read from this peer starts being handled: L{cork} this connection
        and L{holdWrites} (one call per read, on the hot path).

        @return: the value for L{endRead}.
        """
        global _holding
        if self._corked is None:
            self._corked = []
        if _holding:
            return False
        _holding = True
        return True

    def endRead(self, outermost: bool) -> None:
        """
        The read is handled: L{uncork}, then L{releaseWrites} if
        C{outermost}.
        """
        global _holding, _held
        corked = self._corked
        self._corked = None
        if corked:
            self._writeThrough(corked)
        if outermost:
            _holding = False
            if _held:
                held, _held = _held, []
                for conn in held:
                    corked = conn._corked
                    conn._corked = None
                    if corked:
                        conn._writeThrough(corked)

    def _flushQueued(self) -> None:
        # Closing: what is held goes out with the FIN in Twisted's next
        # write, one send instead of two.
        corked = self._corked
        self._corked = None
        if corked:
            self.counts.bytesOut += sum(map(len, corked))
            self.transport.writeSequence(corked)

    def _writeThrough(self, parts: list[bytes]) -> None:
        """
        Hand C{parts} to the kernel now when nothing is queued before them,
        and give Twisted only what the socket would not take.

        Twisted's C{write} always queues and waits for the next reactor
        turn, which costs two C{epoll_ctl} calls and a loop iteration per
        answer; asyncio writes at once the same way. Large pieces go out
        in one gathering C{sendmsg}, without joining them first. A refused
        or failed send falls back to the transport, which reports the
        error itself.
        """
        t = self.transport
        sock = self._socket
        gather = False
        if len(parts) == 1:
            data = parts[0]
        elif len(parts) <= 64 and sum(map(len, parts)) >= 16384:
            data = b""
            gather = True
        else:
            data = b"".join(parts)
        self.counts.bytesOut += sum(map(len, parts)) if gather else len(data)
        if sock is None and self._throughNext:
            self._throughNext = False
            self._socket = throughSocket(t)  # TLS may have started since
        if sock is None or not writable(t):
            if gather:
                t.writeSequence(parts)
            else:
                t.write(data)
            return
        try:
            sent = sock.sendmsg(parts) if gather else sock.send(data)
        except OSError:
            sent = 0
        if not gather:
            if sent < len(data):
                t.write(data[sent:])
            return
        for index, part in enumerate(parts):
            if sent < len(part):
                rest = parts[index:]
                if sent:
                    rest[0] = part[sent:]
                t.writeSequence(rest)
                return
            sent -= len(part)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """
        Lose the connection after what was written is flushed.
        """
        if self.closed:
            return
        self._flushQueued()
        self.closed = True
        # A paused streaming producer would keep a disconnecting transport
        # from ever finishing: let go of it first.
        self._unregister()
        self.transport.loseConnection()

    def closeWrite(self) -> None:
        """
        Shut our sending side once what was written is flushed (TCP FIN),
        but keep reading, so the peer's unread bytes do not make the
        kernel answer with a reset that could destroy our last message.
        The peer closing its side ends the connection. Over TLS, or a
        transport without half-close, this is L{close}.
        """
        if self.closed:
            return
        if not self._abilities & _HALF_CLOSE:
            self.close()
            return
        self._flushQueued()
        self.closed = True
        self._unregister()
        self.transport.loseWriteConnection()
        if self._abilities & _PRODUCER:
            self.transport.resumeProducing()  # drain the peer even if back-pressure had paused us

    def _unregister(self) -> None:
        if self._abilities & _CONSUMER:
            self.transport.unregisterProducer()

    # IPushProducer, driven by the transport's write buffer.

    def pauseProducing(self) -> None:
        self.writePaused = True
        if self._abilities & _PRODUCER:
            self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.writePaused = False
        self.bufferedWhilePaused = 0
        if not self.closed and not self._readPaused and self._abilities & _PRODUCER:
            self.transport.resumeProducing()

    #: Is reading paused while the application is busy (see L{pauseReading})?
    #: In the instance __dict__ only once used.
    _readPaused = False

    def pauseReading(self) -> None:
        """
        Stop reading from the peer until L{resumeReading}: an C{async def}
        handler of the application is still busy with an earlier message.
        """
        self._readPaused = True
        if self._abilities & _PRODUCER:
            self.transport.pauseProducing()

    def resumeReading(self) -> None:
        """
        Read again after L{pauseReading}, unless flow control still holds
        reading paused (C{writePaused}).
        """
        self._readPaused = False
        if not self.closed and not self.writePaused and self._abilities & _PRODUCER:
            self.transport.resumeProducing()

    def _pauseReading(self) -> None:
        self.pauseReading()

    def _resumeReading(self) -> None:
        self.resumeReading()

    def stopProducing(self) -> None:
        self.closed = True

    def abort(self) -> None:
        """
        Drop the connection now, discarding unsent bytes.
        """
        self._corked = None
        self.closed = True
        if self._abilities & _ABORT:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    def __repr__(self) -> str:
        return f"<TransportConnection peer={self.peer}>"


def countSent(lower: object, counts: FamilyStats) -> None:
    """
    Count the bytes C{lower} writes from now on in C{counts.bytesOut} (a
    layer calls it once its connection is open; a lower connection other
    than a L{TransportConnection} is not counted).
    """
    if isinstance(lower, TransportConnection):
        lower.counts = counts


class Drain:
    """
    The end of a layer's graceful shutdown: L{wait} fires once every
    connection in C{connections} (the layer's own dict, keyed by the
    connections of the layer below) is gone.

    Those still there when the deadline passes are aborted, whatever holds
    them (a peer that does not read, a flush that cannot finish); and a
    lower layer that never reports an aborted connection lost cannot hold
    the shutdown up either: a second later L{wait} fires anyway.
    """

    #: Seconds allowed, after aborting, for the aborts to be reported.
    grace = 1.0

    def __init__(self, connections: Mapping[LowerConnection, object], clock: IReactorTime) -> None:
        self._connections = connections
        self._clock = clock
        self._waiting: list[Deferred[None]] = []
        self._deadline: IDelayedCall | None = None

    def wait(self, timeout: float | None) -> Deferred[None]:
        """
        @param timeout: seconds before what remains is aborted; C{None}
            waits as long as it takes.
        @return: a Deferred that fires once every connection is gone.
        """
        done: Deferred[None] = Deferred()
        if not self._connections:
            done.callback(None)
            return done
        self._waiting.append(done)
        if timeout is not None and self._deadline is None:
            self._deadline = self._clock.callLater(timeout, self._abortRemaining)
        return done

    def check(self) -> None:
        """
        A connection is gone: fire the waiters if it was the last one.
        """
        if self._waiting and not self._connections:
            self._fire()

    def _fire(self) -> None:
        deadline, self._deadline = self._deadline, None
        if deadline is not None and deadline.active():
            deadline.cancel()
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def _abortRemaining(self) -> None:
        self._deadline = None
        log.info(
            "Shutdown: aborting {count} connection(s) still open", count=len(self._connections)
        )
        for conn in list(self._connections):
            conn.abort()
        if self._connections:
            self._deadline = self._clock.callLater(self.grace, self._giveUp)
        else:
            self._fire()

    def _giveUp(self) -> None:
        self._deadline = None
        if self._connections:
            log.warn(
                "Shutdown: {count} aborted connection(s) never reported lost; not waiting",
                count=len(self._connections),
            )
        self._fire()


if TYPE_CHECKING:  # mypy checks that the contract is met, member by member
    _lower: type[LowerConnection] = TransportConnection
