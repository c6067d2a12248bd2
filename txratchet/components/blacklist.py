"""
L{IpBlackList}: refuse connections from blocked addresses and networks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.logger import Logger

from txratchet.components.base import RefusingDecorator
from txratchet.errors import HandshakeError
from txratchet.interfaces import IApplication, IConnection
from txratchet.proxy import Network, inNetworks, parseNetwork

if TYPE_CHECKING:
    from txratchet.websocket.handshake import Request

log = Logger()


class IpBlackList(RefusingDecorator):
    """
    Refuse peers whose address is blocked.

    Inside a WebSocket layer (C{WebSocket(IpBlackList(app, [...]))}) the
    handshake is refused with 403; around one, or around any other protocol
    (C{Server(IpBlackList(WebSocket(app), [...]))}), the TCP connection is
    closed as soon as it opens and the layers inside never hear of it.
    Behind a trusted proxy the WebSocket layer's C{conn.peer} is the
    client's address, so that is what is checked there.

    An IPv4 address and its IPv4-mapped IPv6 form are one address: blocking
    C{"::ffff:192.0.2.1"} (as a dual-stack port shows that peer) or
    C{"192.0.2.1"} refuses it whichever way the socket shows it.

    @param blocked: addresses or networks (C{"10.0.0.0/8"}).
    """

    def __init__(self, app: IApplication, blocked: Iterable[str] = ()) -> None:
        super().__init__(app)
        self._networks: list[Network] = []
        for spec in blocked:
            self.block(spec)

    def block(self, spec: str) -> None:
        """
        Block an address or a network.
        """
        self._networks.append(parseNetwork(spec))

    def unblock(self, spec: str) -> None:
        """
        Lift a block added with L{block}.
        """
        network = parseNetwork(spec)
        self._networks = [n for n in self._networks if n != network]

    def isBlocked(self, host: str) -> bool:
        """
        Is C{host} (an address) blocked?
        """
        return inNetworks(host, self._networks)

    def _blocked(self, conn: IConnection) -> bool:
        peer = conn.peer
        # A UNIX socket's peer (or none) has no IP address to block.
        return isinstance(peer, (IPv4Address, IPv6Address)) and self.isBlocked(peer.host)

    def onRequest(self, conn: IConnection, request: Request) -> object:
        if self._blocked(conn):
            raise HandshakeError(403, "Address blocked")
        return super().onRequest(conn, request)

    def onOpen(self, conn: IConnection) -> object:
        if self._blocked(conn):
            log.info("Refused blocked address {peer}", peer=conn.peer)
            self.refuse(conn, 1008, "Address blocked")
            return None
        return self.app.onOpen(conn)
