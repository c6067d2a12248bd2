"""
Pub/sub: the hub's wire protocol and API, pushing from a WSGI view on the
same port, and the Redis backplane across hubs and processes, including a
Redis restart; real clients, a real redis-server.
"""

from __future__ import annotations

import gc
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from tests import rawclients
from tests.services import RedisServer, free_port
from tests.util import ServerTestCase
from txratchet import Application, WebSocket
from txratchet.backplane import RedisBackplane
from txratchet.pubsub import (
    Hub,
    InvalidTopic,
    MessageTooLarge,
    TooManySubscriptions,
    externalMessage,
)

HOST = "127.0.0.1"


def userFromQuery(conn):
    return (conn.params.get("user") or [None])[0]


def clients(port, *paths, origin="http://127.0.0.1"):
    out = []
    for path in paths:
        c = rawclients.HybiClient(HOST, port, path, origin=origin)
        c.connect()
        out.append(c)
    return out


def pages(port, count):
    """C{count} clients on /ws with the origin of the page a browser got from C{port}."""
    return clients(port, *["/ws"] * count, origin=f"http://127.0.0.1:{port}")


def request(c, **message):
    c.send_text(json.dumps(message))


def answer(c):
    return json.loads(c.recv_text())


class WireProtocolTests(ServerTestCase):
    @inlineCallbacks
    def test_subscribePublishUnsubscribe(self):
        hub = Hub(userOf=userFromQuery, allowSubscribe=True, allowPublish=True)
        port = yield self.listen(WebSocket(hub))

        def talk():
            a, b = clients(port, "/", "/")
            old = rawclients.Hixie76Client(HOST, port)
            old.connect()
            request(a, type="subscribe", topic="news")
            subscribed = answer(a)
            old.send_text(json.dumps({"type": "subscribe", "topic": "news"}))
            oldSubscribed = json.loads(old.recv_message())
            request(b, type="publish", topic="news", data={"headline": "hello ✓"})
            got = answer(a), json.loads(old.recv_message())
            request(a, type="unsubscribe", topic="news")
            unsubscribed = answer(a)
            request(b, type="publish", topic="news", data=2)
            second = json.loads(old.recv_message())
            request(b, type="subscribe")
            error = answer(b)
            for c in (a, b):
                c.close()
            old.close()
            return subscribed, oldSubscribed, got, unsubscribed, second, error

        subscribed, oldSubscribed, got, unsubscribed, second, error = yield deferToThread(talk)
        self.assertEqual(subscribed, {"type": "subscribed", "topic": "news"})
        self.assertEqual(oldSubscribed, subscribed)
        expected = {"type": "message", "topic": "news", "data": {"headline": "hello ✓"}}
        self.assertEqual(got, (expected, expected))
        self.assertEqual(unsubscribed, {"type": "unsubscribed", "topic": "news"})
        self.assertEqual(second["data"], 2)
        self.assertEqual(error["type"], "error")
        self.assertEqual(hub.subscribers("news"), set())

    @inlineCallbacks
    def test_sendToUserAndPermissions(self):
        hub = Hub(
            userOf=userFromQuery,
            allowPublish=lambda conn, topic: topic != "announcements",
            allowSubscribe=True,
        )
        port = yield self.listen(WebSocket(hub))

        def talk():
            ann1, ann2, bob = clients(port, "/?user=ann", "/?user=ann", "/?user=bob")
            deadline = time.monotonic() + 5
            while len(hub._members.get("user:ann", ())) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            reactor.callFromThread(hub.sendToUser, "ann", "for ann only")
            got = answer(ann1), answer(ann2)
            request(bob, type="publish", topic="announcements", data="x")
            refused = answer(bob)
            for c in (ann1, ann2, bob):
                c.close()
            return got, refused

        got, refused = yield deferToThread(talk)
        self.assertEqual(got, ({"type": "message", "user": "ann", "data": "for ann only"},) * 2)
        self.assertEqual(refused, {"type": "error", "reason": "Not allowed: announcements"})


