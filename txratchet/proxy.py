"""
The client's address behind reverse proxies, and address matching, sans I/O.

One header is believed, the one the operator's proxy sets (C{proxyHeader}:
C{X-Forwarded-For} by default, or C{Forwarded}, or C{X-Real-IP}); any other
is ignored, since a proxy passes on whatever it does not overwrite and the
client could have written it. It is believed only when the direct peer is a
trusted proxy, and only as far back as the chain of trusted proxies goes:
the client is the rightmost address that is not a trusted proxy (anything
left of it could have been written by the client).

An IPv4 address and its IPv4-mapped IPv6 form (C{::ffff:192.0.2.1}, the way
a dual-stack socket shows IPv4 peers) are one IPv4 address here, in specs
and in peers alike, so either spelling matches either; IPv6 networks
(C{::/0}) hold IPv6 peers only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from twisted.internet.address import IPv4Address, IPv6Address

if TYPE_CHECKING:
    from txratchet.websocket.http11 import Headers

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The headers a proxy can be trusted to write, by lower-case name.
PROXY_HEADERS = {
    "x-forwarded-for": "X-Forwarded-For",
    "forwarded": "Forwarded",
    "x-real-ip": "X-Real-IP",
}

#: What the README's nginx configuration sets.
DEFAULT_PROXY_HEADER = "X-Forwarded-For"

def proxyHeaderName(name: str) -> str:
    """
    The lower-case name of a supported proxy header.

    @raise ValueError: not one of L{PROXY_HEADERS} (a misspelt name would
        otherwise silently never match, and every client would look like
        the proxy).
    """
    key = name.strip().lower()
    if key not in PROXY_HEADERS:
        raise ValueError(
            f"proxy header must be one of {', '.join(PROXY_HEADERS.values())}, not {name!r}"
        )
    return key


def parseNetwork(spec: str) -> Network:
    """
    Parse an address or a network (C{"127.0.0.1"}, C{"10.0.0.0/8"},
    C{"::1"}); IPv4-mapped IPv6 ones (C{"::ffff:10.0.0.0/104"}) become
    their IPv4 form.

    @raise ValueError: C{spec} is neither, or is an IPv4-mapped address
        with an IPv6 prefix shorter than 96 (C{"::ffff:10.0.0.0/8"} is
        C{::/8}, not 10.0.0.0/8).
    """
    spec = spec.strip()
    network = ipaddress.ip_network(spec, strict=False)
    if isinstance(network, ipaddress.IPv6Network):
        mapped = ipaddress.IPv6Interface(spec).ip.ipv4_mapped
        if mapped is not None:
            if network.prefixlen < 96:
                bits = network.prefixlen if network.prefixlen <= 32 else 32
                raise ValueError(
                    f"{spec!r} is the IPv6 network {network}, not an IPv4 one: "
                    f"write {ipaddress.IPv4Network((mapped, bits), strict=False)} "
                    f"or ::ffff:{mapped}/{96 + bits} (an IPv4-mapped prefix counts 96 more)"
                )
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96), strict=False)
    return network


def parseNetworks(specs: Iterable[str]) -> list[Network]:
    """
    L{parseNetwork} for each of C{specs}.

    @raise ValueError: one is neither an address nor a network.
    """
    return [parseNetwork(spec) for spec in specs]


def parseAddress(host: str) -> Address | None:
    """
    C{host} as an address (an IPv4-mapped one in its IPv4 form), or
    C{None} when it is not one.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return mapped
    return address


def inNetworks(host: str, networks: Sequence[Network]) -> bool:
    """
    Is C{host} (an address, either spelling of an IPv4 one) in one of
    C{networks} (as L{parseNetwork} makes them)?
    """
    address = parseAddress(host)
    return address is not None and any(address in network for network in networks)


def _forwardedFor(value: str) -> list[str]:
    """
    One hop per C{Forwarded} element: its C{for} node, or C{""} (not an
    address: nothing left of it is believed) when it has none.
    """
    hops = []
    for element in value.split(","):
        node = ""
        for pair in element.split(";"):
            name, _, given = pair.strip().partition("=")
            if name.strip().lower() == "for":
                node = given.strip().strip('"')
        if node.startswith("["):  # "[2001:db8::1]:4711"
            node = node[1 : node.find("]")] if "]" in node else node[1:]
        elif node.count(":") == 1:  # "192.0.2.43:47011"
            node = node.split(":")[0]
        hops.append(node)
    return hops


def forwardedChain(headers: Headers, header: str = DEFAULT_PROXY_HEADER) -> list[str]:
    """
    The client addresses recorded in C{header} (and only there), leftmost
    first.
    """
    name = proxyHeaderName(header)
    values = headers.getAll(name)
    if name == "forwarded":
        return _forwardedFor(", ".join(values)) if values else []
    return [hop.strip() for value in values for hop in value.split(",") if hop.strip()]


def clientAddress(
    peerHost: str,
    headers: Headers,
    trusted: Sequence[Network],
    header: str = DEFAULT_PROXY_HEADER,
) -> str | None:
    """
    The client's address, when C{peerHost} is a trusted proxy that says so
    in C{header}; C{None} to keep the direct peer.
    """
    if not trusted or not inNetworks(peerHost, trusted):
        return None
    for hop in reversed(forwardedChain(headers, header)):
        if parseAddress(hop) is None:
            return None  # "unknown" or an obfuscated node: stop believing
        if not inNetworks(hop, trusted):
            return hop
    return None


def addressFor(host: str, original: object = None) -> IPv4Address | IPv6Address:
    """
    A Twisted address for C{host} (port unknown: 0).
    """
    if ":" in host:
        return IPv6Address("TCP", host, 0)
    return IPv4Address("TCP", host, 0)
