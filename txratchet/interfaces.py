"""
The two interfaces every layer of txratchet speaks.

An application and every decorator around it provide L{IApplication}; each
layer hands the layer inside it a connection providing L{IConnection}.
"""

from __future__ import annotations

from twisted.python.failure import Failure
from zope.interface import Attribute, Interface


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
