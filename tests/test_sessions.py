"""
L{txratchet.components.session}: the web application's session reaches the
WebSocket application as C{conn.session}. Real components only: twisted.web
sessions of a real C{Site}, Flask's real signed cookies, an SQLite file
written by another process, a real C{redis-server} (L{tests.services}), and
the Flask chat example end to end in headless Chromium.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import Interface

from examples import flaskchat
from tests import browser_helpers, rawclients, services
from tests.util import Recorder, ServerTestCase
from txratchet import LineProtocol, WebSocket
from txratchet.components.session import (
    FlaskCookieSessions,
    RedisSessionStore,
    SessionProvider,
    SQLiteSessionStore,
    TwistedWebSessions,
    newSessionId,
)
from txratchet.web import WebSocketResource

HOST = "127.0.0.1"


def talk(port, cookie=None, path="/", message="ping"):
    """
    Open a WebSocket with C{cookie} (a C{Cookie} header value), send one
    message, return C{(101, echo)}; or C{(status, body)} when refused.
    """
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    headers = {"Cookie": cookie} if cookie else None
    try:
        with connect(f"ws://{HOST}:{port}{path}", additional_headers=headers, open_timeout=5) as ws:
            ws.send(message)
            return 101, ws.recv(timeout=5)
    except InvalidStatus as e:
        return e.response.status_code, bytes(e.response.body or b"")


class SessionTestCase(ServerTestCase):
    @inlineCallbacks
    def serve(self, store, **options):
        """Serve C{WebSocket(SessionProvider(Recorder(), store))}."""
        recorder = Recorder()
        port = yield self.listen(WebSocket(SessionProvider(recorder, store, **options)))
        return recorder, port

    @inlineCallbacks
    def sessionFor(self, store, cookie, **options):
        """
        What C{conn.session} is for a client sending C{cookie}: the session,
        or the HTTP status the handshake was refused with.
        """
        recorder, port = yield self.serve(store, **options)
        status, answer = yield deferToThread(talk, port, cookie)
        if status != 101:
            return status
        self.assertEqual(answer, "ping")
        return recorder.conns[-1].session


class IUser(Interface):
    """What the site's pages keep about a user in its twisted.web session."""


class User:
    def __init__(self, name):
        self.name = name


class Login(Resource):
    isLeaf = True

    def render_GET(self, request):
        session = request.getSession()
        session.setComponent(IUser, User(request.args[b"name"][0].decode()))
        return b"logged in"


class TwistedWebSessionTests(SessionTestCase):
    @inlineCallbacks
    def makeSite(self, **options):
        root = Resource()
        root.putChild(b"login", Login())
        site = Site(root)
        self.recorder = Recorder()
        store = TwistedWebSessions(site, **options)
        root.putChild(b"ws", WebSocketResource(WebSocket(SessionProvider(self.recorder, store))))
        port = yield TCP4ServerEndpoint(reactor, 0, interface=HOST).listen(site)
        self.addCleanup(port.stopListening)
        self.addCleanup(self._dropConnections, self.recorder)
        self.addCleanup(lambda: [s.expire() for s in list(site.sessions.values())])
        return site, port.getHost().port

    @inlineCallbacks
    def logIn(self, port, name):
        """Log in through the site's page; return its session cookie."""
        response = yield deferToThread(
            rawclients.raw_request, HOST, port,
            f"GET /login?name={name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
        )
        head = response.split(b"\r\n\r\n")[0].decode()
        self.assertIn("200 OK", head.splitlines()[0])
        cookie = next(line for line in head.splitlines() if line.lower().startswith("set-cookie:"))
        return cookie.split(":", 1)[1].split(";")[0].strip()  # "TWISTED_SESSION=<uid>"

    @inlineCallbacks
    def test_componentOfTheSiteSession(self):
        """The page's session component, found from the page's cookie."""
        _, port = yield self.makeSite(interface=IUser)
        cookie = yield self.logIn(port, "ann")
        self.assertTrue(cookie.startswith("TWISTED_SESSION="), cookie)
        status, _ = yield deferToThread(talk, port, cookie, "/ws")
        self.assertEqual(status, 101)
        self.assertEqual(self.recorder.conns[0].session.name, "ann")

    @inlineCallbacks
    def test_sessionItselfAndNoneCreated(self):
        """
        Without an interface C{conn.session} is the twisted.web Session;
        unknown or expired cookies are refused and create no session.
        """
        site, port = yield self.makeSite()
        cookie = yield self.logIn(port, "bob")
        uid = cookie.split("=", 1)[1].encode()
        status, _ = yield deferToThread(talk, port, cookie, "/ws")
        self.assertEqual(status, 101)
        self.assertIs(self.recorder.conns[0].session, site.sessions[uid])
        self.assertIsInstance(IUser(self.recorder.conns[0].session), User)

        unknown = yield deferToThread(talk, port, "TWISTED_SESSION=f00d", "/ws")
        missing = yield deferToThread(talk, port, None, "/ws")
        site.sessions[uid].expire()
        expired = yield deferToThread(talk, port, cookie, "/ws")
        self.assertEqual([unknown[0], missing[0], expired[0]], [403, 403, 403])
        self.assertEqual(site.sessions, {})


