#!/usr/bin/env python3
"""
WebSockets over HTTP/2 (RFC 8441) against HTTP/1.1 wss, on a WebSocketSite's
TLS port (issue 15). Run by hand, loopback only:

    python benchmarks/h2bench.py            # 5 rounds of each, about 3 minutes
    python benchmarks/h2bench.py --quick    # 1 short round (smoke run)
    python benchmarks/h2bench.py --only echo --rounds 3 --duration 5

Two measurements, rounds interleaved between the protocols, medians:

1. open: headless Chromium loads a page from the server over TLS, then the
   page opens 100 wss:// sockets at once; the time from the first
   C{new WebSocket} to the last C{onopen} is taken in the page
   (C{performance.now()}). The server is a L{WebSocketSite} with http2 on
   (the page and every socket are streams of one HTTP/2 connection) or
   http2 off (HTTP/1.1: a TCP connection and a TLS handshake per socket).
   The server counts its sockets by C{conn.httpVersion}, so a run that did
   not use the protocol it claims fails.
2. echo: small-message echo (32-byte binary messages, a fixed number in
   flight per socket) from Python client processes (pinned to the second
   core, the server to the first, when C{taskset} exists), the same client
   design for both protocols: non-blocking TLS sockets and a selector, RFC
   6455 frames made by hand; over HTTP/2 this file's own framing (HEADERS
   with hpack, DATA, SETTINGS, WINDOW_UPDATE, PING), every socket of a
   process on one HTTP/2 connection (what a page does), or one connection
   per socket (C{h2-1}); over HTTP/1.1 one TLS connection per socket.
   Reported: round trips per second and the server's CPU over the same
   window (100% = one core: a Twisted server is one thread). Python
   clients are slower than the C load generator of run.py (which speaks
   no HTTP/2), so compare the rows with each other, not with the README's
   main table.

Writes the table to stdout and, as JSON, to benchmarks/results/h2.json
(C{--out}). No assertion on speed anywhere: tests/test_h2_benchmark_smoke.py
runs C{--quick} so that this file cannot rot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import selectors
import shutil
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST = "127.0.0.1"
SERVER_CORE = "0"
CLIENT_CORE = "1"

PAGE = b"""<!doctype html><title>ready</title>
<script>
// Open n sockets, all at once or (sequential) each once the one before is
// open; resolve with the time from the first new WebSocket to the last
// onopen (and every onopen's time), once all of them are closed again.
window.openSockets = function (n, url, sequential) {
  return new Promise((resolve) => {
    const sockets = [], opens = [];
    let closed = 0, failed = 0, ms = null;
    const t0 = performance.now();
    const open = () => {
      const ws = new WebSocket(url);
      sockets.push(ws);
      ws.onopen = () => {
        opens.push(performance.now() - t0);
        if (opens.length === n) {
          ms = performance.now() - t0;
          for (const s of sockets) s.close(1000);
        } else if (sequential) {
          open();
        }
      };
      ws.onerror = () => { failed++; };
      ws.onclose = () => {
        closed++;
        if (failed || closed === n)
          resolve({ms: ms, opened: opens.length, failed: failed, opens: opens});
      };
    };
    for (let i = 0; i < (sequential ? 1 : n); i++) open();
  });
};
</script>"""


# ---------------------------------------------------------------------------
# The server (a subprocess: python benchmarks/h2bench.py _serve ...)
# ---------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    """
    A WebSocketSite over TLS: C{/} the page, C{/ws} an echo socket,
    C{/stats} the sockets opened so far by HTTP version (JSON).
    """
    sys.path.insert(0, str(ROOT))
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString
    from twisted.web.resource import Resource
    from twisted.web.static import Data

    from txratchet import Application, SendMessage, WebSocket
    from txratchet.web import WebSocketResource, WebSocketSite

    opened: dict[str, int] = {}

    class Echo(Application):
        def onOpen(self, conn: Any) -> None:
            opened[conn.httpVersion] = opened.get(conn.httpVersion, 0) + 1

        def onMessage(self, conn: Any, msg: Any) -> Any:
            return SendMessage(conn, msg)

    class Stats(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            request.setHeader(b"content-type", b"application/json")
            return json.dumps(opened).encode()

    root = Resource()
    root.putChild(b"", Data(PAGE, "text/html"))
    root.putChild(b"stats", Stats())
    root.putChild(b"ws", WebSocketResource(WebSocket(Echo())))
    site = WebSocketSite(root, http2=args.http2 == "on")
    if args.http2 == "on" and not site.http2:
        print("http2 unavailable (is h2 installed?)", flush=True)
        sys.exit(3)
    spec = f"ssl:{args.port}:interface={HOST}:privateKey={args.key}:certKey={args.cert}"

    def ready(_: Any) -> None:
        print(f"ready http2={site.http2}", flush=True)

    serverFromString(reactor, spec).listen(site).addCallback(ready)
    reactor.run()  # type: ignore[attr-defined]


class Server:
    """A server subprocess, pinned to the first core when it can be."""

    def __init__(self, http2: bool, cert: Path, key: Path, logdir: Path) -> None:
        self.http2 = http2
        self.port = freePort()
        self.cert = cert
        self.log = open(logdir / f"server-{'h2' if http2 else 'h1'}.log", "w+")
        cmd = [sys.executable, __file__, "_serve", "--port", str(self.port),
               "--cert", str(cert), "--key", str(key), "--http2", "on" if http2 else "off"]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.process = subprocess.Popen(pin(SERVER_CORE) + cmd, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while "ready" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise RuntimeError(f"the server did not start:\n{output}")
            time.sleep(0.05)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def cpu(self) -> float:
        """The server's CPU seconds so far (user + system)."""
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stats(self) -> dict[str, int]:
        context = ssl.create_default_context(cafile=str(self.cert))
        url = f"https://localhost:{self.port}/stats"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # SIGINT is ignored in background jobs
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def freePort() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def pin(core: str) -> list[str]:
    taskset = shutil.which("taskset")
    if taskset and (os.cpu_count() or 1) >= 2:
        return [taskset, "-c", core]
    return []


