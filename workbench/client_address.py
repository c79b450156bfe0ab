"""Who is calling: the one client-address rule of the deployment.

The connection's peer is the client, unless it is one of the deployment's trusted proxies
(`settings.TRUSTED_PROXIES`), whose `X-Forwarded-For` hops are then honoured from the right.
Webhook IP allowlists (`triggers.ip_allowlist`) and the rate limits on failed log-ins
(`workbench.security`) both ask it, so a forged header fools neither.

- IPv4-mapped IPv6 addresses (`::ffff:203.0.113.7`, what a dual-stack socket reports) are the
  IPv4 address.
- A hop that is not an IP address ends the walk and the client is `UNKNOWN_CLIENT`
  ("unknown", as RFC 7239 names an unidentifiable node): no sender-controlled text is ever
  taken for an address. Skipping it instead would let whatever lies further left (written by
  anyone) become the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN_CLIENT = "unknown"


def client_address(
    remote_addr: str,
    forwarded_for: str | None,
    trusted_proxies: Sequence[IPNetwork],
) -> str:
    """The address the request came from, as text: an IP address or `UNKNOWN_CLIENT`.

    1. The connection's peer is the client, unless it is a trusted proxy.
    2. From a trusted proxy, walk X-Forwarded-For from the right (each proxy appends the peer it
       saw), skipping hops that are themselves trusted proxies; the first other hop is the
       client. Hops to its left were written by the client and are never read.
    3. If every hop is a trusted proxy, the leftmost one is the client; with no hops at all,
       the proxy itself is (a health check, say).
    """
    peer = parse_address(remote_addr)
    if peer is None:
        return UNKNOWN_CLIENT
    if not forwarded_for or not forwarded_for.strip() or not _is_trusted(peer, trusted_proxies):
        return str(peer)
    client = peer
    for hop in reversed(forwarded_for.split(",")):
        address = _parse_hop(hop)
        if address is None:
            return UNKNOWN_CLIENT
        client = address
        if not _is_trusted(address, trusted_proxies):
            break
    return str(client)


def _is_trusted(address: IPAddress, trusted_proxies: Sequence[IPNetwork]) -> bool:
    # `in` is simply False across IP versions, so mixed lists are fine.
    return any(address in network for network in trusted_proxies)


def parse_address(text: str | None) -> IPAddress | None:
    if not isinstance(text, str) or "%" in text:
        return None
    try:
        return unmap(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def _parse_hop(hop: str) -> IPAddress | None:
    """One X-Forwarded-For hop; some proxies (Azure, IIS) add a port: "203.0.113.7:443", "[2001:db8::1]:443"."""
    hop = hop.strip()
    if hop.startswith("["):
        host, bracket, port = hop[1:].partition("]")
        if not bracket or (port and not (port.startswith(":") and _is_port(port[1:]))):
            return None
        return parse_address(host)
    if hop.count(":") == 1:
        host, _, port = hop.partition(":")
        return parse_address(host) if _is_port(port) else None
    return parse_address(hop)


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5


def unmap(address: IPAddress) -> IPAddress:
    """::ffff:203.0.113.7 is 203.0.113.7 (a dual-stack socket reports IPv4 peers that way)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
