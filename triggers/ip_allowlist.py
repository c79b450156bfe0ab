"""Which addresses may call a webhook trigger (SPEC section 4, "IP allowlist").

Three small questions, kept apart so each has one answer:

- `AllowedIpsField` / `validate_allowlist`: is what a member typed a list of addresses and
  CIDR ranges? (on save; the API's request shape too)
- `client_address` (in `workbench.client_address`, shared with the log-in rate limits): who
  is calling? The connection's peer, unless that peer is one of the deployment's trusted
  proxies (`settings.TRUSTED_PROXIES`), in which case the proxies' `X-Forwarded-For` hops are
  honoured from the right.
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
from typing import TYPE_CHECKING, Any

from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from workbench.client_address import UNKNOWN_CLIENT, IPNetwork, client_address, parse_address, unmap
from workbench.shapes import Text, says, validate_shape

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

__all__ = [
    "UNKNOWN_CLIENT",
    "AllowedIpsField",
    "address_allowed",
    "client_address",
    "validate_allowlist",
]

MAX_ENTRIES = 500
_MAPPED_IPV4 = ipaddress.IPv6Network("::ffff:0:0/96")


# --- validation (on save) -----------------------------------------------------------------------

ENTRY_MESSAGE = "Expected an IP address or CIDR range, e.g. 203.0.113.7 or 198.51.100.0/24."


class AllowedIpField(Text):
    """One entry: an address or a CIDR range, in canonical form."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(error_messages=says(ENTRY_MESSAGE), **kwargs)

    def to_internal_value(self, data: object) -> str:
        try:
            return _normalise_entry(super().to_internal_value(data))
        except ValueError as invalid:
            raise ValidationError(str(invalid)) from None


class AllowedIpsField(serializers.ListField):
    """The allowlist: addresses and CIDR ranges, duplicates dropped (the first kept)."""

    def __init__(self, **kwargs: Any) -> None:
        messages: dict[str, StrOrPromise] = {
            "not_a_list": "Expected a list of IP addresses or CIDR ranges.",
            "null": "Expected a list of IP addresses or CIDR ranges.",
            "max_length": f"At most {MAX_ENTRIES} entries.",
        }
        kwargs.setdefault("help_text", "Addresses or CIDR ranges; empty allows every one.")
        super().__init__(child=AllowedIpField(), max_length=MAX_ENTRIES, error_messages=messages, **kwargs)

    def to_internal_value(self, data: object) -> list[str]:
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        if len(data) > MAX_ENTRIES:
            self.fail("max_length", max_length=MAX_ENTRIES)  # before checking each entry
        return list(dict.fromkeys(super().to_internal_value(data)))


def validate_allowlist(entries: object) -> list[str]:
    """The entries in canonical form (duplicates dropped, order kept), or `Invalid` keyed
    "allowedIps" or "allowedIps.<index>".

    Addresses stay addresses ("2001:db8::1"), ranges stay ranges ("198.51.100.0/24"); both are
    written the way `ipaddress` prints them, so equal entries compare equal.
    """
    clean: list[str] = validate_shape(AllowedIpsField(), entries, at="allowedIps")
    return clean


def _normalise_entry(entry: str) -> str:
    """One entry in canonical form; ValueError with the member-facing message otherwise."""
    if not entry.strip():
        raise ValueError(ENTRY_MESSAGE)
    text = entry.strip()
    shown = text if len(text) <= 64 else text[:61] + "..."
    if "%" in text:
        raise ValueError(f"{shown!r} has a zone (%...); zones mean nothing for a remote sender.")
    if "/" not in text:
        try:
            return str(unmap(ipaddress.ip_address(text)))
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


# --- matching -----------------------------------------------------------------------------------


def address_allowed(address: str, entries: Sequence[str]) -> bool:
    """True when the list is empty or an entry covers the address; "unknown" matches no entry.

    Entries are expected to have been validated; one that does not parse matches nothing
    rather than raising, so a stored list that predates a rule cannot turn requests into 500s.
    """
    if not entries:
        return True
    parsed = parse_address(address)
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


def _unmap_network(network: IPNetwork) -> IPNetwork:
    """A range inside ::ffff:0:0/96 is the IPv4 range it maps, so IPv4 peers match it."""
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED_IPV4):
        first = network.network_address.ipv4_mapped
        if first is not None:
            return ipaddress.IPv4Network((first, network.prefixlen - 96))
    return network