class Recording:
    """A stand-in connection that records what it is sent."""

    def __init__(self):
        self.sent = []

    def send(self, message):
        self.sent.append(message)


class Leaver(Application):
    """Subscribes on open; on close broadcasts, publishes and subscribes again."""

    hub: Hub

    def __init__(self):
        self.closed = 0

    def onOpen(self, conn):
        self.hub.subscribe(conn, "room")

    def onClose(self, conn):
        self.closed += 1
        self.hub.broadcast("room", "someone left", exclude=conn)
        self.hub.publish("room", "bye")
        self.hub.subscribe(conn, "late")  # a closed connection: no effect


class HubPermissionTests(ServerTestCase):
    @inlineCallbacks
    def test_wireDeniedUnlessAllowed(self):
        """
        By default peers may neither subscribe nor publish over the wire;
        named topics allow exactly those (a str is one name, not letters).
        """
        closed = Hub()
        blogOnly = Hub(allowSubscribe={"blog"})
        oneName = Hub(allowSubscribe="blog", allowPublish=["chat"])
        ports = []
        for hub in (closed, blogOnly, oneName):
            ports.append((yield self.listen(WebSocket(hub))))

        def talk():
            answers = []
            for port in ports:
                c = clients(port, "/")[0]
                for message in (
                    {"type": "subscribe", "topic": "blog"},
                    {"type": "subscribe", "topic": "b"},
                    {"type": "subscribe", "topic": "admin-secrets"},
                    {"type": "publish", "topic": "blog", "data": "forged"},
                    {"type": "publish", "topic": "chat", "data": "hi"},
                    {"type": "unsubscribe", "topic": "blog"},
                ):
                    request(c, **message)
                    if port == ports[2] and message["topic"] == "chat":
                        continue  # allowed; the publisher is not subscribed: no answer
                    answers.append(answer(c))
                c.close()
            return answers

        answers = yield deferToThread(talk)
        denied = lambda t: {"type": "error", "reason": f"Not allowed: {t}"}  # noqa: E731
        unsubscribed = {"type": "unsubscribed", "topic": "blog"}
        self.assertEqual(answers[:6], [
            denied("blog"), denied("b"), denied("admin-secrets"), denied("blog"),
            denied("chat"), unsubscribed,
        ])
        self.assertEqual(answers[6:12], [
            {"type": "subscribed", "topic": "blog"}, denied("b"), denied("admin-secrets"),
            denied("blog"), denied("chat"), unsubscribed,
        ])
        # The last hub lets its peers publish to chat: the publisher is not
        # subscribed, so the next answer is the unsubscribe's.
        self.assertEqual(answers[12:17], [
            {"type": "subscribed", "topic": "blog"}, denied("b"), denied("admin-secrets"),
            denied("blog"), unsubscribed,
        ])


