"""
The bottom of the Twisted glue, without a reactor: L{TransportConnection}
over an in-memory transport (cork/uncork, close, half-close, abort, the
producer and the send-buffer count) and write-through over a
C{tcp.Connection} built on a socket pair, driven by hand (partial sends,
Twisted holding bytes, a refused send, the switch).
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from twisted.internet import tcp
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import alsoProvides

from tests.util import EndsTransport
from txratchet import Application, Server, _twisted
from txratchet.client.connect import ClientTransportConnection
from txratchet.connection import TransportConnection, holdWrites, releaseWrites
from txratchet.interfaces import LowerConnection


class BareTransport:
    """
    Only ITransport's methods (no producer, half-close or abort): what the
    lower connection does without them.
    """

    def __init__(self) -> None:
        self.data = b""
        self.ends: list[str] = []

    def write(self, data: bytes) -> None:
        self.data += data

    def writeSequence(self, data: Any) -> None:
        self.data += b"".join(data)

    def loseConnection(self) -> None:
        self.ends.append("loseConnection")

    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 50000)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 8080)


def makeConnection(transport: Any | None = None) -> tuple[TransportConnection, Any]:
    transport = EndsTransport() if transport is None else transport
    return TransportConnection(Application(), transport), transport


class ContractTests(SynchronousTestCase):
    """
    Every lower connection provides all of L{LowerConnection}.
    """

    def test_transportConnection(self) -> None:
        conn, transport = makeConnection()
        self.assertIsInstance(conn, LowerConnection)
        self.assertIs(conn.transport, transport)
        self.assertEqual(conn.peer, transport.getPeer())
        self.assertEqual(conn.host, transport.getHost())
        self.assertFalse(conn.secure)
        self.assertFalse(conn.writePaused)
        self.assertEqual(conn.bufferedWhilePaused, 0)

    def test_clientTransportConnection(self) -> None:
        conn = ClientTransportConnection(Application(), EndsTransport())
        self.assertIsInstance(conn, LowerConnection)
        self.assertIsNone(conn.lostReason)
        conn.opened()

    def test_everyMemberWithoutOptionalTransportMethods(self) -> None:
        """
        Over a transport with nothing but ITransport, every member still
        works: half-close and abort are a close.
        """
        conn, transport = makeConnection(BareTransport())
        conn.cork()
        conn.send(b"a")
        conn.uncork()
        conn.pauseProducing()
        conn.resumeProducing()
        conn.closeWrite()
        self.assertEqual(transport.ends, ["loseConnection"])
        conn2, transport2 = makeConnection(BareTransport())
        conn2.abort()
        self.assertEqual(transport2.ends, ["loseConnection"])
        self.assertEqual(transport.data, b"a")


class CorkTests(SynchronousTestCase):
    def test_corkHoldsUntilUncork(self) -> None:
        """
        What is sent while corked leaves in one write, in order, at uncork.
        """
        conn, transport = makeConnection()
        conn.cork()
        conn.send(b"one ")
        conn.send("two ")
        conn.send(bytearray(b"three"))
        self.assertEqual(transport.writes, [])
        conn.uncork()
        self.assertEqual(transport.writes, [b"one two three"])

    def test_uncorkWithNothingHeld(self) -> None:
        conn, transport = makeConnection()
        conn.cork()
        conn.uncork()
        conn.uncork()
        self.assertEqual(transport.writes, [])

    def test_notCorkedWritesAtOnce(self) -> None:
        conn, transport = makeConnection()
        conn.send(b"a")
        conn.send(b"b")
        self.assertEqual(transport.writes, [b"a", b"b"])

    def test_badMessageType(self) -> None:
        conn, _ = makeConnection()
        self.assertRaises(TypeError, conn.send, 5)

    def test_closeFlushesHeldThenLoses(self) -> None:
        """
        close() writes what is held, lets go of the producer, then loses
        the connection; later sends are dropped.
        """
        conn, transport = makeConnection()
        self.assertIs(transport.producer, conn)
        self.assertTrue(transport.streaming)
        conn.cork()
        conn.send(b"last")
        conn.close()
        self.assertEqual(transport.writes, [b"last"])
        self.assertEqual(transport.ends, ["loseConnection"])
        self.assertIsNone(transport.producer)
        conn.send(b"dropped")
        conn.close()
        self.assertEqual(transport.writes, [b"last"])
        self.assertEqual(transport.ends, ["loseConnection"])

    def test_closeWriteHalfCloses(self) -> None:
        """
        closeWrite() flushes, shuts our side only, and resumes reading so
        the peer is drained even if back-pressure had paused it.
        """
        conn, transport = makeConnection()
        conn.pauseProducing()
        conn.cork()
        conn.send(b"bye")
        conn.closeWrite()
        self.assertEqual(transport.writes, [b"bye"])
        self.assertEqual(transport.ends, ["loseWriteConnection"])
        self.assertEqual(transport.pauses, ["pause", "resume"])
        self.assertIsNone(transport.producer)
        conn.closeWrite()
        conn.close()
        self.assertEqual(transport.ends, ["loseWriteConnection"])

    def test_closeWriteOverTLSCloses(self) -> None:
        transport = EndsTransport()
        alsoProvides(transport, ISSLTransport)
        conn, _ = makeConnection(transport)
        self.assertTrue(conn.secure)
        conn.closeWrite()
        self.assertEqual(transport.ends, ["loseConnection"])

    def test_abortDiscardsHeld(self) -> None:
        conn, transport = makeConnection()
        conn.cork()
        conn.send(b"never")
        conn.abort()
        conn.uncork()
        conn.send(b"never either")
        self.assertEqual(transport.writes, [])
        self.assertEqual(transport.ends, ["abortConnection"])


class ProducerTests(SynchronousTestCase):
    def test_pauseCountsWhatIsWritten(self) -> None:
        """
        While the transport's buffer is full, reading stops and the bytes
        written meanwhile are counted (corked ones too); resuming resets
        the count and reads again.
        """
        conn, transport = makeConnection()
        conn.send(b"before")
        conn.pauseProducing()
        self.assertTrue(conn.writePaused)
        self.assertEqual(transport.producerState, "paused")
        conn.send(b"12345")
        conn.cork()
        conn.send("678")
        conn.uncork()
        self.assertEqual(conn.bufferedWhilePaused, 8)
        conn.resumeProducing()
        self.assertFalse(conn.writePaused)
        self.assertEqual(conn.bufferedWhilePaused, 0)
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(transport.value(), b"before12345678")

    def test_resumeAfterCloseDoesNotRead(self) -> None:
        conn, transport = makeConnection()
        conn.pauseProducing()
        conn.close()
        conn.resumeProducing()
        self.assertEqual(transport.pauses, ["pause"])

    def test_stopProducingCloses(self) -> None:
        conn, transport = makeConnection()
        conn.stopProducing()
        conn.send(b"x")
        self.assertEqual(transport.writes, [])


class Broadcast(Application):
    """Sends each read's bytes, twice, to every other connection."""

    def __init__(self) -> None:
        self.conns: list[Any] = []

    def onOpen(self, conn: Any) -> None:
        self.conns.append(conn)

    def onMessage(self, conn: Any, data: Any) -> None:
        for other in self.conns:
            if other is not conn:
                other.send(data)
                other.send(data.upper())


