"""
L{Application}: a convenience base class with do-nothing handlers.
"""

from __future__ import annotations

from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet.interfaces import IApplication, IConnection


@implementer(IApplication)
class Application:
    """
    Subclass and override the handlers you need.

    The default C{onError} closes the connection with 1011 (internal
    error), which is what a server should do when it cannot tell what went
    wrong. The framework has already logged the failure, with its
    traceback, before any C{onError} runs: an override decides what happens
    to the connection, it need not log.

    Handlers get their arguments by position: an override names them as it
    likes (C{onMessage(self, sender, msg)}), and may be an C{async def}.
    """

    def onOpen(self, conn: IConnection, /) -> object:
        return None

    def onMessage(self, conn: IConnection, message: str | bytes, /) -> object:
        return None

    def onClose(self, conn: IConnection, /) -> object:
        return None

    def onError(self, conn: IConnection, failure: Failure, /) -> object:
        conn.close(1011, "Internal error")
        return None