class HubLimitsTests(ServerTestCase):
    @inlineCallbacks
    def test_subscriptionAndTopicBounds(self):
        """
        A connection holds at most maxSubscriptions topics, each at most
        maxTopicLength bytes of UTF-8, and only text Redis can carry; past
        that, a wire error and the connection stays open.
        """
        self.assertEqual((Hub().maxSubscriptions, Hub().maxTopicLength), (100, 200))
        hub = Hub(allowSubscribe=True, maxSubscriptions=3, maxTopicLength=10)
        port = yield self.listen(WebSocket(hub))

        def talk():
            c = clients(port, "/")[0]
            got = []
            for topic in ("a", "b", "c", "a", "d", "é" * 5, "é" * 6, "x" * 11, "", 5):
                request(c, type="unsubscribe" if topic == "é" * 5 else "subscribe", topic=topic)
                got.append(answer(c))
            c.send_text('{"type": "subscribe", "topic": "\\ud800"}')
            got.append(answer(c))
            request(c, type="unsubscribe", topic="a")
            got.append(answer(c))
            request(c, type="subscribe", topic="é" * 5)
            got.append(answer(c))
            c.close()
            return got

        got = yield deferToThread(talk)
        ok = lambda t: {"type": "subscribed", "topic": t}  # noqa: E731
        self.assertEqual(got[:4], [ok("a"), ok("b"), ok("c"), ok("a")])
        self.assertEqual(got[4], {"type": "error", "reason": "Too many subscriptions (at most 3 per connection)"})
        self.assertEqual(got[5], {"type": "unsubscribed", "topic": "é" * 5})
        tooLong = {"type": "error", "reason": "Topic too long (at most 10 bytes of UTF-8)"}
        self.assertEqual(got[6:8], [tooLong, tooLong])
        required = {"type": "error", "reason": "A topic (a non-empty string) is required"}
        self.assertEqual(got[8:10], [required, required])
        self.assertEqual(got[10]["type"], "error")
        self.assertIn("surrogate", got[10]["reason"])
        self.assertEqual(got[11:], [{"type": "unsubscribed", "topic": "a"}, ok("é" * 5)])

    def test_apiBounds(self):
        """The application's own calls get the same checks, as exceptions."""
        hub = Hub(maxSubscriptions=1, maxTopicLength=4, maxMessageSize=100,
                  userOf=lambda conn: "\ud800")
        conn = Recording()
        conn.peer = "somewhere"
        hub.onOpen(conn)  # a user id Redis could not carry: not joined (logged)
        hub.subscribe(conn, "one")
        hub.subscribe(conn, "one")
        self.assertRaises(TooManySubscriptions, hub.subscribe, conn, "two")
        self.assertRaises(InvalidTopic, hub.subscribe, conn, "\ud800")
        self.assertRaises(InvalidTopic, hub.subscribe, conn, "five!")
        self.assertRaises(InvalidTopic, hub.publish, "\udfff", 1)
        self.assertRaises(InvalidTopic, hub.sendToUser, "\udfff", 1)
        # Raised in the calling thread (a WSGI view), not in the reactor's.
        self.assertRaises(MessageTooLarge, hub.publishFromThread, "one", "x" * 100)
        self.assertRaises(ValueError, hub.broadcast, "one", "\ud800")
        self.assertEqual(set(hub._members), {"topic:one"})
        hub.publish("one", "\ud800")  # data may hold anything JSON can escape
        self.assertEqual(conn.sent, ['{"type":"message","topic":"one","data":"\\ud800"}'])

    @inlineCallbacks
    def test_deeplyNestedJson(self):
        """100,000 levels of nesting get the documented wire error, not 1011."""
        hub = Hub(allowSubscribe=True, allowPublish=True)
        port = yield self.listen(WebSocket(hub))
        depth = 100_000

        def talk():
            c = clients(port, "/")[0]
            got = []
            c.send_text('{"type":"publish","topic":"t","data":' + "[" * depth + "]" * depth + "}")
            got.append(answer(c))
            c.send_text('{"x":' + '{"x":' * depth + "1" + "}" * (depth + 1))
            got.append(answer(c))
            request(c, type="subscribe", topic="t")
            got.append(answer(c))
            c.close()
            return got

        got = yield deferToThread(talk)
        nested = {"type": "error", "reason": "Invalid JSON: nested too deeply"}
        self.assertEqual(got, [nested, nested, {"type": "subscribed", "topic": "t"}])

    @inlineCallbacks
    def test_publishedMessagesWithinMaxMessageSize(self):
        """
        What a publish sends out is compact UTF-8 (not \\u escapes) and never
        larger than the hub's maxMessageSize: what would be is refused with a
        wire error to the publisher, and subscribers get nothing.
        """
        limit = 100_000
        hub = Hub(allowSubscribe=True, allowPublish=True, maxMessageSize=limit)
        port = yield self.listen(WebSocket(hub, maxMessageSize=limit))
        accented = "é" * 40_000  # 80,000 bytes of UTF-8; 240,000 as \\u00e9

        def talk():
            reader, writer = clients(port, "/", "/")
            request(reader, type="subscribe", topic="t")
            answer(reader)
            writer.send_text(json.dumps(
                {"type": "publish", "topic": "t", "data": accented}, ensure_ascii=False
            ))
            first = reader.recv_text()
            # 4 bytes in, 9 out (100000.0): fits coming in, not going out.
            writer.send_text('{"type":"publish","topic":"t","data":[' + ",".join(["1e5"] * 20_000) + "]}")
            refused = answer(writer)
            request(writer, type="publish", topic="t", data="small")
            second = answer(reader)
            reader.close()
            writer.close()
            return first, refused, second

        first, refused, second = yield deferToThread(talk)
        self.assertLessEqual(len(first.encode("utf-8")), limit)
        self.assertEqual(json.loads(first), {"type": "message", "topic": "t", "data": accented})
        self.assertEqual(refused["type"], "error")
        self.assertIn("Message too large", refused["reason"])
        self.assertEqual(second["data"], "small")
        self.assertRaises(MessageTooLarge, hub.publish, "t", "x" * limit)
        self.assertRaises(MessageTooLarge, hub.broadcast, "t", b"x" * (limit + 1))


