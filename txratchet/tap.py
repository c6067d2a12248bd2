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
from typing import Any
from urllib.parse import urlsplit

from twisted.application import strports
from twisted.application.service import IService, MultiService, Service
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.reflect import namedAny
from twisted.web.server import Site

from txratchet.backplane import IBackplane, RedisBackplane
from txratchet.components import IpBlackList, OriginCheck
from txratchet.components.origin import parsePattern
from txratchet.interfaces import IApplication
from txratchet.line import LineProtocol
from txratchet.proxy import DEFAULT_PROXY_HEADER, proxyHeaderName
from txratchet.server import Server
from txratchet.web import SafeFile, WebSocketResource, WebSocketRouter
from txratchet.websocket import WebSocket
from txratchet.websocket.deflate import PerMessageDeflate
from txratchet.websocket.rfc6455 import DEFAULT_MAX_MESSAGE_SIZE

log = Logger()


class GracefulShutdown(Service):
    """
    On stop (SIGTERM, Ctrl-C), close every connection of C{layers} (1001
    Going Away for WebSockets) and let twistd wait until they are gone.
    """

    def __init__(self, layers: list[WebSocket | LineProtocol]) -> None:
        self.layers = layers

    def stopService(self) -> Deferred[object]:
        Service.stopService(self)
        return gatherResults([layer.shutdown() for layer in self.layers]).addCallback(
            lambda _: log.info("txratchet: every connection closed")
        )


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
        ["close-timeout", None, 5.0, "Seconds a peer has to answer a close frame before it is aborted.", float],
        ["ping-interval", None, None, "Send a keepalive ping after this many seconds of silence.", float],
        ["ping-timeout", None, None, "Close (1011) a peer silent this long after a keepalive ping (default: the interval).", float],
        ["idle-timeout", None, None, "Close a connection that received nothing for this many seconds.", float],
        ["max-send-buffer", None, 16 * 1024 * 1024, "Bytes that may queue for a peer that stopped reading.", int],
        ["send-buffer-policy", None, "close", "What to do past --max-send-buffer: close or drop."],
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
    ]

    def parseOptions(self, options: list[str] | None = None) -> None:
        self.rawArgs = list(sys.argv[1:] if options is None else options)
        super().parseOptions(options)

    def postOptions(self) -> None:
        if self["workers"] < 1:
            raise usage.UsageError("--workers must be at least 1")
        for name in ("max-message-size", "max-frame-size", "max-handshake-size", "max-headers", "max-send-buffer"):
            if self[name] is not None and self[name] <= 0:
                raise usage.UsageError(f"--{name} must be positive")
        if self["send-buffer-policy"] not in ("close", "drop"):
            raise usage.UsageError("--send-buffer-policy must be 'close' or 'drop'")
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
        try:
            proxyHeaderName(self["proxy-header"])
        except ValueError as e:
            raise usage.UsageError(f"--proxy-header: {e}") from None
        for pattern in _csv(self["origin"]):
            try:
                parsePattern(pattern)
            except ValueError as e:
                raise usage.UsageError(f"--origin: {e}") from None
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


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def makeBackplane(spec: str | None) -> IBackplane | None:
    """
    C{None} (in-process) or C{redis://host:port} (or C{redis://:password@host:port/db}).
    """
    if not spec:
        return None
    url = urlsplit(spec)
    if url.scheme != "redis":
        raise usage.UsageError(f"--backplane must be redis://host:port, not {spec!r}")
    dbid = int(url.path.strip("/")) if url.path.strip("/") else None
    return RedisBackplane(
        url.hostname or "127.0.0.1", url.port or 6379, password=url.password, dbid=dbid
    )


