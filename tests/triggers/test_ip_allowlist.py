"""Webhook IP allowlists: what a member may save, who the caller is, and who gets in (SPEC section 4)."""

from __future__ import annotations

import ipaddress
import random
from typing import Any

import pytest

from triggers.ip_allowlist import (
    UNKNOWN_CLIENT,
    address_allowed,
    client_address,
    validate_allowlist,
)
from workbench.errors import Invalid

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]
LOAD_BALANCER = "10.0.0.2"
EDGE_PROXY = "10.1.2.3"


def errors_of(entries: Any) -> dict[str, list[str]]:
    with pytest.raises(Invalid) as info:
        validate_allowlist(entries)
    return info.value.errors


# --- validation on save -------------------------------------------------------------------------


def test_addresses_and_ranges_of_both_families_are_kept_in_canonical_form() -> None:
    entries = ["203.0.113.7", " 198.51.100.0/24 ", "2001:DB8:0:0::1", "2001:db8:abcd::/48", "192.0.2.9/32"]
    assert validate_allowlist(entries) == [
        "203.0.113.7",
        "198.51.100.0/24",
        "2001:db8::1",
        "2001:db8:abcd::/48",
        "192.0.2.9/32",
    ]


def test_an_empty_list_is_valid_and_stays_empty() -> None:
    assert validate_allowlist([]) == []


def test_duplicates_are_dropped_keeping_the_first() -> None:
    assert validate_allowlist(["2001:db8::1", "203.0.113.7", "2001:DB8::0001"]) == ["2001:db8::1", "203.0.113.7"]


def test_ipv4_mapped_entries_are_saved_as_ipv4() -> None:
    assert validate_allowlist(["::ffff:203.0.113.7", "::ffff:198.51.100.0/120"]) == ["203.0.113.7", "198.51.100.0/24"]


def test_a_range_with_host_bits_set_is_refused_with_both_readings_offered() -> None:
    assert errors_of(["198.51.100.7/24"]) == {
        "allowedIps.0": [
            "'198.51.100.7/24' has host bits set: write 198.51.100.0/24 for the range, "
            "or 198.51.100.7 for the one address."
        ]
    }


def test_each_bad_entry_is_reported_at_its_index() -> None:
    errors = errors_of(["203.0.113.7", "10.0.0.300", "198.51.100.0/33", "example.com"])
    assert errors == {
        "allowedIps.1": ["'10.0.0.300' is not an IP address or CIDR range."],
        "allowedIps.2": ["'198.51.100.0/33' is not an IP address or CIDR range."],
        "allowedIps.3": ["'example.com' is not an IP address or CIDR range."],
    }


@pytest.mark.parametrize(
    "entry",
    ["", "  ", "010.0.0.1", "1.2.3", "1.2.3.4/", "/24", "1.2.3.4 5.6.7.8", "1.2.3.4,5.6.7.8", "2001:db8::g", "*"],
)
def test_malformed_entries_are_refused(entry: str) -> None:
    assert list(errors_of([entry])) == ["allowedIps.0"]


@pytest.mark.parametrize("entry", [None, 3232235777, ["203.0.113.7"], {"ip": "203.0.113.7"}])
def test_entries_must_be_text(entry: Any) -> None:
    assert list(errors_of([entry])) == ["allowedIps.0"]


def test_scoped_ipv6_addresses_are_refused() -> None:
    assert "zone" in errors_of(["fe80::1%eth0"])["allowedIps.0"][0]


@pytest.mark.parametrize("entries", [None, "203.0.113.7", {"0": "203.0.113.7"}, ("203.0.113.7",)])
def test_the_allowlist_must_be_a_list(entries: Any) -> None:
    assert errors_of(entries) == {"allowedIps": ["Expected a list of IP addresses or CIDR ranges."]}


def test_the_list_has_a_size_limit() -> None:
    assert list(errors_of([f"10.0.{i // 256}.{i % 256}" for i in range(501)])) == ["allowedIps"]