def makeFlaskApp(secretKey="test secret"):
    from flask import Flask, request, session

    app = Flask(__name__)
    app.secret_key = secretKey

    @app.post("/login")
    def login():
        session["name"] = request.form["name"]
        return "ok"

    return app


def flaskCookie(app, name):
    """Log in through the Flask app; return the C{session} cookie's value."""
    client = app.test_client()
    client.post("/login", data={"name": name})
    return client.get_cookie("session").value


class FlaskCookieTests(SessionTestCase):
    @inlineCallbacks
    def test_signedCookie(self):
        """Flask's own cookie, verified with the app's key: its dict, with no server."""
        app = makeFlaskApp()
        cookie = flaskCookie(app, "ann")
        session = yield self.sessionFor(FlaskCookieSessions(app), f"theme=dark; session={cookie}")
        self.assertEqual(session, {"name": "ann"})

    @inlineCallbacks
    def test_forgedCookies(self):
        """A tampered cookie and one signed with another key are refused."""
        app = makeFlaskApp()
        store = FlaskCookieSessions(app)
        _, stamp, signature = flaskCookie(app, "ann").split(".")
        tampered = "eyJuYW1lIjoiYWRtaW4ifQ" + "." + stamp + "." + signature  # {"name":"admin"}
        otherKey = flaskCookie(makeFlaskApp("another secret"), "ann")
        for cookie in (tampered, otherKey, "garbage"):
            status = yield self.sessionFor(store, f"session={cookie}")
            self.assertEqual(status, 403, cookie)

    @inlineCallbacks
    def test_expired(self):
        """Past PERMANENT_SESSION_LIFETIME the cookie is refused, as Flask refuses it."""
        from datetime import timedelta

        app = makeFlaskApp()
        cookie = flaskCookie(app, "ann")
        app.permanent_session_lifetime = timedelta(seconds=-1)  # every cookie is too old
        status = yield self.sessionFor(FlaskCookieSessions(app), f"session={cookie}")
        self.assertEqual(status, 403)

    def test_secretKeyRequired(self):
        from flask import Flask

        self.assertRaises(ValueError, FlaskCookieSessions, Flask(__name__))


