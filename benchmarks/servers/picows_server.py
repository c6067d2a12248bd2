"""
picows (asyncio, Cython) benchmark server: echo or broadcast, written the
way picows' own examples do it (a WSListener per connection, frames in,
transport.send out; a close frame is answered and the connection closed).
picows has no permessage-deflate, so there is no --compression.
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common
from picows import WSListener, WSMsgType, ws_create_server

args = _common.parse_args(compression=False)
clients = set()


class Echo(WSListener):
    def on_ws_frame(self, transport, frame):
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            # the load generator sends every message in one frame (fin set)
            transport.send(frame.msg_type, frame.get_payload_as_bytes())


class Chat(Echo):
    def on_ws_connected(self, transport):
        clients.add(transport)

    def on_ws_disconnected(self, transport):
        clients.discard(transport)

    def on_ws_frame(self, transport, frame):
        if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            payload = frame.get_payload_as_bytes()
            for c in clients:
                if c is not transport:
                    c.send(frame.msg_type, payload)
        else:
            super().on_ws_frame(transport, frame)


async def main():
    listener = Echo if args.app == "echo" else Chat
    server = await ws_create_server(lambda request: listener(), "127.0.0.1", args.port, backlog=args.backlog)
    _common.ready(args.port)
    await server.serve_forever()


asyncio.run(main())