def certificate(directory: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(ROOT))
    from tests.tls import makeCertificate

    return makeCertificate(directory)


# ---------------------------------------------------------------------------
# 1. Opening 100 sockets from one page in headless Chromium
# ---------------------------------------------------------------------------


def spkiPin(certPath: Path) -> str:
    """Chromium's --ignore-certificate-errors-spki-list value: trust this key alone."""
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(certPath.read_bytes()).public_key()
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def openBenchmark(servers: dict[str, Server], cert: Path, workdir: Path, rounds: int,
                  sockets: int) -> dict[str, Any]:
    """
    Rounds of "open C{sockets} sockets from one page", interleaved between
    the servers, in one headless Chromium (a fresh navigation each round).
    """
    sys.path.insert(0, str(ROOT))
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from tests import browser_helpers

    missing = browser_helpers.missing_browser_parts()
    if missing:
        return {"skipped": "; ".join(missing)}
    options = webdriver.ChromeOptions()
    options.binary_location = browser_helpers.CHROMIUM
    for flag in browser_helpers.CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={workdir / 'profile'}")
    options.add_argument(f"--ignore-certificate-errors-spki-list={spkiPin(cert)}")
    service = Service(executable_path=browser_helpers.CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    ways = {"at once": False, "one after another": True}
    times: dict[tuple[str, str], list[float]] = {(n, w): [] for n in servers for w in ways}
    pageProtocol: dict[str, str] = {}
    script = ("const done = arguments[arguments.length - 1];"
              "openSockets(arguments[0], arguments[1], arguments[2])"
              ".then(done, (e) => done({error: String(e)}));")
    try:
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(120)
        for rnd in range(rounds + 1):  # round 0 warms up (TLS session cache, code paths)
            order = list(servers) if rnd % 2 == 0 else list(reversed(servers))
            for name in order:
                for way, sequential in ways.items():
                    server = servers[name]
                    driver.get(f"https://localhost:{server.port}/")
                    pageProtocol[name] = driver.execute_script(
                        "return performance.getEntriesByType('navigation')[0].nextHopProtocol")
                    result = driver.execute_async_script(
                        script, sockets, f"wss://localhost:{server.port}/ws", sequential)
                    if result.get("error") or result["opened"] != sockets or result["failed"]:
                        raise RuntimeError(f"{name}: opening {sockets} sockets failed: {result}")
                    if rnd:
                        times[name, way].append(round(result["ms"], 1))
                    opens = result["opens"]
                    log(f"open {name} {way} round {rnd}{' (warm-up)' if not rnd else ''}: "
                        f"{result['ms']:.1f} ms (10th/50th/90th onopen at {opens[9]:.0f}/"
                        f"{opens[len(opens) // 2]:.0f}/{opens[len(opens) * 9 // 10]:.0f} ms)")
    finally:
        driver.quit()
    out: dict[str, Any] = {"sockets": sockets, "rounds": rounds, "browser": chromiumVersion()}
    for name, server in servers.items():
        versions = server.stats()
        out[name] = {"page_protocol": pageProtocol[name], "sockets_by_version": versions}
        for way in ways:
            out[name][way] = {"ms": times[name, way], "median_ms": statistics.median(times[name, way])}
        expected = "HTTP/2" if server.http2 else "HTTP/1.1"
        if set(versions) != {expected}:
            raise RuntimeError(f"{name}: the sockets were not all {expected}: {versions}")
    return out


def chromiumVersion() -> str:
    try:
        out = subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True,
                             timeout=30)
        return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