def test_a_long_bad_entry_is_shortened_in_the_message() -> None:
    message = errors_of(["x" * 1000])["allowedIps.0"][0]
    assert len(message) < 120


# --- matching -----------------------------------------------------------------------------------


def test_an_empty_list_allows_every_address() -> None:
    assert address_allowed("203.0.113.7", [])
    assert address_allowed(UNKNOWN_CLIENT, [])


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("198.51.100.0", True),
        ("198.51.100.255", True),
        ("198.51.101.0", False),
        ("198.51.99.255", False),
        ("203.0.113.7", True),
        ("203.0.113.8", False),
    ],
)
def test_cidr_ranges_and_single_addresses_match_exactly(address: str, allowed: bool) -> None:
    assert address_allowed(address, ["203.0.113.7", "198.51.100.0/24"]) is allowed


@pytest.mark.parametrize(
    ("address", "allowed"),
    [("2001:db8:abcd:12::1", True), ("2001:DB8:ABCD::", True), ("2001:db8:abce::1", False), ("2001:db8::1", True)],
)
def test_ipv6_ranges_and_addresses_match(address: str, allowed: bool) -> None:
    assert address_allowed(address, ["2001:db8:abcd::/48", "2001:db8::1"]) is allowed


def test_families_never_match_each_other() -> None:
    assert not address_allowed("2001:db8::1", ["0.0.0.0/0"])
    assert not address_allowed("203.0.113.7", ["::/0"])


def test_an_ipv4_mapped_address_matches_the_ipv4_entry() -> None:
    assert address_allowed("::ffff:203.0.113.7", ["203.0.113.7"])
    assert address_allowed("::ffff:198.51.100.9", ["198.51.100.0/24"])
    assert not address_allowed("::ffff:203.0.113.8", ["203.0.113.7"])


def test_an_unvalidated_mapped_entry_still_matches_the_ipv4_address() -> None:
    assert address_allowed("203.0.113.7", ["::ffff:203.0.113.7"])


@pytest.mark.parametrize(
    "address", [UNKNOWN_CLIENT, "", "not an ip", "203.0.113.7:443", "fe80::1%eth0", "203.0.113.07"]
)
def test_an_address_that_does_not_parse_matches_no_entry(address: str) -> None:
    assert not address_allowed(address, ["0.0.0.0/0", "::/0"])


def test_a_stored_entry_that_does_not_parse_matches_nothing_instead_of_raising() -> None:
    assert not address_allowed("203.0.113.7", ["garbage", "", "203.0.113.300"])
    assert address_allowed("203.0.113.7", ["garbage", "203.0.113.0/24"])


# --- the client address -------------------------------------------------------------------------


def test_without_trusted_proxies_the_connection_is_the_client() -> None:
    assert client_address("203.0.113.7", None, []) == "203.0.113.7"
    assert client_address("203.0.113.7", "198.51.100.1", []) == "203.0.113.7"


def test_a_forged_forwarded_for_from_an_untrusted_peer_gets_nothing() -> None:
    forged = "198.51.100.1, 10.0.0.5"
    assert client_address("203.0.113.7", forged, PROXIES) == "203.0.113.7"


def test_behind_one_trusted_proxy_the_last_hop_is_the_client() -> None:
    assert client_address(LOAD_BALANCER, "203.0.113.7", PROXIES) == "203.0.113.7"


def test_a_client_cannot_pick_its_address_by_sending_its_own_forwarded_for() -> None:
    # The client sent "X-Forwarded-For: 198.51.100.1"; the proxy appended the peer it saw.
    assert client_address(LOAD_BALANCER, "198.51.100.1, 203.0.113.7", PROXIES) == "203.0.113.7"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    chain = f"198.51.100.1, 203.0.113.7, {EDGE_PROXY}, 10.9.9.9"
    assert client_address(LOAD_BALANCER, chain, PROXIES) == "203.0.113.7"


