"""
Test an application without sockets, under trial or pytest.

L{TestServer} serves the application through the real stack,
C{Server(WebSocket(app))} with whatever decorators you stack
(L{txratchet.components.OriginCheck}, L{SessionProvider
<txratchet.components.SessionProvider>}, ...), over in-memory transports,
on a L{task.Clock} you advance. L{TestServer.connect} gives a L{TestClient}:
a WebSocket client of the family you choose (RFC 6455, HyBi-07/08,
Hixie-76; permessage-deflate on request) built on txratchet's own sans-I/O
client protocol, so the handshake, the frames and the closing handshake
are the ones a browser exchanges with the server::

    from twisted.trial.unittest import SynchronousTestCase
    from txratchet.testing import TestServer

    class ChatTests(SynchronousTestCase):
        def test_relay(self) -> None:
            server = TestServer(Chat())
            alice, bob = server.connect("/chat"), server.connect("/chat")
            alice.send("hi")
            self.assertEqual(bob.receiveNow(), "hi")

How bytes move: every call of the kit (C{send}, C{receiveNow}, C{advance},
reading C{received} or C{closed}, ...) first delivers what is pending both
ways, until nothing moves. So whatever a synchronous application does in
answer has happened when the call returns. What the application sends on
its own later (an C{async def} handler awaiting the network, a Deferred
that fires on the reactor) is delivered at the next call; or, while a
Deferred from L{TestClient.receive}, L{TestClient.whenOpen} or
L{TestClient.whenClosed} waits for it, on the reactor's next turn, which
fires that Deferred (C{await client.receive()} in an asynchronous test).

Time: the layers' timers (handshake, close, keepalive, idle and message
timeouts) run on L{TestServer.clock}; L{TestServer.advance} moves it,
delivering what each timer sends before the next one is due (as an instant
network would). The Deferreds' own timeouts are real seconds on the
reactor, for asynchronous tests only; a synchronous test never needs the
reactor.

A test client answers pings (C{autoPong}) and the server's close frame
(C{answerClose}) as a browser does; turn either off to play a dead or rude
peer.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from twisted.internet import task
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, TimeoutError, fail, succeed
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, ISSLTransport
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import alsoProvides

from txratchet.errors import HandshakeFailed, InvalidStatus
from txratchet.interfaces import IApplication
from txratchet.line import LineProtocol
from txratchet.server import Server, ServerProtocol
from txratchet.websocket import deflate
from txratchet.websocket.events import CloseReceived, Failed, Opened, Ping, Pong
from txratchet.websocket.handshake import ClientHandshake, Response
from txratchet.websocket.protocol import CLIENT, CLOSED, OPEN, State, WebSocketProtocol
from txratchet.wsserver import WebSocket, WebSocketConnection

#: Real seconds a Deferred of the kit waits before it fails (C{timeout=}).
DEFAULT_TIMEOUT = 5.0

#: Rounds of delivery one call may take before the kit gives up: an
#: application and a client that answer each other for ever.
MAX_ROUNDS = 10_000

#: Timers L{TestServer.advance} may run in one call.
MAX_TIMERS = 100_000

#: The largest message a test client accepts (the server's limits are the
#: ones under test, not the client's).
CLIENT_MAX_MESSAGE_SIZE = 1 << 30

#: The write buffer past which a transport asks its producer to pause
#: (Twisted's own C{bufferSize}); only a client that stopped reading
#: lets it fill.
TRANSPORT_BUFFER_SIZE = 65536

_T = TypeVar("_T")
Message = str | bytes
#: A client's address: a host, (host, port), or a Twisted address (the
#: address classes are named too: not every type checker reads zope
#: interfaces).
Peer = str | tuple[str, int] | IPv4Address | IPv6Address | IAddress
#: A clock: a L{task.Clock}, or a reactor.
Clock = task.Clock | IReactorTime


class _Transport(StringTransport):
    """
    The server's end of one in-memory connection: a L{StringTransport}
    that tells its peer when something moved, and can half-close.
    """

    def __init__(self, peer: _Peer, host: IAddress, address: IAddress) -> None:
        super().__init__(hostAddress=host, peerAddress=address, lenient=True)
        self._peer = peer
        #: Did the server shut its sending side (TCP FIN, still reading)?
        self.writeClosed = False
        #: Did the server abort the connection?
        self.aborted = False
        #: Is the registered producer (the server) paused by us?
        self.producerPaused = False

    def write(self, data: bytes) -> None:
        super().write(data)
        self._wrote()

    def writeSequence(self, data: Sequence[bytes]) -> None:
        super().writeSequence(data)
        self._wrote()

    def _wrote(self) -> None:
        peer = self._peer
        if (
            not peer.reading
            and self.producer is not None
            and not self.producerPaused
            and len(self.value()) > TRANSPORT_BUFFER_SIZE
        ):
            self.producerPaused = True
            self.producer.pauseProducing()
        peer._moved()

    def setTcpNoDelay(self, enabled: bool) -> None:
        """
        TCP's option, asked for by L{ServerProtocol} (a TLS transport is
        a TCP one): nothing to do in memory.
        """

    def getTcpNoDelay(self) -> bool:
        return True

    def loseConnection(self) -> None:
        super().loseConnection()
        self._peer._moved()

    def loseWriteConnection(self) -> None:
        self.writeClosed = True
        self._peer._moved()

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()
        self._peer._moved()

    def resumeProducing(self) -> None:
        super().resumeProducing()
        self._peer._moved()

    @property
    def reading(self) -> bool:
        """
        Does the server read what its peer sends (not paused)?
        """
        return self.producerState == "producing"


class _Peer:
    """
    What both kinds of test client share: one in-memory connection to the
    server, the messages received and the Deferreds waiting for them.

    @ivar reading: does the client read what the server sends? (See
        L{stopReading}.)
    @ivar bytesSent: bytes the client sent, handshake included.
    @ivar bytesReceived: bytes the client received.
    @ivar transport: the server's transport (a L{StringTransport}).
    @ivar serverProtocol: the server's Twisted protocol for this
        connection.
    """

    def __init__(self, server: TestServer, factory: Server, peer: Peer) -> None:
        self._server = server
        self._log: list[Message] = []
        self._unread: deque[Message] = deque()
        self._outgoing: list[bytes] = []
        self._messageWaiters: list[Deferred[Message]] = []
        self._closeWaiters: list[Deferred[Any]] = []
        self._drop: type[Exception] | None = None
        self._lost = False
        self.reading = True
        self.bytesSent = 0
        self.bytesReceived = 0
        address = server._address(peer)
        self.transport = _Transport(self, server.host, address)
        self.serverProtocol: ServerProtocol = factory.buildProtocol(address)

    # -- Delivery --------------------------------------------------------------

    def _moved(self) -> None:
        self._server._wake()

    def _send(self, data: bytes) -> None:
        if data and self._drop is None and not self._lost:
            self._outgoing.append(data)
            self._server._wake()

    def _step(self) -> bool:
        """
        Move what is pending on this connection once, both ways.

        @return: did anything move?
        """
        if self._lost:
            return False
        moved = False
        t = self.transport
        if t.aborted:
            t.clear()  # Twisted drops an aborted transport's unsent bytes
        elif self.reading:
            data = t.value()
            if data:
                t.clear()
                self.bytesReceived += len(data)
                self._fromServer(data)
                moved = True
            if t.producerPaused and t.producer is not None:
                t.producerPaused = False
                t.producer.resumeProducing()
                moved = True
        if (
            self._outgoing
            and t.reading
            and not t.disconnecting
            and (self._drop is None or self._drop is ConnectionDone)  # a clean close sends first
        ):
            data = b"".join(self._outgoing)
            self._outgoing.clear()
            self.bytesSent += len(data)
            self.serverProtocol.dataReceived(data)
            moved = True
        if t.aborted:
            self._connectionLost(ConnectionAborted())
        elif self._drop is not None:
            self._connectionLost(self._drop())
        elif (
            (t.disconnecting or t.writeClosed)
            and self.reading
            and not t.value()
            and (t.disconnecting or not self._outgoing)
        ):
            # The server closed (or shut its sending side) and we read it
            # all: the connection ends, as a real peer closes its end then.
            self._connectionLost(ConnectionDone())
        else:
            return moved
        return True

    def _connectionLost(self, reason: Exception) -> None:
        self._lost = True
        self._outgoing.clear()
        t = self.transport
        t.connected = False
        t.clear()
        self.serverProtocol.connectionLost(Failure(reason))
        self._clientLost()

    def _fromServer(self, data: bytes) -> None:
        raise NotImplementedError()

    def _clientLost(self) -> None:
        """
        The connection is gone: the client's side of it ends.
        """

    def _fire(self) -> None:
        """
        Fire the Deferreds whose wait is over.
        """
        while self._messageWaiters and self._unread:
            self._messageWaiters.pop(0).callback(self._unread.popleft())
        if self._lost:
            while self._messageWaiters:
                self._messageWaiters.pop(0).errback(AssertionError(self._nothing()))
            while self._closeWaiters:
                self._closeWaiters.pop(0).callback(self)

    def _waiting(self) -> bool:
        return bool(self._messageWaiters or self._closeWaiters)

    def _wait(self, waiters: list[Deferred[_T]], timeout: float | None, what: str) -> Deferred[_T]:
        def cancel(d: Deferred[_T]) -> None:
            if d in waiters:
                waiters.remove(d)

        d: Deferred[_T] = Deferred(cancel)
        waiters.append(d)
        if timeout is not None:
            d.addTimeout(timeout, self._server.reactor)

            def timedOut(failure: Failure) -> Failure:
                if failure.check(TimeoutError):
                    raise AssertionError(
                        f"{what} within {timeout:g} s (the application's timers run on "
                        f"TestServer.clock: advance it with server.advance()); {self._describe()}"
                    )
                return failure

            d.addErrback(timedOut)
        return d

    # -- Messages --------------------------------------------------------------

    def _received(self, message: Message) -> None:
        self._log.append(message)
        self._unread.append(message)

    @property
    def received(self) -> list[Message]:
        """
        Every message received so far, in order, read or not (the
        C{receive} methods read them from the first one not read yet).
        """
        self._server.flush()
        return self._log

    def receiveNow(self) -> Message:
        """
        The next message not read yet, received by now.

        @raise AssertionError: none is there (a test failure, saying what
            state the connection is in).
        """
        self._server.flush()
        if self._unread:
            return self._unread.popleft()
        raise AssertionError(self._nothing())

    def receiveText(self) -> str:
        """
        L{receiveNow}, for a text message.

        @raise AssertionError: none is there, or it is binary.
        """
        message = self.receiveNow()
        if not isinstance(message, str):
            raise AssertionError(f"Expected a text message, received binary {message[:60]!r}")
        return message

    def receiveBytes(self) -> bytes:
        """
        L{receiveNow}, for a binary message.

        @raise AssertionError: none is there, or it is text.
        """
        message = self.receiveNow()
        if not isinstance(message, bytes):
            raise AssertionError(f"Expected a binary message, received text {message[:60]!r}")
        return message

    def receiveJSON(self) -> Any:
        """
        L{receiveNow}, parsed as JSON (Any: whatever the message holds).

        @raise AssertionError: no message is there.
        @raise ValueError: it is not JSON.
        """
        return json.loads(self.receiveNow())

    def receiveAll(self) -> list[Message]:
        """
        Every message received by now and not read yet (perhaps none).
        """
        self._server.flush()
        messages = list(self._unread)
        self._unread.clear()
        return messages

    def receive(self, timeout: float | None = DEFAULT_TIMEOUT) -> Deferred[Message]:
        """
        The next message not read yet, when it arrives: for asynchronous
        tests (C{message = await client.receive()}), and for applications
        that answer later. Fires at once when one is there already.

        @param timeout: real seconds to wait (C{None}: no limit).
        @return: a Deferred that fires with the message, or fails with
            C{AssertionError} when none arrives in time or the connection
            is gone and every message was read.
        """
        self._server.flush()
        if self._unread:
            return succeed(self._unread.popleft())
        if self._lost:
            return fail(AssertionError(self._nothing()))
        return self._wait(self._messageWaiters, timeout, "No message arrived")

    # -- The end ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """
        Is the TCP connection gone (and the application's C{onClose} run)?
        """
        self._server.flush()
        return self._lost

    def whenClosed(self, timeout: float | None = DEFAULT_TIMEOUT) -> Deferred[Any]:
        """
        A Deferred that fires with this client once the connection is gone.

        @param timeout: real seconds to wait (C{None}: no limit); then it
            fails with C{AssertionError}.
        """
        self._server.flush()
        if self._lost:
            return succeed(self)
        return self._wait(self._closeWaiters, timeout, "The connection did not close")

    def disconnect(self) -> None:
        """
        Drop the TCP connection at once, without a closing handshake (a
        network failure, a closed laptop): the application's C{onClose}
        runs, with C{closeCode} 1006 on a WebSocket connection.
        """
        if not self._lost and self._drop is None:
            self._drop = ConnectionLost
            self._server._wake()
            self._server.flush()

    def stopReading(self) -> None:
        """
        Stop reading what the server sends: it queues up in the server's
        transport, which asks the server to pause past 64 KiB (as Twisted's
        transports do), so the layer's C{maxSendBuffer} and
        C{sendBufferPolicy} apply.
        """
        self.reading = False

    def startReading(self) -> None:
        """
        Read again after L{stopReading}: what queued up is delivered.
        """
        self.reading = True
        self._server._wake()
        self._server.flush()

    def _nothing(self) -> str:
        return "Nothing received: " + self._describe()

    def _describe(self) -> str:
        return "the connection is closed" if self._lost else "the connection is open"


class TestClient(_Peer):
    """
    A WebSocket client connected to a L{TestServer} (see
    L{TestServer.connect}).

    @ivar protocol: the client's sans-I/O L{WebSocketProtocol}.
    @ivar handshake: the opening handshake sent (C{handshake.request} is
        the request, headers and cookies included).
    @ivar response: the server's accepting answer, once open.
    @ivar error: why the handshake failed: an
        L{InvalidStatus <txratchet.errors.InvalidStatus>} for a refusal
        (C{.status}, C{.headers}, C{.body}), or an
        L{InvalidResponse <txratchet.errors.InvalidResponse>}.
    @ivar autoPong: answer the server's pings (a browser does).
    @ivar answerClose: answer the server's close frame (a browser does).
    @ivar serverConnection: the connection the application was handed
        (a L{WebSocketConnection}), for assertions on what it saw.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self, server: TestServer, factory: Server, handshake: ClientHandshake, peer: Peer
    ) -> None:
        super().__init__(server, factory, peer)
        self.handshake = handshake
        self.protocol = WebSocketProtocol(
            CLIENT, handshake=handshake, maxMessageSize=CLIENT_MAX_MESSAGE_SIZE
        )
        self.response: Response | None = None
        self.error: HandshakeFailed | None = None
        self._pings: list[bytes] = []
        self._pongs: list[bytes] = []
        self.autoPong = True
        self.answerClose = True
        self.serverConnection: WebSocketConnection | None = None
        self._closeFrame: tuple[int | None, str] | None = None
        self._closeCode: int | None = None
        self._closeReason = ""
        self._openWaiters: list[Deferred[TestClient]] = []

    def _start(self, layer: WebSocket | None) -> None:
        self.serverProtocol.makeConnection(self.transport)
        if layer is not None:
            for conn in layer.connectionsByLower.values():
                if conn.transport is self.transport:
                    self.serverConnection = conn
        self._send(self.protocol.connect())
        self._server.flush()

    # -- What the server sends ---------------------------------------------------

    def _fromServer(self, data: bytes) -> None:
        proto = self.protocol
        if proto.state is CLOSED or self.error is not None:
            return
        try:
            events = proto.receive(data)
        except HandshakeFailed as e:
            self.error = e
            return
        for event in events:
            cls = event.__class__
            if cls is str or cls is bytes:
                self._received(event)  # type: ignore[arg-type]
            elif isinstance(event, Opened):
                self.response = event.response
            elif isinstance(event, Ping):
                self._pings.append(event.payload)
                if self.autoPong:
                    self._send(proto.pong(event.payload))
            elif isinstance(event, Pong):
                self._pongs.append(event.payload)
            elif isinstance(event, CloseReceived):
                self._closeFrame = (event.code, event.reason)
                if self._closeCode is None:
                    self._closeCode = 1005 if event.code is None else event.code
                    self._closeReason = event.reason
                if self.answerClose:
                    answer, _ = proto.closeReceived(event)
                    self._send(answer)
            elif isinstance(event, Failed):
                # The server broke the protocol: fail the connection, as a
                # browser would (RFC 6455 7.1.7).
                if self._closeCode is None:
                    self._closeCode = event.code
                    self._closeReason = event.reason
                self._send(proto.fail(event.code, event.reason))

    def _clientLost(self) -> None:
        proto = self.protocol
        if proto.state is not CLOSED and self.response is None and self.error is None:
            self.error = self.handshake.connectionLost()
        wasOpen = proto.connectionLost()
        if wasOpen and self._closeCode is None:
            self._closeCode = 1006

    def _fire(self) -> None:
        if self._openWaiters and (self.response is not None or self.error is not None):
            for d in self._openWaiters[:]:
                self._openWaiters.remove(d)
                if self.error is not None:
                    d.errback(self.error)
                else:
                    d.callback(self)
        super()._fire()

    def _waiting(self) -> bool:
        return bool(self._openWaiters) or super()._waiting()

    def _describe(self) -> str:
        if self.error is not None:
            return f"the handshake failed: {self.error.reason}"
        if self.response is None:
            state = "the handshake is not answered yet"
            return state + (" and the connection is closed" if self._lost else "")
        if self._lost:
            return f"the connection is closed ({self._closeCode} {self._closeReason!r})"
        if self._closeFrame is not None:
            return f"the server is closing ({self._closeCode} {self._closeReason!r})"
        return "the connection is open"

    # -- The handshake -----------------------------------------------------------

    @property
    def status(self) -> int | None:
        """
        The HTTP status of the server's answer: 101 when it accepted, the
        refusal's (403, 426, ...) otherwise; C{None} while no answer came
        (or for an answer that is not HTTP).
        """
        self._server.flush()
        if self.response is not None:
            return self.response.status
        return self.error.status if self.error is not None else None

    @property
    def body(self) -> bytes:
        """
        The body of a refusal (its reason, e.g. C{b"Origin not allowed:
        ...\\n"}); C{b""} otherwise.
        """
        self._server.flush()
        return self.error.body if isinstance(self.error, InvalidStatus) else b""

    def whenOpen(self, timeout: float | None = DEFAULT_TIMEOUT) -> Deferred[TestClient]:
        """
        A Deferred that fires with this client once the server accepted
        the handshake (for stacks that decide later: an C{onRequest} that
        returns a Deferred, a session store), or fails with L{error}.

        @param timeout: real seconds to wait (C{None}: no limit); then it
            fails with C{AssertionError}.
        """
        self._server.flush()
        if self.error is not None:
            return fail(self.error)
        if self.response is not None:
            return succeed(self)
        if self._lost:
            return fail(AssertionError(self._describe()))
        return self._wait(self._openWaiters, timeout, "The handshake was not answered")

    # -- The connection ------------------------------------------------------------

    @property
    def state(self) -> State:
        """
        The client's L{State}: C{CONNECTING}, C{OPEN}, C{CLOSING} (a close
        frame went either way), C{CLOSED} (gone, or refused).
        """
        self._server.flush()
        if self._lost:
            return State.CLOSED
        return self.protocol.state

    @property
    def open(self) -> bool:
        """
        Is the connection open (accepted, and no close frame either way)?
        """
        return self.state is OPEN and self._closeFrame is None

    @property
    def family(self) -> str | None:
        """
        The protocol family spoken: C{'rfc6455'}, C{'hybi-08'},
        C{'hybi-07'} or C{'hixie-76'}.
        """
        return self.handshake.family

    @property
    def subprotocol(self) -> str | None:
        """
        The subprotocol the server chose, or C{None}.
        """
        self._server.flush()
        return self.protocol.subprotocol

    @property
    def compression(self) -> deflate.DeflateParams | None:
        """
        The permessage-deflate parameters agreed, or C{None}.
        """
        self._server.flush()
        return self.protocol.compression

    @property
    def closeCode(self) -> int | None:
        """
        How the connection ended, as a browser's C{CloseEvent.code} says
        it: the code of the server's close frame (1005 when it had none,
        as Hixie-76's never has), the code we failed it with when the
        server broke the protocol, 1006 when it ended without a close
        frame; C{None} while open.
        """
        self._server.flush()
        return self._closeCode

    @property
    def closeReason(self) -> str:
        """
        The reason that came with L{closeCode}.
        """
        self._server.flush()
        return self._closeReason

    @property
    def serverCloseFrame(self) -> tuple[int | None, str] | None:
        """
        The close frame the server sent, C{(code, reason)} (C{code} is
        C{None} when it carried none), or C{None}.
        """
        self._server.flush()
        return self._closeFrame

    @property
    def pings(self) -> list[bytes]:
        """
        The payloads of the pings the server sent (its keepalive's are
        C{b"keepalive"}).
        """
        self._server.flush()
        return self._pings

    @property
    def pongs(self) -> list[bytes]:
        """
        The payloads of the pongs the server sent (answers to L{ping}).
        """
        self._server.flush()
        return self._pongs

    @property
    def wasClean(self) -> bool:
        """
        Did the connection end after a closing handshake?
        """
        self._server.flush()
        return self._lost and self._closeFrame is not None

    # -- Sending -------------------------------------------------------------------

    def send(self, message: Message) -> None:
        """
        Send a message: C{str} as text, C{bytes} as binary (compressed
        when permessage-deflate was agreed).

        @raise AssertionError: the connection is not open.
        """
        self._server.flush()
        if self.protocol.state is not OPEN or self._lost:
            raise AssertionError(f"Cannot send: {self._describe()}")
        header, payload = self.protocol.frame(message)
        self._send(header + payload)
        self._server.flush()

    def sendJSON(self, value: Any) -> None:
        """
        L{send} C{value} as JSON text (Any: whatever C{json.dumps} takes).
        """
        self.send(json.dumps(value))

    def sendRaw(self, data: bytes) -> None:
        """
        Send bytes as they are (a malformed frame, half a handshake, ...).
        """
        self._send(data)
        self._server.flush()

    def ping(self, payload: bytes = b"") -> None:
        """
        Send a ping; the server's pong shows up in L{pongs}.
        """
        self._server.flush()
        self._send(self.protocol.ping(payload))
        self._server.flush()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """
        Start the closing handshake with C{code} and C{reason}; the server
        answers and closes the connection (the application's C{onClose}
        runs) before this returns, unless its layers are busy.
        """
        self._server.flush()
        self._send(self.protocol.close(code, reason))
        self._server.flush()

    def __repr__(self) -> str:
        return f"<TestClient {self.handshake.url} {self.family}: {self._describe()}>"


