"""
The README's "Testing your application" code, run as it is written there:
a trial TestCase (synchronous tests and an C{async def} one) and a pytest
function (in L{tests.pytest_functions}, run by a pytest of its own).
L{ReadmeInSyncTests} fails if the README's blocks and these files part
ways.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from examples.chat import Chat

# -- The README's blocks, verbatim (Chat is the README's, examples/chat.py) --
# isort: off
from twisted.trial.unittest import TestCase

from examples.history import History
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


# -- End of the README's blocks ------------------------------------------------


class PytestFunctionTests(SynchronousTestCase):
    def test_pytestFunctions(self) -> None:
        """
        The README's plain pytest function, and the kit in an asynchronous
        one under pytest-twisted (L{tests.pytest_functions}). They run in a
        pytest of their own: pytest-twisted runs every plain test function
        in its reactor greenlet, after which the real-reactor trial
        TestCases of the same process find the reactor unclean.
        """
        here = Path(__file__).resolve().parent
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(here / "pytest_functions.py")],
            cwd=here.parent, capture_output=True, text=True, timeout=120,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("2 passed", result.stdout)


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
        source = Path(__file__).read_text(encoding="utf-8") + (
            Path(__file__).with_name("pytest_functions.py").read_text(encoding="utf-8")
        )
        source = re.sub(r"(?m)^# isort: (on|off)\n", "", source)  # the linter's, not the README's
        for block in blocks:
            self.assertIn(block, source)
