"""
A Flask application logs the user in; the WebSocket chat on the same port
knows who the user is from Flask's session cookie: no second login.

Run it from the repository root (Flask must be installed)::

    python examples/flaskchat.py                  # http://localhost:8080/
    python -m examples.flaskchat                  # the same
    python examples/flaskchat.py --port 9000
    python examples/flaskchat.py --store sqlite:sessions.db
    python examples/flaskchat.py --store redis:127.0.0.1:6379

To chat as two people, log in at http://localhost:8080/ in one tab and at
http://127.0.0.1:8080/ in another (or in a private window, or in another
browser). Two tabs of one address share its session cookie, so a second
login there would replace the first; a browser keeps one cookie jar per
host name, and these are two names for this server.

Safe by default against cross-site WebSocket hijacking (a hostile page
opening C{/ws} with the visitor's cookie): the socket accepts only the page's
own origin (the host and port the browser reached this server at; add
others with C{--origin https://chat.example.com}), and the session cookie is
C{SameSite=Lax} and C{HttpOnly}, C{Secure} over HTTPS (or with
C{--secure-cookie} behind a TLS proxy).

Flask serves every page (through C{twisted.web.wsgi.WSGIResource}) and
the chat's WebSocket is at C{/ws}. With the default store, C{cookie}, the
session is Flask's own signed C{session} cookie, checked with the app's
secret key (set C{FLASK_SECRET_KEY} to keep sessions across restarts).
With C{sqlite:FILE} or C{redis:HOST:PORT}, Flask keeps its sessions in that
store under a random C{session_id} cookie, where any other process can
read them too.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

if __name__ == "__main__" and __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask, redirect, render_template_string, request, session
from flask.sessions import SecureCookieSessionInterface
from twisted.internet import endpoints, reactor
from twisted.logger import globalLogBeginner, textFileLogObserver
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.wsgi import WSGIResource

from txratchet import Application, WebSocket
from txratchet.components import OriginCheck
from txratchet.components.session import (
    FlaskCookieSessions,
    ISessionStore,
    RedisSessionStore,
    SessionProvider,
    SQLiteSessionStore,
    flaskSessionInterface,
)
from txratchet.web import WebSocketResource

LOGIN = """<!doctype html>
<title>Log in</title>
<form method="post" action="/login">
  <label>Your name <input name="name" id="name" autofocus required maxlength="40"></label>
  <button id="login">Log in</button>
</form>"""

CHAT = """<!doctype html>
<title>Chat</title>
<p>Logged in as <b id="me">{{ name }}</b>.
   <form method="post" action="/logout" style="display:inline"><button>Log out</button></form>
<div id="log"></div>
<form id="say"><input id="text" autocomplete="off" autofocus><button>Send</button></form>
<script>
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
const log = document.getElementById("log"), text = document.getElementById("text");
ws.onmessage = (event) => {
  const p = document.createElement("p");
  p.textContent = event.data;
  log.append(p);
};
document.getElementById("say").onsubmit = (event) => {
  event.preventDefault();
  if (text.value) ws.send(text.value);
  text.value = "";
};
</script>"""


def makeFlaskApp(secretKey: str, secureCookie: bool = False) -> Flask:
    app = Flask(__name__)
    app.secret_key = secretKey
    # Other sites' pages neither send the cookie with their requests
    # (SameSite, except top-level navigation) nor read it (HttpOnly).
    app.config.update(
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=secureCookie,
    )

    @app.get("/")
    def index():
        if "name" not in session:
            return render_template_string(LOGIN)
        return render_template_string(CHAT, name=session["name"])

    @app.post("/login")
    def login():
        session["name"] = request.form["name"].strip()[:40] or "anonymous"
        return redirect("/")

    @app.post("/logout")
    def logout():
        session.clear()
        return redirect("/")

    return app


class Chat(Application):
    """Everyone hears everything, prefixed with the sender's name."""

    def __init__(self):
        self.clients = set()

    def onOpen(self, conn):
        self.clients.add(conn)
        conn.send(f"Hello, {conn.session['name']}")

    def onMessage(self, sender, msg):
        for conn in self.clients:
            conn.send(f"{sender.session['name']}: {msg}")

    def onClose(self, conn):
        self.clients.discard(conn)


