"""HMAC signatures on webhook requests (SPEC section 4, "Signature").

A member describes how a sender signs its requests with a small JSON object instead of us
writing one verifier per sender, so any HMAC-over-the-raw-body scheme (Stripe, GitHub, Shopify,
Slack, Standard Webhooks, home-grown ones) is a configuration, not code:

```json
{
  "secret": "...", "algorithm": "sha256", "digest": "hex",
  "data": {"signature": {"header": "Stripe-Signature", "parsePrefix": "v1="},
           "timestamp": {"header": "Stripe-Signature", "parsePrefix": "t="}},
  "template": "[timestamp].[payload]", "toleranceSeconds": 300
}
```

`validate_signature_config` runs when a member saves the object; `verify_signature` runs on
every request and raises `SignatureInvalid` (the view answers `401 signature_invalid`), never
anything else, whatever the request holds. Neither ever puts the secret or the expected digest
in a message: reasons and errors end up in API answers and the request log.

Decisions beyond the SPEC text, and why:

- Timestamps are whole seconds, as Stripe, Slack and Standard Webhooks send them. A value that
  looks like milliseconds is refused with a reason saying so rather than guessed at: guessing
  the unit would let one header mean two different instants.
- A header that yields more than one timestamp (or id) is refused: the value checked against
  the tolerance must be the one that was signed, and with two there is no telling which.
- Every configured location must be used by the template, and every token must have one: a
  timestamp that is read but not signed would make the replay window a decoration.
- Unknown `[tokens]` in a template (`[timestmap]`) are refused, since they would otherwise be
  signed as literal text and silently fail every request.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "SIGNATURE_PRESETS",
    "InvalidSignatureConfig",
    "SignatureInvalid",
    "preset_config",
    "validate_signature_config",
    "verify_signature",
]

ALGORITHMS: dict[str, Callable[[], Any]] = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}
DIGESTS = ("hex", "base64")
SECRET_ENCODINGS = ("utf8", "base64", "hex")
DEFAULT_TOLERANCE_SECONDS = 300
MAX_TOLERANCE_SECONDS = 86_400
MAX_SECRET_LENGTH = 4096
MAX_TEMPLATE_LENGTH = 500
MAX_PREFIX_LENGTH = 64
MAX_HEADER_NAME_LENGTH = 256
# A sender rotating secrets sends two or three signatures; hundreds are an attack on our CPU.
MAX_CANDIDATES = 32
# Seconds since 1970 stay below 10**11 until the year 5138; milliseconds passed it in 1973.
MILLISECONDS_THRESHOLD = 10**11

TOKENS = ("timestamp", "id", "payload")
LOCATIONS = ("signature", "timestamp", "id")
CONFIG_KEYS = frozenset(
    {"secret", "algorithm", "digest", "data", "template", "toleranceSeconds", "secretEncoding", "secretPrefix"}
)
LOCATION_KEYS = frozenset({"header", "parsePrefix"})

# RFC 9110 section 5.6.2: a header name is a token of these characters.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN = re.compile(r"\[([A-Za-z_]+)\]")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_SECONDS = re.compile(r"[0-9]{1,20}")
# A value after a parsePrefix runs up to the next comma, semicolon or white space.
_VALUE_END = r"[^,;\s]*"


class InvalidSignatureConfig(Exception):
    """The configuration cannot be saved; `errors` maps a location ("data.signature.header") to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("The signature configuration is not valid: " + "; ".join(sorted(errors)))


