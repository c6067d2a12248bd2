"""
An ASGI echo application for Hypercorn (an independent HTTP/2 WebSocket
server, RFC 8441), used by tests/test_http2_client.py: echoes text and
bytes, answers "version" with the scope's http_version, closes with 4001 on
"close"; accepts the last subprotocol offered.
"""

from typing import Any


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"no"})
        return
    await receive()
    offered = scope.get("subprotocols") or []
    await send({"type": "websocket.accept", "subprotocol": offered[-1] if offered else None})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        text = event.get("text")
        if text == "version":
            await send({"type": "websocket.send", "text": scope["http_version"]})
        elif text == "close":
            await send({"type": "websocket.close", "code": 4001})
            return
        elif text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": event["bytes"]})