class OptionalSessionTests(SessionTestCase):
    @inlineCallbacks
    def test_requiredOrNot(self):
        """Missing or unknown: 403 when required; otherwise open with None."""
        store = FlaskCookieSessions(makeFlaskApp())
        refused = yield self.sessionFor(store, None)
        unknown = yield self.sessionFor(store, "session=nope", cookieName="session")
        self.assertEqual((refused, unknown), (403, 403))
        for cookie in (None, "session=nope"):
            session = yield self.sessionFor(store, cookie, required=False)
            self.assertIsNone(session)

    @inlineCallbacks
    def test_refusalBody(self):
        recorder, port = yield self.serve(FlaskCookieSessions(makeFlaskApp()))
        status, body = yield deferToThread(talk, port)
        self.assertEqual((status, body), (403, b"A valid session is required\n"))
        self.assertEqual(recorder.events, [])

    @inlineCallbacks
    def test_lineProtocol(self):
        """No handshake, no cookies: refused when required, else session None."""
        store = FlaskCookieSessions(makeFlaskApp())
        strict, lenient = Recorder(), Recorder()
        strictPort = yield self.listen(LineProtocol(SessionProvider(strict, store)))
        lenientPort = yield self.listen(LineProtocol(SessionProvider(lenient, store, required=False)))

        def line(port):
            with socket.create_connection((HOST, port), timeout=5) as s:
                s.sendall(b"hi\n")
                return s.makefile("rb").readline()

        self.assertEqual((yield deferToThread(line, strictPort)), b"A valid session is required\n")
        self.assertEqual((yield deferToThread(line, lenientPort)), b"hi\n")
        self.assertEqual(strict.events, [])
        self.assertIsNone(lenient.conns[0].session)


# The web side of the shared stores: another process that knows only the
# documented formats.
SQLITE_WRITER = """
import json, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=10)
db.execute("CREATE TABLE IF NOT EXISTS txratchet_sessions"
           " (id TEXT PRIMARY KEY, data TEXT NOT NULL, expires REAL)")
rows = json.loads(sys.argv[2])
for sid, data, ttl in rows:
    db.execute("INSERT OR REPLACE INTO txratchet_sessions VALUES (?, ?, ?)",
               (sid, data, None if ttl is None else time.time() + ttl))
db.commit()
"""


class SQLiteStoreTests(SessionTestCase):
    def setUp(self):
        self.path = str(services.tempDir(self) / "sessions.db")
        self.store = SQLiteSessionStore(self.path)
        self.addCleanup(self.store.close)

    def writeFromAnotherProcess(self, *rows):
        """C{rows}: C{(id, JSON text, ttl or None)}."""
        return deferToThread(
            subprocess.run,
            [sys.executable, "-c", SQLITE_WRITER, self.path, json.dumps(rows)],
            check=True, timeout=10,
        )

    @inlineCallbacks
    def test_sharedWithAnotherProcess(self):
        ann, old, bad = newSessionId(), newSessionId(), newSessionId()
        yield self.writeFromAnotherProcess(
            (ann, json.dumps({"name": "ann", "roles": ["admin"]}), 3600),
            (old, json.dumps({"name": "old"}), -1),
            (bad, "not json", None),
        )
        session = yield self.sessionFor(self.store, f"session_id={ann}")
        self.assertEqual(session, {"name": "ann", "roles": ["admin"]})
        for sid in (old, bad, "unknown"):
            status = yield self.sessionFor(self.store, f"session_id={sid}")
            self.assertEqual(status, 403, sid)

    @inlineCallbacks
    def test_saveIsReadByAnotherProcess(self):
        sid = newSessionId()
        yield self.store.save(sid, {"name": "bob"}, ttl=60)
        out = yield deferToThread(
            subprocess.run,
            [sys.executable, "-c",
             "import json, sqlite3, sys; print(json.dumps(sqlite3.connect(sys.argv[1]).execute("
             "'SELECT data, expires FROM txratchet_sessions WHERE id = ?', (sys.argv[2],))"
             ".fetchone()))", self.path, sid],
            capture_output=True, text=True, check=True, timeout=10,
        )
        data, expires = json.loads(out.stdout)
        self.assertEqual(json.loads(data), {"name": "bob"})
        self.assertLess(abs(expires - (time.time() + 60)), 10)
        yield self.store.delete(sid)
        self.assertIsNone((yield self.store.load(sid)))
        yield self.store.save(sid, {"name": "gone"}, ttl=-1)
        yield self.store.purgeExpired()
        rows = sqlite3.connect(self.path).execute("SELECT COUNT(*) FROM txratchet_sessions")
        self.assertEqual(rows.fetchone(), (0,))

    @inlineCallbacks
    def test_reactorRunsWhileTheDatabaseIsLocked(self):
        """A load that waits for another writer's lock waits in a thread."""
        sid = newSessionId()
        yield self.store.save(sid, {"name": "ann"})
        writer = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(writer.close)
        writer.execute("BEGIN EXCLUSIVE")
        loading = self.store.load(sid)
        ticks = []
        for _ in range(5):
            yield deferLater(reactor, 0.05, ticks.append, time.monotonic())
        self.assertEqual(len(ticks), 5)
        self.assertFalse(loading.called, "the load should still wait for the lock")
        writer.execute("COMMIT")
        self.assertEqual((yield loading), {"name": "ann"})