class HoldTests(SynchronousTestCase):
    """
    While a read is handled, what is sent to other connections is held
    and leaves at its end, one write per connection.
    """

    def test_heldUntilRelease(self) -> None:
        b, bt = makeConnection()
        c, ct = makeConnection()
        self.assertTrue(holdWrites())
        b.send(b"1")
        c.send(b"2")
        b.send(b"3")
        self.assertEqual((bt.writes, ct.writes), ([], []))
        releaseWrites()
        self.assertEqual((bt.writes, ct.writes), ([b"13"], [b"2"]))
        b.send(b"4")
        self.assertEqual(bt.writes, [b"13", b"4"])

    def test_nestedReadsReleaseOnce(self) -> None:
        b, bt = makeConnection()
        self.assertTrue(holdWrites())
        self.assertFalse(holdWrites())
        b.send(b"x")
        self.assertEqual(bt.writes, [])
        releaseWrites()
        self.assertEqual(bt.writes, [b"x"])
        releaseWrites()
        self.assertEqual(bt.writes, [b"x"])

    def test_closeOrAbortWhileHeld(self) -> None:
        """
        A held connection closed during the read goes out with its held
        bytes; one aborted loses them; neither is written again.
        """
        b, bt = makeConnection()
        c, ct = makeConnection()
        holdWrites()
        b.send(b"kept")
        c.send(b"lost")
        b.close()
        c.abort()
        releaseWrites()
        self.assertEqual((bt.writes, ct.writes), ([b"kept"], []))
        self.assertEqual((bt.ends, ct.ends), (["loseConnection"], ["abortConnection"]))

    def test_broadcastFromARead(self) -> None:
        """
        Through L{Server}: one write per receiver per read, however many
        messages the read sends it; and the sender's own answer is corked.
        """
        app = Broadcast()
        transports = []
        protocols = []
        for _ in range(3):
            proto = Server(app).buildProtocol(None)
            transport = EndsTransport()
            proto.makeConnection(transport)
            protocols.append(proto)
            transports.append(transport)
        protocols[0].dataReceived(b"hi")
        self.assertEqual([t.writes for t in transports], [[], [b"hiHI"], [b"hiHI"]])
        protocols[1].dataReceived(b"yo")
        self.assertEqual(transports[0].writes, [b"yoYO"])
        self.assertEqual(transports[2].writes, [b"hiHI", b"yoYO"])

    def test_releasedAfterAnError(self) -> None:
        class Fails(Broadcast):
            def onMessage(self, conn: Any, data: Any) -> None:
                super().onMessage(conn, data)
                raise RuntimeError("handler failed")

            def onError(self, conn: Any, failure: Any) -> None:
                pass

        app = Fails()
        protos = [Server(app).buildProtocol(None) for _ in range(2)]
        transports = [EndsTransport(), EndsTransport()]
        for proto, transport in zip(protos, transports, strict=True):
            proto.makeConnection(transport)
        protos[0].dataReceived(b"a")
        self.assertEqual(transports[1].writes, [b"aA"])
        self.flushLoggedErrors(RuntimeError)
        b, bt = makeConnection()
        b.send(b"not held")
        self.assertEqual(bt.writes, [b"not held"])


