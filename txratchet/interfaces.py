"""
The two interfaces every layer of txratchet speaks.

An application and every decorator around it provide L{IApplication}; each
layer hands the layer inside it a connection providing L{IConnection}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from twisted.python.failure import Failure
from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from txratchet.websocket.handshake import Request


class IConnection(Interface):
    """
    One peer, as seen by the layer that received it.

    A decorating layer wraps the connection it was given: C{send} on a
    WebSocket connection frames the message and hands the bytes to the
    connection below it, down to the Twisted transport.
    """

    protocol = Attribute(
        "Which protocol the connection speaks: C{'hixie-76'}, C{'hybi-07'}, "
        "C{'hybi-08'}, C{'rfc6455'}, C{'line'} or C{'tcp'}."
    )
    peer = Attribute("The peer's L{twisted.internet.interfaces.IAddress}.")

    def send(message: str | bytes) -> None:
        """
        Send one message: C{str} as text, C{bytes} as binary.

        Messages sent after the connection started closing are dropped.
        """

    def close(code: int = 1000, reason: str = "") -> None:
        """
        Start closing the connection; what was sent before is delivered
        first.
        """


class IApplication(Interface):
    """
    A real-time application, or a layer that decorates one.

    Every handler may return a command (see L{txratchet.commands}), a
    L{twisted.internet.defer.Deferred} that fires with one, or C{None}.
    """

    def onOpen(conn: IConnection) -> object:
        """
        A peer connected (for WebSockets: after the opening handshake).
        """

    def onMessage(conn: IConnection, message: str | bytes) -> object:
        """
        A whole message arrived: C{str} for text, C{bytes} for binary.
        """

    def onClose(conn: IConnection) -> object:
        """
        The connection is gone; called once per connection that was opened.
        """

    def onError(conn: IConnection, failure: Failure) -> object:
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