class SignatureInvalid(Exception):
    """The request is not signed as configured; `reason` is safe to show to the sender and log."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# --- presets ------------------------------------------------------------------------------------

SIGNATURE_PRESETS: dict[str, dict[str, Any]] = {
    "stripe": {
        "label": "Stripe",
        "description": "Stripe-Signature header: t=<timestamp>,v1=<hex HMAC-SHA256 of 'timestamp.body'>.",
        "config": {
            "secret": "",
            "algorithm": "sha256",
            "digest": "hex",
            "data": {
                "signature": {"header": "Stripe-Signature", "parsePrefix": "v1="},
                "timestamp": {"header": "Stripe-Signature", "parsePrefix": "t="},
            },
            "template": "[timestamp].[payload]",
            "toleranceSeconds": DEFAULT_TOLERANCE_SECONDS,
        },
    },
    "github": {
        "label": "GitHub",
        "description": "X-Hub-Signature-256 header: sha256=<hex HMAC-SHA256 of the body>.",
        "config": {
            "secret": "",
            "algorithm": "sha256",
            "digest": "hex",
            "data": {"signature": {"header": "X-Hub-Signature-256", "parsePrefix": "sha256="}},
            "template": "[payload]",
        },
    },
    "shopify": {
        "label": "Shopify",
        "description": "X-Shopify-Hmac-Sha256 header: base64 HMAC-SHA256 of the body.",
        "config": {
            "secret": "",
            "algorithm": "sha256",
            "digest": "base64",
            "data": {"signature": {"header": "X-Shopify-Hmac-Sha256"}},
            "template": "[payload]",
        },
    },
    "slack": {
        "label": "Slack",
        "description": (
            "X-Slack-Signature header: v0=<hex HMAC-SHA256 of 'v0:timestamp:body'>, "
            "with the timestamp in X-Slack-Request-Timestamp."
        ),
        "config": {
            "secret": "",
            "algorithm": "sha256",
            "digest": "hex",
            "data": {
                "signature": {"header": "X-Slack-Signature", "parsePrefix": "v0="},
                "timestamp": {"header": "X-Slack-Request-Timestamp"},
            },
            "template": "v0:[timestamp]:[payload]",
            "toleranceSeconds": DEFAULT_TOLERANCE_SECONDS,
        },
    },
    "standard-webhooks": {
        "label": "Standard Webhooks",
        "description": (
            "webhook-id, webhook-timestamp and webhook-signature headers (Svix, Resend, Clerk and others): "
            "v1,<base64 HMAC-SHA256 of 'id.timestamp.body'> with a whsec_ base64 secret."
        ),
        "config": {
            "secret": "",
            "secretPrefix": "whsec_",
            "secretEncoding": "base64",
            "algorithm": "sha256",
            "digest": "base64",
            "data": {
                "signature": {"header": "webhook-signature", "parsePrefix": "v1,"},
                "timestamp": {"header": "webhook-timestamp"},
                "id": {"header": "webhook-id"},
            },
            "template": "[id].[timestamp].[payload]",
            "toleranceSeconds": DEFAULT_TOLERANCE_SECONDS,
        },
    },
}


# --- validation (on save) -----------------------------------------------------------------------


def validate_signature_config(config: Any) -> dict[str, Any]:
    """The clean configuration, or `InvalidSignatureConfig` with every problem found.

    Everything is checked at once so a member fixes the form in one pass. Locations are
    relative to the signature object ("secret", "data.timestamp.header"); "config" is the
    object itself. Defaults are filled in (`secretEncoding` utf8, `toleranceSeconds` 300 when
    a timestamp is read), so the stored object says exactly what is verified.
    """
    errors: dict[str, list[str]] = {}
    if not isinstance(config, dict):
        raise InvalidSignatureConfig({"config": ["Expected an object."]})
    for key in sorted(set(config) - CONFIG_KEYS, key=str):
        _add(errors, str(key), "Unknown key.")
    encoding = _enum(config, "secretEncoding", SECRET_ENCODINGS, errors, default="utf8")
    prefix = _secret_prefix(config, errors)
    clean: dict[str, Any] = {"secret": _secret(config, prefix, encoding, errors), "secretEncoding": encoding}
    if prefix:
        clean["secretPrefix"] = prefix
    clean["algorithm"] = _enum(config, "algorithm", tuple(ALGORITHMS), errors, default=None)
    clean["digest"] = _enum(config, "digest", DIGESTS, errors, default=None)
    clean["data"] = _data(config.get("data"), errors)
    data = config.get("data")
    configured = {name for name in LOCATIONS if isinstance(data, dict) and name in data}
    clean["template"] = _template(config.get("template"), configured, errors)
    tolerance = _tolerance(config, errors)
    if tolerance is not None:
        clean["toleranceSeconds"] = tolerance
    elif "timestamp" in clean["data"]:
        clean["toleranceSeconds"] = DEFAULT_TOLERANCE_SECONDS
    if errors:
        raise InvalidSignatureConfig(errors)
    return clean


def _add(errors: dict[str, list[str]], location: str, message: str) -> None:
    errors.setdefault(location, []).append(message)


def _enum(
    config: dict[str, Any], key: str, choices: tuple[str, ...], errors: dict[str, list[str]], default: Any
) -> Any:
    if key not in config:
        if default is None:
            _add(errors, key, f"Required: one of {', '.join(choices)}.")
        return default
    value = config[key]
    if not isinstance(value, str) or value not in choices:
        _add(errors, key, f"Expected one of {', '.join(choices)}.")
        return default
    return value


def _secret_prefix(config: dict[str, Any], errors: dict[str, list[str]]) -> str:
    prefix = config.get("secretPrefix")
    if prefix is None or prefix == "":
        return ""
    if not isinstance(prefix, str) or len(prefix) > MAX_PREFIX_LENGTH or not prefix.isprintable():
        _add(errors, "secretPrefix", f"Expected a short text of at most {MAX_PREFIX_LENGTH} characters.")
        return ""
    return prefix


def _secret(config: dict[str, Any], prefix: str, encoding: str | None, errors: dict[str, list[str]]) -> str:
    """The secret as the member gave it (prefix included), once we know it yields a key.

    The messages never quote the secret: they are shown back in API answers.
    """
    secret = config.get("secret")
    if not isinstance(secret, str) or not secret.strip():
        _add(errors, "secret", "Required: the signing secret the sender gave you.")
        return ""
    if len(secret) > MAX_SECRET_LENGTH:
        _add(errors, "secret", f"Too long: at most {MAX_SECRET_LENGTH} characters.")
        return ""
    if encoding is not None and _decode_secret(secret, prefix, encoding) is None:
        after = f" after removing the prefix {prefix!r}" if prefix else ""
        _add(errors, "secret", f"The secret{after} is not valid {_ENCODING_NAMES[encoding]}.")
    return secret


_ENCODING_NAMES = {"utf8": "text", "base64": "base64", "hex": "hexadecimal"}


def _decode_secret(secret: str, prefix: str, encoding: str) -> bytes | None:
    """The HMAC key: the secret without its prefix, decoded; None when it yields no key."""
    if prefix and secret.startswith(prefix):
        secret = secret[len(prefix) :]
    if encoding == "utf8":
        key = secret.encode("utf-8", errors="surrogatepass")
    elif encoding == "hex":
        key = bytes.fromhex(secret) if _HEX.fullmatch(secret) else b""
    else:
        key = _b64decode(secret) or b""
    return key or None


def _b64decode(text: str) -> bytes | None:
    """Standard base64, strictly (no stray characters); missing padding is forgiven."""
    text = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def _data(data: Any, errors: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    if not isinstance(data, dict):
        _add(errors, "data", 'Required: an object with at least {"signature": {"header": ...}}.')
        return {}
    for key in sorted(set(data) - set(LOCATIONS), key=str):
        _add(errors, f"data.{key}", "Unknown key.")
    if "signature" not in data:
        _add(errors, "data.signature", 'Required: {"header": ..., "parsePrefix"?: ...}.')
    clean: dict[str, dict[str, str]] = {}
    for name in LOCATIONS:
        if name in data:
            location = _location(data[name], f"data.{name}", errors)
            if location is not None:
                clean[name] = location
    return clean


def _location(value: Any, where: str, errors: dict[str, list[str]]) -> dict[str, str] | None:
    if not isinstance(value, dict):
        _add(errors, where, 'Expected {"header": ..., "parsePrefix"?: ...}.')
        return None
    for key in sorted(set(value) - LOCATION_KEYS, key=str):
        _add(errors, f"{where}.{key}", "Unknown key.")
    header = value.get("header")
    if not isinstance(header, str) or not _HEADER_NAME.fullmatch(header) or len(header) > MAX_HEADER_NAME_LENGTH:
        _add(errors, f"{where}.header", "Expected a header name (letters, digits and - _ . ! # $ % & ' * + ^ ` | ~).")
        header = None
    ok = header is not None
    clean = {"header": str(header)}
    if "parsePrefix" in value:
        prefix = value["parsePrefix"]
        if not isinstance(prefix, str) or not prefix or len(prefix) > MAX_PREFIX_LENGTH or not prefix.isprintable():
            _add(
                errors, f"{where}.parsePrefix", f"Expected a non-empty text of at most {MAX_PREFIX_LENGTH} characters."
            )
            ok = False
        else:
            clean["parsePrefix"] = prefix
    return clean if ok else None


def _template(template: Any, configured: set[str], errors: dict[str, list[str]]) -> str:
    """The template, checked against the locations: each token needs one, each location a token."""
    if not isinstance(template, str) or not template:
        _add(errors, "template", "Required: the signed text, e.g. [payload] or [timestamp].[payload].")
        return ""
    if len(template) > MAX_TEMPLATE_LENGTH:
        _add(errors, "template", f"Too long: at most {MAX_TEMPLATE_LENGTH} characters.")
        return template
    used = set()
    for name in _TOKEN.findall(template):
        if name not in TOKENS:
            _add(errors, "template", f"Unknown token [{name}]; the tokens are [timestamp], [id] and [payload].")
        used.add(name)
    if "payload" not in used:
        _add(errors, "template", "The template must contain [payload]: the body is what the signature protects.")
    for name in ("timestamp", "id"):
        if name in used and name not in configured:
            _add(errors, "template", f"[{name}] is used but data.{name} says nowhere to read it from.")
        if name in configured and name not in used:
            # An unsigned timestamp could be replaced by anyone, so its tolerance would protect nothing.
            _add(errors, "template", f"data.{name} is configured but the template does not sign [{name}].")
    return template


def _tolerance(config: dict[str, Any], errors: dict[str, list[str]]) -> int | None:
    if "toleranceSeconds" not in config:
        return None
    value = config["toleranceSeconds"]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOLERANCE_SECONDS:
        _add(errors, "toleranceSeconds", f"Expected a whole number of seconds from 1 to {MAX_TOLERANCE_SECONDS}.")
        return None
    return value


# --- verification (per request) -----------------------------------------------------------------


def verify_signature(config: dict[str, Any], headers: Mapping[str, str], body: bytes, now: float) -> None:
    """Return when the request carries a valid signature; raise `SignatureInvalid` otherwise.

    1. Re-validate the configuration (a stored one that no longer validates refuses every
       request instead of failing open or raising).
    2. Read the candidate signatures, then the timestamp (checked against `now` within the
       tolerance) and the id.
    3. Build the signed bytes from the template, HMAC them once, and compare the digest in
       constant time with every candidate: any one match passes (secret rotation).
    """
    try:
        clean = validate_signature_config(config)
    except InvalidSignatureConfig:
        raise SignatureInvalid("The trigger's signature configuration is not valid.") from None
    key = _decode_secret(clean["secret"], clean.get("secretPrefix", ""), clean["secretEncoding"])
    if key is None:  # pragma: no cover - validation refuses such a secret
        raise SignatureInvalid("The trigger's signature configuration is not valid.")
    lowered = _lowercase_headers(headers)
    data = clean["data"]
    candidates = _candidates(lowered, data["signature"])
    values: dict[str, bytes] = {"payload": bytes(body)}
    if "timestamp" in data:
        timestamp = _single_value(lowered, data["timestamp"], "timestamp")
        _check_timestamp(timestamp, now, clean["toleranceSeconds"])
        values["timestamp"] = timestamp.encode("ascii")
    if "id" in data:
        values["id"] = _header_bytes(_single_value(lowered, data["id"], "id"))
    signed = _signed_bytes(clean["template"], values)
    expected = hmac.new(key, signed, ALGORITHMS[clean["algorithm"]]).digest()
    if not _any_matches(expected, candidates, clean["digest"]):
        raise SignatureInvalid("The signature does not match.")


def _lowercase_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names are case-insensitive (RFC 9110); anything that is not text is ignored."""
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        if isinstance(name, str) and isinstance(value, str):
            lowered.setdefault(name.lower(), value)
    return lowered


