"""
Seeing a running server (issue 14, part 5): what layers count
(txratchet.stats), the connection log, and the Prometheus metrics
(txratchet.metrics) scraped over HTTP and parsed with
prometheus_client.parser, in-process and under twistd (with --workers).
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests import rawclients, test_glue, test_twistd
from tests.services import RedisServer
from tests.test_glue import Recorder, advance, closeFrame, frame, lost, upgradeRequest
from tests.test_twistd import HOST, freePort, waitForPort
from txratchet import Application, LineProtocol, Server, WebSocket
from txratchet.backplane import RedisBackplane
from txratchet.components import OriginCheck
from txratchet.metrics import (
    MetricsResource,
    TxratchetCollector,
    mergeWorkers,
    metricsSite,
    register,
)
from txratchet.stats import formatPeer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape: {(name, labels): value}."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when it is not there (a counter never moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(port: int) -> Samples:
    """(Blocking) GET /metrics over HTTP and parse it."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return parse(response.read().decode("utf-8"))


def scrapeUntil(port: int, condition: Any, seconds: float = 10.0) -> Samples:
    """(Blocking) scrape until C{condition(samples)} holds (what the server
    counts once the peer is gone can lag the client by a moment)."""
    deadline = time.monotonic() + seconds
    samples = scrape(port)
    while not condition(samples):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met; last scrape: {sorted(samples.items())}")
        time.sleep(0.05)
        samples = scrape(port)
    return samples


def captureLog(case: Any) -> list[dict[str, Any]]:
    """The events of the txratchet.connections namespace from now on."""
    events: list[dict[str, Any]] = []

    def observer(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "txratchet.connections":
            events.append(event)

    globalLogPublisher.addObserver(observer)
    case.addCleanup(globalLogPublisher.removeObserver, observer)
    return events


class Echo(Application):
    def onMessage(self, conn: Any, message: str | bytes) -> None:
        conn.send(message)


# -- What a layer counts, in memory --------------------------------------------------


# (Test case classes of other modules by module: pytest would run those here too.)
class StatsTests(test_glue.ServerCase):
    """
    The counters the hot paths add to, over an in-memory transport.
    """

    def test_conversation(self) -> None:
        """
        Opened, messages and bytes both ways (wire bytes: the frames read
        once open; what was written from the 101 answer on), the close
        code.
        """
        self.serve()
        proto, transport = self.connect()
        proto.dataReceived(upgradeRequest())
        hello, binary = frame(1, b"hello"), frame(2, b"\x00\x01")
        proto.dataReceived(hello + binary)
        proto.dataReceived(closeFrame(1000))
        sent = transport.take()
        lost(proto)
        stats = self.layer.stats.families["rfc6455"]
        self.assertEqual((stats.opened, stats.closed), (1, 1))
        self.assertEqual((stats.messagesIn, stats.messagesOut), (2, 2))
        self.assertEqual(stats.bytesIn, len(hello) + len(binary) + len(closeFrame(1000)))
        self.assertEqual(stats.bytesOut, len(sent))
        self.assertEqual(stats.closeCodes, {1000: 1})
        self.assertEqual(self.layer.stats.handshakes, {("accepted", 101): 1})

    def test_refusedAndDropped(self) -> None:
        """
        A refused handshake counts by status, never as opened; a peer that
        drops counts as 1006.
        """
        self.serve(families=["rfc6455"])
        proto, _transport = self.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # no upgrade: 400
        lost(proto)
        proto, _, _ = self.opened()
        lost(proto)
        stats = self.layer.stats
        self.assertEqual(stats.handshakes, {("refused", 400): 1, ("accepted", 101): 1})
        self.assertEqual(stats.families["rfc6455"].opened, 1)
        self.assertEqual(stats.families["rfc6455"].closeCodes, {1006: 1})

    def test_sendBufferActions(self) -> None:
        """
        What the send-buffer policy did, by action.
        """
        for policy, sends, expected in [
            ("drop", ["x", "y"], {"drop": 2}),
            ("close", ["x", "y"], {"close": 1}),
            (lambda conn, message: message == "x", ["x", "y"], {"drop": 1, "keep": 1}),
        ]:
            self.serve(maxSendBuffer=100, sendBufferPolicy=policy)
            _, transport, conn = self.opened()
            transport.producer.pauseProducing()  # the peer stopped reading
            conn.send(b"a" * 150)
            for message in sends:
                conn.send(message)
            self.assertEqual(self.layer.stats.sendBuffer, expected, policy)

    def test_connectionLog(self) -> None:
        """
        One line when a connection opens (peer, family, path: never the
        query) and one when it closes (code, duration), at the level asked.
        """
        events = captureLog(self)
        self.serve(logConnections=LogLevel.warn)
        proto, _, _ = self.opened(
            b"GET /chat?token=secret HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        advance(self.clock, 2.5)
        proto.dataReceived(closeFrame(1001))
        lost(proto)
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                "connection opened: peer=192.168.1.1:54321 family=rfc6455 path=/chat",
                "connection closed: peer=192.168.1.1:54321 family=rfc6455 path=/chat "
                "code=1001 duration=2.500s",
            ],
        )
        self.assertEqual({e["log_level"] for e in events}, {LogLevel.warn})
        self.assertEqual(events[1]["code"], 1001)
        self.assertEqual(events[1]["duration"], 2.5)
        self.assertNotIn("secret", repr(events))

    def test_notLoggedByDefault(self) -> None:
        events = captureLog(self)
        self.serve()
        proto, _, _ = self.opened()
        lost(proto)
        self.assertEqual(events, [])

    def test_levelChecked(self) -> None:
        """
        A level is a LogLevel (a string would be silently useless).
        """
        self.assertRaises(TypeError, WebSocket, Recorder(), logConnections="info")
        self.assertRaises(TypeError, LineProtocol, Recorder(), logConnections="info")


