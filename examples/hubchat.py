"""
A chat that works across processes: peers join the "chat" topic of a
pub/sub hub, and with a Redis backplane every worker process relays to all.

    twistd -n txratchet --app examples.hubchat.HubChat \\
        --workers 2 --backplane redis://127.0.0.1:6379

Send "/pid" to learn which worker process you are talking to.
"""

import os

from txratchet.pubsub import Hub


class HubChat(Hub):
    def __init__(self, backplane=None):
        # Peers only chat: no wire subscribe/publish (the hub's API does it).
        super().__init__(backplane=backplane, wire=False)

    def onOpen(self, conn):
        super().onOpen(conn)
        self.subscribe(conn, "chat")

    def onMessage(self, conn, msg):
        if msg == "/pid":
            conn.send(f"pid {os.getpid()}")
        else:
            self.broadcast("chat", msg, exclude=conn)
