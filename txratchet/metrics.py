"""
Prometheus metrics of txratchet layers, with C{prometheus_client} (the
C{txratchet[metrics]} extra).

Layers count with plain integers as they work (L{txratchet.stats}); a
L{TxratchetCollector} reads them only when Prometheus scrapes, so serving
metrics costs the message paths nothing. Without twistd::

    from txratchet.metrics import metricsSite, register

    layer = WebSocket(Chat())
    register(layer)                      # into prometheus_client.REGISTRY
    endpoints.serverFromString(reactor, "tcp:9100:interface=127.0.0.1").listen(metricsSite())

C{twistd txratchet --metrics tcp:9100} does the same for its layers. With
C{--workers}, the master serves one endpoint: it asks each worker (over a
private UNIX socket) and labels what each answered with C{worker="I"}
(L{WorkerMetricsResource}).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from twisted.internet import protocol
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from txratchet.stats import LayerStats

log = Logger()


class HasStats(Protocol):
    """
    A layer that counts: L{txratchet.WebSocket},
    L{txratchet.client.WebSocketClient}, L{txratchet.LineProtocol}.
    """

    stats: LayerStats


def _families() -> dict[str, CounterMetricFamily | GaugeMetricFamily]:
    """
    Every family the collector exports, empty.
    """
    return {
        "open": GaugeMetricFamily(
            "txratchet_open_connections",
            "Connections open now (WebSocket after the handshake; line), by protocol family.",
            labels=["family"],
        ),
        "opened": CounterMetricFamily(
            "txratchet_connections_opened",
            "Connections that opened, by protocol family.",
            labels=["family"],
        ),
        "handshakes": CounterMetricFamily(
            "txratchet_handshakes",
            "Opening handshakes by outcome (accepted, refused, http: a plain request the "
            "httpHandler answered; failed: a client's) and HTTP status.",
            labels=["outcome", "status"],
        ),
        "messagesIn": CounterMetricFamily(
            "txratchet_messages_received",
            "Messages received (WebSocket messages, lines), by protocol family.",
            labels=["family"],
        ),
        "messagesOut": CounterMetricFamily(
            "txratchet_messages_sent",
            "Messages sent (a broadcast counts once per receiver), by protocol family.",
            labels=["family"],
        ),
        "bytesIn": CounterMetricFamily(
            "txratchet_received_bytes",
            "Bytes received once open (every frame; every line), by protocol family.",
            labels=["family"],
        ),
        "bytesOut": CounterMetricFamily(
            "txratchet_sent_bytes",
            "Bytes written to peers (every frame, from a server's 101 answer on; every line), "
            "by protocol family.",
            labels=["family"],
        ),
        "closes": CounterMetricFamily(
            "txratchet_closes",
            "Connections closed, by protocol family and close code (1006: dropped without "
            "a close frame; none: a line peer that left).",
            labels=["family", "code"],
        ),
        "sendBuffer": CounterMetricFamily(
            "txratchet_send_buffer_actions",
            "What the send-buffer policy did to a peer that stopped reading: close (the "
            "peer), drop (one message), keep (a callable policy let one through).",
            labels=["action"],
        ),
        "incomplete": GaugeMetricFamily(
            "txratchet_incomplete_message_bytes",
            "Bytes that WebSocket messages still arriving hold (see maxIncompleteBytes).",
        ),
        "backplane": GaugeMetricFamily(
            "txratchet_backplane_connected",
            "Is the backplane connected (1) or not (0)? Only with a backplane.",
        ),
    }


class TxratchetCollector(Collector):
    """
    A C{prometheus_client} collector of what C{layers} counted (summed
    over the layers), and of C{backplane}'s connection: read when scraped,
    never on the message paths.

    @ivar layers: the layers read (L{add} more).
    @ivar backplane: a backplane with a C{connected} attribute
        (L{txratchet.backplane.RedisBackplane}), or C{None}.
    """

    def __init__(self, layers: Iterable[HasStats] = (), backplane: object = None) -> None:
        self.layers = list(layers)
        self.backplane = backplane

    def add(self, layer: HasStats) -> None:
        """
        Read C{layer} too.
        """
        self.layers.append(layer)

    def describe(self) -> Iterable[Metric]:
        """
        The families, without samples (what C{registry.register} checks).
        """
        families = _families()
        if self.backplane is None:
            del families["backplane"]
        return list(families.values())

    def collect(self) -> Iterable[Metric]:
        f = _families()
        openNow: dict[str, int] = {}
        sums: dict[str, dict[str, int]] = {
            name: {} for name in ("opened", "messagesIn", "messagesOut", "bytesIn", "bytesOut")
        }
        closes: dict[tuple[str, str], int] = {}
        handshakes: dict[tuple[str, str], int] = {}
        sendBuffer: dict[str, int] = {}
        incomplete = 0
        for layer in self.layers:
            stats = layer.stats
            for family, each in list(stats.families.items()):
                openNow[family] = openNow.get(family, 0) + each.opened - each.closed
                for name, into in sums.items():
                    into[family] = into.get(family, 0) + getattr(each, name)
                for code, count in list(each.closeCodes.items()):
                    key = (family, "none" if code is None else str(code))
                    closes[key] = closes.get(key, 0) + count
            for (outcome, status), count in list(stats.handshakes.items()):
                hkey = (outcome, str(status))
                handshakes[hkey] = handshakes.get(hkey, 0) + count
            for action, count in list(stats.sendBuffer.items()):
                sendBuffer[action] = sendBuffer.get(action, 0) + count
            incomplete += getattr(layer, "incompleteBytes", 0)  # WebSocket layers only
        for family, value in openNow.items():
            f["open"].add_metric([family], value)
        for name, into in sums.items():
            for family, value in into.items():
                f[name].add_metric([family], value)
        for labels, value in closes.items():
            f["closes"].add_metric(list(labels), value)
        for labels, value in handshakes.items():
            f["handshakes"].add_metric(list(labels), value)
        for action, value in sendBuffer.items():
            f["sendBuffer"].add_metric([action], value)
        f["incomplete"].add_metric([], incomplete)
        if self.backplane is None:
            del f["backplane"]
        else:
            f["backplane"].add_metric([], 1 if getattr(self.backplane, "connected", True) else 0)
        return list(f.values())


def register(
    *layers: HasStats, backplane: object = None, registry: CollectorRegistry = REGISTRY
) -> TxratchetCollector:
    """
    Export what C{layers} count (and whether C{backplane} is connected)
    from C{registry} (C{prometheus_client}'s default one, which
    L{metricsSite} serves, alongside the process metrics and your own).

    @return: the collector (L{TxratchetCollector.add} adds layers later).
    """
    collector = TxratchetCollector(layers, backplane)
    registry.register(collector)
    return collector


class MetricsResource(Resource):
    """
    C{registry} in the Prometheus text format (or OpenMetrics, when the
    scraper asks for it), rendered at once in the reactor thread: reading
    the counters takes microseconds per layer.
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        encoder, contentType = choose_encoder(_accept(request))
        request.setHeader(b"Content-Type", contentType.encode("ascii"))
        return encoder(self.registry)


