"""
What the sans-I/O core reports: the events a frame reader turns bytes
into, the same for every protocol family, and the handshake's outcomes.

Messages are plain C{str} (text) and C{bytes} (binary): the common case
allocates nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from txratchet.websocket.handshake import Request, Response


@dataclass(slots=True)
class Ping:
    """
    A ping arrived; the protocol answers it with a pong of the same payload.
    """

    payload: bytes


@dataclass(slots=True)
class Pong:
    """
    A pong arrived.
    """

    payload: bytes


@dataclass(slots=True)
class CloseReceived:
    """
    The peer sent a valid close frame (it starts the closing handshake or
    answers ours); C{code} is C{None} when it carried none (always, for
    Hixie-76, whose closing frame has no payload).
    """

    code: int | None
    reason: str


@dataclass(slots=True)
class Failed:
    """
    The peer broke the protocol or a limit: fail the connection with
    C{code} (RFC 6455 7.4.1; Hixie-76 sends no code).
    """

    code: int
    reason: str


@dataclass(slots=True)
class RequestReceived:
    """
    Server side: a complete opening-handshake request (an upgrade, or a
    plain HTTP request when C{upgrade} is false).
    """

    request: Request
    upgrade: bool


@dataclass(slots=True)
class Opened:
    """
    Client side: the server accepted the handshake; the events after this
    one in the same list are the first frames.
    """

    response: Response


#: What a frame reader returns, whatever the family.
FrameEvent = str | bytes | Ping | Pong | CloseReceived | Failed

#: What L{txratchet.websocket.protocol.WebSocketProtocol.receive} returns.
Event = FrameEvent | RequestReceived | Opened

__all__ = ["CloseReceived", "Event", "Failed", "FrameEvent", "Opened", "Ping", "Pong", "RequestReceived"]