class HubLifecycleTests(ServerTestCase):
    @inlineCallbacks
    def openAndClose(self, hub, count):
        layer = WebSocket(hub)
        port = yield self.listen(layer)

        def talk():
            for i in range(count):
                if i % 2:
                    c = rawclients.Hixie76Client(HOST, port)
                    c.connect()
                    c.send_text("hello")
                    c.close()
                else:
                    c = clients(port, "/")[0]
                    c.send_text("hello")
                    c.close()

        yield deferToThread(talk)
        deadline = time.monotonic() + 10
        while layer._connections and time.monotonic() < deadline:
            yield deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(layer._connections, {})

    def assertEmpty(self, hub, expected=()):
        self.assertEqual(set(hub._members), set(expected))
        self.assertEqual(hub._channelsOf, {})
        self.assertEqual(hub._connId, {})
        gc.collect()
        self.assertEqual(len(hub._gone), 0)

    @inlineCallbacks
    def test_broadcastFromOnCloseLeavesNothing(self):
        """
        An application that broadcasts (and even subscribes) from onClose
        leaves no trace of the closed connections in the hub.
        """
        app = Leaver()
        app.hub = hub = Hub(app)
        yield self.openAndClose(hub, 40)
        self.assertEqual(app.closed, 40)
        self.assertEmpty(hub)

    @inlineCallbacks
    def test_demoLeavesNothing(self):
        """The bundled demo (twistd -n txratchet) forgets closed connections."""
        from txratchet.demo import demoApplication

        hub = demoApplication()
        yield self.openAndClose(hub, 40)
        self.assertEmpty(hub)


