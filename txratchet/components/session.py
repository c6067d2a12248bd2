"""
L{SessionProvider}: know who a WebSocket peer is from the web application's
session cookie, with no second login.

The web application (twisted.web, Flask, anything) logs the user in and
sets its session cookie; the browser sends that cookie with the WebSocket
upgrade; L{SessionProvider} looks the session up in a store and hands it to
the application as C{conn.session} before C{onOpen}::

    store = FlaskCookieSessions(flaskApp)           # or one of the others
    WebSocket(SessionProvider(Chat(), store))
    ...
    def onOpen(self, conn):
        conn.send(f"Hello, {conn.session['name']}")

Stores (L{ISessionStore}: C{cookieNames} and C{load(sessionId)}):

  - L{TwistedWebSessions}: the C{twisted.web} sessions of a C{Site} in the
    same process (cookie C{TWISTED_SESSION} / C{TWISTED_SECURE_SESSION});
    C{conn.session} is the C{twisted.web.server.Session}, or a component
    of it.
  - L{FlaskCookieSessions}: Flask's default client-side session, the signed
    C{session} cookie, verified and decoded with the Flask app's secret key;
    no server, no shared storage.
  - L{SQLiteSessionStore}: server-side sessions in an SQLite file shared
    with the web application (embedded: no server to run), through
    C{twisted.enterprise.adbapi} threads.
  - L{RedisSessionStore}: server-side sessions in Redis (txredisapi), for
    deployments with several processes or hosts.

The two shared stores keep a session as a JSON object under a random id
(L{newSessionId}) that travels in a cookie (C{session_id} unless told
otherwise); any web application in any language can write them:

  - SQLite: table C{txratchet_sessions(id TEXT PRIMARY KEY, data TEXT NOT
    NULL, expires REAL)}: C{data} is the JSON object, C{expires} a Unix time
    or C{NULL} for never.
  - Redis: key C{txratchet:session:<id>} holding the JSON object as a
    string; an expiry on the key (C{SET ... EX ttl}) ends the session.

L{flaskSessionInterface} makes a Flask application keep its sessions in
either of them.

A session cookie is sent by the browser whichever page opens the socket:
put an L{txratchet.components.OriginCheck} outside the provider
(C{WebSocket(OriginCheck(SessionProvider(app, store), ["example.com"]))})
so that other sites' pages cannot use a visitor's session.

A missing, unknown or expired session is refused with 403 by default
(C{required=True}); with C{required=False} the connection opens with
C{conn.session = None}. A store that fails or does not answer within
C{timeout} seconds gets the handshake refused with 503.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from twisted.internet.defer import Deferred, TimeoutError, fail, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txratchet.components.base import RefusingDecorator
from txratchet.errors import HandshakeError as HandshakeError
from txratchet.errors import SessionStoreUnavailable as SessionStoreUnavailable
from txratchet.interfaces import IApplication, IConnection, typedInterface

if TYPE_CHECKING:  # what txratchet.interfaces.TypedInterface is, said so for pydoctor
    from zope.interface import Interface as TypedInterface
else:
    from txratchet.interfaces import TypedInterface

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorThreads, IReactorTime
    from twisted.web.server import Site
    from zope.interface.interface import InterfaceClass

    from txratchet.websocket.handshake import Request

log = Logger()

#: Session ids longer than this are not looked up.
MAX_SESSION_ID = 4096


@typedInterface
@runtime_checkable
class ISessionStore(TypedInterface, Protocol):  # type: ignore[misc]  # see typedInterface
    """
    Where L{SessionProvider} finds sessions: any object with these members
    (a zope interface, declared for type checkers too: see
    L{txratchet.interfaces.typedInterface}).
    """

    @property
    def cookieNames(self) -> Sequence[str]:
        """
        The names of the cookies that may carry the session id, tried in
        order.
        """

    def load(self, sessionId: str) -> Deferred[Any]:  # type: ignore[misc]
        """
        Look a session up, without creating one (Any: a session is
        whatever the store keeps, for the application to use).

        @param sessionId: the cookie's value.
        @return: a Deferred that fires with the session (a C{dict} for the
            shared stores), or C{None} when it is unknown or expired.
        """


class ISharedSessionStore(ISessionStore):
    """
    A store that the web application writes (and tests fill).
    """

    def save(sessionId: str, data: dict[str, Any], ttl: float | None = None) -> Deferred[None]:
        """
        Store C{data} (a JSON-serializable C{dict}) under C{sessionId}, to
        expire after C{ttl} seconds (never, when C{None}).
        """

    def delete(sessionId: str) -> Deferred[None]:
        """
        Forget a session (log out).
        """


def newSessionId() -> str:
    """
    A fresh, unguessable session id (256 random bits, URL-safe).
    """
    return secrets.token_urlsafe(32)



class SessionProvider(RefusingDecorator):
    """
    Set C{conn.session} from the web application's session cookie, before
    the application hears of the connection.

    Use it inside the WebSocket layer: C{WebSocket(SessionProvider(app,
    store))}; the session is loaded while the handshake waits, so the
    decision (refuse or open) is taken before the client is answered.
    Connections that carry no cookies (the line protocol) have no session.

    @param store: an L{ISessionStore}.
    @param cookieName: the cookie (or cookies, tried in order) carrying the
        session id; the store's C{cookieNames} by default.
    @param required: refuse (403) a handshake without a valid session; when
        false, open it with C{conn.session = None}.
    @param timeout: seconds the store has to answer; then 503.
    @param clock: the reactor, for the timeout.
    """

    def __init__(
        self,
        app: IApplication,
        store: ISessionStore,
        cookieName: str | Sequence[str] | None = None,
        required: bool = True,
        timeout: float = 5.0,
        clock: IReactorTime | None = None,
    ) -> None:
        super().__init__(app)
        self.store = store
        if cookieName is None:
            names = tuple(store.cookieNames)
        elif isinstance(cookieName, str):
            names = (cookieName,)
        else:
            names = tuple(cookieName)
        self.cookieNames = names
        self.required = required
        self.timeout = timeout
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock: IReactorTime = clock  # type: ignore[assignment]
        # Connections whose session onRequest decided, until they open:
        # those that never went through a WebSocket handshake are not in it.
        self._decided: weakref.WeakSet[IConnection] = weakref.WeakSet()

    def sessionIds(self, request: Request) -> list[str]:
        """
        The candidate session ids the request's cookies carry.
        """
        cookies = request.cookies
        return [
            cookies[name]
            for name in self.cookieNames
            if cookies.get(name) and len(cookies[name]) <= MAX_SESSION_ID
        ]

    def _load(self, ids: list[str]) -> Deferred[Any]:
        if not ids:
            return succeed(None)
        first, rest = ids[0], ids[1:]
        d = maybeDeferred(self.store.load, first)
        d.addCallback(lambda session: self._load(rest) if session is None else session)
        return d

    def onRequest(self, conn: IConnection, request: Request) -> object:
        ids = self.sessionIds(request)
        if not ids:
            return self._decide(conn, request, None)
        d = self._load(ids)
        d.addTimeout(self.timeout, self.clock)
        d.addErrback(self._storeFailed)
        d.addCallback(lambda session: self._decide(conn, request, session))
        return d

    def _storeFailed(self, failure: Failure) -> None:
        if failure.check(SessionStoreUnavailable):
            log.debug("Session store unavailable: {e}", e=failure.getErrorMessage())
        elif failure.check(TimeoutError):
            log.warn("The session store did not answer in {timeout} s", timeout=self.timeout)
        else:
            log.failure("The session store failed", failure)
        raise HandshakeError(503, "Session store unavailable")

    def _decide(self, conn: IConnection, request: Request, session: object) -> object:
        if session is None and self.required:
            raise HandshakeError(403, "A valid session is required")
        # IConnection.session: what this decorator gives the connections it
        # passes on.
        conn.session = session
        self._decided.add(conn)
        return super().onRequest(conn, request)

    # Connections that never went through onRequest (no WebSocket handshake).

    def onOpen(self, conn: IConnection) -> object:
        if conn in self._decided:
            self._decided.discard(conn)
        else:
            conn.session = None
            if self.required:
                log.info("Refused {peer}: no session", peer=conn.peer)
                self.refuse(conn, 1008, "A valid session is required")
                return None
        return self.app.onOpen(conn)


@implementer(ISessionStore)
class TwistedWebSessions:
    """
    The sessions of a C{twisted.web} C{Site} in the same process, looked up
    with C{site.getSession(uid)} (never created). Looking one up counts as
    activity: its expiry timer is reset.

    @param site: the C{Site} whose pages call C{request.getSession()}.
    @param interface: if given, C{conn.session} is
        C{session.getComponent(interface)}, as
        C{request.getSession(interface)} returns it to the pages; otherwise
        the C{twisted.web.server.Session} itself.
    @param cookieNames: the cookies Twisted names the session by: for a
        site served at the root, C{TWISTED_SECURE_SESSION} (HTTPS) and
        C{TWISTED_SESSION}.
    """

    def __init__(
        self,
        site: Site,
        interface: InterfaceClass | None = None,
        cookieNames: Sequence[str] = ("TWISTED_SECURE_SESSION", "TWISTED_SESSION"),
    ) -> None:
        self.site = site
        self.interface = interface
        self.cookieNames = tuple(cookieNames)

    def load(self, sessionId: str) -> Deferred[Any]:
        try:
            session = self.site.getSession(sessionId.encode("ascii"))
        except (KeyError, UnicodeEncodeError):
            return succeed(None)
        session.touch()
        if self.interface is not None:
            return succeed(session.getComponent(self.interface))
        return succeed(session)


@implementer(ISessionStore)
class FlaskCookieSessions:
    """
    Flask's default sessions: the signed C{session} cookie, verified and
    decoded with the Flask app's secret key by Flask's own serializer
    (C{SecureCookieSessionInterface().get_signing_serializer(app)}), and
    refused past C{PERMANENT_SESSION_LIFETIME}, as Flask refuses it.
    C{conn.session} is the session's C{dict}.

    @param flaskApp: the C{flask.Flask} application (its C{secret_key} and
        C{SESSION_COOKIE_NAME} are used).
    """

    def __init__(self, flaskApp: Any) -> None:
        from flask.sessions import SecureCookieSessionInterface

        interface = SecureCookieSessionInterface()
        serializer = interface.get_signing_serializer(flaskApp)
        if serializer is None:
            raise ValueError("The Flask application has no secret_key")
        self.serializer = serializer
        self.maxAge = int(flaskApp.permanent_session_lifetime.total_seconds())
        self.cookieNames = (interface.get_cookie_name(flaskApp),)

    def load(self, sessionId: str) -> Deferred[Any]:
        from itsdangerous import BadSignature

        try:
            data = self.serializer.loads(sessionId, max_age=self.maxAge)
        except BadSignature:
            return succeed(None)
        return succeed(data if isinstance(data, dict) else None)


def _decode(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        log.warn("A stored session is not JSON; ignored")
        return None
    return data if isinstance(data, dict) else None


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@implementer(ISharedSessionStore)
class SQLiteSessionStore:
    """
    Sessions in an SQLite file: the embedded default, no server to run.
    The web application (this process's WSGI app, or another process)
    writes the same file; queries run in C{adbapi}'s threads, never in the
    reactor's.

    Schema (created when missing)::

        CREATE TABLE txratchet_sessions (
            id TEXT PRIMARY KEY,   -- the session id, the cookie's value
            data TEXT NOT NULL,    -- the session, a JSON object
            expires REAL           -- Unix time; NULL: never
        )

    @param path: the database file.
    @param cookieName: the cookie carrying the session id.
    @param table: the table's name.
    @param reactor: the reactor (the global one by default).
    """

    def __init__(
        self,
        path: str,
        cookieName: str = "session_id",
        table: str = "txratchet_sessions",
        reactor: IReactorThreads | None = None,
    ) -> None:
        from twisted.enterprise import adbapi

        if not _IDENTIFIER.match(table):
            raise ValueError(f"Not a table name: {table!r}")
        self.path = path
        self.table = table
        self.cookieNames = (cookieName,)
        self.pool = adbapi.ConnectionPool(
            "sqlite3",
            path,
            timeout=10.0,  # wait this long for another writer's lock
            check_same_thread=False,
            cp_min=1,
            cp_max=3,
            cp_openfun=self._prepare,
            cp_reactor=reactor,
        )

    def _prepare(self, connection: Any) -> None:  # a DB-API connection
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} "
            "(id TEXT PRIMARY KEY, data TEXT NOT NULL, expires REAL)"
        )
        connection.commit()

    def load(self, sessionId: str) -> Deferred[Any]:
        d = self.pool.runQuery(
            f"SELECT data FROM {self.table} WHERE id = ? AND (expires IS NULL OR expires > ?)",
            (sessionId, time.time()),
        )
        d.addCallback(lambda rows: _decode(rows[0][0]) if rows else None)
        return d

    def save(self, sessionId: str, data: dict[str, Any], ttl: float | None = None) -> Deferred[None]:
        expires = None if ttl is None else time.time() + ttl
        return self.pool.runOperation(  # type: ignore[no-any-return]
            f"INSERT OR REPLACE INTO {self.table} (id, data, expires) VALUES (?, ?, ?)",
            (sessionId, json.dumps(data), expires),
        )

    def delete(self, sessionId: str) -> Deferred[None]:
        return self.pool.runOperation(  # type: ignore[no-any-return]
            f"DELETE FROM {self.table} WHERE id = ?", (sessionId,)
        )

    def purgeExpired(self) -> Deferred[None]:
        """
        Delete expired sessions (call it now and then, e.g. from a
        C{LoopingCall}).
        """
        return self.pool.runOperation(  # type: ignore[no-any-return]
            f"DELETE FROM {self.table} WHERE expires IS NOT NULL AND expires <= ?",
            (time.time(),),
        )

    def close(self) -> None:
        """
        Close the database connections and stop the threads.
        """
        self.pool.close()


@implementer(ISharedSessionStore)
class RedisSessionStore:
    """
    Sessions in Redis, through txredisapi (Twisted-native; install
    C{txratchet[redis]}). A session is the JSON object stored at
    C{<keyPrefix><id>} (C{txratchet:session:<id>}), and ends with the key's
    expiry.

    While Redis is unreachable, looking a session up fails at once with
    L{SessionStoreUnavailable} (503 for the handshake) instead of waiting
    in txredisapi's queue for Redis to return: nothing accumulates per
    refused handshake. The outage and the recovery are logged once each.
    (Right after start, lookups wait for the first connection attempt.)

    @param connection: a txredisapi connection (handler) to use; by
        default a lazy pool to C{host:port} is made.
    @param keyPrefix: prepended to the session id to make the key.
    @param cookieName: the cookie carrying the session id.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        dbid: int | None = None,
        password: str | None = None,
        keyPrefix: str = "txratchet:session:",
        cookieName: str = "session_id",
        connection: Any = None,
        poolsize: int = 4,
    ) -> None:
        self._waiters: list[Deferred[None]] = []  # lookups waiting for the first attempt
        self._starting = False
        if connection is None:
            import txredisapi

            connection = txredisapi.lazyConnectionPool(
                host,
                port,
                dbid=dbid,
                poolsize=poolsize,
                password=password,
                connectTimeout=5,
                replyTimeout=5,
            )
            # txredisapi's first connection attempt (private, hence the
            # guard: without it, lookups do not wait for that attempt).
            first = getattr(getattr(connection, "_factory", None), "deferred", None)
            if first is not None:
                self._starting = True
                first.addBoth(self._firstAttemptDone)
            self.address = f"Redis session store at {host}:{port}"
        else:
            self.address = "Redis session store"
        self.redis = connection
        self.keyPrefix = keyPrefix
        self.cookieNames = (cookieName,)
        self._down = False

    def _firstAttemptDone(self, result: Any) -> Any:
        self._starting = False
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)
        return None if isinstance(result, Failure) else result  # a failure is reported by load

    def key(self, sessionId: str) -> str:
        return self.keyPrefix + sessionId

    def _usable(self) -> Deferred[None] | None:
        """
        C{None} when commands can go to Redis now; else a Deferred that
        fires when they may (the first connection attempt is under way) or
        fails with L{SessionStoreUnavailable}.
        """
        from txratchet._redis import isConnected

        if isConnected(self.redis) is not False:
            return None
        if self._starting:
            waiter: Deferred[None] = Deferred(lambda d: self._waiters.remove(d))
            self._waiters.append(waiter)
            return waiter
        if not self._down:
            self._down = True
            log.warn(
                "{address} unreachable: handshakes that need a session get 503 until it is back",
                address=self.address,
            )
        return fail(SessionStoreUnavailable(f"{self.address} is not connected"))

    def _command(self, command: Callable[[], Deferred[Any]]) -> Deferred[Any]:
        """
        Run C{command} (a txredisapi call) once Redis is usable.
        """

        def send() -> Deferred[Any]:
            return command().addCallback(self._up)

        waiting = self._usable()
        if waiting is None:
            return send()
        # After the first attempt: connected now, or unavailable at once.
        return waiting.addCallback(lambda _: self._usable() or send())

    def _up(self, result: Any) -> Any:
        if self._down:
            self._down = False
            log.info("{address} is reachable again", address=self.address)
        return result

    def load(self, sessionId: str) -> Deferred[Any]:
        d = self._command(lambda: self.redis.get(self.key(sessionId)))
        d.addCallback(_decode)
        return d

    def save(self, sessionId: str, data: dict[str, Any], ttl: float | None = None) -> Deferred[None]:
        expire = None if ttl is None else max(1, int(ttl))
        text = json.dumps(data)
        d = self._command(lambda: self.redis.set(self.key(sessionId), text, expire=expire))
        d.addCallback(lambda _: None)
        return d

    def delete(self, sessionId: str) -> Deferred[None]:
        d = self._command(lambda: self.redis.delete(self.key(sessionId)))
        d.addCallback(lambda _: None)
        return d

    def close(self) -> Deferred[Any]:
        """
        Close the connections to Redis.
        """
        return self.redis.disconnect()  # type: ignore[no-any-return]


