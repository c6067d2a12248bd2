"""
txratchet: real-time applications on Twisted, the heir of PHP's Ratchet.

Write an application with C{onOpen}, C{onMessage}, C{onClose} and
C{onError}, wrap it in the protocol layers you want and serve it::

    from twisted.internet import endpoints, reactor
    from txratchet import Server, WebSocket

    endpoints.serverFromString(reactor, "tcp:8080").listen(
        Server(WebSocket(Chat()))
    )

C{__all__} is what applications import; the rest lives in its own
module: decorators in L{txratchet.components}, publish/subscribe in
L{txratchet.pubsub}, clients in L{txratchet.client}, twisted.web
integration in L{txratchet.web}, and every exception, under
L{TxratchetError}, in L{txratchet.errors}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from txratchet._version import __version__ as __version__  # setup.py reads the same file
from txratchet.application import Application
from txratchet.commands import CloseConnection, Command, Composite, SendMessage
from txratchet.errors import BinaryNotSupported, HandshakeError, TxratchetError
from txratchet.interfaces import IApplication, IConnection
from txratchet.line import LineProtocol
from txratchet.server import Server
from txratchet.websocket.deflate import PerMessageDeflate
from txratchet.wsserver import WebSocket, WebSocketConnection

__all__ = [
    "Application",
    "BinaryNotSupported",
    "CloseConnection",
    "Command",
    "Composite",
    "HandshakeError",
    "IApplication",
    "IConnection",
    "LineProtocol",
    "PerMessageDeflate",
    "SendMessage",
    "Server",
    "TxratchetError",
    "WebSocket",
    "WebSocketConnection",
]

if not TYPE_CHECKING:  # for type checkers, the old names are simply gone

    def __getattr__(name: str) -> object:
        # Module attribute lookup (PEP 562): only names not defined above
        # get here, so this costs the public ones nothing.
        import warnings

        if name == "execute":
            from txratchet import commands as module
        elif name in ("Connection", "TransportConnection"):
            from txratchet import connection as module
        else:
            raise AttributeError(f"module 'txratchet' has no attribute {name!r}")
        warnings.warn(
            f"txratchet.{name} is plumbing, not public API: import it from {module.__name__}",
            DeprecationWarning,
            stacklevel=2,
        )
        return vars(module)[name]
