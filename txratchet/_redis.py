"""
Redis plumbing for L{txratchet.backplane.RedisBackplane}, on txredisapi
(non-blocking, Twisted-native). Imported only when Redis is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import txredisapi
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.logger import Logger

log = Logger()


def publisher(host: str, port: int, password: str | None, dbid: int | None) -> Any:
    """
    A lazy, self-reconnecting connection for PUBLISH.
    """
    return txredisapi.lazyConnection(
        host, port, dbid=dbid, reconnect=True, password=password, convertNumbers=False
    )


class _Protocol(txredisapi.SubscriberProtocol):  # type: ignore[misc]
    deliver: Callable[[str, str], None]

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        if isinstance(channel, bytes):
            channel = channel.decode("utf-8", "replace")
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        self.deliver(channel, str(message))

    def connectionLost(self, why: Any) -> None:
        log.warn(
            "Redis backplane: subscriber connection lost ({why}); reconnecting",
            why=why.getErrorMessage(),
        )
        super().connectionLost(why)


class Subscriber:
    """
    One subscriber connection, kept up by a C{ClientService} (exponential
    back-off with jitter); every (re)connection subscribes to all current
    channels again.
    """

    def __init__(
        self,
        host: str,
        port: int,
        password: str | None,
        deliver: Callable[[str, str], None],
        channels: Callable[[], list[str]],
    ) -> None:
        factory = txredisapi.SubscriberFactory()
        factory.password = password
        factory.protocol = _Protocol
        build = factory.buildProtocol

        def buildProtocol(addr: Any) -> Any:
            protocol = build(addr)
            protocol.deliver = deliver
            return protocol

        factory.buildProtocol = buildProtocol
        self._deliver = deliver
        self._channels = channels
        self._protocol: Any = None
        self._connectedOnce = False
        self._service = ClientService(
            TCP4ClientEndpoint(reactor, host, port, timeout=5),
            factory,
            retryPolicy=backoffPolicy(initialDelay=0.2, maxDelay=5.0, factor=2.0),
            prepareConnection=self._prepare,
        )
        self._service.startService()

    def _prepare(self, protocol: Any) -> Any:
        self._protocol = protocol
        channels = self._channels()
        if self._connectedOnce:
            log.info(
                "Redis backplane: reconnected; subscribing again to {n} channel(s)",
                n=len(channels),
            )
        self._connectedOnce = True
        if channels:
            return protocol.subscribe(channels)
        return None

    def _connected(self) -> Any:
        protocol = self._protocol
        if protocol is None or not getattr(protocol, "connected", 0):
            return None
        return protocol

    def subscribe(self, channel: str) -> None:
        protocol = self._connected()
        if protocol is not None:
            protocol.subscribe(channel).addErrback(
                lambda f: log.warn("Redis SUBSCRIBE failed: {e}", e=f.getErrorMessage())
            )
        # Otherwise the next connection subscribes to it.

    def unsubscribe(self, channel: str) -> None:
        protocol = self._connected()
        if protocol is not None:
            protocol.unsubscribe(channel).addErrback(lambda f: None)

    def stop(self) -> Any:
        return self._service.stopService()
