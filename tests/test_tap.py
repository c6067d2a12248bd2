"""
The twistd options reach the WebSocket layer (the plugin itself is run as a
subprocess in test_twistd).
"""

from __future__ import annotations

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from txratchet.tap import Options, makeService


def layerOf(service):
    for child in service:
        factory = getattr(child, "factory", None)
        if factory is not None:
            return factory.app
    raise AssertionError("no server in the service")


def parsed(args):
    options = Options()
    options.parseOptions(args)
    return options


class OptionsTests(SynchronousTestCase):
    def test_limitsAndTimeouts(self):
        options = Options()
        options.parseOptions([
            "--app", "examples.echo.Echo",
            "--port", "tcp:0:interface=127.0.0.1",
            "--max-message-size", "1000", "--max-frame-size", "500",
            "--max-handshake-size", "4096", "--max-headers", "20",
            "--handshake-timeout", "2", "--close-timeout", "3",
            "--ping-interval", "15", "--ping-timeout", "5", "--idle-timeout", "60",
            "--max-send-buffer", "65536", "--send-buffer-policy", "drop",
            "--subprotocols", "a, b",
            "--compression-level", "1", "--compression-window-bits", "10",
            "--compression-min-size", "100", "--compression-takeover-limit", "50",
        ])
        layer = layerOf(makeService(options))
        self.assertEqual(
            (layer.maxMessageSize, layer.maxFrameSize, layer.maxHandshakeSize, layer.maxHeaders),
            (1000, 500, 4096, 20),
        )
        self.assertEqual(
            (layer.handshakeTimeout, layer.closeTimeout, layer.pingInterval,
             layer.pingTimeout, layer.idleTimeout),
            (2.0, 3.0, 15.0, 5.0, 60.0),
        )
        self.assertEqual((layer.maxSendBuffer, layer.sendBufferPolicy), (65536, "drop"))
        self.assertEqual(layer.subprotocols, ("a", "b"))
        self.assertEqual(type(layer.app).__name__, "Echo")
        self.assertEqual(
            (layer.compression.level, layer.compression.serverMaxWindowBits,
             layer.compression.minSize, layer.compressionContextTakeoverLimit),
            (1, 10, 100, 50),
        )

    def test_noCompression(self):
        options = Options()
        options.parseOptions(["--no-compression"])
        self.assertIsNone(layerOf(makeService(options)).compression)

    def test_defaults(self):
        options = Options()
        options.parseOptions([])
        layer = layerOf(makeService(options))
        self.assertEqual(layer.maxMessageSize, 16 * 1024 * 1024)
        self.assertIsNone(layer.pingInterval)
        self.assertEqual(type(layer.app.app).__name__, "DemoChat")

    def test_badValues(self):
        for args in (
            ["--max-message-size", "0"],
            ["--send-buffer-policy", "explode"],
            ["--compression-window-bits", "16"],
        ):
            self.assertRaises(usage.UsageError, Options().parseOptions, args)

    def test_everyOptionHasItsTwin(self):
        """
        The README: every C{WebSocket} option has a C{twistd txratchet}
        twin, named in kebab case, but C{httpHandler} (C{--web-root}
        instead), C{compression} (C{--no-compression} and the
        C{--compression-*} options) and the test clock.
        """
        import inspect
        import re

        from txratchet import WebSocket
        from txratchet.wsbase import LayerOptions

        names = set(LayerOptions.__annotations__)
        names |= {
            n for n, p in inspect.signature(WebSocket).parameters.items()
            if p.kind is p.KEYWORD_ONLY
        }
        names -= {"httpHandler", "compression", "clock"}
        twins = {p[0] for p in Options.optParameters} | {f[0] for f in Options.optFlags}
        shorter = {
            "trustedProxies": "trusted-proxy",
            "compressionContextTakeoverLimit": "compression-takeover-limit",
        }
        missing = [
            n for n in sorted(names)
            if shorter.get(n, re.sub("([A-Z])", r"-\1", n).lower()) not in twins
        ]
        self.assertEqual(missing, [])

    def test_families(self):
        """
        Issue 14: C{families} has its twin, C{--families}, checked by name
        (a misspelt family would refuse its clients with 426 silently).
        """
        from txratchet.websocket.protocol import ALL_FAMILIES

        self.assertEqual(layerOf(makeService(parsed([]))).families, ALL_FAMILIES)
        options = parsed(["--app", "examples.echo.Echo", "--families", "rfc6455, HYBI-08,rfc6455"])
        self.assertEqual(layerOf(makeService(options)).families, ("rfc6455", "hybi-08"))
        for value, message in (
            ("rfc6455,hybi-10", "unknown 'hybi-10'; give one or more of rfc6455,hybi-08,hybi-07,hixie-76"),
            (",", "give one or more of"),
        ):
            with self.assertRaises(usage.UsageError) as raised:
                Options().parseOptions(["--families", value])
            self.assertIn(message, str(raised.exception))


class GracefulShutdownTests(SynchronousTestCase):
    def test_backplaneClosedAfterTheConnections(self):
        """
        The backplane is closed on purpose once every connection is closed
        (their onClose may still publish), before the reactor would drop
        its connection (issue 12, item 26).
        """
        from twisted.internet.defer import Deferred

        from txratchet.tap import GracefulShutdown

        order = []
        closing = Deferred()

        class Layer:
            def shutdown(self):
                order.append("connections")
                return closing

        class Backplane:
            def close(self):
                order.append("backplane")

        service = GracefulShutdown([Layer()], Backplane())
        service.startService()
        stopped = service.stopService()
        self.assertEqual(order, ["connections"])
        closing.callback(None)
        self.assertEqual(order, ["connections", "backplane"])
        self.successResultOf(stopped)


class DaemonWorkersTests(SynchronousTestCase):
    def test_workersInDaemonMode(self) -> None:
        """
        C{twistd txratchet --workers 2} without C{-n} (daemon mode) builds
        its worker pool (which is not a MultiService) instead of failing
        with a TypeError.
        """
        import sys

        from txratchet.tap import makeTwistdService
        from txratchet.workers import WorkerPool

        options = Options()
        options.parseOptions(
            ["--app", "examples.echo.Echo", "--workers", "2", "--port", "tcp:0:interface=127.0.0.1"]
        )
        options.parent = {"nodaemon": False}  # type: ignore[attr-defined]
        self.addCleanup(setattr, sys, "excepthook", sys.excepthook)
        service = makeTwistdService(options)
        self.assertIsInstance(service, WorkerPool)
        for each in service.sockets:  # type: ignore[attr-defined]
            for sock in each:
                sock.close()

    def test_workersOnPortZeroShareOnePort(self) -> None:
        """
        C{--port tcp:0 --workers 3}: every worker's socket is bound to the
        one port the first one got (each got its own random port before).
        """
        import sys

        from txratchet.tap import makeTwistdService

        options = Options()
        options.parseOptions(
            ["--app", "examples.echo.Echo", "--workers", "3", "--port", "tcp:0:interface=127.0.0.1"]
        )
        self.addCleanup(setattr, sys, "excepthook", sys.excepthook)
        service = makeTwistdService(options)
        ports = set()
        for each in service.sockets:  # type: ignore[attr-defined]
            for sock in each:
                ports.add(sock.getsockname()[1])
                self.addCleanup(sock.close)
        self.assertEqual(len(ports), 1)
        self.assertNotIn(0, ports)
