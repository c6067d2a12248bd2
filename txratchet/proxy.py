"""
The client's address behind reverse proxies, sans I/O.

C{Forwarded} (RFC 7239) and C{X-Forwarded-For} are believed only when the
direct peer is a trusted proxy, and only as far back as the chain of
trusted proxies goes: the client is the rightmost address that is not a
trusted proxy (anything left of it could have been written by the client).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parseNetworks(specs: Iterable[str]) -> list[Network]:
    """
    Parse addresses and networks (C{"127.0.0.1"}, C{"10.0.0.0/8"},
    C{"::1"}).

    @raise ValueError: a spec is neither.
    """
    return [ipaddress.ip_network(spec.strip(), strict=False) for spec in specs]


def _inside(host: str, networks: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _forwardedFor(value: str) -> list[str]:
    hops = []
    for element in value.split(","):
        for pair in element.split(";"):
            name, _, node = pair.strip().partition("=")
            if name.strip().lower() != "for":
                continue
            node = node.strip().strip('"')
            if node.startswith("["):  # "[2001:db8::1]:4711"
                node = node[1 : node.find("]")] if "]" in node else node[1:]
            elif node.count(":") == 1:  # "192.0.2.43:47011"
                node = node.split(":")[0]
            hops.append(node)
    return hops


def forwardedChain(headers: Any) -> list[str]:
    """
    The client addresses the proxies recorded, leftmost first: from
    C{Forwarded} when present, else from C{X-Forwarded-For}.
    """
    forwarded = headers.getAll("forwarded")
    if forwarded:
        return _forwardedFor(", ".join(forwarded))
    return [
        hop.strip()
        for value in headers.getAll("x-forwarded-for")
        for hop in value.split(",")
        if hop.strip()
    ]


def clientAddress(peerHost: str, headers: Any, trusted: Sequence[Network]) -> str | None:
    """
    The client's address, when C{peerHost} is a trusted proxy that says so;
    C{None} to keep the direct peer.
    """
    if not trusted or not _inside(peerHost, trusted):
        return None
    for hop in reversed(forwardedChain(headers)):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return None  # "unknown" or an obfuscated node: stop believing
        if not _inside(hop, trusted):
            return hop
    return None


def addressFor(host: str, original: object = None) -> IPv4Address | IPv6Address:
    """
    A Twisted address for C{host} (port unknown: 0).
    """
    if ":" in host:
        return IPv6Address("TCP", host, 0)
    return IPv4Address("TCP", host, 0)
