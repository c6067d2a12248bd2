"""
Hostile clients against the echo example run under C{twistd} as a real
subprocess: slowloris, oversized and garbage handshakes, absurd frame
lengths, floods of pings, of tiny fragments and of big messages from peers
that never read, silent and vanished peers, thousands of idle connections.

Each test starts its own server, reads its memory from C{/proc/PID/status}
(VmRSS now, VmHWM for the peak since the attack began), and checks that the
server stays alive, answers the attacker as it should, keeps its memory
bounded, and still echoes for a normal client afterwards. Every loop is
bounded in count and time; only 127.0.0.1 is used.

The measured numbers are printed as C{[hostile] ...} lines (see them with
C{pytest -s}; trial shows them in its output).
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import sys
import time

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests import rawclients
from tests.hostile_clients import (
    HOST,
    TWISTD,
    EchoServer,
    MiB,
    TunedHybiClient,
    closeQuietly,
    echoRoundTrip,
    floodUntilStalled,
    maskedHeader,
    raiseFdLimit,
    readUntilClosed,
    sendAndCollect,
    serverQueues,
    serverRecvQueue,
    vanish,
    waitAllClosed,
)
from tests.rawclients import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT

KiB = 1024


def report(line: str) -> None:
    print(f"[hostile] {line}", flush=True)


class HostileTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        if not os.path.exists("/proc/self/status") or not os.path.exists("/proc/net/tcp"):
            raise SkipTest("needs Linux /proc to read the server's memory and sockets")
        if not os.path.exists(TWISTD):
            raise SkipTest(f"no twistd next to {sys.executable}")

    def startServer(self, *args: str, portOptions: str = "") -> EchoServer:
        server = EchoServer(*args, portOptions=portOptions)
        self.addCleanup(server.stop)
        server.waitListening()
        # Warm up: lazy imports and first allocations are not the attack's.
        echoRoundTrip(server.port)
        return server

    def baseline(self, server: EchoServer) -> int:
        """Settled RSS before the attack (KiB); the peak mark starts here."""
        rss = server.settledRss(0.2)
        if not server.resetPeak():  # pragma: no cover - Linux < 4.0
            raise SkipTest("cannot reset the peak RSS mark (/proc/PID/clear_refs)")
        return rss

    def assertSurvived(self, server: EchoServer, name: str, base: int, boundMiB: float,
                       during: int | None = None, extra: str = "") -> None:
        """
        The server is alive, its peak RSS since L{baseline} stayed under
        C{base + boundMiB}, and a normal client gets its echo.
        """
        self.assertTrue(server.alive(), f"{name}: the server died:\n{server.logTail()}")
        # VmHWM is synced lazily; a sample taken during the attack counts too.
        peak = max(server.peak(), during or 0)
        echoed = echoRoundTrip(server.port)
        after = server.settledRss(0.3)
        report(
            f"{name}: baseline {base / 1024:.1f} MiB"
            + (f", during +{(during - base) / 1024:.1f} MiB" if during is not None else "")
            + f", peak +{(peak - base) / 1024:.1f} MiB, after +{(after - base) / 1024:.1f} MiB"
            + f" (bound +{boundMiB} MiB){extra}"
        )
        self.assertEqual(echoed, ("still serving", b"\x00\xffok"))
        self.assertLess(
            peak - base, boundMiB * 1024,
            f"{name}: peak RSS grew {(peak - base) / 1024:.1f} MiB over the "
            f"{base / 1024:.1f} MiB baseline (bound {boundMiB} MiB)",
        )
        self.assertTrue(server.alive(), f"{name}: the server died:\n{server.logTail()}")


def httpStatus(response: bytes) -> int | None:
    return rawclients.parse_response_head(response.split(b"\r\n\r\n", 1)[0])[0]


class HandshakeAttackTests(HostileTestCase):
    def test_slowloris(self):
        """
        200 connections trickle a request head one byte per 100 ms and never
        finish it: each gets 408 and is closed after the 1 s handshake
        timeout (counted from the connection, not reset by each byte).

        The listen backlog is raised to 256 (C{backlog=} in the endpoint):
        with Twisted's default of 50, a burst of 200 connects overflows the
        accept queue and a few SYNs are retransmitted 1 s later, which
        would blur the timing being checked.
        """
        server = self.startServer("--handshake-timeout", "1", portOptions=":backlog=256")
        base = self.baseline(server)
        count = 200
        head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nX-Slow: " + b"a" * 200
        socks: list[socket.socket] = []
        self.addCleanup(lambda: closeQuietly(*socks))
        opened: dict[socket.socket, float] = {}
        for _ in range(count):
            s = socket.create_connection((HOST, server.port), timeout=5)
            opened[s] = time.monotonic()
            socks.append(s)
        sel = selectors.DefaultSelector()
        self.addCleanup(sel.close)
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        received = {s: bytearray() for s in socks}
        closedAt: dict[socket.socket, float] = {}
        sentBytes: dict[socket.socket, int] = {}
        index = 0
        nextByte = time.monotonic()
        during = 0
        deadline = time.monotonic() + 8
        while len(closedAt) < count and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= nextByte and index < len(head):
                for s in socks:
                    if s not in closedAt and not received[s]:
                        try:
                            s.send(head[index : index + 1])
                        except OSError:
                            pass
                        sentBytes[s] = index + 1
                index += 1
                nextByte += 0.1
                during = max(during, server.rss())
            for key, _ in sel.select(max(0.0, min(0.1, nextByte - time.monotonic()))):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except (ConnectionResetError, ConnectionAbortedError):
                    data = b""
                if data:
                    received[s] += data
                else:
                    closedAt[s] = time.monotonic()
                    sel.unregister(s)
        self.assertEqual(len(closedAt), count, "not every slow connection was closed")
        statuses = {httpStatus(bytes(received[s])) for s in socks}
        self.assertEqual(statuses, {408})
        waited = [closedAt[s] - opened[s] for s in socks]
        trickled = [sentBytes.get(s, 0) for s in socks]
        self.assertGreaterEqual(min(waited), 0.95)
        self.assertLess(max(waited), 2.5)
        # They were still trickling (nowhere near the end of the head).
        self.assertLess(max(trickled), 40)
        self.assertSurvived(
            server, "slowloris x200", base, 8, during,
            f"; closed after {min(waited):.2f}-{max(waited):.2f} s, "
            f"{min(trickled)}-{max(trickled)} bytes trickled each",
        )

    def test_oversizedHandshake(self):
        """
        1 MB of request headers, on ten connections in a row: each gets 431
        and is closed as soon as 16 KiB are exceeded; the server's memory
        does not grow by anything like the 10 MB sent.
        """
        server = self.startServer()
        base = self.baseline(server)
        attack = (
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            + (b"X-Pad: " + b"a" * 1017 + b"\r\n") * 1024
            + b"\r\n"
        )
        self.assertGreater(len(attack), MiB)
        results = []
        for _ in range(10):
            with socket.create_connection((HOST, server.port), timeout=5) as s:
                results.append(sendAndCollect(s, attack, timeout=5))
        for _sent, response, closed in results:
            self.assertEqual(httpStatus(response), 431, response[:200])
            self.assertIn(b"Request head larger than", response)
            self.assertTrue(closed)
        sentTotal = sum(r[0] for r in results)
        self.assertSurvived(
            server, "1 MB handshake x10", base, 1,
            extra=f"; {sentTotal / MiB:.1f} of {10 * len(attack) / MiB:.1f} MiB accepted "
            "by the kernel before the server closed",
        )

    def test_thousandHeaderFields(self):
        """1000 short header fields (about 10 KB, under the size limit): 431."""
        server = self.startServer()
        base = self.baseline(server)
        attack = (
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            + b"".join(b"X-%d: 1\r\n" % i for i in range(1000))
            + b"\r\n"
        )
        self.assertLess(len(attack), 16384)
        with socket.create_connection((HOST, server.port), timeout=5) as s:
            _sent, response, closed = sendAndCollect(s, attack, timeout=5)
        self.assertEqual(httpStatus(response), 431, response[:200])
        self.assertIn(b"header fields", response)
        self.assertTrue(closed)
        self.assertSurvived(server, "1000 header fields", base, 2)

    def test_garbage(self):
        """Bytes that are not HTTP (but end like a head): 400 and close."""
        server = self.startServer("--handshake-timeout", "1")
        base = self.baseline(server)
        noise = bytes(b for b in bytes(range(256)) * 16 if b not in (10, 13))
        attacks = [
            noise + b"\r\n\r\n",
            b"\x00" * 100 + b"\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\xaa" * 32 + b"\r\n\r\n",
            b"HELLO WORLD\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET / HTTP/9\r\nHost: x\r\n\r\n",
            b"\r\n\r\n",
        ]
        for attack in attacks:
            with socket.create_connection((HOST, server.port), timeout=5) as s:
                started = time.monotonic()
                s.sendall(attack)
                response, closed = readUntilClosed(s, 3)
                took = time.monotonic() - started
            self.assertEqual(httpStatus(response), 400, (attack[:40], response[:200]))
            self.assertTrue(closed, attack[:40])
            self.assertLess(took, 0.5, attack[:40])
        # Binary garbage that never forms a head (a TLS ClientHello on the
        # plain port) is answered no later than the handshake timeout.
        with socket.create_connection((HOST, server.port), timeout=5) as s:
            started = time.monotonic()
            s.sendall(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(64)))
            response, closed = readUntilClosed(s, 4)
            tlsTook = time.monotonic() - started
        tlsStatus = httpStatus(response)
        self.assertIn(tlsStatus, (400, 408), response[:200])
        self.assertTrue(closed)
        self.assertLess(tlsTook, 2.5)
        self.assertSurvived(
            server, "garbage", base, 2,
            extra=f"; a TLS ClientHello got {tlsStatus} after {tlsTook:.2f} s",
        )


class FrameAttackTests(HostileTestCase):
    def test_hugeDeclaredLengths(self):
        """
        Frames declaring 2**63-1 bytes (over the limit) and 2**63 (high bit
        set), and 16 MiB + 1 (just over the default limit) right after a
        valid handshake: close 1009 / 1002 at once, then the server's FIN;
        the 4 MiB streamed after the header is read and discarded, not
        buffered (peak RSS stays flat).
        """
        server = self.startServer("--close-timeout", "1")
        base = self.baseline(server)
        cases = [
            (2**63 - 1, 1009),
            (2**63, 1002),
            (16 * MiB + 1, 1009),  # just over the default 16 MiB limit
        ]
        lines = []
        for length, code in cases:
            c = rawclients.HybiClient(HOST, server.port, timeout=5)
            c.connect()
            self.addCleanup(c._close_socket)
            started = time.monotonic()
            c.send_raw(maskedHeader(OP_BINARY, length, force64=True))
            opcode, _fin, _rsv, payload = c.recv_frame()
            took = time.monotonic() - started
            self.assertEqual(opcode, OP_CLOSE)
            self.assertEqual(struct.unpack(">H", payload[:2])[0], code, payload)
            self.assertLess(took, 0.5)
            try:
                c.send_raw(b"\x00" * (4 * MiB))
            except OSError:
                pass
            closed = c.wait_tcp_closed(4)
            self.assertTrue(closed)
            lines.append(
                f"{length:#x}: {code} after {took * 1000:.1f} ms, "
                f"FIN after {time.monotonic() - started:.2f} s"
            )
        self.assertSurvived(server, "huge frame lengths", base, 1, extra="; " + ", ".join(lines))

    def test_pingFlood(self):
        """
        Pings from clients that never read the pongs. 100k empty pings
        (600 KB, 200 KB of pongs) fit in loopback's kernel buffers, so the
        server simply answers them all; 100k pings of 125 bytes (13 MB) do
        not: the server stops reading (the client's sends stall and its
        bytes wait in the server's kernel buffer). Memory stays bounded.
        """
        server = self.startServer()
        base = self.baseline(server)
        total = 100_000
        results = []
        for payload in (b"", b"p" * 125):
            c = TunedHybiClient(HOST, server.port, rcvbuf=4096, sndbuf=4096, timeout=5)
            c.connect()
            self.addCleanup(c._close_socket)
            clientPort = c.sock.getsockname()[1]
            ping = maskedHeader(OP_PING, len(payload)) + payload
            batch = ping * 100
            sent, stalled = floodUntilStalled(c.sock, (batch for _ in range(total // 100)),
                                              timeout=20, stallAfter=1.0)
            during = server.rss()
            unread = serverRecvQueue(server.port, clientPort)
            pings = sent // len(ping)
            results.append(
                f"{len(payload)}-byte pings: {pings} of {total} sent"
                + (f" before stalling, {(unread or 0) / 1024:.0f} KiB unread by the server"
                   if stalled else "")
                + f", +{(during - base) / 1024:.1f} MiB"
            )
            if payload:
                self.assertTrue(stalled, f"all {pings} pings went through: the server kept reading")
                self.assertLess(pings, total)
                self.assertTrue(unread, "the server's receive queue is empty: it is still reading")
            c._close_socket()  # unread pongs: the server gets a reset
            deadline = time.monotonic() + 5
            while server.establishedFrom(clientPort) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertFalse(server.establishedFrom(clientPort))
        self.assertSurvived(server, "ping floods", base, 8, extra="; " + "; ".join(results))

    def test_tinyFragmentFlood(self):
        """
        One binary message in 1,000,000 one-byte fragments (7 MB on the
        wire, 1 MB of message): echoed whole, with memory bounded by the
        message, not by the number of fragments.
        """
        server = self.startServer()
        base = self.baseline(server)
        count = 1_000_000
        first = maskedHeader(OP_BINARY, 1, fin=False) + b"a"
        middle = maskedHeader(OP_CONTINUATION, 1, fin=False) + b"b"
        last = maskedHeader(OP_CONTINUATION, 1, fin=True) + b"c"
        wire = first + middle * (count - 2) + last
        c = rawclients.HybiClient(HOST, server.port, timeout=30)
        c.connect()
        self.addCleanup(c._close_socket)
        started = time.monotonic()
        c.sock.sendall(wire)
        del wire
        opcode, data = c.recv_message()
        took = time.monotonic() - started
        self.assertEqual(opcode, OP_BINARY)
        self.assertEqual(len(data), count)
        self.assertEqual(data, b"a" + b"b" * (count - 2) + b"c")
        c.close()
        self.assertSurvived(
            server, "1M one-byte fragments", base, 8,
            extra=f"; echoed after {took:.1f} s",
        )

    def test_messageBomb(self):
        """
        15 MiB binary messages back to back (up to ten: 150 MiB) from a
        client that never reads the echoes: the server echoes the first,
        then stops reading; memory stays within about two messages' worth
        (the reassembled message and the copy Twisted makes of its write
        buffer). Three attacks in a row: what stays resident afterwards
        (glibc keeps, or sometimes trims, the freed heap) stays within those
        two messages instead of accumulating 15 MiB per attack.
        """
        server = self.startServer()
        base = self.baseline(server)
        size = 15 * MiB
        message = maskedHeader(OP_BINARY, size) + b"B" * size
        rounds = []
        afters = []
        during = 0
        for _ in range(3):
            c = TunedHybiClient(HOST, server.port, rcvbuf=65536, timeout=5)
            c.connect()
            self.addCleanup(c._close_socket)
            clientPort = c.sock.getsockname()[1]
            sent, stalled = floodUntilStalled(c.sock, [message] * 10, timeout=30, stallAfter=2.0)
            during = max(during, server.rss())
            unread = serverRecvQueue(server.port, clientPort)
            self.assertTrue(stalled, f"all {sent / MiB:.0f} MiB went through: the server kept reading")
            self.assertTrue(unread, "the server's receive queue is empty: it is still reading")
            c._close_socket()  # with unread echoes: the server gets a reset
            deadline = time.monotonic() + 5
            while server.establishedFrom(clientPort) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertFalse(server.establishedFrom(clientPort))
            afters.append(server.settledRss(0.2))
            rounds.append(
                f"{sent / MiB:.1f} MiB ({sent / len(message):.2f} messages) sent before stalling "
                f"with {(unread or 0) / MiB:.1f} MiB unread by the server, "
                f"+{(afters[-1] - base) / 1024:.1f} MiB after"
            )
        self.assertLess(max(afters) - base, 2 * size // KiB + 6 * 1024, rounds)
        # At the peak one 15 MiB message exists as its reassembly buffer, its
        # text, the echo's bytes and Twisted's joined write buffer: 4x.
        self.assertSurvived(server, "15 MiB message bomb x3", base, 64, during,
                            "; " + "; ".join(rounds))

    def test_hixie76Unbounded(self):
        """
        Hixie-76 frames with no size in their header: a 0x00 text frame that
        never ends (16 MiB of text under a 1 MiB limit) and a length-prefixed
        frame whose base-128 length never ends. Both are cut off with the
        closing frame once past the limit, without buffering the rest.
        """
        server = self.startServer("--max-message-size", str(MiB))
        base = self.baseline(server)
        attacks = {
            "endless text frame": b"\x00" + b"a" * (16 * MiB),
            "endless length": b"\x80" + b"\xff" * 64 + b"\x01",
        }
        for name, attack in attacks.items():
            c = rawclients.Hixie76Client(HOST, server.port, timeout=5)
            c.connect()
            self.addCleanup(c._close_socket)
            _sent, response, closed = sendAndCollect(c.sock, attack, timeout=5)
            self.assertEqual(response, b"\xff\x00", name)
            self.assertTrue(closed, name)
        self.assertSurvived(server, "hixie-76 endless frames", base, 4)


class PeerAttackTests(HostileTestCase):
    def test_silentPeerAfterServerClose(self):
        """
        20 peers break the protocol (an unmasked frame), get the server's
        1002 close frame, and never answer it: the server shuts its side
        right after the close frame (FIN) and, since they stay silent,
        aborts them when the 1 s close timeout passes (their sockets leave
        the server process).
        """
        server = self.startServer("--close-timeout", "1")
        base = self.baseline(server)
        fdsBefore = server.fdCount()
        clients = []
        for _ in range(20):
            c = rawclients.HybiClient(HOST, server.port, timeout=5)
            c.connect()
            self.addCleanup(c._close_socket)
            clients.append(c)
        self.assertGreaterEqual(server.fdCount() - fdsBefore, 20)
        for c in clients:
            c.send_frame(OP_TEXT, b"unmasked", mask=False)
        firstCloseFrame = None
        for c in clients:
            opcode, _fin, _rsv, payload = c.recv_frame()
            if firstCloseFrame is None:
                firstCloseFrame = time.monotonic()
            self.assertEqual((opcode, payload[:2]), (OP_CLOSE, struct.pack(">H", 1002)))
        # Our side sees the server's FIN (or nothing more), and says nothing.
        fins = waitAllClosed([c.sock for c in clients], timeout=0.5)
        held = server.fdCount() - fdsBefore
        deadline = time.monotonic() + 5
        while server.fdCount() > fdsBefore and time.monotonic() < deadline:
            time.sleep(0.02)
        released = time.monotonic() - firstCloseFrame
        self.assertLessEqual(server.fdCount(), fdsBefore, "silent peers still held after 5 s")
        self.assertGreaterEqual(released, 0.8)
        self.assertLess(released, 2.5)
        self.assertSurvived(
            server, "silent peers after close", base, 2,
            extra=f"; {len(fins)} of {len(clients)} saw the server's FIN at once, "
            f"{held} still held 0.5 s later, all released {released:.2f} s after the close frames",
        )

    def _vanishedPeer(self, server: EchoServer) -> int:
        c = rawclients.HybiClient(HOST, server.port, timeout=5)
        c.connect()
        c.send_text("hello")
        self.assertEqual(c.recv_text(), "hello")
        clientPort = c.sock.getsockname()[1]
        # Vanish only once the server has nothing unacknowledged in flight:
        # a retransmission would draw a reset and end the connection at once.
        deadline = time.monotonic() + 3
        while (serverQueues(server.port, clientPort) or (1, 0))[0] and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(serverQueues(server.port, clientPort), (0, 0))
        if not vanish(c.sock):
            c._close_socket()
            raise SkipTest(
                "cannot vanish without FIN on loopback: TCP_REPAIR needs CAP_NET_ADMIN"
            )
        return clientPort

    def test_halfOpenWithoutKeepalive(self):
        """
        A peer that completes the handshake and vanishes without FIN
        (TCP_REPAIR close): without keepalive the server cannot know, and
        holds the connection, but it still serves others, and on SIGTERM its
        1001 close frame draws a reset, so shutdown is not held up.
        """
        server = self.startServer("--close-timeout", "1")
        base = self.baseline(server)
        clientPort = self._vanishedPeer(server)
        time.sleep(1.5)
        # Nothing told the server: the simulation really is half-open.
        self.assertTrue(server.establishedFrom(clientPort), "the vanished peer was dropped")
        self.assertSurvived(
            server, "half-open, no keepalive", base, 2,
            extra="; vanished peer still held after 1.5 s (as expected without keepalive)",
        )
        started = time.monotonic()
        server.terminate()
        code = server.proc.wait(10)
        took = time.monotonic() - started
        report(f"half-open, no keepalive: SIGTERM exit {code} after {took * 1000:.0f} ms")
        self.assertIn(code, (0, -15))
        self.assertLess(took, 3)

    def test_halfOpenWithKeepalive(self):
        """
        With --ping-interval, the keepalive ping to a vanished peer draws a
        reset and the server lets the connection go.
        """
        server = self.startServer("--ping-interval", "0.5", "--ping-timeout", "0.5",
                                  "--close-timeout", "1")
        base = self.baseline(server)
        clientPort = self._vanishedPeer(server)
        started = time.monotonic()
        deadline = started + 5
        while server.establishedFrom(clientPort) and time.monotonic() < deadline:
            time.sleep(0.05)
        took = time.monotonic() - started
        self.assertFalse(server.establishedFrom(clientPort), "vanished peer still held")
        self.assertLess(took, 3)
        self.assertSurvived(
            server, "half-open, keepalive 0.5 s", base, 2,
            extra=f"; vanished peer dropped after {took:.2f} s",
        )

    def test_manyIdleConnections(self):
        """
        2000 idle WebSocket connections, twice: the server holds them all,
        still echoes for another client, lets them all go when they leave,
        and the second round costs no more than the first. Measures the
        server's (user-space) memory per idle connection.
        """
        count = 2000
        old, new = raiseFdLimit(2 * count + 256)  # twistd inherits the limit
        if new < count + 256:
            raise SkipTest(f"RLIMIT_NOFILE is {new}; {count} connections need more")
        server = self.startServer(portOptions=":backlog=1024")
        base = self.baseline(server)
        fdsBefore = server.fdCount()
        held = []
        notes = []
        for _ in range(2):
            clients: list[rawclients.HybiClient] = []
            self.addCleanup(lambda clients=clients: closeQuietly(*(c.sock for c in clients)))
            started = time.monotonic()
            for _ in range(count):
                c = rawclients.HybiClient(HOST, server.port, timeout=10)
                c.connect()
                clients.append(c)
            opened = time.monotonic() - started
            rss = server.settledRss(0.5)
            self.assertGreaterEqual(server.fdCount() - fdsBefore, count)
            # Everyone is still served.
            self.assertEqual(echoRoundTrip(server.port), ("still serving", b"\x00\xffok"))
            for c in clients[:: count // 10]:
                c.send_text("x")
                self.assertEqual(c.recv_text(), "x")
            closeQuietly(*(c.sock for c in clients))
            deadline = time.monotonic() + 10
            while server.fdCount() - fdsBefore > 5 and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertLessEqual(server.fdCount() - fdsBefore, 5, "connections not let go")
            after = server.settledRss(0.3)
            held.append(rss)
            notes.append(
                f"+{(rss - base) / 1024:.1f} MiB with {count} open "
                f"({(rss - base) / count:.1f} KiB each; opened in {opened:.1f} s), "
                f"+{(after - base) / 1024:.1f} MiB after they left"
            )
        perConnection = (held[0] - base) / count
        self.assertLess(perConnection, 16, f"{perConnection:.1f} KiB per idle connection")
        # The second round reuses what the first freed.
        self.assertLess(held[1] - held[0], (held[0] - base) / 2, notes)
        self.assertSurvived(
            server, f"{count} idle connections x2", base, 40, max(held),
            f"; {perConnection:.1f} KiB per idle connection; " + "; ".join(notes)
            + f"; RLIMIT_NOFILE soft {old} -> {new}",
        )


class TunedHixie76Client(rawclients.Hixie76Client):
    """A L{rawclients.Hixie76Client} with a small receive buffer set before it connects."""

    def _open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(self.timeout)
        sock.connect((self.host, self.port))
        self.sock = sock


def waitReadByServer(serverPort: int, sock: socket.socket, timeout: float = 5) -> None:
    """
    Wait (bounded) until what C{sock} sent has left it and the server has
    read it all.
    """
    clientPort = sock.getsockname()[1]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ours = serverQueues(clientPort, serverPort)  # the client's (tx, rx)
        theirs = serverQueues(serverPort, clientPort)
        if ours is not None and theirs is not None and ours[0] == 0 and theirs[1] == 0:
            return
        time.sleep(0.01)


def closeWithFullBuffer(port: int, hixie: bool = False, size: int = 4 * MiB) -> socket.socket:
    """
    A peer that never reads: it has the echo server echo C{size} bytes
    (more than the kernel buffers take, so the rest waits in the server
    and its producer is paused), then sends a close frame, all in one
    read of the server's: the server answers it and closes, but neither
    can be flushed.

    @return: the peer's socket (never read from).
    """
    c: rawclients.HybiClient | rawclients.Hixie76Client
    if hixie:
        c = TunedHixie76Client(HOST, port, timeout=5)
        head, tail = b"\x00", b"\xff" + b"\xff\x00"
    else:
        c = TunedHybiClient(HOST, port, rcvbuf=4096, timeout=5)
        head, tail = maskedHeader(OP_BINARY, size), maskedHeader(OP_CLOSE, 2) + b"\x03\xe8"
    c.connect()
    sock = c.sock
    sock.sendall(head + b"x" * (size - 64))
    # The server reads all of it (an incomplete message: no echo yet) ...
    waitReadByServer(port, sock)
    # ... then the end of the message and the close frame at once.
    sock.sendall(b"x" * 64 + tail)
    return sock


class ClosingPeerTests(HostileTestCase):
    def test_closingPeersThatDoNotRead(self):
        """
        10 RFC 6455 and 10 Hixie-76 peers fill the server's send buffers,
        send a close frame and never read (issue 12, item 7): the server's
        close answer and TCP close cannot be flushed, yet every connection
        is aborted within the 1 s close timeout (before: held for ever,
        with their 4 MiB of unsent echo each).
        """
        server = self.startServer("--close-timeout", "1")
        base = self.baseline(server)
        fdsBefore = server.fdCount()
        socks: list[socket.socket] = []
        self.addCleanup(lambda: closeQuietly(*socks))
        for i in range(20):
            socks.append(closeWithFullBuffer(server.port, hixie=i % 2 == 1))
        closedAt = time.monotonic()
        held = server.fdCount() - fdsBefore
        during = server.rss()
        deadline = closedAt + 5
        while server.fdCount() > fdsBefore and time.monotonic() < deadline:
            time.sleep(0.02)
        released = time.monotonic() - closedAt
        self.assertLessEqual(
            server.fdCount(), fdsBefore,
            f"{server.fdCount() - fdsBefore} closing peers still held 5 s after their close",
        )
        self.assertLess(released, 1 + 2.5)
        self.assertSurvived(
            server, "closing peers that do not read", base, 200, during,
            f"; {held} held right after their close frames, all released after {released:.2f} s",
        )


class IncompleteMessageTests(HostileTestCase):
    def test_incompleteMessagesBudgetAndTimeout(self):
        """
        Six silent peers each send a 4 MiB message 64 bytes short (issue 12,
        item 10; before: each pinned its 4 MiB for ever, 20 such peers
        +321 MiB at the default 16 MiB limit). Against a 10 MiB budget, the
        first two are held, the third and later are closed at once with
        1013; the two held are closed with 1008 once the 2 s message
        timeout passes, and their memory is let go.
        """
        size = 4 * MiB
        server = self.startServer(
            "--max-message-size", str(size),
            "--max-incomplete-bytes", str(10 * MiB),
            "--message-timeout", "2",
            "--close-timeout", "1",
        )
        base = self.baseline(server)
        clients = []
        for _ in range(6):
            c = rawclients.HybiClient(HOST, server.port, timeout=6)
            c.connect()
            self.addCleanup(c._close_socket)
            c.send_raw(maskedHeader(OP_BINARY, size) + b"\x00" * (size - 64))
            clients.append(c)
            waitReadByServer(server.port, c.sock)  # one after the other
        during = server.rss()
        closes = []
        for c in clients:
            opcode, _fin, _rsv, payload = c.recv_frame()
            self.assertEqual(opcode, OP_CLOSE)
            closes.append((struct.unpack(">H", payload[:2])[0], payload[2:].decode()))
        self.assertEqual(
            closes,
            [(1008, "Message not completed within 2 s")] * 2
            + [(1013, "Server busy: too much incomplete message data")] * 4,
        )
        self.assertSurvived(
            server, "incomplete 4 MiB messages x6, 10 MiB budget", base, 24, during,
            f"; closes: {closes}",
        )