def loadApplication(name: str, backplane: IBackplane | None = None) -> IApplication:
    """
    Import C{name} (a dotted name) and make an application of it: a class or
    factory is called with no arguments, an application object is used as
    it is. The working directory is importable, as with C{python -m}.
    """
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: Any = namedAny(name)
    except (ImportError, AttributeError, ValueError) as e:
        raise usage.UsageError(f"cannot import --app {name!r}: {e}") from e
    if isinstance(obj, type) or (callable(obj) and not IApplication.providedBy(obj)):
        # A factory that takes a backplane gets the one configured.
        try:
            takesBackplane = "backplane" in inspect.signature(obj).parameters
        except (TypeError, ValueError):
            takesBackplane = False
        obj = obj(backplane=backplane) if takesBackplane else obj()
    if not all(hasattr(obj, m) for m in ("onOpen", "onMessage", "onClose", "onError")):
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
        clock=reactor,  # type: ignore[arg-type]
    )
    service = MultiService()
    layers: list[WebSocket | LineProtocol] = [layer]
    GracefulShutdown(layers).setServiceParent(service)
    factory: Server | Site
    if options["web-root"]:
        root = os.path.abspath(options["web-root"])
        if not os.path.isdir(root):
            raise usage.UsageError(f"--web-root {root} is not a directory")
        factory = Site(
            WebSocketRouter(
                options["ws-path"],
                WebSocketResource(layer),
                SafeFile(
                    root,
                    listings=bool(options["web-listings"]),
                    dotfiles=bool(options["web-dotfiles"]),
                    followSymlinks=bool(options["web-follow-symlinks"]),
                ),
            )
        )
        log.info(
            "txratchet: files from {root}, WebSocket at {path}",
            root=root, path=options["ws-path"],
        )
    else:
        factory = Server(layer)
    if options["master-fd"] is not None:
        from txratchet.workers import MasterLink

        MasterLink(options["master-fd"]).setServiceParent(service)
    if options["inherit-fd"] is not None:
        _AdoptedPort(options["inherit-fd"], _tls(options, factory)).setServiceParent(service)
    else:
        strports.service(options["port"], factory).setServiceParent(service)
    log.info("txratchet: serving {name} over WebSockets on {port}", name=name, port=options["port"])
    if options["line-port"]:
        lines = LineProtocol(app)
        layers.append(lines)
        if options["inherit-line-fd"] is not None:
            _AdoptedPort(options["inherit-line-fd"], Server(lines)).setServiceParent(service)
        else:
            strports.service(options["line-port"], Server(lines)).setServiceParent(service)
        log.info("txratchet: line protocol on {port}", port=options["line-port"])
    return service


def _workerPool(options: Options) -> IService:
    import socket

    from txratchet.workers import WorkerPool, childArguments, listeningSocket

    if options["tls-cert"]:
        spec = options["port"].replace("ssl:", "tcp:", 1).split(":privateKey=")[0]
    else:
        spec = options["port"]
    count = options["workers"]
    # SO_REUSEPORT: a socket per worker, the kernel balancing connections
    # (one shared socket lets whichever process wakes first take a burst).
    reuse = hasattr(socket, "SO_REUSEPORT")
    first = [listeningSocket(spec, reuse)]
    sockets = [first] + [
        [listeningSocket(spec, True)] if reuse else first for _ in range(count - 1)
    ]
    args = [*childArguments(options.rawArgs), "--inherit-fd", "3"]
    if options["line-port"]:
        line = listeningSocket(options["line-port"])
        for each in sockets:
            each.append(line)
        args += ["--inherit-line-fd", "4"]
    log.info(
        "txratchet: {n} workers on {port}{backplane}",
        n=options["workers"], port=spec,
        backplane="" if options["backplane"] else " (no --backplane: each process on its own)",
    )
    return WorkerPool(count, args, sockets, stopTimeout=options["close-timeout"] + 10)


def _tls(options: Options, factory: Any) -> Any:
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


class _AdoptedPort(Service):
    """
    Listen on an inherited socket (a --workers child).
    """

    def __init__(self, fd: int, factory: Any) -> None:
        self.fd = fd
        self.factory = factory
        self.port: Any = None

    def startService(self) -> None:
        import socket

        Service.startService(self)
        sock = socket.socket(fileno=self.fd)
        family = sock.family
        sock.detach()
        self.port = reactor.adoptStreamPort(self.fd, family, self.factory)  # type: ignore[attr-defined]

    def stopService(self) -> Any:
        Service.stopService(self)
        if self.port is not None:
            return self.port.stopListening()
        return None
