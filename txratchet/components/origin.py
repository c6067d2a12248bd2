"""
L{OriginCheck}: refuse WebSocket handshakes from other sites' pages.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from txratchet.components.base import Decorator
from txratchet.interfaces import IApplication
from txratchet.websocket.handshake import HandshakeError


class OriginCheck(Decorator):
    """
    Refuse (403) upgrade requests whose origin is not allowed, before the
    application sees them: browsers send the page's origin, so this stops
    cross-site WebSocket hijacking (a hostile page using the visitor's
    cookies).

    Patterns: C{"example.com"} (that host, any scheme and port),
    C{"*.example.com"} (its subdomains, not itself), or a full origin
    C{"https://example.com:8443"} (exactly that).

    @param allowMissing: accept requests without an origin (non-browser
        clients, which could forge one anyway).
    """

    def __init__(
        self, app: IApplication, allowed: Iterable[str], allowMissing: bool = True
    ) -> None:
        super().__init__(app)
        self.allowed = [a.strip().lower() for a in allowed]
        self.allowMissing = allowMissing

    def isAllowed(self, origin: str) -> bool:
        """
        Does C{origin} (a header value) match an allowed pattern?
        """
        origin = origin.strip().lower()
        try:
            host = urlsplit(origin).hostname or ""
        except ValueError:
            return False
        for pattern in self.allowed:
            if "://" in pattern:
                if origin == pattern.rstrip("/"):
                    return True
            elif pattern.startswith("*."):
                if host.endswith(pattern[1:]) and host != pattern[2:]:
                    return True
            elif host == pattern:
                return True
        return False

    def onRequest(self, conn: Any, request: Any) -> object:
        headers = request.headers
        origin = headers.get("origin") or headers.get("sec-websocket-origin")
        if origin is None:
            if not self.allowMissing:
                raise HandshakeError(403, "An Origin header is required")
        elif not self.isAllowed(origin):
            raise HandshakeError(403, f"Origin not allowed: {origin}")
        return super().onRequest(conn, request)