# ---------------------------------------------------------------------------
# 2. Small echo: the client processes (python benchmarks/h2bench.py _echo ...)
# ---------------------------------------------------------------------------

MASK = b"\x37\xfa\x21\x3d"


def clientFrame(payload: bytes) -> bytes:
    """A masked binary frame (small payloads)."""
    assert len(payload) < 126
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes([0x82, 0x80 | len(payload)]) + MASK + masked


class Sock:
    """
    One WebSocket's frame layer: counts the echoes it reads and answers
    each with a new message (so C{inflight} stay in flight).
    """

    __slots__ = ("bad", "buf")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.bad = 0

    def feed(self, data: bytes, size: int) -> int:
        """Take server frames; return how many whole echoes arrived."""
        buf = self.buf
        buf += data
        n = 0
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            length = buf[pos + 1] & 0x7F
            if length >= 126:  # never for these messages
                self.bad += 1
                length = struct.unpack(">H", buf[pos + 2:pos + 4])[0] if length == 126 else 0
                if end - pos < 4 + length:
                    break
                pos += 4 + length
                continue
            if end - pos < 2 + length:
                break
            if buf[pos] != 0x82 or length != size:
                self.bad += 1
            else:
                n += 1
            pos += 2 + length
        del buf[:pos]
        return n


class TLSConnection:
    """A non-blocking TLS socket with an output buffer."""

    def __init__(self, port: int, cafile: str, alpn: list[str]) -> None:
        context = ssl.create_default_context(cafile=cafile)
        context.set_alpn_protocols(alpn)
        raw = socket.create_connection((HOST, port), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        self.alpn = self.sock.selected_alpn_protocol()
        self.out = bytearray()
        self.closed = False

    def blocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)
        if flag:
            self.sock.settimeout(10)

    def readAll(self) -> list[bytes]:
        """Everything readable now (non-blocking)."""
        chunks = []
        while True:
            try:
                data = self.sock.recv(262144)
            except (ssl.SSLWantReadError, BlockingIOError):
                break
            except ssl.SSLWantWriteError:
                break
            if not data:
                self.closed = True
                break
            chunks.append(data)
        return chunks

    def flush(self) -> bool:
        """Send what can be sent; True when everything left."""
        while self.out:
            try:
                sent = self.sock.send(self.out)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                return False
            del self.out[:sent]
        return True


class H1Client(TLSConnection):
    """One WebSocket over HTTP/1.1 on its own TLS connection."""

    def __init__(self, port: int, cafile: str) -> None:
        super().__init__(port, cafile, ["http/1.1"])
        request = (f"GET /ws HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n").encode()
        self.sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            head += chunk
        head, rest = head.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {head[:80]!r}")
        self.ws = Sock()
        self.ws.buf += rest  # never any: the server speaks after our first message
        self.sockets = [self.ws]

    def start(self, frame: bytes, inflight: int) -> None:
        self.out += frame * inflight

    def readable(self, frame: bytes, size: int, counting: bool, sending: bool) -> int:
        n = 0
        for data in self.readAll():
            n += self.ws.feed(data, size)
        if sending and n:
            self.out += frame * n
        return n if counting else 0