def _values(lowered: dict[str, str], location: dict[str, str], what: str) -> list[str]:
    """Every value the location yields: runs after each prefix occurrence, or the trimmed header."""
    header = location["header"]
    raw = lowered.get(header.lower())
    if raw is None:
        raise SignatureInvalid(f"The {header} header is missing.")
    prefix = location.get("parsePrefix")
    found = [raw.strip()] if prefix is None else re.findall(re.escape(prefix) + "(" + _VALUE_END + ")", raw)
    values = [value for value in found if value]
    if not values:
        shown = f" after {prefix!r}" if prefix else ""
        raise SignatureInvalid(f"No {what} found{shown} in the {header} header.")
    return values


def _candidates(lowered: dict[str, str], location: dict[str, str]) -> list[str]:
    candidates = _values(lowered, location, "signature")
    if len(candidates) > MAX_CANDIDATES:
        raise SignatureInvalid(f"Too many signatures in the {location['header']} header (at most {MAX_CANDIDATES}).")
    return candidates


def _single_value(lowered: dict[str, str], location: dict[str, str], what: str) -> str:
    """The one value of a timestamp or id: with several, the signed one and the checked one could differ."""
    values = _values(lowered, location, what)
    if len(values) > 1:
        raise SignatureInvalid(f"More than one {what} in the {location['header']} header.")
    return values[0]