def _accept(request: Request) -> str:
    accept = request.getHeader(b"Accept")
    return accept.decode("latin-1") if isinstance(accept, bytes) else accept or ""


def metricsSite(resource: Resource | None = None) -> Site:
    """
    A C{twisted.web} site serving C{resource} (by default the default
    registry's L{MetricsResource}) at C{/metrics}; listen on it with any
    endpoint.
    """
    root = Resource()
    root.putChild(b"metrics", resource if resource is not None else MetricsResource())
    site = MetricsSite(root)
    site.displayTracebacks = False
    return site


class MetricsSite(Site):
    """
    A site that does not log every scrape (one line every 15 s).
    """

    noisy = False

    def log(self, request: http.Request) -> None:
        pass


def mergeWorkers(answers: Mapping[int, str | None]) -> list[Metric]:
    """
    The metrics of several workers as one set: each worker's text
    (C{None}: it did not answer) parsed, its samples labelled
    C{worker="I"}; plus C{txratchet_worker_up{worker="I"}}.
    """
    merged: dict[str, Metric] = {}
    up = GaugeMetricFamily(
        "txratchet_worker_up",
        "Did the worker answer this scrape (1) or not (0)?",
        labels=["worker"],
    )
    for index, text in sorted(answers.items()):
        up.add_metric([str(index)], 0 if text is None else 1)
        if text is None:
            continue
        for family in text_string_to_metric_families(text):
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            for sample in family.samples:
                into.add_sample(
                    sample.name, {**sample.labels, "worker": str(index)}, sample.value
                )
    return [up, *merged.values()]