class RedisStoreTests(SessionTestCase):
    @inlineCallbacks
    def setUp(self):
        self.redis = services.RedisServer(services.tempDir(self, "redis-"))
        yield deferToThread(self.redis.start)
        self.addCleanup(deferToThread, self.redis.stop)
        self.store = RedisSessionStore(HOST, self.redis.port)
        self.addCleanup(self.store.close)

    @inlineCallbacks
    def test_sharedWithAnotherClient(self):
        """Sessions written by another Redis client under the documented key."""
        sid = newSessionId()
        call = self.redis.call
        yield deferToThread(call, "SET", f"txratchet:session:{sid}", '{"name": "ann"}', "EX", "60")
        yield deferToThread(call, "SET", "txratchet:session:short", '{"name": "x"}', "PX", "1")
        yield deferToThread(call, "SET", "txratchet:session:bad", "not json")
        session = yield self.sessionFor(self.store, f"session_id={sid}")
        self.assertEqual(session, {"name": "ann"})
        for other in ("short", "bad", "unknown"):
            status = yield self.sessionFor(self.store, f"session_id={other}")
            self.assertEqual(status, 403, other)

    @inlineCallbacks
    def test_saveIsReadByAnotherClient(self):
        sid = newSessionId()
        yield self.store.save(sid, {"name": "bob", "n": 1}, ttl=60)
        raw = yield deferToThread(self.redis.call, "GET", f"txratchet:session:{sid}")
        ttl = yield deferToThread(self.redis.call, "TTL", f"txratchet:session:{sid}")
        self.assertEqual(json.loads(raw), {"name": "bob", "n": 1})
        self.assertTrue(0 < ttl <= 60, ttl)
        yield self.store.delete(sid)
        self.assertIsNone((yield deferToThread(self.redis.call, "GET", f"txratchet:session:{sid}")))

    @inlineCallbacks
    def test_storeDown(self):
        """A store that does not answer gets the handshake refused with 503, in time."""
        yield deferToThread(self.redis.stop)
        started = time.monotonic()
        status = yield self.sessionFor(self.store, "session_id=abc", timeout=0.5)
        self.assertEqual(status, 503)
        self.assertLess(time.monotonic() - started, 3)


    @inlineCallbacks
    def test_outageQueuesNothing(self):
        """
        While Redis is down every handshake gets 503 at once (not by the
        timeout), nothing waits in the Redis client per refused handshake,
        the outage is logged once; when Redis is back sessions load again.
        """
        sid = newSessionId()
        yield deferToThread(self.redis.call, "SET", f"txratchet:session:{sid}", '{"name": "ann"}')
        recorder, port = yield self.serve(self.store, timeout=3)
        cookie = f"session_id={sid}"
        self.assertEqual((yield deferToThread(talk, port, cookie))[0], 101)
        events = []
        observer = lambda event: events.append(formatEvent(event) or "")  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        yield deferToThread(self.redis.stop)
        factory = self.store.redis._factory
        deadline = time.monotonic() + 10
        while factory.size and time.monotonic() < deadline:
            yield deferLater(reactor, 0.05, lambda: None)
        queue = factory.connectionQueue
        before = len(queue.peekers), len(queue.waiting)
        results = yield gatherResults([deferToThread(talk, port, cookie) for _ in range(10)])
        self.assertEqual([status for status, body in results], [503] * 10)
        self.assertEqual((len(queue.peekers), len(queue.waiting)), before)
        self.assertEqual(self.store._waiters, [])
        self.assertFalse([e for e in events if "did not answer" in e], "refused by the timeout")
        outage = [e for e in events if "unreachable" in e]
        self.assertEqual(len(outage), 1, outage)
        self.assertIn(f"Redis session store at {HOST}:{self.redis.port} unreachable", outage[0])
        yield deferToThread(self.redis.startAgain)
        # It persists nothing: the web application would log ann in again.
        yield deferToThread(self.redis.call, "SET", f"txratchet:session:{sid}", '{"name": "ann"}')
        deadline = time.monotonic() + 15
        while not factory.size and time.monotonic() < deadline:
            yield deferLater(reactor, 0.05, lambda: None)
        status, _ = yield deferToThread(talk, port, cookie)
        self.assertEqual((status, recorder.conns[-1].session), (101, {"name": "ann"}))
        self.assertEqual(len([e for e in events if "reachable again" in e]), 1)


