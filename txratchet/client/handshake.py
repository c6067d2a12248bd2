"""
Transitional: the client's opening handshake moved to
L{txratchet.websocket.handshake} and its permessage-deflate offer to
L{txratchet.websocket.deflate}. This module only re-exports them for
C{txratchet/client/layer.py} until that file is rewritten over
C{txratchet.websocket.protocol}; then it is deleted.
"""

from txratchet.websocket.deflate import DEFAULT_OFFER as DEFAULT_OFFER
from txratchet.websocket.deflate import DeflateOffer as DeflateOffer
from txratchet.websocket.deflate import swapped as swapped
from txratchet.websocket.handshake import DEFAULT_PORTS as DEFAULT_PORTS
from txratchet.websocket.handshake import URL as URL
from txratchet.websocket.handshake import ClientHandshake as ClientHandshake
from txratchet.websocket.handshake import HandshakeFailed as HandshakeFailed
from txratchet.websocket.handshake import InvalidResponse as InvalidResponse
from txratchet.websocket.handshake import InvalidStatus as InvalidStatus
from txratchet.websocket.handshake import InvalidURL as InvalidURL
from txratchet.websocket.handshake import Response as Response
from txratchet.websocket.handshake import cookieHeader as cookieHeader
from txratchet.websocket.handshake import normalizeVersion as normalizeVersion
from txratchet.websocket.handshake import parseSetCookies as parseSetCookies
from txratchet.websocket.handshake import parseURL as parseURL
