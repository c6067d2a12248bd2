"""
WebSockets for txratchet: every protocol family on one port.

The sans-I/O core lives in L{handshake}, L{rfc6455} and L{hixie76}; the
Twisted glue, L{WebSocket} and L{WebSocketConnection}, in L{layer}.
"""

from txratchet.websocket.handshake import HIXIE76, HYBI07, HYBI08, RFC6455
from txratchet.websocket.hixie76 import BinaryNotSupported
from txratchet.websocket.layer import WebSocket, WebSocketConnection

__all__ = [
    "HIXIE76",
    "HYBI07",
    "HYBI08",
    "RFC6455",
    "BinaryNotSupported",
    "WebSocket",
    "WebSocketConnection",
]
