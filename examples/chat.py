"""
The original Ratchet chat example, ported line for line.

Run it from the repository root, with telnet users on a second port::

    twistd -n txratchet --app examples.chat.Chat --line-port tcp:9001
"""

from txratchet import Application, CloseConnection, Composite, SendMessage


class Chat(Application):
    def __init__(self):
        self.clients = set()

    def onOpen(self, conn):
        self.clients.add(conn)

    def onMessage(self, sender, msg):
        return Composite(SendMessage(c, msg) for c in self.clients if c is not sender)

    def onClose(self, conn):
        self.clients.discard(conn)

    def onError(self, conn, failure):
        # txratchet has logged the failure with its traceback; a server that
        # cannot tell what went wrong closes with 1011 (internal error).
        return CloseConnection(conn, 1011, "Internal error")