class FormatPeerTests(SynchronousTestCase):
    def test_addresses(self) -> None:
        self.assertEqual(formatPeer(IPv4Address("TCP", "10.0.0.1", 5000)), "10.0.0.1:5000")
        self.assertEqual(formatPeer(IPv6Address("TCP", "::1", 5000)), "[::1]:5000")
        # A client a trusted proxy named: the port is unknown.
        self.assertEqual(formatPeer(IPv4Address("TCP", "10.0.0.1", 0)), "10.0.0.1")
        self.assertEqual(formatPeer(UNIXAddress(b"/run/ws.sock")), "unix:/run/ws.sock")
        self.assertEqual(formatPeer(UNIXAddress(None)), "unix")


class MergeWorkersTests(SynchronousTestCase):
    """
    The --workers master's view: each worker's samples labelled.
    """

    def test_merge(self) -> None:
        registry = CollectorRegistry()
        layer = WebSocket(Recorder())
        layer.stats.family("rfc6455").opened = 3
        register(layer, registry=registry)
        from prometheus_client import generate_latest

        text = generate_latest(registry).decode("utf-8")
        merged = CollectorRegistry(auto_describe=False)

        class Merged:
            def collect(self) -> Any:
                return mergeWorkers({0: text, 1: text, 2: None})

        merged.register(Merged())  # type: ignore[arg-type]
        samples = parse(generate_latest(merged).decode("utf-8"))
        for worker in ("0", "1"):
            self.assertEqual(
                value(samples, "txratchet_connections_opened_total", family="rfc6455", worker=worker),
                3,
            )
            self.assertEqual(value(samples, "txratchet_worker_up", worker=worker), 1)
        self.assertEqual(samples[("txratchet_worker_up", frozenset({("worker", "2")}))], 0)


# -- Scraped over HTTP, in-process ---------------------------------------------------