class LineTestClient(_Peer):
    """
    A line-protocol client (a telnet user) connected to a L{TestServer}
    (see L{TestServer.connectLine}): each line is one message.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self, server: TestServer, factory: Server, layer: LineProtocol, peer: Peer
    ) -> None:
        super().__init__(server, factory, peer)
        self._delimiter = layer.delimiter
        self._buffer = b""

    def _start(self) -> None:
        self.serverProtocol.makeConnection(self.transport)
        self._server.flush()

    def _fromServer(self, data: bytes) -> None:
        lines = (self._buffer + data).split(self._delimiter)
        self._buffer = lines.pop()
        for raw in lines:
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            try:
                self._received(raw.decode("utf-8"))
            except UnicodeDecodeError:
                self._received(raw)

    def send(self, line: Message) -> None:
        """
        Send one line (the delimiter is added).
        """
        data = line.encode("utf-8") if isinstance(line, str) else line
        self.sendRaw(data + self._delimiter)

    def sendRaw(self, data: bytes) -> None:
        """
        Send bytes as they are.
        """
        if self._lost:
            raise AssertionError("Cannot send: the connection is closed")
        self._send(data)
        self._server.flush()

    def close(self) -> None:
        """
        Close the connection from the client's side (the application's
        C{onClose} runs).
        """
        if not self._lost and self._drop is None:
            self._drop = ConnectionDone
            self._server._wake()
            self._server.flush()

    def __repr__(self) -> str:
        return f"<LineTestClient {self._describe()}>"


def _findLayer(app: object) -> WebSocket | LineProtocol | None:
    """
    The protocol layer in a stack of decorators (C{app}, C{app.app}, ...),
    if there is one.
    """
    node: object = app
    for _ in range(100):
        if isinstance(node, (WebSocket, LineProtocol)):
            return node
        node = getattr(node, "app", None)
        if node is None:
            return None
    return None


class TestServer:
    """
    An application served in memory: C{Server(WebSocket(app, **options))}
    on a L{task.Clock}, for L{TestClient}s to connect to.

    C{app} may also be a whole stack with its protocol layer inside, for
    decorators that go around the layer
    (C{IpBlackList(WebSocket(Chat(), clock=clock), [...])}): give the layer
    the clock (or pass it as C{clock} too), and no C{options}.

    @ivar app: the application the protocol layer serves.
    @ivar layer: the L{WebSocket} (or L{LineProtocol}) layer.
    @ivar factory: the L{Server} factory the connections are built by.
    @ivar clock: the layers' clock (see L{advance}).
    @ivar host: the server's address, as its transports report it.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: IApplication,
        *,
        clock: Clock | None = None,
        reactor: Clock | None = None,
        lineOptions: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        """
        @param app: the application (decorators around it included).
        @param clock: the clock the layers run on; a new L{task.Clock} by
            default.
        @param reactor: the reactor the kit's Deferreds wait on (the
            global one by default, imported when first needed).
        @param lineOptions: options of the L{LineProtocol} that
            L{connectLine} builds around the same application.
        @param options: L{WebSocket}'s keywords (C{pingInterval},
            C{compression}, C{families}, ...).
        """
        layer = _findLayer(app)
        if layer is None:
            self.clock: Clock = clock if clock is not None else task.Clock()
            layer = WebSocket(app, clock=self.clock, **options)
            stack: IApplication = layer
            self.app = app
        else:
            if options:
                raise TypeError(
                    f"{type(layer).__name__} is built already: give it the options "
                    f"({', '.join(sorted(options))})"
                )
            if clock is not None and layer.clock is not clock:
                raise ValueError(f"Build the {type(layer).__name__} with clock=the same clock")
            self.clock = layer.clock
            stack = app
            self.app = layer.app
        self.layer: WebSocket | LineProtocol = layer
        self.factory = Server(stack)
        self._reactor = reactor
        self._lineOptions = dict(lineOptions or {})
        self._lineFactory: tuple[Server, LineProtocol] | None = (
            (self.factory, layer) if isinstance(layer, LineProtocol) else None
        )
        self.host: IAddress = IPv4Address("TCP", "127.0.0.1", 8080)
        self._ports = itertools.count(50000)
        self._peers: list[_Peer] = []
        self._dirty = False
        self._pumping = False
        self._scheduled: IDelayedCall | None = None

    @property
    def reactor(self) -> Clock:
        """
        The reactor the kit's Deferreds wait on.
        """
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        assert self._reactor is not None
        return self._reactor

    def _address(self, peer: Peer) -> IAddress:
        if isinstance(peer, str):
            host, port = peer, next(self._ports)
        elif isinstance(peer, tuple):
            host, port = peer
        else:
            return peer
        return (IPv6Address if ":" in host else IPv4Address)("TCP", host, port)

    # -- Connecting ------------------------------------------------------------------

    def connect(
        self,
        path: str = "/",
        *,
        family: str | int = "rfc6455",
        subprotocols: Sequence[str] = (),
        headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        cookies: Mapping[str, str] | None = None,
        origin: str | None = None,
        compression: bool | deflate.DeflateOffer = False,
        peer: Peer = "127.0.0.1",
        host: str = "localhost",
        secure: bool = False,
    ) -> TestClient:
        """
        Connect a WebSocket client and send its opening handshake. A
        synchronous stack has answered when this returns: check
        C{client.open}, or C{client.status} and C{client.body} for a
        refusal; one that decides later (a session store, an C{onRequest}
        returning a Deferred) answers by L{TestClient.whenOpen}.

        @param path: the request target (C{"/chat?room=1"}), or a whole
            C{ws://} or C{wss://} URL.
        @param family: C{"rfc6455"} (or 13), C{"hybi-08"} (8),
            C{"hybi-07"} (7) or C{"hixie-76"}.
        @param subprotocols: the subprotocols offered, preferred first.
        @param headers: more request headers.
        @param cookies: cookies to send, C{{name: value}}.
        @param origin: the C{Origin} (C{Sec-WebSocket-Origin} for HyBi) to
            send, as a browser page at that origin does; none by default
            (Hixie-76 always sends one: the URL's own by default).
        @param compression: offer permessage-deflate (C{True}: with the
            defaults; or a L{deflate.DeflateOffer}).
        @param peer: the client's address (C{conn.peer}): a host (a port is
            chosen), C{(host, port)} or a Twisted address.
        @param host: the host (and port) of the URL and C{Host} header.
        @param secure: the connection is TLS (C{wss://}).
        """
        if isinstance(self.layer, LineProtocol):
            raise TypeError("This server speaks the line protocol: use connectLine()")
        if path.startswith(("ws://", "wss://")):
            url = path
        elif path.startswith("/"):
            url = f"{'wss' if secure else 'ws'}://{host}{path}"
        else:
            raise ValueError(f"{path!r}: give a path starting with / or a ws:// URL")
        offer: deflate.DeflateOffer | None = None
        if compression is True:
            offer = deflate.DEFAULT_OFFER
        elif isinstance(compression, deflate.DeflateOffer):
            offer = compression
        handshake = ClientHandshake(
            url,
            version=family,
            subprotocols=subprotocols,
            headers=headers,
            cookies=cookies,
            origin=origin,
            compression=offer,
        )
        client = TestClient(self, self.factory, handshake, peer)
        if handshake.url.secure:
            alsoProvides(client.transport, ISSLTransport)
        self._peers.append(client)
        client._start(self.layer)
        return client

    def connectLine(self, peer: Peer = "127.0.0.1") -> LineTestClient:
        """
        Connect a line-protocol client: to this server's L{LineProtocol},
        or to one built on first use around the same application (with
        C{lineOptions}), as C{--line-port} serves it next to the
        WebSockets.
        """
        if self._lineFactory is None:
            line = LineProtocol(self.app, clock=self.clock, **self._lineOptions)
            self._lineFactory = (Server(line), line)
        factory, layer = self._lineFactory
        client = LineTestClient(self, factory, layer, peer)
        self._peers.append(client)
        client._start()
        return client

    # -- Moving bytes and time ---------------------------------------------------------

    def _wake(self) -> None:
        """
        Something is pending: deliver it now if a Deferred waits for it
        (on the reactor's next turn), else at the next call of the kit.
        """
        self._dirty = True
        if self._pumping or self._scheduled is not None:
            return
        if any(peer._waiting() for peer in self._peers):
            self._scheduled = self.reactor.callLater(0, self._scheduledFlush)

    def _scheduledFlush(self) -> None:
        self._scheduled = None
        self.flush()

    def flush(self) -> None:
        """
        Deliver what is pending both ways, until nothing moves; then fire
        the Deferreds whose wait is over. Every call of the kit does this
        first; call it after the application sent something on its own
        (a Deferred you fired).

        @raise RuntimeError: bytes still move after L{MAX_ROUNDS} rounds.
        """
        if self._pumping or not self._dirty:
            return
        self._pumping = True
        try:
            for _ in range(MAX_ROUNDS):
                self._dirty = False
                moved = False
                for peer in self._peers:
                    if peer._step():
                        moved = True
                if not moved:
                    break
            else:
                raise RuntimeError(
                    f"Still delivering after {MAX_ROUNDS} rounds: do the application and a "
                    "client answer each other for ever?"
                )
        finally:
            self._pumping = False
        for peer in self._peers[:]:
            peer._fire()  # may run a test's code, which may flush again
            if peer._lost and not peer._waiting() and peer in self._peers:
                self._peers.remove(peer)
        scheduled = self._scheduled
        if scheduled is not None and not any(peer._waiting() for peer in self._peers):
            self._scheduled = None
            if scheduled.active():
                scheduled.cancel()

    def advance(self, seconds: float) -> None:
        """
        Move L{clock} on by C{seconds}, timer by timer: what each timer
        sends (a keepalive ping, a close frame) is delivered, and answered,
        before the next one is due.

        @raise TypeError: the layers do not run on a L{task.Clock}.
        @raise RuntimeError: more than L{MAX_TIMERS} timers are due.
        """
        clock = self.clock
        if not isinstance(clock, task.Clock):
            raise TypeError("The layers run on a real clock: give them a task.Clock to advance")
        self.flush()
        target = clock.seconds() + seconds
        for _ in range(MAX_TIMERS):
            due = [c.getTime() for c in clock.getDelayedCalls() if c.active()]
            nextDue = min((when for when in due if when <= target), default=None)
            if nextDue is None:
                break
            _advanceTo(clock, nextDue)
            self.flush()
        else:
            raise RuntimeError(f"More than {MAX_TIMERS} timers ran in {seconds} s")
        _advanceTo(clock, target)
        self.flush()

    def shutdown(self, code: int = 1001, reason: str = "Server shutting down") -> Deferred[None]:
        """
        Shut the layer down gracefully (as twistd does on SIGTERM): every
        client is sent C{code} and answers; the Deferred fires once every
        connection is gone (those that do not answer are aborted after
        the layer's C{closeTimeout}: L{advance} past it).
        """
        layer = self.layer
        d = layer.shutdown(code, reason) if isinstance(layer, WebSocket) else layer.shutdown(reason)
        self._dirty = True
        self.flush()
        return d

    @property
    def connections(self) -> list[Any]:
        """
        The connections the protocol layer holds open right now (Any: the
        layer's connection class).
        """
        layer = self.layer
        if isinstance(layer, WebSocket):
            return layer.connections
        return list(layer._connections.values())


def _advanceTo(clock: task.Clock, when: float) -> None:
    """
    Advance C{clock} to exactly C{when} (not short of it by a rounding
    error), running what is due.
    """
    now = clock.seconds()
    if when > now:
        clock.advance(when - now)
        if clock.seconds() < when:
            clock.rightNow = when
            clock.advance(0)
    else:
        clock.advance(0)


__all__ = [
    "DEFAULT_TIMEOUT",
    "LineTestClient",
    "TestClient",
    "TestServer",
]
