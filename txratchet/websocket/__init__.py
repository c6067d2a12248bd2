"""
The WebSocket protocol, sans I/O: no module under this package imports
Twisted (a test checks it), so it runs over anything that moves bytes.

L{protocol.WebSocketProtocol} is one connection, either side; the codecs
L{rfc6455} (with HyBi-07/08) and L{hixie76} frame messages; L{handshake}
holds the opening handshakes of both sides over the HTTP/1.1 heads of
L{http11}; L{deflate} is permessage-deflate (RFC 7692) for both sides.

The Twisted glue lives outside: L{txratchet.WebSocket} serves,
L{txratchet.client.WebSocketClient} connects.
"""

from txratchet.errors import BinaryNotSupported
from txratchet.websocket.handshake import HIXIE76, HYBI07, HYBI08, RFC6455
from txratchet.websocket.protocol import Side, State, WebSocketProtocol

__all__ = [
    "HIXIE76",
    "HYBI07",
    "HYBI08",
    "RFC6455",
    "BinaryNotSupported",
    "Side",
    "State",
    "WebSocketProtocol",
]
