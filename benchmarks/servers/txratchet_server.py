"""txratchet benchmark server: echo or broadcast, compression off."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common

args = _common.parse_args()
_common.install_epoll_reactor()
_common.log_warnings_to_stderr()

from twisted.internet import endpoints, reactor  # noqa: E402

from txratchet import Application, SendMessage, Server, WebSocket  # noqa: E402


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
endpoint.listen(Server(WebSocket(app, compression=None))).addCallback(
    lambda _: _common.ready(args.port)
)
reactor.run()
