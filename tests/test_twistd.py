"""
The twistd plugin, run as a real subprocess: the demo (page and socket on
one port), the examples from the repository root, the line port, and the
plugin being found from the installed package.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests import rawclients

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
TWISTD = str(Path(sys.executable).with_name("twistd"))


def freePort() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def waitForPort(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"twistd exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"twistd did not listen on {port} within {timeout}s")


def readUntil(proc: subprocess.Popen, pattern: bytes, timeout: float = 20.0) -> str:
    """
    Read C{proc}'s output until C{pattern} (a regular expression with one
    group) matches; that group. Bounded by C{timeout}.
    """
    import re
    import select

    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, seen)
        if found:
            return found.group(1).decode()
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            seen += chunk
    raise AssertionError(f"no {pattern!r} in twistd's output: {seen.decode(errors='replace')}")


class TwistdTestCase(TestCase):
    timeout = 90

    def startTwistd(self, *args: str, cwd: Path = ROOT) -> None:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        proc = subprocess.Popen(
            [TWISTD, "-n", "--pidfile=", "txratchet", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

        def stop():
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()

        self.addCleanup(stop)
        return proc


class TwistdPluginTests(TwistdTestCase):
    def test_demoPageAndChatOnOnePort(self):
        port = freePort()
        proc = self.startTwistd("--port", f"tcp:{port}:interface={HOST}", cwd=Path(tempfile.gettempdir()))

        def talk():
            waitForPort(port, proc)
            page = rawclients.raw_request(HOST, port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            missing = rawclients.raw_request(HOST, port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
            a = rawclients.HybiClient(HOST, port, "/")
            a.connect()
            b = rawclients.Hixie76Client(HOST, port, "/")
            b.connect()
            joined = a.recv_text()  # the demo announces the newcomer
            b.send_text("hi from hixie")
            relayed = a.recv_text()
            a.close()
            b.close()
            return page, missing, joined, relayed

        def check(result):
            page, missing, joined, relayed = result
            self.assertTrue(page.startswith(b"HTTP/1.1 200 OK\r\n"), page[:100])
            self.assertIn(b"Content-Type: text/html", page)
            self.assertIn(b"new WebSocket(", page)
            self.assertTrue(missing.startswith(b"HTTP/1.1 404 "))
            self.assertTrue(joined.startswith("* someone joined (hixie-76)"), joined)
            self.assertEqual(relayed, "hi from hixie")

        return deferToThread(talk).addCallback(check)

    def test_demoLogsItsURL(self):
        """
        Issue 14: the demo logs the address to open from the port it really
        listens on (C{scripts/demo.sh --port tcp:9000} printed 8080): here
        C{tcp:0}, so only the logged URL can lead a client to it. And
        C{--families rfc6455} leaves the others 426.
        """
        proc = self.startTwistd(
            "--port", f"tcp:0:interface={HOST}", "--families", "rfc6455",
            cwd=Path(tempfile.gettempdir()),
        )

        def talk():
            url = readUntil(proc, rb"the chat demo is at (http://\S+/) ")
            port = int(url.rsplit(":", 1)[1].rstrip("/"))
            self.assertEqual(url, f"http://{HOST}:{port}/")
            page = rawclients.raw_request(HOST, port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            refused = []
            for client in (
                rawclients.HybiClient(HOST, port, "/", version=8),
                rawclients.Hixie76Client(HOST, port, "/"),
            ):
                try:
                    client.connect()
                except rawclients.HandshakeError as e:
                    refused.append(e.status)
            c = rawclients.HybiClient(HOST, port, "/", version=13)
            c.connect()
            c.close()
            return page, refused

        def check(result):
            page, refused = result
            self.assertIn(b"new WebSocket(", page)
            self.assertEqual(refused, [426, 426])

        return deferToThread(talk).addCallback(check)

    def test_demoWithWorkersLogsItsURL(self):
        """With --workers, the master logs the URL of the port it opened."""
        port = freePort()
        proc = self.startTwistd(
            "--port", f"tcp:{port}:interface={HOST}", "--workers", "2",
            cwd=Path(tempfile.gettempdir()),
        )

        def talk():
            url = readUntil(proc, rb"the chat demo is at (http://\S+/) ")
            waitForPort(port, proc)
            page = rawclients.raw_request(HOST, port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return url, page

        def check(result):
            url, page = result
            self.assertEqual(url, f"http://{HOST}:{port}/")
            self.assertIn(b"new WebSocket(", page)

        return deferToThread(talk).addCallback(check)

    def test_examplesFromRepositoryRoot(self):
        """--app examples.echo.Echo works from the root, with --line-port."""
        port, linePort = freePort(), freePort()
        proc = self.startTwistd(
            "--app", "examples.echo.Echo",
            "--port", f"tcp:{port}:interface={HOST}",
            "--line-port", f"tcp:{linePort}:interface={HOST}",
        )

        def talk():
            waitForPort(port, proc)
            waitForPort(linePort, proc)
            c = rawclients.HybiClient(HOST, port)
            c.connect()
            c.send_binary(b"\x00\x01")
            binary = c.recv_message()
            c.send_text("txt")
            text = c.recv_message()
            c.close()
            with socket.create_connection((HOST, linePort), timeout=5) as s:
                s.sendall(b"line\n")
                line = s.makefile("rb").readline()
            return binary, text, line

        def check(result):
            self.assertEqual(result, ((2, b"\x00\x01"), (1, b"txt"), b"line\n"))

        return deferToThread(talk).addCallback(check)

    def test_chatExample(self):
        port = freePort()
        proc = self.startTwistd("--app", "examples.chat.Chat", "--port", f"tcp:{port}:interface={HOST}")

        def talk():
            waitForPort(port, proc)
            a = rawclients.HybiClient(HOST, port)
            a.connect()
            b = rawclients.HybiClient(HOST, port, version=7)
            b.connect()
            time.sleep(0.2)
            a.send_text("hello b")
            got = b.recv_text()
            a.close()
            b.close()
            return got

        return deferToThread(talk).addCallback(self.assertEqual, "hello b")

    def test_pluginFoundFromInstalledPackage(self):
        """twistd lists the plugin when run outside the source tree."""
        out = subprocess.run(
            [TWISTD, "--help"], cwd=tempfile.gettempdir(), capture_output=True, text=True,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, timeout=60,
        )
        self.assertIn("txratchet", out.stdout)

    def test_badApp(self):
        out = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "txratchet", "--app", "no.such.App"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("cannot import --app 'no.such.App'", out.stdout + out.stderr)


class GracefulShutdownTests(TwistdTestCase):
    """SIGTERM closes every peer with 1001 Going Away, then twistd exits."""

    def test_sigtermSendsGoingAway(self):
        port, linePort = freePort(), freePort()
        proc = self.startTwistd(
            "--app", "examples.echo.Echo",
            "--port", f"tcp:{port}:interface={HOST}",
            "--line-port", f"tcp:{linePort}:interface={HOST}",
            "--close-timeout", "1",
        )

        def talk():
            waitForPort(port, proc)
            polite = rawclients.HybiClient(HOST, port)
            polite.connect()
            silent = rawclients.HybiClient(HOST, port, version=8)
            silent.connect()
            old = rawclients.Hixie76Client(HOST, port)
            old.connect()
            telnet = socket.create_connection((HOST, linePort), timeout=5)
            polite.send_text("before")
            echoed = polite.recv_text()
            started = time.monotonic()
            proc.terminate()
            politeClose = polite.expect_close()  # replies with a close frame
            politeTcp = polite.wait_tcp_closed()
            silentFrame = silent.recv_frame()  # never answers
            silentTcp = silent.wait_tcp_closed()
            oldClose = old.recv_message()
            lineBye = telnet.makefile("rb").readline()
            code = proc.wait(15)
            return (echoed, politeClose, politeTcp, silentFrame[0], silentFrame[3], silentTcp,
                    oldClose, lineBye, code, time.monotonic() - started)

        def check(r):
            echoed, politeClose, politeTcp, opcode, payload, silentTcp, oldClose, lineBye, code, took = r
            self.assertEqual(echoed, "before")
            self.assertEqual(politeClose, (1001, "Server shutting down"))
            self.assertTrue(politeTcp)
            self.assertEqual((opcode, payload[:2]), (rawclients.OP_CLOSE, b"\x03\xe9"))
            self.assertTrue(silentTcp)
            self.assertIsNone(oldClose)
            self.assertEqual(lineBye, b"Server shutting down\n")
            # twistd re-raises the signal it stopped on once it is done.
            self.assertIn(code, (0, -15))
            self.assertLess(took, 10)

        return deferToThread(talk).addCallback(check)


class WebRootTests(TwistdTestCase):
    """--web-root, --ws-path, --tls-cert/--tls-key, --origin on one TLS port."""

    def test_filesAndSocketOverTLS(self):
        import ssl
        import urllib.request

        from tests.tls import makeCertificate

        root = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, root, True)
        (root / "index.html").write_text("<h1>static page</h1>")
        key, cert = makeCertificate(root)
        port = freePort()
        proc = self.startTwistd(
            "--app", "examples.echo.Echo",
            "--port", f"tcp:{port}:interface={HOST}",
            "--web-root", str(root), "--ws-path", "/",
            "--tls-cert", str(cert), "--tls-key", str(key),
            "--origin", "good.test",
        )

        def talk():
            from websockets.exceptions import InvalidStatus
            from websockets.sync.client import connect

            waitForPort(port, proc)
            context = ssl.create_default_context(cafile=str(cert))
            page = urllib.request.urlopen(f"https://localhost:{port}/", context=context).read()
            with connect(f"wss://localhost:{port}/", ssl=context, origin="https://good.test") as ws:
                ws.send("over tls")
                echoed = ws.recv()
            try:
                connect(f"wss://localhost:{port}/", ssl=context, origin="https://evil.test")
                refused = None
            except InvalidStatus as e:
                refused = e.response.status_code
            return page, echoed, refused

        def check(result):
            self.assertEqual(result, (b"<h1>static page</h1>", "over tls", 403))

        return deferToThread(talk).addCallback(check)


class GracefulShutdownDeadlineTests(TwistdTestCase):
    """
    Shutdown is bounded by --close-timeout, whatever the peers do (issue
    12, item 8): before, one WebSocket peer that sent a close frame and
    stopped reading, or one line peer that stopped reading, kept twistd
    running for ever after SIGTERM.
    """

    def test_sigtermWithPeersThatDoNotRead(self):
        from tests.hostile_clients import closeQuietly, floodUntilStalled
        from tests.test_hostile import closeWithFullBuffer

        port, linePort = freePort(), freePort()
        proc = self.startTwistd(
            "--app", "examples.echo.Echo",
            "--port", f"tcp:{port}:interface={HOST}",
            "--line-port", f"tcp:{linePort}:interface={HOST}",
            "--close-timeout", "2",
        )

        def talk():
            waitForPort(port, proc)
            waitForPort(linePort, proc)
            socks = [closeWithFullBuffer(port)]
            try:
                telnet = socket.socket()
                socks.append(telnet)
                telnet.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                telnet.connect((HOST, linePort))
                lines = (b"y" * 1023 + b"\n") * 1024
                _sent, stalled = floodUntilStalled(telnet, [lines] * 16, timeout=10, stallAfter=1)
                started = time.monotonic()
                proc.terminate()
                try:
                    code = proc.wait(2 + 4)
                except subprocess.TimeoutExpired:
                    code = None
                return stalled, code, time.monotonic() - started
            finally:
                closeQuietly(*socks)

        def check(result):
            stalled, code, took = result
            self.assertTrue(stalled, "the line peer's echo never filled the server's buffer")
            self.assertIsNotNone(code, f"twistd still running {took:.1f} s after SIGTERM")
            self.assertIn(code, (0, -15))

        return deferToThread(talk).addCallback(check)


class NeedsArguments:
    """An application class twistd cannot make: its constructor needs an argument."""

    def __init__(self, greeting):
        self.greeting = greeting

    def onOpen(self, conn):
        pass

    def onMessage(self, conn, message):
        pass

    def onClose(self, conn):
        pass

    def onError(self, conn, failure):
        pass


class CommandLineMistakeTests(TestCase):
    """
    A bad command-line value is one line on stderr naming the problem and
    exit status 1, never a traceback (issue 12, items 24 and 26).
    """

    timeout = 60

    def mistake(self, args, expected, env=None, serving=False):
        """
        Run C{twistd -n txratchet ARGS}; check that it exits with 1 and
        prints exactly one line on stderr, containing C{expected}.
        """
        environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        environ.update(env or {})

        def run():
            return subprocess.run(
                [TWISTD, "-n", "--pidfile=", "txratchet", *args],
                cwd=ROOT, env=environ, capture_output=True, text=True, timeout=30,
            )

        def check(out):
            everything = out.stdout + out.stderr
            self.assertNotIn("Traceback", everything)
            self.assertEqual(out.returncode, 1, everything)
            lines = out.stderr.splitlines()
            self.assertEqual(len(lines), 1, out.stderr)
            self.assertTrue(lines[0].startswith("twistd txratchet: "), lines[0])
            self.assertIn(expected, lines[0])
            # Nothing claims to be serving, and twistd's usage text is not dumped.
            self.assertNotIn("serving", everything)
            self.assertNotIn("Options:", everything)
            return lines[0]

        return deferToThread(run).addCallback(check)

    def test_misspeltApp(self):
        return self.mistake(
            ["--app", "examples.echo.Ecoh"],
            "cannot import --app 'examples.echo.Ecoh': module 'examples.echo' has no attribute 'Ecoh'",
        )

    def test_misspeltAppWithWorkers(self):
        """The master refuses it once (each worker would fail, again and again)."""
        return self.mistake(
            ["--app", "examples.echo.Ecoh", "--workers", "2", "--port", f"tcp:{freePort()}"],
            "cannot import --app 'examples.echo.Ecoh'",
        )

    def test_appNeedsArguments(self):
        return self.mistake(
            ["--app", "tests.test_twistd.NeedsArguments"],
            "--app 'tests.test_twistd.NeedsArguments' needs arguments "
            "(missing a required argument: 'greeting')",
        )

    def test_portNumberWithoutEndpointType(self):
        return self.mistake(
            ["--port", "8131"], "--port 8131 is not an endpoint string: did you mean tcp:8131?"
        )

    def test_unknownEndpointType(self):
        return self.mistake(["--port", "tpc:8131"], "--port 'tpc:8131': Unknown endpoint type")

    def test_backplaneForm(self):
        return self.mistake(
            ["--backplane", "redis:127.0.0.1:6390"],
            "--backplane 'redis:127.0.0.1:6390' is not a redis://host:port URL: "
            "did you mean redis://127.0.0.1:6390?",
        )

    def test_backplaneBadPortHidesThePassword(self):
        def check(line):
            self.assertNotIn("s3cret", line)

        return self.mistake(
            ["--backplane", "redis://:s3cret@127.0.0.1:63x0"],
            "--backplane 'redis://:***@127.0.0.1:63x0': the port must be a number",
        ).addCallback(check)

    def test_redisExtraMissing(self):
        """Without txredisapi: an install hint."""
        shadow = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, shadow, True)
        (shadow / "txredisapi.py").write_text(
            "raise ModuleNotFoundError(\"No module named 'txredisapi'\", name='txredisapi')\n"
        )
        return self.mistake(
            ["--app", "examples.hubchat.HubChat", "--backplane", "redis://127.0.0.1:6390"],
            "pip install 'txratchet[redis]'",
            env={"PYTHONPATH": str(shadow)},
        )

    def test_backplaneTheAppCannotUse(self):
        """Item 26: --backplane for an app that takes none is refused, naming the app."""
        return self.mistake(
            ["--app", "examples.echo.Echo", "--backplane", "redis://127.0.0.1:6390"],
            "--backplane is of no use to --app 'examples.echo.Echo': "
            "it takes no 'backplane' argument",
        )

    def test_badBlock(self):
        return self.mistake(
            ["--block", "10.0.0.0/8,1.2.3.999"], "--block: '1.2.3.999' is not an IP address"
        )

    def test_badTrustedProxy(self):
        return self.mistake(
            ["--trusted-proxy", "nginx"], "--trusted-proxy: 'nginx' is not an IP address"
        )

    def test_webRootMissing(self):
        missing = os.path.join(tempfile.gettempdir(), "txratchet-no-such-directory")
        return self.mistake(
            ["--web-root", missing], f"--web-root {missing!r} is not a directory"
        )

    def test_badNumber(self):
        return self.mistake(
            ["--max-message-size", "1M"], "--max-message-size '1M' is not a whole number"
        )

    def test_unknownOption(self):
        return self.mistake(["--prot", "tcp:8131"], "option --prot not recognized")

    def portInUse(self, *args):
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        return self.mistake(
            ["--port", f"tcp:{port}:interface={HOST}", *args],
            f"cannot listen on tcp:{port}:interface={HOST} (--port): Address already in use",
        )

    def test_portInUse(self):
        """Found when twistd starts the service: still one line, no "serving"."""
        return self.portInUse()

    def test_portInUseWithWorkers(self):
        return self.portInUse("--workers", "2")
