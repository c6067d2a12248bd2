"""
C{examples/rooms.py}, the program docs/tutorial.md builds: rooms from the
path, logins by a signed token checked in C{onRequest}. A real server on
loopback (in this process, and under C{twistd} as the tutorial runs it),
the C{websockets} library as the client, tokens made here with C{hmac}
(not with the example's own code).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
import time

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from examples.rooms import Rooms
from tests.test_twistd import ROOT, TWISTD, TwistdTestCase, readUntil
from tests.util import ServerTestCase
from txratchet import WebSocket
from txratchet.testing import TestServer

HOST = "127.0.0.1"
SECRET = "tutorial secret"


def token(user, expires=None, secret=SECRET):
    expires = int(time.time()) + 600 if expires is None else expires
    payload = f"{user}.{expires}"
    return payload + "." + hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def status(url):
    """The HTTP status a handshake to C{url} is refused with (101: accepted)."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    try:
        with connect(url, open_timeout=5):
            return 101
    except InvalidStatus as e:
        return e.response.status_code


class RoomsTests(ServerTestCase):
    @inlineCallbacks
    def serve(self):
        app = Rooms(SECRET)
        port = yield self.listen(WebSocket(app))
        return app, f"ws://{HOST}:{port}"

    @inlineCallbacks
    def test_roomsKeepApart(self):
        """
        What the tutorial shows: joins, messages heard by the whole room
        (the sender too) and only by it, C{/who}, leaves; an empty room is
        forgotten.
        """
        app, base = yield self.serve()

        def chat():
            from websockets.sync.client import connect

            heard = {}
            with connect(f"{base}/rooms/lobby?token={token('ann')}") as ann:
                heard["ann joins"] = ann.recv(timeout=5)
                with connect(f"{base}/rooms/lobby?token={token('bob')}") as bob, \
                        connect(f"{base}/rooms/kitchen?token={token('carol')}") as carol:
                    heard["bob joins"] = (ann.recv(timeout=5), bob.recv(timeout=5))
                    heard["carol joins"] = carol.recv(timeout=5)
                    bob.send("hi all")
                    heard["bob says"] = (ann.recv(timeout=5), bob.recv(timeout=5))
                    carol.send("/who")  # the lobby's talk never reached her
                    heard["carol asks"] = carol.recv(timeout=5)
                    ann.send("/who")
                    heard["ann asks"] = ann.recv(timeout=5)
                heard["bob leaves"] = ann.recv(timeout=5)
            return heard

        heard = yield deferToThread(chat)
        self.assertEqual(heard, {
            "ann joins": "* ann joined lobby",
            "bob joins": ("* bob joined lobby", "* bob joined lobby"),
            "carol joins": "* carol joined kitchen",
            "bob says": ("bob: hi all", "bob: hi all"),
            "carol asks": "* here: carol",
            "ann asks": "* here: ann, bob",
            "bob leaves": "* bob left",
        })
        yield self.assertForgotten(app)

    @inlineCallbacks
    def assertForgotten(self, app):
        """Once every client closed, no room is left (bounded wait)."""
        for _ in range(100):
            if not app.rooms:
                break
            yield deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(app.rooms, {})

    @inlineCallbacks
    def test_refusals(self):
        """
        No token, a forged, expired or other-secret one: 403; not a room:
        404; binary: closed with 1003. Nothing of them reaches the rooms.
        """
        app, base = yield self.serve()
        good = token("ann")
        forged = good[:-1] + ("0" if good[-1] != "0" else "1")

        def attempts():
            from websockets.sync.client import connect

            got = {
                name: status(url) for name, url in {
                    "no token": f"{base}/rooms/lobby",
                    "forged": f"{base}/rooms/lobby?token={forged}",
                    "another user's signature": f"{base}/rooms/lobby?token=bob{good[3:]}",
                    "expired": f"{base}/rooms/lobby?token={token('ann', int(time.time()) - 1)}",
                    "other secret": f"{base}/rooms/lobby?token={token('ann', secret='x')}",
                    "not a room": f"{base}/lobby?token={good}",
                    "bad room name": f"{base}/rooms/Lobby?token={good}",
                    "good": f"{base}/rooms/lobby?token={good}",
                }.items()
            }
            with connect(f"{base}/rooms/lobby?token={good}") as ws:
                ws.recv(timeout=5)
                ws.send(b"\x00binary")
                for _ in range(10):
                    try:
                        ws.recv(timeout=5)
                    except Exception:
                        break
                got["binary"] = (ws.close_code, ws.close_reason)
            return got

        got = yield deferToThread(attempts)
        self.assertEqual(got, {
            "no token": 403, "forged": 403, "another user's signature": 403, "expired": 403,
            "other secret": 403, "not a room": 404, "bad room name": 404, "good": 101,
            "binary": (1003, "Text messages only"),
        })
        yield self.assertForgotten(app)

    def test_secretRequired(self):
        environ = dict(os.environ)
        os.environ.pop("ROOMS_SECRET", None)
        self.addCleanup(os.environ.update, environ)
        with self.assertRaises(usage.UsageError):
            Rooms()


