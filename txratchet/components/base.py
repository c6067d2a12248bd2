"""
L{Decorator}: the base of application decorators.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet.interfaces import (
    IApplication,
    IConnection,
    IReconnectHandler,
    IRequestHandler,
    concurrentMessages,
    hooksOf,
)

if TYPE_CHECKING:
    from txratchet.websocket.handshake import Request


@implementer(IApplication, IRequestHandler, IReconnectHandler)
class Decorator:
    """
    Passes every event, and the optional hooks (C{onRequest},
    C{subprotocols}, C{onReconnect}), to the wrapped application;
    subclasses override what they change.

    C{onRequest(conn, request)} is called by the WebSocket layer after a
    valid upgrade request and before it is answered: raise (or fail the
    returned Deferred with) a L{txratchet.errors.HandshakeError} to refuse
    it with an HTTP status, or return a Deferred to answer later.

    The wrapped application's optional hooks are looked up once, here (see
    L{txratchet.interfaces.hooksOf}); a decorator defines them all, doing
    nothing where the application has none.
    """

    def __init__(self, app: IApplication) -> None:
        self.app = app
        self._hooks = hooksOf(app)

    @property
    def subprotocols(self) -> Sequence[str]:
        return self._hooks.subprotocols

    @property
    def concurrentMessages(self) -> bool:
        return concurrentMessages(self.app)

    def onRequest(self, conn: IConnection, request: Request, /) -> object:
        hook = self._hooks.onRequest
        return hook(conn, request) if hook is not None else None

    def onReconnect(self, conn: IConnection, /) -> object:
        hook = self._hooks.onReconnect
        return hook(conn) if hook is not None else None

    def onOpen(self, conn: IConnection, /) -> object:
        return self.app.onOpen(conn)

    def onMessage(self, conn: IConnection, message: str | bytes, /) -> object:
        return self.app.onMessage(conn, message)

    def onClose(self, conn: IConnection, /) -> object:
        return self.app.onClose(conn)

    def onError(self, conn: IConnection, failure: Failure, /) -> object:
        return self.app.onError(conn, failure)


class RefusingDecorator(Decorator):
    """
    A decorator that may refuse a connection when it opens (outside the
    WebSocket handshake, where C{onRequest} cannot answer with a status):
    L{refuse} closes it, and the layers inside never hear of it.
    """

    def __init__(self, app: IApplication) -> None:
        super().__init__(app)
        self._refused: set[IConnection] = set()

    def refuse(self, conn: IConnection, code: int, reason: str) -> None:
        """
        Close C{conn} and keep its later events from the wrapped application.
        """
        self._refused.add(conn)
        conn.close(code, reason)

    def onMessage(self, conn: IConnection, message: str | bytes, /) -> object:
        if conn in self._refused:
            return None
        return self.app.onMessage(conn, message)

    def onClose(self, conn: IConnection, /) -> object:
        if conn in self._refused:
            self._refused.discard(conn)
            return None
        return self.app.onClose(conn)

    def onError(self, conn: IConnection, failure: Failure, /) -> object:
        if conn in self._refused:
            return None
        return self.app.onError(conn, failure)