class _Merged(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics


class WorkerMetricsResource(Resource):
    """
    The C{--workers} master's C{/metrics}: on each scrape it asks every
    worker for its own (over HTTP, on the endpoint C{endpoints()} gives
    for its index) and answers with all of them, each worker's samples
    labelled C{worker="I"} (L{mergeWorkers}). A worker that does not
    answer within C{timeout} seconds is left out (its
    C{txratchet_worker_up} is 0).
    """

    isLeaf = True

    def __init__(
        self,
        endpoints: Callable[[], Mapping[int, IStreamClientEndpoint]],
        reactor: IReactorTime,
        timeout: float = 5.0,
    ) -> None:
        super().__init__()
        self.endpoints = endpoints
        self.reactor = reactor
        self.timeout = timeout
        # Workers whose last scrape failed (logged once, not every scrape).
        self._silent: set[int] = set()

    def render_GET(self, request: Request) -> int:
        endpoints = self.endpoints()
        indexes = list(endpoints)
        gathered = gatherResults([self._ask(index, endpoints[index]) for index in indexes])
        gone: list[object] = []
        request.notifyFinish().addBoth(gone.append)  # the scraper may leave first

        def answer(texts: list[str | None]) -> None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_Merged(mergeWorkers(dict(zip(indexes, texts, strict=True)))))
            encoder, contentType = choose_encoder(_accept(request))
            if not gone:
                request.setHeader(b"Content-Type", contentType.encode("ascii"))
                request.write(encoder(registry))
                request.finish()

        def failed(failure: Failure) -> None:
            log.failure("Merging the workers' metrics failed", failure)
            if not gone:
                request.setResponseCode(500)
                request.finish()

        gathered.addCallback(answer).addErrback(failed)
        return NOT_DONE_YET

    def _ask(self, index: int, endpoint: IStreamClientEndpoint) -> Deferred[str | None]:
        fetch = _Fetch()
        connected = endpoint.connect(_FetchFactory(fetch))
        body: Deferred[bytes] = connected.addCallback(lambda _: fetch.done)
        body.addTimeout(self.timeout, self.reactor)  # type: ignore[arg-type]

        def answered(response: bytes) -> str:
            text = _body(response)
            list(text_string_to_metric_families(text))  # a bad answer is no answer
            self._silent.discard(index)
            return text

        def missing(failure: Failure) -> None:
            if index not in self._silent:
                self._silent.add(index)
                log.info(
                    "txratchet: worker {index} did not give its metrics: {why}",
                    index=index, why=failure.getErrorMessage(),
                )
            return None

        return body.addCallback(answered).addErrback(missing)


#: The most a worker's answer may hold.
MAX_WORKER_ANSWER = 64 * 1024 * 1024


def _body(response: bytes) -> str:
    """
    The body of an HTTP/1.0 C{200} response (else C{ValueError}).
    """
    head, _, body = response.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split(b" ")
    if len(status) < 2 or status[1] != b"200":
        raise ValueError(f"answered {head[:60]!r}")
    return body.decode("utf-8")


class _Fetch(protocol.Protocol):
    """
    C{GET /metrics} over HTTP/1.0: the answer is everything until the
    worker closes the connection (L{done} fires with it).
    """

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.done: Deferred[bytes] = Deferred(self._cancel)

    def _cancel(self, _: object) -> None:
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def connectionMade(self) -> None:
        self.transport.write(b"GET /metrics HTTP/1.0\r\nHost: worker\r\n\r\n")  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > MAX_WORKER_ANSWER:
            self.chunks = []
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        if not self.done.called:
            self.done.callback(b"".join(self.chunks))


class _FetchFactory(protocol.Factory):
    noisy = False  # one fetch per worker per scrape: no "Starting factory" lines

    def __init__(self, fetch: _Fetch) -> None:
        self.fetch = fetch

    def buildProtocol(self, addr: object) -> _Fetch:
        return self.fetch


__all__ = [
    "MetricsResource",
    "TxratchetCollector",
    "WorkerMetricsResource",
    "mergeWorkers",
    "metricsSite",
    "register",
]
