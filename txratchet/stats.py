"""
What a running server counts about its connections, and the one-line log
of each connection opened and closed.

Every layer (L{txratchet.WebSocket}, L{txratchet.client.WebSocketClient},
L{txratchet.LineProtocol}) has a L{LayerStats}, C{layer.stats}. The hot
paths add to plain C{int} attributes of a L{FamilyStats} (one C{+=} per
message or read); nothing here imports C{prometheus_client}:
L{txratchet.metrics} reads these numbers when it is scraped.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from constantly import NamedConstant
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel

#: What a C{logConnections} level is to type checkers: a
#: C{twisted.logger.LogLevel} constant (C{LogLevel.info}) is a
#: C{NamedConstant}, as C{Logger.emit} takes it.
Level: TypeAlias = NamedConstant

#: The connection log's namespace (filter on it, or read it in JSON logs).
connectionLog = Logger(namespace="txratchet.connections")


def formatPeer(address: object) -> str:
    """
    C{host:port} for a Twisted address: C{[::1]:8080} for IPv6, the host
    alone when the port is unknown (0: a client named by a trusted proxy),
    the path of a UNIX socket (or C{unix}), else C{str(address)}.
    """
    host = getattr(address, "host", None)  # IAddress declares nothing
    if isinstance(host, str):
        if ":" in host:
            host = f"[{host}]"
        port = getattr(address, "port", 0)
        return f"{host}:{port}" if port else host
    name = getattr(address, "name", None)
    if name is not None or type(address).__name__ == "UNIXAddress":
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        return f"unix:{name}" if name else "unix"
    return str(address)


def _printable(text: str) -> str:
    """
    C{text} as one safe log field: control characters escaped.
    """
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


class FamilyStats:
    """
    The counters of one protocol family (C{rfc6455}, C{hybi-08},
    C{hybi-07}, C{hixie-76}, C{line}) on one layer. The connection keeps a
    reference to its family's, so counting a message is one C{+=}.

    @ivar opened: connections that opened.
    @ivar closed: connections (that had opened) closed.
    @ivar messagesIn: messages received.
    @ivar messagesOut: messages sent (a broadcast counts once per receiver).
    @ivar bytesIn: bytes read once open (every frame, or every line).
    @ivar bytesOut: bytes written to the peer (every frame, or line): a
        server's from its 101 answer on, a client's once open. Counted by
        the connection below once per write (L{txratchet.connection.countSent}),
        not per message.
    @ivar closeCodes: closed connections by close code (C{None}: a line
        peer that left).
    """

    __slots__ = (
        "bytesIn",
        "bytesOut",
        "closeCodes",
        "closed",
        "family",
        "messagesIn",
        "messagesOut",
        "opened",
    )

    def __init__(self, family: str) -> None:
        self.family = family
        self.opened = 0
        self.closed = 0
        self.messagesIn = 0
        self.messagesOut = 0
        self.bytesIn = 0
        self.bytesOut = 0
        self.closeCodes: dict[int | None, int] = {}


#: What a connection counts with before it is open (nothing counts then:
#: its reads go to the handshake and its sends are dropped).
NOT_OPEN = FamilyStats("")


class LayerStats:
    """
    One layer's counters (by family, handshakes, send-buffer policy
    actions) and its connection log.

    @ivar families: L{FamilyStats} by family name.
    @ivar handshakes: opening handshakes by C{(outcome, status)}:
        C{("accepted", 101)}, C{("refused", 403)}, C{("http", 200)} (a
        plain HTTP request the C{httpHandler} answered); on a client
        layer C{("accepted", 101)} and C{("failed", status or 0)}.
    @ivar sendBuffer: how often the send-buffer policy acted, by action:
        C{"close"} (the peer was dropped), C{"drop"} (a message was
        skipped), C{"keep"} (a callable policy let the message through).
    @ivar logLevel: the level connections are logged at, C{None}: not
        logged.
    """

    __slots__ = ("_clock", "_openedAt", "families", "handshakes", "logLevel", "sendBuffer")

    def __init__(self, clock: IReactorTime, logLevel: Level | None = None) -> None:
        if logLevel is not None and logLevel not in LogLevel.iterconstants():
            raise TypeError(
                f"logConnections takes a twisted.logger.LogLevel (LogLevel.info), "
                f"not {logLevel!r}"
            )
        self._clock = clock
        self.logLevel = logLevel
        self.families: dict[str, FamilyStats] = {}
        self.handshakes: dict[tuple[str, int], int] = {}
        self.sendBuffer: dict[str, int] = {}
        # When each logged connection opened (only while logging: nothing
        # per connection otherwise).
        self._openedAt: dict[object, float] = {}

    def family(self, name: str) -> FamilyStats:
        """
        The counters of family C{name} (made on first use).
        """
        stats = self.families.get(name)
        if stats is None:
            stats = self.families[name] = FamilyStats(name)
        return stats

    def opened(self, conn: Any, family: str, path: str) -> FamilyStats:
        """
        C{conn} (of C{family}, at C{path}) is open: count it, log it.

        @return: the counters C{conn} adds its messages to.
        """
        stats = self.family(family)
        stats.opened += 1
        level = self.logLevel
        if level is not None:
            self._openedAt[conn] = self._clock.seconds()
            connectionLog.emit(
                level,
                "connection opened: peer={peer} family={family} path={path}",
                peer=formatPeer(conn.peer),
                family=family,
                path=_printable(path) or "-",
            )
        return stats

    def closed(self, conn: Any, stats: FamilyStats, code: int | None, path: str) -> None:
        """
        C{conn}, which had opened (counted in C{stats}), is gone with
        close code C{code}: count it, log it with how long it lasted.
        """
        stats.closed += 1
        codes = stats.closeCodes
        codes[code] = codes.get(code, 0) + 1
        level = self.logLevel
        if level is not None:
            now = self._clock.seconds()
            duration = now - self._openedAt.pop(conn, now)
            connectionLog.emit(
                level,
                "connection closed: peer={peer} family={family} path={path} "
                "code={code} duration={duration:.3f}s",
                peer=formatPeer(conn.peer),
                family=stats.family,
                path=_printable(path) or "-",
                code="none" if code is None else code,
                duration=duration,
            )

    def handshake(self, outcome: str, status: int) -> None:
        """
        Count an opening handshake's C{outcome} and HTTP C{status}.
        """
        key = (outcome, status)
        self.handshakes[key] = self.handshakes.get(key, 0) + 1

    def httpAnswered(self, response: bytes) -> None:
        """
        Count a plain HTTP request the layer's C{httpHandler} answered with
        C{response} (outcome C{"http"}, the response's status).
        """
        status = response[9:12]
        self.handshake("http", int(status) if status.isdigit() else 0)

    def sendBufferFull(self, policy: object, dropped: bool) -> bool:
        """
        Count what the send-buffer C{policy} did to one message (C{dropped}:
        what L{txratchet.connection.Connection._sendBufferFull} returned).

        @return: C{dropped}.
        """
        action = "keep" if not dropped else "close" if policy == "close" else "drop"
        self.sendBuffer[action] = self.sendBuffer.get(action, 0) + 1
        return dropped


__all__ = ["FamilyStats", "LayerStats", "Level", "connectionLog", "formatPeer"]
