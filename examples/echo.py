"""
Echo: every message goes back to its sender, text as text, binary as binary.

Run it from the repository root::

    twistd -n txratchet --app examples.echo.Echo --port tcp:9000
"""

from txratchet import Application, SendMessage


class Echo(Application):
    def onMessage(self, conn, msg):
        return SendMessage(conn, msg)
