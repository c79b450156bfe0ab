"""Outbound HTTP with an SSRF guard: what the product calls on a URL someone else gave it.

Marketo hands us a `callbackUrl` in every batch; whoever holds a trigger's API key chooses
it. Posting to it from a worker inside our network must not reach that network, so
`post_json`:

1. takes only `https` URLs (SPEC section 7), with a host name or address and no user info;
2. resolves the host once and refuses it when ANY of its addresses is loopback, private,
   link-local, reserved, multicast, unspecified or otherwise not globally routable (an
   IPv4-mapped IPv6 address is judged as the IPv4 address it maps);
3. connects to the address it checked, not to the name again (no DNS-rebinding gap between
   the check and the connection), while the Host header, TLS SNI and the certificate check
   still use the host name;
4. never follows a redirect (a 3xx is an answer like any other), and bounds the connection,
   each read, the whole exchange (a receiver answering a byte at a time is cut off at
   TOTAL_TIMEOUT_SECONDS) and the body it reads.

`OUTBOUND_ALLOW_PRIVATE=1` (settings) lifts rules 1 and 2: tests with a receiver on
127.0.0.1 and on-premises targets. Nothing here retries: the caller records the attempt and
decides.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 10.0
TOTAL_TIMEOUT_SECONDS = 30.0  # under the callback's lease (triggers.marketo.CALLBACK_LEASE)
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "ActionFlowWorkbench/1 (+callback)"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundRefused(Exception):
    """The URL may not be called: nothing was sent, and retrying will not change that."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class OutboundFailed(Exception):
    """The call was allowed but got no HTTP answer (connection refused, timeout, TLS error)."""

    def __init__(self, reason: str, address: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.address = address


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as the URL names it (IDNA-encoded): Host header, SNI, certificate
    port: int
    path: str  # path and query
    address: str  # the checked address the connection goes to


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    body: bytes  # at most MAX_RESPONSE_BYTES
    address: str


def address_forbidden(address: IPAddress) -> bool:
    """Whether an address is one a callback may not reach (rule 2)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or not address.is_global
    )


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise OutboundRefused("unresolvable_host", f"The host {host} does not resolve: {error}.") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OutboundRefused("unresolvable_host", f"The host {host} has no address.")
    return addresses


def checked_target(url: str, *, allow_private: bool | None = None) -> Target:
    """The URL's target after rules 1 and 2, or OutboundRefused saying why not."""
    allow = settings.OUTBOUND_ALLOW_PRIVATE if allow_private is None else allow_private
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise OutboundRefused("invalid_url", "The callback URL is not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        raise OutboundRefused("invalid_url", "The callback URL must be an absolute https URL.")
    if scheme != "https" and not allow:
        raise OutboundRefused("insecure_url", "Callbacks go only to https URLs; this one is http.")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused("invalid_url", "The callback URL must not carry a user name or password.")
    try:
        host = parts.hostname.encode("idna").decode("ascii") if not _is_literal(parts.hostname) else parts.hostname
    except UnicodeError:
        raise OutboundRefused("invalid_url", "The callback URL's host name is not valid.") from None
    port = port or (443 if scheme == "https" else 80)
    addresses = _resolve(host, port)
    if not allow:
        forbidden = [str(address) for address in addresses if address_forbidden(address)]
        if forbidden:
            raise OutboundRefused(
                "private_address",
                f"The callback host {host} resolves to {', '.join(forbidden)}, an address that is not public "
                "(loopback, private, link-local or reserved); callbacks may not reach it.",
            )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=scheme, host=host, port=port, path=path, address=str(addresses[0]))


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Plain HTTP to the checked address (only with OUTBOUND_ALLOW_PRIVATE)."""

    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), timeout=CONNECT_TIMEOUT_SECONDS)
        self.sock.settimeout(self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked address; SNI and the certificate check use the host name."""

    def __init__(self, target: Target, timeout: float):
        self._context = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self._context)
        self._address = target.address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), timeout=CONNECT_TIMEOUT_SECONDS)
        raw.settimeout(self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def post_json(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow_private: bool | None = None,
    timeout: float = READ_TIMEOUT_SECONDS,
    total_timeout: float = TOTAL_TIMEOUT_SECONDS,
) -> OutboundResponse:
    """POST `body` (JSON) to `url` through the guard; the answer, whatever its status.

    Raises OutboundRefused (nothing sent, do not retry) or OutboundFailed (no answer: retry).
    """
    target = checked_target(url, allow_private=allow_private)
    connection_class: Any = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(target, timeout)
    sent = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
    # Past the deadline the socket is shut down, which ends whatever read is waiting on it.
    watchdog = threading.Timer(total_timeout, _cut_off, args=(connection,))
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request("POST", target.path, body=body, headers=sent)
        response = connection.getresponse()
        data = response.read(MAX_RESPONSE_BYTES)
        return OutboundResponse(status=response.status, body=data, address=target.address)
    except (OSError, http.client.HTTPException) as error:
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        raise OutboundFailed(f"No answer from {target.host} ({target.address}): {reason}", target.address) from None
    finally:
        watchdog.cancel()
        connection.close()


def _cut_off(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)
