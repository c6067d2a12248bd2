"""
L{Application}: a convenience base class with do-nothing handlers.
"""

from __future__ import annotations

from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet.interfaces import IApplication, IConnection

log = Logger()


@implementer(IApplication)
class Application:
    """
    Subclass and override the handlers you need.

    The default C{onError} logs the failure and closes the connection with
    1011 (internal error), which is what a server should do when it cannot
    tell what went wrong.
    """

    def onOpen(self, conn: IConnection) -> object:
        return None

    def onMessage(self, conn: IConnection, message: str | bytes) -> object:
        return None

    def onClose(self, conn: IConnection) -> object:
        return None

    def onError(self, conn: IConnection, failure: Failure) -> object:
        log.failure("Unhandled error on {conn!r}", failure, conn=conn)
        conn.close(1011, "Internal error")
        return None
