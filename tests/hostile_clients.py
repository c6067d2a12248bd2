"""
Plumbing for the hostile-client tests (L{tests.test_hostile}): the echo
example under C{twistd} as a real subprocess, its memory read from C{/proc},
and small blocking socket helpers for attackers that misbehave on purpose.

Everything is plain blocking code with explicit deadlines, on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from tests import rawclients

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
TWISTD = str(Path(sys.executable).with_name("twistd"))

#: Linux's TCP_REPAIR socket option: a socket closed in repair mode vanishes
#: without sending FIN or RST (needs CAP_NET_ADMIN).
TCP_REPAIR = 19

MiB = 1024 * 1024


def freePort() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# The server under attack
# ---------------------------------------------------------------------------


class EchoServer:
    """
    C{twistd -n txratchet --app examples.echo.Echo} on a free loopback port.

    Its log goes to a temporary file, not a pipe: a pipe nobody reads would
    fill up with one log line per refused attacker and block the server.
    """

    def __init__(self, *args: str, portOptions: str = "") -> None:
        self.port = freePort()
        self.args = [
            TWISTD, "-n", "--pidfile=", "txratchet",
            "--app", "examples.echo.Echo",
            "--port", f"tcp:{self.port}:interface={HOST}{portOptions}",
            *args,
        ]
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(
            self.args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.pid = self.proc.pid

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def logTail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def waitListening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"twistd exited with {self.proc.returncode}:\n{self.log()}"
                )
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"twistd did not listen on {self.port} within {timeout}s")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    # -- memory, from /proc ---------------------------------------------------

    def _status(self, field: str) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])  # kB
        raise AssertionError(f"no {field} in /proc/{self.pid}/status")

    def rss(self) -> int:
        """Resident set size now, in KiB."""
        return self._status("VmRSS")

    def peak(self) -> int:
        """Peak resident set size (since the last L{resetPeak}), in KiB."""
        return self._status("VmHWM")

    def resetPeak(self) -> bool:
        """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0)."""
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def settledRss(self, seconds: float = 0.3) -> int:
        time.sleep(seconds)
        return self.rss()

    def fdCount(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def establishedFrom(self, clientPort: int) -> bool:
        """
        Does the server still hold a TCP connection (any state but
        LISTEN/CLOSE) from C{clientPort} on 127.0.0.1?
        """
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                local, remote, state = parts[1], parts[2], parts[3]
                lport = int(local.split(":")[1], 16)
                rport = int(remote.split(":")[1], 16)
                if lport == self.port and rport == clientPort and state not in ("0A", "07"):
                    return True
        return False


# ---------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------


class TunedHybiClient(rawclients.HybiClient):
    """
    A L{rawclients.HybiClient} whose socket buffers are set before it
    connects (so the TCP window it advertises stays small).
    """

    def __init__(self, host: str, port: int, rcvbuf: int | None = None,
                 sndbuf: int | None = None, **kw: object) -> None:
        super().__init__(host, port, **kw)  # type: ignore[arg-type]
        self.rcvbuf = rcvbuf
        self.sndbuf = sndbuf

    def _open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        if self.sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
        sock.settimeout(self.timeout)
        sock.connect((self.host, self.port))
        self.sock = sock


def echoRoundTrip(port: int, timeout: float = 5.0) -> tuple[str, bytes]:
    """A normal client: text and binary echoed, then a clean close."""
    c = rawclients.HybiClient(HOST, port, timeout=timeout)
    c.connect()
    try:
        c.send_text("still serving")
        text = c.recv_text()
        c.send_binary(b"\x00\xffok")
        opcode, data = c.recv_message()
        assert opcode == rawclients.OP_BINARY, opcode
        c.close()
    finally:
        c._close_socket()
    return text, data


ZERO_KEY = b"\x00\x00\x00\x00"


def maskedHeader(opcode: int, length: int, fin: bool = True, key: bytes = ZERO_KEY,
                 force64: bool = False) -> bytes:
    """
    The header of a masked client frame declaring C{length} (any 64-bit
    value, even invalid ones). With the all-zero key the payload goes on the
    wire as it is, so floods need no per-frame masking work.
    """
    b0 = (0x80 if fin else 0) | opcode
    if length < 126 and not force64:
        head = struct.pack(">BB", b0, 0x80 | length)
    elif length < 0x10000 and not force64:
        head = struct.pack(">BBH", b0, 0x80 | 126, length)
    else:
        head = struct.pack(">BBQ", b0, 0x80 | 127, length)
    return head + key


def readUntilClosed(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """
    Read until the peer closes (EOF or reset) or C{timeout} passes.

    @return: C{(received, closed)}.
    """
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return b"".join(chunks), False
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return b"".join(chunks), False
        except (ConnectionResetError, ConnectionAbortedError):
            return b"".join(chunks), True
        if not data:
            return b"".join(chunks), True
        chunks.append(data)


def sendAndCollect(sock: socket.socket, data: bytes, timeout: float) -> tuple[int, bytes, bool]:
    """
    Send C{data} as fast as the peer takes it while collecting what it
    answers, until the peer closes (EOF or reset) or C{timeout} passes.
    Sending stops early if the peer closes or resets.

    @return: C{(sent, received, closed)}: C{sent} counts the bytes the
        local kernel accepted (not necessarily read by the peer).
    """
    sock.setblocking(False)
    deadline = time.monotonic() + timeout
    view = memoryview(data)
    sent = 0
    received: list[bytes] = []
    broken = False
    try:
        while time.monotonic() < deadline:
            sending = sent < len(data) and not broken
            r, w, _ = select.select([sock], [sock] if sending else [], [], 0.05)
            if r:
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    chunk = None
                except (ConnectionResetError, ConnectionAbortedError):
                    chunk = b""
                if chunk == b"":
                    return sent, b"".join(received), True
                if chunk:
                    received.append(chunk)
            if sending and w:
                try:
                    sent += sock.send(view[sent : sent + 256 * 1024])
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    # The peer is gone; what it sent first is still readable.
                    broken = True
        return sent, b"".join(received), False
    finally:
        sock.setblocking(True)


def floodUntilStalled(sock: socket.socket, chunks: Iterable[bytes], timeout: float,
                      stallAfter: float) -> tuple[int, bool]:
    """
    Send C{chunks} in order without ever reading, until all are sent, the
    peer stops taking bytes for C{stallAfter} seconds (it stopped reading),
    or C{timeout} passes.

    @return: C{(sent, stalled)}: bytes sent, and whether sending stalled.
    """
    deadline = time.monotonic() + timeout
    sent = 0
    sock.settimeout(stallAfter)
    for chunk in chunks:
        view = memoryview(chunk)
        pos = 0
        while pos < len(view):
            if time.monotonic() >= deadline:
                return sent, False
            try:
                n = sock.send(view[pos:])
            except TimeoutError:
                return sent, True
            pos += n
            sent += n
    return sent, False


def vanish(sock: socket.socket) -> bool:
    """
    Close C{sock} without telling the peer (no FIN, no RST), as a host that
    lost power would. Returns False when the kernel does not allow it.
    """
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    except OSError:
        return False
    sock.close()
    return True


def raiseFdLimit(wanted: int) -> tuple[int, int]:
    """
    Raise this process's RLIMIT_NOFILE soft limit to at least C{wanted}
    (as far as the hard limit allows); child processes inherit it.

    @return: the C{(old, new)} soft limits.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = soft
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return soft, new