def secureOverHTTPS(interface):
    """
    Make the session cookie C{Secure} whenever the page itself came over
    HTTPS (C{request.is_secure}), as well as when configured so.
    """

    def getCookieSecure(app):
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)

    interface.get_cookie_secure = getCookieSecure
    return interface


class Root(Resource):
    """C{/ws} is the chat; every other path goes to Flask."""

    def __init__(self, wsgi):
        super().__init__()
        self.wsgi = wsgi

    def getChild(self, path, request):
        request.prepath.pop()
        request.postpath.insert(0, path)
        return self.wsgi


class ChatSite(Site):
    """The site, and the session store its chat reads (for tests to fill)."""

    sessionStore: ISessionStore


def makeStore(spec: str, flaskApp: Flask):
    """C{cookie}, C{sqlite:FILE} or C{redis:HOST:PORT}."""
    kind, _, where = spec.partition(":")
    if kind == "cookie":
        # Its own instance (Flask's default is shared by every Flask app):
        # secureOverHTTPS changes it.
        flaskApp.session_interface = SecureCookieSessionInterface()
        return FlaskCookieSessions(flaskApp)
    store: SQLiteSessionStore | RedisSessionStore
    if kind == "sqlite":
        store = SQLiteSessionStore(where or "sessions.db")
    elif kind == "redis":
        host, _, port = where.rpartition(":")
        store = RedisSessionStore(host or "127.0.0.1", int(port or 6379))
    else:
        raise ValueError(f"Unknown store: {spec}")
    flaskApp.session_interface = flaskSessionInterface(store)
    return store


def makeSite(
    store: str = "cookie",
    secretKey: str | None = None,
    origins: list[str] | tuple[str, ...] = (),
    secureCookie: bool = False,
) -> ChatSite:
    """
    The Flask pages and, at C{/ws}, the chat: C{OriginCheck(sameHost=True)} outside
    C{SessionProvider}, so no other site's page gets a visitor's session.

    @param origins: more origins whose pages may open the chat
        (L{OriginCheck} patterns, e.g. C{https://chat.example.com}).
    @param secureCookie: always mark the session cookie C{Secure} (it is
        whenever the page came over HTTPS).
    """
    flaskApp = makeFlaskApp(
        secretKey or os.environ.get("FLASK_SECRET_KEY") or secrets.token_hex(), secureCookie
    )
    sessions = makeStore(store, flaskApp)
    secureOverHTTPS(flaskApp.session_interface)
    chat = OriginCheck(SessionProvider(Chat(), sessions), origins, sameHost=True)
    root = Root(WSGIResource(reactor, reactor.getThreadPool(), flaskApp))
    root.putChild(b"ws", WebSocketResource(WebSocket(chat)))
    site = ChatSite(root)
    site.sessionStore = sessions
    return site


def main(argv=None):
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--interface", default="", help="address to listen on (default: all)")
    parser.add_argument("--store", default="cookie", help="cookie, sqlite:FILE or redis:HOST:PORT")
    parser.add_argument(
        "--origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also let pages from ORIGIN (e.g. https://chat.example.com) open the chat; "
        "the page's own origin always may (repeatable)",
    )
    parser.add_argument(
        "--secure-cookie",
        action="store_true",
        help="always mark the session cookie Secure (the site is HTTPS behind a TLS proxy)",
    )
    args = parser.parse_args(argv)
    try:
        site = makeSite(args.store, origins=args.origin, secureCookie=args.secure_cookie)
    except ValueError as e:
        parser.error(str(e))
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    interface = f":interface={args.interface}" if args.interface else ""
    listening = endpoints.serverFromString(reactor, f"tcp:{args.port}{interface}").listen(site)

    failed = []

    def cannotListen(failure):
        failed.append(failure)
        print(f"Cannot listen: {failure.getErrorMessage()}", file=sys.stderr)
        reactor.callWhenRunning(reactor.stop)

    def listened(port):
        # A second user needs a second cookie jar: another host name for
        # this server, or a private window.
        number = port.getHost().port
        names = {"": ["localhost", "127.0.0.1"], "127.0.0.1": ["127.0.0.1", "localhost"]}
        first, *other = names.get(args.interface, [args.interface])
        also = f"at http://{other[0]}:{number}/ " if other else ""
        print(f"chat on http://{first}:{number}/ (log in as a second user {also}"
              "in another tab, or in a private window)", flush=True)

    listening.addCallbacks(listened, cannotListen)
    reactor.run()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