def flaskSessionInterface(store: Any, reactor: Any = None) -> Any:
    """
    A Flask session interface that keeps Flask's C{session} in a shared
    store (L{SQLiteSessionStore}, L{RedisSessionStore}) under a random id
    cookie, for a Flask app served by this reactor through
    C{twisted.web.wsgi.WSGIResource} (the store is called from the WSGI
    threads with C{blockingCallFromThread}: never from the reactor's
    thread)::

        flaskApp.session_interface = flaskSessionInterface(store)
        WebSocket(SessionProvider(Chat(), store))

    The cookie is the store's first cookie name; sessions expire after
    Flask's C{PERMANENT_SESSION_LIFETIME}.
    """
    # Flask is an optional dependency, untyped here: its objects are Any;
    # so are the store and the reactor this Flask-side code hands to
    # blockingCallFromThread (an ISharedSessionStore, the reactor).
    from flask.sessions import SecureCookieSession, SessionInterface
    from twisted.internet.threads import blockingCallFromThread

    if reactor is None:
        from twisted.internet import reactor
    cookieName = store.cookieNames[0]

    class StoreSession(SecureCookieSession):
        sessionId: str | None = None

    class StoreSessionInterface(SessionInterface):  # type: ignore[misc]
        def get_cookie_name(self, app: Any) -> str:
            return str(cookieName)

        def open_session(self, app: Any, request: Any) -> StoreSession:
            sessionId = request.cookies.get(cookieName)
            data = None
            if sessionId and len(sessionId) <= MAX_SESSION_ID:
                data = blockingCallFromThread(reactor, store.load, sessionId)
            session = StoreSession(data or {})
            session.sessionId = sessionId if data is not None else None
            return session

        def save_session(self, app: Any, session: Any, response: Any) -> None:
            domain = self.get_cookie_domain(app)
            path = self.get_cookie_path(app)
            if not session:
                if session.modified and session.sessionId:
                    blockingCallFromThread(reactor, store.delete, session.sessionId)
                    response.delete_cookie(cookieName, domain=domain, path=path)
                return
            if session.accessed:
                response.vary.add("Cookie")
            if not self.should_set_cookie(app, session):
                return
            sessionId = session.sessionId or newSessionId()
            ttl = app.permanent_session_lifetime.total_seconds()
            blockingCallFromThread(reactor, store.save, sessionId, dict(session), ttl)
            response.set_cookie(
                cookieName,
                sessionId,
                expires=self.get_expiration_time(app, session),
                httponly=self.get_cookie_httponly(app),
                domain=domain,
                path=path,
                secure=self.get_cookie_secure(app),
                samesite=self.get_cookie_samesite(app),
            )

    return StoreSessionInterface()
