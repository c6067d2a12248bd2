"""
The two interfaces every layer of txratchet speaks.

An application and every decorator around it provide L{IApplication}; each
layer hands the layer inside it a connection providing L{IConnection}.

Both are C{zope.interface} interfaces at run time (C{@implementer},
C{providedBy} and C{verifyObject} work as ever) and, for type checkers,
protocols (PEP 544) that also derive from C{Interface}: mypy, with or
without the mypy-zope plugin, and pyright accept any object with the
members as an application or a connection, whether it declares
C{@implementer} or not, and see the methods with C{self}, as called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar, runtime_checkable

from twisted.python.failure import Failure
from zope.interface import Attribute, Interface
from zope.interface.interface import InterfaceClass, fromFunction

if TYPE_CHECKING:
    from txratchet.websocket.handshake import Request
    from txratchet.websocket.http11 import Headers
    from txratchet.websocket.protocol import State

_I = TypeVar("_I", bound=type)


class _Declaration(Protocol):
    """
    What C{TypedInterface} is at run time: the base of the protocol classes
    that L{typedInterface} makes zope interfaces.
    """


# The base of an interface declared for type checkers and zope alike (see
# typedInterface): zope.interface.Interface to type checkers (so that
# mypy-zope takes @implementer and providedBy), a protocol class at run time.
if TYPE_CHECKING:
    from zope.interface import Interface as TypedInterface
else:
    TypedInterface = _Declaration


def typedInterface(declaration: _I) -> _I:
    """
    Make C{declaration} a zope interface at run time, while type checkers
    keep seeing the protocol it is written as.

    Declare the interface as a protocol deriving from C{TypedInterface}
    (C{class IThing(TypedInterface, Protocol)}; C{zope.interface.Interface}
    to type checkers, a protocol at run time): methods take C{self},
    read-only attributes are properties, settable ones are annotated. Type
    checkers then match any object with those members (pyright and plain
    mypy do not know C{@implementer}), and the mypy-zope plugin still sees
    an interface. At run time this returns the zope interface the
    declaration stands for: methods without C{self} (a parameter spelt
    C{__name}, positional-only for type checkers, is C{name} again),
    properties and annotated attributes as C{Attribute}s.

    An interface declared this way cannot be extended the same way; a
    plain zope interface can extend it.
    """
    prefix = f"_{declaration.__name__}__"
    members: dict[str, Any] = {}
    for name in declaration.__annotations__:
        if not name.startswith("_"):
            members[name] = Attribute("")
    for name, value in vars(declaration).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property):
            members[name] = Attribute(value.__doc__ or "")
        elif callable(value):
            method = fromFunction(value, None, imlevel=1, name=name)
            method.positional = tuple(p.removeprefix(prefix) for p in method.positional)
            method.required = tuple(p.removeprefix(prefix) for p in method.required)
            members[name] = method
    return InterfaceClass(  # type: ignore[return-value]  # a zope interface, to the checker a protocol
        declaration.__name__,
        (Interface,),
        members,
        declaration.__doc__,
        declaration.__module__,
    )


@typedInterface
@runtime_checkable  # so that mypy-zope takes IConnection.providedBy(x)
class IConnection(TypedInterface, Protocol):  # type: ignore[misc]  # a protocol and an interface
    """
    One peer, as the application sees it: what the connection tells about
    the peer and how it ended, and how to send to it and close it.

    Connections without an opening handshake (L{txratchet.LineProtocol}'s,
    the raw TCP connection under a layer) have an empty C{path}, C{query},
    C{params}, C{headers} and C{cookies}, no C{request} and no
    C{subprotocol}.

    A decorating layer wraps the connection it was given: C{send} on a
    WebSocket connection frames the message and hands the bytes to the
    connection below it, down to the Twisted transport.
    """

    #: The session a L{txratchet.components.SessionProvider} in the stack
    #: loaded for this connection (whatever its store keeps: a C{dict} for
    #: the shared stores), or C{None}.
    session: Any

    @property
    def attributes(self) -> dict[str, Any]:  # type: ignore[misc]  # settable: see the setter
        """
        A dict for the application's own per-connection state.
        """

    @attributes.setter
    def attributes(self, value: dict[str, Any]) -> None: ...  # type: ignore[misc]

    @property
    def protocol(self) -> str:
        """
        Which protocol the connection speaks: C{'hixie-76'}, C{'hybi-07'},
        C{'hybi-08'}, C{'rfc6455'} (C{''} before the handshake chose one),
        C{'line'} or C{'tcp'}.
        """

    @property
    def peer(self) -> Any:
        """
        The peer's address (a Twisted C{IAddress}: C{peer.host},
        C{peer.port} for TCP); behind a trusted proxy, the client's.
        """

    @property
    def path(self) -> str:
        """
        The request path, e.g. C{'/chat'}.
        """

    @property
    def query(self) -> str:
        """
        The raw query string, C{''} when there is none.
        """

    @property
    def params(self) -> dict[str, list[str]]:
        """
        The query, parsed: C{{name: [values]}}.
        """

    @property
    def headers(self) -> Headers:
        """
        The request's headers, case-insensitive (C{.get(name)},
        C{.getAll(name)}).
        """

    @property
    def cookies(self) -> dict[str, str]:
        """
        The request's cookies, C{{name: value}}.
        """

    @property
    def subprotocol(self) -> str | None:
        """
        The negotiated subprotocol, or C{None}.
        """

    @property
    def request(self) -> Request | None:
        """
        The whole parsed opening handshake, or C{None}.
        """

    @property
    def state(self) -> State:
        """
        C{State.CONNECTING}, C{OPEN}, C{CLOSING} or C{CLOSED}.
        """

    @property
    def closeCode(self) -> int | None:
        """
        How it ended: the peer's close code (1005 when its close frame had
        none), the code we closed or failed it with, 1006 when it just
        dropped; C{None} while open.
        """

    @property
    def closeReason(self) -> str:
        """
        The reason that came with L{closeCode}.
        """

    @property
    def wasClean(self) -> bool:
        """
        Did the closing handshake complete normally?
        """

    def send(self, message: str | bytes) -> None:  # type: ignore[misc]  # self: see the module
        """
        Send one message: C{str} as text, C{bytes} as binary.

        Messages sent after the connection started closing are dropped.
        """

    def close(self, code: int = 1000, reason: str = "") -> None:  # type: ignore[misc]
        """
        Start closing the connection; what was sent before is delivered
        first.
        """


@typedInterface
@runtime_checkable
class IApplication(TypedInterface, Protocol):  # type: ignore[misc]  # a protocol and an interface
    """
    A real-time application, or a layer that decorates one.

    Every handler may return a command (see L{txratchet.commands}), a
    L{twisted.internet.defer.Deferred} that fires with one, or C{None};
    or be an C{async def} whose coroutine returns one of those.
    Handlers take their arguments by position: name them as you like.
    """

    def onOpen(self, __conn: IConnection) -> object:  # type: ignore[misc]
        """
        A peer connected (for WebSockets: after the opening handshake).
        """

    def onMessage(self, __conn: IConnection, __message: str | bytes) -> object:  # type: ignore[misc]
        """
        A whole message arrived: C{str} for text, C{bytes} for binary.
        """

    def onClose(self, __conn: IConnection) -> object:  # type: ignore[misc]
        """
        The connection is gone; called once per connection that was opened.
        """

    def onError(self, __conn: IConnection, __failure: Failure) -> object:  # type: ignore[misc]
        """
        A handler raised, or something the application asked for failed.
        """


@runtime_checkable
class LowerConnection(Protocol):
    """
    What a protocol layer (L{txratchet.WebSocket}, L{txratchet.LineProtocol})
    needs from the connection below it: the contract between layers.

    L{txratchet.connection.TransportConnection} provides it over a Twisted
    transport (TCP, TLS, UNIX); the twisted.web upgrade and the client
    provide it too. A layer never probes for optional members: a lower
    connection that cannot do something (half-close, say) still provides
    the method and does the nearest thing (a full close).

    Flow control: when the peer stops reading and the transport's buffer
    fills, C{writePaused} turns true and C{bufferedWhilePaused} counts the
    bytes written since, for the layer's send-buffer policy; the lower
    connection stops reading from that peer meanwhile.
    """

    #: The peer's address (a Twisted C{IAddress}), or C{None}.
    peer: Any
    #: Our own address, or C{None}.
    host: Any
    #: The Twisted transport underneath, or C{None} (for TLS details and
    #: socket options; write through L{send}).
    transport: Any
    #: Is the connection encrypted (TLS)?
    secure: bool
    #: Is the transport's write buffer over its limit?
    writePaused: bool
    #: Bytes written since C{writePaused} turned true.
    bufferedWhilePaused: int
    #: How the connection was bootstrapped: C{"HTTP/1.1"} (TCP, TLS, a
    #: twisted.web upgrade) or C{"HTTP/2"} (a stream of an HTTP/2
    #: connection, RFC 8441).
    httpVersion: str
    #: The opening request when the layer below already read it (an HTTP/2
    #: stream's extended CONNECT), to answer with L{respond}; C{None} when
    #: the request comes as bytes through C{onMessage}.
    request: Request | None

    def respond(
        self, status: int, headers: Sequence[tuple[str, str]], body: bytes = b""
    ) -> None:
        """
        Answer L{request}: the status and header fields (an HTTP/2 HEADERS
        frame), then C{body}. Where the request came as bytes, the nearest
        thing: an HTTP/1.1 response head and C{body}.
        """

    def send(self, message: bytes) -> None:
        """
        Write bytes (queued in order; nothing is lost before a close).
        """

    def cork(self) -> None:
        """
        Hold what is sent until L{uncork} (the answers to one read in one
        write).
        """

    def uncork(self) -> None:
        """
        Write what was held since L{cork}, in order.
        """

    def close(self, code: int = 1000, reason: str = "") -> None:
        """
        End the connection once what was sent is flushed.
        """

    def closeWrite(self) -> None:
        """
        Shut our sending side once flushed (TCP half-close), still reading
        until the peer closes; where there is no half-close, L{close}.
        """

    def abort(self) -> None:
        """
        Drop the connection now, discarding what is unsent.
        """

    def pauseReading(self) -> None:
        """
        Stop reading from the peer until L{resumeReading} (the application
        is still busy with an earlier message); independent of the pause
        that flow control makes while C{writePaused}.
        """

    def resumeReading(self) -> None:
        """
        Read from the peer again after L{pauseReading}.
        """



@runtime_checkable
class ClientLowerConnection(LowerConnection, Protocol):
    """
    What the client WebSocket layer needs from the connection below it,
    besides L{LowerConnection}.
    """

    #: Why the connection was lost (a failed TLS verification, say), for
    #: the handshake to report; C{None} while connected.
    lostReason: Failure | None

    def opened(self) -> None:
        """
        The WebSocket is open: from now on back-pressure stops reading
        (before, it must not: TLS still needs to read to send the request).
        """

    def sendRequest(self, headerBlock: Sequence[tuple[str, str]]) -> None:
        """
        Over an HTTP/2 stream (C{httpVersion} C{"HTTP/2"}): send the opening
        request, an extended CONNECT, as the stream's HEADERS (pseudo-header
        fields first); the response's header block comes back to the
        WebSocket connection's C{responseReceived}. Over bytes (HTTP/1.1)
        the request is sent with C{send}, and this raises C{RuntimeError}.
        """

class IRequestHandler(Interface):
    """
    Optional hooks an application (or decorator) may define, besides the
    four handlers of L{IApplication}. Layers look them up once, when the
    application is wrapped.
    """

    subprotocols = Attribute(
        "The WebSocket subprotocols the application speaks, in order of "
        "preference (a sequence of str); the layer's C{subprotocols} "
        "argument overrides it."
    )

    def onRequest(conn: IConnection, request: Request) -> object:
        """
        The WebSocket opening handshake arrived and is valid: raise
        L{txratchet.errors.HandshakeError} (or return a Deferred that fails
        with one) to refuse it with that status; return C{None} or a
        Deferred that fires to accept it. C{conn} already carries the
        request's path, headers, cookies and the chosen subprotocol.
        """


class IReconnectHandler(Interface):
    """
    The optional hook of a client application that
    L{txratchet.client.WebSocketClientService} keeps connected.
    """

    def onReconnect(conn: IConnection) -> object:
        """
        A connection other than the first opened (C{onOpen} ran for it
        too): what to redo after a reconnection. May return commands.
        """


class Hooks(NamedTuple):
    """
    An application's optional hooks (L{IRequestHandler},
    L{IReconnectHandler}) as L{hooksOf} found them: C{None} (or no
    subprotocols) for those it does not define.
    """

    onRequest: Callable[[IConnection, Request], object] | None
    subprotocols: tuple[str, ...]
    onReconnect: Callable[[IConnection], object] | None


def hooksOf(app: IApplication) -> Hooks:
    """
    Look up C{app}'s optional hooks, once, when a layer or a decorator
    wraps it.

    The one place txratchet looks members up by name: an application is
    the user's object, which defines these hooks or not (a
    L{txratchet.components.Decorator} always does, forwarding to the
    application it wraps).
    """
    return Hooks(
        getattr(app, "onRequest", None),
        tuple(getattr(app, "subprotocols", None) or ()),
        getattr(app, "onReconnect", None),
    )


def concurrentMessages(app: IApplication) -> bool:
    """
    Does C{app} let the C{async def} C{onMessage} of one connection handle
    several of its messages at once (its C{concurrentMessages} attribute,
    C{False} by default: each message waits for the previous one's
    coroutine)? Read when a coroutine has to wait, never per message.
    """
    return bool(getattr(app, "concurrentMessages", False))