# ---------------------------------------------------------------- write-through


class PartialSocket(socket.socket):
    """
    A real socket whose sends take at most C{limit} bytes (C{None}: all),
    or fail with C{error}; records each call.
    """

    limit: int | None = None
    error: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    def send(self, data: Any, flags: int = 0) -> int:
        self.calls.append("send")
        if self.error is not None:
            raise OSError(self.error, "refused")
        data = bytes(data)
        if self.limit is not None:
            data = data[: self.limit]
        return super().send(data, flags)

    def sendmsg(self, buffers: Any, *args: Any) -> int:
        self.calls.append("sendmsg")
        if self.error is not None:
            raise OSError(self.error, "refused")
        data = b"".join(buffers)
        if self.limit is not None:
            data = data[: self.limit]
        return super().send(data)


class SocketTransport(tcp.Connection):
    """
    A real C{tcp.Connection} over one end of a socket pair, on a
    MemoryReactor: Twisted's buffers and write path as they are, flushed by
    calling C{doWrite}.
    """

    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 50000)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 8080)


class WriteThroughTests(SynchronousTestCase):
    def setUp(self) -> None:
        ours, self.peer = socket.socketpair()
        self.sock = PartialSocket(ours.family, ours.type, fileno=ours.detach())
        self.addCleanup(self.sock.close)
        self.addCleanup(self.peer.close)
        self.peer.settimeout(2)
        self.reactor = MemoryReactor()
        self.transport = SocketTransport(self.sock, Protocol(), self.reactor)
        self.transport.connected = 1
        self.conn = TransportConnection(Application(), self.transport)

    def received(self, count: int) -> bytes:
        got = b""
        while len(got) < count:
            chunk = self.peer.recv(count - len(got))
            if not chunk:
                break
            got += chunk
        return got

    def queued(self) -> bool:
        """Does Twisted hold bytes for the socket?"""
        return _twisted.holding(self.transport)

    def flush(self) -> None:
        """Let Twisted write what it holds, as the reactor would."""
        for _ in range(100):
            if not self.queued():
                self.sock.calls.clear()  # Twisted's own sends
                return
            self.transport.doWrite()
        self.fail("Twisted's buffer never drained")

    def answer(self, data: bytes) -> None:
        """What one read does: cork, send, uncork."""
        self.conn.cork()
        self.conn.send(data)
        self.conn.uncork()

    def test_firstAnswerQueuedThenThrough(self) -> None:
        """
        The first answer goes through Twisted's queue; once it is flushed,
        the next ones go to the socket at once.
        """
        self.answer(b"first")
        self.assertTrue(self.queued())
        self.assertEqual(self.sock.calls, [])
        self.flush()
        self.assertEqual(self.received(5), b"first")
        self.answer(b"second")
        self.assertFalse(self.queued())
        self.assertEqual(self.sock.calls, ["send"])
        self.assertEqual(self.received(6), b"second")

    def test_sendNotCorkedWritesThrough(self) -> None:
        """
        A send to a connection that is not being read (a broadcast's
        receiver) goes to the socket at once too.
        """
        self.answer(b"hi")
        self.flush()
        self.sock.calls.clear()
        self.conn.send(b"broadcast")
        self.assertEqual(self.sock.calls, ["send"])
        self.assertFalse(self.queued())
        self.assertEqual(self.received(11), b"hibroadcast")

    def test_firstSendNotCorkedQueued(self) -> None:
        """
        The first-answer rule holds for sends outside a read as well.
        """
        self.conn.send(b"pushed")
        self.assertEqual(self.sock.calls, [])
        self.flush()
        self.conn.send(b"again")
        self.assertEqual(self.sock.calls, ["send"])
        self.assertEqual(self.received(11), b"pushedagain")

    def test_heldThenOneSend(self) -> None:
        """
        Held during another connection's read: one send at its end.
        """
        self.answer(b".")
        self.flush()
        holdWrites()
        self.conn.send(b"one;")
        self.conn.send(b"two;")
        self.assertEqual(self.sock.calls, [])
        releaseWrites()
        self.assertEqual(self.sock.calls, ["send"])
        self.assertFalse(self.queued())
        self.assertEqual(self.received(9), b".one;two;")

    def test_neverAheadOfQueuedBytes(self) -> None:
        """
        While Twisted holds bytes for the socket, later ones are queued
        behind them (never written through ahead), corked or not.
        """
        self.answer(b"a")
        self.flush()
        self.transport.write(b"queued;")
        self.sock.calls.clear()
        self.answer(b"corked;")
        self.conn.send(b"direct;")
        self.assertEqual(self.sock.calls, [])
        self.flush()
        self.assertEqual(self.received(22), b"aqueued;corked;direct;")

    def test_partialSend(self) -> None:
        """
        What the socket does not take is queued in Twisted, from the right
        offset, and what follows queues behind it.
        """
        self.answer(b".")
        self.flush()
        self.sock.limit = 3
        self.conn.send(b"0123456789")
        self.assertTrue(self.queued())
        self.conn.send(b"after")
        self.sock.limit = None
        self.flush()
        self.assertEqual(self.received(16), b".0123456789after")

    def test_partialGatheringSend(self) -> None:
        """
        Large pieces of one read go out in one sendmsg; a partial one
        queues the rest of the piece it stopped in, then the others.
        """
        self.answer(b".")
        self.flush()
        parts = [bytes([65 + i]) * 6000 for i in range(4)]
        self.sock.limit = 9000
        self.conn.cork()
        for part in parts:
            self.conn.send(part)
        self.conn.uncork()
        self.assertEqual(self.sock.calls, ["sendmsg"])
        self.sock.limit = None
        self.flush()
        self.assertEqual(self.received(24001), b"." + b"".join(parts))

    def test_refusedSendQueues(self) -> None:
        """
        A send the socket refuses (EAGAIN) leaves everything to Twisted.
        """
        self.answer(b".")
        self.flush()
        self.sock.error = errno.EAGAIN
        self.conn.send(b"later")
        self.assertTrue(self.queued())
        self.sock.error = None
        self.flush()
        self.assertEqual(self.received(6), b".later")

    def test_switchOff(self) -> None:
        """
        With write-through off, every write goes through Twisted's queue,
        for a connection already writing through too.
        """
        self.answer(b".")
        self.flush()
        self.addCleanup(_twisted.setWriteThrough, _twisted.writeThrough)
        _twisted.setWriteThrough(False)
        self.sock.calls.clear()
        self.conn.send(b"queued")
        self.answer(b"too")
        self.assertEqual(self.sock.calls, [])
        self.assertTrue(self.queued())
        self.flush()
        self.assertEqual(self.received(10), b".queuedtoo")

    def test_notWhileDisconnecting(self) -> None:
        """
        A transport that is closing gets nothing written through.
        """
        self.answer(b".")
        self.flush()
        self.transport.disconnecting = True
        self.sock.calls.clear()
        self.conn.send(b"x")
        self.assertEqual(self.sock.calls, [])