def test_ipv6_proxies_and_clients_are_walked_too() -> None:
    assert client_address("fd00::2", "2001:db8::7, fd00::1", PROXIES) == "2001:db8::7"
    assert client_address("::ffff:10.0.0.2", "::ffff:203.0.113.7", PROXIES) == "203.0.113.7"


def test_when_every_hop_is_trusted_the_leftmost_is_the_client() -> None:
    assert client_address(LOAD_BALANCER, f"10.5.5.5, {EDGE_PROXY}", PROXIES) == "10.5.5.5"


@pytest.mark.parametrize("forwarded_for", [None, "", "  "])
def test_a_trusted_proxy_without_forwarded_for_is_itself_the_client(forwarded_for: str | None) -> None:
    assert client_address(LOAD_BALANCER, forwarded_for, PROXIES) == LOAD_BALANCER


@pytest.mark.parametrize(
    "forwarded_for",
    [
        "garbage",
        "203.0.113.7, garbage",
        "203.0.113.7,",
        "203.0.113.7, , 10.0.0.9",
        "unknown",
        "_hidden",
        "203.0.113.300",
    ],
)
def test_a_malformed_hop_makes_the_client_unknown_instead_of_reading_further_left(forwarded_for: str) -> None:
    assert client_address(LOAD_BALANCER, forwarded_for, PROXIES) == UNKNOWN_CLIENT


def test_an_unknown_client_is_refused_by_any_non_empty_allowlist() -> None:
    client = client_address(LOAD_BALANCER, "203.0.113.7, not-an-ip", PROXIES)
    assert not address_allowed(client, ["203.0.113.7", "0.0.0.0/0"])


def test_malformed_hops_left_of_the_client_are_never_read() -> None:
    assert client_address(LOAD_BALANCER, "garbage, 203.0.113.7", PROXIES) == "203.0.113.7"


@pytest.mark.parametrize(
    ("hop", "client"),
    [
        ("203.0.113.7:51234", "203.0.113.7"),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("[2001:db8::7]", "2001:db8::7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:", UNKNOWN_CLIENT),
        ("203.0.113.7:port", UNKNOWN_CLIENT),
        ("203.0.113.7:1234567", UNKNOWN_CLIENT),
        ("[2001:db8::7", UNKNOWN_CLIENT),
        ("[2001:db8::7]x", UNKNOWN_CLIENT),
        ("fe80::1%eth0", UNKNOWN_CLIENT),
    ],
)
def test_hops_with_ports_are_read_and_odd_ones_are_unknown(hop: str, client: str) -> None:
    assert client_address(LOAD_BALANCER, hop, PROXIES) == client


def test_a_trusted_hop_with_a_port_is_still_skipped() -> None:
    assert client_address(LOAD_BALANCER, "203.0.113.7:1000, 10.1.2.3:2000", PROXIES) == "203.0.113.7"


@pytest.mark.parametrize("remote_addr", ["", "unix:/run/gunicorn.sock", "garbage"])
def test_an_unparsable_connection_address_is_unknown(remote_addr: str) -> None:
    assert client_address(remote_addr, "203.0.113.7", PROXIES) == UNKNOWN_CLIENT


def test_the_connection_address_is_normalised() -> None:
    assert client_address("::ffff:203.0.113.7", None, []) == "203.0.113.7"
    assert client_address("2001:DB8::0007", None, []) == "2001:db8::7"


def test_random_forwarded_for_values_yield_an_address_or_unknown_and_never_raise() -> None:
    rng = random.Random("xff")
    pieces = ["203.0.113.7", "10.0.0.1", "2001:db8::1", "fd00::9", ",", ", ", ":", "[", "]", "%", " ", "x", "::ffff:"]
    for _ in range(2000):
        header = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 10)))
        client = client_address(rng.choice([LOAD_BALANCER, "203.0.113.9", "fd00::1"]), header, PROXIES)
        assert client == UNKNOWN_CLIENT or ipaddress.ip_address(client)
        assert len(client) <= 45
        assert isinstance(address_allowed(client, ["203.0.113.0/24"]), bool)
