"""
Redis plumbing for L{txratchet.backplane.RedisBackplane}, on txredisapi's
protocols (non-blocking, Twisted-native). Imported only when Redis is used.

Each connection (one to PUBLISH, one to SUBSCRIBE) is a L{Link}: kept up by
a C{ClientService} (exponential back-off with jitter), usable only while it
is connected (nothing waits for a connection that is not there), and
watched by a L{Health} that logs a change of state once, naming the
address, instead of a line per retry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import txredisapi
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer, error, reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import ILogObserver, Logger, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet.errors import TxratchetError

log = Logger()

#: Channels per SUBSCRIBE when subscribing again after a reconnection.
BATCH = 100


class NotConnected(TxratchetError, txredisapi.ConnectionError):  # type: ignore[misc]
    """
    Redis is not connected right now: the command was not sent.

    Defined here, not in L{txratchet.errors}: it is also txredisapi's
    C{ConnectionError}, and txredisapi is an optional dependency.
    """


def carried(channel: str) -> bool:
    """
    Can Redis carry this channel name (is it text UTF-8 can encode)?
    """
    if channel.isascii():
        return True
    try:
        channel.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def describe(failure: Failure) -> str:
    """
    A short reason for a failed or lost connection, for the log (no reprs).
    """
    value = failure.value
    if isinstance(value, error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(value, (error.TimeoutError, defer.TimeoutError)):
        return "timed out"
    if isinstance(value, error.DNSLookupError):
        return "unknown host"
    if isinstance(value, error.ConnectionDone):
        return "closed by the server"
    if isinstance(value, error.ConnectionLost):
        return "dropped"
    if isinstance(value, error.ConnectError) and value.osError:
        return str(value.osError).strip().rstrip(".")
    return failure.getErrorMessage().strip().rstrip(".") or type(value).__name__


def _warningsOnly(event: dict[str, Any]) -> None:
    if event.get("log_level") in (LogLevel.warn, LogLevel.error, LogLevel.critical):
        globalLogPublisher(event)


class _ClientService(ClientService):
    # ClientService logs every retry (info, with the endpoint's repr); the
    # link logs changes of state instead.
    _log = Logger(observer=cast(ILogObserver, _warningsOnly))


class Health:
    """
    The state of one backplane's links to one Redis server: the loss, and
    the return, of the connection are logged once each (a warning naming
    the address; then info), not once per retry; a deliberate stop (or the
    reactor shutting down) logs nothing.

    @ivar quiet: set when stopping on purpose: losses are not reported.
    """

    def __init__(self, address: str, what: str = "Redis backplane") -> None:
        self.address = address
        self.what = what
        self.up: dict[str, bool] = {}
        self.down = False  # reported as down, not yet back
        self.connectedOnce = False
        self.quiet = False

    def add(self, name: str) -> None:
        self.up[name] = False

    def linkUp(self, name: str) -> None:
        self.up[name] = True
        if not all(self.up.values()):
            return
        if self.down:
            self.down = False
            log.info("{what} at {address} is reachable again", what=self.what, address=self.address)
        elif not self.connectedOnce:
            log.info("{what} connected to {address}", what=self.what, address=self.address)
        self.connectedOnce = True

    def linkDown(self, name: str, why: str, wasUp: bool, delay: float) -> None:
        self.up[name] = False
        if self.quiet or self.down:
            return
        self.down = True
        if wasUp:
            text = "{what} at {address}: connection lost ({why}); reconnecting in {delay} s"
        else:
            text = "{what} at {address} unreachable ({why}); retrying in {delay} s"
        log.warn(
            text + "; messages published meanwhile are lost",
            what=self.what, address=self.address, why=why, delay=round(delay, 1),
        )


@implementer(IStreamClientEndpoint)
class _Endpoint:
    """
    An endpoint that tells its link why connecting failed (ClientService
    does not pass that on to its retry policy).
    """

    def __init__(self, wrapped: Any, failed: Callable[[Failure], None]) -> None:
        self.wrapped = wrapped
        self.failed = failed

    def connect(self, factory: Any) -> Deferred[Any]:
        def failed(failure: Failure) -> Failure:
            self.failed(failure)
            return failure

        d: Deferred[Any] = self.wrapped.connect(factory)
        return d.addErrback(failed)


class _Factory(Factory):
    """
    Builds the txredisapi protocol of one link (no pool, no queue).
    """

    noisy = False
    isLazy = False  # read by RedisProtocol: do not log AUTH/SELECT failures, we do

    def __init__(self, link: Link, protocol: type, password: str | None, dbid: int | None) -> None:
        self.link = link
        self.protocolClass = protocol
        self.password = password
        self.dbid = dbid

    def buildProtocol(self, addr: Any) -> Any:
        p = self.protocolClass(
            replyTimeout=self.link.replyTimeout, password=self.password, dbid=self.dbid,
            convertNumbers=False,
        )
        p.factory = self
        p.link = self.link
        return p

    # What RedisProtocol calls on a failed AUTH or SELECT.

    def stopTrying(self) -> None:
        pass  # keep trying: the password may be fixed on the server

    def connectionError(self, why: str) -> None:
        self.link.why = why


class _LinkProtocolMixin:
    link: Link

    def connectionLost(self, why: Any) -> None:
        self.link._lost(why)
        super().connectionLost(why)  # type: ignore[misc]


class _PublisherProtocol(_LinkProtocolMixin, txredisapi.RedisProtocol):  # type: ignore[misc]
    pass


class _SubscriberProtocol(_LinkProtocolMixin, txredisapi.SubscriberProtocol):  # type: ignore[misc]
    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        if isinstance(channel, bytes):
            channel = channel.decode("utf-8", "replace")
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        self.link.deliver(channel, str(message))


class Link:
    """
    One Redis connection, kept up by a C{ClientService}.

    @ivar protocol: the txredisapi protocol while connected and ready
        (after AUTH and SELECT), else C{None}.
    """

    replyTimeout: float | None = None

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        password: str | None,
        dbid: int | None,
        protocol: type,
        health: Health,
        ready: Callable[[Any], object] | None = None,
        replyTimeout: float | None = None,
    ) -> None:
        self.name = name
        self.health = health
        self.protocol: Any = None
        self.why = "connection failed"
        self.replyTimeout = replyTimeout
        self.deliver: Callable[[str, str], None] = lambda channel, payload: None
        self._ready = ready
        self._wasUp = False
        self._policy = backoffPolicy(initialDelay=0.2, maxDelay=5.0, factor=2.0)
        health.add(name)
        endpoint = _Endpoint(TCP4ClientEndpoint(reactor, host, port, timeout=5), self._failed)
        self._service = _ClientService(
            endpoint,
            _Factory(self, protocol, password, dbid),
            retryPolicy=self._retry,
            prepareConnection=self._prepare,
        )
        self._service.startService()

    def _failed(self, failure: Failure) -> None:
        self.why = describe(failure)

    def _lost(self, why: Failure) -> None:
        if self.protocol is not None:
            self.protocol = None
            self._wasUp = True
            self.why = describe(why)

    def _retry(self, attempt: int) -> float:
        delay: float = self._policy(attempt)
        self.health.linkDown(self.name, self.why, self._wasUp, delay)
        self._wasUp = False
        return delay

    def _prepare(self, protocol: Any) -> Deferred[Any]:
        """
        Usable once AUTH and SELECT went through; a connection closed
        before that is a failed attempt.
        """
        usable: Deferred[Any] = Deferred()

        def connected(p: Any) -> None:
            if not usable.called:
                usable.callback(p)

        def disconnected(p: Any) -> None:
            if not usable.called:
                usable.errback(txredisapi.ConnectionError(self.why))

        protocol.whenConnected().addCallback(connected)
        protocol.whenDisconnected().addCallback(disconnected)
        usable.addCallback(self._usable)
        return usable

    def _usable(self, protocol: Any) -> None:
        self.protocol = protocol
        self.why = "connection failed"
        self.health.linkUp(self.name)
        if self._ready is not None:
            self._ready(protocol)

    def stop(self) -> Deferred[None]:
        """
        Stop (re)connecting and close the connection.
        """
        self.protocol = None
        return self._service.stopService()


class Publisher:
    """
    The connection that publishes: while Redis is away, publishing fails at
    once (nothing is queued to be sent later, or kept).
    """

    def __init__(
        self, host: str, port: int, password: str | None, dbid: int | None, health: Health
    ) -> None:
        self.health = health
        self.link = Link(
            "publisher", host, port, password, dbid, _PublisherProtocol, health, replyTimeout=5.0
        )

    def publish(self, channel: str, payload: str) -> Deferred[Any]:
        protocol = self.link.protocol
        if protocol is None:
            return defer.fail(NotConnected(f"Redis at {self.health.address} is not connected"))
        return protocol.publish(channel, payload)  # type: ignore[no-any-return]

    def stop(self) -> Deferred[None]:
        return self.link.stop()


class Subscriber:
    """
    The connection that subscribes; every (re)connection subscribes to all
    current channels again, C{BATCH} at a time, so that one channel Redis
    would refuse cannot keep the others from being subscribed.
    """

    def __init__(
        self,
        host: str,
        port: int,
        password: str | None,
        deliver: Callable[[str, str], None],
        channels: Callable[[], list[str]],
        health: Health,
    ) -> None:
        self._channels = channels
        self.link = Link(
            "subscriber", host, port, password, None, _SubscriberProtocol, health,
            ready=self._subscribeAll,
        )
        self.link.deliver = deliver

    def _subscribeAll(self, protocol: Any) -> None:
        channels = []
        for channel in self._channels():
            if carried(channel):
                channels.append(channel)
            else:
                log.warn("Redis backplane: not subscribing to {channel!r}: not UTF-8 text",
                         channel=channel[:100])
        for start in range(0, len(channels), BATCH):
            self._subscribe(protocol, channels[start:start + BATCH])

    def _subscribe(self, protocol: Any, channels: list[str]) -> None:
        try:
            d = protocol.subscribe(channels)
        except Exception as e:
            if len(channels) > 1 and protocol.connected:
                for channel in channels:  # find the one that failed
                    self._subscribe(protocol, [channel])
            else:
                log.warn("Redis backplane: could not subscribe to {channels!r}: {e}",
                         channels=channels[:3], e=e)
            return
        d.addErrback(self._subscribeFailed, len(channels))

    @staticmethod
    def _subscribeFailed(failure: Failure, count: int) -> None:
        if not failure.check(txredisapi.ConnectionError):  # lost: all again on the next one
            log.warn("Redis backplane: SUBSCRIBE of {count} channel(s) failed: {e}",
                     count=count, e=failure.getErrorMessage())

    def subscribe(self, channel: str) -> None:
        protocol = self.link.protocol
        if protocol is not None:
            self._subscribe(protocol, [channel])
        # Otherwise the next connection subscribes to it.

    def unsubscribe(self, channel: str) -> None:
        protocol = self.link.protocol
        if protocol is not None:
            protocol.unsubscribe(channel).addErrback(lambda f: None)

    def stop(self) -> Deferred[None]:
        return self.link.stop()


def isConnected(connection: Any) -> bool | None:
    """
    Does a txredisapi connection handler (from C{lazyConnectionPool} and
    the like) have a live connection right now? C{None} when it cannot
    tell (another kind of handler).
    """
    # txredisapi's handlers vary in shape and keep their pool private: the
    # guarded lookups are the boundary with it.
    factory = getattr(connection, "_factory", None)
    pool = getattr(factory, "pool", None)
    if pool is None:
        return None
    return any(getattr(conn, "connected", 0) for conn in pool)
