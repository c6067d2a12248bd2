"""
The fence around Twisted's internals (L{txratchet._twisted}):

- the installed Twisted has what the fence reads, with the types and the
  behaviour it relies on (so an upgrade that renames or changes them
  fails here, instead of silently falling back to the slower path);
- with write-through switched off, and when the capability check fails,
  connections still work end to end over real sockets;
- no other module of txratchet reads Twisted's private attributes.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import pkgutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from twisted.application.internet import ClientService
from twisted.internet import reactor, tcp
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread
from twisted.logger import globalLogPublisher
from twisted.protocols.policies import ProtocolWrapper
from twisted.trial.unittest import SkipTest, SynchronousTestCase
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

import txratchet
from tests import rawclients
from tests.util import ServerTestCase
from txratchet import Application, SendMessage, Server, WebSocket, _twisted
from txratchet.web import WebSocketSite

HOST = "127.0.0.1"
PACKAGE = Path(txratchet.__file__).parent


class Echo(Application):
    def onMessage(self, conn: Any, message: Any) -> Any:
        return SendMessage(conn, message)


class RecordingServer(Server):
    """A Server that keeps the protocols it builds."""

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.protocols: list[Any] = []

    def buildProtocol(self, addr: Any) -> Any:
        proto = super().buildProtocol(addr)
        self.protocols.append(proto)
        return proto


class WarningCatcher:
    """The fence's warnings logged while it is installed."""

    def __init__(self, case: SynchronousTestCase) -> None:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self)
        case.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("log_namespace") == _twisted.__name__:
            self.events.append(event)


def freshChecks(case: SynchronousTestCase) -> None:
    """Forget earlier capability checks and warnings for this test."""
    case.patch(_twisted, "_checked", {})
    case.patch(_twisted, "_warned", set())


# ---------------------------------------------------------------- the installed Twisted


class FenceTestCase(ServerTestCase):
    """Listens with a L{RecordingServer} and drops its connections after."""

    def reactor(self) -> Any:
        return reactor

    @inlineCallbacks
    def listenFactory(self, factory: Any) -> Any:
        port = yield TCP4ServerEndpoint(reactor, 0, interface=HOST).listen(factory)
        self.addCleanup(port.stopListening)

        def drop() -> None:
            for proto in factory.protocols:
                if proto.transport is not None:
                    proto.transport.abortConnection()

        self.addCleanup(drop)
        return port.getHost().port


class InstalledTwistedTests(FenceTestCase):
    """
    What the fence reads is there, in the Twisted that is installed.
    """

    @inlineCallbacks
    def test_tcpConnectionInternals(self):
        """
        A real server-side C{tcp.Connection} has every attribute the
        write-through reads, with the types expected; its socket is handed
        out; and Twisted's C{write} still queues into the buffers the fence
        reads (else write-through could overtake queued bytes).
        """
        freshChecks(self)
        warnings = WarningCatcher(self)
        factory = RecordingServer(Application())
        port = yield self.listenFactory(factory)
        client = socket.create_connection((HOST, port), timeout=5)
        self.addCleanup(client.close)
        for _ in range(200):
            if factory.protocols and factory.protocols[0].transport is not None:
                break
            yield deferLater(self.reactor(), 0.01, lambda: None)
        transport = factory.protocols[0].transport
        self.assertIsInstance(transport, tcp.Connection)
        self.assertEqual(_twisted.missingTransportInternals(transport), ())
        self.assertIs(_twisted.throughSocket(transport), transport.socket)
        self.assertTrue(_twisted.writable(transport))
        self.assertFalse(_twisted.holding(transport))
        transport.write(b"queued")
        self.assertTrue(_twisted.holding(transport))
        self.assertFalse(_twisted.writable(transport))
        for _ in range(200):
            if not _twisted.holding(transport):
                break
            yield deferLater(self.reactor(), 0.01, lambda: None)
        self.assertFalse(_twisted.holding(transport))
        self.assertEqual(client.recv(6), b"queued")
        self.assertEqual(warnings.events, [])
        # The takeover's targets: a tcp.Connection's protocol attribute.
        self.assertIs(transport.protocol, factory.protocols[0])