class PushFromWebTests(ServerTestCase):
    @inlineCallbacks
    def test_wsgiViewPushesToSubscribers(self):
        """A blog post saved by a WSGI view reaches every subscribed browser at once."""
        from twisted.internet.endpoints import TCP4ServerEndpoint
        from twisted.web.resource import Resource
        from twisted.web.server import Site
        from twisted.web.wsgi import WSGIResource

        from txratchet.web import WebSocketResource

        hub = Hub(allowSubscribe={"blog"})

        def blog(environ, startResponse):
            size = int(environ.get("CONTENT_LENGTH") or 0)
            title = environ["wsgi.input"].read(size).decode()
            hub.publishFromThread("blog", {"title": title})
            startResponse("201 Created", [("Content-Type", "text/plain")])
            return [b"saved"]

        root = Resource()
        root.putChild(b"post", WSGIResource(reactor, reactor.getThreadPool(), blog))
        layer = WebSocket(hub)
        root.putChild(b"ws", WebSocketResource(layer))
        port = yield TCP4ServerEndpoint(reactor, 0, interface=HOST).listen(Site(root))
        self.addCleanup(port.stopListening)
        self.addCleanup(self._dropConnections, layer)
        number = port.getHost().port

        def talk():
            readers = clients(number, "/ws", "/ws")
            for r in readers:
                request(r, type="subscribe", topic="blog")
                answer(r)
            body = "Hello, push"
            response = rawclients.raw_request(
                HOST, number,
                f"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n{body}".encode(),
            )
            got = [answer(r) for r in readers]
            for r in readers:
                r.close()
            return response, got

        response, got = yield deferToThread(talk)
        self.assertIn(b" 201 ", response.split(b"\r\n")[0])
        self.assertEqual(got, [{"type": "message", "topic": "blog", "data": {"title": "Hello, push"}}] * 2)


class RedisTestCase(ServerTestCase):
    """A real redis-server per test."""

    timeout = 60

    def setUp(self):
        self.workdir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.workdir, True)
        self.redis = RedisServer(self.workdir)
        self.redis.start()
        self.addCleanup(self.redis.stop)

    def backplane(self):
        plane = RedisBackplane(HOST, self.redis.port)
        self.addCleanup(plane.close)
        return plane

    @inlineCallbacks
    def waitFor(self, condition, seconds=10):
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                self.fail("condition not met in time")
            yield deferLater(reactor, 0.05, lambda: None)

    def probe(self, channel, text="probe"):
        """
        (Blocking) publish C{{"text": text}} on C{channel} until a
        subscriber gets it: exactly one copy is delivered.
        """
        deadline = time.monotonic() + 10
        while not self.redis.call("PUBLISH", channel, json.dumps({"text": text})):
            assert time.monotonic() < deadline, f"nobody subscribed to {channel}"
            time.sleep(0.05)

    def captureLog(self):
        """The events logged from now on (twisted.logger), formatted."""
        events = []

        def observer(event):
            events.append((event.get("log_level"), formatEvent(event) or ""))

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        return events



class RedisBackplaneTests(RedisTestCase):
    @inlineCallbacks
    def test_acrossHubsAndFromAnotherProcess(self):
        """
        Two hubs with their own Redis connections (two processes' worth) and a
        third, separate process publishing with plain Redis commands.
        """
        first = Hub(backplane=self.backplane(), allowSubscribe=True, allowPublish=True)
        second = Hub(backplane=self.backplane(), allowSubscribe=True, allowPublish=True)
        port1 = yield self.listen(WebSocket(first))
        port2 = yield self.listen(WebSocket(second))

        def talk():
            a = clients(port1, "/")[0]
            b = clients(port2, "/")[0]
            for c in (a, b):
                request(c, type="subscribe", topic="room")
                answer(c)
            time.sleep(0.3)  # SUBSCRIBE reaches Redis
            request(a, type="publish", topic="room", data="from hub 1")
            got = [answer(a), answer(b)]
            channel, payload = externalMessage("room", {"from": "elsewhere"})
            subprocess.run(
                [str(self.redis.executable).replace("redis-server", "redis-cli"),
                 "-p", str(self.redis.port), "PUBLISH", channel, payload],
                check=True, capture_output=True, timeout=10,
            )
            got += [answer(a), answer(b)]
            a.close()
            b.close()
            return got

        got = yield deferToThread(talk)
        self.assertEqual([g["data"] for g in got], ["from hub 1"] * 2 + [{"from": "elsewhere"}] * 2)

    @inlineCallbacks
    def test_redisRestartedDeliveryResumes(self):
        hub1 = Hub(backplane=self.backplane(), allowSubscribe=True, allowPublish=True)
        hub2 = Hub(backplane=self.backplane(), allowSubscribe=True, allowPublish=True)
        port1 = yield self.listen(WebSocket(hub1))
        port2 = yield self.listen(WebSocket(hub2))
        redis = self.redis

        def restartRedis():
            port = redis.port
            redis.stop()
            time.sleep(0.5)
            with open(redis.logPath, "ab") as out:
                redis.process = subprocess.Popen(
                    redis.command(), cwd=redis.workdir, stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )
            deadline = time.monotonic() + 10
            while not redis.ready() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert redis.port == port

        def talk():
            a = clients(port1, "/")[0]
            b = clients(port2, "/")[0]
            request(b, type="subscribe", topic="t")
            answer(b)
            time.sleep(0.3)
            request(a, type="publish", topic="t", data="before")
            before = answer(b)
            restartRedis()
            # Delivery resumes once both hubs reconnected and resubscribed.
            deadline = time.monotonic() + 20
            after = None
            b.timeout = 0.5
            while after is None and time.monotonic() < deadline:
                request(a, type="publish", topic="t", data="after")
                try:
                    after = answer(b)
                except rawclients.RecvTimeout:
                    pass
            a.close()
            b.close()
            return before, after

        before, after = yield deferToThread(talk)
        self.assertEqual(before["data"], "before")
        self.assertIsNotNone(after, "delivery did not resume after Redis restarted")
        self.assertEqual(after["data"], "after")


