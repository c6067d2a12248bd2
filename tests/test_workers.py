"""
--workers: several processes on one port, connected by the Redis
backplane; a dead worker is replaced; SIGTERM stops them all gracefully.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from twisted.internet.threads import deferToThread

from tests import rawclients
from tests.services import RedisServer
from tests.test_twistd import HOST, ROOT, TWISTD, TwistdTestCase, freePort, waitForPort


def children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def alive(pid: int) -> bool:
    """Is C{pid} running (a zombie nobody reaped yet counts as ended)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def waitForChildren(pid: int, count: int, timeout: float = 20.0) -> set[int]:
    deadline = time.monotonic() + timeout
    found = children(pid)
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        found = children(pid)
    return found


def killLeftovers(pids: set[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def connectUntilTwoWorkers(port: int, limit: int = 16):
    """Open connections (at most C{limit}) until two workers are seen."""
    byPid: dict[str, rawclients.HybiClient] = {}
    extra = []
    for _ in range(limit):
        c = rawclients.HybiClient(HOST, port)
        c.connect()
        c.send_text("/pid")
        pid = c.recv_text()
        if pid in byPid:
            extra.append(c)
        else:
            byPid[pid] = c
        if len(byPid) == 2:
            break
    return byPid, extra


class WorkersTests(TwistdTestCase):
    timeout = 120

    def test_workersShareThePortAndChat(self):
        workdir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, workdir, True)
        redis = RedisServer(workdir)
        redis.start()
        self.addCleanup(redis.stop)
        port = freePort()
        proc = self.startTwistd(
            "--app", "examples.hubchat.HubChat", "--workers", "2",
            "--backplane", f"redis://127.0.0.1:{redis.port}",
            "--port", f"tcp:{port}:interface={HOST}", "--close-timeout", "2",
        )

        def talk():
            waitForPort(port, proc)
            byPid, extra = connectUntilTwoWorkers(port)
            if len(byPid) < 2:
                return {"workers": len(byPid)}
            (pidA, a), (_, b) = byPid.items()
            time.sleep(0.3)  # subscriptions reach Redis
            a.send_text("across processes ✓")
            relayed = b.recv_text()
            # A worker killed outright is started again.
            before = children(proc.pid)
            victim = int(pidA.split()[1])
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 20
            after = children(proc.pid)
            while (victim in after or len(after) < 2) and time.monotonic() < deadline:
                time.sleep(0.1)
                after = children(proc.pid)
            # Graceful stop: the surviving peer gets 1001 Going Away.
            proc.terminate()
            closing = b.expect_close()
            code = proc.wait(30)
            for c in [a, *extra]:
                c._close_socket()
            return {
                "workers": len(byPid), "relayed": relayed, "before": len(before),
                "replaced": victim not in after and len(after) == 2,
                "closing": closing, "code": code,
            }

        def check(r):
            self.assertEqual(r["workers"], 2, "connections never reached a second worker")
            self.assertEqual(r["relayed"], "across processes ✓")
            self.assertEqual(r["before"], 2)
            self.assertTrue(r["replaced"], "the killed worker was not replaced")
            self.assertEqual(r["closing"][0], 1001)
            self.assertIn(r["code"], (0, -15))

        return deferToThread(talk).addCallback(check)


class MasterGoneTests(TwistdTestCase):
    """
    Workers end with their master, however it ends (issue 12, item 11).
    """

    timeout = 90

    def test_workersEndWhenTheMasterIsKilled(self):
        port = freePort()
        proc = self.startTwistd(
            "--app", "examples.echo.Echo", "--workers", "2",
            "--port", f"tcp:{port}:interface={HOST}", "--close-timeout", "2",
        )

        def talk():
            waitForPort(port, proc)
            workers = waitForChildren(proc.pid, 2)
            self.addCleanup(killLeftovers, workers)
            peer = rawclients.HybiClient(HOST, port, timeout=10)
            peer.connect()
            peer.send_text("hello")
            echoed = peer.recv_text()
            os.kill(proc.pid, signal.SIGKILL)  # no handler runs: only the kernel knows
            proc.wait(10)
            try:
                closing = peer.expect_close()
            except Exception as e:  # the old code: nothing arrives
                closing = repr(e)
            peer._close_socket()
            deadline = time.monotonic() + 15
            while any(alive(p) for p in workers) and time.monotonic() < deadline:
                time.sleep(0.1)
            left = {p for p in workers if alive(p)}
            try:
                socket.create_connection((HOST, port), timeout=2).close()
                accepts = True
            except OSError:
                accepts = False
            return len(workers), echoed, closing, left, accepts

        def check(r):
            count, echoed, closing, left, accepts = r
            self.assertEqual((count, echoed), (2, "hello"))
            self.assertEqual(left, set(), "workers outlived their master")
            self.assertFalse(accepts, "the port still accepts connections")
            self.assertEqual(closing[0], 1001, closing)

        return deferToThread(talk).addCallback(check)


class CleanStopTests(TwistdTestCase):
    """
    Stopping --workers with a Redis backplane logs no traceback and no
    "connection lost" warning (issue 12, item 26).
    """

    timeout = 90

    def test_sigtermToTheProcessGroup(self):
        """
        SIGTERM to the whole process group, as a service manager sends it
        (and Ctrl-C sends SIGINT): every worker gets it twice, from there
        and from the master.
        """
        workdir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, workdir, True)
        redis = RedisServer(workdir)
        redis.start()
        self.addCleanup(redis.stop)
        port = freePort()
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        proc = subprocess.Popen(
            [TWISTD, "-n", "--pidfile=", "txratchet", "--app", "examples.hubchat.HubChat",
             "--workers", "2", "--backplane", f"redis://127.0.0.1:{redis.port}",
             "--port", f"tcp:{port}:interface={HOST}", "--close-timeout", "2"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )

        def kill():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            proc.stdout.close()

        self.addCleanup(kill)

        def talk():
            waitForPort(port, proc)
            workers = waitForChildren(proc.pid, 2)
            self.addCleanup(killLeftovers, workers)
            peer = rawclients.HybiClient(HOST, port)
            peer.connect()
            peer.send_text("/pid")
            peer.recv_text()
            time.sleep(0.3)  # the subscription reaches Redis
            os.killpg(proc.pid, signal.SIGTERM)
            # Not answering keeps that worker stopping for --close-timeout:
            # the master's SIGTERM surely comes in the meantime.
            closing = peer.expect_close(reply=False)
            try:
                code = proc.wait(30)
            except subprocess.TimeoutExpired:
                code = None
            peer._close_socket()
            out = proc.stdout.read() if code is not None else ""
            return len(workers), closing, code, out

        def check(r):
            count, closing, code, out = r
            self.assertEqual(count, 2)
            self.assertEqual(closing[0], 1001)
            self.assertIn(code, (0, -15), out)
            self.assertIn("every worker stopped", out)
            for noise in ("Traceback", "ReactorNotRunning", "reconnecting",
                          "connection lost", "Scheduling retry", "Unhandled"):
                self.assertNotIn(noise, out)

        return deferToThread(talk).addCallback(check)