class InstalledTwistedWebTests(SynchronousTestCase):
    def test_channelInternals(self) -> None:
        """
        C{HTTPChannel} has what L{_twisted.takeUnreadBytes} reads, and the
        bytes after a request's head are there while it is rendered.
        """
        self.assertEqual(_twisted.missingChannelInternals(HTTPChannel()), ())
        taken: list[bytes] = []

        class Take(Resource):
            isLeaf = True

            def render_GET(self, request: Any) -> Any:
                taken.append(_twisted.takeUnreadBytes(request.channel))
                return NOT_DONE_YET

        for siteClass in (Site, WebSocketSite):
            del taken[:]
            site = siteClass(Take())
            channel = site.buildProtocol(None)
            assert channel is not None
            channel.makeConnection(StringTransport())
            channel.dataReceived(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n12345678 and more")
            self.assertEqual(taken, [b"12345678 and more"], siteClass)

    def test_http2Internals(self) -> None:
        """
        Twisted's HTTP/2 channel has what L{txratchet.http2} overrides and
        calls (when h2 is installed).
        """
        try:
            import h2  # noqa: F401
        except ImportError:
            raise SkipTest("h2 is not installed") from None
        self.assertEqual(_twisted.missingH2Internals(), ())
        # What has a fallback (CANCEL resets): still there, or CI says so.
        self.assertEqual(_twisted.missingH2Extras(), ())

    def test_protocolWrapperTarget(self) -> None:
        """
        A TLS transport is a C{ProtocolWrapper}: the takeover re-points
        its C{wrappedProtocol}.
        """
        old, new = Protocol(), Protocol()
        wrapper = ProtocolWrapper(None, old)  # type: ignore[arg-type]
        _twisted.switchProtocol(wrapper, old, new)
        self.assertIs(wrapper.wrappedProtocol, new)

    def test_switchProtocolForwardsOverUnknownTransports(self) -> None:
        received: list[bytes] = []

        class New(Protocol):
            def dataReceived(self, data: bytes) -> None:
                received.append(data)

        freshChecks(self)
        warnings = WarningCatcher(self)
        old = Protocol()
        _twisted.switchProtocol(StringTransport(), old, New())
        old.dataReceived(b"x")
        self.assertEqual(received, [b"x"])
        self.assertEqual(len(warnings.events), 1)


# ---------------------------------------------------------------- switch and fallback


class SwitchTests(FenceTestCase):
    """
    With write-through off, or when the capability check fails, echo over
    real sockets is still right (large messages included: partial writes).
    """

    @inlineCallbacks
    def echoRoundTrips(self) -> Any:
        factory = RecordingServer(WebSocket(Echo(), compression=None))
        port = yield self.listenFactory(factory)
        messages = [b"a" * 10, b"b" * 70000, bytes(range(256)) * 4096, b"c"]

        def talk() -> list[Any]:
            got = []
            for _ in range(2):  # two connections: the warning is logged once
                c = rawclients.HybiClient(HOST, port)
                c.connect()
                for message in messages:
                    c.send_binary(message)
                got.append([c.recv_message() for _ in messages])
                c.close()
            return got

        got = yield deferToThread(talk)
        expected = [(rawclients.OP_BINARY, m) for m in messages]
        self.assertEqual(got, [expected, expected])
        return factory

    @inlineCallbacks
    def test_switchedOff(self):
        self.patch(_twisted, "writeThrough", True)
        _twisted.setWriteThrough(False)
        self.assertFalse(_twisted.writeThrough)
        factory = yield self.echoRoundTrips()
        for proto in factory.protocols:
            self.assertIsNone(proto.conn._socket)

    @inlineCallbacks
    def test_switchedOn(self):
        """The same with write-through on: it is used."""
        self.patch(_twisted, "writeThrough", True)
        freshChecks(self)
        factory = yield self.echoRoundTrips()
        for proto in factory.protocols:
            self.assertIsNotNone(proto.conn._socket)

    @inlineCallbacks
    def test_capabilityCheckFails(self):
        """
        A Twisted whose C{tcp.Connection} lacks something the fence reads
        (simulated): one warning, Twisted's own path, everything works.
        """
        self.patch(_twisted, "writeThrough", True)
        freshChecks(self)
        self.patch(
            _twisted,
            "TRANSPORT_INTERNALS",
            {**_twisted.TRANSPORT_INTERNALS, "_renamedInANewerTwisted": list},
        )
        warnings = WarningCatcher(self)
        factory = yield self.echoRoundTrips()
        for proto in factory.protocols:
            self.assertIsNone(proto.conn._socket)
        self.assertEqual(len(warnings.events), 1)
        self.assertIn("_renamedInANewerTwisted", warnings.events[0]["problems"])

    def test_channelCheckFails(self):
        """
        An C{HTTPChannel} without the private buffer: one warning, and the
        public line buffer is still taken.
        """
        freshChecks(self)
        warnings = WarningCatcher(self)
        channel = HTTPChannel()
        del channel._dataBuffer
        channel.makeConnection(StringTransport())
        channel.dataReceived(b"GET / HTT")  # no whole line yet: in the line buffer
        self.assertEqual(_twisted.takeUnreadBytes(channel), b"GET / HTT")
        self.assertEqual(_twisted.takeUnreadBytes(channel), b"")
        self.assertEqual(len(warnings.events), 1)

    def test_environmentVariable(self):
        """TXRATCHET_WRITE_THROUGH=0 turns it off for the process."""
        code = "import txratchet._twisted as t; print(t.writeThrough)"
        for value, expected in (("0", "False"), ("1", "True"), ("", "True")):
            env = {**os.environ, _twisted.WRITE_THROUGH_ENV: value}
            out = subprocess.run(
                [sys.executable, "-c", code],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
                cwd=str(PACKAGE.parent),
            ).stdout.strip()
            self.assertEqual(out, expected, value)


# ---------------------------------------------------------------- nobody else reads them


#: Twisted's internals the fence reads: no other module names them.
FENCED_NAMES = {"_tempDataBuffer", "_tempDataLen", "dataBuffer", "_writeDisconnected", "_dataBuffer", "TLS"}

#: Private names of other libraries read outside the fence on purpose.
ALLOWED_FOREIGN = {
    "_replace": "namedtuple's public API (urllib.parse results)",
    "_Compress": "zlib's compressor type, for annotations",
    "_Decompress": "zlib's decompressor type, for annotations",
}

#: Twisted private names a txratchet subclass overrides on purpose; each is
#: checked to still exist in Twisted (so a rename fails here).
ALLOWED_OVERRIDES = {
    ("txratchet._redis", "_ClientService", "_log"): ClientService,
}
try:
    from twisted.web._http2 import H2Connection
except ImportError:  # h2 is not installed: txratchet.http2 is not imported either
    pass
else:
    # WebSockets over HTTP/2 (txratchet.http2): where a request's stream is
    # made, and where a stream is let go (_twisted.missingH2Internals checks
    # their signatures at first use).
    ALLOWED_OVERRIDES[("txratchet.http2", "WebSocketH2Connection", "_requestReceived")] = H2Connection
    ALLOWED_OVERRIDES[("txratchet.http2", "WebSocketH2Connection", "_requestDone")] = H2Connection


def _modules() -> list[tuple[Path, ast.Module]]:
    return [
        (path, ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def _definedNames(trees: list[tuple[Path, ast.Module]]) -> set[str]:
    """Every name txratchet itself defines (attributes, functions, slots, ...)."""
    names: set[str] = set()
    for _, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.alias):
                names.add(node.asname or node.name.split(".")[-1])
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
            ):
                for const in ast.walk(node.value):
                    if isinstance(const, ast.Constant) and isinstance(const.value, str):
                        names.add(const.value)
    return names


def _reads(tree: ast.Module) -> list[tuple[int, str, str]]:
    """
    (line, name, source) for every attribute read on something other than
    self/cls, and every getattr/hasattr/setattr/delattr with a literal name.
    """
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            value = node.value
            if isinstance(value, ast.Name) and value.id in ("self", "cls"):
                continue
            found.append((node.lineno, node.attr, ast.unparse(node)))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            found.append((node.lineno, node.args[1].value, ast.unparse(node)))
    return found


def _privateNamesOf(cls: type) -> set[str]:
    """The private names C{cls}'s own body defines or assigns on self."""
    names = {n for n in vars(cls) if n.startswith("_") and not n.startswith("__")}
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return names
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            names.add(node.attr)
    return names


class NoPrivateReadsOutsideTheFenceTests(SynchronousTestCase):
    def test_noForeignPrivateAttributes(self) -> None:
        """
        Outside L{txratchet._twisted}, every C{x._name} read (x not self)
        names something txratchet defines itself: another library's
        private attribute would be read without a guard.
        """
        trees = _modules()
        defined = _definedNames(trees)
        offences = []
        for path, tree in trees:
            if path.name == "_twisted.py":
                continue
            for line, name, source in _reads(tree):
                private = name.startswith("_") and not name.startswith("__")
                if private and name not in defined and name not in ALLOWED_FOREIGN:
                    offences.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {source}")
        self.assertEqual(offences, [])

    def test_fencedNamesOnlyInTheFence(self) -> None:
        """
        The Twisted internals the fence reads are named nowhere else, not
        even through getattr.
        """
        offences = []
        for path, tree in _modules():
            if path.name == "_twisted.py":
                continue
            for line, name, source in _reads(tree):
                if name in FENCED_NAMES:
                    offences.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {source}")
        self.assertEqual(offences, [])

    def test_subclassesDoNotShadowTwistedPrivates(self) -> None:
        """
        A txratchet subclass of a Twisted class defines no private name
        that class (or its bases) uses: that would read or replace
        Twisted's internals from outside the fence.
        """
        offences = []
        seen: set[type] = set()
        for info in pkgutil.walk_packages([str(PACKAGE)], "txratchet."):
            if info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if not cls.__module__.startswith("txratchet") or cls in seen:
                    continue
                seen.add(cls)
                twisted = [b for b in cls.__mro__ if b.__module__.startswith("twisted")]
                if not twisted:
                    continue
                ours: set[str] = set()
                for base in cls.__mro__:
                    if base.__module__.startswith("txratchet"):
                        ours |= _privateNamesOf(base)
                theirs: set[str] = set()
                for base in twisted:
                    theirs |= _privateNamesOf(base)
                for name in sorted(ours & theirs):
                    if (cls.__module__, cls.__name__, name) not in ALLOWED_OVERRIDES:
                        offences.append(f"{cls.__module__}.{cls.__name__}.{name}")
        self.assertEqual(offences, [])

    def test_allowedOverridesStillExist(self) -> None:
        for (_, _, name), base in ALLOWED_OVERRIDES.items():
            self.assertIn(name, _privateNamesOf(base), f"{base.__qualname__} has no {name} any more")