# HTTP/2 frame types and flags (RFC 9113 6)
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
MAX_WINDOW = 2**31 - 1
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", sid) + payload


class H2Client(TLSConnection):
    """
    C{streams} WebSockets over one HTTP/2 connection (extended CONNECT),
    with this file's own framing: our receive windows are opened wide once
    (and topped up), the server's send windows are respected.
    """

    def __init__(self, port: int, cafile: str, streams: int) -> None:
        import hpack

        super().__init__(port, cafile, ["h2"])
        if self.alpn != "h2":
            raise ConnectionError(f"the server chose {self.alpn!r}, not h2")
        self.decoder = hpack.Decoder()
        block = hpack.Encoder().encode([
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
            (":authority", f"localhost:{port}"), (":path", "/ws"),
            ("sec-websocket-version", "13"),
        ])
        self.inbuf = bytearray()
        self.sendWindow = 65535  # the connection's, for our DATA
        self.initialStreamWindow = 65535  # the server's SETTINGS_INITIAL_WINDOW_SIZE
        self.maxFrame = 16384
        self.received = 0  # DATA bytes since our last connection WINDOW_UPDATE
        self.settingsSeen = False
        self.bySid: dict[int, Sock] = {}
        self.windows: dict[int, int] = {}  # the server's window per stream
        self.pending: dict[int, bytearray] = {}  # WebSocket bytes waiting for window
        self.streamReceived: dict[int, int] = {}
        self.opened: set[int] = set()
        # our SETTINGS: no push, widest stream windows; then the connection window
        settings = struct.pack(">HI", 0x2, 0) + struct.pack(">HI", 0x4, MAX_WINDOW)
        self.out += PREFACE + h2frame(SETTINGS, 0, 0, settings)
        self.out += h2frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", MAX_WINDOW - 65535))
        for i in range(streams):
            sid = 1 + 2 * i
            self.bySid[sid] = Sock()
            self.pending[sid] = bytearray()
            self.streamReceived[sid] = 0
            self.out += h2frame(HEADERS, END_HEADERS, sid, block)
        self.sockets = list(self.bySid.values())
        self.sock.sendall(self.out)
        self.out.clear()
        # Wait (blocking) until every stream answered 200.
        deadline = time.monotonic() + 20
        while len(self.opened) < streams:
            if time.monotonic() > deadline:
                raise ConnectionError(f"{len(self.opened)} of {streams} streams opened")
            data = self.sock.recv(262144)
            if not data:
                raise ConnectionError("closed during the handshakes")
            self.frames(data, b"", 0, False)
            self.sock.sendall(self.out)
            self.out.clear()

    def start(self, frame: bytes, inflight: int) -> None:
        for sid in self.bySid:
            self.send(sid, frame * inflight)

    def send(self, sid: int, data: bytes) -> None:
        pending = self.pending[sid]
        pending += data
        room = min(self.sendWindow, self.windows[sid])
        while pending and room > 0:
            n = min(len(pending), room, self.maxFrame)
            self.out += h2frame(DATA, 0, sid, bytes(pending[:n]))
            del pending[:n]
            self.sendWindow -= n
            self.windows[sid] -= n
            room -= n

    def readable(self, frame: bytes, size: int, counting: bool, sending: bool) -> int:
        n = 0
        for data in self.readAll():
            n += self.frames(data, frame, size, sending)
        return n if counting else 0

    def frames(self, data: bytes, frame: bytes, size: int, sending: bool) -> int:
        buf = self.inbuf
        buf += data
        pos = 0
        end = len(buf)
        echoes = 0
        while end - pos >= 9:
            length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
            if end - pos < 9 + length:
                break
            kind, flags = buf[pos + 3], buf[pos + 4]
            sid = struct.unpack(">I", buf[pos + 5:pos + 9])[0] & 0x7FFFFFFF
            payload = bytes(buf[pos + 9:pos + 9 + length])
            pos += 9 + length
            if kind == DATA:
                if flags & PADDED:
                    payload = payload[1:len(payload) - payload[0]]
                n = self.bySid[sid].feed(payload, size)
                echoes += n
                if sending and n:
                    self.send(sid, frame * n)
                self.consumed(sid, length)
                if flags & END_STREAM:
                    raise ConnectionError(f"the server ended stream {sid}")
            elif kind == HEADERS:
                if flags & PADDED:
                    payload = payload[1:len(payload) - payload[0]]
                if flags & PRIORITY:
                    payload = payload[5:]
                if not flags & END_HEADERS:
                    raise ConnectionError("CONTINUATION is not supported here")
                headers = dict(self.decoder.decode(payload))
                if headers.get(":status") != "200":
                    raise ConnectionError(f"stream {sid} answered {headers}")
                self.opened.add(sid)
                self.windows.setdefault(sid, self.initialStreamWindow)
            elif kind == SETTINGS and not flags & ACK:
                for i in range(0, len(payload), 6):
                    code, value = struct.unpack(">HI", payload[i:i + 6])
                    if code == 0x4:  # INITIAL_WINDOW_SIZE: applies to open streams too
                        delta = value - self.initialStreamWindow
                        self.initialStreamWindow = value
                        for s in self.windows:
                            self.windows[s] += delta
                    elif code == 0x5:
                        self.maxFrame = value
                self.out += h2frame(SETTINGS, ACK, 0, b"")
            elif kind == WINDOW_UPDATE:
                increment = struct.unpack(">I", payload)[0] & 0x7FFFFFFF
                if sid == 0:
                    self.sendWindow += increment
                    for s in self.pending:
                        if self.pending[s]:
                            self.send(s, b"")
                else:
                    self.windows[sid] = self.windows.get(sid, self.initialStreamWindow) + increment
                    if self.pending.get(sid):
                        self.send(sid, b"")
            elif kind == PING and not flags & ACK:
                self.out += h2frame(PING, ACK, 0, payload)
            elif kind == RST_STREAM:
                raise ConnectionError(f"the server reset stream {sid}: {payload.hex()}")
            elif kind == GOAWAY:
                raise ConnectionError(f"GOAWAY: {payload.hex()}")
            elif kind == CONTINUATION:
                raise ConnectionError("CONTINUATION is not supported here")
        del buf[:pos]
        return echoes

    def consumed(self, sid: int, length: int) -> None:
        """Top our windows up once half of them is used."""
        self.received += length
        if self.received > MAX_WINDOW // 2:
            self.out += h2frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self.received))
            self.received = 0
        got = self.streamReceived[sid] + length
        if got > MAX_WINDOW // 2:
            self.out += h2frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", got))
            got = 0
        self.streamReceived[sid] = got


