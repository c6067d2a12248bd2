"""
L{Hub}: publish/subscribe for connected peers, across processes.

Peers join topics; the application (or the web application, or another
process) publishes to a topic or to one user, and every peer concerned gets
it, whichever process it is connected to: messages travel through a
backplane (L{txratchet.backplane}: in-process by default, Redis for
several processes or machines). Each message is framed once per protocol
family in each process, however many peers get it.

The hub is also a decorator with a small JSON wire protocol, so browser
code can use it directly::

    -> {"type": "subscribe", "topic": "news"}      <- {"type": "subscribed", "topic": "news"}
    -> {"type": "unsubscribe", "topic": "news"}    <- {"type": "unsubscribed", "topic": "news"}
    -> {"type": "publish", "topic": "news", "data": ...}
    <- {"type": "message", "topic": "news", "data": ...}     (to every subscriber)
    <- {"type": "message", "user": "ann", "data": ...}       (from sendToUser)
    <- {"type": "error", "reason": "..."}

Peers may do nothing over the wire until the application says so: both
C{allowSubscribe} and C{allowPublish} deny by default. Other messages go to
the wrapped application unchanged.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from txratchet.application import Application
from txratchet.backplane import IBackplane, InProcessBackplane
from txratchet.components.base import Decorator
from txratchet.connection import Connection
from txratchet.errors import InvalidTopic as InvalidTopic
from txratchet.errors import MessageTooLarge as MessageTooLarge
from txratchet.errors import TooManySubscriptions as TooManySubscriptions
from txratchet.interfaces import IApplication, IConnection
from txratchet.websocket.rfc6455 import DEFAULT_MAX_MESSAGE_SIZE

log = Logger()

_ids = itertools.count(1)
_PROCESS = f"{os.getpid()}-{os.urandom(4).hex()}"

#: Default bound on the topics one connection may hold.
DEFAULT_MAX_SUBSCRIPTIONS = 100
#: Default bound on a topic's length, in bytes of UTF-8.
DEFAULT_MAX_TOPIC_LENGTH = 200
MAX_TOPIC_LENGTH = DEFAULT_MAX_TOPIC_LENGTH  # the old name

#: Seconds between two warnings about invalid backplane messages.
_WARN_EVERY = 10.0

#: Who may do something to a topic: C{True} (everyone), C{False} or
#: C{None} (no one), topic names (a C{str} or a collection of them), or a
#: C{(conn, topic) -> bool} callable.
Permission = bool | None | str | Iterable[str] | Callable[[IConnection, str], bool]


def _deny(conn: IConnection, topic: str) -> bool:
    return False


def _allow(conn: IConnection, topic: str) -> bool:
    return True


def _rule(rule: Permission) -> Callable[[IConnection, str], bool]:
    """
    A C{(conn, topic) -> bool} callable for a L{Permission}.
    """
    if rule is None or rule is False:
        return _deny
    if rule is True:
        return _allow
    if isinstance(rule, str):  # one name, not its characters
        rule = (rule,)
    if callable(rule):
        return rule
    names = frozenset(rule)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"A permission lists topic names (str), not {name!r}")
    return lambda conn, topic: topic in names


def _compactJSON(obj: object) -> str:
    """
    C{obj} as compact JSON, UTF-8 characters as they are (a C{\\u00e9}
    escape takes 6 bytes, C{é} 2); text with lone surrogates, which UTF-8
    cannot carry, is escaped as JSON allows.

    @raise ValueError: C{obj} is nested too deeply to encode.
    """
    try:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        if not text.isascii():
            text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, separators=(",", ":"))
    except RecursionError:
        raise ValueError("The data is nested too deeply to encode") from None
    return text


def _utf8Size(text: str) -> int | None:
    """
    The size of C{text} in UTF-8, or C{None} when it cannot be encoded.
    """
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def defaultUserOf(conn: IConnection) -> str | None:
    """
    The user of a connection: C{conn.session["user"]} (or C{["name"]}) when
    a L{txratchet.components.SessionProvider} loaded a session, else
    C{None}.
    """
    # Every txratchet connection has a session attribute (None unless a
    # SessionProvider set it); the session is whatever the store keeps (a
    # dict, a twisted.web session ...): a boundary, looked up by name.
    session = conn.session if isinstance(conn, Connection) else None
    if session is None:
        return None
    getter = getattr(session, "get", None)
    if getter is None:
        return None
    user = getter("user") or getter("name")
    return str(user) if user is not None else None


class Hub(Decorator):
    """
    Topics and users for the connections that pass through it.

    Over the wire protocol, peers may neither subscribe nor publish until
    the application allows it (as with Ratchet's and Autobahn's pub/sub,
    where the application or the router's roles decide): give
    C{allowSubscribe} / C{allowPublish} a set of topic names, C{True} for
    every topic, or a C{(conn, topic) -> bool} callable (the user is
    C{conn.session} with a L{txratchet.components.SessionProvider}).
    Unsubscribing is always allowed. The application's own calls
    (L{subscribe}, L{publish}, ...) are not governed by them.

    @param app: the application to pass other events and messages to.
    @param backplane: where published messages travel (default: this
        process only).
    @param userOf: C{conn -> user id or None}, for L{sendToUser}.
    @param allowPublish: which topics peers may publish to over the wire
        (a L{Permission}); default: none.
    @param allowSubscribe: which topics peers may subscribe to over the
        wire (a L{Permission}); default: none.
    @param wire: speak the JSON wire protocol (else only the API).
    @param maxSubscriptions: topics one connection may hold at once;
        past it a wire subscribe gets an C{error} (L{subscribe} raises
        L{TooManySubscriptions}).
    @param maxTopicLength: the longest topic (and user id), in bytes of
        UTF-8.
    @param maxMessageSize: the largest message, in bytes, the hub sends to
        its peers (give it your WebSocket layer's C{maxMessageSize} when
        you change that): larger publications are refused, and larger
        backplane messages dropped.
    """

    def __init__(
        self,
        app: IApplication | None = None,
        backplane: IBackplane | None = None,
        userOf: Callable[[IConnection], str | None] = defaultUserOf,
        allowPublish: Permission = False,
        allowSubscribe: Permission = False,
        wire: bool = True,
        maxSubscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS,
        maxTopicLength: int = DEFAULT_MAX_TOPIC_LENGTH,
        maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        super().__init__(app if app is not None else Application())
        self.backplane: IBackplane = backplane if backplane is not None else InProcessBackplane()
        self.userOf = userOf
        self.allowPublish = allowPublish  # type: ignore[assignment]
        self.allowSubscribe = allowSubscribe  # type: ignore[assignment]
        self.wire = wire
        self.maxSubscriptions = maxSubscriptions
        self.maxTopicLength = maxTopicLength
        self.maxMessageSize = maxMessageSize
        self._members: dict[str, set[IConnection]] = {}  # channel -> local connections
        self._channelsOf: dict[IConnection, set[str]] = {}  # connection -> its channels
        self._connId: dict[IConnection, str] = {}  # connection -> id, while it has channels
        # Closed connections, so that nothing re-registers them (an
        # application broadcasting from onClose): weak, so it holds nothing.
        self._gone: weakref.WeakSet[IConnection] = weakref.WeakSet()
        self._invalid = 0  # invalid backplane messages not yet reported
        self._warnedAt: float | None = None

    @property
    def allowPublish(self) -> Callable[[IConnection, str], bool]:
        return self._allowPublish

    @allowPublish.setter
    def allowPublish(self, rule: Permission) -> None:
        self._allowPublish = _rule(rule)

    @property
    def allowSubscribe(self) -> Callable[[IConnection, str], bool]:
        return self._allowSubscribe

    @allowSubscribe.setter
    def allowSubscribe(self, rule: Permission) -> None:
        self._allowSubscribe = _rule(rule)

    # -- The application API -------------------------------------------------

    def subscribe(self, conn: IConnection, topic: str) -> None:
        """
        Let C{conn} receive what is published to C{topic}. Nothing happens
        for a connection that has closed.

        @raise InvalidTopic: C{topic} is empty, too long or not text that
            UTF-8 can carry.
        @raise TooManySubscriptions: C{conn} already holds
            C{maxSubscriptions} topics.
        """
        self._checkTopic(topic)
        channel = "topic:" + topic
        if conn in self._members.get(channel, ()):
            return
        if self._topicCount(conn) >= self.maxSubscriptions:
            raise TooManySubscriptions(
                f"Too many subscriptions (at most {self.maxSubscriptions} per connection)"
            )
        self._join(conn, channel)

    def unsubscribe(self, conn: IConnection, topic: str) -> None:
        """
        Stop C{conn} receiving C{topic}.
        """
        self._leave(conn, "topic:" + topic)

    def subscribers(self, topic: str) -> set[IConnection]:
        """
        The connections of this process subscribed to C{topic}.
        """
        return set(self._members.get("topic:" + topic, ()))

    def publish(self, topic: str, data: object) -> Deferred[None]:
        """
        Send C{data} (anything JSON can encode) to every subscriber of
        C{topic}, in every process, as C{{"type": "message", "topic": ...,
        "data": ...}}.

        @raise InvalidTopic: see L{subscribe}.
        @raise MessageTooLarge: the message would exceed C{maxMessageSize}.
        """
        self._checkTopic(topic)
        text = self._message({"type": "message", "topic": topic, "data": data})
        return self.backplane.publish("topic:" + topic, _compactJSON({"text": text}))

    def sendToUser(self, user: str, data: object) -> Deferred[None]:
        """
        Send C{data} to every connection of C{user} (see C{userOf}), in
        every process, as C{{"type": "message", "user": ..., "data": ...}}.

        @raise InvalidTopic: C{user} is not a usable id (see L{subscribe}).
        @raise MessageTooLarge: the message would exceed C{maxMessageSize}.
        """
        self._checkTopic(user)
        text = self._message({"type": "message", "user": user, "data": data})
        return self.backplane.publish("user:" + user, _compactJSON({"text": text}))

    def broadcast(
        self, topic: str, message: str | bytes, exclude: IConnection | None = None
    ) -> Deferred[None]:
        """
        Send C{message} as it is (no JSON envelope: text or binary) to every
        subscriber of C{topic} in every process, except C{exclude}.

        @raise InvalidTopic: see L{subscribe}.
        @raise MessageTooLarge: C{message} exceeds C{maxMessageSize}.
        @raise ValueError: C{message} is text that UTF-8 cannot carry.
        """
        self._checkTopic(topic)
        envelope: dict[str, str]
        if isinstance(message, str):
            size = _utf8Size(message)
            if size is None:
                raise ValueError("The message is not valid Unicode text (lone surrogates)")
            envelope = {"text": message}
        else:
            size = len(message)
            envelope = {"binary": base64.b64encode(message).decode("ascii")}
        self._checkSize(size)
        if exclude is not None:
            # A connection with no id is in no channel of this process:
            # there is nothing to exclude it from (and a closed one must not
            # get an id again).
            ident = self._connId.get(exclude)
            if ident is not None:
                envelope["exclude"] = ident
        return self.backplane.publish("topic:" + topic, _compactJSON(envelope))

    def publishFromThread(self, topic: str, data: object) -> None:
        """
        L{publish} from a thread other than the reactor's (a WSGI view).

        @raise InvalidTopic: see L{subscribe} (in the calling thread).
        @raise MessageTooLarge: see L{publish} (in the calling thread).
        """
        from twisted.internet import reactor

        self._checkTopic(topic)
        text = self._message({"type": "message", "topic": topic, "data": data})
        reactor.callFromThread(  # type: ignore[attr-defined]
            self.backplane.publish, "topic:" + topic, _compactJSON({"text": text})
        )

    # -- Checks ----------------------------------------------------------------

    def topicProblem(self, topic: object) -> str | None:
        """
        Why C{topic} cannot be used (a sentence for the peer), or C{None}.
        """
        if not isinstance(topic, str) or not topic:
            return "A topic (a non-empty string) is required"
        size = _utf8Size(topic)
        if size is None:
            return "A topic must be valid Unicode text (no lone surrogates)"
        if size > self.maxTopicLength:
            return f"Topic too long (at most {self.maxTopicLength} bytes of UTF-8)"
        return None

    def _checkTopic(self, topic: object) -> None:
        problem = self.topicProblem(topic)
        if problem is not None:
            raise InvalidTopic(problem)

    def _checkSize(self, size: int) -> None:
        if size > self.maxMessageSize:
            raise MessageTooLarge(
                f"Message too large ({size} bytes; at most {self.maxMessageSize})"
            )

    def _message(self, obj: dict[str, object]) -> str:
        """
        The text peers will get for C{obj}, within C{maxMessageSize}.
        """
        text = _compactJSON(obj)
        self._checkSize(len(text) if text.isascii() else len(text.encode("utf-8")))
        return text

    def _topicCount(self, conn: IConnection) -> int:
        return sum(1 for c in self._channelsOf.get(conn, ()) if c.startswith("topic:"))

    # -- Channels --------------------------------------------------------------

    def _join(self, conn: IConnection, channel: str) -> None:
        if conn in self._gone:
            return
        members = self._members.get(channel)
        if members is None:
            # First, so that a channel the backplane refuses is not kept.
            self.backplane.subscribe(channel, self._deliver)
            members = self._members[channel] = set()
        members.add(conn)
        channels = self._channelsOf.get(conn)
        if channels is None:
            channels = self._channelsOf[conn] = set()
            self._connId[conn] = f"{_PROCESS}-{next(_ids)}"
        channels.add(channel)

    def _leave(self, conn: IConnection, channel: str) -> None:
        members = self._members.get(channel)
        if members is None or conn not in members:
            return
        members.discard(conn)
        channels = self._channelsOf.get(conn)
        if channels is not None:
            channels.discard(channel)
            if not channels:
                del self._channelsOf[conn]
                self._connId.pop(conn, None)
        if not members:
            del self._members[channel]
            self.backplane.unsubscribe(channel, self._deliver)

    def _deliver(self, channel: str, payload: str) -> None:
        members = self._members.get(channel)
        if not members:
            return
        unpacked = self._unpack(payload)
        if isinstance(unpacked, str):
            self._dropInvalid(channel, unpacked)
            return
        message, exclude = unpacked
        for conn in list(members):
            if exclude is not None and self._connId.get(conn) == exclude:
                continue
            try:
                conn.send(message)  # the same object: framed once per family
            except Exception:
                if isinstance(conn, Connection):
                    conn.reportError(Failure())
                else:
                    log.failure("Delivering to {conn!r} failed", conn=conn)

    def _unpack(self, payload: object) -> tuple[str | bytes, str | None] | str:
        """
        The message and the excluded connection's id of a backplane
        envelope (C{{"text": str}} or C{{"binary": base64 str}}, with an
        optional C{"exclude": str}), or why it is invalid: anyone who can
        publish to the backplane could send anything.
        """
        limit = self.maxMessageSize
        if not isinstance(payload, str):
            return "not text"
        if len(payload) > 6 * limit + 1024:  # JSON escapes take up to 6 bytes
            return f"{len(payload)} bytes, larger than any valid message"
        try:
            envelope = json.loads(payload)
        except (ValueError, RecursionError):
            return "not JSON"
        if not isinstance(envelope, dict):
            return "not a JSON object"
        exclude = envelope.get("exclude")
        if exclude is not None and not isinstance(exclude, str):
            return '"exclude" is not a string'
        message: str | bytes
        if "text" in envelope:
            if "binary" in envelope:
                return 'both "text" and "binary"'
            message = envelope["text"]
            if not isinstance(message, str):
                return '"text" is not a string'
            size = _utf8Size(message)
            if size is None:
                return '"text" is not valid Unicode text'
        elif "binary" in envelope:
            encoded = envelope["binary"]
            if not isinstance(encoded, str):
                return '"binary" is not a base64 string'
            if len(encoded) > 4 * ((limit + 2) // 3):
                return f'"binary" larger than maxMessageSize ({limit} bytes)'
            try:
                message = base64.b64decode(encoded, validate=True)
            except ValueError:
                return '"binary" is not valid base64'
            size = len(message)
        else:
            return 'neither "text" nor "binary"'
        if size > limit:
            return f"{size} bytes, larger than maxMessageSize ({limit})"
        return message, exclude

    def _dropInvalid(self, channel: str, problem: str) -> None:
        """
        Warn about an invalid backplane message, at most every few seconds
        (with how many more were dropped meanwhile).
        """
        self._invalid += 1
        now = time.monotonic()
        if self._warnedAt is not None and now - self._warnedAt < _WARN_EVERY:
            return
        self._warnedAt = now
        count, self._invalid = self._invalid, 0
        log.warn(
            "Dropped an invalid backplane message on {channel}: {problem}"
            " ({count} dropped since the last warning)",
            channel=channel, problem=problem, count=count,
        )

    # -- The decorator and its wire protocol -----------------------------------

    def onOpen(self, conn: IConnection, /) -> object:
        user = self.userOf(conn)
        if user is not None:
            problem = self.topicProblem(user)
            if problem is None:
                self._join(conn, "user:" + user)
            else:
                log.warn("Not joining user {user} of {peer}: {problem}",
                         user=repr(user)[:100], peer=conn.peer, problem=problem)
        return self.app.onOpen(conn)

    def onMessage(self, conn: IConnection, message: str | bytes, /) -> object:
        if self.wire and isinstance(message, str) and message[:1] == "{":
            try:
                request = json.loads(message)
            except RecursionError:
                self._reply(conn, {"type": "error", "reason": "Invalid JSON: nested too deeply"})
                return None
            except ValueError:
                request = None
            if isinstance(request, dict) and request.get("type") in (
                "subscribe", "unsubscribe", "publish",
            ):
                self._wireRequest(conn, request)
                return None
        return self.app.onMessage(conn, message)

    def _reply(self, conn: IConnection, answer: dict[str, object]) -> None:
        conn.send(_compactJSON(answer))

    def _wireRequest(self, conn: IConnection, request: dict[str, Any]) -> None:  # JSON from a peer
        kind = request["type"]
        topic = request.get("topic")
        problem = self.topicProblem(topic)
        if problem is not None or not isinstance(topic, str):
            self._reply(conn, {"type": "error", "reason": problem})
            return
        if kind == "unsubscribe":
            self.unsubscribe(conn, topic)
            self._reply(conn, {"type": "unsubscribed", "topic": topic})
            return
        allowed = self._allowSubscribe if kind == "subscribe" else self._allowPublish
        if not allowed(conn, topic):
            self._reply(conn, {"type": "error", "reason": f"Not allowed: {topic}"})
            return
        try:
            if kind == "subscribe":
                self.subscribe(conn, topic)
            else:
                self.publish(topic, request.get("data"))
        except ValueError as e:  # bounds, sizes, what the backplane refused
            self._reply(conn, {"type": "error", "reason": str(e)})
            return
        if kind == "subscribe":
            self._reply(conn, {"type": "subscribed", "topic": topic})

    def onClose(self, conn: IConnection, /) -> object:
        for channel in list(self._channelsOf.get(conn, ())):
            self._leave(conn, channel)
        self._channelsOf.pop(conn, None)
        self._connId.pop(conn, None)
        try:
            self._gone.add(conn)
        except TypeError:  # cannot be weakly referenced: nothing to remember it by
            pass
        return self.app.onClose(conn)

    def onError(self, conn: IConnection, failure: Failure, /) -> object:
        return self.app.onError(conn, failure)


def externalMessage(
    topic: str, data: object, prefix: str = "txratchet:"
) -> tuple[str, str]:
    """
    The Redis C{(channel, payload)} that publishes C{data} to C{topic}'s
    subscribers from any other process, with any Redis client::

        channel, payload = externalMessage("blog", {"title": "Hello"})
        redis.Redis().publish(channel, payload)

    Subscribers get C{{"type": "message", "topic": topic, "data": data}}.
    """
    text = _compactJSON({"type": "message", "topic": topic, "data": data})
    return prefix + "topic:" + topic, _compactJSON({"text": text})
