"""
txratchet: real-time applications on Twisted, the heir of PHP's Ratchet.

Write an application with C{onOpen}, C{onMessage}, C{onClose} and
C{onError}, wrap it in the protocol layers you want and serve it::

    from twisted.internet import endpoints, reactor
    from txratchet import Server, WebSocket

    endpoints.serverFromString(reactor, "tcp:8080").listen(
        Server(WebSocket(Chat()))
    )
"""

from txratchet.application import Application
from txratchet.commands import CloseConnection, Command, Composite, SendMessage, execute
from txratchet.connection import Connection, TransportConnection
from txratchet.interfaces import IApplication, IConnection
from txratchet.line import LineProtocol
from txratchet.server import Server
from txratchet.errors import BinaryNotSupported
from txratchet.wsserver import WebSocket, WebSocketConnection

__version__ = "0.1.0"

__all__ = [
    "Application",
    "BinaryNotSupported",
    "CloseConnection",
    "Command",
    "Composite",
    "Connection",
    "IApplication",
    "IConnection",
    "LineProtocol",
    "SendMessage",
    "Server",
    "TransportConnection",
    "WebSocket",
    "WebSocketConnection",
    "execute",
]
