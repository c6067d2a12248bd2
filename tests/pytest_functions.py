"""
Plain pytest functions using C{txratchet.testing}: the README's, and an
asynchronous one run by pytest-twisted. Not collected with the suite (the
name does not start with C{test_}): pytest-twisted runs plain test
functions in its reactor greenlet, which leaves the real-reactor trial
TestCases of the same process unclean, so
L{tests.test_readme_testing.PytestFunctionTests} runs this file in a pytest
of its own.
"""

from __future__ import annotations

import pytest_twisted

from examples.chat import Chat
from examples.history import History
from txratchet.testing import TestServer

# -- The README's pytest block, verbatim --
# isort: off
from txratchet.components import OriginCheck


def test_otherSitesRefused() -> None:           # pytest: a plain function
    server = TestServer(OriginCheck(Chat(), ["https://chat.example"]))
    client = server.connect("/chat", origin="https://evil.example")
    assert client.status == 403
    assert client.body == b"Origin not allowed: https://evil.example\n"
    assert server.connect("/chat", origin="https://chat.example").open
# isort: on


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


