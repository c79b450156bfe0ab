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

`SignatureSerializer` declares the object and `validate_signature_config` runs it when a member
saves one (`workbench.errors.Invalid` with every problem); `verify_signature` runs on
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
import json
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Literal, NotRequired, TypedDict

from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from workbench.errors import Invalid
from workbench.shapes import FullMatch, Shape, Text, WholeNumber, says, validate_shape

__all__ = [
    "SIGNATURE_PRESETS",
    "SignatureConfig",
    "SignatureInvalid",
    "SignatureSerializer",
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

# RFC 9110 section 5.6.2: a header name is a token of these characters.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_TOKEN = re.compile(r"\[([A-Za-z_]+)\]")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_SECONDS = re.compile(r"[0-9]{1,20}")
# A value after a parsePrefix runs up to the next comma, semicolon or white space.
_VALUE_END = r"[^,;\s]*"


Algorithm = Literal["sha1", "sha256"]
Digest = Literal["hex", "base64"]
SecretEncoding = Literal["utf8", "base64", "hex"]


class SignatureLocation(TypedDict):
    header: str
    parsePrefix: NotRequired[str]


class SignatureData(TypedDict):
    signature: SignatureLocation
    timestamp: NotRequired[SignatureLocation]
    id: NotRequired[SignatureLocation]


class SignatureConfig(TypedDict):
    """A signature configuration as stored (`Trigger.config["security"]["signature"]`)."""

    secret: str
    secretEncoding: SecretEncoding
    secretPrefix: NotRequired[str]
    algorithm: Algorithm
    digest: Digest
    data: SignatureData
    template: str
    toleranceSeconds: NotRequired[int]


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


# --- the declared shape, and its rules (on save) ------------------------------------------------


def _printable(message: str, *, max_length: int, **kwargs: Any) -> Text:
    return _PrintableText(
        max_length=max_length,
        validators=[FullMatch(r"^[^\x00-\x1f\x7f-\x9f]+\Z", message)],
        error_messages=says(message),
        **kwargs,
    )


NOT_PRINTABLE = "Use printable characters only (no format, private-use or unassigned ones)."


class _PrintableText(Text):
    """Text with no control characters (the declared pattern) and only printable ones (a rule
    of Unicode's categories that the schema's pattern dialect cannot state)."""

    def to_internal_value(self, data: object) -> str:
        text = super().to_internal_value(data)
        if not text.isprintable():
            raise serializers.ValidationError(NOT_PRINTABLE)
        return text


HEADER_MESSAGE = "Expected a header name (letters, digits and - _ . ! # $ % & ' * + ^ ` | ~)."
LOCATION_MESSAGE = 'Expected {"header": ..., "parsePrefix"?: ...}.'


class SignatureLocationSerializer(Shape):
    """Where a value is read from: a header, and optionally the prefix each value follows."""

    not_an_object = LOCATION_MESSAGE
    unknown_field = "Unknown key."

    header = Text(
        max_length=MAX_HEADER_NAME_LENGTH,
        validators=[FullMatch(_HEADER_NAME.pattern, HEADER_MESSAGE)],
        error_messages=says(HEADER_MESSAGE),
        help_text="Matched case-insensitively.",
    )
    parsePrefix = _printable(
        f"Expected a non-empty text of at most {MAX_PREFIX_LENGTH} characters.",
        max_length=MAX_PREFIX_LENGTH,
        required=False,
        help_text="The value is every run of characters after it, up to a comma, semicolon or white space.",
    )


DATA_MESSAGE = 'Required: an object with at least {"signature": {"header": ...}}.'


class SignatureDataSerializer(Shape):
    not_an_object = DATA_MESSAGE
    unknown_field = "Unknown key."

    signature = SignatureLocationSerializer(error_messages=says('Required: {"header": ..., "parsePrefix"?: ...}.'))
    timestamp = SignatureLocationSerializer(required=False)
    id = SignatureLocationSerializer(required=False)


def _choice(choices: tuple[str, ...], **kwargs: Any) -> serializers.ChoiceField:
    messages = says(f"Expected one of {', '.join(choices)}.")
    messages["required"] = f"Required: one of {', '.join(choices)}."
    return serializers.ChoiceField(choices=list(choices), error_messages=messages, **kwargs)


SECRET_MESSAGE = "Required: the signing secret the sender gave you."
TEMPLATE_MESSAGE = "Required: the signed text, e.g. [payload] or [timestamp].[payload]."


class SignatureSerializer(Shape):
    """SPEC section 4: how a sender signs its requests (answers show the secret masked).

    The shape is declared; the rules across keys are `validate_secret` (the secret decodes
    per `secretEncoding` after `secretPrefix`), `validate_template` (each token has a
    location and each location a token) and `validate` (the tolerance's default).
    """

    not_an_object = "Expected an object."
    unknown_field = "Unknown key."

    secret = Text(
        max_length=MAX_SECRET_LENGTH,
        error_messages={**says(SECRET_MESSAGE), "max_length": f"Too long: at most {MAX_SECRET_LENGTH} characters."},
    )
    algorithm = _choice(tuple(ALGORITHMS))
    digest = _choice(DIGESTS)
    data = SignatureDataSerializer(error_messages=says(DATA_MESSAGE))  # type: ignore[assignment]  # a payload field
    template = Text(
        max_length=MAX_TEMPLATE_LENGTH,
        error_messages={**says(TEMPLATE_MESSAGE), "max_length": f"Too long: at most {MAX_TEMPLATE_LENGTH} characters."},
        help_text="The signed text: [payload], [timestamp] and [id] tokens, e.g. [timestamp].[payload].",
    )
    toleranceSeconds = WholeNumber(
        required=False,
        min_value=1,
        max_value=MAX_TOLERANCE_SECONDS,
        error_messages=says(f"Expected a whole number of seconds from 1 to {MAX_TOLERANCE_SECONDS}."),
        help_text=f"Default {DEFAULT_TOLERANCE_SECONDS} when a timestamp is read.",
    )
    secretEncoding = _choice(SECRET_ENCODINGS, required=False, default="utf8")
    secretPrefix = _printable(
        f"Expected a short text of at most {MAX_PREFIX_LENGTH} characters.",
        max_length=MAX_PREFIX_LENGTH,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Stripped from the secret before decoding, e.g. whsec_.",
    )

    def validate_secret(self, secret: str) -> str:
        """The secret must yield a key; the message never quotes it (answers show it)."""
        encoding = self.raw.get("secretEncoding", "utf8")
        if encoding not in SECRET_ENCODINGS:
            encoding = "utf8"  # its own error says so
        prefix = self.raw.get("secretPrefix")
        if not isinstance(prefix, str) or len(prefix) > MAX_PREFIX_LENGTH or not prefix.isprintable():
            prefix = ""
        if _decode_secret(secret, prefix, encoding) is None:
            after = f" after removing the prefix {prefix!r}" if prefix else ""
            raise ValidationError(f"The secret{after} is not valid {_ENCODING_NAMES[encoding]}.")
        return secret

    def validate_template(self, template: str) -> str:
        data = self.raw.get("data")
        configured = {name for name in LOCATIONS if isinstance(data, Mapping) and name in data}
        problems = _template_problems(template, configured)
        if problems:
            raise ValidationError(problems)
        return template

    def validate(self, attrs: dict[str, Any]) -> SignatureConfig:
        """The clean configuration, defaults filled in, so the stored object says what is verified."""
        given = attrs["data"]
        data = SignatureData(signature=_location(given["signature"]))
        if "timestamp" in given:
            data["timestamp"] = _location(given["timestamp"])
        if "id" in given:
            data["id"] = _location(given["id"])
        clean = SignatureConfig(
            secret=attrs["secret"],
            secretEncoding=attrs["secretEncoding"],
            algorithm=attrs["algorithm"],
            digest=attrs["digest"],
            data=data,
            template=attrs["template"],
        )
        if attrs.get("secretPrefix"):
            clean["secretPrefix"] = attrs["secretPrefix"]
        if "toleranceSeconds" in attrs:
            clean["toleranceSeconds"] = attrs["toleranceSeconds"]
        elif "timestamp" in data:
            clean["toleranceSeconds"] = DEFAULT_TOLERANCE_SECONDS
        return clean


def _location(given: Mapping[str, str]) -> SignatureLocation:
    location = SignatureLocation(header=given["header"])
    if "parsePrefix" in given:
        location["parsePrefix"] = given["parsePrefix"]
    return location


def _template_problems(template: str, configured: set[str]) -> list[str]:
    """What is wrong with a template for these locations: each token needs one, each location a token."""
    problems: list[str] = []
    used = set()
    for name in _TOKEN.findall(template):
        if name not in TOKENS:
            problems.append(f"Unknown token [{name}]; the tokens are [timestamp], [id] and [payload].")
        used.add(name)
    if "payload" not in used:
        problems.append("The template must contain [payload]: the body is what the signature protects.")
    for name in ("timestamp", "id"):
        if name in used and name not in configured:
            problems.append(f"[{name}] is used but data.{name} says nowhere to read it from.")
        if name in configured and name not in used:
            # An unsigned timestamp could be replaced by anyone, so its tolerance would protect nothing.
            problems.append(f"data.{name} is configured but the template does not sign [{name}].")
    return problems


def validate_signature_config(config: object) -> SignatureConfig:
    """The clean configuration, or `Invalid` with every problem found, at once.

    Locations are relative to the signature object ("secret", "data.timestamp.header");
    "config" is the object itself. Defaults are filled in (`secretEncoding` utf8,
    `toleranceSeconds` 300 when a timestamp is read).
    """
    clean: SignatureConfig = validate_shape(SignatureSerializer(), config, root="config")
    return clean


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


@lru_cache(maxsize=1024)
def _stored_config(text: str) -> SignatureConfig | None:
    """A stored configuration, validated once per process and content (every request reads it)."""
    try:
        return validate_signature_config(json.loads(text))
    except Invalid:
        return None


# --- verification (per request) -----------------------------------------------------------------


def verify_signature(config: Mapping[str, Any], headers: Mapping[str, str], body: bytes, now: float) -> None:
    """Return when the request carries a valid signature; raise `SignatureInvalid` otherwise.

    1. Re-validate the configuration (a stored one that no longer validates refuses every
       request instead of failing open or raising).
    2. Read the candidate signatures, then the timestamp (checked against `now` within the
       tolerance) and the id.
    3. Build the signed bytes from the template, HMAC them once, and compare the digest in
       constant time with every candidate: any one match passes (secret rotation).
    """
    try:
        clean = _stored_config(json.dumps(config, sort_keys=True))
    except (TypeError, ValueError):  # not JSON at all
        clean = None
    if clean is None:
        raise SignatureInvalid("The trigger's signature configuration is not valid.")
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


def _values(lowered: dict[str, str], location: SignatureLocation, what: str) -> list[str]:
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


def _candidates(lowered: dict[str, str], location: SignatureLocation) -> list[str]:
    candidates = _values(lowered, location, "signature")
    if len(candidates) > MAX_CANDIDATES:
        raise SignatureInvalid(f"Too many signatures in the {location['header']} header (at most {MAX_CANDIDATES}).")
    return candidates


def _single_value(lowered: dict[str, str], location: SignatureLocation, what: str) -> str:
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
