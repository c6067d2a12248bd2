"""
txratchet benchmark server: echo or broadcast. Compression off, or with
--compression txratchet's default permessage-deflate (what
C{WebSocket(app)} gives a user: C{PerMessageDeflate()}'s defaults).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common

args = _common.parse_args()
_common.install_epoll_reactor()
_common.log_warnings_to_stderr()

from twisted.internet import endpoints, reactor  # noqa: E402

from txratchet import Application, SendMessage, Server, WebSocket  # noqa: E402
from txratchet.websocket import rfc6455  # noqa: E402

# Which masking code runs (TXRATCHET_PURE_PYTHON=1 turns the compiled helper off); in the log.
_accelerated = getattr(rfc6455, "_accelerated", "unknown")
if _accelerated != "unknown":
    _accelerated = "compiled helper" if _accelerated else "pure Python"
print(f"txratchet masking: {_accelerated}", flush=True)


class Echo(Application):
    def onMessage(self, conn, msg):
        return SendMessage(conn, msg)


class Broadcast(Application):
    def __init__(self):
        self.clients = set()

    def onOpen(self, conn):
        self.clients.add(conn)

    def onClose(self, conn):
        self.clients.discard(conn)

    def onMessage(self, sender, msg):
        for c in self.clients:
            if c is not sender:
                c.send(msg)


app = Echo() if args.app == "echo" else Broadcast()
endpoint = endpoints.serverFromString(
    reactor, f"tcp:{args.port}:interface=127.0.0.1:backlog={args.backlog}"
)
# WebSocket's default compression is PerMessageDeflate(); None turns it off.
ws = WebSocket(app) if args.compression else WebSocket(app, compression=None)
endpoint.listen(Server(ws)).addCallback(
    lambda _: _common.ready(args.port)
)
reactor.run()