def closeQuietly(*socks: socket.socket | None) -> None:
    for s in socks:
        if s is not None:
            with contextlib.suppress(OSError):
                s.close()


def serverQueues(serverPort: int, clientPort: int) -> tuple[int, int] | None:
    """
    The server's socket for the connection from C{clientPort}: C{(tx, rx)},
    bytes it sent that are not acknowledged yet and bytes it has not read
    yet (the tx_queue and rx_queue columns of /proc/net/tcp), or None when
    there is no such socket.
    """
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            lport = int(parts[1].split(":")[1], 16)
            rport = int(parts[2].split(":")[1], 16)
            if lport == serverPort and rport == clientPort:
                tx, rx = parts[4].split(":")
                return int(tx, 16), int(rx, 16)
    return None


def serverRecvQueue(serverPort: int, clientPort: int) -> int | None:
    """Bytes the server has not read yet from C{clientPort}, or None."""
    queues = serverQueues(serverPort, clientPort)
    return None if queues is None else queues[1]


def waitAllClosed(socks: list[socket.socket], timeout: float) -> dict[socket.socket, tuple[float, bytes]]:
    """
    Read (and keep) what each socket receives until its peer closes it.

    @return: C{{sock: (monotonic time it closed, bytes received)}} for the
        sockets that closed within C{timeout}.
    """
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    got: dict[socket.socket, bytearray] = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, s)
        got[s] = bytearray()
    closed: dict[socket.socket, tuple[float, bytes]] = {}
    try:
        while len(closed) < len(socks):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for key, _ in sel.select(min(remaining, 0.1)):
                sock: socket.socket = key.data
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except (ConnectionResetError, ConnectionAbortedError):
                    data = b""
                if data:
                    got[sock] += data
                else:
                    closed[sock] = (time.monotonic(), bytes(got[sock]))
                    sel.unregister(sock)
    finally:
        sel.close()
        for s in socks:
            with contextlib.suppress(OSError):
                s.setblocking(True)
    return closed
