"""Which addresses may call a webhook trigger (SPEC section 4, "IP allowlist").

Three small questions, kept apart so each has one answer:

- `validate_allowlist`: is what a member typed a list of addresses and CIDR ranges? (on save)
- `client_address`: who is calling? The connection's peer, unless that peer is one of the
  deployment's trusted proxies (`settings.TRUSTED_PROXIES`), in which case the proxies'
  `X-Forwarded-For` hops are honoured from the right.
- `address_allowed`: is that caller on the list? An empty list allows everyone.

Decisions, and why:

- A range with host bits set (`198.51.100.7/24`) is refused, not normalised: the member meant
  either the one host or the whole range, and silently widening a typo to 256 addresses is the
  wrong way to guess.
- IPv4-mapped IPv6 addresses (`::ffff:203.0.113.7`, what a dual-stack socket reports) are the
  IPv4 address, in entries, peers and hops alike, so one entry covers both forms.
- A hop that is not an IP address ends the walk and the client is `UNKNOWN_CLIENT`
  ("unknown", as RFC 7239 names an unidentifiable node): it matches no allowlist entry, and no
  sender-controlled text reaches the request log. Skipping it instead would let whatever lies
  further left (written by anyone) become the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

__all__ = [
    "UNKNOWN_CLIENT",
    "InvalidAllowlist",
    "address_allowed",
    "client_address",
    "validate_allowlist",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN_CLIENT = "unknown"
MAX_ENTRIES = 500
_MAPPED_IPV4 = ipaddress.IPv6Network("::ffff:0:0/96")


class InvalidAllowlist(Exception):
    """The list cannot be saved; `errors` maps "allowedIps" or "allowedIps.<index>" to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("The IP allowlist is not valid: " + "; ".join(sorted(errors)))


# --- validation (on save) -----------------------------------------------------------------------


def validate_allowlist(entries: Any) -> list[str]:
    """The entries in canonical form (duplicates dropped, order kept), or `InvalidAllowlist`.

    Addresses stay addresses ("2001:db8::1"), ranges stay ranges ("198.51.100.0/24"); both are
    written the way `ipaddress` prints them, so equal entries compare equal.
    """
    if not isinstance(entries, list):
        raise InvalidAllowlist({"allowedIps": ["Expected a list of IP addresses or CIDR ranges."]})
    if len(entries) > MAX_ENTRIES:
        raise InvalidAllowlist({"allowedIps": [f"At most {MAX_ENTRIES} entries."]})
    errors: dict[str, list[str]] = {}
    clean: list[str] = []
    for index, entry in enumerate(entries):
        try:
            normalised = _normalise_entry(entry)
        except ValueError as invalid:
            errors[f"allowedIps.{index}"] = [str(invalid)]
            continue
        if normalised not in clean:
            clean.append(normalised)
    if errors:
        raise InvalidAllowlist(errors)
    return clean


def _normalise_entry(entry: Any) -> str:
    """One entry in canonical form; ValueError with the member-facing message otherwise."""
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError("Expected an IP address or CIDR range, e.g. 203.0.113.7 or 198.51.100.0/24.")
    text = entry.strip()
    shown = text if len(text) <= 64 else text[:61] + "..."
    if "%" in text:
        raise ValueError(f"{shown!r} has a zone (%...); zones mean nothing for a remote sender.")
    if "/" not in text:
        try:
            return str(_unmap(ipaddress.ip_address(text)))
        except ValueError:
            raise ValueError(f"{shown!r} is not an IP address or CIDR range.") from None
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{shown!r} is not an IP address or CIDR range.") from None
    if network.network_address != ipaddress.ip_interface(text).ip:
        raise ValueError(
            f"{shown!r} has host bits set: write {network} for the range, "
            f"or {ipaddress.ip_interface(text).ip} for the one address."
        )
    return str(_unmap_network(network))


# --- the client (per request) -------------------------------------------------------------------


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
    peer = _parse_address(remote_addr)
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


def _parse_address(text: str | None) -> IPAddress | None:
    if not isinstance(text, str) or "%" in text:
        return None
    try:
        return _unmap(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def _parse_hop(hop: str) -> IPAddress | None:
    """One X-Forwarded-For hop; some proxies (Azure, IIS) add a port: "203.0.113.7:443", "[2001:db8::1]:443"."""
    hop = hop.strip()
    if hop.startswith("["):
        host, bracket, port = hop[1:].partition("]")
        if not bracket or (port and not (port.startswith(":") and _is_port(port[1:]))):
            return None
        return _parse_address(host)
    if hop.count(":") == 1:
        host, _, port = hop.partition(":")
        return _parse_address(host) if _is_port(port) else None
    return _parse_address(hop)


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5


# --- matching -----------------------------------------------------------------------------------


def address_allowed(address: str, entries: Sequence[str]) -> bool:
    """True when the list is empty or an entry covers the address; "unknown" matches no entry.

    Entries are expected to have been validated; one that does not parse matches nothing
    rather than raising, so a stored list that predates a rule cannot turn requests into 500s.
    """
    if not entries:
        return True
    parsed = _parse_address(address)
    if parsed is None:
        return False
    return any(parsed in network for network in _entry_networks(entries))


def _entry_networks(entries: Sequence[str]) -> list[IPNetwork]:
    networks: list[IPNetwork] = []
    for entry in entries:
        if not isinstance(entry, str) or "%" in entry:
            continue
        try:
            networks.append(_unmap_network(ipaddress.ip_network(entry.strip(), strict=False)))
        except ValueError:
            continue
    return networks


def _unmap(address: IPAddress) -> IPAddress:
    """::ffff:203.0.113.7 is 203.0.113.7 (a dual-stack socket reports IPv4 peers that way)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _unmap_network(network: IPNetwork) -> IPNetwork:
    """A range inside ::ffff:0:0/96 is the IPv4 range it maps, so IPv4 peers match it."""
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED_IPV4):
        first = network.network_address.ipv4_mapped
        if first is not None:
            return ipaddress.IPv4Network((first, network.prefixlen - 96))
    return network
