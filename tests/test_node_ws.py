"""
Interoperability with Node's C{ws} package, the WebSocket client most
JavaScript servers and tools use.

Each test serves a small application on loopback, runs one scenario of
C{tests/node/client.js} against it in a child process, and checks both the
JSON the client prints and what the application saw.

The client's dependencies must be installed first::

    npm ci --prefix tests/node
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from twisted.internet import defer, endpoints, reactor
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from txratchet import Application, CloseConnection, SendMessage, Server, WebSocket

NODE_DIR = Path(__file__).resolve().parent / "node"
CLIENT = NODE_DIR / "client.js"
INSTALL_HINT = "run `npm ci --prefix tests/node` from the repository root"

#: Seconds one client run may take before it is killed.
PROCESS_TIMEOUT = 15.0
#: Seconds the server has to see the connection closed after the client ends.
CLOSE_TIMEOUT = 5.0


class Recorder(Application):
    """
    Echoes every message (same type), closes with 4002 "bye" after
    "close-me", answers "whoami" with a JSON description of the connection,
    and records what happened.
    """

    def __init__(self) -> None:
        self.opened: list[Any] = []
        self.messages: list[str | bytes] = []
        self.closed: list[dict[str, Any]] = []
        self.errors: list[Failure] = []
        self._closeWaiters: list[defer.Deferred[dict[str, Any]]] = []

    def onOpen(self, conn: Any) -> None:
        self.opened.append(conn)

    def onMessage(self, conn: Any, msg: str | bytes) -> object:
        self.messages.append(msg)
        if msg == "close-me":
            return CloseConnection(conn, 4002, "bye")
        if msg == "whoami":
            return SendMessage(
                conn,
                json.dumps(
                    {
                        "path": conn.path,
                        "query": conn.query,
                        "cookies": conn.cookies,
                        "protocol": conn.protocol,
                        "x-test": conn.headers.get("x-test"),
                    }
                ),
            )
        return SendMessage(conn, msg)

    def onClose(self, conn: Any) -> None:
        record = {
            "code": conn.closeCode,
            "reason": conn.closeReason,
            "wasClean": conn.wasClean,
        }
        self.closed.append(record)
        waiters, self._closeWaiters = self._closeWaiters, []
        for d in waiters:
            d.callback(record)

    def onError(self, conn: Any, failure: Failure) -> None:
        self.errors.append(failure)
        super().onError(conn, failure)

    def whenClosed(self) -> defer.Deferred[dict[str, Any]]:
        """
        Fires with the first close record (at once if there already is one).
        """
        if self.closed:
            return defer.succeed(self.closed[0])
        d: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self._closeWaiters.append(d)
        return d


class _Collector(ProcessProtocol):
    """
    Gathers a child's output and fires C{done} with C{(out, err, status)};
    a status of C{None} means the process was killed by a signal.
    """

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.done: defer.Deferred[tuple[bytes, bytes, int | None]] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        self.err.append(data)

    def processEnded(self, reason: Failure) -> None:
        status: int | None
        if reason.check(ProcessDone):
            status = 0
        elif reason.check(ProcessTerminated):
            status = reason.value.exitCode
        else:  # pragma: no cover
            status = None
        self.done.callback((b"".join(self.out), b"".join(self.err), status))


def _findNode() -> str:
    node = shutil.which("node")
    if node is None:
        raise AssertionError(
            "Node.js ('node') is not on PATH: install Node.js 18+ and " + INSTALL_HINT
        )
    if not (NODE_DIR / "node_modules" / "ws" / "package.json").is_file():
        raise AssertionError(
            "The Node test client's dependencies are missing "
            f"({NODE_DIR / 'node_modules'} has no 'ws'): {INSTALL_HINT}"
        )
    return node


class NodeWSClientTests(TestCase):
    """
    txratchet's WebSocket server against Node's C{ws} client.
    """

    timeout = 60

    def setUp(self) -> defer.Deferred[None]:
        try:
            self.node = _findNode()
        except AssertionError as e:
            self.fail(str(e))
        self.app = Recorder()
        endpoint = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        d = endpoint.listen(Server(WebSocket(self.app)))

        def listening(port: Any) -> None:
            self.port = port
            self.addCleanup(port.stopListening)
            self.baseURL = f"ws://127.0.0.1:{port.getHost().port}"

        return d.addCallback(listening)

    @defer.inlineCallbacks
    def runClient(self, scenario: str, path: str = "/") -> Any:
        """
        Run one scenario of the Node client; return its parsed JSON result
        after checking that it succeeded.
        """
        proto = _Collector()
        env = dict(os.environ)
        env["TXRATCHET_NODE_TIMEOUT_MS"] = str(int((PROCESS_TIMEOUT - 3) * 1000))
        transport = reactor.spawnProcess(  # type: ignore[attr-defined]
            proto,
            self.node,
            [self.node, str(CLIENT), self.baseURL + path, scenario],
            env=env,
            path=str(NODE_DIR),
        )

        def kill() -> None:
            try:
                transport.signalProcess("KILL")
            except Exception:  # pragma: no cover - already gone
                pass

        killer = reactor.callLater(PROCESS_TIMEOUT, kill)  # type: ignore[attr-defined]
        try:
            out, err, status = yield proto.done
        finally:
            if killer.active():
                killer.cancel()
        details = (
            f"scenario {scenario!r}: exit status {status}\n"
            f"stdout: {out.decode('utf-8', 'replace')}\n"
            f"stderr: {err.decode('utf-8', 'replace')}"
        )
        if status is None:
            self.fail(f"Node client killed after {PROCESS_TIMEOUT} s; {details}")
        lines = out.decode("utf-8").strip().splitlines()
        if not lines:
            self.fail(f"Node client printed nothing; {details}")
        try:
            result = json.loads(lines[-1])
        except ValueError:
            self.fail(f"Node client printed no JSON; {details}")
        if status != 0 or not result.get("ok"):
            self.fail(f"Node client failed; {details}")
        self.assertEqual(result["scenario"], scenario)
        # ws offers permessage-deflate (client_max_window_bits, no value);
        # txratchet accepts it with its default 12-bit compression window.
        self.assertEqual(result["extensions"], "permessage-deflate")
        self.assertEqual(result["subprotocol"], "")
        return result

    @defer.inlineCallbacks
    def serverClose(self) -> Any:
        """
        The server-side close record of the (only) connection.
        """
        d = self.app.whenClosed()
        d.addTimeout(CLOSE_TIMEOUT, reactor)
        record = yield d
        self.assertEqual(len(self.app.opened), 1)
        self.assertEqual(self.app.opened[0].protocol, "rfc6455")
        self.assertEqual(self.app.errors, [])
        return record

    def assertNormalClose(self, result: dict[str, Any], record: dict[str, Any]) -> None:
        """
        The client closed with 1000 "done": the server echoed 1000 and
        recorded the client's code and reason.
        """
        self.assertEqual(result["close"]["code"], 1000)
        self.assertEqual(record, {"code": 1000, "reason": "done", "wasClean": True})

    @defer.inlineCallbacks
    def test_echo_text(self) -> Any:
        result = yield self.runClient("echo-text")
        sent = ["hello", "héllo wörld ✓ 日本語 🎉", ""]
        self.assertEqual(result["sent"], sent)
        self.assertEqual(result["received"], sent)
        self.assertEqual(self.app.messages, sent)
        for message in self.app.messages:
            self.assertIsInstance(message, str)
        self.assertNormalClose(result, (yield self.serverClose()))

    @defer.inlineCallbacks
    def test_binary(self) -> Any:
        result = yield self.runClient("binary")
        payload = bytes(i % 256 for i in range(1024))
        self.assertEqual(result["length"], 1024)
        self.assertEqual(result["sha256"], result["sentSha256"])
        self.assertEqual(result["emptyLength"], 0)
        self.assertEqual(self.app.messages, [payload, b""])
        self.assertNormalClose(result, (yield self.serverClose()))

    @defer.inlineCallbacks
    def test_large_text(self) -> Any:
        result = yield self.runClient("large-text")
        self.assertEqual(result["bytes"], 1024 * 1024)
        self.assertEqual(result["sha256"], result["sentSha256"])
        self.assertEqual(len(self.app.messages), 1)
        message = self.app.messages[0]
        self.assertIsInstance(message, str)
        assert isinstance(message, str)
        self.assertEqual(len(message.encode("utf-8")), 1024 * 1024)
        self.assertIn("é✓", message)
        self.assertNormalClose(result, (yield self.serverClose()))

    @defer.inlineCallbacks
    def test_pipeline(self) -> Any:
        result = yield self.runClient("pipeline")
        expected = [f"message {i} ✓" for i in range(100)]
        self.assertEqual(result["count"], 100)
        self.assertEqual(result["first"], expected[0])
        self.assertEqual(result["last"], expected[-1])
        self.assertEqual(self.app.messages, expected)
        self.assertNormalClose(result, (yield self.serverClose()))

    @defer.inlineCallbacks
    def test_fragmented(self) -> Any:
        """
        Fragments are reassembled into one message each (text split inside
        a UTF-8 sequence, binary), and a ping between fragments is answered.
        """
        result = yield self.runClient("fragmented")
        self.assertEqual(result["text"], "frag-ment-éed ✓")
        self.assertEqual(result["binary"], [0, 1, 2, 253, 254, 255])
        self.assertEqual(result["pong"], "between fragments")
        self.assertEqual(self.app.messages, ["frag-ment-éed ✓", bytes([0, 1, 2, 253, 254, 255])])
        self.assertNormalClose(result, (yield self.serverClose()))

    @defer.inlineCallbacks
    def test_client_close(self) -> Any:
        """
        The client's close code and reason reach the application, and the
        server echoes the code.
        """
        result = yield self.runClient("client-close")
        self.assertEqual(result["before"], "before close")
        # The server echoes the code (RFC 6455 5.5.1); it sends no reason.
        self.assertEqual(result["close"]["code"], 4001)
        self.assertIsInstance(result["close"]["reason"], str)
        record = yield self.serverClose()
        self.assertEqual(record, {"code": 4001, "reason": "client going away ✓", "wasClean": True})

    @defer.inlineCallbacks
    def test_server_close(self) -> Any:
        """
        A close started by the application reaches the client with its code
        and reason.
        """
        result = yield self.runClient("server-close")
        self.assertEqual(result["close"], {"code": 4002, "reason": "bye"})
        self.assertEqual(self.app.messages, ["close-me"])
        record = yield self.serverClose()
        self.assertTrue(record["wasClean"])

    @defer.inlineCallbacks
    def test_server_close_code_recorded(self) -> Any:
        """
        After a close the application started, C{closeCode} and
        C{closeReason} hold what the peer answered (ws echoes 4002 "bye"),
        as C{WebSocketConnection}'s docstring promises ("the close code the
        peer sent").
        """
        result = yield self.runClient("server-close")
        self.assertEqual(result["close"], {"code": 4002, "reason": "bye"})
        record = yield self.serverClose()
        self.assertEqual(record, {"code": 4002, "reason": "bye", "wasClean": True})

    @defer.inlineCallbacks
    def test_ping(self) -> Any:
        result = yield self.runClient("ping")
        self.assertEqual(result["pong"], "ping payload ✓")
        self.assertEqual(result["emptyPongLength"], 0)
        self.assertEqual(self.app.messages, [])
        self.assertNormalClose(result, (yield self.serverClose()))

    @defer.inlineCallbacks
    def test_whoami(self) -> Any:
        """
        The path, query, cookies and extra headers of ws's handshake reach
        the connection.
        """
        result = yield self.runClient("whoami", "/who/am-i?room=42&name=node")
        self.assertEqual(
            result["server"],
            {
                "path": "/who/am-i",
                "query": "room=42&name=node",
                "cookies": {"session": "abc123", "theme": "dark"},
                "protocol": "rfc6455",
                "x-test": "node-ws",
            },
        )
        self.assertEqual(result["sentHeaders"]["X-Test"], "node-ws")
        conn = self.app.opened[0]
        self.assertEqual(conn.params, {"room": ["42"], "name": ["node"]})
        self.assertEqual(conn.headers.get("Cookie"), "session=abc123; theme=dark")
        self.assertNormalClose(result, (yield self.serverClose()))
