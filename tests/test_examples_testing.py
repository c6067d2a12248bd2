"""
The examples, tested the way the README tells users to test their own
applications: with L{txratchet.testing}, in memory, in milliseconds.
"""

from __future__ import annotations

import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase, TestCase

from examples.chat import Chat
from examples.echo import Echo
from examples.hubchat import HubChat
from txratchet import BinaryNotSupported
from txratchet.testing import TestServer

FAMILIES = ("rfc6455", "hybi-08", "hybi-07", "hixie-76")


class EchoTests(SynchronousTestCase):
    def test_textAndBinary(self) -> None:
        """
        Every message goes back to its sender, text as text and binary as
        binary, in every family (Hixie-76 has no binary), compressed or not.
        """
        server = TestServer(Echo())
        for family in FAMILIES:
            for compression in (False, True):
                client = server.connect(family=family, compression=compression)
                client.send("hello")
                self.assertEqual(client.receiveText(), "hello")
                if family != "hixie-76":
                    client.send(b"\x00\x01\xfe\xff")
                    self.assertEqual(client.receiveBytes(), b"\x00\x01\xfe\xff")
                client.close()
                self.assertTrue(client.closed)

    def test_onlyTheSender(self) -> None:
        server = TestServer(Echo())
        alice, bob = server.connect(), server.connect()
        alice.send("mine")
        self.assertEqual(alice.receiveNow(), "mine")
        self.assertEqual(bob.receiveAll(), [])


class ChatTests(SynchronousTestCase):
    def test_relayToOthers(self) -> None:
        """
        A message reaches every other client, not its sender, whatever
        family each speaks.
        """
        server = TestServer(Chat())
        alice = server.connect()
        bob = server.connect(family="hybi-08")
        carol = server.connect(family="hixie-76")
        alice.send("hi all")
        self.assertEqual(alice.receiveAll(), [])
        self.assertEqual(bob.receiveNow(), "hi all")
        self.assertEqual(carol.receiveNow(), "hi all")

    def test_leaving(self) -> None:
        """
        A client that left (closing, or dropped) no longer receives.
        """
        server = TestServer(Chat())
        alice, bob, carol = server.connect(), server.connect(), server.connect()
        bob.close()
        carol.disconnect()
        alice.send("still there?")
        self.assertEqual(bob.receiveAll(), [])
        self.assertEqual(carol.receiveAll(), [])
        dave = server.connect()
        dave.send("yes")
        self.assertEqual(alice.receiveNow(), "yes")

    def test_binaryToHixie(self) -> None:
        """
        A binary message cannot reach a Hixie-76 client: that client is
        closed by onError (the command failed), the others get it.
        """
        server = TestServer(Chat())
        sender = server.connect()
        modern = server.connect()
        old = server.connect(family="hixie-76")
        sender.send(b"\x01\x02")
        self.assertEqual(modern.receiveNow(), b"\x01\x02")
        self.assertTrue(old.closed)
        self.assertEqual(old.closeCode, 1005)  # Hixie-76's close frame has no code
        self.assertEqual(old.received, [])
        self.assertTrue(sender.open)
        self.assertEqual(len(self.flushLoggedErrors(BinaryNotSupported)), 1)

    def test_telnetJoins(self) -> None:
        """
        The chat on the line protocol too (C{--line-port}): one
        application, both kinds of peers.
        """
        server = TestServer(Chat())
        browser = server.connect()
        telnet = server.connectLine()
        telnet.send("hello from telnet")
        self.assertEqual(browser.receiveNow(), "hello from telnet")
        browser.send("hello back")
        self.assertEqual(telnet.receiveNow(), "hello back")

    def test_keepalive(self) -> None:
        """
        Served with keepalive (C{--ping-interval}), a silent peer is
        dropped and the others stay.
        """
        server = TestServer(Chat(), pingInterval=30, pingTimeout=10)
        alive, silent = server.connect(), server.connect()
        silent.autoPong = False
        server.advance(40)
        self.assertEqual(silent.closeCode, 1011)
        self.assertTrue(alive.open)
        server.advance(3600)
        self.assertTrue(alive.open)


class HubChatTests(SynchronousTestCase):
    def test_broadcastAndPid(self) -> None:
        """
        Every peer joins the chat topic: a message reaches the others;
        C{/pid} is answered to its sender alone.
        """
        server = TestServer(HubChat())
        alice, bob, carol = server.connect(), server.connect(), server.connect()
        alice.send("hello hub")
        self.assertEqual(alice.receiveAll(), [])
        self.assertEqual(bob.receiveNow(), "hello hub")
        self.assertEqual(carol.receiveNow(), "hello hub")
        bob.send("/pid")
        self.assertEqual(bob.receiveNow(), f"pid {os.getpid()}")
        self.assertEqual(alice.receiveAll(), [])

    def test_noWireProtocol(self) -> None:
        """
        The hub's JSON wire commands are off: a subscribe message is just
        chat text.
        """
        server = TestServer(HubChat())
        alice, bob = server.connect(), server.connect()
        alice.sendJSON({"type": "subscribe", "topic": "secret"})
        self.assertEqual(bob.receiveJSON(), {"type": "subscribe", "topic": "secret"})
        self.assertEqual(alice.receiveAll(), [])

    def test_leftPeersForgotten(self) -> None:
        server = TestServer(HubChat())
        alice, bob = server.connect(), server.connect()
        bob.close(1001, "going away")
        alice.send("anyone?")
        self.assertEqual(bob.receiveAll(), [])
        carol = server.connect()
        alice.send("carol?")
        self.assertEqual(carol.receiveNow(), "carol?")


class HistoryTests(TestCase):
    """
    C{async def} handlers awaiting a real database (SQLite through
    adbapi's threads): the test awaits what arrives on later reactor turns.
    """

    async def test_storeAndReplay(self) -> None:
        from examples.history import History

        app = History(os.path.join(tempfile.mkdtemp(), "history.sqlite3"))
        self.addCleanup(app.db.close)
        server = TestServer(app)
        alice = server.connect(peer="192.0.2.1")
        await alice.whenOpen()
        for i in range(3):
            alice.send(f"m{i}")
        self.assertEqual(
            [await alice.receive() for _ in range(3)], [f"192.0.2.1: m{i}" for i in range(3)]
        )
        bob = server.connect(peer="192.0.2.2")
        replay = [await bob.receive() for _ in range(3)]
        self.assertEqual(replay, [f"192.0.2.1: m{i}" for i in range(3)])
        bob.send(b"binary")
        await bob.whenClosed()
        self.assertEqual((bob.closeCode, bob.closeReason), (1003, "Text only"))