class ScrapeTests(TestCase):
    """
    Real servers on loopback (a WebSocket port behind OriginCheck, a line
    port), independent clients, /metrics scraped over HTTP.
    """

    timeout = 60

    def listen(self, factory: Any, interface: str = HOST) -> int:
        port = reactor.listenTCP(0, factory, interface=interface)  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        return int(port.getHost().port)

    def test_valuesMove(self):
        app = Echo()
        ws = WebSocket(OriginCheck(app, ["http://good.example"]))
        lines = LineProtocol(app)
        registry = CollectorRegistry()
        register(ws, lines, registry=registry)
        wsPort = self.listen(Server(ws))
        linePort = self.listen(Server(lines))
        metricsPort = self.listen(metricsSite(MetricsResource(registry)))

        def dropLeftovers() -> None:
            for lower in [*ws.connectionsByLower, *lines._connections]:
                lower.abort()

        self.addCleanup(dropLeftovers)

        def talk() -> dict[str, Any]:
            seen = {"start": scrape(metricsPort)}
            a = rawclients.HybiClient(HOST, wsPort, path="/chat", origin="http://good.example")
            a.connect()
            seen["answer"] = len(a.response_head)
            a.send_text("hello")
            assert a.recv_text() == "hello"
            h = rawclients.Hixie76Client(HOST, wsPort, origin="http://good.example")
            h.connect()
            h.send_text("hixie")
            assert h.recv_message() == "hixie"
            seen["open"] = scrape(metricsPort)
            evil = rawclients.HybiClient(HOST, wsPort, origin="http://evil.example")
            try:
                evil.connect()
            except rawclients.HandshakeError:
                pass
            evil._close_socket()
            a.close(1000)
            a._close_socket()
            h._close_socket()  # dropped, no closing frame
            with socket.create_connection((HOST, linePort), timeout=5) as s:
                s.sendall(b"a line\n")
                assert s.recv(100) == b"a line\n"
            seen["end"] = scrapeUntil(
                metricsPort,
                lambda m: value(m, "txratchet_closes_total", family="line", code="none") == 1
                and value(m, "txratchet_open_connections", family="hixie-76") == 0
                and value(m, "txratchet_open_connections", family="rfc6455") == 0,
            )
            return seen

        def check(seen: dict[str, Any]) -> None:
            start, open_, end = seen["start"], seen["open"], seen["end"]
            self.assertEqual(value(start, "txratchet_open_connections", family="rfc6455"), 0)
            self.assertEqual(value(start, "txratchet_incomplete_message_bytes"), 0)
            self.assertEqual(value(open_, "txratchet_open_connections", family="rfc6455"), 1)
            self.assertEqual(value(open_, "txratchet_open_connections", family="hixie-76"), 1)
            self.assertEqual(
                value(open_, "txratchet_handshakes_total", outcome="accepted", status="101"), 2
            )
            for family in ("rfc6455", "hixie-76"):
                self.assertEqual(value(open_, "txratchet_messages_received_total", family=family), 1)
                self.assertEqual(value(open_, "txratchet_messages_sent_total", family=family), 1)
            # "hello" masked (2 + 4 + 5 bytes) in; the 101 answer and the
            # echo unmasked (2 + 5) out.
            self.assertEqual(value(open_, "txratchet_received_bytes_total", family="rfc6455"), 11)
            self.assertEqual(
                value(open_, "txratchet_sent_bytes_total", family="rfc6455"), seen["answer"] + 7
            )
            self.assertEqual(
                value(end, "txratchet_handshakes_total", outcome="refused", status="403"), 1
            )
            self.assertEqual(value(end, "txratchet_closes_total", family="rfc6455", code="1000"), 1)
            self.assertEqual(value(end, "txratchet_closes_total", family="hixie-76", code="1006"), 1)
            self.assertEqual(value(end, "txratchet_connections_opened_total", family="rfc6455"), 1)
            self.assertEqual(value(end, "txratchet_messages_received_total", family="line"), 1)
            self.assertEqual(value(end, "txratchet_sent_bytes_total", family="line"), 7)  # "a line\n"
            self.assertEqual(value(end, "txratchet_open_connections", family="line"), 0)
            self.assertNotIn(("txratchet_backplane_connected", frozenset()), end)

        return deferToThread(talk).addCallback(check)

    def test_connectionLogIPv6(self):
        """
        Over IPv6 the peer is [host]:port; the line protocol logs too.
        """
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError:
            raise self.skipTest("no IPv6 loopback") from None
        events = captureLog(self)
        app = Echo()
        wsPort = self.listen(Server(WebSocket(app, logConnections=LogLevel.info)), "::1")
        linePort = self.listen(Server(LineProtocol(app, logConnections=LogLevel.info)), "::1")

        def talk() -> int:
            c = rawclients.HybiClient("::1", wsPort, path="/room")
            c.connect()
            local = c.sock.getsockname()[1]
            c.close(4000)
            c._close_socket()
            with socket.create_connection(("::1", linePort), timeout=5) as s:
                s.sendall(b"x\n")
                s.recv(10)
            deadline = time.monotonic() + 10
            while len(events) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            return local

        def check(local: int) -> None:
            texts = [formatEvent(e) for e in events]
            self.assertEqual(len(texts), 4, texts)
            self.assertEqual(
                texts[0], f"connection opened: peer=[::1]:{local} family=rfc6455 path=/room"
            )
            self.assertRegex(
                texts[1],
                rf"^connection closed: peer=\[::1\]:{local} family=rfc6455 path=/room "
                r"code=4000 duration=\d+\.\d{3}s$",
            )
            self.assertRegex(texts[2], r"^connection opened: peer=\[::1\]:\d+ family=line path=-$")
            self.assertRegex(texts[3], r"^connection closed: .* family=line path=- code=none ")

        return deferToThread(talk).addCallback(check)


