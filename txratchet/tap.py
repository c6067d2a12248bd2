"""
The C{twistd txratchet} plugin: options and service.

C{twistd -n txratchet --app mymod.Chat} serves C{mymod.Chat()} over
WebSockets on C{tcp:8080}; without C{--app} it serves the bundled chat
demo, its page and its socket on the same port.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, NoReturn, cast
from urllib.parse import urlsplit, urlunsplit

from constantly import NamedConstant
from twisted.application.service import IService, MultiService, Service
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.logger import InvalidLogLevelError, Logger, LogLevel
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.python.reflect import namedAny
from twisted.web.server import Site

from txratchet import PerMessageDeflate, WebSocket
from txratchet.backplane import IBackplane, RedisBackplane
from txratchet.components import IpBlackList, OriginCheck
from txratchet.components.origin import parsePattern
from txratchet.errors import CannotServe as CannotServe
from txratchet.interfaces import IApplication
from txratchet.line import LineProtocol
from txratchet.proxy import DEFAULT_PROXY_HEADER, parseNetworks, proxyHeaderName
from txratchet.server import Server
from txratchet.web import (
    HTTP2Server,
    SafeFile,
    WebSocketResource,
    WebSocketRouter,
    WebSocketSite,
)
from txratchet.websocket.protocol import ALL_FAMILIES
from txratchet.websocket.rfc6455 import DEFAULT_MAX_MESSAGE_SIZE

log = Logger()


class GracefulShutdown(Service):
    """
    On stop (SIGTERM, Ctrl-C), close every connection of C{layers} (1001
    Going Away for WebSockets) and let twistd wait until they are gone;
    then close C{backplane} (if there is one), deliberately, before
    the reactor drops every connection (which a Redis client would log as
    a lost connection and retry).
    """

    def __init__(
        self,
        layers: list[WebSocket | LineProtocol],
        backplane: IBackplane | None = None,
        sites: list[WebSocketSite] | None = None,
        closeTimeout: float | None = None,
    ) -> None:
        self.layers = layers
        self.backplane = backplane
        #: Sites whose HTTP/2 connections get a GOAWAY once their streams
        #: (the sockets the layers close) are done, or after closeTimeout.
        self.sites = sites if sites is not None else []
        self.closeTimeout = closeTimeout

    def stopService(self) -> Deferred[object]:
        Service.stopService(self)

        def closed(_: object) -> object:
            log.info("txratchet: every connection closed")
            backplane = self.backplane
            return maybeDeferred(backplane.close) if backplane is not None else None

        timeout = self.closeTimeout + 1 if self.closeTimeout else None
        waits: list[Deferred[Any]] = [layer.shutdown() for layer in self.layers]
        waits += [site.shutdown(timeout) for site in self.sites]
        return gatherResults(waits).addCallback(closed)


class Options(usage.Options):
    """
    Command-line options of C{twistd txratchet}.
    """

    synopsis = "[options]"
    longdesc = (
        "Serve a txratchet application (a class with onOpen, onMessage, "
        "onClose and onError) over WebSockets: Hixie-76, HyBi-07/08/10 and "
        "RFC 6455 on one port. Without --app, serves the chat demo with its "
        "page at http://localhost:8080/."
    )
    optFlags = [
        ["no-compression", None, "Never negotiate permessage-deflate."],
        ["web-listings", None, "With --web-root: list directories that have no index (404 otherwise)."],
        ["web-dotfiles", None, "With --web-root: serve names starting with '.' (404 otherwise)."],
        ["web-follow-symlinks", None, "With --web-root: serve symlinks leading outside it (404 otherwise)."],
        ["no-http2", None, "Speak only HTTP/1.1 over TLS (HTTP/2 is on over TLS when txratchet[http2] is installed)."],
    ]
    optParameters = [
        ["app", "a", None, "Dotted name of the application class, factory or instance."],
        ["port", "p", "tcp:8080", "Endpoint for WebSockets (any endpoint string; tcp/ssl get backlog=1024 unless given)."],
        ["line-port", None, None, "Also serve the same application instance over a line protocol on this endpoint."],
        ["max-message-size", None, DEFAULT_MAX_MESSAGE_SIZE, "Largest message accepted, in bytes (1009 beyond).", int],
        ["max-frame-size", None, None, "Largest data frame payload accepted, in bytes (default: the message limit).", int],
        ["max-handshake-size", None, 16384, "Largest opening-handshake request head, in bytes (431 beyond).", int],
        ["max-headers", None, 100, "Most header fields in a handshake request (431 beyond).", int],
        ["handshake-timeout", None, 10.0, "Seconds a client has to finish its opening handshake (408).", float],
        ["max-incomplete-bytes", None, None, "Bytes that messages still arriving may hold, all connections together (1013 beyond; default 64 MiB or the message limit).", int],
        ["message-timeout", None, 60.0, "Seconds a message may take to arrive from its first read to its last (1008 beyond; 0: no limit).", float],
        ["close-timeout", None, 5.0, "Seconds a closing connection (WebSocket or line) has to end before it is aborted; also bounds shutdown.", float],
        ["ping-interval", None, None, "Send a keepalive ping after this many seconds of silence.", float],
        ["ping-timeout", None, None, "Close (1011) a peer silent this long after a keepalive ping (default: the interval).", float],
        ["idle-timeout", None, None, "Close a connection that received nothing for this many seconds.", float],
        ["max-send-buffer", None, 16 * 1024 * 1024, "Bytes that may queue for a peer (WebSocket or line) that stopped reading.", int],
        ["send-buffer-policy", None, "close", "What to do past --max-send-buffer: close or drop (WebSocket and line peers)."],
        ["compression-level", None, 6, "permessage-deflate zlib level (0-9).", int],
        ["compression-min-size", None, 32, "Send messages shorter than this uncompressed.", int],
        ["compression-window-bits", None, 12, "Our compression window (8-15): memory per connection.", int],
        ["compression-mem-level", None, 5, "zlib memLevel of our compressor (1-9).", int],
        ["client-window-bits", None, 12, "Window asked of clients that offer client_max_window_bits (8-15).", int],
        ["compression-takeover-limit", None, None, "Past this many compressing connections, new ones get no context takeover.", int],
        ["web-root", None, None, "Serve this directory's files over HTTP on the same port (twisted.web)."],
        ["ws-path", None, "/", "With --web-root: the path of the WebSocket endpoint."],
        ["tls-cert", None, None, "PEM certificate (chain) file: serve TLS (wss://, https://) on --port."],
        ["tls-key", None, None, "PEM private key file for --tls-cert (default: the same file)."],
        ["origin", None, None, "Comma-separated allowed origins (host, host:port, *.domain[:port] or scheme://host[:port]); others get 403."],
        ["block", None, None, "Comma-separated addresses/networks refused with 403."],
        ["trusted-proxy", None, None, "Comma-separated proxy addresses/networks whose --proxy-header is believed."],
        ["proxy-header", None, DEFAULT_PROXY_HEADER, "The header the trusted proxies set: X-Forwarded-For, Forwarded or X-Real-IP (only it is believed)."],
        ["workers", None, 1, "Serve with this many processes sharing the port (use a --backplane to connect them).", int],
        ["inherit-fd", None, None, "(Used by --workers) serve the listening socket inherited as this descriptor.", int],
        ["inherit-line-fd", None, None, "(Used by --workers) the same for --line-port.", int],
        ["master-fd", None, None, "(Used by --workers) stop when this pipe from the master closes.", int],
        ["backplane", None, None, "redis://host:port: publish/subscribe across processes (apps taking a 'backplane' argument get it)."],
        ["subprotocols", None, None, "Comma-separated subprotocols the application speaks."],
        ["log-connections", None, None, "Log one line per connection opened and one per connection closed at this level: debug, info, warn, error or critical (default: not logged)."],
        ["metrics", None, None, "Serve Prometheus metrics at /metrics on this endpoint (tcp:9100 listens on 127.0.0.1 unless it names an interface; needs txratchet[metrics]). With --workers: all workers' on this one endpoint."],
        ["families", None, ",".join(ALL_FAMILIES), "Comma-separated protocol families to accept (the others get 426): " + ", ".join(ALL_FAMILIES) + "."],
    ]

    def parseOptions(self, options: list[str] | None = None) -> None:
        self.rawArgs = list(sys.argv[1:] if options is None else options)
        super().parseOptions(options)

    given: dict[str, str | None] = {}

    def postOptions(self) -> None:
        self.given = {name: self[name] for name in ("port", "line-port")}  # for messages
        if self["workers"] < 1:
            raise usage.UsageError("--workers must be at least 1")
        for name in ("max-message-size", "max-frame-size", "max-handshake-size", "max-headers", "max-send-buffer", "max-incomplete-bytes"):
            if self[name] is not None and self[name] <= 0:
                raise usage.UsageError(f"--{name} must be positive")
        if self["max-incomplete-bytes"] is not None and self["max-incomplete-bytes"] < self["max-message-size"]:
            raise usage.UsageError("--max-incomplete-bytes cannot be smaller than --max-message-size")
        if self["message-timeout"] < 0:
            raise usage.UsageError("--message-timeout cannot be negative")
        if self["send-buffer-policy"] not in ("close", "drop"):
            raise usage.UsageError("--send-buffer-policy must be 'close' or 'drop'")
        for name in ("tls-cert", "tls-key"):
            if self[name] and not os.path.isfile(self[name]):
                raise usage.UsageError(f"--{name} {self[name]!r}: no such file")
        if self["tls-cert"]:
            port = self["port"]
            if not port.startswith("tcp:"):
                raise usage.UsageError("--tls-cert needs a tcp: --port (it becomes ssl:)")
            key = self["tls-key"] or self["tls-cert"]
            self["port"] = (
                "ssl:" + port[len("tcp:"):]
                + f":privateKey={_escape(key)}:certKey={_escape(self['tls-cert'])}"
            )
        for name in ("port", "line-port"):
            spec = self[name]
            if spec and spec.split(":")[0] in ("tcp", "tcp6", "ssl") and "backlog=" not in spec:
                # Twisted's default of 50 drops bursts of connections.
                self[name] = spec + ":backlog=1024"
        if not self["ws-path"].startswith("/"):
            raise usage.UsageError("--ws-path must start with /")
        self["families"] = _families(self["families"])
        try:
            proxyHeaderName(self["proxy-header"])
        except ValueError as e:
            raise usage.UsageError(f"--proxy-header: {e}") from None
        for pattern in _csv(self["origin"]):
            try:
                parsePattern(pattern)
            except ValueError as e:
                raise usage.UsageError(f"--origin: {e}") from None
        for name in ("port", "line-port"):
            if self[name]:
                _checkEndpoint(name, self.given[name] or "", self[name], bool(self["tls-cert"]))
        for name in ("block", "trusted-proxy"):
            for spec in _csv(self[name]):
                try:
                    parseNetworks([spec])
                except ValueError:
                    raise usage.UsageError(
                        f"--{name}: {spec!r} is not an IP address or network"
                    ) from None
        if self["web-root"] and not os.path.isdir(self["web-root"]):
            raise usage.UsageError(f"--web-root {self['web-root']!r} is not a directory")
        if self["backplane"]:
            parseBackplane(self["backplane"])
            _requireRedisClient()
        self["log-level"] = _logLevel(self["log-connections"])
        if self["metrics"]:
            self["metrics"] = _metricsEndpoint(self["metrics"])
        self["compression"] = None
        if not self["no-compression"]:
            try:
                self["compression"] = PerMessageDeflate(
                    level=self["compression-level"],
                    memLevel=self["compression-mem-level"],
                    serverMaxWindowBits=self["compression-window-bits"],
                    clientMaxWindowBits=self["client-window-bits"],
                    minSize=self["compression-min-size"],
                )
            except ValueError as e:
                raise usage.UsageError(f"compression: {e}") from None


def _number(option: str, kind: type[int] | type[float]) -> Callable[[str], float]:
    """
    C{int} or C{float} whose error names the option (twistd's does not).
    """

    def coerce(value: str) -> float:
        try:
            return kind(value)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise ValueError(f"--{option} {value!r} is not {what}") from None

    coerce.coerceDoc = ""  # type: ignore[attr-defined]
    return coerce


Options.optParameters = [
    [*p[:4], _number(p[0], p[4])] if len(p) > 4 and p[4] in (int, float) else p
    for p in cast("list[list[Any]]", Options.optParameters)
]


def _families(value: str) -> tuple[str, ...]:
    """
    The protocol families of C{--families}, checked (a misspelt one would
    otherwise refuse its clients with 426 without a word).
    """
    names = [n.lower() for n in _csv(value)]
    unknown = [n for n in names if n not in ALL_FAMILIES]
    if unknown or not names:
        raise usage.UsageError(
            f"--families {value!r}: "
            + (f"unknown {', '.join(map(repr, unknown))}; " if unknown else "")
            + "give one or more of " + ",".join(ALL_FAMILIES)
        )
    return tuple(dict.fromkeys(names))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _checkEndpoint(option: str, given: str, spec: str, tls: bool) -> None:
    """
    Is C{spec} (C{given} as typed) an endpoint string? Nothing is opened.
    """
    if given.isdigit():
        raise usage.UsageError(
            f"--{option} {given} is not an endpoint string: did you mean tcp:{given}?"
        )
    try:
        serverFromString(reactor, spec)
    except Exception as e:
        using = " with --tls-cert/--tls-key" if tls else ""
        raise usage.UsageError(f"--{option} {given!r}{using}: {e}") from None


def _withoutPassword(url: str) -> str:
    parts = urlsplit(url)
    user, colon, _ = parts.netloc.rpartition("@")[0].partition(":")
    if not colon:
        return url
    return urlunsplit(parts._replace(netloc=f"{user}:***@{parts.netloc.rpartition('@')[2]}"))


def parseBackplane(spec: str) -> tuple[str, int, str | None, int | None]:
    """
    The host, port, password and database of
    C{redis://[:password@]host[:port][/db]}.

    @raise usage.UsageError: another form (the message hides the password).
    """
    url = urlsplit(spec)
    shown = _withoutPassword(spec)
    if url.scheme != "redis" or not url.netloc:
        hint = ""
        if spec.startswith("redis:") and not spec.startswith("redis://"):
            hint = f": did you mean redis://{_withoutPassword('redis://' + spec[6:])[8:]}?"
        raise usage.UsageError(f"--backplane {shown!r} is not a redis://host:port URL{hint}")
    try:
        port = url.port or 6379
    except ValueError:
        raise usage.UsageError(
            f"--backplane {shown!r}: the port must be a number from 1 to 65535"
        ) from None
    db = url.path.strip("/")
    if db and not db.isdigit():
        raise usage.UsageError(f"--backplane {shown!r}: the database (after /) must be a number")
    return url.hostname or "127.0.0.1", port, url.password, int(db) if db else None


def _logLevel(name: str | None) -> NamedConstant | None:
    """
    The C{--log-connections} level, or C{None}.
    """
    if name is None:
        return None
    try:
        return LogLevel.levelWithName(name.lower())
    except InvalidLogLevelError:
        raise usage.UsageError(
            f"--log-connections {name!r} is not a level: debug, info, warn, error or critical"
        ) from None


def _metricsEndpoint(spec: str) -> str:
    """
    Check C{--metrics} (an endpoint string, and C{prometheus_client}
    importable); a TCP endpoint that names no interface gets the loopback
    one (metrics are for the operator, not the world).
    """
    _checkEndpoint("metrics", spec, spec, False)
    try:
        import prometheus_client  # noqa: F401
    except ImportError as e:
        raise usage.UsageError(
            f"--metrics needs prometheus_client, which cannot be imported ({e}): "
            "pip install 'txratchet[metrics]'"
        ) from None
    kind = spec.split(":", 1)[0]
    if kind in ("tcp", "tcp6") and "interface=" not in spec:
        spec += ":interface=" + ("127.0.0.1" if kind == "tcp" else "\\:\\:1")
    return spec


def _requireRedisClient() -> None:
    try:
        import txredisapi  # noqa: F401
    except ImportError as e:
        raise usage.UsageError(
            f"--backplane needs txredisapi, which cannot be imported ({e}): "
            "pip install 'txratchet[redis]'"
        ) from None


def makeBackplane(spec: str | None) -> IBackplane | None:
    """
    C{None} (in-process) or C{redis://host:port} (or C{redis://:password@host:port/db}).
    """
    if not spec:
        return None
    host, port, password, dbid = parseBackplane(spec)
    _requireRedisClient()
    return RedisBackplane(host, port, password=password, dbid=dbid)


#: What --app must have. It names the user's object, which need not declare
#: IApplication: these are checked by name (the boundary with user code).
_METHODS = ("onOpen", "onMessage", "onClose", "onError")


def _findApplication(name: str, withBackplane: bool = False) -> tuple[Any, bool, bool]:
    """
    Import C{name} and check, without calling anything, that an application
    can be made of it as L{loadApplication} does.

    @param withBackplane: a backplane is configured: refuse an application
        that could not use it (it would run unconnected without a word).
    @return: the object, whether it is a factory to call, and whether that
        takes a C{backplane} argument.
    @raise usage.UsageError: why not, in one line.
    """
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: Any = namedAny(name)
    except (ImportError, AttributeError, ValueError) as e:
        raise usage.UsageError(f"cannot import --app {name!r}: {e}") from None
    isFactory = isinstance(obj, type) or (callable(obj) and not IApplication.providedBy(obj))
    takesBackplane = False
    if isFactory:
        try:
            signature: inspect.Signature | None = inspect.signature(obj)
        except (TypeError, ValueError):
            signature = None
        if signature is not None:
            takesBackplane = "backplane" in signature.parameters
            try:
                signature.bind(**({"backplane": None} if takesBackplane else {}))
            except TypeError as e:
                raise usage.UsageError(
                    f"--app {name!r} needs arguments ({e}), and twistd calls it with none "
                    "(or only backplane=): give a class or factory that needs none"
                ) from None
    if (isinstance(obj, type) or not isFactory) and not all(hasattr(obj, m) for m in _METHODS):
        raise usage.UsageError(
            f"--app {name!r} is not an application (onOpen, onMessage, onClose, onError)"
        )
    if withBackplane and not takesBackplane:
        raise usage.UsageError(
            f"--backplane is of no use to --app {name!r}: it takes no 'backplane' argument "
            "(give its constructor one and pass it on, e.g. to Hub(backplane=backplane))"
        )
    return obj, isFactory, takesBackplane


def loadApplication(name: str, backplane: IBackplane | None = None) -> IApplication:
    """
    Import C{name} (a dotted name) and make an application of it: a class or
    factory is called with no arguments (or C{backplane=backplane} when it
    takes one), an application object is used as it is. The working
    directory is importable, as with C{python -m}.

    @raise usage.UsageError: C{name} cannot be imported or made into an
        application, or a C{backplane} is given that it would not use.
    """
    obj, isFactory, takesBackplane = _findApplication(name, backplane is not None)
    if isFactory:
        obj = obj(backplane=backplane) if takesBackplane else obj()
    if not all(hasattr(obj, m) for m in _METHODS):
        raise usage.UsageError(
            f"--app {name!r} is not an application (onOpen, onMessage, onClose, onError)"
        )
    return obj  # type: ignore[no-any-return]


def _returnLargeBuffersToTheSystem() -> None:
    """
    Keep glibc from holding on to freed large buffers: by default it raises
    its mmap threshold after freeing big blocks (up to 32 MiB), so a few
    16 MiB messages would leave that much resident for good. A fixed
    threshold (which also stops the adjusting) returns them at once.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        M_MMAP_THRESHOLD = -3
        libc.mallopt(M_MMAP_THRESHOLD, 256 * 1024)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def makeService(options: Options) -> IService:
    """
    Build the service C{twistd} runs.
    """
    _returnLargeBuffersToTheSystem()
    if options["workers"] > 1 and options["inherit-fd"] is None:
        return _workerPool(options)
    httpHandler = None
    if options["app"]:  # before anything connects to Redis
        _findApplication(options["app"], bool(options["backplane"]))
    backplane = makeBackplane(options["backplane"])
    if options["app"]:
        app = loadApplication(options["app"], backplane)
        name = options["app"]
    else:
        from txratchet.demo import demoApplication, pageHandler

        app = demoApplication(backplane)
        httpHandler = pageHandler
        name = "the chat demo"
    if options["block"]:
        app = IpBlackList(app, _csv(options["block"]))
    if options["origin"]:
        app = OriginCheck(app, _csv(options["origin"]))
    subprotocols = None
    if options["subprotocols"]:
        subprotocols = [s.strip() for s in options["subprotocols"].split(",") if s.strip()]
    layer = WebSocket(
        app,
        subprotocols=subprotocols,
        maxMessageSize=options["max-message-size"],
        maxFrameSize=options["max-frame-size"],
        maxHandshakeSize=options["max-handshake-size"],
        maxHeaders=options["max-headers"],
        maxIncompleteBytes=options["max-incomplete-bytes"],
        messageTimeout=options["message-timeout"] or None,
        handshakeTimeout=options["handshake-timeout"],
        closeTimeout=options["close-timeout"],
        pingInterval=options["ping-interval"],
        pingTimeout=options["ping-timeout"],
        idleTimeout=options["idle-timeout"],
        maxSendBuffer=options["max-send-buffer"],
        sendBufferPolicy=options["send-buffer-policy"],
        compression=options["compression"],
        compressionContextTakeoverLimit=options["compression-takeover-limit"],
        httpHandler=None if options["web-root"] else httpHandler,
        trustedProxies=_csv(options["trusted-proxy"]),
        proxyHeader=options["proxy-header"],
        families=options["families"],
        clock=reactor,  # type: ignore[arg-type]
        logConnections=options["log-level"],
    )
    service = MultiService()
    layers: list[WebSocket | LineProtocol] = [layer]
    sites: list[WebSocketSite] = []
    GracefulShutdown(layers, backplane, sites, options["close-timeout"]).setServiceParent(service)
    factory: Server | Site
    if options["web-root"]:
        root = os.path.abspath(options["web-root"])
        if not os.path.isdir(root):
            raise usage.UsageError(f"--web-root {root} is not a directory")
        factory = WebSocketSite(
            WebSocketRouter(
                options["ws-path"],
                WebSocketResource(layer),
                SafeFile(
                    root,
                    listings=bool(options["web-listings"]),
                    dotfiles=bool(options["web-dotfiles"]),
                    followSymlinks=bool(options["web-follow-symlinks"]),
                ),
            ),
            headTimeout=options["handshake-timeout"],
            http2=not options["no-http2"],
        )
        sites.append(factory)
        log.info(
            "txratchet: files from {root}, WebSocket at {path}",
            root=root, path=options["ws-path"],
        )
    elif options["port"].startswith("ssl:"):
        # A bare TLS port: ALPN offers h2 too; sockets at every path.
        factory = HTTP2Server(layer, http2=not options["no-http2"])
        if factory.site.http2:
            sites.append(factory.site)
    else:
        factory = Server(layer)
    if options["master-fd"] is not None:
        from txratchet.workers import MasterLink

        MasterLink(options["master-fd"]).setServiceParent(service)
    if options["inherit-fd"] is not None:
        _AdoptedPort(options["inherit-fd"], _tls(options, factory)).setServiceParent(service)
        log.info("txratchet: serving {name} over WebSockets on {port}", name=name, port=options["port"])
    else:
        listener = _Listen(
            options["port"], f"{options.given.get('port') or options['port']} (--port)", factory,
            lambda: _announce(options, name, listener.port),
        )
        listener.setServiceParent(service)
    if options["line-port"]:
        lines = LineProtocol(
            app,
            maxSendBuffer=options["max-send-buffer"],
            sendBufferPolicy=options["send-buffer-policy"],
            closeTimeout=options["close-timeout"],
            clock=reactor,  # type: ignore[arg-type]
            logConnections=options["log-level"],
        )
        layers.append(lines)
        if options["inherit-line-fd"] is not None:
            _AdoptedPort(options["inherit-line-fd"], Server(lines)).setServiceParent(service)
        else:
            _Listen(
                options["line-port"],
                f"{options.given.get('line-port') or options['line-port']} (--line-port)",
                Server(lines),
                lambda: log.info("txratchet: line protocol on {port}", port=options["line-port"]),
            ).setServiceParent(service)
    if options["metrics"]:
        from txratchet.metrics import metricsSite, register

        register(*layers, backplane=backplane)
        _serveMetrics(options, metricsSite()).setServiceParent(service)
    return service


def _serveMetrics(options: Options, site: Site) -> _Listen:
    """
    Listen for Prometheus on C{--metrics}.
    """
    return _Listen(
        options["metrics"], f"{options['metrics']} (--metrics)", site,
        lambda: log.info("txratchet: metrics at {port} /metrics", port=options["metrics"]),
    )


def _announce(options: Options, name: str, port: IListeningPort | None) -> None:
    """
    Say what is served where, with the URL to open (for the demo, its page;
    otherwise the socket's) built from the address actually listened on,
    so C{--port tcp:9000} or C{tcp:0} shows the right one.
    """
    log.info("txratchet: serving {name} over WebSockets on {port}", name=name, port=options["port"])
    address = port.getHost() if port is not None else None
    host, number = getattr(address, "host", None), getattr(address, "port", None)
    if isinstance(host, str) and isinstance(number, int):  # not for a UNIX socket
        _announceURL(options, host, number)


def _announceURL(options: Options, host: str, number: int) -> None:
    """
    Log the URL to open for the address C{host}:C{number} listened on.
    """
    if host in ("0.0.0.0", "::", ""):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    secure = options["port"].startswith("ssl:")
    if options["app"]:
        path = options["ws-path"] if options["web-root"] else "/"
        url = f"{'wss' if secure else 'ws'}://{host}:{number}{path}"
        log.info("txratchet: WebSocket clients connect to {url}", url=url)
    else:
        url = f"{'https' if secure else 'http'}://{host}:{number}/"
        log.info("txratchet: the chat demo is at {url} (open it in two browser tabs)", url=url)


def _workerPool(options: Options) -> IService:
    import socket

    from txratchet.workers import WorkerPool, childArguments, listeningSocket

    if options["app"]:  # every child would fail the same way: fail once, here
        _findApplication(options["app"], bool(options["backplane"]))
    if options["tls-cert"]:
        spec = options["port"].replace("ssl:", "tcp:", 1).split(":privateKey=")[0]
    else:
        spec = options["port"]
    count = options["workers"]
    # SO_REUSEPORT: a socket per worker, the kernel balancing connections
    # (one shared socket lets whichever process wakes first take a burst).
    reuse = hasattr(socket, "SO_REUSEPORT")  # not on every platform
    try:
        first = [listeningSocket(spec, reuse)]
        # The others on the port the first got (tcp:0 picks one).
        parts = spec.split(":")
        parts[1] = str(first[0].getsockname()[1])
        same = ":".join(parts)
        sockets = [first] + [
            [listeningSocket(same, True)] if reuse else first for _ in range(count - 1)
        ]
    except OSError as e:
        shown = options.given.get("port") or spec
        raise CannotServe(f"cannot listen on {shown} (--port): {e.strerror or e}") from None
    args = [*childArguments(options.rawArgs, ("--workers", "--metrics")), "--inherit-fd", "3"]
    if options["line-port"]:
        try:
            line = listeningSocket(options["line-port"])
        except OSError as e:
            shown = options.given.get("line-port") or options["line-port"]
            raise CannotServe(
                f"cannot listen on {shown} (--line-port): {e.strerror or e}"
            ) from None
        for each in sockets:
            each.append(line)
        args += ["--inherit-line-fd", "4"]
    log.info(
        "txratchet: {n} workers on {port}{backplane}",
        n=options["workers"], port=spec,
        backplane="" if options["backplane"] else " (no --backplane: each process on its own)",
    )
    host, number = sockets[0][0].getsockname()[:2]
    _announceURL(options, host, number)
    pool = WorkerPool(
        count, args, sockets, stopTimeout=options["close-timeout"] + 10,
        metrics=bool(options["metrics"]),
    )
    if not options["metrics"]:
        return pool
    # One endpoint for all: each worker's metrics, labelled worker="I".
    from txratchet.metrics import WorkerMetricsResource, metricsSite

    service = MultiService()
    pool.setServiceParent(service)
    resource = WorkerMetricsResource(pool.metricsEndpoints, reactor)  # type: ignore[arg-type]
    _serveMetrics(options, metricsSite(resource)).setServiceParent(service)
    return service


def _tls(options: Options, factory: IProtocolFactory) -> IProtocolFactory:
    """
    With --tls-cert, wrap C{factory} in TLS (for inherited plain sockets).
    """
    if not options["tls-cert"]:
        return factory
    from twisted.internet.ssl import PrivateCertificate
    from twisted.protocols.tls import TLSMemoryBIOFactory

    with open(options["tls-cert"], "rb") as f:
        cert = f.read()
    with open(options["tls-key"] or options["tls-cert"], "rb") as f:
        key = f.read()
    contextFactory = PrivateCertificate.loadPEM(cert + b"\n" + key).options()
    return TLSMemoryBIOFactory(contextFactory, False, factory)


class _Listen(Service):
    """
    Listen on an endpoint string when twistd starts its services (before
    it drops privileges), then C{announce} it. A failure is a
    L{CannotServe} naming the port as C{shown} and the reason
    (C{twistd txratchet} prints it as one line).
    """

    def __init__(
        self,
        description: str,
        shown: str,
        factory: IProtocolFactory,
        announce: Callable[[], None],
    ) -> None:
        self.description = description
        self.shown = shown
        self.factory = factory
        self.announce = announce
        self.port: IListeningPort | None = None
        self._listening = False
        self.logFailure = False  # also log it (twistd's daemon mode: stderr is gone)

    def privilegedStartService(self) -> None:
        Service.privilegedStartService(self)
        self._listen()

    def startService(self) -> None:
        Service.startService(self)
        if not self._listening:  # started without privilegedStartService
            self._listen()

    def _listen(self) -> None:
        self._listening = True
        outcome: list[IListeningPort | Failure] = []
        d = serverFromString(reactor, self.description).listen(self.factory)
        d.addBoth(outcome.append)
        if not outcome:  # an endpoint that listens later: report it then
            d.addCallbacks(self._listened, self._failedLater)
        elif isinstance(outcome[0], Failure):
            error = self._cannotServe(outcome[0])
            if self.logFailure:
                log.critical("txratchet: {error}", error=error)
            raise error
        else:
            self._listened(outcome[0])

    def _listened(self, port: IListeningPort) -> None:
        self.port = port
        self.announce()

    def _cannotServe(self, failure: Failure) -> CannotServe:
        error: object = failure.value
        if isinstance(error, CannotListenError) and error.socketError:
            error = error.socketError
        reason = (error.strerror if isinstance(error, OSError) else None) or str(error)
        return CannotServe(f"cannot listen on {self.shown}: {reason}")

    def _failedLater(self, failure: Failure) -> None:
        log.critical("txratchet: {error}", error=self._cannotServe(failure))
        try:
            reactor.stop()  # type: ignore[attr-defined]
        except Exception:
            pass

    def stopService(self) -> Deferred[None] | None:
        Service.stopService(self)
        port, self.port = self.port, None
        return port.stopListening() if port is not None else None


def _exitWithError(message: str) -> NoReturn:
    stderr = sys.__stderr__ or sys.stderr
    stderr.write(f"twistd txratchet: {message}\n")
    stderr.flush()
    raise SystemExit(1)


class TwistdOptions(Options):
    """
    L{Options} as C{twistd txratchet} parses them: a mistake is one line on
    stderr and exit status 1 (twistd would print its whole usage text with
    the message last).
    """

    def parseOptions(self, options: list[str] | None = None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            message = str(e).removeprefix("Parameter type enforcement failed: ")
            if message.startswith(("option ", "No such option")):
                message += " (twistd txratchet --help lists the options)"
            _exitWithError(message)


def makeTwistdService(options: Options) -> IService:
    """
    L{makeService} for C{twistd txratchet}: a bad value, or a port that
    cannot be listened on, is one line on stderr and exit status 1, not a
    traceback.
    """
    try:
        service = makeService(options)
    except (usage.UsageError, CannotServe) as e:
        _exitWithError(str(e))
    # Ports are opened later, by twistd (after it daemonizes); it lets their
    # errors end the process: print ours as one line. (In daemon mode twistd
    # passes the message to the starting process, which prints it.)
    previous = sys.excepthook

    def oneLine(
        kind: type[BaseException], value: BaseException, traceback: TracebackType | None
    ) -> None:
        if isinstance(value, CannotServe):
            stderr = sys.__stderr__ or sys.stderr
            stderr.write(f"twistd txratchet: {value}\n")
        else:
            previous(kind, value, traceback)

    sys.excepthook = oneLine
    # twistd's own options, when twistd parsed ours as its subcommand
    # (usage.Options sets "parent" only then).
    twistd = getattr(options, "parent", None)
    if twistd is not None and not twistd.get("nodaemon") and isinstance(service, MultiService):
        for child in service:
            if isinstance(child, _Listen):
                child.logFailure = True  # twistd's message is cut at 100 bytes
    return service


class _AdoptedPort(Service):
    """
    Listen on an inherited socket (a --workers child).
    """

    def __init__(self, fd: int, factory: IProtocolFactory) -> None:
        self.fd = fd
        self.factory = factory
        self.port: IListeningPort | None = None

    def startService(self) -> None:
        import socket

        Service.startService(self)
        sock = socket.socket(fileno=self.fd)
        family = sock.family
        sock.detach()
        self.port = reactor.adoptStreamPort(self.fd, family, self.factory)  # type: ignore[attr-defined]

    def stopService(self) -> Deferred[None] | None:
        Service.stopService(self)
        if self.port is not None:
            return self.port.stopListening()
        return None