def echoClient(args: argparse.Namespace) -> None:
    """
    One client process: connect, wait for the common start time, keep
    C{inflight} messages in flight per socket, count the echoes that arrive
    within the measured window; print one JSON line.
    """
    frame = clientFrame(b"x" * args.size)
    conns: list[Any] = []
    if args.mode == "h1":
        conns = [H1Client(args.port, args.cafile) for _ in range(args.conns)]
    elif args.mode == "h2":
        conns = [H2Client(args.port, args.cafile, args.conns)]
    else:  # h2-1: one connection per socket
        conns = [H2Client(args.port, args.cafile, 1) for _ in range(args.conns)]
    selector = selectors.DefaultSelector()
    for conn in conns:
        conn.blocking(False)
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    measureFrom = args.start + args.warmup
    measureTo = measureFrom + args.duration
    while time.time() < args.start:
        time.sleep(min(0.01, max(0.0, args.start - time.time())))
    for conn in conns:
        conn.start(frame, args.inflight)
        conn.flush()
    count = 0
    errors = []
    writing: set[Any] = set()
    while True:
        now = time.time()
        if now >= measureTo:
            break
        for key, _events in selector.select(timeout=0.05):
            conn = key.data
            try:
                count += conn.readable(frame, args.size, measureFrom <= now, True)
            except (ConnectionError, OSError) as e:
                errors.append(str(e))
                selector.unregister(conn.sock)
                continue
            done = conn.flush()
            if not done and conn not in writing:
                writing.add(conn)
                selector.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
            elif done and conn in writing:
                writing.discard(conn)
                selector.modify(conn.sock, selectors.EVENT_READ, conn)
            if conn.closed:
                errors.append("the server closed a connection")
                selector.unregister(conn.sock)
        if len(errors) > 0:
            break
    bad = sum(ws.bad for conn in conns for ws in conn.sockets)
    for conn in conns:
        try:
            conn.sock.close()
        except OSError:
            pass
    print(json.dumps({"count": count, "errors": errors[:3], "bad": bad,
                      "rate": count / args.duration}), flush=True)


