"""Webhook signatures: the configuration a member saves and the check every request passes (SPEC section 4).

The GitHub, Slack and Standard Webhooks cases use the vectors those senders publish, so they
prove we sign what the sender signs, not merely that we agree with ourselves. Stripe and
Shopify publish no vector; their cases are computed here following their documented formats.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import string
from typing import Any

import pytest

from triggers.signatures import (
    SIGNATURE_PRESETS,
    SignatureInvalid,
    preset_config,
    validate_signature_config,
    verify_signature,
)
from workbench.errors import Invalid

NOW = 1_700_000_000
BODY = b'{"id": "evt_1", "type": "customer.updated", "data": {"name": "Zo\xc3\xab"}}'


def preset(name: str, secret: str) -> dict[str, Any]:
    config = preset_config(name)
    config["secret"] = secret
    return validate_signature_config(config)


def hex_hmac(key: bytes, message: bytes, algorithm: str = "sha256") -> str:
    return hmac.new(key, message, algorithm).hexdigest()


def b64_hmac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def refused(config: dict[str, Any], headers: dict[str, str], body: bytes, now: float = NOW) -> str:
    with pytest.raises(SignatureInvalid) as info:
        verify_signature(config, headers, body, now=now)
    return info.value.reason


# --- official vectors ---------------------------------------------------------------------------

# https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
# ("Testing the webhook payload validation"): secret "It's a Secret to Everybody",
# payload "Hello, World!", X-Hub-Signature-256 "sha256=757107ea...3e17".
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

# https://api.slack.com/authentication/verifying-requests-from-slack (now
# https://docs.slack.dev/authentication/verifying-requests-from-slack/), the worked example; the
# same values are the fixture of Slack's own SDK test, slackapi/python-slack-sdk
# tests/slack_sdk/signature/test_signature_verifier.py.
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TIMESTAMP = "1531420618"
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

# The Standard Webhooks reference vector: spec/standard-webhooks.md and test_sign_function in
# https://github.com/standard-webhooks/standard-webhooks/blob/main/libraries/python/tests/test_webhooks.py
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TIMESTAMP = "1614265330"
SW_BODY = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def slack_headers(signature: str = SLACK_SIGNATURE, timestamp: str = SLACK_TIMESTAMP) -> dict[str, str]:
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}


def sw_headers(signature: str = SW_SIGNATURE, timestamp: str = SW_TIMESTAMP, msg_id: str = SW_ID) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signature}


def test_githubs_published_vector_verifies() -> None:
    config = preset("github", GITHUB_SECRET)
    verify_signature(config, {"X-Hub-Signature-256": GITHUB_SIGNATURE}, GITHUB_BODY, now=NOW)


def test_githubs_vector_fails_with_a_tampered_body_or_another_secret() -> None:
    headers = {"X-Hub-Signature-256": GITHUB_SIGNATURE}
    assert refused(preset("github", GITHUB_SECRET), headers, b"Hello, World?") == "The signature does not match."
    assert refused(preset("github", "It's a secret to everybody"), headers, GITHUB_BODY)


def test_github_ignores_time_since_its_signature_has_no_timestamp() -> None:
    config = preset("github", GITHUB_SECRET)
    verify_signature(config, {"X-Hub-Signature-256": GITHUB_SIGNATURE}, GITHUB_BODY, now=0)
    assert "toleranceSeconds" not in config


def test_slacks_published_example_verifies_at_its_own_time() -> None:
    config = preset("slack", SLACK_SECRET)
    verify_signature(config, slack_headers(), SLACK_BODY, now=float(SLACK_TIMESTAMP))


def test_slacks_example_is_refused_as_a_replay_today() -> None:
    reason = refused(preset("slack", SLACK_SECRET), slack_headers(), SLACK_BODY, now=NOW)
    assert reason == "The timestamp is more than 300 seconds away from the current time."


def test_slacks_example_fails_when_the_signed_timestamp_is_changed() -> None:
    changed = str(int(SLACK_TIMESTAMP) + 1)
    reason = refused(preset("slack", SLACK_SECRET), slack_headers(timestamp=changed), SLACK_BODY, now=int(changed))
    assert reason == "The signature does not match."


def test_the_standard_webhooks_vector_verifies() -> None:
    config = preset("standard-webhooks", SW_SECRET)
    verify_signature(config, sw_headers(), SW_BODY, now=int(SW_TIMESTAMP))


def test_a_standard_webhooks_secret_works_without_its_prefix_too() -> None:
    config = preset("standard-webhooks", SW_SECRET.removeprefix("whsec_"))
    verify_signature(config, sw_headers(), SW_BODY, now=int(SW_TIMESTAMP))


def test_standard_webhooks_signs_the_id() -> None:
    config = preset("standard-webhooks", SW_SECRET)
    assert refused(config, sw_headers(msg_id="msg_other"), SW_BODY, now=int(SW_TIMESTAMP))


def test_standard_webhooks_rotation_passes_with_any_listed_signature() -> None:
    config = preset("standard-webhooks", SW_SECRET)
    header = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,abcd " + SW_SIGNATURE
    verify_signature(config, sw_headers(signature=header), SW_BODY, now=int(SW_TIMESTAMP))


def test_standard_webhooks_expressed_by_hand_matches_the_preset() -> None:
    config = validate_signature_config(
        {
            "secret": SW_SECRET,
            "secretPrefix": "whsec_",
            "secretEncoding": "base64",
            "algorithm": "sha256",
            "digest": "base64",
            "data": {
                "signature": {"header": "Webhook-Signature", "parsePrefix": "v1,"},
                "timestamp": {"header": "Webhook-Timestamp"},
                "id": {"header": "Webhook-Id"},
            },
            "template": "[id].[timestamp].[payload]",
        }
    )
    verify_signature(config, sw_headers(), SW_BODY, now=int(SW_TIMESTAMP))


# --- formats computed here (Stripe, Shopify) ----------------------------------------------------


def stripe_header(secret: str, body: bytes, timestamp: int = NOW, *extra: str) -> str:
    signature = hex_hmac(secret.encode(), f"{timestamp}.".encode() + body)
    return ",".join([f"t={timestamp}", *extra, f"v1={signature}"])


def test_a_stripe_signature_verifies() -> None:
    config = preset("stripe", "whsec_test_stripe")
    verify_signature(config, {"Stripe-Signature": stripe_header("whsec_test_stripe", BODY)}, BODY, now=NOW)


def test_stripes_v0_scheme_is_not_read_as_a_v1_signature() -> None:
    config = preset("stripe", "whsec_test_stripe")
    v0 = hex_hmac(b"whsec_test_stripe", f"{NOW}.".encode() + BODY)
    assert refused(config, {"Stripe-Signature": f"t={NOW},v0={v0}"}, BODY) == (
        "No signature found after 'v1=' in the Stripe-Signature header."
    )


def test_rotation_passes_when_only_the_second_v1_signature_is_valid() -> None:
    config = preset("stripe", "new-secret")
    stale = "v1=" + hex_hmac(b"old-secret", f"{NOW}.".encode() + BODY)
    header = stripe_header("new-secret", BODY, NOW, stale)
    assert header.index(stale) < header.rindex("v1=")
    verify_signature(config, {"Stripe-Signature": header}, BODY, now=NOW)


def test_rotation_fails_when_no_listed_signature_is_valid() -> None:
    config = preset("stripe", "new-secret")
    header = stripe_header("old-secret", BODY, NOW, "v1=" + "ab" * 32)
    assert refused(config, {"Stripe-Signature": header}, BODY) == "The signature does not match."


def test_a_shopify_signature_verifies() -> None:
    config = preset("shopify", "shpss_secret")
    verify_signature(config, {"X-Shopify-Hmac-Sha256": b64_hmac(b"shpss_secret", BODY)}, BODY, now=NOW)


def test_a_shopify_signature_with_surrounding_spaces_is_trimmed() -> None:
    config = preset("shopify", "shpss_secret")
    verify_signature(config, {"X-Shopify-Hmac-Sha256": f"  {b64_hmac(b'shpss_secret', BODY)} "}, BODY, now=NOW)


def test_a_hex_signature_may_be_upper_case() -> None:
    config = preset("github", GITHUB_SECRET)
    upper = "sha256=" + GITHUB_SIGNATURE.removeprefix("sha256=").upper()
    verify_signature(config, {"X-Hub-Signature-256": upper}, GITHUB_BODY, now=NOW)


def test_sha1_is_supported_for_legacy_senders() -> None:
    config = validate_signature_config(
        {
            "secret": GITHUB_SECRET,
            "algorithm": "sha1",
            "digest": "hex",
            "data": {"signature": {"header": "X-Hub-Signature", "parsePrefix": "sha1="}},
            "template": "[payload]",
        }
    )
    signature = "sha1=" + hex_hmac(GITHUB_SECRET.encode(), GITHUB_BODY, "sha1")
    verify_signature(config, {"X-Hub-Signature": signature}, GITHUB_BODY, now=NOW)
    sha256_instead = "sha1=" + hex_hmac(GITHUB_SECRET.encode(), GITHUB_BODY)
    assert refused(config, {"X-Hub-Signature": sha256_instead}, GITHUB_BODY)


def test_hex_and_base64_secrets_are_decoded_before_use() -> None:
    key = bytes(range(32))
    message = b"[payload]"  # the body happens to look like a token: it is signed as sent
    base = {
        "algorithm": "sha256",
        "digest": "hex",
        "data": {"signature": {"header": "X-Sig"}},
        "template": "[payload]",
    }
    for encoding, secret in (("hex", key.hex()), ("base64", base64.b64encode(key).decode())):
        config = validate_signature_config({**base, "secret": secret, "secretEncoding": encoding})
        verify_signature(config, {"X-Sig": hex_hmac(key, message)}, message, now=NOW)


# --- the template -------------------------------------------------------------------------------


def custom(template: str, **data: dict[str, str]) -> dict[str, Any]:
    return validate_signature_config(
        {
            "secret": "s3cret",
            "algorithm": "sha256",
            "digest": "hex",
            "data": {"signature": {"header": "X-Sig", "parsePrefix": "v1="}, **data},
            "template": template,
        }
    )


def test_literal_text_around_the_tokens_is_signed() -> None:
    config = custom("v0:[timestamp]:[payload]!", timestamp={"header": "X-Time"})
    good = hex_hmac(b"s3cret", f"v0:{NOW}:".encode() + BODY + b"!")
    verify_signature(config, {"X-Sig": f"v1={good}", "X-Time": str(NOW)}, BODY, now=NOW)
    without_literal = hex_hmac(b"s3cret", f"{NOW}:".encode() + BODY)
    assert refused(config, {"X-Sig": f"v1={without_literal}", "X-Time": str(NOW)}, BODY)


def test_the_raw_body_bytes_are_signed_even_when_they_contain_tokens_or_are_not_utf8() -> None:
    config = custom("[id]|[payload]", id={"header": "X-Id"})
    body = b"\xff\xfe[id][timestamp][payload]\x00"
    good = hex_hmac(b"s3cret", b"abc|" + body)
    verify_signature(config, {"X-Sig": f"v1={good}", "X-Id": "abc"}, body, now=NOW)


def test_the_raw_timestamp_is_signed_as_sent() -> None:
    config = custom("[timestamp].[payload]", timestamp={"header": "X-Sig", "parsePrefix": "t="})
    padded = f"0{NOW}"
    good = hex_hmac(b"s3cret", f"{padded}.".encode() + BODY)
    verify_signature(config, {"X-Sig": f"t={padded};v1={good}"}, BODY, now=NOW)


# --- time ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_a_timestamp_within_the_tolerance_passes(offset: int) -> None:
    config = preset("stripe", "k")
    verify_signature(config, {"Stripe-Signature": stripe_header("k", BODY, NOW + offset)}, BODY, now=NOW)


@pytest.mark.parametrize("offset", [-301, 301, -86_400, 86_400])
def test_a_timestamp_outside_the_tolerance_is_refused_in_either_direction(offset: int) -> None:
    config = preset("stripe", "k")
    reason = refused(config, {"Stripe-Signature": stripe_header("k", BODY, NOW + offset)}, BODY)
    assert reason == "The timestamp is more than 300 seconds away from the current time."


def test_the_tolerance_is_configurable_and_a_fractional_now_is_fine() -> None:
    config = preset_config("stripe")
    config.update(secret="k", toleranceSeconds=10)
    config = validate_signature_config(config)
    verify_signature(config, {"Stripe-Signature": stripe_header("k", BODY, NOW - 10)}, BODY, now=NOW + 0.0)
    assert refused(config, {"Stripe-Signature": stripe_header("k", BODY, NOW - 10)}, BODY, now=NOW + 0.5)


def test_a_clock_that_is_not_a_number_refuses_rather_than_passes() -> None:
    config = preset("stripe", "k")
    reason = refused(config, {"Stripe-Signature": stripe_header("k", BODY, NOW)}, BODY, now=float("nan"))
    assert reason.startswith("The timestamp is more than")


def test_a_millisecond_timestamp_is_refused_with_a_reason_that_says_so() -> None:
    config = preset("stripe", "k")
    millis = NOW * 1000
    reason = refused(config, {"Stripe-Signature": stripe_header("k", BODY, millis)}, BODY, now=NOW)
    assert reason == "The timestamp looks like milliseconds; seconds since 1970 are expected."


@pytest.mark.parametrize(
    "timestamp", ["1700000000.5", "-1700000000", "1.7e9", "+1700000000", "\u0661\u0667" + "\u0660" * 8, "0x6553F100"]
)
def test_a_timestamp_that_is_not_whole_seconds_is_refused(timestamp: str) -> None:
    config = preset("slack", SLACK_SECRET)
    reason = refused(config, slack_headers(timestamp=timestamp), SLACK_BODY)
    assert reason == "The timestamp is not a whole number of seconds."


def test_two_different_timestamps_are_refused_rather_than_guessed() -> None:
    config = preset("stripe", "k")
    stale = stripe_header("k", BODY, NOW - 3600)  # a captured old request ...
    header = f"t={NOW},{stale}"  # ... with a fresh timestamp put in front
    assert (
        refused(config, {"Stripe-Signature": header}, BODY) == "More than one timestamp in the Stripe-Signature header."
    )


def test_a_missing_timestamp_header_is_refused() -> None:
    config = preset("slack", SLACK_SECRET)
    reason = refused(config, {"X-Slack-Signature": SLACK_SIGNATURE}, SLACK_BODY)
    assert reason == "The X-Slack-Request-Timestamp header is missing."


def test_a_blank_timestamp_header_is_refused() -> None:
    config = preset("slack", SLACK_SECRET)
    reason = refused(config, slack_headers(timestamp="  "), SLACK_BODY)
    assert reason == "No timestamp found in the X-Slack-Request-Timestamp header."


def test_a_missing_id_header_is_refused() -> None:
    config = preset("standard-webhooks", SW_SECRET)
    headers = sw_headers()
    del headers["webhook-id"]
    assert refused(config, headers, SW_BODY, now=int(SW_TIMESTAMP)) == "The webhook-id header is missing."


# --- headers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["x-hub-signature-256", "X-HUB-SIGNATURE-256", "x-Hub-Signature-256"])
def test_header_names_match_in_any_case(name: str) -> None:
    verify_signature(preset("github", GITHUB_SECRET), {name: GITHUB_SIGNATURE}, GITHUB_BODY, now=NOW)


def test_configured_header_names_match_in_any_case() -> None:
    config = preset_config("github")
    config["secret"] = GITHUB_SECRET
    config["data"]["signature"]["header"] = "x-HUB-signature-256"
    config = validate_signature_config(config)
    verify_signature(config, {"X-Hub-Signature-256": GITHUB_SIGNATURE}, GITHUB_BODY, now=NOW)


def test_a_missing_signature_header_is_refused() -> None:
    reason = refused(preset("github", GITHUB_SECRET), {"X-Other": GITHUB_SIGNATURE}, GITHUB_BODY)
    assert reason == "The X-Hub-Signature-256 header is missing."


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "No signature found after 'sha256='"),
        ("sha256=", "No signature found after 'sha256='"),
        ("", "No signature found after 'sha256='"),
        ("sha256=zz07ea", "The signature does not match."),
        ("sha256=757107e", "The signature does not match."),  # odd length: not hex
        ("sha256=757107ea 0eb2509f", "The signature does not match."),
        ("sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "No signature found"),
    ],
)
def test_a_malformed_signature_header_is_refused(value: str, reason: str) -> None:
    assert refused(preset("github", GITHUB_SECRET), {"X-Hub-Signature-256": value}, GITHUB_BODY).startswith(reason)


@pytest.mark.parametrize("value", ["", "   ", "!!!not-base64!!!", "aGVsbG8=", "=" * 8, "é"])
def test_garbage_base64_simply_does_not_match(value: str) -> None:
    config = preset("shopify", "shpss_secret")
    assert refused(config, {"X-Shopify-Hmac-Sha256": value}, BODY)


def test_a_prefix_without_a_value_does_not_hide_a_later_signature() -> None:
    config = preset("stripe", "k")
    header = f"v1=,v1=;{stripe_header('k', BODY)}"
    verify_signature(config, {"Stripe-Signature": header}, BODY, now=NOW)


def test_values_end_at_a_comma_a_semicolon_or_white_space() -> None:
    config = preset("stripe", "k")
    good = hex_hmac(b"k", f"{NOW}.".encode() + BODY)
    for separator in (",", ";", " ", "\t"):
        verify_signature(config, {"Stripe-Signature": f"t={NOW}{separator}v1={good}{separator}x"}, BODY, now=NOW)


def test_too_many_signatures_are_refused() -> None:
    config = preset("stripe", "k")
    header = stripe_header("k", BODY, NOW, *["v1=00"] * 40)
    assert refused(config, {"Stripe-Signature": header}, BODY).startswith("Too many signatures")


def test_reasons_never_reveal_the_secret_or_the_expected_digest() -> None:
    secret = "super-secret-value"
    config = preset("stripe", secret)
    expected = hex_hmac(secret.encode(), f"{NOW}.".encode() + BODY)
    cases = [
        {"Stripe-Signature": f"t={NOW},v1={'0' * 64}"},
        {"Stripe-Signature": f"t={NOW + 999},v1={expected}"},
        {"Stripe-Signature": f"t={NOW}"},
        {},
    ]
    for headers in cases:
        reason = refused(config, headers, BODY + b"x")
        assert secret not in reason
        assert expected not in reason


def test_a_broken_stored_configuration_refuses_requests_instead_of_raising() -> None:
    reason = refused({"secret": "k", "algorithm": "md5"}, {"X-Sig": "00"}, BODY)
    assert reason == "The trigger's signature configuration is not valid."


# --- hostile input ------------------------------------------------------------------------------


def random_text(rng: random.Random, length: int) -> str:
    alphabet = string.printable + "=,;v1t\x00é€\ud800"
    return "".join(rng.choice(alphabet) for _ in range(length))


@pytest.mark.parametrize("name", sorted(SIGNATURE_PRESETS))
def test_random_headers_and_bodies_raise_only_signature_invalid(name: str) -> None:
    secret = SW_SECRET if name == "standard-webhooks" else "k"
    config = preset(name, secret)
    headers_in_use = [location["header"] for location in config["data"].values()]
    rng = random.Random(f"signatures-{name}")
    for _ in range(300):
        headers = {header: random_text(rng, rng.randrange(0, 80)) for header in headers_in_use if rng.random() < 0.9}
        if rng.random() < 0.3:
            headers["t"] = random_text(rng, 5)
        body = rng.randbytes(rng.randrange(0, 200))
        with pytest.raises(SignatureInvalid):
            verify_signature(config, headers, body, now=rng.choice([0, NOW, -1e18, 1e300]))


def test_random_prefixed_values_raise_only_signature_invalid() -> None:
    config = preset("stripe", "k")
    rng = random.Random("stripe-structured")
    pieces = ["t=", "v1=", ",", ";", " ", str(NOW), "00", "zz", "=", "ab" * 32, "\u00e9", "1" * 30]
    for _ in range(500):
        header = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 12)))
        with pytest.raises(SignatureInvalid):
            verify_signature(config, {"Stripe-Signature": header}, BODY, now=NOW)


def test_non_text_header_values_are_ignored_not_crashed_on() -> None:
    config = preset("github", GITHUB_SECRET)
    headers: Any = {"X-Hub-Signature-256": b"sha256=00", 7: "x"}
    assert refused(config, headers, GITHUB_BODY) == "The X-Hub-Signature-256 header is missing."


# --- validation on save -------------------------------------------------------------------------


def errors_of(config: Any) -> dict[str, list[str]]:
    with pytest.raises(Invalid) as info:
        validate_signature_config(config)
    return info.value.errors


def valid(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "secret": "k",
        "algorithm": "sha256",
        "digest": "hex",
        "data": {"signature": {"header": "X-Sig"}},
        "template": "[payload]",
    }
    config.update(changes)
    return config


def test_a_minimal_configuration_is_cleaned_with_its_defaults() -> None:
    assert validate_signature_config(valid()) == {
        "secret": "k",
        "secretEncoding": "utf8",
        "algorithm": "sha256",
        "digest": "hex",
        "data": {"signature": {"header": "X-Sig"}},
        "template": "[payload]",
    }


def test_the_tolerance_defaults_to_300_seconds_when_a_timestamp_is_read() -> None:
    config = valid(
        data={"signature": {"header": "X-Sig"}, "timestamp": {"header": "X-Time"}}, template="[timestamp][payload]"
    )
    assert validate_signature_config(config)["toleranceSeconds"] == 300


def test_cleaning_does_not_share_structure_with_the_input() -> None:
    config = valid()
    clean = validate_signature_config(config)
    clean["data"]["signature"]["header"] = "X-Changed"
    assert config["data"]["signature"]["header"] == "X-Sig"


@pytest.mark.parametrize("config", [None, [], "secret", 3])
def test_a_configuration_must_be_an_object(config: Any) -> None:
    assert errors_of(config) == {"config": ["Expected an object."]}


def test_unknown_keys_are_refused_at_every_level() -> None:
    config = valid(extra=1, data={"signature": {"header": "X-Sig", "prefix": "v1="}, "nonce": {"header": "X-N"}})
    assert errors_of(config) == {
        "extra": ["Unknown key."],
        "data.nonce": ["Unknown key."],
        "data.signature.prefix": ["Unknown key."],
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [("algorithm", "md5"), ("algorithm", "SHA256"), ("digest", "base32"), ("secretEncoding", "latin1"), ("digest", 1)],
)
def test_enumerations_are_checked(key: str, value: Any) -> None:
    assert key in errors_of(valid(**{key: value}))


def test_algorithm_digest_data_and_template_are_required() -> None:
    assert set(errors_of({"secret": "k"})) == {"algorithm", "digest", "data", "template"}
    assert set(errors_of(valid(data={}))) == {"data.signature"}


@pytest.mark.parametrize("secret", ["", "   ", None, 5])
def test_the_secret_is_required(secret: Any) -> None:
    assert set(errors_of(valid(secret=secret))) == {"secret"}


@pytest.mark.parametrize(
    ("encoding", "secret", "prefix"),
    [
        ("base64", "not base64!", None),
        ("base64", "whsec_", "whsec_"),
        ("base64", "whsec_%%%", "whsec_"),
        ("hex", "abc", None),
        ("hex", "zz", None),
        ("hex", "ab cd", None),
    ],
)
def test_the_secret_must_decode_per_its_encoding_without_being_quoted(
    encoding: str, secret: str, prefix: str | None
) -> None:
    changes: dict[str, Any] = {"secret": secret, "secretEncoding": encoding}
    if prefix:
        changes["secretPrefix"] = prefix
    errors = errors_of(valid(**changes))
    assert list(errors) == ["secret"]
    rest = secret.removeprefix(prefix or "")
    assert len(rest) < 3 or all(rest not in message for message in errors["secret"])


def test_a_base64_secret_without_padding_is_accepted() -> None:
    key = b"sixteen byte key"
    unpadded = base64.b64encode(key[:-1]).decode().rstrip("=")
    validate_signature_config(valid(secret=unpadded, secretEncoding="base64"))


@pytest.mark.parametrize("header", ["", "X Sig", "X-Sig:", "X-Sig\n", "É-Sig", "x" * 257, None, 5])
def test_header_names_must_be_tokens(header: Any) -> None:
    assert "data.signature.header" in errors_of(valid(data={"signature": {"header": header}}))


@pytest.mark.parametrize("prefix", ["", 3, "x" * 65, "v1=\n"])
def test_a_parse_prefix_must_be_short_printable_text(prefix: Any) -> None:
    errors = errors_of(valid(data={"signature": {"header": "X-Sig", "parsePrefix": prefix}}))
    assert list(errors) == ["data.signature.parsePrefix"]


@pytest.mark.parametrize("tolerance", [0, -1, 86_401, 1.5, "300", True, None])
def test_the_tolerance_is_a_whole_number_of_seconds_up_to_a_day(tolerance: Any) -> None:
    assert list(errors_of(valid(toleranceSeconds=tolerance))) == ["toleranceSeconds"]


@pytest.mark.parametrize("tolerance", [1, 300, 86_400])
def test_tolerances_in_range_are_kept(tolerance: int) -> None:
    config = valid(
        data={"signature": {"header": "X-Sig"}, "timestamp": {"header": "X-T"}}, template="[timestamp][payload]"
    )
    assert validate_signature_config({**config, "toleranceSeconds": tolerance})["toleranceSeconds"] == tolerance


@pytest.mark.parametrize(
    ("template", "data", "message"),
    [
        ("[timestamp].[payload]", {}, "[timestamp] is used but data.timestamp says nowhere to read it from."),
        ("[id].[payload]", {}, "[id] is used but data.id says nowhere to read it from."),
        ("[timestamp]", {"timestamp": {"header": "X-T"}}, "The template must contain [payload]"),
        ("[payload]", {"timestamp": {"header": "X-T"}}, "data.timestamp is configured but the template does not sign"),
        ("[payload]", {"id": {"header": "X-Id"}}, "data.id is configured but the template does not sign [id]."),
        ("[timestmap].[payload]", {}, "Unknown token [timestmap]"),
        ("[Payload]", {}, "Unknown token [Payload]"),
        ("", {}, "Required"),
        ("[payload]" + "x" * 500, {}, "Too long"),
    ],
)
def test_the_template_and_the_locations_must_agree(template: str, data: dict[str, Any], message: str) -> None:
    config = valid(template=template, data={"signature": {"header": "X-Sig"}, **data})
    assert any(text.startswith(message) for text in errors_of(config)["template"])


def test_a_bad_timestamp_location_does_not_also_blame_the_template() -> None:
    config = valid(
        template="[timestamp].[payload]", data={"signature": {"header": "X-Sig"}, "timestamp": {"header": ""}}
    )
    assert list(errors_of(config)) == ["data.timestamp.header"]


def test_every_problem_is_reported_at_once() -> None:
    errors = errors_of({"secret": "", "algorithm": "md5", "digest": "hex", "data": {"signature": {}}, "template": "x"})
    assert set(errors) == {"secret", "algorithm", "data.signature.header", "template"}


def test_error_messages_never_quote_the_secret() -> None:
    secret = "whsec_not-base64-but-secret"
    errors = errors_of(valid(secret=secret, secretEncoding="base64", secretPrefix="whsec_", algorithm="md5"))
    assert secret.removeprefix("whsec_") not in repr(errors)


# --- presets ------------------------------------------------------------------------------------


def test_the_four_senders_have_presets_with_an_empty_secret_to_fill_in() -> None:
    assert {"stripe", "github", "shopify", "slack"} <= set(SIGNATURE_PRESETS)
    for name, entry in SIGNATURE_PRESETS.items():
        assert entry["label"]
        assert entry["description"]
        assert entry["config"]["secret"] == ""
        assert set(errors_of(entry["config"])) == {"secret"}, name


@pytest.mark.parametrize("name", sorted(SIGNATURE_PRESETS))
def test_each_preset_validates_once_its_secret_is_filled_in(name: str) -> None:
    secret = SW_SECRET if name == "standard-webhooks" else "k"
    assert validate_signature_config({**SIGNATURE_PRESETS[name]["config"], "secret": secret})["secret"] == secret


def test_preset_config_gives_a_copy_that_cannot_change_the_preset() -> None:
    config = preset_config("stripe")
    config["data"]["signature"]["header"] = "X-Mine"
    assert SIGNATURE_PRESETS["stripe"]["config"]["data"]["signature"]["header"] == "Stripe-Signature"


def test_the_presets_read_the_documented_headers() -> None:
    assert SIGNATURE_PRESETS["stripe"]["config"]["data"] == {
        "signature": {"header": "Stripe-Signature", "parsePrefix": "v1="},
        "timestamp": {"header": "Stripe-Signature", "parsePrefix": "t="},
    }
    assert SIGNATURE_PRESETS["github"]["config"]["data"]["signature"] == {
        "header": "X-Hub-Signature-256",
        "parsePrefix": "sha256=",
    }
    assert SIGNATURE_PRESETS["shopify"]["config"]["digest"] == "base64"
    assert SIGNATURE_PRESETS["slack"]["config"]["template"] == "v0:[timestamp]:[payload]"
