"""
The README's "Testing your application" code, run as it is written there:
a trial TestCase (synchronous tests and an C{async def} one) and a pytest
function. L{ReadmeInSyncTests} fails if the README's blocks and this file
part ways.

Below the README's code: the same kit under pytest-twisted, for
asynchronous pytest functions.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest_twisted
from twisted.trial.unittest import SynchronousTestCase

from examples.chat import Chat

# -- The README's blocks, verbatim (Chat is the README's, examples/chat.py) --
# isort: off
from twisted.trial.unittest import TestCase

from examples.history import History
from txratchet.components import OriginCheck
from txratchet.testing import TestServer
# isort: on


class ChatTests(TestCase):
    def test_relay(self) -> None:
        server = TestServer(Chat())              # Server(WebSocket(Chat())), in memory
        alice = server.connect("/chat")
        bob = server.connect("/chat", family="hixie-76")
        alice.send("hello")
        self.assertEqual(bob.receiveNow(), "hello")
        self.assertEqual(alice.receiveAll(), [])  # not back to its sender

    def test_silentPeerDropped(self) -> None:
        server = TestServer(Chat(), pingInterval=30, pingTimeout=10)
        client = server.connect("/chat")
        client.autoPong = False                  # a peer whose network died
        server.advance(40)                       # the server's clock: no waiting
        self.assertEqual(client.closeCode, 1011)

    async def test_history(self) -> None:       # async def handlers, real SQLite
        app = History(":memory:")
        self.addCleanup(app.db.close)
        client = TestServer(app).connect("/", peer="192.0.2.1")
        client.send("remember me")
        self.assertEqual(await client.receive(), "192.0.2.1: remember me")


def test_otherSitesRefused() -> None:           # pytest: a plain function
    server = TestServer(OriginCheck(Chat(), ["https://chat.example"]))
    client = server.connect("/chat", origin="https://evil.example")
    assert client.status == 403
    assert client.body == b"Origin not allowed: https://evil.example\n"
    assert server.connect("/chat", origin="https://chat.example").open

# -- End of the README's blocks ------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_pytestTwisted() -> None:
    """
    An asynchronous pytest function (pytest-twisted runs the reactor).
    """
    app = History(":memory:")
    try:
        server = TestServer(app)
        alice = server.connect("/", peer="192.0.2.1")
        await alice.whenOpen()
        alice.send("first")
        assert await alice.receive() == "192.0.2.1: first"
        bob = server.connect("/", peer="192.0.2.2")
        assert await bob.receive() == "192.0.2.1: first"  # replayed from the database
        bob.close(4000, "bye")
        await bob.whenClosed()
        assert bob.closeCode == 4000
    finally:
        app.db.close()


ROOT = Path(__file__).resolve().parent.parent


class ReadmeInSyncTests(SynchronousTestCase):
    def test_blocksAreHere(self) -> None:
        """
        Every ```python block of the README's "Testing your application"
        section is in this file, as it is (so what the README shows runs).
        """
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        section = readme.split("\n## Testing your application\n", 1)[1].split("\n## ", 1)[0]
        blocks = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
        self.assertEqual(len(blocks), 2)
        source = Path(__file__).read_text(encoding="utf-8")
        source = re.sub(r"(?m)^# isort: (on|off)\n", "", source)  # the linter's, not the README's
        for block in blocks:
            self.assertIn(block, source)