class RedisHardeningTests(RedisTestCase):
    @inlineCallbacks
    def test_unusableTopicRefusedAndResubscribeSurvives(self):
        """
        A topic Redis cannot carry (a lone surrogate) gets a wire error and
        is not registered; after a Redis restart every channel is subscribed
        again, in batches, even with an unusable channel among them.
        """
        plane = self.backplane()
        hub = Hub(backplane=plane, allowSubscribe=True)
        port = yield self.listen(WebSocket(hub))
        # 270 channels through the API (three SUBSCRIBE batches after the
        # restart), and one that could only get there by a bug.
        listeners = [Recording() for _ in range(3)]
        for n, listener in enumerate(listeners):
            for i in range(90):
                hub.subscribe(listener, f"api-{n}-{i}")
        plane._subscriptions.add("topic:bad\udc80", lambda channel, payload: None)
        redis = self.redis

        def talk():
            c = clients(port, "/")[0]
            c.send_text('{"type": "subscribe", "topic": "\\ud800"}')
            refused = answer(c)
            request(c, type="subscribe", topic="t")
            subscribed = answer(c)
            self.probe("txratchet:topic:t")
            before = c.recv_text()
            redis.stop()
            time.sleep(0.3)
            self.redis.startAgain()
            self.probe("txratchet:topic:t", "after")
            after = c.recv_text()
            self.probe("txratchet:topic:api-2-89", "last batch")
            c.close()
            return refused, subscribed, before, after

        refused, subscribed, before, after = yield deferToThread(talk)
        self.assertEqual(refused["type"], "error")
        self.assertIn("surrogate", refused["reason"])
        self.assertEqual(subscribed, {"type": "subscribed", "topic": "t"})
        self.assertEqual((before, after), ("probe", "after"))
        yield self.waitFor(lambda: listeners[2].sent)
        self.assertEqual(listeners[2].sent, ["last batch"])
        self.assertNotIn("topic:\ud800", hub._members)
        self.assertNotIn("topic:\ud800", plane._subscriptions.callbacks)

    @inlineCallbacks
    def test_invalidEnvelopesDropped(self):
        """
        Whatever another Redis client publishes, peers get only valid
        messages within the hub's maxMessageSize; the rest is dropped with a
        warning (one per burst), and the connections stay open.
        """
        events = self.captureLog()
        hub = Hub(backplane=self.backplane(), allowSubscribe=True, maxMessageSize=1000)
        port = yield self.listen(WebSocket(hub))
        channel = "txratchet:topic:t"
        invalid = [
            '{"text": 50000000}', '{"text": -1}', '{"text": null}', '{"text": ["x"]}',
            '{"binary": "!!!!"}', '{"binary": 5}', '{"binary": "' + "A" * 2000 + '"}',
            '{"text": "' + "x" * 1001 + '"}', '{"text": "' + "é" * 501 + '"}',
            '{"text": "\\ud800"}', '{"text": "a", "binary": "YQ=="}', '{"text": "a", "exclude": 5}',
            "{}", "[1]", "5", "not json", "[" * 100_000,
        ]

        def talk():
            c = clients(port, "/")[0]
            request(c, type="subscribe", topic="t")
            answer(c)
            self.probe(channel)
            probed = c.recv_text()
            for payload in invalid:
                self.redis.call("PUBLISH", channel, payload)
            self.redis.call("PUBLISH", channel, '{"text": "' + "é" * 500 + '"}')
            self.redis.call("PUBLISH", channel, '{"binary": "AAE="}')
            got = [c.recv_message(), c.recv_message()]
            c.close()
            # Short: what a failure prints (the old code sent 50 MB).
            return probed, [(opcode, len(data), data[:20]) for opcode, data in got]

        probed, got = yield deferToThread(talk)
        self.assertEqual(probed, "probe")
        self.assertEqual(got, [
            (rawclients.OP_TEXT, 1000, ("é" * 10).encode()), (rawclients.OP_BINARY, 2, b"\x00\x01"),
        ])
        warnings = [text for level, text in events if "invalid backplane message" in text]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("topic:t", warnings[0])

    @inlineCallbacks
    def test_outageLoggedOncePerChange(self):
        """
        A Redis that goes away gets one warning naming its address (not
        one per retry, no object reprs), its return one line, a deliberate
        stop nothing; publishing meanwhile fails at once, queueing nothing.
        """
        events = self.captureLog()
        plane = self.backplane()
        hub = Hub(backplane=plane)
        hub.subscribe(Recording(), "t")
        links = [plane._subscriber.link, plane._publisher.link]
        up = lambda: all(link.protocol is not None for link in links)  # noqa: E731
        yield self.waitFor(up)
        retries = []
        policy = links[0]._policy
        links[0]._policy = lambda attempt: retries.append(attempt) or policy(attempt)
        yield deferToThread(self.redis.stop)
        yield self.waitFor(lambda: len(retries) >= 3)
        published = hub.publish("t", "while down")
        self.assertTrue(published.called)
        yield published
        yield deferToThread(self.redis.startAgain)
        yield self.waitFor(up)
        address = f"127.0.0.1:{self.redis.port}"
        ours = [(level, text) for level, text in events if "Redis" in text]
        warnings = [text for level, text in ours if level == LogLevel.warn]
        self.assertEqual(len(warnings), 1, ours)
        self.assertIn(f"Redis backplane at {address}", warnings[0])
        self.assertRegex(warnings[0], r"(connection lost|unreachable) \(.*\); (reconnecting|retrying) in [0-9.]+ s")
        self.assertNotIn("<", warnings[0])
        self.assertEqual([text for level, text in ours if "reachable again" in text],
                         [f"Redis backplane at {address} is reachable again"])
        self.assertFalse([text for level, text in events if "Scheduling retry" in text])
        del events[:]
        yield plane.stop()
        yield deferLater(reactor, 0.5, lambda: None)
        self.assertEqual([text for level, text in events if level == LogLevel.warn], [])

    @inlineCallbacks
    def test_unreachableFromTheStart(self):
        events = self.captureLog()
        port = free_port()
        plane = RedisBackplane(HOST, port)
        self.addCleanup(plane.stop)
        yield deferLater(reactor, 2, lambda: None)
        warnings = [text for level, text in events if level == LogLevel.warn]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertRegex(
            warnings[0],
            rf"^Redis backplane at 127\.0\.0\.1:{port} unreachable \(connection refused\); "
            r"retrying in [0-9.]+ s",
        )


