"""
In-process cost of txratchet's per-message path, without sockets or a
reactor: frames go straight into a L{Server} protocol over a fake transport.
It tells where a server's Python time goes (the load generator in run.py
measures the whole); run by hand:

    python benchmarks/micro.py                 # small text frames, 10 per read
    python benchmarks/micro.py --batch 1       # one frame per read
    python benchmarks/micro.py --size 65536    # 64 KiB frames, read in 64 KiB chunks

Three applications split the small-message cost: C{null} (read, unmask,
validate and dispatch only), C{direct} (plus C{conn.send}) and C{command}
(returning L{SendMessage}, the Ratchet style). C{TXRATCHET_PURE_PYTHON=1}
turns off the optional compiled masking helper.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.address import IPv4Address

from txratchet import Application, SendMessage, Server, WebSocket
from txratchet.websocket import rfc6455

HANDSHAKE = (
    b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Null(Application):
    def onMessage(self, conn, message):
        pass


class Direct(Application):
    def onMessage(self, conn, message):
        conn.send(message)


class Command(Application):
    def onMessage(self, conn, message):
        return SendMessage(conn, message)


class FakeTransport:
    """Counts what is written; everything else a transport does is a no-op."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data):
        self.written += len(data)

    def writeSequence(self, seq):
        self.written += sum(map(len, seq))

    def getPeer(self):
        return IPv4Address("TCP", "127.0.0.1", 50000)

    def getHost(self):
        return IPv4Address("TCP", "127.0.0.1", 8080)

    def registerProducer(self, producer, streaming):
        pass

    def unregisterProducer(self):
        pass

    def loseConnection(self):
        pass

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass


def measure(app: Application, chunks: list[bytes], messagesPerRound: int, seconds: float) -> float:
    """Best microseconds per message over rounds of about C{seconds / 5}."""
    proto = Server(WebSocket(app, compression=None)).buildProtocol(None)
    proto.makeConnection(FakeTransport())
    proto.dataReceived(HANDSHAKE)
    best = float("inf")
    for _ in range(5):
        rounds = 0
        start = time.perf_counter()
        while True:
            for chunk in chunks:
                proto.dataReceived(chunk)
            rounds += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / 5:
                break
        best = min(best, elapsed / (rounds * messagesPerRound))
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=32, help="payload bytes per message (text)")
    parser.add_argument("--batch", type=int, default=10, help="frames per read (small messages)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per application")
    opts = parser.parse_args()

    frame = rfc6455.encodeFrame(rfc6455.TEXT, b"x" * opts.size, maskKey=b"\x12\x34\x56\x78")
    if opts.size < 4096:
        chunks, perRound = [frame * opts.batch], opts.batch
    else:
        # Large frames arrive in reads of at most 64 KiB, as Twisted reads them.
        data = frame * 8
        chunks, perRound = [data[i : i + 65536] for i in range(0, len(data), 65536)], 8
    masking = "pure Python" if rfc6455._accelerated is None else "compiled helper"
    print(f"{opts.size} B text frames, {'%d per read' % opts.batch if opts.size < 4096 else '64 KiB reads'}, "
          f"masking: {masking}")
    for name, app in (("null", Null()), ("direct", Direct()), ("command", Command())):
        print(f"  {name:8s} {measure(app, chunks, perRound, opts.seconds):7.3f} µs per message")


if __name__ == "__main__":
    main()
