"""The start request: the one shape every trigger hands the start pipeline (SPEC section 2).

`parse_start_requests` accepts the canonical object, Atomic's `flows` envelope, the older
connector shape and JSON arrays of canonical objects, and normalises them all to a list of
`StartRequest`. It validates the whole request before anything starts: an invalid request
raises `workbench.errors.Invalid` with every problem found, keyed by where it is.

The shapes are declared once more below, as the serializers the OpenAPI schema documents
(`StartRequestBody`). They do not validate: every API start and webhook parses a start
request, and a DRF serializer takes about 35 times as long as this parser (134 µs against
4 µs for a one-start request, ~10% of a start's CPU). `tests/flows/test_start_requests.py`
holds both to one table of valid and invalid requests, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from workbench.api_base import StrictSerializer
from workbench.errors import Invalid
from workbench.shapes import Text

MAX_TARGETS = 1000
MAX_STARTS = 100
MAX_ID_LENGTH = 255

CANONICAL_KEYS = {"targetUserIds", "flowInvocationId", "variables", "notificationDetail", "metadata", "cardOptions"}
OBJECT_KEYS = ("variables", "notificationDetail", "metadata", "cardOptions")


@dataclass(frozen=True)
class StartRequest:
    target_user_ids: list[str]
    flow_invocation_id: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    notification_detail: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    card_options: dict[str, Any] = field(default_factory=dict)

    def as_canonical(self) -> dict[str, Any]:
        return {
            "targetUserIds": self.target_user_ids,
            "flowInvocationId": self.flow_invocation_id,
            "variables": self.variables,
            "notificationDetail": self.notification_detail,
            "metadata": self.metadata,
            "cardOptions": self.card_options,
        }


INVALID_DETAIL = "The start request is not valid."


def parse_start_requests(body: Any) -> list[StartRequest]:
    """Normalise any accepted shape to canonical start requests, or raise with every error."""
    errors: dict[str, list[str]] = {}
    items = _canonical_items(body, errors)
    if len(items) > MAX_STARTS:
        errors.setdefault("request", []).append(f"At most {MAX_STARTS} starts per request; got {len(items)}.")
    if not items and not errors:
        errors["request"] = ["The request holds no start."]
    starts = []
    for location, item in items:
        start = _parse_canonical(item, f"{location}." if location else "", errors)
        if start is not None:
            starts.append(start)
    if errors:
        raise Invalid(errors, INVALID_DETAIL)
    return starts


def _canonical_items(body: Any, errors: dict[str, list[str]]) -> list[tuple[str, Any]]:
    """The request as (location prefix, canonical object) pairs, converting the other shapes."""
    if isinstance(body, list):
        return [(str(index), item) for index, item in enumerate(body)]
    if not isinstance(body, dict):
        errors["request"] = ["Expected a JSON object or an array of objects."]
        return []
    if "flows" in body:
        return _from_atomic_envelope(body, errors)
    if isinstance(body.get("payload"), dict) and "target" in body["payload"]:
        return [("", _from_connector(body["payload"], errors))]
    return [("", body)]


def _from_atomic_envelope(body: dict[str, Any], errors: dict[str, list[str]]) -> list[tuple[str, Any]]:
    flows = body["flows"]
    extra = sorted(set(body) - {"flows"})
    if extra:
        errors["request"] = [f"Unknown field: {name}." for name in extra]
    if not isinstance(flows, list):
        errors["flows"] = ["Expected an array."]
        return []
    items: list[tuple[str, Any]] = []
    for index, flow in enumerate(flows):
        location = f"flows.{index}"
        if not isinstance(flow, dict):
            errors[location] = ["Expected an object."]
            continue
        payload = flow.get("payload", {})
        if not isinstance(payload, dict):
            errors[f"{location}.payload"] = ["Expected an object."]
            continue
        unknown = sorted(set(flow) - {"target", "flowInvocationId", "payload"})
        unknown += [f"payload.{name}" for name in sorted(set(payload) - set(OBJECT_KEYS))]
        for name in unknown:
            errors[f"{location}.{name}"] = ["Unknown field."]
        canonical = {key: payload[key] for key in OBJECT_KEYS if key in payload}
        canonical["targetUserIds"] = _users_by_id(flow.get("target"), f"{location}.target", errors)
        if "flowInvocationId" in flow:
            canonical["flowInvocationId"] = flow["flowInvocationId"]
        items.append((location, canonical))
    return items


def _from_connector(payload: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    """The older connector shape: `detail` means `variables`."""
    for name in sorted(set(payload) - {"target", "detail", "notificationDetail", "metadata", "cardOptions",
                                       "flowInvocationId"}):  # fmt: skip
        errors[f"payload.{name}"] = ["Unknown field."]
    canonical: dict[str, Any] = {
        key: payload[key] for key in ("notificationDetail", "metadata", "cardOptions") if key in payload
    }
    if "detail" in payload:
        canonical["variables"] = payload["detail"]
    if "flowInvocationId" in payload:
        canonical["flowInvocationId"] = payload["flowInvocationId"]
    canonical["targetUserIds"] = _users_by_id(payload.get("target"), "payload.target", errors)
    return canonical


def _users_by_id(target: Any, location: str, errors: dict[str, list[str]]) -> Any:
    if not isinstance(target, dict) or "usersById" not in target:
        errors[location] = ['Expected {"usersById": [...]}.']
        return []
    return target["usersById"]


def _parse_canonical(item: Any, prefix: str, errors: dict[str, list[str]]) -> StartRequest | None:
    before = len(errors)
    if not isinstance(item, dict):
        errors[prefix.rstrip(".") or "request"] = ["Expected an object."]
        return None
    for name in sorted(set(item) - CANONICAL_KEYS):
        errors[f"{prefix}{name}"] = ["Unknown field."]
    targets = _target_user_ids(item.get("targetUserIds"), f"{prefix}targetUserIds", errors)
    invocation_id = item.get("flowInvocationId")
    if invocation_id is not None and (
        not isinstance(invocation_id, str) or not 1 <= len(invocation_id) <= MAX_ID_LENGTH
    ):
        errors[f"{prefix}flowInvocationId"] = [f"Expected a string of 1 to {MAX_ID_LENGTH} characters."]
    objects = {}
    for key in OBJECT_KEYS:
        value = item.get(key)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            errors[f"{prefix}{key}"] = ["Expected an object."]
        objects[key] = value
    if len(errors) > before:
        return None
    return StartRequest(
        target_user_ids=targets,
        flow_invocation_id=invocation_id,
        variables=objects["variables"],
        notification_detail=objects["notificationDetail"],
        metadata=objects["metadata"],
        card_options=objects["cardOptions"],
    )


def _target_user_ids(value: Any, location: str, errors: dict[str, list[str]]) -> list[str]:
    if value is None:
        errors[location] = ["This field is required: 1 to 1,000 userIds."]
        return []
    if not isinstance(value, list):
        errors[location] = ["Expected an array of userIds."]
        return []
    if not value:
        errors[location] = ["At least one target userId is required."]
        return []
    if len(value) > MAX_TARGETS:
        errors[location] = [f"At most {MAX_TARGETS:,} targets per start; got {len(value):,}."]
        return []
    bad = [index for index, user_id in enumerate(value) if not _is_user_id(user_id)]
    if bad:
        errors[location] = [
            f"Item {index}: expected a userId string of 1 to {MAX_ID_LENGTH} characters." for index in bad[:10]
        ]
        return []
    # A user listed twice in one start gets one run.
    return list(dict.fromkeys(value))


def _is_user_id(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= MAX_ID_LENGTH and "\x00" not in value


# --- The documented shapes (OpenAPI); `parse_start_requests` is what validates ----------------


def _user_ids() -> serializers.ListField:
    # A userId is any 1 to 255 characters: spaces are kept, not trimmed.
    child = Text(min_length=1, max_length=MAX_ID_LENGTH, trim_whitespace=False)
    return serializers.ListField(child=child, min_length=1, max_length=MAX_TARGETS)


def _flow_invocation_id() -> Text:
    return Text(
        required=False,
        allow_null=True,
        min_length=1,
        max_length=MAX_ID_LENGTH,
        trim_whitespace=False,
        help_text="The idempotency key; generated when absent, always returned.",
    )


def _payload_object(help_text: str = "") -> serializers.DictField:
    return serializers.DictField(required=False, allow_null=True, help_text=help_text)


class AtomicPayloadSchema(StrictSerializer):
    """What a start carries besides its targets and key, in every shape but the connector's."""

    variables = _payload_object()
    notificationDetail = _payload_object()
    metadata = _payload_object()
    cardOptions = _payload_object()


