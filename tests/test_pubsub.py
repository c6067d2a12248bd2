"""
Pub/sub: the hub's wire protocol and API, pushing from a WSGI view on the
same port, and the Redis backplane across hubs and processes, including a
Redis restart; real clients, a real redis-server.
"""

from __future__ import annotations

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

from tests import rawclients
from tests.services import RedisServer
from tests.util import ServerTestCase
from txratchet import WebSocket
from txratchet.backplane import RedisBackplane
from txratchet.pubsub import Hub, externalMessage

HOST = "127.0.0.1"


def userFromQuery(conn):
    return (conn.params.get("user") or [None])[0]


def clients(port, *paths):
    out = []
    for path in paths:
        c = rawclients.HybiClient(HOST, port, path)
        c.connect()
        out.append(c)
    return out


def request(c, **message):
    c.send_text(json.dumps(message))


def answer(c):
    return json.loads(c.recv_text())


class WireProtocolTests(ServerTestCase):
    @inlineCallbacks
    def test_subscribePublishUnsubscribe(self):
        hub = Hub(userOf=userFromQuery)
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


class PushFromWebTests(ServerTestCase):
    @inlineCallbacks
    def test_wsgiViewPushesToSubscribers(self):
        """A blog post saved by a WSGI view reaches every subscribed browser at once."""
        from twisted.internet.endpoints import TCP4ServerEndpoint
        from twisted.web.resource import Resource
        from twisted.web.server import Site
        from twisted.web.wsgi import WSGIResource

        from txratchet.web import WebSocketResource

        hub = Hub()

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



class RedisBackplaneTests(RedisTestCase):
    @inlineCallbacks
    def test_acrossHubsAndFromAnotherProcess(self):
        """
        Two hubs with their own Redis connections (two processes' worth) and a
        third, separate process publishing with plain Redis commands.
        """
        first = Hub(backplane=self.backplane())
        second = Hub(backplane=self.backplane())
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
        hub1 = Hub(backplane=self.backplane())
        hub2 = Hub(backplane=self.backplane())
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


class PushExampleTests(RedisTestCase):
    """examples/push.py: Flask saves a post; subscribed pages get it at once."""

    def test_blogPost(self):
        from tests.services import ExampleServer

        server = ExampleServer(self.workdir / "push", "push.py",
                               "--backplane", f"redis://127.0.0.1:{self.redis.port}")
        server.start()
        self.addCleanup(server.stop)

        def talk():
            readers = clients(server.port, "/ws", "/ws")
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