class FlaskChatExampleTests(SessionTestCase):
    """C{examples/flaskchat.py}: log in with Flask, greeted by name over /ws."""

    @inlineCallbacks
    def serveExample(self, store):
        site = flaskchat.makeSite(store, secretKey="example secret")
        sessions = site.sessionStore
        closing = getattr(sessions, "close", None)
        if closing is not None:
            self.addCleanup(closing)
        port = yield TCP4ServerEndpoint(reactor, 0, interface=HOST).listen(site)
        self.addCleanup(port.stopListening)
        return sessions, port.getHost().port

    def scenario(self, port, cookieName):
        """Blocking: log in, chat, log out; what happened."""
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        base = f"http://{HOST}:{port}"
        loginPage = opener.open(f"{base}/", timeout=5).read().decode()
        chatPage = opener.open(
            f"{base}/login", urllib.parse.urlencode({"name": "Ann"}).encode(), timeout=5
        ).read().decode()
        cookie = next(c for c in jar if c.name == cookieName).value

        from websockets.sync.client import connect

        with connect(f"ws://{HOST}:{port}/ws",
                     additional_headers={"Cookie": f"{cookieName}={cookie}"}) as ws:
            hello = ws.recv(timeout=5)
            ws.send("hi")
            said = ws.recv(timeout=5)
        opener.open(f"{base}/logout", b"", timeout=5).read()
        after = talk(port, f"{cookieName}={cookie}", "/ws")
        anonymous = talk(port, None, "/ws")
        return loginPage, chatPage, cookie, hello, said, after[0], anonymous[0]

    @inlineCallbacks
    def check(self, store, cookieName):
        sessions, port = yield self.serveExample(store)
        loginPage, chatPage, cookie, hello, said, after, anonymous = yield deferToThread(
            self.scenario, port, cookieName
        )
        self.assertIn('<form method="post" action="/login">', loginPage)
        self.assertIn('<b id="me">Ann</b>', chatPage)
        self.assertEqual((hello, said), ("Hello, Ann", "Ann: hi"))
        if store != "cookie":  # logging out deleted the server-side session
            self.assertEqual(after, 403)
        self.assertEqual(anonymous, 403)
        return sessions, cookie

    @inlineCallbacks
    def test_signedCookie(self):
        yield self.check("cookie", "session")

    @inlineCallbacks
    def test_sqlite(self):
        path = services.tempDir(self) / "sessions.db"
        yield self.check(f"sqlite:{path}", "session_id")
        self.assertEqual(
            sqlite3.connect(path).execute("SELECT COUNT(*) FROM txratchet_sessions").fetchone(),
            (0,),
        )

    @inlineCallbacks
    def test_redis(self):
        redis = services.RedisServer(services.tempDir(self, "redis-"))
        yield deferToThread(redis.start)
        self.addCleanup(deferToThread, redis.stop)
        _, cookie = yield self.check(f"redis:{HOST}:{redis.port}", "session_id")
        self.assertIsNone((yield deferToThread(redis.call, "GET", f"txratchet:session:{cookie}")))


