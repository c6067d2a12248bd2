"""
docs/deployment.md's files do what the page says: the systemd unit
(examples/deploy/txratchet.service) is valid, unprivileged and hardened,
its C{ExecStart} serves the tutorial's rooms, every system call that
process makes while serving is one its C{SystemCallFilter} allows, and
nginx with examples/deploy/nginx.conf in front of it serves C{wss://}.
Everything runs on 127.0.0.1: the unit's command line as this user (no
systemd is started), nginx with its ports moved to free loopback ones.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from twisted.internet.threads import deferToThread
from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests import rawclients, services
from tests.test_rooms import SECRET, token
from tests.test_twistd import ROOT, TWISTD, TwistdTestCase, freePort, readUntil, waitForPort
from tests.tls import makeCertificate

HOST = "127.0.0.1"
UNIT = ROOT / "examples" / "deploy" / "txratchet.service"
SITE = ROOT / "examples" / "deploy" / "nginx.conf"
INSTALL_HINT = "apt-get install -y systemd strace (scripts/test.sh does this when run as root)"


def unitEntries(text: str) -> list[tuple[str, str, str]]:
    """
    C{(section, key, value)} for each setting of a unit file, continuation
    lines joined (as systemd reads it).
    """
    entries = []
    section = ""
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        line, logical = logical + line, ""
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def unitSetting(key: str) -> list[str]:
    return [v for s, k, v in unitEntries(UNIT.read_text()) if k == key]


def execStart(port: int = 0) -> list[str]:
    """The unit's command, with this checkout's twistd and another port."""
    (command,) = unitSetting("ExecStart")
    words = shlex.split(command)
    assert words[0].endswith("/bin/twistd"), words[0]
    words[0] = TWISTD
    spec = f"tcp:8080:interface={HOST}"
    assert spec in words, words
    words[words.index(spec)] = f"tcp:{port}:interface={HOST}"
    return words


@functools.lru_cache(None)
def syscallGroup(group: str) -> frozenset[str]:
    """The system calls of a systemd C{SystemCallFilter} group, expanded."""
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", group],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    names: set[str] = set()
    for line in out.splitlines()[1:]:
        line = line.strip()
        if line and not line.startswith("#"):
            names |= syscallGroup(line) if line.startswith("@") else {line}
    return frozenset(names)


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise AssertionError(f"{tool} is missing: {INSTALL_HINT}")
    return path


class UnitTests(SynchronousTestCase):
    def test_unprivilegedAndHardened(self) -> None:
        settings = {k: v for s, k, v in unitEntries(UNIT.read_text()) if s == "Service"}
        self.assertNotIn(settings["User"], ("", "root", "0"))
        self.assertNotIn("DynamicUser", settings)  # a real user owns nothing writable
        for key, value in {
            "NoNewPrivileges": "yes",
            "CapabilityBoundingSet": "",
            "AmbientCapabilities": "",
            "ProtectSystem": "strict",
            "ProtectHome": "yes",
            "PrivateTmp": "yes",
            "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        }.items():
            self.assertEqual(settings.get(key), value, key)
        self.assertEqual(unitSetting("SystemCallFilter"), ["@system-service", "~@privileged @resources"])

    def test_commandParses(self) -> None:
        """
        twistd parses the unit's command as it is: in the foreground, no pid
        file (the file system is read-only), on loopback, behind a proxy.
        """
        words = execStart(8080)
        twistd = ServerOptions()
        twistd.parseOptions(words[1:])
        self.assertTrue(twistd["nodaemon"])
        self.assertEqual(twistd["pidfile"], "")
        self.assertEqual(twistd.subCommand, "txratchet")
        options = twistd.subOptions
        self.assertEqual(options["port"], f"tcp:8080:interface={HOST}:backlog=1024")
        self.assertEqual(options["trusted-proxy"], HOST)
        self.assertEqual(options["app"], "examples.rooms.Rooms")

    def test_systemdAccepts(self) -> None:
        """C{systemd-analyze verify}: no unknown key, no bad value."""
        tool = need("systemd-analyze")
        workdir = Path(tempfile.mkdtemp(prefix="txratchet-unit-"))
        self.addCleanup(shutil.rmtree, workdir, True)
        unit = workdir / "txratchet.service"
        unit.write_text(UNIT.read_text().replace("/srv/txratchet/venv/bin/twistd", TWISTD))
        out = subprocess.run(
            [tool, "verify", str(unit)], capture_output=True, text=True, timeout=60
        )
        complaints = [line for line in (out.stdout + out.stderr).splitlines() if unit.name in line]
        self.assertEqual((out.returncode, complaints), (0, []), out.stdout + out.stderr)


class WithSecret:
    """The unit's EnvironmentFile: ROOMS_SECRET, for the tests' duration."""

    def setUp(self) -> None:
        environ = dict(os.environ)
        self.addCleanup(os.environ.update, environ)  # type: ignore[attr-defined]
        self.addCleanup(os.environ.clear)  # type: ignore[attr-defined]
        os.environ["ROOMS_SECRET"] = SECRET


class UnitRunsTests(WithSecret, TwistdTestCase):
    """The unit's ExecStart, run as it is (as this user, on a free port)."""

    def test_systemCallsAllowed(self):
        """
        Every system call twistd makes while it starts, serves a peer, and
        stops on SIGTERM is one the unit's SystemCallFilter allows
        (@system-service, without @privileged and @resources): systemd would
        kill the process for any other.
        """
        return self.census()

    def test_systemCallsAllowedWithWorkers(self):
        """
        The same with the options docs/deployment.md suggests adding:
        --workers (a master starting twistd children) and --metrics (their
        UNIX sockets, the master's HTTP endpoint).
        """
        return self.census("--workers", "2", "--metrics", "tcp:0", port=freePort())

    def census(self, *extra: str, port: int = 0):
        strace = need("strace")
        need("systemd-analyze")
        workdir = Path(tempfile.mkdtemp(prefix="txratchet-strace-"))
        self.addCleanup(shutil.rmtree, workdir, True)
        trace = workdir / "trace"
        probe = subprocess.run([strace, "-qq", "-o", os.devnull, "true"], capture_output=True, timeout=30)
        if probe.returncode != 0:
            raise SkipTest(f"strace cannot trace here: {probe.stderr.decode(errors='replace').strip()}")
        proc = subprocess.Popen(
            [strace, "-f", "-qq", "-o", str(trace), *execStart(port), *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self.addCleanup(lambda: proc.poll() is None and proc.kill())

        def serve():
            from websockets.sync.client import connect

            base = readUntil(proc, rb"WebSocket clients connect to (ws://\S+)/", timeout=60)
            if port:
                waitForPort(port, proc, timeout=60)  # a worker listens
            with connect(f"{base}/rooms/lobby?token={token('ann')}", open_timeout=10) as ws:
                joined = ws.recv(timeout=10)
                ws.send("hello")
                said = ws.recv(timeout=10)
            # SIGTERM to twistd itself (strace would only detach from it).
            (twistd,) = {
                int(pid)
                for task in Path(f"/proc/{proc.pid}/task").iterdir()
                for pid in (task / "children").read_text().split()
            }
            os.kill(twistd, signal.SIGTERM)
            proc.wait(60)
            proc.stdout.close()
            return joined, said

        def check(result):
            self.assertEqual(result, ("* ann joined lobby", "ann: hello"))
            calls = re.findall(r"^(\d+)\s+([a-z_0-9]+)\(", trace.read_text(), re.M)
            made = {name for _, name in calls}
            self.assertIn("accept4", made)  # it did serve
            started = {pid for pid, name in calls if name == "execve"}
            self.assertEqual(len(started), 3 if extra else 1)  # twistd, and its 2 workers
            allowed = (
                syscallGroup("@system-service") - syscallGroup("@privileged") - syscallGroup("@resources")
            )
            self.assertEqual(sorted(made - allowed), [])

        return deferToThread(serve).addCallback(check)


class DeployNginx(services.Service):
    """
    nginx with examples/deploy/nginx.conf as it is, but for its ports (free
    loopback ones; its IPv6 wildcard listens dropped), its certificate (a
    throwaway one), its upstream (the unit's command on a free port) and its
    file root.
    """

    name = "nginx"
    default = services.NGINX

    def __init__(self, workdir: Path, upstream: int) -> None:
        super().__init__(workdir)
        self.upstream = upstream
        self.key, self.cert = makeCertificate(self.workdir)
        self.www = self.workdir / "www"
        self.www.mkdir(exist_ok=True)
        (self.www / "index.html").write_text("<h1>the chat's page</h1>")
        self.httpPort = 0

    def command(self) -> list[str]:
        d = self.workdir
        self.httpPort = services.free_port()
        site = SITE.read_text()
        for old, new in (
            ("listen 80;", f"listen {HOST}:{self.httpPort};"),
            ("listen 443 ssl;", f"listen {HOST}:{self.port} ssl;"),
            ("/etc/letsencrypt/live/chat.example.com/fullchain.pem", str(self.cert)),
            ("/etc/letsencrypt/live/chat.example.com/privkey.pem", str(self.key)),
            ("proxy_pass http://127.0.0.1:8080;", f"proxy_pass http://127.0.0.1:{self.upstream};"),
            ("root /srv/txratchet/www;", f"root {self.www};"),
        ):
            assert site.count(old) == 1, old
            site = site.replace(old, new)
        site = "\n".join(line for line in site.splitlines() if "listen [::]" not in line)
        (d / "site.conf").write_text(site)
        (d / "nginx.conf").write_text(
            "daemon off;\n"
            "worker_processes 1;\n"
            f"pid {d}/nginx.pid;\n"
            f"error_log {d}/error.log info;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            f"    access_log {d}/access.log;\n"
            + "".join(
                f"    {kind}_temp_path {d}/{kind};\n"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            )
            + f"    include {d}/site.conf;\n"
            "}\n"
        )
        return [self.executable, "-p", f"{d}/", "-c", str(d / "nginx.conf"), "-e", f"{d}/error.log"]


class BehindNginxTests(WithSecret, TwistdTestCase):
    def test_wssThroughNginx(self):
        """
        The unit's command behind nginx with the guide's configuration:
        pages over HTTPS, plain HTTP redirected, the rooms over wss://,
        other sites' pages refused by the unit's --origin (403).
        """
        proc = self.startTwistd(*execStart()[execStart().index("txratchet") + 1:])
        workdir = Path(tempfile.mkdtemp(prefix="txratchet-deploy-"))
        self.addCleanup(shutil.rmtree, workdir, True)
        workdir.chmod(0o755)  # nginx's workers (nobody, under root) read the files

        def scenario():
            base = readUntil(proc, rb"WebSocket clients connect to ws://127.0.0.1:(\d+)/")
            nginx = DeployNginx(workdir, int(base))
            nginx.start()
            step = "wss://"
            try:
                context = ssl.create_default_context(cafile=str(nginx.cert))
                url = f"wss://{HOST}:{nginx.port}/rooms/lobby?token={token('ann')}"
                joined, said, foreign, own = asyncio.run(overTLS(url, context))
                step = "plain HTTP"
                redirect = rawclients.raw_request(
                    HOST, nginx.httpPort,
                    b"GET /rooms/x HTTP/1.1\r\nHost: chat.example.com\r\nConnection: close\r\n\r\n",
                )
                step = "a page over HTTPS"
                page = page_over_tls(nginx.port, context)
                return joined, said, foreign, own, redirect, page
            except Exception as e:
                raise AssertionError(f"{step}: {e!r}\n{nginx.logs()}") from e
            finally:
                nginx.stop()

        def check(result):
            joined, said, foreign, own, redirect, page = result
            self.assertEqual((joined, said), ("* ann joined lobby", "ann: over TLS"))
            self.assertEqual((foreign, own), (403, "* ann joined lobby"))
            self.assertTrue(redirect.startswith(b"HTTP/1.1 301 "), redirect[:80])
            self.assertIn(b"\r\nLocation: https://chat.example.com/rooms/x\r\n", redirect)
            self.assertIn(b"the chat's page", page)

        return deferToThread(scenario).addCallback(check)


async def overTLS(url: str, context: ssl.SSLContext) -> tuple[str, str, int, str]:
    """
    Through nginx over TLS, with the C{websockets} asyncio client (its
    threaded sync client now and then never delivers its request over TLS,
    a client-side race): join and talk; the status another site's page
    gets; what the site's own page gets.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    async with connect(url, ssl=context, open_timeout=10) as ws:
        joined = await asyncio.wait_for(ws.recv(), 10)
        await ws.send("over TLS")
        said = await asyncio.wait_for(ws.recv(), 10)
    try:
        async with connect(url, ssl=context, origin="https://evil.example", open_timeout=10):
            foreign = 101
    except InvalidStatus as e:
        foreign = e.response.status_code
    async with connect(url, ssl=context, origin="https://chat.example.com", open_timeout=10) as ws:
        own = await asyncio.wait_for(ws.recv(), 10)
    return str(joined), str(said), foreign, str(own)


def page_over_tls(port: int, context: ssl.SSLContext) -> bytes:
    """C{GET /} over HTTPS; the whole response."""
    import socket

    with socket.create_connection((HOST, port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=HOST) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: chat.example.com\r\nConnection: close\r\n\r\n")
        chunks = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            chunk = tls.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
