"""
A smoke run of benchmarks/h2bench.py (WebSockets over HTTP/2 against
HTTP/1.1 wss), so that it cannot rot: C{--quick} with 10 sockets per page
runs both measurements against both servers without an error. No
assertion on speed: the figures are for the README, measured by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

ROOT = Path(__file__).resolve().parent.parent


class H2BenchmarkSmokeTests(TestCase):
    timeout = 180

    def test_quick(self):
        """
        Chromium opens the page's sockets over HTTP/2 from the http2 site
        and over HTTP/1.1 from the other (the server counted them by
        C{httpVersion}), at once and one after another; the echo clients
        (HTTP/2 on one connection, HTTP/2 one connection per socket,
        HTTP/1.1) all get echoes back, and the server's CPU is read.
        """
        try:
            import h2  # noqa: F401
        except ImportError:
            raise SkipTest("h2 is not installed (pip install 'twisted[http2]')") from None
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        out = Path(directory) / "h2.json"

        def run():
            return subprocess.run(
                [sys.executable, str(ROOT / "benchmarks" / "h2bench.py"), "--quick",
                 "--sockets", "10", "--out", str(out)],
                env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                timeout=170,
            )

        def check(done):
            self.assertEqual(done.returncode, 0, done.stdout[-3000:] + done.stderr[-3000:])
            results = json.loads(out.read_text())
            echo = results["echo"]
            for mode in ("h2", "h2-1", "h1"):
                self.assertGreater(echo[mode]["median_rate"], 0, mode)
                self.assertGreater(echo[mode]["median_cpu"], 0, mode)
            opening = results["open"]
            if "skipped" in opening:  # no Chromium here: the echo still ran
                return
            # a warm-up round and one measured, each opening 10 sockets two ways
            self.assertEqual(opening["http2"]["sockets_by_version"], {"HTTP/2": 40})
            self.assertEqual(opening["http1.1"]["sockets_by_version"], {"HTTP/1.1": 40})
            self.assertEqual(opening["http2"]["page_protocol"], "h2")
            for name in ("http2", "http1.1"):
                for way in ("at once", "one after another"):
                    self.assertGreater(opening[name][way]["median_ms"], 0, (name, way))

        return deferToThread(run).addCallback(check)