class FlaskChatOriginTests(TestCase):
    """
    Issue 12 item 4: C{python examples/flaskchat.py} (a subprocess, as a
    user runs it) is not open to cross-site WebSocket hijacking: a
    handshake from another site's page carrying the victim's cookie is
    refused (it got "Hello, alice"), the page's own origin and those given
    with C{--origin} are served, and the session cookie is C{SameSite=Lax}
    and C{HttpOnly}.
    """

    timeout = 60

    def test_crossOriginRefused(self):
        workdir = Path(tempfile.mkdtemp(prefix="txratchet-flaskchat-"))
        self.addCleanup(shutil.rmtree, workdir, True)
        return deferToThread(self.scenario, workdir)

    def scenario(self, workdir):
        import http.client

        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        server = services.ExampleServer(
            workdir / "server", "flaskchat.py", "--origin", "https://app.example"
        )
        server.start()
        try:
            port = server.port
            http = http.client.HTTPConnection(HOST, port, timeout=5)
            http.request(
                "POST", "/login", body="name=alice",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            response = http.getresponse()
            response.read()
            http.close()
            setCookie = response.getheader("Set-Cookie")
            self.assertIsNotNone(setCookie, response.getheaders())
            attributes = [a.strip().lower() for a in setCookie.split(";")]
            self.assertIn("samesite=lax", attributes)
            self.assertIn("httponly", attributes)
            self.assertNotIn("secure", attributes)  # plain HTTP
            cookie = setCookie.split(";", 1)[0]

            def greeting(origin, path="/ws"):
                try:
                    with connect(f"ws://{HOST}:{port}{path}", origin=origin,
                                 additional_headers={"Cookie": cookie}, open_timeout=5) as ws:
                        return ws.recv(timeout=5)
                except InvalidStatus as e:
                    return e.response.status_code

            self.assertEqual(greeting("https://evil.example"), 403)
            self.assertEqual(greeting(f"http://evil.example:{port}"), 403)
            self.assertEqual(greeting("null"), 403)
            self.assertEqual(greeting(f"http://{HOST}:{port}"), "Hello, alice")
            self.assertEqual(greeting(f"https://{HOST}:{port}"), "Hello, alice")
            self.assertEqual(greeting("https://app.example"), "Hello, alice")
            self.assertEqual(greeting(None), "Hello, alice")  # not a browser
            # HyBi-08 names it Sec-WebSocket-Origin.
            hybi = rawclients.HybiClient(
                HOST, port, path="/ws", version=8, origin="https://evil.example",
                headers={"Cookie": cookie},
            )
            with self.assertRaises(rawclients.HandshakeError) as refused:
                hybi.connect()
            self.assertEqual(refused.exception.status, 403)
            hybi = rawclients.HybiClient(
                HOST, port, path="/ws", version=8, origin=f"http://{HOST}:{port}",
                headers={"Cookie": cookie},
            )
            hybi.connect()
            self.assertEqual(hybi.recv_text(), "Hello, alice")
            hybi.close()
        finally:
            server.stop()

    @inlineCallbacks
    def test_secureCookie(self):
        """The cookie is Secure with --secure-cookie (a site behind a TLS proxy)."""
        site = flaskchat.makeSite(secretKey="example secret", secureCookie=True)
        port = yield TCP4ServerEndpoint(reactor, 0, interface=HOST).listen(site)
        self.addCleanup(port.stopListening)

        def login():
            import http.client

            http = http.client.HTTPConnection(HOST, port.getHost().port, timeout=5)
            http.request(
                "POST", "/login", body="name=alice",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            response = http.getresponse()
            response.read()
            http.close()
            return response.getheader("Set-Cookie")

        setCookie = yield deferToThread(login)
        attributes = [a.strip().lower() for a in setCookie.split(";")]
        self.assertIn("secure", attributes)
        self.assertIn("samesite=lax", attributes)


class FlaskChatBrowserTests(TestCase):
    """
    C{python examples/flaskchat.py} as a user runs it, with headless Chromium
    logging in through the Flask form and chatting, and a Python WebSocket
    client using the browser's cookie in the same chat.
    """

    timeout = 90

    def test_browser(self):
        missing = browser_helpers.missing_browser_parts()
        if missing:
            self.fail("cannot run the browser test:\n  " + "\n  ".join(missing))
        workdir = Path(tempfile.mkdtemp(prefix="txratchet-flaskchat-"))
        self.addCleanup(shutil.rmtree, workdir, True)
        return deferToThread(self.scenario, workdir)

    def scenario(self, workdir):
        from selenium.webdriver.common.by import By
        from websockets.sync.client import connect

        server = services.ExampleServer(workdir / "server", "flaskchat.py")
        server.start()
        browser = None
        try:
            browser = browser_helpers.Browser(workdir)
            driver = browser.driver
            driver.get(f"http://{HOST}:{server.port}/")
            driver.find_element(By.ID, "name").send_keys("Ann")
            driver.find_element(By.ID, "login").click()
            wait = browser.wait()
            greeted = lambda d: [t for t, _ in browser.logEntries()] == ["Hello, Ann"]  # noqa: E731
            try:
                wait.until(greeted)
            except Exception:
                raise AssertionError(
                    f"no greeting: {browser.logEntries()}\n{browser.consoleLog()}\n{server.logs()}"
                ) from None
            self.assertEqual(browser.text("#me"), "Ann")
            cookie = driver.get_cookie("session")["value"]
            with connect(f"ws://{HOST}:{server.port}/ws",
                         additional_headers={"Cookie": f"session={cookie}"}) as ws:
                self.assertEqual(ws.recv(timeout=5), "Hello, Ann")
                driver.find_element(By.ID, "text").send_keys("hi from Chromium")
                driver.find_element(By.CSS_SELECTOR, "#say button").click()
                self.assertEqual(ws.recv(timeout=5), "Ann: hi from Chromium")
                ws.send("hi from Python")
                self.assertEqual(ws.recv(timeout=5), "Ann: hi from Python")
            wait.until(lambda d: [t for t, _ in browser.logEntries()] == [
                "Hello, Ann", "Ann: hi from Chromium", "Ann: hi from Python"])
            status, _ = talk(server.port, None, "/ws")
            self.assertEqual(status, 403)
        finally:
            if browser is not None:
                browser.quit()
            server.stop()

    def test_twoUsersInOneBrowser(self):
        """
        Issue 14: what the README tells a user to do to chat as two people
        works. Two tabs of one address share its cookie (a second login
        replaces the first), so the second user logs in at another host
        name of the same server: 127.0.0.1 and localhost, two cookie jars.
        """
        missing = browser_helpers.missing_browser_parts()
        if missing:
            self.fail("cannot run the browser test:\n  " + "\n  ".join(missing))
        workdir = Path(tempfile.mkdtemp(prefix="txratchet-flaskchat-"))
        self.addCleanup(shutil.rmtree, workdir, True)
        return deferToThread(self.twoUsers, workdir)

    def twoUsers(self, workdir):
        from selenium.webdriver.common.by import By

        server = services.ExampleServer(workdir / "server", "flaskchat.py")
        server.start()
        browser = None
        try:
            browser = browser_helpers.Browser(workdir)
            driver = browser.driver
            wait = browser.wait()
            tabs = {}
            for name, host in (("Ann", "127.0.0.1"), ("Bob", "localhost")):
                if tabs:
                    driver.switch_to.new_window("tab")
                tabs[name] = driver.current_window_handle
                driver.get(f"http://{host}:{server.port}/")
                driver.find_element(By.ID, "name").send_keys(name)
                driver.find_element(By.ID, "login").click()
                wait.until(lambda d, name=name: [t for t, _ in browser.logEntries()] == [f"Hello, {name}"])
            driver.find_element(By.ID, "text").send_keys("hi Ann")
            driver.find_element(By.CSS_SELECTOR, "#say button").click()
            driver.switch_to.window(tabs["Ann"])
            try:
                wait.until(lambda d: [t for t, _ in browser.logEntries()] == ["Hello, Ann", "Bob: hi Ann"])
            except Exception:
                raise AssertionError(
                    f"Ann's tab: {browser.logEntries()}\n{browser.consoleLog()}\n{server.logs()}"
                ) from None
            driver.refresh()  # Ann is still Ann: Bob's login did not replace hers
            self.assertEqual(browser.text("#me"), "Ann")
        finally:
            if browser is not None:
                browser.quit()
            server.stop()
