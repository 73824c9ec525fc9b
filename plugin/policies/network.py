"""Who is at the other end: the client's address, seen through reverse proxies we were told to trust."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR networks ("10.0.0.5", "10.0.0.0/24", "::1"); raises ValueError on a bad one."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address.ipv4_mapped or address if isinstance(address, ipaddress.IPv6Address) else address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, trusted: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in trusted)


def client_address(peer: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The address a request comes from.

    `X-Forwarded-For` is believed only when the connection itself comes from a trusted proxy, and
    only as far back as it was written by trusted proxies: the rightmost hop that is not one of
    them is the client (anything left of it was written by the client and proves nothing). A hop
    that is not an address stops the walk at the last proxy that can be vouched for.
    """
    if not trusted or not forwarded_for or not _trusted(_address(peer), trusted):
        return peer
    believed = peer
    for hop in reversed(forwarded_for.split(",")):
        address = _address(hop)
        if address is None:
            return believed
        if not _trusted(address, trusted):
            return str(address)
        believed = str(address)
    return believed
