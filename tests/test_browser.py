"""
A real browser against C{twistd txratchet}: headless Debian Chromium, driven
by Selenium, loads the chat demo page and chats over its WebSocket (RFC 6455)
with a Hixie-76 and a HyBi-08 client from L{tests.rawclients}, all joined to
the same chat on the same port as the page.

Chromium and chromedriver are not optional: if they are missing the test
fails (CI installs them; see L{tests.browser_helpers.INSTALL_HINT}).
A screenshot of the page is left in a temporary directory; its path is
printed.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.internet import threads
from twisted.trial.unittest import TestCase

try:
    from tests import browser_helpers, rawclients
except ImportError:  # pragma: no cover - when tests/ itself is on sys.path
    import browser_helpers  # type: ignore[no-redef]
    import rawclients  # type: ignore[no-redef]


def _isNotice(text: str) -> bool:
    return text.startswith("* ")


def _recvHixieChat(client: rawclients.Hixie76Client, notices: list[str]) -> str:
    """The next chat message on a Hixie-76 client; notices go to C{notices}."""
    while True:
        message = client.recv_message()
        if message is None:
            raise AssertionError(f"hixie-76 client: server closed; notices: {notices}")
        if not _isNotice(message):
            return message
        notices.append(message)


def _recvHybiChat(client: rawclients.HybiClient, notices: list[str]) -> str:
    """The next chat message on a HyBi client, which must be a text frame."""
    while True:
        opcode, payload = client.recv_message()
        if opcode != rawclients.OP_TEXT:
            raise AssertionError(
                f"hybi-08 client: expected a text message, got opcode {opcode:#x} "
                f"{payload!r}; notices: {notices}"
            )
        text = payload.decode("utf-8")
        if not _isNotice(text):
            return text
        notices.append(text)


class BrowserChatTests(TestCase):
    """
    The chat demo in headless Chromium, with raw Hixie-76 and HyBi-08 peers.
    """

    timeout = 90

    def setUp(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="txratchet-browser-"))
        self.addCleanup(shutil.rmtree, self.workdir, True)

    def test_chat_between_browser_and_raw_clients(self) -> Any:
        missing = browser_helpers.missing_browser_parts()
        if missing:
            self.fail("cannot run the browser test:\n  " + "\n  ".join(missing))
        return threads.deferToThread(self._scenario)

    def _scenario(self) -> None:
        from selenium.common.exceptions import TimeoutException

        started = time.monotonic()
        server = browser_helpers.DemoServer(self.workdir)
        self.addCleanup(threads.deferToThread, server.stop)
        server.start()
        port = server.port

        browser = browser_helpers.Browser(self.workdir)
        self.addCleanup(threads.deferToThread, browser.quit)

        def failWithLogs(message: str) -> None:
            self.fail(
                f"{message}\n--- browser console ---\n{browser.consoleLog()}"
                f"\n--- twistd log ---\n{server.log()}"
            )

        def waitFor(condition: Any, what: str, timeout: float = 10.0) -> None:
            try:
                browser.wait(timeout).until(lambda _d: condition())
            except TimeoutException:
                failWithLogs(
                    f"timed out after {timeout}s waiting for {what}; "
                    f"#status={browser.text('#status')!r}, "
                    f"#log={browser.logEntries()!r}"
                )

        driver = browser.driver

        # 1. The page comes over HTTP from the WebSocket's own port and its
        #    socket opens.
        driver.get(server.url)
        self.assertEqual(driver.title, "txratchet chat")
        self.assertEqual(driver.current_url, server.url)
        expectedStatus = f"connected to ws://127.0.0.1:{port}/"
        waitFor(lambda: browser.text("#status") == expectedStatus, "#status to connect")
        self.assertEqual(browser.text("#status"), expectedStatus)
        self.assertTrue(driver.find_element("id", "text").is_enabled())
        self.assertEqual(browser.logEntries(), [])

        # 2. Two raw clients of the old protocols join the same chat.
        hixie = rawclients.Hixie76Client("127.0.0.1", port)
        hixie.connect()
        self.addCleanup(hixie._close_socket)
        hybi = rawclients.HybiClient("127.0.0.1", port, version=8)
        hybi.connect()
        self.addCleanup(hybi._close_socket)
        joined = [
            ("* someone joined (hixie-76); 2 here", "notice"),
            ("* someone joined (hybi-08); 3 here", "notice"),
        ]
        waitFor(lambda: browser.logEntries() == joined, "both join notices")
        hixieNotices: list[str] = []
        hybiNotices: list[str] = []

        # The browser user types and submits; both raw clients get it.
        fromBrowser = "hello from Chromium, <b>not bold</b> & ünïcödé ✓"
        driver.find_element("id", "text").send_keys(fromBrowser)
        driver.find_element("id", "send").click()
        waitFor(
            lambda: browser.logEntries()[-1:] == [(fromBrowser, "me")],
            "the browser to show what it sent",
        )
        self.assertEqual(driver.find_element("id", "text").get_attribute("value"), "")
        self.assertEqual(_recvHixieChat(hixie, hixieNotices), fromBrowser)
        self.assertEqual(_recvHybiChat(hybi, hybiNotices), fromBrowser)
        # Hixie-76 joined first, so it was told of HyBi-08 joining.
        self.assertEqual(hixieNotices, ["* someone joined (hybi-08); 3 here"])
        self.assertEqual(hybiNotices, [])

        # 3. What the raw clients send shows up in the browser (and reaches
        #    the other raw client, but not the sender).
        fromHixie = "hello from Hixie-76 ✓"
        fromHybi = "hello from HyBi-08 ✓"
        hixie.send_text(fromHixie)
        self.assertEqual(_recvHybiChat(hybi, hybiNotices), fromHixie)
        hybi.send_text(fromHybi)
        self.assertEqual(_recvHixieChat(hixie, hixieNotices), fromHybi)
        expected = [*joined, (fromBrowser, "me"), (fromHixie, ""), (fromHybi, "")]
        waitFor(lambda: browser.logEntries() == expected, "the raw clients' messages")
        # The log is rendered as text: the markup the user typed is not HTML.
        self.assertEqual(driver.find_elements("css selector", "#log b"), [])

        # 4. A screenshot for a human to look at.
        # It stays for a human to look at; the rest of the files are removed.
        shot = Path(tempfile.mkdtemp(prefix="txratchet-screenshot-")) / "txratchet-chat.png"
        self.assertTrue(driver.save_screenshot(str(shot)))
        self.assertEqual(shot.read_bytes()[:8], b"\x89PNG\r\n\x1a\n")
        print(f"\nbrowser screenshot: {shot}")

        # 5. The browser leaves (reload: its socket closes, a new one opens);
        #    the raw clients are told both, in either order (two connections).
        driver.refresh()
        waitFor(lambda: browser.text("#status") == expectedStatus, "#status after reload")
        for name, recv in (
            ("hixie-76", hixie.recv_message),
            ("hybi-08", lambda: hybi.recv_text()),
        ):
            notices = sorted(str(recv()) for _ in range(2))
            self.assertEqual(len(notices), 2, name)
            self.assertTrue(
                notices[0].startswith("* someone joined (rfc6455); ")
                and notices[1].startswith("* someone left; "),
                f"{name} client got {notices}",
            )

        # 6. The raw clients leave: the server answers their closing
        #    handshakes and closes TCP, and the reloaded page is told.
        self.assertEqual(hybi.close(), (1000, ""))
        self.assertTrue(hybi.server_closed_tcp, "server kept hybi-08 TCP open")
        hixie.close()
        self.assertTrue(hixie.received_close_frame, "no hixie-76 closing frame")
        self.assertTrue(hixie.server_closed_tcp, "server kept hixie-76 TCP open")
        left = [
            ("* someone left; 2 here", "notice"),
            ("* someone left; 1 here", "notice"),
        ]
        waitFor(lambda: browser.logEntries()[-2:] == left, "the leave notices")
        self.assertEqual(browser.text("#status"), expectedStatus)

        # No script errors in the page (the browser's own favicon request
        # is answered 404 by the demo, which is fine).
        console = [
            line
            for line in browser.consoleLog().splitlines()
            if line.startswith("SEVERE") and "/favicon.ico" not in line
        ]
        if console:
            failWithLogs(f"the page logged errors: {console}")
        for marker in ("Traceback", "Unhandled"):
            if marker in server.log():
                failWithLogs(f"the server logged {marker!r}")
        print(f"browser test scenario took {time.monotonic() - started:.1f}s")
