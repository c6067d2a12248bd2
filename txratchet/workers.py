"""
C{--workers N}: several processes serving one port.

The master opens the listening sockets itself and starts N C{twistd
txratchet} children that inherit them (C{--inherit-fd}); the kernel spreads
new connections over the processes that accept on the same socket. A child
that dies is started again (with a pause when they die fast); stopping the
master (SIGTERM) stops every child gracefully: each sends 1001 to its peers
and waits for their close answers.

Peers in different processes reach each other through a backplane
(C{--backplane redis://...}).

Each child logs with its worker number (C{[worker 1 ...]}, see
L{workerLogObserver}); with C{--metrics}, each serves its metrics on a
private UNIX socket, and the master answers for all of them
(L{txratchet.metrics.WorkerMetricsResource}).

A worker must not outlive its master, however the master ends (even
SIGKILL, which no handler sees): each child inherits the read end of a pipe
whose write end only the master holds (C{--master-fd}); the kernel closes
it when the master dies, and the child, which watches for that end of
file, stops gracefully (L{MasterLink}).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from twisted.application.service import Service
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IProcessTransport, IReadDescriptor, IStreamClientEndpoint
from twisted.internet.main import CONNECTION_DONE, CONNECTION_LOST
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import FileLogObserver, ILogObserver, Logger, formatEventAsClassicLogText
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()

#: The environment variable that tells a child its worker number.
WORKER_ENV = "TXRATCHET_WORKER"


def workerLogObserver() -> ILogObserver:
    """
    The log observer of a C{--workers} child (twistd's C{--logger}): twistd's
    own format on standard output, each line's system prefixed with the
    worker's number (C{[worker 1 txratchet.connections#info]}), so the
    workers' lines, which share the master's output, tell whose they are.
    """
    worker = os.environ.get(WORKER_ENV, "?")
    out = sys.stdout

    def formatEvent(event: dict[str, Any]) -> str | None:
        system = event.get("log_system")
        if system is None:
            level = event.get("log_level")
            system = f"{event.get('log_namespace', '-')}#{level.name if level else '-'}"
        return formatEventAsClassicLogText({**event, "log_system": f"worker {worker} {system}"})

    return FileLogObserver(out, formatEvent)


def listeningSocket(spec: str, reusePort: bool = False) -> socket.socket:
    """
    Open the socket a C{tcp:PORT[:interface=ADDR][:backlog=N]} endpoint
    string describes; with C{reusePort}, one of several bound to the same
    port (C{SO_REUSEPORT}: the kernel spreads connections over them).
    """
    parts = spec.split(":")
    if parts[0] != "tcp" or len(parts) < 2 or not parts[1].isdigit():
        raise usage.UsageError(f"--workers needs a tcp:PORT endpoint, not {spec!r}")
    options = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
    interface = options.get("interface", "")
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reusePort:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((interface, int(parts[1])))
    sock.listen(int(options.get("backlog", "1024")))
    sock.setblocking(False)
    return sock


class _Child(ProcessProtocol):
    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.ended: Deferred[None] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)
        self.pool._childEnded(self, reason)


class WorkerPool(Service):
    """
    Start C{count} children running C{args} (after C{twistd -n txratchet});
    child I{i} inherits C{sockets[i]} as file descriptors 3, 4, ... (the
    same sockets for all, or each its own C{SO_REUSEPORT} sockets). The
    master keeps them open, so connections wait for a restarted child.

    @param stopTimeout: seconds a child has to stop before it is killed.
    @param metrics: give each child C{--metrics} on a UNIX socket of its
        own, in a private directory made at start (L{metricsEndpoints}).
    """

    def __init__(
        self, count: int, args: Sequence[str], sockets: Sequence[Sequence[socket.socket]],
        stopTimeout: float = 15.0, metrics: bool = False,
    ) -> None:
        self.count = count
        self.metrics = metrics
        self.metricsDir: str | None = None
        self.args = list(args)
        self.sockets = [list(each) for each in sockets]
        self.stopTimeout = stopTimeout
        self.children: dict[int, IProcessTransport] = {}
        self._protocols: dict[int, _Child] = {}
        self._recentDeaths: list[float] = []

    def _spawn(self, index: int) -> None:
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        command = [
            sys.executable, twistd, "-n", "--pidfile=",
            f"--logger={__name__}.workerLogObserver", "txratchet", *self.args,
        ]
        if self.metricsDir is not None:
            path = self._metricsSocket(index)
            if os.path.exists(path):  # left by a worker that died
                os.unlink(path)
            command += ["--metrics", f"unix:{path}:mode=600"]
        childFDs: dict[int, str | int] = {0: "w", 1: 1, 2: 2}
        for offset, sock in enumerate(self.sockets[index]):
            childFDs[3 + offset] = sock.fileno()
        # A pipe only this process writes to: its end of file tells the
        # child that the master is gone (MasterLink).
        masterFd = 3 + len(self.sockets[index])
        childFDs[masterFd] = "w"
        command += ["--master-fd", str(masterFd)]
        protocol = _Child(self, index)
        self._protocols[index] = protocol
        env = {**os.environ, WORKER_ENV: str(index)}
        self.children[index] = reactor.spawnProcess(  # type: ignore[attr-defined]
            protocol, sys.executable, command, env=env, childFDs=childFDs
        )
        log.info("txratchet: worker {index} started (pid {pid})",
                 index=index, pid=self.children[index].pid)

    def startService(self) -> None:
        Service.startService(self)
        if self.metrics:
            # Made now, as the user twistd runs as (after --uid).
            self.metricsDir = tempfile.mkdtemp(prefix="txratchet-metrics-")
        for index in range(self.count):
            self._spawn(index)

    def _metricsSocket(self, index: int) -> str:
        assert self.metricsDir is not None
        return os.path.join(self.metricsDir, f"worker-{index}.sock")

    def metricsEndpoints(self) -> dict[int, IStreamClientEndpoint]:
        """
        Where each worker serves its metrics (none before start, or
        without C{metrics}).
        """
        if self.metricsDir is None:
            return {}
        return {
            index: UNIXClientEndpoint(reactor, self._metricsSocket(index), timeout=5)
            for index in range(self.count)
        }

    def _childEnded(self, child: _Child, reason: Failure) -> None:
        self.children.pop(child.index, None)
        if not self.running:
            return
        now = reactor.seconds()  # type: ignore[attr-defined]
        self._recentDeaths = [t for t in self._recentDeaths if now - t < 10] + [now]
        delay = 0.1 if len(self._recentDeaths) < 5 else 5.0
        log.warn(
            "txratchet: worker {index} ended ({reason}); starting it again in {delay}s",
            index=child.index, reason=reason.getErrorMessage(), delay=delay,
        )
        reactor.callLater(delay, self._respawn, child.index)  # type: ignore[attr-defined]

    def _respawn(self, index: int) -> None:
        if self.running and index not in self.children:
            self._spawn(index)

    def stopService(self) -> Deferred[object]:
        Service.stopService(self)
        waits = []
        for index, process in list(self.children.items()):
            waits.append(self._protocols[index].ended)
            try:
                process.signalProcess("TERM")
            except Exception:
                pass
        killer = reactor.callLater(self.stopTimeout, self._kill)  # type: ignore[attr-defined]

        def done(result: object) -> object:
            if killer.active():
                killer.cancel()
            for each in self.sockets:
                for sock in each:
                    sock.close()
            if self.metricsDir is not None:
                shutil.rmtree(self.metricsDir, ignore_errors=True)
            log.info("txratchet: every worker stopped")
            return result

        return DeferredList(waits).addBoth(done)

    def _kill(self) -> None:
        for process in list(self.children.values()):
            try:
                process.signalProcess(signal.SIGKILL)
            except Exception:
                pass


@implementer(IReadDescriptor)
class _PipeEnd:
    """
    The read end of the master's pipe, watched by the reactor: nothing is
    ever written to it, so the only event is its end of file.
    """

    def __init__(self, fd: int, ended: Callable[[], None]) -> None:
        self.fd = fd
        self.ended = ended

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return "master-pipe"

    # Any: IReadDescriptor declares a Failure, but the reactor takes an
    # exception instance, which is what Twisted's own readers return.
    def doRead(self) -> Any:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return None
        except OSError:
            return CONNECTION_LOST
        return None if data else CONNECTION_DONE

    def connectionLost(self, reason: Failure) -> None:
        self.ended()


class MasterLink(Service):
    """
    A C{--workers} child's tie to its master.

    When the master is gone (its pipe C{fd} reads end of file: the kernel
    closed the write end, whatever killed the master), stop this worker the
    way SIGTERM would: peers get 1001 and the port is closed. A pipe rather
    than C{prctl(PR_SET_PDEATHSIG)} (Linux only, tied to the thread that
    forked, racy when the parent dies before the call) or polling
    C{os.getppid()} (periodic wake-ups, a delay, and subreapers): the end of
    file is immediate, portable, and already there when the master died
    before this process started.

    Also, a stop signal while already stopping is ignored: a worker usually
    gets two (Ctrl-C or a service manager signals the whole process group,
    then the master passes SIGTERM on), and Twisted would answer the second
    with a C{ReactorNotRunning} traceback.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.stopping = False
        self._reader: _PipeEnd | None = None

    def startService(self) -> None:
        Service.startService(self)
        os.set_inheritable(self.fd, False)  # a grandchild must not hold it
        os.set_blocking(self.fd, False)
        self._reader = _PipeEnd(self.fd, self._masterGone)
        reactor.addReader(self._reader)  # type: ignore[attr-defined]
        reactor.callWhenRunning(self._wrapSignalHandlers)  # type: ignore[attr-defined]

    def _wrapSignalHandlers(self) -> None:
        # Twisted installs its handlers as the reactor starts, after
        # twistd started the services: wrap them now.
        for number in (signal.SIGTERM, signal.SIGINT):
            handler = signal.getsignal(number)
            if callable(handler):
                signal.signal(number, self._once(handler))

    def _once(
        self, handler: Callable[[int, FrameType | None], object]
    ) -> Callable[[int, FrameType | None], None]:
        def stopOnce(number: int, frame: FrameType | None) -> None:
            if not self.stopping:
                self.stopping = True
                handler(number, frame)

        return stopOnce

    def _masterGone(self) -> None:
        self._reader = None
        if self.stopping:
            return
        self.stopping = True
        log.warn("txratchet: the master process is gone; this worker stops")
        try:
            reactor.stop()  # type: ignore[attr-defined]
        except ReactorNotRunning:
            pass

    def stopService(self) -> None:
        Service.stopService(self)
        self.stopping = True
        if self._reader is not None:
            reactor.removeReader(self._reader)  # type: ignore[attr-defined]
            self._reader = None


def childArguments(rawArgs: Sequence[str], drop: Sequence[str] = ("--workers",)) -> list[str]:
    """
    The plugin arguments for a child: the master's, without the options
    in C{drop} (C{--workers}; whatever the spelling) and their values.
    """
    out: list[str] = []
    skip = False
    for arg in rawArgs:
        if skip:
            skip = False
            continue
        if arg in drop:
            skip = True
            continue
        if arg.startswith(tuple(f"{option}=" for option in drop)):
            continue
        out.append(arg)
    return out