class BackplaneGaugeTests(TestCase):
    """
    txratchet_backplane_connected follows a real Redis going away.
    """

    timeout = 60

    @inlineCallbacks
    def test_connected(self):
        workdir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, workdir, True)
        redis = RedisServer(workdir)
        redis.start()
        self.addCleanup(redis.stop)
        plane = RedisBackplane(HOST, redis.port)
        self.addCleanup(plane.close)
        collector = TxratchetCollector([], backplane=plane)

        def gauge() -> float:
            (family,) = [f for f in collector.collect() if f.name == "txratchet_backplane_connected"]
            return family.samples[0].value

        for expected in (1, 0):
            deadline = time.monotonic() + 10
            while gauge() != expected:
                self.assertLess(time.monotonic(), deadline, f"never {expected}")
                yield deferLater(reactor, 0.05, lambda: None)
            if expected:
                yield deferToThread(redis.stop)


# -- Under twistd -------------------------------------------------------------------


class TwistdMetricsTests(test_twistd.TwistdTestCase):
    timeout = 90

    def test_metricsAndConnectionLog(self):
        """
        --metrics (loopback by default) and --log-connections: a refused
        origin, a conversation, its close, each seen in the scrape and
        the log.
        """
        port, metrics = freePort(), freePort()
        proc = self.startTwistd(
            "--app", "examples.echo.Echo", "--port", f"tcp:{port}:interface={HOST}",
            "--origin", "http://good.example", "--log-connections", "info",
            "--metrics", f"tcp:{metrics}",
        )

        def talk() -> tuple[Samples, Samples, int, str]:
            waitForPort(metrics, proc)
            waitForPort(port, proc)
            evil = rawclients.HybiClient(HOST, port, origin="http://evil.example")
            try:
                evil.connect()
            except rawclients.HandshakeError:
                pass
            evil._close_socket()
            c = rawclients.HybiClient(HOST, port, path="/echo", origin="http://good.example")
            c.connect()
            local = c.sock.getsockname()[1]
            c.send_text("hello")
            assert c.recv_text() == "hello"
            during = scrape(metrics)
            c.close(1000)
            c._close_socket()
            after = scrapeUntil(
                metrics, lambda m: value(m, "txratchet_closes_total", family="rfc6455", code="1000")
            )
            proc.terminate()
            proc.wait(30)
            return during, after, local, proc.stdout.read()

        def check(result: tuple[Samples, Samples, int, str]) -> None:
            during, after, local, output = result
            self.assertEqual(value(during, "txratchet_open_connections", family="rfc6455"), 1)
            self.assertEqual(value(during, "txratchet_messages_received_total", family="rfc6455"), 1)
            self.assertEqual(
                value(during, "txratchet_handshakes_total", outcome="refused", status="403"), 1
            )
            self.assertEqual(value(after, "txratchet_open_connections", family="rfc6455"), 0)
            self.assertEqual(value(after, "txratchet_closes_total", family="rfc6455", code="1000"), 1)
            # prometheus_client's default registry: the process metrics too.
            self.assertGreater(value(after, "process_resident_memory_bytes"), 0)
            self.assertIn(f"metrics at tcp:{metrics}:interface=127.0.0.1 /metrics", output)
            self.assertIn(
                f"[txratchet.connections#info] connection opened: peer=127.0.0.1:{local} "
                "family=rfc6455 path=/echo", output,
            )
            self.assertRegex(
                output,
                rf"\[txratchet.connections#info\] connection closed: peer=127.0.0.1:{local} "
                r"family=rfc6455 path=/echo code=1000 duration=\d+\.\d{3}s",
            )
            self.assertNotIn("GET /metrics", output)  # scrapes are not logged
            self.assertNotIn("Traceback", output)

        return deferToThread(talk).addCallback(check)

    def test_workers(self):
        """
        --workers 2: one metrics endpoint, the master's, with each worker's
        samples labelled worker="I"; each worker's log lines say which
        worker it is.
        """
        port, metrics = freePort(), freePort()
        proc = self.startTwistd(
            "--app", "examples.echo.Echo", "--workers", "2",
            "--port", f"tcp:{port}:interface={HOST}", "--close-timeout", "2",
            "--log-connections", "info", "--metrics", f"tcp:{metrics}",
        )

        def talk() -> tuple[Samples, int, str]:
            waitForPort(metrics, proc)
            waitForPort(port, proc)
            up = scrapeUntil(
                metrics,
                lambda m: value(m, "txratchet_worker_up", worker="0")
                + value(m, "txratchet_worker_up", worker="1") == 2,
                seconds=20,
            )
            assert up
            c = rawclients.HybiClient(HOST, port, path="/w")
            c.connect()
            local = c.sock.getsockname()[1]
            c.send_text("hi")
            assert c.recv_text() == "hi"
            c.close(1000)
            c._close_socket()
            after = scrapeUntil(
                metrics,
                lambda m: sum(
                    value(m, "txratchet_closes_total", family="rfc6455", code="1000", worker=w)
                    for w in ("0", "1")
                ) == 1,
            )
            proc.terminate()
            proc.wait(30)
            return after, local, proc.stdout.read()

        def check(result: tuple[Samples, int, str]) -> None:
            after, local, output = result
            opened = {
                w: value(after, "txratchet_connections_opened_total", family="rfc6455", worker=w)
                for w in ("0", "1")
            }
            self.assertEqual(sorted(opened.values()), [0, 1], opened)
            worker = next(w for w, n in opened.items() if n == 1)
            self.assertGreater(value(after, "process_resident_memory_bytes", worker=worker), 0)
            self.assertIn(
                f"[worker {worker} txratchet.connections#info] connection opened: "
                f"peer=127.0.0.1:{local} family=rfc6455 path=/w", output,
            )
            self.assertRegex(
                output,
                rf"\[worker {worker} txratchet.connections#info\] connection closed: "
                rf"peer=127.0.0.1:{local} family=rfc6455 path=/w code=1000 ",
            )
            # Every line of a worker names it (twistd's own too).
            self.assertIn("[worker 1 twisted.", output)
            self.assertNotIn("Traceback", output)
            self.assertNotIn("Starting factory", output)

        return deferToThread(talk).addCallback(check)


class MetricsMistakeTests(TestCase):
    """
    --metrics and --log-connections mistakes are one line, exit status 1.
    """

    timeout = 60
    mistake = test_twistd.CommandLineMistakeTests.mistake

    def test_noPrometheusClient(self):
        shadow = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, shadow, True)
        (shadow / "prometheus_client.py").write_text(
            "raise ModuleNotFoundError(\"No module named 'prometheus_client'\", "
            "name='prometheus_client')\n"
        )
        return self.mistake(
            ["--app", "examples.echo.Echo", "--metrics", f"tcp:{freePort()}"],
            "--metrics needs prometheus_client, which cannot be imported "
            "(No module named 'prometheus_client'): pip install 'txratchet[metrics]'",
            env={"PYTHONPATH": str(shadow)},
        )

    def test_metricsPortNumber(self):
        return self.mistake(
            ["--metrics", "9100"], "--metrics 9100 is not an endpoint string: did you mean tcp:9100?"
        )

    def test_logLevel(self):
        return self.mistake(
            ["--log-connections", "loud"],
            "--log-connections 'loud' is not a level: debug, info, warn, error or critical",
        )