class _TargetsAndKeySchema(StrictSerializer):
    targetUserIds = _user_ids()
    flowInvocationId = _flow_invocation_id()


class StartRequestSchema(_TargetsAndKeySchema, AtomicPayloadSchema):
    """The canonical start request (its fields in this order: the first base's first)."""


class UsersByIdSchema(StrictSerializer):
    usersById = _user_ids()


class AtomicFlowSchema(StrictSerializer):
    target = UsersByIdSchema()
    flowInvocationId = _flow_invocation_id()
    payload = AtomicPayloadSchema(required=False)


class AtomicEnvelopeSchema(StrictSerializer):
    """Atomic's API envelope."""

    flows = serializers.ListField(child=AtomicFlowSchema(), min_length=1, max_length=MAX_STARTS)


class ConnectorPayloadSchema(StrictSerializer):
    target = UsersByIdSchema()
    flowInvocationId = _flow_invocation_id()
    detail = _payload_object("The variables.")
    notificationDetail = _payload_object()
    metadata = _payload_object()
    cardOptions = _payload_object()


class ConnectorEnvelopeSchema(StrictSerializer):
    """The older connector shape."""

    payload = ConnectorPayloadSchema()


StartRequestBody = PolymorphicProxySerializer(
    component_name="StartRequestBody",
    serializers=[
        StartRequestSchema,
        AtomicEnvelopeSchema,
        ConnectorEnvelopeSchema,
        StartRequestSchema(many=True),  # its bounds: the ARRAY_BOUNDS extension of the operations
    ],
    resource_type_field_name=None,
    many=False,
)


def declared_schema_for(body: Any) -> serializers.BaseSerializer:
    """The documented shape that describes `body`, chosen as `parse_start_requests` chooses."""
    if isinstance(body, list):
        return serializers.ListSerializer(
            child=StartRequestSchema(), data=body, allow_empty=False, max_length=MAX_STARTS
        )
    if isinstance(body, dict) and "flows" in body:
        return AtomicEnvelopeSchema(data=body)
    if isinstance(body, dict) and isinstance(body.get("payload"), dict) and "target" in body["payload"]:
        return ConnectorEnvelopeSchema(data=body)
    return StartRequestSchema(data=body)