class PushExampleTests(RedisTestCase):
    """examples/push.py: Flask saves a post; subscribed pages get it at once."""

    def startExample(self, *args):
        from tests.services import ExampleServer

        server = ExampleServer(self.workdir / "push", "push.py",
                               "--backplane", f"redis://127.0.0.1:{self.redis.port}", *args)
        server.start()
        self.addCleanup(server.stop)
        return server

    def savePost(self, port, title):
        body = "title=" + title.replace(" ", "+")
        return rawclients.raw_request(
            HOST, port,
            f"POST /post HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode(),
        )

    def test_forgeriesAndOtherSitesRefused(self):
        """
        A peer may not publish (a forged blog post) nor subscribe to another
        topic (admin-secrets): wire errors, and readers see only real posts.
        Other sites' pages are refused (403); --origin allows one.
        """
        server = self.startExample("--origin", "https://friend.example")

        def talk():
            port = server.port
            reader, attacker = pages(port, 2)
            request(reader, type="subscribe", topic="blog")
            subscribed = answer(reader)
            request(attacker, type="publish", topic="blog", data={"title": "Forged"})
            forged = answer(attacker)
            request(attacker, type="subscribe", topic="admin-secrets")
            secrets = answer(attacker)
            self.savePost(port, "Real post")
            first = answer(reader)
            statuses = {}
            for origin in ("https://evil.example", f"http://127.0.0.1:{port + 1}",
                           f"http://localhost:{port}", "null", "https://friend.example"):
                c = rawclients.HybiClient(HOST, port, "/ws", origin=origin)
                try:
                    c.connect()
                    statuses[origin] = 101
                    c.close()
                except rawclients.HandshakeError as e:
                    statuses[origin] = e.status
            reader.close()
            attacker.close()
            return subscribed, forged, secrets, first, statuses

        def check(result):
            subscribed, forged, secrets, first, statuses = result
            self.assertEqual(subscribed, {"type": "subscribed", "topic": "blog"})
            self.assertEqual(forged, {"type": "error", "reason": "Not allowed: blog"})
            self.assertEqual(secrets, {"type": "error", "reason": "Not allowed: admin-secrets"})
            self.assertEqual(first["data"], {"title": "Real post"})
            port = server.port
            self.assertEqual(statuses, {
                "https://evil.example": 403, f"http://127.0.0.1:{port + 1}": 403,
                f"http://localhost:{port}": 403, "null": 403, "https://friend.example": 101,
            })

        return deferToThread(talk).addCallback(check)

    def test_blogPost(self):
        server = self.startExample()

        def talk():
            readers = pages(server.port, 2)
            for r in readers:
                request(r, type="subscribe", topic="blog")
                answer(r)
            time.sleep(0.3)
            body = "title=Hello+readers"
            saved = rawclients.raw_request(
                HOST, server.port,
                f"POST /post HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode(),
            )
            fromFlask = [answer(r) for r in readers]
            # Another process publishes through Redis.
            channel, payload = externalMessage("blog", {"title": "From a cron job"})
            self.redis.call("PUBLISH", channel, payload)
            fromElsewhere = [answer(r) for r in readers]
            page = rawclients.raw_request(
                HOST, server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            for r in readers:
                r.close()
            return saved, fromFlask, fromElsewhere, page

        def check(result):
            saved, fromFlask, fromElsewhere, page = result
            self.assertIn(b" 201 ", saved.split(b"\r\n")[0])
            self.assertEqual([m["data"] for m in fromFlask], [{"title": "Hello readers"}] * 2)
            self.assertEqual([m["data"] for m in fromElsewhere], [{"title": "From a cron job"}] * 2)
            self.assertIn(b"<li>Hello readers</li>", page)

        return deferToThread(talk).addCallback(check)
