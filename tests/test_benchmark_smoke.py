"""
A few-second smoke of the benchmark, so that it cannot rot: the C load
generator compiles, passes its self-test, and drives every protocol family
of the txratchet benchmark server for a second without an error, and
permessage-deflate with varied JSON messages; and the fan-out scenario runs
against the README's Chat under twistd, started the way benchmarks/run.py
starts it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.test_twistd import freePort, waitForPort

ROOT = Path(__file__).resolve().parent.parent


def benchmarkRunner():
    """benchmarks/run.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("benchmark_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BenchmarkSmokeTests(TestCase):
    timeout = 120

    def buildLoadgen(self) -> Path:
        cc = shutil.which("gcc") or shutil.which("cc")
        if cc is None:
            self.fail("no C compiler (gcc) to build benchmarks/loadgen.c")
        build = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, build, True)
        loadgen = build / "loadgen"
        subprocess.run([cc, "-O2", "-o", str(loadgen), str(ROOT / "benchmarks" / "loadgen.c"), "-lz"],
                       check=True, timeout=120)
        selftest = subprocess.run([str(loadgen), "--selftest"], capture_output=True, text=True,
                                  timeout=60)
        self.assertEqual(selftest.returncode, 0, selftest.stdout + selftest.stderr)
        return loadgen

    def test_loadgenAgainstTxratchet(self):
        loadgen = self.buildLoadgen()

        port = freePort()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "servers" / "txratchet_server.py"),
             "--port", str(port), "--app", "echo", "--compression"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )

        def stop():
            server.terminate()
            server.wait(10)
            server.stdout.close()

        self.addCleanup(stop)

        def run():
            waitForPort(port, server)
            results = {}
            # the plain runs offer no extension, so the server's compression stays unused
            runs = {proto: ["--proto", proto, "--size", "32"] for proto in ("rfc6455", "hybi08", "hixie76")}
            runs["rfc6455-deflate"] = ["--proto", "rfc6455", "--size", "200", "--json", "--deflate"]
            for name, args in runs.items():
                out = subprocess.run(
                    [str(loadgen), "--port", str(port), *args, "--scenario", "echo",
                     "--conns", "4", "--inflight", "4", "--warmup", "0.2", "--duration", "1"],
                    capture_output=True, text=True, timeout=60,
                )
                results[name] = json.loads(out.stdout.strip().splitlines()[-1])
            return results

        def check(results):
            for proto, result in results.items():
                self.assertTrue(result["ok"], (proto, result))
                self.assertEqual((result["errors"], result["proto_errors"], result["mismatches"]),
                                 (0, 0, 0), proto)
                self.assertGreater(result["rate"], 0, proto)
            deflate = results["rfc6455-deflate"]
            self.assertTrue(deflate["deflate_answer"].startswith("permessage-deflate"), deflate)
            self.assertGreater(deflate["compressed_in"], 0, deflate)
            self.assertGreater(deflate["compressed_out"], 0, deflate)

        return deferToThread(run).addCallback(check)

    def test_fanoutAgainstTwistdChat(self):
        """
        The fan-out scenario at window 1 against C{twistd -n txratchet --app
        examples.chat.Chat}, the command and environment benchmarks/run.py
        uses: every receiver gets every message in order, and the delivery
        latency is sampled.
        """
        loadgen = self.buildLoadgen()
        run = benchmarkRunner()
        imports = run.check_imports("txratchet")
        self.assertEqual(Path(imports["txratchet"]).resolve().parent.parent, ROOT)
        port = freePort()
        env, cwd = run.server_env("txratchet")
        cmd = run.server_cmd("txratchet", "broadcast", port)
        self.assertIn("examples.chat.Chat", cmd)
        server = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)

        def stop():
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            server.stdout.close()

        self.addCleanup(stop)

        def fanout():
            waitForPort(port, server)
            out = subprocess.run(
                [str(loadgen), "--port", str(port), "--scenario", "broadcast", "--receivers", "20",
                 "--window", "1", "--size", "64", "--warmup", "0.2", "--duration", "1"],
                capture_output=True, text=True, timeout=60,
            )
            return json.loads(out.stdout.strip().splitlines()[-1])

        def check(result):
            self.assertTrue(result["ok"], result)
            self.assertEqual((result["errors"], result["mismatches"], result["order_errors"]), (0, 0, 0), result)
            self.assertGreater(result["rate"], 0, result)
            # no more deliveries than 20 receivers x the messages sent
            self.assertGreaterEqual(result["sent"] * 20, result["count"], result)
            self.assertGreater(result["samples"], 0, result)
            self.assertLessEqual(result["p50_us"], result["p99_us"], result)

        return deferToThread(fanout).addCallback(check)