def echoBenchmark(servers: dict[str, Server], cafile: Path, rounds: int, opts: argparse.Namespace
                  ) -> dict[str, Any]:
    """
    Rounds of the echo for each client mode, interleaved; the server's CPU
    is read over the same window as the clients count.
    """
    modes = {"h2": servers["http2"], "h2-1": servers["http2"], "h1": servers["http1.1"]}
    results: dict[str, dict[str, list[float]]] = {m: {"rate": [], "cpu": []} for m in modes}
    for rnd in range(rounds):
        order = list(modes) if rnd % 2 == 0 else list(reversed(modes))
        for mode in order:
            server = modes[mode]
            start = time.time() + 1.5  # time to connect every client first
            cmd = [sys.executable, __file__, "_echo", "--mode", mode, "--port", str(server.port),
                   "--cafile", str(cafile), "--conns", str(opts.conns), "--inflight",
                   str(opts.inflight), "--size", str(opts.size), "--start", repr(start),
                   "--warmup", str(opts.warmup), "--duration", str(opts.duration)]
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            procs = [subprocess.Popen(pin(CLIENT_CORE) + cmd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
                     for _ in range(opts.processes)]
            time.sleep(max(0.0, start + opts.warmup - time.time()))
            cpu0, t0 = server.cpu(), time.monotonic()
            time.sleep(max(0.0, start + opts.warmup + opts.duration - time.time()))
            cpu1, t1 = server.cpu(), time.monotonic()
            rate = 0.0
            for p in procs:
                out, err = p.communicate(timeout=60)
                lines = out.strip().splitlines()
                if p.returncode or not lines:
                    raise RuntimeError(f"{mode}: a client failed ({p.returncode}): {err[-2000:]}")
                result = json.loads(lines[-1])
                if result["errors"] or result["bad"]:
                    raise RuntimeError(f"{mode}: {result}")
                rate += result["rate"]
            cpu = 100 * (cpu1 - cpu0) / (t1 - t0)
            results[mode]["rate"].append(round(rate))
            results[mode]["cpu"].append(round(cpu, 1))
            log(f"echo {mode} round {rnd + 1}: {rate:,.0f} round trips/s, server CPU {cpu:.0f}%")
    out: dict[str, Any] = {
        "processes": opts.processes, "conns_per_process": opts.conns, "inflight": opts.inflight,
        "size": opts.size, "duration": opts.duration, "rounds": rounds,
    }
    for mode, r in results.items():
        out[mode] = {**r, "median_rate": statistics.median(r["rate"]),
                     "median_cpu": statistics.median(r["cpu"]),
                     "round_trips_per_cpu_second": round(
                         statistics.median(r["rate"]) / max(statistics.median(r["cpu"]), 1e-9) * 100)}
    return out


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def table(results: dict[str, Any]) -> str:
    lines = ["| measurement | HTTP/2 | HTTP/1.1 |", "|---|---:|---:|"]
    opening = results.get("open")
    if opening and "skipped" not in opening:
        for way in ("at once", "one after another"):
            lines.append(
                f"| open {opening['sockets']} sockets from one page {way}, Chromium, median of "
                f"{opening['rounds']} (ms, first new WebSocket to last onopen) | "
                f"{opening['http2'][way]['median_ms']:,.1f} | "
                f"{opening['http1.1'][way]['median_ms']:,.1f} |")
    elif opening:
        lines.append(f"| open: skipped ({opening['skipped']}) | | |")
    echo = results.get("echo")
    if echo:
        what = (f"{echo['processes']} processes x {echo['conns_per_process']} sockets x "
                f"{echo['inflight']} in flight, {echo['size']} B")
        lines.append(f"| small echo, {what}: round trips/s (server CPU) | "
                     f"{echo['h2']['median_rate']:,.0f} ({echo['h2']['median_cpu']:.0f}%) | "
                     f"{echo['h1']['median_rate']:,.0f} ({echo['h1']['median_cpu']:.0f}%) |")
        lines.append(f"| the same, one HTTP/2 connection per socket | "
                     f"{echo['h2-1']['median_rate']:,.0f} ({echo['h2-1']['median_cpu']:.0f}%) | |")
        lines.append(f"| round trips per server CPU second | "
                     f"{echo['h2']['round_trips_per_cpu_second']:,} "
                     f"(one connection per socket: {echo['h2-1']['round_trips_per_cpu_second']:,}) | "
                     f"{echo['h1']['round_trips_per_cpu_second']:,} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 short round of each (smoke run)")
    ap.add_argument("--only", choices=["open", "echo"], help="one of the two measurements")
    ap.add_argument("--rounds", type=int, help="rounds (default 5, quick: 1)")
    ap.add_argument("--sockets", type=int, default=100, help="sockets the page opens (100)")
    ap.add_argument("--processes", type=int, default=2, help="echo client processes (2)")
    ap.add_argument("--conns", type=int, default=50, help="echo sockets per process (50)")
    ap.add_argument("--inflight", type=int, default=10, help="echo messages in flight per socket (10)")
    ap.add_argument("--size", type=int, default=32, help="echo message size in bytes (32, < 126)")
    ap.add_argument("--warmup", type=float, help="echo seconds before counting (1, quick: 0.3)")
    ap.add_argument("--duration", type=float, help="echo seconds counted (5, quick: 1)")
    ap.add_argument("--out", default=str(HERE / "results" / "h2.json"),
                    help="JSON results (default benchmarks/results/h2.json; '-' for none)")
    opts = ap.parse_args()
    rounds = opts.rounds or (1 if opts.quick else 5)
    opts.warmup = opts.warmup if opts.warmup is not None else (0.3 if opts.quick else 1.0)
    opts.duration = opts.duration or (1.0 if opts.quick else 5.0)
    if opts.quick:
        opts.conns = min(opts.conns, 10)
    if not 0 < opts.size < 126:
        ap.error("--size must be 1..125")
    workdir = Path(tempfile.mkdtemp(prefix="txratchet-h2bench-"))
    started = time.monotonic()
    servers: dict[str, Server] = {}
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "when": time.strftime("%Y-%m-%d %H:%M"),
    }
    try:
        key, cert = certificate(workdir)
        servers["http2"] = Server(True, cert, key, workdir)
        servers["http1.1"] = Server(False, cert, key, workdir)
        if opts.only in (None, "open"):
            results["open"] = openBenchmark(servers, cert, workdir, rounds, opts.sockets)
        if opts.only in (None, "echo"):
            results["echo"] = echoBenchmark(servers, cert, rounds, opts)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(workdir, True)
    results["seconds"] = round(time.monotonic() - started, 1)
    print(table(results))
    print(json.dumps(results))
    if opts.out != "-":
        Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.out).write_text(json.dumps(results, indent=1) + "\n")


def internal(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("command")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--http2", choices=["on", "off"])
    ap.add_argument("--mode", choices=["h1", "h2", "h2-1"])
    ap.add_argument("--cafile")
    ap.add_argument("--conns", type=int)
    ap.add_argument("--inflight", type=int)
    ap.add_argument("--size", type=int)
    ap.add_argument("--start", type=float)
    ap.add_argument("--warmup", type=float)
    ap.add_argument("--duration", type=float)
    args = ap.parse_args(argv)
    if args.command == "_serve":
        serve(args)
    else:
        echoClient(args)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("_serve", "_echo"):
        internal(sys.argv[1:])
    else:
        main()
