"""
websockets (asyncio) benchmark server: echo or broadcast. No compression,
or with --compression the library's default (compression="deflate").
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common
from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosedOK

args = _common.parse_args()
clients = set()


async def echo(ws):
    try:
        async for msg in ws:
            await ws.send(msg)
    except ConnectionClosedOK:  # messages still queued when the client closed
        pass


async def chat(ws):
    clients.add(ws)
    try:
        async for msg in ws:
            broadcast((c for c in clients if c is not ws), msg)
    finally:
        clients.discard(ws)


async def main():
    handler = echo if args.app == "echo" else chat
    compression = "deflate" if args.compression else None  # "deflate" is serve()'s default
    async with serve(
        handler, "127.0.0.1", args.port, compression=compression, backlog=args.backlog
    ) as server:
        _common.ready(args.port)
        await server.serve_forever()


asyncio.run(main())
