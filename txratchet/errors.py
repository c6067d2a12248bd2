"""
Every exception txratchet raises on purpose, under one base class.

Catch L{TxratchetError} for "anything txratchet refused or could not do";
catch a subclass for one case. Several also derive from the built-in
exception that describes them best (C{ValueError}, C{TypeError}), so code
written against those keeps working.

This module imports nothing (the sans-I/O core under L{txratchet.websocket}
uses it, and must not import Twisted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from txratchet.websocket.http11 import Headers


class TxratchetError(Exception):
    """
    The base class of txratchet's exceptions.
    """


# -- The server's opening handshake ---------------------------------------


class HandshakeError(TxratchetError):
    """
    A request cannot be answered with an upgrade: the server answers it
    with C{status}. Raise it from C{onRequest} to refuse a handshake.

    @ivar status: the HTTP status to answer with.
    @ivar reason: a short human-readable explanation, sent as the body.
    @ivar headers: extra response headers.
    """

    def __init__(self, status: int, reason: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.headers = list(headers)


# -- The client's opening handshake ---------------------------------------


class InvalidURL(TxratchetError, ValueError):
    """
    Not a C{ws://} or C{wss://} URL a client can connect to.
    """


class HandshakeFailed(TxratchetError):
    """
    The server did not accept the upgrade, or answered it wrongly.

    @ivar status: the response's HTTP status, or C{None} when no complete
        status line arrived.
    @ivar reason: what went wrong, for people.
    @ivar headers: the response's headers (empty when none arrived).
    @ivar body: the response body received (for a refusal), else C{b""}.
    """

    def __init__(
        self,
        reason: str,
        status: int | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(reason)
        if headers is None:
            from txratchet.websocket.http11 import Headers

            headers = Headers()
        self.reason = reason
        self.status = status
        self.headers = headers
        self.body = body

    def __str__(self) -> str:
        return self.reason


class InvalidStatus(HandshakeFailed):
    """
    The server answered with a status other than 101 (a 403, a 426 ...).
    """


class InvalidResponse(HandshakeFailed):
    """
    The answer breaks the protocol: a bad accept key, a subprotocol or an
    extension that was not offered, a malformed or oversized head.
    """


class HandshakeTimedOut(HandshakeFailed):
    """
    The server did not answer the upgrade request in time.
    """


class HandshakeCancelled(HandshakeFailed):
    """
    The connection was closed on our side before the handshake completed.
    """


class HTTP2Unavailable(HandshakeFailed):
    """
    A client asked for a WebSocket over HTTP/2 (C{http2=True}) and the
    server cannot give one: it did not choose C{h2} by ALPN (or the URL is
    not C{wss://}), or its SETTINGS did not enable extended CONNECT (RFC
    8441 C{SETTINGS_ENABLE_CONNECT_PROTOCOL}).
    """


# -- Messages ----------------------------------------------------------------


class BinaryNotSupported(TxratchetError, TypeError):
    """
    Hixie-76 cannot carry binary messages; nothing was sent.
    """


class MalformedExtensions(TxratchetError, ValueError):
    """
    A C{Sec-WebSocket-Extensions} header that does not parse (RFC 6455 9.1).
    """


class MessageTooBig(TxratchetError):
    """
    A compressed message inflates beyond the size limit.
    """


class CorruptMessage(TxratchetError):
    """
    A compressed message is not valid DEFLATE data.
    """


# -- Components ----------------------------------------------------------------


class SessionStoreUnavailable(TxratchetError):
    """
    A store raises (or fails its Deferred with) this to say it cannot look
    sessions up right now and has already said why in the log: the
    handshake gets 503 without a traceback per refused handshake.
    """


class InvalidTopic(TxratchetError, ValueError):
    """
    A topic a peer or the application gave is not usable (see
    L{txratchet.pubsub.Hub}).
    """


class TooManySubscriptions(TxratchetError, ValueError):
    """
    The connection already holds C{maxSubscriptions} topics.
    """


class MessageTooLarge(TxratchetError, ValueError):
    """
    The message the hub would send exceeds its C{maxMessageSize}.
    """


# -- Serving -------------------------------------------------------------------


class CannotServe(TxratchetError):
    """
    A port cannot be listened on; the message says which and why.
    """


__all__ = [
    "BinaryNotSupported",
    "CannotServe",
    "CorruptMessage",
    "HTTP2Unavailable",
    "HandshakeCancelled",
    "HandshakeError",
    "HandshakeFailed",
    "HandshakeTimedOut",
    "InvalidResponse",
    "InvalidStatus",
    "InvalidTopic",
    "InvalidURL",
    "MalformedExtensions",
    "MessageTooBig",
    "MessageTooLarge",
    "SessionStoreUnavailable",
    "TooManySubscriptions",
    "TxratchetError",
]
