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
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet.interfaces import typedInterface

if TYPE_CHECKING:  # what txratchet.interfaces.TypedInterface is, said so for pydoctor
    from zope.interface import Interface as TypedInterface
else:
    from txratchet.interfaces import TypedInterface

log = Logger()

Callback = Callable[[str, str], object]


@typedInterface
@runtime_checkable
class IBackplane(TypedInterface, Protocol):  # type: ignore[misc]  # see typedInterface
    """
    Publish/subscribe between processes. Channels and payloads are C{str}.

    Any object with these members will do (a zope interface, declared for
    type checkers too: see L{txratchet.interfaces.typedInterface}).
    """

    def publish(self, channel: str, payload: str) -> Deferred[None]:  # type: ignore[misc]
        """
        Deliver C{payload} to every subscriber of C{channel}, in every
        process (this one included).
        """

    def subscribe(self, channel: str, callback: Callback) -> None:  # type: ignore[misc]
        """
        Call C{callback(channel, payload)} for every message on C{channel}.
        """

    def unsubscribe(self, channel: str, callback: Callback) -> None:  # type: ignore[misc]
        """
        Stop calling C{callback} for C{channel}.
        """

    def close(self) -> Deferred[None] | None:  # type: ignore[misc]
        """
        Disconnect for good, quietly (a server's shutdown calls it once
        its connections are closed); a Deferred fires when that is done.
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

    #: Always (there is nothing to connect to); see L{RedisBackplane.connected}.
    connected = True

    def __init__(self) -> None:
        self._subscriptions = _Subscriptions()

    def publish(self, channel: str, payload: str) -> Deferred[None]:
        self._subscriptions.deliver(channel, payload)
        return succeed(None)

    def subscribe(self, channel: str, callback: Callback) -> None:
        self._subscriptions.add(channel, callback)

    def unsubscribe(self, channel: str, callback: Callback) -> None:
        self._subscriptions.remove(channel, callback)

    def close(self) -> None:
        """
        Nothing to disconnect.
        """


@implementer(IBackplane)
class RedisBackplane:
    """
    Publish/subscribe through a Redis server (C{txratchet:}-prefixed
    channels), with C{txredisapi}: non-blocking, on the reactor.

    A lost Redis connection is retried for ever (back-off with jitter, up
    to 5 s apart); when it is back, every channel is subscribed again. The
    loss is logged once, as a warning naming the address, and the return
    once; L{stop} (or the reactor shutting down) logs neither. Messages
    published while Redis is down are lost (Redis pub/sub keeps nothing):
    publishing then fails at once (nothing waits for Redis to return), which
    is logged in the loss's warning, never raised.

    @param prefix: prepended to every channel name in Redis.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 6379, prefix: str = "txratchet:",
        password: str | None = None, dbid: int | None = None,
    ) -> None:
        from twisted.internet import reactor

        import txratchet._redis as redis

        self.prefix = prefix
        self.address = f"{host}:{port}"
        self._subscriptions = _Subscriptions()
        self._health = redis.Health(self.address)
        self._publisher = redis.Publisher(host, port, password, dbid, self._health)
        self._subscriber = redis.Subscriber(
            host, port, password, self._deliver, self._channels, self._health
        )
        self._stopped: Deferred[None] | None = None
        # The reactor closes every connection as it stops: not a loss to report.
        self._reactor = reactor
        self._trigger = reactor.addSystemEventTrigger(  # type: ignore[attr-defined]
            "before", "shutdown", self._shuttingDown
        )

    def _shuttingDown(self) -> None:
        self._health.quiet = True

    @property
    def connected(self) -> bool:
        """
        Are both links to Redis (publishing, subscribed) up right now?
        (C{txratchet_backplane_connected} in L{txratchet.metrics}.)
        """
        up = self._health.up
        return bool(up) and all(up.values())

    def _channels(self) -> list[str]:
        return [self.prefix + channel for channel in self._subscriptions.callbacks]

    def _deliver(self, channel: str, payload: str) -> None:
        if channel.startswith(self.prefix):
            self._subscriptions.deliver(channel[len(self.prefix):], payload)

    def publish(self, channel: str, payload: str) -> Deferred[None]:
        """
        Publish C{payload}; the Deferred fires with C{None} once Redis took
        it, or at once when Redis is not connected (the message is lost).
        """
        import txratchet._redis as redis

        d: Deferred[Any] = self._publisher.publish(self.prefix + channel, payload)

        def failed(f: Failure) -> None:
            if not f.check(redis.NotConnected):  # reported once, as a loss
                log.warn(
                    "Could not publish to Redis channel {channel} at {address}: {error}",
                    channel=channel, address=self.address, error=f.getErrorMessage(),
                )

        return d.addCallbacks(lambda _: None, failed)

    def subscribe(self, channel: str, callback: Callback) -> None:
        """
        @raise ValueError: Redis cannot carry C{channel} (not UTF-8 text):
            nothing is registered.
        """
        import txratchet._redis as redis

        name = self.prefix + channel
        if not redis.carried(name):
            raise ValueError("A channel must be valid Unicode text (no lone surrogates)")
        if self._subscriptions.add(channel, callback):
            self._subscriber.subscribe(name)

    def unsubscribe(self, channel: str, callback: Callback) -> None:
        if self._subscriptions.remove(channel, callback):
            self._subscriber.unsubscribe(self.prefix + channel)

    def stop(self) -> Deferred[None]:
        """
        Disconnect from Redis for good, quietly (no "connection lost"
        warning): for a service's C{stopService}. Idempotent.
        """
        if self._stopped is None:
            self._health.quiet = True
            try:
                self._reactor.removeSystemEventTrigger(self._trigger)  # type: ignore[attr-defined]
            except (ValueError, KeyError, TypeError):
                pass
            self._stopped = gatherResults(
                [self._subscriber.stop(), self._publisher.stop()], consumeErrors=True
            ).addCallback(lambda _: None)
        return self._stopped

    close = stop
