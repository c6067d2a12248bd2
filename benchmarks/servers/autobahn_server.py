"""
Autobahn|Python (Twisted) benchmark server: echo or broadcast. No
compression, or with --compression permessage-deflate accepted the usual
way (the first PerMessageDeflateOffer, PerMessageDeflateOfferAccept with
its defaults).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common

args = _common.parse_args()
_common.install_epoll_reactor()
_common.log_warnings_to_stderr()

from autobahn.twisted.websocket import (  # noqa: E402
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from autobahn.websocket.compress import (  # noqa: E402
    PerMessageDeflateOffer,
    PerMessageDeflateOfferAccept,
)
from twisted.internet import endpoints, reactor  # noqa: E402


class EchoProtocol(WebSocketServerProtocol):
    def onMessage(self, payload, isBinary):
        self.sendMessage(payload, isBinary)


class BroadcastProtocol(WebSocketServerProtocol):
    def onOpen(self):
        self.factory.clients.add(self)

    def onClose(self, wasClean, code, reason):
        self.factory.clients.discard(self)

    def onMessage(self, payload, isBinary):
        self.factory.broadcast(self, payload, isBinary)


class BroadcastFactory(WebSocketServerFactory):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.clients = set()

    def broadcast(self, sender, payload, isBinary):
        # Autobahn's recommended way: frame the message once, send it to all.
        prepared = self.prepareMessage(payload, isBinary)
        for c in self.clients:
            if c is not sender:
                c.sendPreparedMessage(prepared)


url = f"ws://127.0.0.1:{args.port}"
if args.app == "echo":
    factory = WebSocketServerFactory(url)
    factory.protocol = EchoProtocol
else:
    factory = BroadcastFactory(url)
    factory.protocol = BroadcastProtocol


def accept_deflate(offers):
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


if args.compression:
    factory.setProtocolOptions(perMessageCompressionAccept=accept_deflate)
else:
    # No permessage-deflate: Autobahn accepts no compression offer unless told to.
    factory.setProtocolOptions(perMessageCompressionAccept=lambda offers: None)
endpoint = endpoints.serverFromString(
    reactor, f"tcp:{args.port}:interface=127.0.0.1:backlog={args.backlog}"
)
endpoint.listen(factory).addCallback(lambda _: _common.ready(args.port))
reactor.run()
