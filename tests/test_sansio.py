"""
The sans-I/O core: nothing under C{txratchet.websocket} imports Twisted
(or zope), directly or through the txratchet modules it imports.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import txratchet.websocket
from txratchet.websocket.protocol import WebSocketProtocol

_PACKAGE_DIR = Path(txratchet.__file__).parent

#: Runs in a fresh interpreter: the txratchet package is made without
#: running its __init__ (which serves the Twisted glue), any import of
#: Twisted or zope raises, then every module of the core is imported.
_CHECK = r"""
import importlib, importlib.abc, sys, types

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("twisted", "zope"):
            raise ImportError("the sans-I/O core imported " + name)
        return None

sys.meta_path.insert(0, Blocker())
package = types.ModuleType("txratchet")
package.__path__ = [PACKAGE_DIR]
sys.modules["txratchet"] = package
for name in MODULES:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m.startswith("txratchet"))
print("\n".join(loaded))
"""


def coreModules() -> list[str]:
    """
    Every module of the C{txratchet.websocket} package.
    """
    names = ["txratchet.websocket"]
    for info in pkgutil.iter_modules(txratchet.websocket.__path__):
        names.append(f"txratchet.websocket.{info.name}")
    return names


class SansIOTests(SynchronousTestCase):
    """
    The protocol core runs without Twisted.
    """

    def test_noTwistedImport(self) -> None:
        """
        Every core module imports with Twisted and zope blocked; the
        txratchet modules it pulls in are only the core and C{errors}.
        """
        modules = coreModules()
        self.assertIn("txratchet.websocket.protocol", modules)
        script = _CHECK.replace("PACKAGE_DIR", repr(str(_PACKAGE_DIR))).replace(
            "MODULES", repr(modules)
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        loaded = set(result.stdout.split())
        outside = {
            m
            for m in loaded
            if m not in ("txratchet", "txratchet.errors")
            and not m.startswith("txratchet.websocket")
        }
        self.assertEqual(outside, set())
        self.assertTrue(set(modules) <= loaded)

    def test_blockerWorks(self) -> None:
        """
        The check fails for a module that does import Twisted (so the test
        above can fail).
        """
        script = _CHECK.replace("PACKAGE_DIR", repr(str(_PACKAGE_DIR))).replace(
            "MODULES", repr(["txratchet.connection"])
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("the sans-I/O core imported twisted", result.stderr)


class ProtocolAloneTests(SynchronousTestCase):
    """
    The core runs a whole connection with no I/O at all: a client protocol
    and a server protocol talk to each other through plain bytes.
    """

    def connectPair(
        self, version: int | str = 13
    ) -> tuple[WebSocketProtocol, WebSocketProtocol]:
        from txratchet.websocket.events import Opened, RequestReceived
        from txratchet.websocket.handshake import ClientHandshake, parseURL
        from txratchet.websocket.protocol import CLIENT, OPEN, SERVER

        client = WebSocketProtocol(
            CLIENT,
            handshake=ClientHandshake(
                parseURL("ws://example.com/chat?room=1"), version=version, subprotocols=["chat"]
            ),
        )
        server = WebSocketProtocol(SERVER)
        (event,) = server.receive(client.connect())
        assert isinstance(event, RequestReceived)
        self.assertTrue(event.upgrade)
        self.assertEqual(event.request.path, "/chat")
        server.negotiate(["chat"])
        events = client.receive(server.accept())
        self.assertIsInstance(events[0], Opened)
        self.assertIs(client.state, OPEN)
        self.assertIs(server.state, OPEN)
        self.assertEqual((client.subprotocol, server.subprotocol), ("chat", "chat"))
        return client, server

    def test_messagesBothWays(self) -> None:
        """
        What one side frames, the other receives; a client's frames are
        masked, a server's are not.
        """
        client, server = self.connectPair()
        header, payload = client.frame("hello")
        self.assertTrue(header[1] & 0x80)
        self.assertEqual(server.receive(header + payload), ["hello"])
        header, payload = server.frame(b"\x00\x01")
        self.assertFalse(header[1] & 0x80)
        self.assertEqual(client.receive(header + payload), [b"\x00\x01"])

    def test_closingHandshake(self) -> None:
        """
        The client closes; the server answers and closes TCP; the client
        waits for it (RFC 6455 7.1.1).
        """
        from txratchet.websocket.events import CloseReceived
        from txratchet.websocket.protocol import CLOSED, CLOSING

        client, server = self.connectPair()
        (event,) = server.receive(client.close(4000, "bye"))
        assert isinstance(event, CloseReceived)
        answer, closeNow = server.closeReceived(event)
        self.assertTrue(closeNow)
        (event,) = client.receive(answer)
        assert isinstance(event, CloseReceived)
        again, clientCloses = client.closeReceived(event)
        self.assertEqual((again, clientCloses), (b"", False))
        self.assertIs(client.state, CLOSING)
        self.assertTrue(client.connectionLost())  # it was open: the application sees it close
        self.assertIs(client.state, CLOSED)
        self.assertEqual((server.closeCode, server.wasClean), (4000, True))

    def test_failing(self) -> None:
        """
        Invalid UTF-8 fails the connection with 1007: the close frame to
        send comes back, and nothing more is read.
        """
        from txratchet.websocket.events import Failed

        client, server = self.connectPair()
        header, _ = client.frame(b"")
        raw = bytes([0x81, 0x82]) + b"\x00\x00\x00\x00" + b"\xff\xfe"
        (event,) = server.receive(raw)
        assert isinstance(event, Failed)
        self.assertEqual(event.code, 1007)
        out = server.fail(event.code, event.reason)
        self.assertEqual(out[:4], b"\x88" + bytes([len(out) - 2]) + b"\x03\xef")
        self.assertEqual(server.receive(header), [])

    def test_hixie76BehindTheSameInterface(self) -> None:
        """
        A Hixie-76 pair runs through the same calls: no ping, a close
        without a code.
        """
        client, server = self.connectPair("hixie-76")
        self.assertEqual(client.family, "hixie-76")
        header, payload = client.frame("hi")
        self.assertEqual(header + payload, b"\x00hi\xff")
        self.assertEqual(server.receive(header + payload), ["hi"])
        self.assertEqual(server.ping(b"x"), b"")
        self.assertEqual(server.close(1000, "ignored"), b"\xff\x00")

    def test_keepaliveDecisions(self) -> None:
        """
        Keepalive is decided from the times passed in: a ping after the
        interval of silence, 1011 when it goes unanswered.
        """
        from txratchet.websocket.handshake import ClientHandshake, parseURL
        from txratchet.websocket.protocol import SERVER

        server = WebSocketProtocol(SERVER, pingInterval=10.0, pingTimeout=5.0)
        server.receive(ClientHandshake(parseURL("ws://example.com/")).data)
        server.negotiate()
        server.accept()
        server.lastReceived = 100.0
        self.assertEqual(server.nextLivenessCheck(), 110.0)
        decision = server.liveness(105.0)
        self.assertEqual((decision.ping, decision.close, decision.nextCheck), (None, None, 110.0))
        decision = server.liveness(110.0)
        self.assertEqual(decision.ping, b"\x89\x09keepalive")
        self.assertEqual(decision.nextCheck, 115.0)
        decision = server.liveness(115.0)
        self.assertEqual(decision.close, (1011, "Keepalive ping timeout"))
