"""Which addresses a URL import may connect to: public ones only. An IPv6 address that carries an
IPv4 one (mapped, compatible, NAT64, 6to4, Teredo) is judged by the IPv4 address it carries."""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv6Address

# Ranges Python's `is_global` lets through that still reach a host's or a cloud's own services.
_ALSO_REFUSED = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network": 0.0.0.0 reaches the local host on Linux
        "100.64.0.0/10",  # carrier-grade NAT; Alibaba's metadata service is 100.100.100.200
        "168.63.129.16/32",  # Azure's host and metadata endpoint, a public address
        "fec0::/10",  # deprecated site-local
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215): where the IPv4 address sits is the site's choice
    )
)
# /96 prefixes whose last 32 bits are an IPv4 address: IPv4-compatible, NAT64, IPv4-translated.
_IPV4_IN_LAST_32_BITS = (bytes(12), bytes.fromhex("0064ff9b") + bytes(8), bytes(8) + b"\xff\xff\x00\x00")


def carried_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one stands for, when it is one of the forms that embed one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.teredo is not None:
        return address.teredo[1]  # the client's address, the one a connection reaches
    if address.sixtofour is not None:
        return address.sixtofour
    if address.packed[:12] in _IPV4_IN_LAST_32_BITS and int(address) > 1:  # :: and ::1 are not IPv4
        return IPv4Address(address.packed[12:])
    return None


def _is_public(address: IPv4Address | IPv6Address) -> bool:
    site_local = isinstance(address, IPv6Address) and address.is_site_local
    return (
        address.is_global
        and not (address.is_multicast or address.is_reserved or address.is_link_local or site_local)
        and not any(address in network for network in _ALSO_REFUSED)
    )


def non_public(address: IPv4Address | IPv6Address) -> str | None:
    """How to name `address` in a refusal when an import must not connect to it; None when it may."""
    carried = carried_ipv4(address) if isinstance(address, IPv6Address) else None
    if carried is not None and not _is_public(carried):
        return f"{address} (which carries the IPv4 address {carried})"
    if carried is not None and address.teredo is None:
        return None  # NAT64 and the like are how IPv6-only hosts reach IPv4 servers: the IPv4 decides
    return None if _is_public(address) else str(address)
