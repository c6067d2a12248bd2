"""
Blocking helpers for the real-browser end-to-end test (L{tests.test_browser}):
a C{twistd txratchet} server in a subprocess, and a headless Debian Chromium
driven by Selenium through Debian's chromedriver.

Everything here blocks; the test runs it in threads.  Nothing here contacts
anything but 127.0.0.1: the browser is started with flags that switch off
its background traffic and with a host resolver that resolves no name, and
Selenium is handed the driver and browser paths so that Selenium Manager has
nothing to download.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

INSTALL_HINT = (
    "the browser test needs Debian's Chromium and its driver: "
    "`apt-get update && apt-get install -y chromium chromium-driver` "
    "(scripts/test.sh does this when run as root)"
)

REPO_ROOT = Path(__file__).resolve().parent.parent

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    # Belt and braces for "only 127.0.0.1": no host name resolves at all
    # (the page is loaded by IP) but localhost, which Chromium itself maps
    # to loopback (a second host name for a second cookie jar: the
    # flaskchat test); no proxy, no pings or metrics.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    "--no-proxy-server",
    "--no-pings",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-extensions",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    "--window-size=900,760",
]


def missing_browser_parts() -> list[str]:
    """
    What the browser test needs and does not find: the Chromium binary, the
    chromedriver binary, the C{selenium} package.  Empty when all are there.
    """
    missing = []
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            missing.append(f"{path} is missing ({INSTALL_HINT})")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append(
            f"the Python package 'selenium' is missing (pip install selenium into {sys.prefix})"
        )
    return missing


def spki_pin_flag(cert_path: Path) -> str:
    """
    The Chromium flag that trusts the key of the certificate at
    C{cert_path} alone (a test's self-signed one), not every certificate
    as C{--ignore-certificate-errors} would: its SPKI SHA-256, base64.
    """
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(Path(cert_path).read_bytes()).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")
    return f"--ignore-certificate-errors-spki-list={digest}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _twistd_command() -> list[str]:
    script = Path(sys.executable).with_name("twistd")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


class DemoServer:
    """
    C{twistd -n txratchet} serving the chat demo on a free 127.0.0.1 port, in
    a subprocess whose output goes to a log file.  The work tree comes first
    on the subprocess's path, so the code under test is this checkout's even
    when an older copy is installed.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.logPath = workdir / "twistd.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 15.0, attempts: int = 3) -> None:
        """
        Start the server and wait (bounded) until its port accepts TCP.  A
        port taken between L{free_port} and the server's bind is retried.

        @raise RuntimeError: if it does not come up; the message has its log.
        """
        for attempt in range(attempts):
            self.port = free_port()
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in [str(REPO_ROOT), env.get("PYTHONPATH", "")] if p
            )
            env["PYTHONUNBUFFERED"] = "1"
            command = [
                *_twistd_command(),
                "-n",
                "--pidfile=",
                "txratchet",
                "--port",
                f"tcp:{self.port}:interface=127.0.0.1",
            ]
            with open(self.logPath, "ab") as log:
                log.write(f"==> attempt {attempt + 1}: {command}\n".encode())
                log.flush()
                self.process = subprocess.Popen(
                    command,
                    cwd=self.workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._waitListening(timeout):
                return
            self.stop()
            if "Address already in use" not in self.log():
                break
        raise RuntimeError(f"twistd txratchet did not start; its log:\n{self.log()}")

    def _waitListening(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def log(self) -> str:
        try:
            return self.logPath.read_text("utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 5 s; returns the exit status."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        return process.returncode


class Browser:
    """
    A headless Chromium under Selenium with a fresh profile in a temporary
    directory (removed by L{quit}).
    """

    def __init__(self, workdir: Path, extraFlags: list[str] | None = None) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir))
        self.driverLog = workdir / "chromedriver.log"
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in [*CHROMIUM_FLAGS, *(extraFlags or [])]:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=CHROMEDRIVER, log_output=str(self.driverLog))
        self.driver: Any = webdriver.Chrome(service=service, options=options)
        self.driver.set_page_load_timeout(15)
        self.driver.set_script_timeout(10)

    def wait(self, timeout: float = 10.0) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.05)

    def text(self, css: str) -> str:
        from selenium.webdriver.common.by import By

        return str(self.driver.find_element(By.CSS_SELECTOR, css).text)

    def logEntries(self) -> list[tuple[str, str]]:
        """The chat log as C{(text, class)} pairs, read from the DOM."""
        entries = self.driver.execute_script(
            "return Array.from(document.querySelectorAll('#log p'))"
            ".map(p => [p.textContent, p.className]);"
        )
        return [(str(t), str(c)) for t, c in entries]

    def consoleLog(self) -> str:
        """The page's console messages so far (for failure messages)."""
        try:
            entries = self.driver.get_log("browser")
        except Exception as e:
            return f"(unavailable: {e!r})"
        return "\n".join(f"{e.get('level')} {e.get('message')}" for e in entries)

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
