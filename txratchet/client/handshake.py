"""
Transitional: the client's opening handshake moved to
L{txratchet.websocket.handshake} and its permessage-deflate offer to
L{txratchet.websocket.deflate}. This module only re-exports them for
C{txratchet/client/layer.py} until that file is rewritten over
C{txratchet.websocket.protocol}; then it is deleted.
"""

from txratchet.websocket.deflate import DEFAULT_OFFER, DeflateOffer, swapped
from txratchet.websocket.handshake import (
    DEFAULT_PORTS,
    URL,
    ClientHandshake,
    HandshakeFailed,
    InvalidResponse,
    InvalidStatus,
    InvalidURL,
    Response,
    cookieHeader,
    normalizeVersion,
    parseSetCookies,
    parseURL,
)

__all__ = [
    "DEFAULT_OFFER",
    "DEFAULT_PORTS",
    "URL",
    "ClientHandshake",
    "DeflateOffer",
    "HandshakeFailed",
    "InvalidResponse",
    "InvalidStatus",
    "InvalidURL",
    "Response",
    "cookieHeader",
    "normalizeVersion",
    "parseSetCookies",
    "parseURL",
    "swapped",
]
