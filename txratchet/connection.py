"""
Connection objects: the bottom one wraps a Twisted transport, and each
decorating layer wraps the connection below it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import ISSLTransport, ITransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet.commands import execute
from txratchet.interfaces import IApplication, IConnection

log = Logger()


@implementer(IConnection)
class Connection:
    """
    Behaviour shared by every connection a layer hands to the application:
    attributes for the application's own use, and error reporting.

    Connections hash by identity, so they can live in sets and dicts.

    @ivar app: the application this connection is handed to.
    @ivar attributes: a dict for the application's per-connection state.
    """

    protocol = "tcp"
    peer: Any = None

    def __init__(self, app: IApplication) -> None:
        self.app = app
        self.attributes: dict[str, Any] = {}

    def send(self, message: str | bytes) -> None:
        raise NotImplementedError()

    def close(self, code: int = 1000, reason: str = "") -> None:
        raise NotImplementedError()

    def reportError(self, failure: Failure) -> None:
        """
        Give C{failure} to the application's C{onError} for this connection
        and carry out what it returns; an C{onError} that raises is logged.
        """
        try:
            result = self.app.onError(self, failure)
        except Exception:
            log.failure(
                "onError raised while handling {original}",
                original=failure.getErrorMessage(),
            )
            return
        execute(result)


class TransportConnection(Connection):
    """
    The connection at the bottom of the stack: C{send} writes bytes to the
    Twisted transport, C{close} loses the connection once the written bytes
    are flushed.

    @ivar transport: the Twisted transport.
    @ivar peer: the peer's address.
    @ivar host: our own address.
    @ivar secure: is the transport TLS?
    """

    protocol = "tcp"

    def __init__(self, app: IApplication, transport: ITransport) -> None:
        super().__init__(app)
        self.transport = transport
        self.peer = transport.getPeer()
        self.host = transport.getHost()
        self.secure = ISSLTransport.providedBy(transport)
        self.closed = False

    def send(self, message: str | bytes) -> None:
        """
        Write C{message} (C{str} is encoded as UTF-8).
        """
        if self.closed:
            return
        if isinstance(message, str):
            message = message.encode("utf-8")
        self.transport.write(message)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """
        Lose the connection after what was written is flushed.
        """
        self.transport.loseConnection()

    def abort(self) -> None:
        """
        Drop the connection now, discarding unsent bytes.
        """
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:  # pragma: no cover - every Twisted stream transport has it
            self.transport.loseConnection()

    def __repr__(self) -> str:
        return f"<TransportConnection peer={self.peer}>"
