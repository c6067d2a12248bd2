"""Raw Twisted TCP echo: the ceiling of what Twisted itself can do here."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common

args = _common.parse_args(apps=("echo",), compression=False)
_common.install_epoll_reactor()
_common.log_warnings_to_stderr()

from twisted.internet import endpoints, reactor  # noqa: E402
from twisted.internet.protocol import Factory, Protocol  # noqa: E402


class Echo(Protocol):
    def connectionMade(self):
        self.transport.setTcpNoDelay(True)

    def dataReceived(self, data):
        self.transport.write(data)


factory = Factory.forProtocol(Echo)
factory.noisy = False
endpoint = endpoints.serverFromString(
    reactor, f"tcp:{args.port}:interface=127.0.0.1:backlog={args.backlog}"
)
endpoint.listen(factory).addCallback(lambda _: _common.ready(args.port))
reactor.run()
