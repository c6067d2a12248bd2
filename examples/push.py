"""
Ratchet's "push" example: a blog post saved in the web application reaches
every browser reading the blog at once.

Flask serves the pages (through twisted.web's WSGIResource) and the pub/sub
hub's socket is at /ws on the same port; saving a post publishes it to the
"blog" topic, which every open page has subscribed to (with the hub's JSON
wire protocol). With --backplane redis://HOST:PORT, posts published by any
other process (see txratchet.pubsub.externalMessage) arrive too.

Pages may only subscribe to "blog" (posts are published by the web
application, never by a peer), and only pages of this site may open the
socket: the page's own origin (the host and port the browser asked for)
is allowed, other sites' pages get 403; --origin allows more (OriginCheck
patterns, comma-separated).

    python examples/push.py                # http://localhost:8080/
    python examples/push.py --port 9000 --backplane redis://127.0.0.1:6379
    python examples/push.py --origin blog.example.com,https://admin.example.com
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __name__ == "__main__" and __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from flask import Flask, redirect, render_template_string, request
from twisted.internet import endpoints, reactor
from twisted.logger import globalLogBeginner, textFileLogObserver
from twisted.web.server import Site
from twisted.web.wsgi import WSGIResource

from txratchet import WebSocket
from txratchet.components import OriginCheck
from txratchet.pubsub import Hub
from txratchet.tap import makeBackplane
from txratchet.web import WebSocketResource, WebSocketRouter

PAGE = """<!doctype html>
<title>Blog</title>
<h1>Blog</h1>
<form method="post" action="/post">
  <input name="title" id="title" placeholder="Title" required>
  <button id="publish">Publish</button>
</form>
<ul id="posts">{% for p in posts %}<li>{{ p }}</li>{% endfor %}</ul>
<script>
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
ws.onopen = () => ws.send(JSON.stringify({type: "subscribe", topic: "blog"}));
ws.onmessage = (event) => {
  const m = JSON.parse(event.data);
  if (m.type !== "message") return;
  const li = document.createElement("li");
  li.textContent = m.data.title;
  document.getElementById("posts").prepend(li);
};
</script>"""


def makeFlaskApp(hub: Hub) -> Flask:
    app = Flask(__name__)
    posts: list[str] = []

    @app.get("/")
    def index():
        return render_template_string(PAGE, posts=reversed(posts))

    @app.post("/post")
    def post():
        title = request.form["title"].strip()[:200]
        posts.append(title)
        # Flask runs in a WSGI thread: hand the publication to the reactor.
        hub.publishFromThread("blog", {"title": title})
        if request.headers.get("Accept") == "application/json":
            return {"saved": title}, 201
        return redirect("/")

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "\n").split("\n")[1])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--interface", default="")
    parser.add_argument("--backplane", default=None)
    parser.add_argument(
        "--origin", default="",
        help="other allowed origins (comma-separated OriginCheck patterns); "
        "the page's own is always allowed",
    )
    args = parser.parse_args(argv)
    # Pages subscribe to "blog"; only this web application publishes.
    hub = Hub(backplane=makeBackplane(args.backplane), allowSubscribe={"blog"})
    flaskApp = makeFlaskApp(hub)
    others = [o.strip() for o in args.origin.split(",") if o.strip()]
    root = WebSocketRouter(
        "/ws",
        WebSocketResource(WebSocket(OriginCheck(hub, others, sameHost=True))),
        WSGIResource(reactor, reactor.getThreadPool(), flaskApp),
    )
    endpoint = endpoints.TCP4ServerEndpoint(reactor, args.port, interface=args.interface)
    endpoint.listen(Site(root))
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    print(f"blog on http://localhost:{args.port}/", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
