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

Other messages go to the wrapped application unchanged.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from txratchet.application import Application
from txratchet.backplane import IBackplane, InProcessBackplane
from txratchet.components.base import Decorator
from txratchet.interfaces import IApplication, IConnection

log = Logger()

_ids = itertools.count(1)
_PROCESS = f"{os.getpid()}-{os.urandom(4).hex()}"

MAX_TOPIC_LENGTH = 256


def defaultUserOf(conn: Any) -> str | None:
    """
    The user of a connection: C{conn.session["user"]} (or C{["name"]}) when
    a L{txratchet.components.SessionProvider} loaded a session, else
    C{None}.
    """
    session = getattr(conn, "session", None)
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

    @param app: the application to pass other events and messages to.
    @param backplane: where published messages travel (default: this
        process only).
    @param userOf: C{conn -> user id or None}, for L{sendToUser}.
    @param allowPublish: C{(conn, topic) -> bool}: may this peer publish
        over the wire protocol? Default: yes.
    @param allowSubscribe: C{(conn, topic) -> bool}: may it subscribe?
    @param wire: speak the JSON wire protocol (else only the API).
    """

    def __init__(
        self,
        app: IApplication | None = None,
        backplane: IBackplane | None = None,
        userOf: Callable[[Any], str | None] = defaultUserOf,
        allowPublish: Callable[[Any, str], bool] | None = None,
        allowSubscribe: Callable[[Any, str], bool] | None = None,
        wire: bool = True,
    ) -> None:
        super().__init__(app if app is not None else Application())
        self.backplane: IBackplane = backplane if backplane is not None else InProcessBackplane()
        self.userOf = userOf
        self.allowPublish = allowPublish
        self.allowSubscribe = allowSubscribe
        self.wire = wire
        self._members: dict[str, set[Any]] = {}  # channel -> local connections
        self._channelsOf: dict[Any, set[str]] = {}  # connection -> channels
        self._connId: dict[Any, str] = {}

    # -- The application API -------------------------------------------------

    def subscribe(self, conn: IConnection, topic: str) -> None:
        """
        Let C{conn} receive what is published to C{topic}.
        """
        self._join(conn, "topic:" + topic)

    def unsubscribe(self, conn: IConnection, topic: str) -> None:
        """
        Stop C{conn} receiving C{topic}.
        """
        self._leave(conn, "topic:" + topic)

    def subscribers(self, topic: str) -> set[Any]:
        """
        The connections of this process subscribed to C{topic}.
        """
        return set(self._members.get("topic:" + topic, ()))

    def publish(self, topic: str, data: Any) -> Deferred[Any]:
        """
        Send C{data} (anything JSON can encode) to every subscriber of
        C{topic}, in every process, as C{{"type": "message", "topic": ...,
        "data": ...}}.
        """
        payload = json.dumps({"type": "message", "topic": topic, "data": data})
        return self.backplane.publish("topic:" + topic, json.dumps({"text": payload}))

    def sendToUser(self, user: str, data: Any) -> Deferred[Any]:
        """
        Send C{data} to every connection of C{user} (see C{userOf}), in
        every process, as C{{"type": "message", "user": ..., "data": ...}}.
        """
        payload = json.dumps({"type": "message", "user": user, "data": data})
        return self.backplane.publish("user:" + user, json.dumps({"text": payload}))

    def broadcast(
        self, topic: str, message: str | bytes, exclude: IConnection | None = None
    ) -> Deferred[Any]:
        """
        Send C{message} as it is (no JSON envelope: text or binary) to every
        subscriber of C{topic} in every process, except C{exclude}.
        """
        envelope: dict[str, Any] = (
            {"text": message}
            if isinstance(message, str)
            else {"binary": base64.b64encode(message).decode("ascii")}
        )
        if exclude is not None:
            envelope["exclude"] = self._idOf(exclude)
        return self.backplane.publish("topic:" + topic, json.dumps(envelope))

    def publishFromThread(self, topic: str, data: Any) -> None:
        """
        L{publish} from a thread other than the reactor's (a WSGI view).
        """
        from twisted.internet import reactor

        reactor.callFromThread(self.publish, topic, data)  # type: ignore[attr-defined]

    # -- Channels --------------------------------------------------------------

    def _idOf(self, conn: Any) -> str:
        ident = self._connId.get(conn)
        if ident is None:
            ident = self._connId[conn] = f"{_PROCESS}-{next(_ids)}"
        return ident

    def _join(self, conn: Any, channel: str) -> None:
        members = self._members.get(channel)
        if members is None:
            members = self._members[channel] = set()
            self.backplane.subscribe(channel, self._deliver)
        members.add(conn)
        self._channelsOf.setdefault(conn, set()).add(channel)

    def _leave(self, conn: Any, channel: str) -> None:
        members = self._members.get(channel)
        if members is None or conn not in members:
            return
        members.discard(conn)
        self._channelsOf.get(conn, set()).discard(channel)
        if not members:
            del self._members[channel]
            self.backplane.unsubscribe(channel, self._deliver)

    def _deliver(self, channel: str, payload: str) -> None:
        members = self._members.get(channel)
        if not members:
            return
        try:
            envelope = json.loads(payload)
            message: str | bytes = (
                envelope["text"]
                if "text" in envelope
                else base64.b64decode(envelope["binary"])
            )
        except (ValueError, KeyError, TypeError):
            log.warn("Dropped a malformed backplane message on {channel}", channel=channel)
            return
        exclude = envelope.get("exclude")
        for conn in list(members):
            if exclude is not None and self._connId.get(conn) == exclude:
                continue
            try:
                conn.send(message)  # the same object: framed once per family
            except Exception:
                report = getattr(conn, "reportError", None)
                if report is not None:
                    report(Failure())

    # -- The decorator and its wire protocol -----------------------------------

    def onOpen(self, conn: IConnection) -> object:
        user = self.userOf(conn)
        if user is not None:
            self._join(conn, "user:" + user)
        return self.app.onOpen(conn)

    def onMessage(self, conn: IConnection, message: str | bytes) -> object:
        if self.wire and isinstance(message, str) and message[:1] == "{":
            try:
                request = json.loads(message)
            except ValueError:
                request = None
            if isinstance(request, dict) and request.get("type") in (
                "subscribe", "unsubscribe", "publish",
            ):
                self._wireRequest(conn, request)
                return None
        return self.app.onMessage(conn, message)

    def _wireRequest(self, conn: Any, request: dict[str, Any]) -> None:
        kind = request["type"]
        topic = request.get("topic")
        if not isinstance(topic, str) or not topic or len(topic) > MAX_TOPIC_LENGTH:
            conn.send(json.dumps({"type": "error", "reason": "A topic (a string) is required"}))
            return
        if kind == "subscribe":
            if self.allowSubscribe is not None and not self.allowSubscribe(conn, topic):
                conn.send(json.dumps({"type": "error", "reason": f"Not allowed: {topic}"}))
                return
            self.subscribe(conn, topic)
            conn.send(json.dumps({"type": "subscribed", "topic": topic}))
        elif kind == "unsubscribe":
            self.unsubscribe(conn, topic)
            conn.send(json.dumps({"type": "unsubscribed", "topic": topic}))
        else:
            if self.allowPublish is not None and not self.allowPublish(conn, topic):
                conn.send(json.dumps({"type": "error", "reason": f"Not allowed: {topic}"}))
                return
            self.publish(topic, request.get("data"))

    def onClose(self, conn: IConnection) -> object:
        for channel in list(self._channelsOf.pop(conn, ())):
            self._leave(conn, channel)
        self._connId.pop(conn, None)
        return self.app.onClose(conn)

    def onError(self, conn: IConnection, failure: Failure) -> object:
        return self.app.onError(conn, failure)


def externalMessage(
    topic: str, data: Any, prefix: str = "txratchet:"
) -> tuple[str, str]:
    """
    The Redis C{(channel, payload)} that publishes C{data} to C{topic}'s
    subscribers from any other process, with any Redis client::

        channel, payload = externalMessage("blog", {"title": "Hello"})
        redis.Redis().publish(channel, payload)

    Subscribers get C{{"type": "message", "topic": topic, "data": data}}.
    """
    text = json.dumps({"type": "message", "topic": topic, "data": data})
    return prefix + "topic:" + topic, json.dumps({"text": text})
