"""
Backplanes carry published messages between the processes (and machines)
that serve one application.

L{InProcessBackplane} is the default: one process, no server. With
L{RedisBackplane} every process subscribes to the channels its peers care
about on a Redis server, and a message published anywhere (by any process,
in any language: C{PUBLISH txratchet:<channel> <payload>}) reaches them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import Interface, implementer

log = Logger()

Callback = Callable[[str, str], object]


class IBackplane(Interface):
    """
    Publish/subscribe between processes. Channels and payloads are C{str}.
    """

    def publish(channel: str, payload: str) -> Deferred[Any]:
        """
        Deliver C{payload} to every subscriber of C{channel}, in every
        process (this one included).
        """

    def subscribe(channel: str, callback: Callback) -> None:
        """
        Call C{callback(channel, payload)} for every message on C{channel}.
        """

    def unsubscribe(channel: str, callback: Callback) -> None:
        """
        Stop calling C{callback} for C{channel}.
        """


class _Subscriptions:
    def __init__(self) -> None:
        self.callbacks: dict[str, list[Callback]] = {}

    def add(self, channel: str, callback: Callback) -> bool:
        """
        @return: is this the channel's first callback?
        """
        callbacks = self.callbacks.setdefault(channel, [])
        callbacks.append(callback)
        return len(callbacks) == 1

    def remove(self, channel: str, callback: Callback) -> bool:
        """
        @return: was this the channel's last callback?
        """
        callbacks = self.callbacks.get(channel)
        if not callbacks or callback not in callbacks:
            return False
        callbacks.remove(callback)
        if callbacks:
            return False
        del self.callbacks[channel]
        return True

    def deliver(self, channel: str, payload: str) -> None:
        for callback in list(self.callbacks.get(channel, ())):
            try:
                callback(channel, payload)
            except Exception:
                log.failure("A backplane subscriber of {channel} raised", channel=channel)


@implementer(IBackplane)
class InProcessBackplane:
    """
    Publish/subscribe inside this process: delivery is immediate.
    """

    def __init__(self) -> None:
        self._subscriptions = _Subscriptions()

    def publish(self, channel: str, payload: str) -> Deferred[Any]:
        self._subscriptions.deliver(channel, payload)
        return succeed(None)

    def subscribe(self, channel: str, callback: Callback) -> None:
        self._subscriptions.add(channel, callback)

    def unsubscribe(self, channel: str, callback: Callback) -> None:
        self._subscriptions.remove(channel, callback)


@implementer(IBackplane)
class RedisBackplane:
    """
    Publish/subscribe through a Redis server (C{txratchet:}-prefixed
    channels), with C{txredisapi}: non-blocking, on the reactor.

    A lost Redis connection is retried for ever (txredisapi reconnects with
    back-off); when it is back, every channel is subscribed again, and the
    loss and the recovery are logged. Messages published while Redis is
    down are lost (Redis pub/sub keeps nothing); publishing then fails the
    returned Deferred, which is logged, never raised.

    @param prefix: prepended to every channel name in Redis.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 6379, prefix: str = "txratchet:",
        password: str | None = None, dbid: int | None = None,
    ) -> None:
        import txratchet._redis as redis

        self.prefix = prefix
        self._subscriptions = _Subscriptions()
        self._publisher = redis.publisher(host, port, password, dbid)
        self._subscriber = redis.Subscriber(
            host, port, password, self._deliver, self._channels
        )

    def _channels(self) -> list[str]:
        return [self.prefix + channel for channel in self._subscriptions.callbacks]

    def _deliver(self, channel: str, payload: str) -> None:
        if channel.startswith(self.prefix):
            self._subscriptions.deliver(channel[len(self.prefix):], payload)

    def publish(self, channel: str, payload: str) -> Deferred[Any]:
        d: Deferred[Any] = self._publisher.publish(self.prefix + channel, payload)
        d.addErrback(
            lambda f: log.warn(
                "Could not publish to Redis channel {channel}: {error}",
                channel=channel, error=f.getErrorMessage(),
            )
        )
        return d

    def subscribe(self, channel: str, callback: Callback) -> None:
        if self._subscriptions.add(channel, callback):
            self._subscriber.subscribe(self.prefix + channel)

    def unsubscribe(self, channel: str, callback: Callback) -> None:
        if self._subscriptions.remove(channel, callback):
            self._subscriber.unsubscribe(self.prefix + channel)

    def close(self) -> Deferred[Any]:
        """
        Disconnect from Redis.
        """
        self._subscriber.stop()
        return self._publisher.disconnect()  # type: ignore[no-any-return]
