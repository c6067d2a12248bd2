"""
The chat of examples/chat.py served from a script of your own instead of
twistd (what a Ratchet bin/server.php is; docs/from-ratchet.md).

Run it from the repository root::

    python examples/chatserver.py --port 8080

Ctrl-C closes every connection with 1001 Going Away before it exits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __name__ == "__main__" and __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import endpoints, reactor
from twisted.logger import globalLogBeginner, textFileLogObserver

from examples.chat import Chat
from txratchet import Server, WebSocket


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The chat, served from a script.")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--interface", default="127.0.0.1", help="address to listen on")
    args = parser.parse_args(argv)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])

    layer = WebSocket(Chat(), pingInterval=30)
    endpoint = endpoints.TCP4ServerEndpoint(reactor, args.port, interface=args.interface)
    endpoint.listen(Server(layer))
    # On Ctrl-C or SIGTERM: 1001 to every peer, wait for them (closeTimeout at most).
    reactor.addSystemEventTrigger("before", "shutdown", layer.shutdown)
    reactor.run()


if __name__ == "__main__":
    main()
