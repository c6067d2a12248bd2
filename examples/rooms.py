"""
Chat rooms with logins: the program docs/tutorial.md builds.

A room is a path (ws://localhost:8080/rooms/lobby) and only people with a
token get in (?token=...). A token names its user, says until when it is
valid, and is signed with a secret that this server shares with whatever
issues tokens (a login page, or the command below). The server checks it in
onRequest, before answering the handshake: a bad token gets 403, and the
application never hears of that peer.

Run it from the repository root:

    export ROOMS_SECRET=$(python -c "import secrets; print(secrets.token_hex())")
    twistd -n txratchet --app examples.rooms.Rooms --max-message-size 4096
    python -m examples.rooms token ann     # prints a token for ann, valid 1 hour
    python -m txratchet.client "ws://localhost:8080/rooms/lobby?token=..."
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import sys
import time

from twisted.python import usage

from txratchet import (
    Application,
    CloseConnection,
    Command,
    Composite,
    HandshakeError,
    IConnection,
    SendMessage,
)
from txratchet.websocket.handshake import Request

ROOM = re.compile(r"/rooms/([a-z0-9-]{1,32})")
USER = re.compile(r"[A-Za-z0-9_-]{1,32}")
TOKEN = re.compile(r"([A-Za-z0-9_-]{1,32})\.([0-9]{1,12})\.[0-9a-f]{64}")


def sign(secret: str, user: str, expires: int) -> str:
    """
    The token of C{user}, valid until C{expires} (a Unix time).
    """
    payload = f"{user}.{expires}"
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{mac}"


def verify(secret: str, token: str, now: float) -> str | None:
    """
    The user a token names, or C{None} if it is malformed, forged or expired.
    """
    parts = TOKEN.fullmatch(token)
    if parts is None or int(parts.group(2)) < now:
        return None
    user, expires = parts.group(1), int(parts.group(2))
    if not hmac.compare_digest(sign(secret, user, expires), token):
        return None
    return user


class Rooms(Application):
    """
    Everyone in a room hears what anyone in it says; C{/who} lists them.
    """

    def __init__(self, secret: str | None = None) -> None:
        secret = secret or os.environ.get("ROOMS_SECRET")
        if not secret:
            raise usage.UsageError("examples.rooms: set ROOMS_SECRET, the secret tokens are signed with")
        self.secret = secret
        self.rooms: dict[str, set[IConnection]] = {}

    def onRequest(self, conn: IConnection, request: Request) -> None:
        room = ROOM.fullmatch(conn.path)
        if room is None:
            raise HandshakeError(404, "No such room: a room is /rooms/NAME (a-z, 0-9, -)")
        token = conn.params.get("token", [""])[0]
        user = verify(self.secret, token, time.time())
        if user is None:
            raise HandshakeError(403, "A valid ?token= is needed")
        conn.attributes["room"] = room.group(1)
        conn.attributes["user"] = user

    def onOpen(self, conn: IConnection) -> Command:
        name, user = conn.attributes["room"], conn.attributes["user"]
        room = self.rooms.setdefault(name, set())
        room.add(conn)
        return self.tell(room, f"* {user} joined {name}")

    def onMessage(self, conn: IConnection, msg: str | bytes) -> Command:
        if isinstance(msg, bytes):
            return CloseConnection(conn, 1003, "Text messages only")
        room = self.rooms[conn.attributes["room"]]
        if msg == "/who":
            users = sorted({c.attributes["user"] for c in room})
            return SendMessage(conn, "* here: " + ", ".join(users))
        return self.tell(room, f"{conn.attributes['user']}: {msg}")

    def onClose(self, conn: IConnection) -> Command | None:
        name = conn.attributes["room"]
        room = self.rooms[name]
        room.discard(conn)
        if not room:
            del self.rooms[name]  # nothing is kept for rooms nobody is in
            return None
        return self.tell(room, f"* {conn.attributes['user']} left")

    def tell(self, room: set[IConnection], text: str) -> Command:
        return Composite(SendMessage(c, text) for c in room)


def main(argv: list[str]) -> int:
    """
    C{python -m examples.rooms token USER [SECONDS]}: print a token.
    """
    if len(argv) not in (2, 3) or argv[0] != "token" or not USER.fullmatch(argv[1]):
        print("usage: python -m examples.rooms token USER [SECONDS]", file=sys.stderr)
        return 2
    secret = os.environ.get("ROOMS_SECRET")
    if not secret:
        print("set ROOMS_SECRET, as for the server", file=sys.stderr)
        return 2
    seconds = int(argv[2]) if len(argv) == 3 else 3600
    print(sign(secret, argv[1], int(time.time()) + seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
