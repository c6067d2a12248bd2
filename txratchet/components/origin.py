"""
L{OriginCheck}: refuse WebSocket handshakes from other sites' pages.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from txratchet.components.base import Decorator
from txratchet.errors import HandshakeError
from txratchet.interfaces import IApplication, IConnection

if TYPE_CHECKING:
    from txratchet.websocket.handshake import Request

#: The port an origin without one means, by scheme.
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*\Z")
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)\Z")


class OriginPattern(NamedTuple):
    """
    One allowed-origin pattern, parsed: C{scheme} and C{port} are C{None}
    when any will do; C{wildcard} means strict subdomains of C{host}.
    """

    scheme: str | None
    host: str
    wildcard: bool
    port: int | None


def _host(text: str, pattern: str) -> tuple[str, bool]:
    """
    A pattern's host, lower-cased (IDNA for non-ASCII names), and whether it
    is a C{*.} wildcard.
    """
    wildcard = text.startswith("*.")
    if wildcard:
        text = text[2:]
    if text.startswith("[") and text.endswith("]") and not wildcard:
        try:
            return str(ipaddress.IPv6Address(text[1:-1])), False
        except ValueError:
            raise ValueError(f"bad IPv6 address in origin pattern {pattern!r}") from None
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"bad host name in origin pattern {pattern!r}") from None
    labels = text.split(".")
    if not text or not all(_LABEL.match(label) for label in labels):
        raise ValueError(
            f"bad origin pattern {pattern!r}: expected host, host:port, *.domain, "
            "*.domain:port or scheme://host[:port]"
        )
    if labels[-1].isdigit():  # browsers read a numeric last label as IPv4
        try:
            ipaddress.IPv4Address(text)
        except ValueError:
            raise ValueError(f"bad IPv4 address in origin pattern {pattern!r}") from None
        if wildcard:
            raise ValueError(f"an IP address has no subdomains: {pattern!r}")
    return text, wildcard


def parsePattern(pattern: str) -> OriginPattern:
    """
    Parse an allowed-origin pattern: C{host}, C{host:port}, C{*.domain},
    C{*.domain:port}, C{scheme://host} (that scheme's default port) or
    C{scheme://host:port}; IPv6 hosts in brackets.

    @raise ValueError: anything else (a path, a bare C{*}, a bad port...),
        saying what is wrong.
    """
    text = pattern.strip().lower()
    if text in ("", "*", "null"):
        raise ValueError(
            f"origin pattern {pattern!r} is not a host: leave OriginCheck out to allow "
            "every origin, use allowMissing for clients that send none"
        )
    scheme: str | None = None
    if "://" in text:
        scheme, _, text = text.partition("://")
        if not _SCHEME.match(scheme):
            raise ValueError(f"bad scheme in origin pattern {pattern!r}")
        if text.endswith("/"):
            text = text[:-1]  # "https://example.com/", as some copy it
    if any(c in text for c in "/?#@ "):
        raise ValueError(
            f"origin pattern {pattern!r} has more than scheme, host and port "
            "(an Origin header never carries a path, query or user)"
        )
    hostText, port = text, None
    if text.count(":") > 1 and "[" not in text:
        raise ValueError(f"an IPv6 host goes in brackets: {pattern!r} (say, [::1]:8080)")
    if text.startswith("[") or text.startswith("*.["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"unclosed [ in origin pattern {pattern!r}")
        hostText, rest = text[: end + 1], text[end + 1 :]
        portText = rest[1:] if rest.startswith(":") else None
        if rest and portText is None:
            raise ValueError(f"bad origin pattern {pattern!r}")
    else:
        hostText, colon, portText = text.partition(":")
        if not colon:
            portText = None
    if portText is not None:
        if not portText.isdigit() or not 0 < int(portText) < 65536:
            raise ValueError(f"bad port in origin pattern {pattern!r}: {portText!r}")
        port = int(portText)
    elif scheme is not None:
        port = DEFAULT_PORTS.get(scheme)
    host, wildcard = _host(hostText, pattern)
    return OriginPattern(scheme, host, wildcard, port)


def _parseOrigin(origin: str) -> tuple[str, str, int | None] | None:
    """
    An Origin header's scheme, host and effective port; C{None} for
    C{null} or anything that is not an origin.
    """
    try:
        url = urlsplit(origin.strip().lower())
        host = url.hostname
        port = url.port
    except ValueError:
        return None
    if not url.scheme or not host:
        return None
    if ":" in host:
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            return None
    if port is None:
        port = DEFAULT_PORTS.get(url.scheme)
    return url.scheme, host, port


class OriginCheck(Decorator):
    """
    Refuse (403) upgrade requests whose origin is not allowed, before the
    application sees them: browsers send the page's origin, so this stops
    cross-site WebSocket hijacking (a hostile page using the visitor's
    cookies).

    Patterns (case-insensitive; IPv6 hosts in brackets):

      - C{"example.com"}: that host, any scheme and port;
      - C{"example.com:8443"}: that host on that port (the origin's port,
        or its scheme's default: C{http://example.com} is on 80), any
        scheme;
      - C{"*.example.com"}, C{"*.example.com:8443"}: its subdomains (not
        itself), on any port or that one;
      - C{"https://example.com"}, C{"https://example.com:8443"},
        C{"https://*.example.com"}: that scheme too, and the port given or
        the scheme's default.

    @param allowMissing: accept requests without an origin (non-browser
        clients, which could forge one anyway).
    @param sameHost: also accept the page's own origin: an C{http}/C{https}
        origin whose host and port are the request's C{Host} header's,
        which is what a browser sends for a page this server served,
        whatever name or address it was reached at (behind a proxy that
        keeps C{Host}, too). Cookies cannot ride on it from another site:
        a page elsewhere has another host.
    @raise ValueError: a pattern is malformed (say, has a path or a bad
        port), rather than never matching anything.
    """

    def __init__(
        self,
        app: IApplication,
        allowed: Iterable[str],
        allowMissing: bool = True,
        sameHost: bool = False,
    ) -> None:
        super().__init__(app)
        if isinstance(allowed, str):
            allowed = [allowed]  # one pattern, not its letters
        self.allowed = [a.strip().lower() for a in allowed]
        self.patterns = [parsePattern(a) for a in self.allowed]
        self.allowMissing = allowMissing
        self.sameHost = sameHost

    def isAllowed(self, origin: str) -> bool:
        """
        Does C{origin} (a header value) match an allowed pattern?
        """
        parsed = _parseOrigin(origin)
        if parsed is None:
            return False
        scheme, host, port = parsed
        for pattern in self.patterns:
            if pattern.scheme is not None and pattern.scheme != scheme:
                continue
            if pattern.port is not None and pattern.port != port:
                continue
            if pattern.wildcard:
                if host.endswith("." + pattern.host):
                    return True
            elif host == pattern.host:
                return True
        return False

    def onRequest(self, conn: IConnection, request: Request) -> object:
        headers = request.headers
        origin = headers.get("origin") or headers.get("sec-websocket-origin")
        if origin is None:
            if not self.allowMissing:
                raise HandshakeError(403, "An Origin header is required")
        elif not (
            self.isAllowed(origin)
            or (self.sameHost and isSameHost(origin, headers.get("host")))
        ):
            raise HandshakeError(403, f"Origin not allowed: {origin}")
        return super().onRequest(conn, request)


def isSameHost(origin: str, host: str | None) -> bool:
    """
    Is C{origin} (an Origin header) that of a page served at C{host} (the
    request's Host header): an C{http} or C{https} origin with the same
    host and port, a missing port being the origin scheme's default?
    """
    page = _parseOrigin(origin)
    if page is None or host is None or page[0] not in ("http", "https"):
        return False
    server = _parseOrigin(f"{page[0]}://{host}")
    return server is not None and server[1:] == page[1:]