class RoomsInMemoryTests(SynchronousTestCase):
    """
    The same rules through C{txratchet.testing}: the real stack in memory,
    no sockets, a clock the test moves (docs/testing.md shows this class).
    """

    def test_roomsAndRefusals(self) -> None:
        server = TestServer(Rooms(SECRET))
        ann = server.connect(f"/rooms/lobby?token={token('ann')}")
        bob = server.connect(f"/rooms/lobby?token={token('bob')}", family="hixie-76")
        carol = server.connect(f"/rooms/kitchen?token={token('carol')}")
        self.assertEqual(ann.receiveAll(), ["* ann joined lobby", "* bob joined lobby"])
        bob.send("hi")
        self.assertEqual(ann.receiveNow(), "bob: hi")
        self.assertEqual(bob.receiveAll(), ["* bob joined lobby", "bob: hi"])
        self.assertEqual(carol.receiveAll(), ["* carol joined kitchen"])

        forged = server.connect(f"/rooms/lobby?token={token('ann', secret='guess')}")
        self.assertEqual((forged.status, forged.body), (403, b"A valid ?token= is needed\n"))
        self.assertEqual(server.connect("/lobby").status, 404)

    def test_idlePeersLeave(self) -> None:
        server = TestServer(Rooms(SECRET), idleTimeout=600)
        ann = server.connect(f"/rooms/lobby?token={token('ann')}")
        bob = server.connect(f"/rooms/lobby?token={token('bob')}")
        server.advance(300)
        bob.send("still here")
        server.advance(301)  # ann said nothing for 601 s
        self.assertEqual((ann.closeCode, ann.closeReason), (1000, "Idle timeout"))
        self.assertEqual(bob.receiveAll()[-2:], ["bob: still here", "* ann left"])


class RoomsUnderTwistdTests(TwistdTestCase):
    """
    The tutorial's commands, as a user types them: the secret in
    C{ROOMS_SECRET}, twistd with C{--max-message-size 4096}, a token from
    C{python -m examples.rooms token ann}.
    """

    def setUp(self):
        environ = dict(os.environ)
        self.addCleanup(os.environ.update, environ)  # cleanups run last first:
        self.addCleanup(os.environ.clear)  # clear, then restore
        os.environ["ROOMS_SECRET"] = SECRET

    def test_tutorialCommands(self):
        proc = self.startTwistd(
            "--app", "examples.rooms.Rooms", "--port", f"tcp:0:interface={HOST}",
            "--max-message-size", "4096",
        )

        def talk():
            from websockets.sync.client import connect

            base = readUntil(proc, rb"WebSocket clients connect to (ws://\S+)/")
            made = subprocess.run(
                [sys.executable, "-m", "examples.rooms", "token", "ann"],
                cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
            ).stdout.strip()
            with connect(f"{base}/rooms/lobby?token={made}") as ws:
                joined = ws.recv(timeout=5)
                ws.send("x" * 5000)
                for _ in range(10):
                    try:
                        ws.recv(timeout=5)
                    except Exception:
                        break
                return joined, ws.close_code

        return deferToThread(talk).addCallback(self.assertEqual, ("* ann joined lobby", 1009))

    def test_tutorialTerminal(self):
        """
        The command-line client as docs/tutorial.md shows it: ann's lines,
        and the refusal of a guessed token, word for word.
        """
        proc = self.startTwistd("--app", "examples.rooms.Rooms", "--port", f"tcp:0:interface={HOST}")
        tutorial = (ROOT / "docs" / "tutorial.md").read_text()
        refusal = next(
            line for line in tutorial.splitlines() if line.startswith("Could not connect to ")
        )

        def client(url, lines):
            return subprocess.run(
                [sys.executable, "-m", "txratchet.client", url], input=lines, cwd=ROOT,
                capture_output=True, text=True, timeout=30,
            )

        def talk():
            base = readUntil(proc, rb"WebSocket clients connect to (ws://\S+)/")
            ann = client(f"{base}/rooms/lobby?token={token('ann')}", "hello\n/who\n")
            guess = client(f"{base}/rooms/lobby?token=guess", "")
            return base, ann, guess

        def check(result):
            base, ann, guess = result
            self.assertEqual(ann.stdout.splitlines(), ["* ann joined lobby", "ann: hello", "* here: ann"])
            self.assertEqual(guess.returncode, 1)
            self.assertEqual(guess.stderr.strip(), refusal.replace("ws://localhost:8080", base))

        return deferToThread(talk).addCallback(check)

    def test_noSecret(self):
        os.environ.pop("ROOMS_SECRET")
        out = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "txratchet", "--app", "examples.rooms.Rooms",
             "--port", f"tcp:0:interface={HOST}"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertEqual(
            out.stderr.strip().splitlines()[-1],
            "twistd txratchet: examples.rooms: set ROOMS_SECRET, the secret tokens are signed with",
        )