def _check_timestamp(timestamp: str, now: float, tolerance: int) -> None:
    if not _SECONDS.fullmatch(timestamp):
        raise SignatureInvalid("The timestamp is not a whole number of seconds.")
    seconds = int(timestamp)
    if seconds >= MILLISECONDS_THRESHOLD:
        raise SignatureInvalid("The timestamp looks like milliseconds; seconds since 1970 are expected.")
    if not abs(seconds - now) <= tolerance:  # written so that a NaN clock refuses too
        raise SignatureInvalid(f"The timestamp is more than {tolerance} seconds away from the current time.")


def _header_bytes(value: str) -> bytes:
    """The bytes the sender put on the wire: WSGI (PEP 3333) decodes header bytes as latin-1."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", errors="surrogatepass")


def _signed_bytes(template: str, values: dict[str, bytes]) -> bytes:
    """The template with its tokens replaced in one pass, so a body containing "[id]" stays as sent."""
    parts: list[bytes] = []
    position = 0
    for match in _TOKEN.finditer(template):
        parts.append(template[position : match.start()].encode("utf-8"))
        parts.append(values[match.group(1)])
        position = match.end()
    parts.append(template[position:].encode("utf-8"))
    return b"".join(parts)


def _any_matches(expected: bytes, candidates: list[str], digest: str) -> bool:
    """Constant-time comparison of bytes; a candidate that does not decode simply does not match."""
    matched = False
    for candidate in candidates:
        decoded = _decode_candidate(candidate, digest)
        # Compare every candidate, so the time taken does not tell which one matched.
        if decoded is not None and hmac.compare_digest(expected, decoded):
            matched = True
    return matched


def _decode_candidate(candidate: str, digest: str) -> bytes | None:
    if digest == "hex":
        return bytes.fromhex(candidate) if _HEX.fullmatch(candidate) else None
    return _b64decode(candidate)


def preset_config(name: str) -> dict[str, Any]:
    """A fresh copy of a preset's configuration template, safe to fill in and save."""
    return copy.deepcopy(SIGNATURE_PRESETS[name]["config"])
