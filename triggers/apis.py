"""The API trigger (starting flows over HTTP) and the triggers configuration resource."""

from __future__ import annotations

from typing import Any, cast

from django.db import transaction
from django.utils import timezone
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.serializers import PolymorphicProxySerializerExtension
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from flows import selectors as flow_selectors
from flows import services as flow_services
from flows.models import Mode, StartStatus
from flows.start_requests import MAX_STARTS, StartRequest, StartRequestBody
from segments import rules_schema
from workbench.api_base import EVENTS, WORKBENCH, EnvironmentAPIView, StrictSerializer, envelope, envelope_schema
from workbench.authentication import CredentialTokenAuthentication, bearer_token, token_checksum
from workbench.models import ApiCredential
from workbench.schema import ACTION_FLOWS, ARRAY_BOUNDS, BODY_REQUIRED, CONFIG_TRIGGERS, answers
from workbench.services import credential_use_record
from workbench.shapes import Text

from . import (
    csv_tasks,
    event_triggers,
    intake,
    marketo,
    segment_triggers,
    selectors,
    services,
    start_reads,
    webhook_actions,
)
from .mapping import MAPPING_SERIALIZERS, mappable_properties
from .models import (
    CsvTaskStatus,
    HeldState,
    Reentry,
    RequestOutcome,
    SegmentOn,
    Trigger,
    TriggerMode,
    TriggerType,
    WebhookRequest,
)
from .sfmc import (
    InArgumentsField,
    JwtSecretField,
    sfmc_api_json,
    sfmc_mapping_preview,
    sfmc_sample_send_test,
    sfmc_trigger_create,
    sfmc_trigger_update,
)


class StartOutcomeSchema(serializers.Serializer):
    flowInvocationId = serializers.CharField()
    status = serializers.ChoiceField(choices=StartStatus.values)
    targetCount = serializers.IntegerField()
    ignoredUserIds = serializers.ListField(child=serializers.CharField(), help_text="Test starts: not test users.")


StartAnswer = envelope_schema(
    "StartAnswer", inline_serializer("StartResult", {"invocations": StartOutcomeSchema(many=True)})
)
START_REFUSALS = {
    400: "missing_variables: required variables without a value and without a default.",
    409: "flow_not_published (live starts), flow_archived, idempotency_mismatch (a key repeated with other content).",
}


class ApiStartAuthentication(CredentialTokenAuthentication):
    """The bearer token of an API start, read in ONE statement with the flow the URL names
    (`start_reads.api_start_read`), or taken from the read of this token's last accepted
    start of that flow (`start_reads.recent_api_starts`, while the token has not expired):
    the view then writes the start only while the rows read are unchanged. The view takes
    the flow from here. DRF makes an authenticator per request, so what it keeps belongs to
    this request."""

    key: tuple[str, str] = ("", "")  # the token's checksum and the URL's flow id
    read: start_reads.ApiStartRead | None = None
    from_recent = False

    def authenticate(self, request: Request) -> tuple[None, ApiCredential] | None:
        token = bearer_token(request)
        if token is None:
            return None
        flow_id = str(request.parser_context["kwargs"]["flow_id"])
        self.key = (token_checksum(token), flow_id)
        recent = start_reads.recent_api_starts.get(self.key)
        if recent is not None and recent.expires > timezone.now():
            credential_use_record(credential=recent.credential)
            self.read, self.from_recent = recent, True
            return (None, recent.credential)
        return self.read_again(token)

    def read_again(self, token: str) -> tuple[None, ApiCredential] | None:
        self.read, self.from_recent = start_reads.api_start_read(token=token, flow_id=self.key[1]), False
        return (None, self.read.credential) if self.read is not None else None

    def remember(self) -> None:
        """The read led to an accepted start: the token's next start of this flow may use it."""
        if self.read is not None and not self.from_recent:
            start_reads.recent_api_starts.remember(self.key, self.read)


@extend_schema(tags=[ACTION_FLOWS])
class ActionFlowStartApi(EnvironmentAPIView):
    """POST action-flow/{flowId}/start (live) and /test: accept a start request (SPEC section 2)."""

    authentication_classes = [ApiStartAuthentication]
    allowed_roles = EVENTS
    mode: str = Mode.LIVE

    @extend_schema(
        request=StartRequestBody,
        responses=answers({202: StartAnswer, 200: StartAnswer}, START_REFUSALS, body=True),
        extensions={BODY_REQUIRED: True, ARRAY_BOUNDS: {"minItems": 1, "maxItems": MAX_STARTS}},
        # The same OAuth2 scheme as every endpoint's (its authentication only reads more with
        # it). The value is the operation's security list (the annotation says str, wrongly).
        auth=[{"oauth2": []}],  # type: ignore[list-item]
    )
    def post(self, request: Request, env: str, flow_id: str) -> Response:
        # Authenticated and permitted: the credential is of this environment, and the flow
        # was read with it (no target: no such flow there).
        authenticator = cast(ApiStartAuthentication, request.successful_authenticator)
        starts = flow_services.start_requests_check(request.data)
        try:
            result = self._accept(authenticator, starts)
        except flow_services.StaleRead:  # a recent read no longer holds: as if it had not been tried
            start_reads.recent_api_starts.forget(authenticator.key)
            result = self._accept_after_reading_again(request, authenticator, starts)
        if result.any_accepted:
            authenticator.remember()
        answer = envelope({"invocations": [outcome.as_json() for outcome in result.outcomes]})
        return Response(answer, status=status.HTTP_202_ACCEPTED if result.any_accepted else status.HTTP_200_OK)

    def _accept_after_reading_again(
        self, request: Request, authenticator: ApiStartAuthentication, starts: list[StartRequest]
    ) -> flow_services.AcceptResult:
        """Authenticate and check the permission again from a fresh read, as DRF did before
        the view (401 for a token revoked meanwhile, 404, 403), then accept from that read."""
        authenticated = authenticator.read_again(bearer_token(request) or "")
        request.auth = authenticated[1] if authenticated is not None else None
        self.check_permissions(request)
        return self._accept(authenticator, starts)

    def _accept(self, authenticator: ApiStartAuthentication, starts: list[StartRequest]) -> flow_services.AcceptResult:
        read = authenticator.read
        if read is None or read.target is None:
            raise NotFound("No such flow")
        return flow_services.invocations_accept(
            flow=read.target.flow,
            mode=self.mode,
            starts=starts,
            source=TriggerType.API,
            trigger_id=read.target.api_trigger_id,
            unchanged=read.versions if authenticator.from_recent else (),
        )


class ActionFlowTestApi(ActionFlowStartApi):
    mode = Mode.TEST


class CsvUploadSerializer(serializers.Serializer):
    """A CSV bulk start's upload (SPEC section 6); what the file holds is checked as it is read."""

    file = serializers.FileField(
        help_text="UTF-8 CSV (a BOM is allowed), at most 128 MiB, a header row first. Columns: "
        "target.usersById (ids separated by |) or target.attributes.<field>, payload.variables.<name>, "
        "payload.metadata.<name>, payload.notificationDetail.<name>, payload.cardOptions.<name>, "
        "flowInvocationId."
    )


class CsvRowErrorSchema(serializers.Serializer):
    row = serializers.IntegerField(help_text="The file's row number; the header is row 1.")
    message = serializers.CharField()


class CsvTaskSchema(serializers.Serializer):
    taskId = serializers.IntegerField()
    status = serializers.ChoiceField(choices=CsvTaskStatus.choices)
    rowsTotal = serializers.IntegerField(help_text="Data rows; the header is not counted.")
    rowsDone = serializers.IntegerField(help_text="Rows handled so far: started or in error.")
    rowsFailed = serializers.IntegerField()
    # The stubs know Serializer.errors; here it is a payload field.
    errors = CsvRowErrorSchema(many=True, help_text="The first 1,000 rows in error.")  # type: ignore[assignment]


CsvTaskCreated = envelope_schema(
    "CsvTaskCreated",
    inline_serializer(
        "CsvTaskQueued",
        {"taskId": serializers.IntegerField(), "status": serializers.ChoiceField(choices=CsvTaskStatus.choices)},
    ),
)
CsvTaskAnswer = envelope_schema("CsvTaskAnswer", CsvTaskSchema())
CSV_REFUSALS = {
    400: "the file is empty, has no header, names unknown or repeated columns or no target column, "
    "is not UTF-8 or not CSV (nothing is stored; bad rows are reported per row instead).",
    409: "flow_not_published (live tasks), flow_archived.",
    413: "payload_too_large: CSV uploads may be up to 128 MiB.",
    415: "unsupported_media_type: send multipart/form-data.",
}


@extend_schema(tags=[ACTION_FLOWS])
class CsvTaskCreateApi(EnvironmentAPIView):
    """POST action-flow/{flowId}/csv-task (live) and /csv-task/test: a CSV bulk start (SPEC section 6)."""

    allowed_roles = EVENTS
    parser_classes = [MultiPartParser]
    mode: str = Mode.LIVE

    @extend_schema(
        request={"multipart/form-data": CsvUploadSerializer},
        responses=answers({202: CsvTaskCreated}, CSV_REFUSALS),
        extensions={BODY_REQUIRED: True},
    )
    def post(self, request: Request, env: str, flow_id: str) -> Response:
        flow = flow_selectors.flow_get(environment=self.environment, flow_id=flow_id)
        upload = CsvUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        file = upload.validated_data["file"]
        task = csv_tasks.csv_task_stage(
            flow=flow, mode=self.mode, upload=file, file_name=file.name or "", by=None, confirm=True
        )
        return Response(envelope({"taskId": task.pk, "status": task.status}), status=status.HTTP_202_ACCEPTED)


class CsvTaskCreateTestApi(CsvTaskCreateApi):
    mode = Mode.TEST


@extend_schema(tags=[ACTION_FLOWS])
class CsvTaskDetailApi(EnvironmentAPIView):
    """GET csv-task/{taskId}: a CSV task's progress and its first 1,000 row errors."""

    allowed_roles = EVENTS

    @extend_schema(responses=answers({200: CsvTaskAnswer}))
    def get(self, request: Request, env: str, task_id: str) -> Response:
        task = selectors.csv_task_get(environment=self.environment, task_id=task_id)
        return Response(envelope(csv_tasks.csv_task_as_json(task)))


@extend_schema(tags=[ACTION_FLOWS])
class CsvTaskCancelApi(EnvironmentAPIView):
    """POST csv-task/{taskId}/cancel: rows not started yet never start; a finished task stays as it is."""

    allowed_roles = EVENTS

    @extend_schema(request=None, responses=answers({200: CsvTaskAnswer}))
    def post(self, request: Request, env: str, task_id: str) -> Response:
        task = selectors.csv_task_get(environment=self.environment, task_id=task_id)
        task = csv_tasks.csv_task_cancel(task=task)
        return Response(envelope(csv_tasks.csv_task_as_json(task)))


def _masked_security(security: dict[str, Any]) -> dict[str, Any]:
    """The security settings as the API shows them: the signing secret never leaves."""
    signature = security.get("signature")
    return {
        "allowedIps": security.get("allowedIps", []),
        "signature": {**signature, "secret": services.SECRET_MASK} if signature else None,
    }


def trigger_json(trigger: Trigger, request: Request) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": trigger.pk,
        "flowId": trigger.flow_id,
        "type": trigger.type,
        "name": trigger.name,
        "mode": trigger.mode,
        "pausedReason": trigger.paused_reason or None,
        "url": None,
    }
    if trigger.type == TriggerType.API:
        base = f"/api/v1/{trigger.environment.slug}/action-flow/{trigger.flow_id}"
        data["startUrl"] = request.build_absolute_uri(f"{base}/start")
        data["testUrl"] = request.build_absolute_uri(f"{base}/test")
    elif trigger.type == TriggerType.WEBHOOK:
        config = trigger.config
        data.update(
            url=request.build_absolute_uri(f"/hooks/{trigger.token}"),
            sample=trigger.sample,
            mapping=config.get("mapping", services.DEFAULT_MAPPING),
            shapeCheck=config.get("shapeCheck", False),
            security=_masked_security(config.get("security") or {}),
            captureArmedUntil=trigger.capture_until,
            heldRequests=selectors.held_count(trigger=trigger),
        )
    elif trigger.type == TriggerType.SEGMENT:
        segment = trigger.segment_config
        data.update(segmentId=segment.get("segmentId"), on=segment.get("on"), reentry=segment.get("reentry"))
    elif trigger.type == TriggerType.EVENT:
        event = trigger.event_config
        data.update(eventName=event.get("eventName"), where=event.get("where", []), mapping=event.get("mapping"))
    elif trigger.type == TriggerType.SFMC:
        data.update(sfmc_api_json(trigger, request.build_absolute_uri(f"/integrations/sfmc/{trigger.token}/")))
    elif trigger.type == TriggerType.MARKETO:
        data.update(_marketo_json(trigger, request))
    return data


def _marketo_json(trigger: Trigger, request: Request) -> dict[str, Any]:
    """A Marketo trigger's fields (never its API key: only its last characters)."""
    config = marketo.marketo_config(trigger)
    base = request.build_absolute_uri(marketo.base_path(trigger))
    return {
        "url": base,
        "openapiUrl": f"{base}openapi.json",
        "apiKeyHint": config["apiKeyHint"],
        "leadUserIdField": config["leadUserIdField"],
        "flowFields": config["flowFields"],
        "mapping": config["mapping"],
    }


# The mapping and security shapes are the serializers that validate them (triggers.mapping,
# triggers.services); the API passes them through to the service, which runs them.
MappingSchema = PolymorphicProxySerializer(
    component_name="Mapping",
    serializers={**MAPPING_SERIALIZERS},
    resource_type_field_name="type",
)


@extend_schema_field(MappingSchema)
class MappingField(serializers.JSONField):
    """Validated by triggers.mapping (paths must parse, a script must define transform)."""


@extend_schema_field(services.SecuritySerializer)
class SecurityField(serializers.JSONField):
    """Validated by triggers.services (addresses, signature configuration)."""


class WebhookTriggerSerializer(StrictSerializer):
    """A webhook trigger's writable fields (SPEC section 4)."""

    type = serializers.ChoiceField(choices=[TriggerType.WEBHOOK.value], required=False)
    name = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=services.MAX_NAME_LENGTH,
        trim_whitespace=True,
        help_text='What members call the trigger ("Orders from Shopify"); blank shows as "Webhook <id>".',
    )
    mode = serializers.ChoiceField(
        choices=[m.value for m in services.MEMBER_MODES],
        required=False,
        help_text="live needs a published flow (409 flow_not_published; archived flows: 409 flow_archived).",
    )
    sample = serializers.JSONField(required=False, allow_null=True)
    mapping = MappingField(required=False)
    shapeCheck = serializers.BooleanField(required=False)
    security = SecurityField(required=False)


class WebhookTriggerCreateSerializer(WebhookTriggerSerializer):
    type = serializers.ChoiceField(choices=[TriggerType.WEBHOOK.value], help_text="Webhook triggers are created here.")


class _TypeIs(serializers.CharField):
    """`type` of one kind; documented as a pattern, not an enum (each one-value enum of a field
    named "type" would need a name of its own in the schema)."""

    def __init__(self, kind: str, **kwargs: Any) -> None:
        self.kind = kind
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if data != self.kind:
            raise serializers.ValidationError(f"Expected {self.kind!r}.")
        return self.kind


def _type_is(kind: str, required: bool) -> _TypeIs:
    kind_class = type(f"{kind.title()}TypeField", (_TypeIs,), {})  # the schema is set per class
    field_class = extend_schema_field({"type": "string", "pattern": f"^{kind}$"})(kind_class)
    return field_class(kind, required=required)


def _name_field() -> serializers.CharField:
    # Text: a number is no name (DRF's CharField would take 12 as "12"); the service trims it.
    return Text(required=False, allow_blank=True, max_length=services.MAX_NAME_LENGTH)


def _mode_field() -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=[m.value for m in services.MEMBER_MODES],
        required=False,
        help_text="A new trigger is in test. live needs a published flow (409 flow_not_published).",
    )


MAX_SEGMENT_ID = 2**63 - 1  # a bigint key: a bigger number could not be looked up


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_SEGMENT_ID})
class SegmentIdField(serializers.Field):
    """A segment's id as JSON gives it: a whole number, not a numeric string (whether the segment
    is one of this environment's is the service's to say)."""

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int or not 1 <= data <= MAX_SEGMENT_ID:
            raise serializers.ValidationError("Expected a segment id (a whole number).")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class SegmentTriggerSerializer(StrictSerializer):
    """A segment trigger's writable fields (SPEC section 5); the segment is checked by the service."""

    type = _type_is(TriggerType.SEGMENT.value, required=False)
    name = _name_field()
    mode = _mode_field()
    segmentId = SegmentIdField(required=False, help_text="A segment of this environment (its id).")
    on = serializers.ChoiceField(choices=SegmentOn.values, required=False, help_text="Default entered.")
    reentry = serializers.ChoiceField(
        choices=Reentry.values, required=False, help_text="once: at most one start per customer, ever. Default always."
    )


class SegmentTriggerCreateSerializer(SegmentTriggerSerializer):
    type = _type_is(TriggerType.SEGMENT.value, required=True)
    segmentId = SegmentIdField(help_text="A segment of this environment (its id).")


class WhereField(serializers.JSONField):
    """`[{"property", "op", "value"}]`, field-test ops on the event's properties (checked by the
    service with segments' validator of property tests)."""


class WhereFieldExtension(OpenApiSerializerFieldExtension):
    """`where` has the shape of a segment event test's property tests (segments.rules_schema)."""

    target_class = WhereField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return rules_schema.with_components(auto_schema, rules_schema.PROPERTY_TESTS)


# What event_triggers.event_config_clean takes: a name with a character that is not white
# space, at most MAX_EVENT_NAME characters as given (it is saved trimmed).
@extend_schema_field({"type": "string", "minLength": 1, "maxLength": event_triggers.MAX_EVENT_NAME, "pattern": r"\S"})
class EventNameField(serializers.JSONField):
    """Checked by the service (a number is no name: JSON's string only)."""


class EventTriggerSerializer(StrictSerializer):
    """An event trigger's writable fields (SPEC section 5)."""

    type = _type_is(TriggerType.EVENT.value, required=False)
    name = _name_field()
    mode = _mode_field()
    eventName = EventNameField(required=False, help_text="The name of the events that start the flow.")
    where = WhereField(required=False)
    mapping = MappingField(
        required=False, help_text="Default: structured, targetUserIds from $.userId and variables from $.properties."
    )


class EventTriggerCreateSerializer(EventTriggerSerializer):
    type = _type_is(TriggerType.EVENT.value, required=True)
    eventName = EventNameField(help_text="The name of the events that start the flow.")


class SfmcTriggerSerializer(StrictSerializer):
    """A Salesforce Marketing Cloud (Journey Builder activity) trigger's writable fields (SPEC section 7)."""

    type = _type_is(TriggerType.SFMC.value, required=False)
    name = _name_field()
    mode = _mode_field()
    jwtSecret = JwtSecretField(required=False)
    inArguments = InArgumentsField(
        required=False,
        help_text='sfmc triggers: the bindings config.json requests. Default [{"userId": "{{Contact.Key}}"}].',
    )
    mapping = MappingField(
        required=False,
        help_text="sfmc triggers: default structured, targetUserIds from $.userId (the userId in-argument, else "
        "keyValue) and variables from $.inArguments.",
    )


class SfmcTriggerCreateSerializer(SfmcTriggerSerializer):
    type = _type_is(TriggerType.SFMC.value, required=True)


# What triggers.marketo checks: a Marketo lead field's API name (not "id", Marketo's own).
@extend_schema_field({"type": "string", "pattern": marketo.LEAD_FIELD_NAME.pattern, "maxLength": 100})
class LeadUserIdField(serializers.JSONField):
    """Checked by the service (JSON's string only)."""


@extend_schema_field(
    {
        "type": "array",
        "maxItems": marketo.MAX_FLOW_FIELDS,
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": marketo.FIELD_NAME.pattern, "maxLength": 50},
                "label": {"type": "string", "maxLength": marketo.MAX_LABEL},
                "type": {"type": "string", "enum": list(marketo.FIELD_TYPES)},
                "required": {"type": "boolean"},
                "description": {"type": "string", "maxLength": marketo.MAX_DESCRIPTION},
            },
        },
    }
)
class FlowFieldsField(serializers.JSONField):
    """The flow step's fields offered to Marketo users (checked by the service: names are unique)."""


class MarketoTriggerSerializer(StrictSerializer):
    """A Marketo trigger's writable fields (SPEC section 7); its API key is generated, never written."""

    type = _type_is(TriggerType.MARKETO.value, required=False)
    name = _name_field()
    mode = _mode_field()
    leadUserIdField = LeadUserIdField(
        required=False, help_text="marketo triggers: the lead field holding the customer's userId. Default userId."
    )
    flowFields = FlowFieldsField(
        required=False,
        help_text="marketo triggers: the flow step's fields Marketo users fill in; each lead's values are in "
        "$.fields of what the mapping reads.",
    )
    mapping = MappingField(
        required=False, help_text="Default: structured, targetUserIds from $.userId and variables from $.fields."
    )


class MarketoTriggerCreateSerializer(MarketoTriggerSerializer):
    type = _type_is(TriggerType.MARKETO.value, required=True)


TriggerCreateSchema = PolymorphicProxySerializer(
    component_name="TriggerCreate",
    serializers={
        TriggerType.WEBHOOK.value: WebhookTriggerCreateSerializer,
        TriggerType.SEGMENT.value: SegmentTriggerCreateSerializer,
        TriggerType.EVENT.value: EventTriggerCreateSerializer,
        TriggerType.SFMC.value: SfmcTriggerCreateSerializer,
        TriggerType.MARKETO.value: MarketoTriggerCreateSerializer,
    },
    resource_type_field_name="type",
)


class AnyOfProxySerializer(PolymorphicProxySerializer):
    """Bodies of which one may fit several of the serializers: documented as anyOf, not oneOf."""


class AnyOfProxySerializerExtension(PolymorphicProxySerializerExtension):
    target_class = "triggers.apis.AnyOfProxySerializer"

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = super().map_serializer(auto_schema, direction)
        return {"anyOf": schema.pop("oneOf"), **schema}


# A PATCH of the name or mode alone (or of nothing) fits every type's body: anyOf.
TriggerUpdateSchema = AnyOfProxySerializer(
    component_name="TriggerUpdate",
    serializers=[
        WebhookTriggerSerializer,
        SegmentTriggerSerializer,
        EventTriggerSerializer,
        SfmcTriggerSerializer,
        MarketoTriggerSerializer,
    ],
    resource_type_field_name=None,
)
CREATE_SERIALIZERS: dict[str, type[StrictSerializer]] = {
    TriggerType.WEBHOOK.value: WebhookTriggerCreateSerializer,
    TriggerType.SEGMENT.value: SegmentTriggerCreateSerializer,
    TriggerType.EVENT.value: EventTriggerCreateSerializer,
    TriggerType.SFMC.value: SfmcTriggerCreateSerializer,
    TriggerType.MARKETO.value: MarketoTriggerCreateSerializer,
}


class TriggerSchema(serializers.Serializer):
    """A trigger as trigger_json shows it; the fields after `url` belong to one type."""

    id = serializers.IntegerField()
    flowId = serializers.IntegerField()
    type = serializers.ChoiceField(choices=TriggerType.choices)
    name = serializers.CharField(allow_blank=True, help_text='Blank shows as "Webhook <id>" in the Workbench.')
    mode = serializers.ChoiceField(choices=TriggerMode.choices)
    pausedReason = serializers.CharField(allow_null=True)
    url = serializers.URLField(allow_null=True, help_text="The absolute webhook URL (webhook triggers).")
    startUrl = serializers.URLField(required=False, help_text="api triggers.")
    testUrl = serializers.URLField(required=False, help_text="api triggers.")
    sample = serializers.JSONField(required=False, allow_null=True, help_text="webhook triggers.")
    mapping = MappingField(required=False)
    shapeCheck = serializers.BooleanField(required=False)
    security = services.SecuritySerializer(required=False, help_text="The signing secret is always masked.")
    captureArmedUntil = serializers.DateTimeField(required=False, allow_null=True)
    heldRequests = serializers.IntegerField(required=False)
    segmentId = serializers.IntegerField(required=False, help_text="segment triggers.")
    on = serializers.ChoiceField(choices=SegmentOn.values, required=False, help_text="segment triggers.")
    reentry = serializers.ChoiceField(choices=Reentry.values, required=False, help_text="segment triggers.")
    eventName = serializers.CharField(required=False, help_text="event triggers.")
    where = WhereField(required=False, help_text="event triggers.")
    configJsonUrl = serializers.URLField(
        required=False, help_text="sfmc triggers: the activity's config.json (url is the Journey Builder endpoint URL)."
    )
    jwtSecret = serializers.CharField(
        required=False, allow_null=True, help_text="sfmc triggers: always masked; null while none is set."
    )
    inArguments = InArgumentsField(required=False, help_text="sfmc triggers.")
    openapiUrl = serializers.URLField(
        required=False, help_text="marketo triggers: the service URL to install in Marketo (its OpenAPI document)."
    )
    apiKey = serializers.CharField(
        required=False,
        help_text="marketo triggers: the API key Marketo sends as x-api-key; only in the answer that creates the "
        "trigger and in that of rotate-key.",
    )
    apiKeyHint = serializers.CharField(required=False, help_text="marketo triggers: the API key's last characters.")
    leadUserIdField = serializers.CharField(required=False, help_text="marketo triggers.")
    flowFields = FlowFieldsField(required=False, help_text="marketo triggers.")


def _webhook_changes(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "mapping": data.get("mapping"),
        "shape_check": data.get("shapeCheck"),
        "security": data.get("security"),
    }


@extend_schema(tags=[CONFIG_TRIGGERS])
class FlowTriggerListApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(responses=answers({200: TriggerSchema(many=True)}))
    def get(self, request: Request, env: str, flow_id: str) -> Response:
        flow = flow_selectors.flow_get(environment=self.environment, flow_id=flow_id)
        triggers = selectors.trigger_list(flow=flow).select_related("environment")
        return Response([trigger_json(trigger, request) for trigger in triggers])

    @extend_schema(
        request=TriggerCreateSchema,
        responses=answers(
            {201: TriggerSchema},
            {409: "flow_not_published (mode live on a flow never published), flow_archived."},
            body=True,
        ),
        extensions={BODY_REQUIRED: True},
    )
    def post(self, request: Request, env: str, flow_id: str) -> Response:
        flow = flow_selectors.flow_get(environment=self.environment, flow_id=flow_id)
        kind = request.data.get("type") if isinstance(request.data, dict) else None
        if kind not in CREATE_SERIALIZERS:
            raise serializers.ValidationError({"type": ["Create webhook, segment, event or marketo triggers here."]})
        serializer = CREATE_SERIALIZERS[kind](data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        name, mode = data.get("name", ""), data.get("mode", TriggerMode.TEST)
        if kind == TriggerType.SEGMENT:
            trigger = segment_triggers.segment_trigger_create(flow=flow, name=name, mode=mode, **_segment_changes(data))
        elif kind == TriggerType.EVENT:
            trigger = event_triggers.event_trigger_create(flow=flow, name=name, mode=mode, **_event_changes(data))
        elif kind == TriggerType.SFMC:
            trigger = sfmc_trigger_create(flow=flow, name=name, mode=mode, **_sfmc_changes(data))
        elif kind == TriggerType.MARKETO:
            created = marketo.marketo_trigger_create(flow=flow, name=name, mode=mode, **_marketo_changes(data))
            answer = {**trigger_json(created.trigger, request), "apiKey": created.api_key}
            return Response(answer, status=status.HTTP_201_CREATED)
        else:
            trigger = services.webhook_trigger_create(
                flow=flow, name=name, sample=data.get("sample"), mode=mode, **_webhook_changes(data)
            )
        return Response(trigger_json(trigger, request), status=status.HTTP_201_CREATED)


def _segment_changes(data: dict[str, Any]) -> dict[str, Any]:
    # segmentId null is "not given" to the service: refuse it here rather than ignore it.
    if "segmentId" in data and data["segmentId"] is None:
        raise serializers.ValidationError({"segmentId": ["Choose the segment whose members start the flow."]})
    return {"segment_id": data.get("segmentId"), "on": data.get("on"), "reentry": data.get("reentry")}


def _marketo_changes(data: dict[str, Any]) -> dict[str, Any]:
    for key in ("leadUserIdField", "flowFields", "mapping"):
        if key in data and data[key] is None:
            raise serializers.ValidationError({key: ["Expected a value, not null."]})
    return {
        "lead_user_id_field": data.get("leadUserIdField"),
        "flow_fields": data.get("flowFields"),
        "mapping": data.get("mapping"),
    }


def _event_changes(data: dict[str, Any]) -> dict[str, Any]:
    for key in ("eventName", "mapping"):
        if key in data and data[key] is None:
            raise serializers.ValidationError({key: ["Expected a value, not null."]})
    return {"event_name": data.get("eventName"), "where": data.get("where"), "mapping": data.get("mapping")}


def _sfmc_changes(data: dict[str, Any]) -> dict[str, Any]:
    for key in ("inArguments", "mapping"):
        if key in data and data[key] is None:
            raise serializers.ValidationError({key: ["Expected a value, not null."]})
    return {
        "jwt_secret": data.get("jwtSecret"),
        "in_arguments": data.get("inArguments"),
        "mapping": data.get("mapping"),
    }


# PATCH takes the body of the trigger's own type. The schema documents the three bodies (an
# anyOf) but cannot tie one to the trigger a path names, so the fields of another type's body
# are refused as such, not as unknown fields (the API trigger is patched with the webhook's
# body, whose fields other than name and mode it refuses).
UPDATE_FIELDS: dict[str, frozenset[str]] = {
    TriggerType.WEBHOOK.value: frozenset(WebhookTriggerSerializer().fields),
    TriggerType.SEGMENT.value: frozenset(SegmentTriggerSerializer().fields),
    TriggerType.EVENT.value: frozenset(EventTriggerSerializer().fields),
    TriggerType.SFMC.value: frozenset(SfmcTriggerSerializer().fields),
    TriggerType.MARKETO.value: frozenset(MarketoTriggerSerializer().fields),
}
TYPE_CANNOT_CHANGE = "A trigger's type cannot change"
NOT_THIS_TYPES_FIELD = "triggers, not of this trigger"


def _refuse_another_types_fields(trigger: Trigger, body: Any) -> None:
    """400 invalid_request for a `type` or fields of another type's body (each keyed by its name)."""
    if not isinstance(body, dict):
        return  # the serializer says what a body must be
    own = UPDATE_FIELDS.get(trigger.type, UPDATE_FIELDS[TriggerType.WEBHOOK.value])
    errors: dict[str, list[str]] = {}
    kind = body.get("type")
    if isinstance(kind, str) and kind in UPDATE_FIELDS and kind != trigger.type:
        errors["type"] = [f"{TYPE_CANNOT_CHANGE}: this trigger's type is {trigger.type}."]
    for key in body:
        owners = [name for name, fields in UPDATE_FIELDS.items() if key in fields]
        if key not in own and owners:
            owned_by = " and ".join(owners)
            errors[key] = [f"{key} is a field of {owned_by} {NOT_THIS_TYPES_FIELD} (its type is {trigger.type})."]
    if errors:
        raise serializers.ValidationError(errors)


@extend_schema(tags=[CONFIG_TRIGGERS])
class TriggerDetailApi(EnvironmentAPIView):
    allowed_roles = WORKBENCH

    @extend_schema(responses=answers({200: TriggerSchema}))
    def get(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = selectors.trigger_get(environment=self.environment, trigger_id=trigger_id)
        return Response(trigger_json(trigger, request))

    @extend_schema(
        request=TriggerUpdateSchema,
        responses=answers(
            {200: TriggerSchema},
            {
                409: "flow_not_published (mode live on a flow never published), flow_archived (mode live), "
                "api_trigger_mode (the API trigger has no mode to set)."
            },
            body=True,
        ),
    )
    def patch(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = selectors.trigger_get(environment=self.environment, trigger_id=trigger_id)
        _refuse_another_types_fields(trigger, request.data)
        if trigger.type == TriggerType.SFMC:
            sfmc_fields = SfmcTriggerSerializer(data=request.data, partial=True)
            sfmc_fields.is_valid(raise_exception=True)
            given = sfmc_fields.validated_data
            sfmc_trigger_update(trigger=trigger, name=given.get("name"), mode=given.get("mode"), **_sfmc_changes(given))
            return Response(
                trigger_json(selectors.trigger_get(environment=self.environment, trigger_id=trigger_id), request)
            )
        if trigger.type == TriggerType.MARKETO:
            shape = MarketoTriggerSerializer(data=request.data, partial=True)
            shape.is_valid(raise_exception=True)
            fields = shape.validated_data
            marketo.marketo_trigger_update(
                trigger=trigger, name=fields.get("name"), mode=fields.get("mode"), **_marketo_changes(fields)
            )
            return Response(
                trigger_json(selectors.trigger_get(environment=self.environment, trigger_id=trigger_id), request)
            )
        if trigger.type in (TriggerType.SEGMENT, TriggerType.EVENT):
            self._patch_segment_or_event(trigger, request)
            return Response(
                trigger_json(selectors.trigger_get(environment=self.environment, trigger_id=trigger_id), request)
            )
        serializer = WebhookTriggerSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if trigger.type != TriggerType.WEBHOOK:
            if set(data) - {"mode", "name"}:
                raise serializers.ValidationError({"request": ["Only webhook triggers are configured here."]})
            with transaction.atomic():
                if "mode" in data:
                    services.trigger_mode_set(trigger=trigger, mode=data["mode"])
                if "name" in data:
                    services.trigger_rename(trigger=trigger, name=data["name"])
        else:
            services.webhook_trigger_update(
                trigger=trigger,
                name=data.get("name"),
                sample=data.get("sample"),
                sample_given="sample" in data,
                mode=data.get("mode"),
                **_webhook_changes(data),
            )
        return Response(
            trigger_json(selectors.trigger_get(environment=self.environment, trigger_id=trigger_id), request)
        )

    def _patch_segment_or_event(self, trigger: Trigger, request: Request) -> None:
        shape = SegmentTriggerSerializer if trigger.type == TriggerType.SEGMENT else EventTriggerSerializer
        serializer = shape(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if trigger.type == TriggerType.SEGMENT:
            segment_triggers.segment_trigger_update(
                trigger=trigger, name=data.get("name"), mode=data.get("mode"), **_segment_changes(data)
            )
        else:
            event_triggers.event_trigger_update(
                trigger=trigger, name=data.get("name"), mode=data.get("mode"), **_event_changes(data)
            )

    @extend_schema(
        request=None,
        responses=answers(
            {204: None},
            {409: "trigger_not_disabled (disable it first), api_trigger_required (a flow keeps its API trigger)."},
        ),
    )
    def delete(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = selectors.trigger_get(environment=self.environment, trigger_id=trigger_id)
        services.trigger_delete(trigger=trigger)
        return Response(status=status.HTTP_204_NO_CONTENT)


NOT_A_WEBHOOK = "not_a_webhook: only webhook triggers have this action."


class WebhookAnswerSchema(serializers.Serializer):
    """What a replayed or test-sent request got: the answer a sender would have had."""

    status = serializers.ChoiceField(choices=StartStatus.values)
    flowInvocationId = serializers.CharField()
    flowInvocationIds = serializers.ListField(child=serializers.CharField(), required=False)
    mode = serializers.ChoiceField(choices=Mode.choices)


class SentTestSchema(WebhookAnswerSchema):
    invocations = StartOutcomeSchema(many=True)


REPLAY_REFUSALS = {
    400: "invalid_payload: the logged body is not JSON.",
    409: f"trigger_disabled, flow_not_published, flow_archived, idempotency_mismatch; {NOT_A_WEBHOOK}",
    422: "mapping_failed: the current mapping fails on the body, or makes no valid start request.",
}


class RequestLogSchema(serializers.Serializer):
    id = serializers.IntegerField()
    receivedAt = serializers.DateTimeField()
    sourceIp = serializers.CharField()
    method = serializers.CharField()
    outcome = serializers.ChoiceField(choices=RequestOutcome.choices)
    statusCode = serializers.IntegerField()
    code = serializers.CharField(allow_null=True)
    detail = serializers.CharField(allow_null=True)
    flowInvocationId = serializers.CharField(allow_null=True)
    held = serializers.ChoiceField(choices=HeldState.choices, allow_null=True)
    replayOf = serializers.IntegerField(allow_null=True)


class RequestDetailSchema(RequestLogSchema):
    headers = serializers.DictField(child=serializers.CharField())
    query = serializers.DictField(child=serializers.CharField())
    body = serializers.CharField(help_text="The raw body as text.")
    errors = serializers.JSONField(allow_null=True)  # type: ignore[assignment]  # a payload field


@extend_schema(tags=[CONFIG_TRIGGERS])
class WebhookActionApi(EnvironmentAPIView):
    """Base of the webhook trigger actions: the trigger, which must be a webhook."""

    allowed_roles = WORKBENCH

    def webhook(self, trigger_id: int) -> Trigger:
        trigger = selectors.trigger_get(environment=self.environment, trigger_id=trigger_id)
        if trigger.type != TriggerType.WEBHOOK:
            raise services.TriggerRefused(409, "not_a_webhook", "Only webhook triggers have this action.")
        return trigger

    def mapped(self, trigger_id: int) -> Trigger:
        """A trigger with a mapping: a webhook, or an event trigger (its sample: the newest event)."""
        trigger = selectors.trigger_get(environment=self.environment, trigger_id=trigger_id)
        if trigger.type not in (TriggerType.WEBHOOK, TriggerType.EVENT, TriggerType.SFMC):
            raise services.TriggerRefused(
                409, "not_a_webhook", "Only webhook, event and Marketing Cloud triggers have this action."
            )
        return trigger

    def previewed(self, trigger_id: int) -> Trigger:
        """A trigger with a mapping to preview: a webhook, an event or a Marketo trigger."""
        trigger = selectors.trigger_get(environment=self.environment, trigger_id=trigger_id)
        if trigger.type == TriggerType.MARKETO:
            return trigger
        return self.mapped(trigger_id)

    def logged(self, trigger_id: int) -> Trigger:
        """A trigger with a request log: a webhook, or a Marketo trigger (its calls and callbacks)."""
        trigger = selectors.trigger_get(environment=self.environment, trigger_id=trigger_id)
        if trigger.type in (TriggerType.MARKETO, TriggerType.SFMC):
            return trigger
        return self.webhook(trigger_id)


def _body_or_empty(request: Request) -> Any:
    """The body, or {} when there is none: a body that is no object is refused, not ignored."""
    return request.data if request.stream is not None else {}


def _answer(answer: intake.Answer) -> Response:
    return Response(answer.body, status=answer.status)


class CaptureSampleApi(WebhookActionApi):
    @extend_schema(
        request=None,
        responses=answers(
            {
                202: inline_serializer(
                    "CaptureArmed",
                    {
                        "status": serializers.ChoiceField(choices=["armed"]),
                        "captureArmedUntil": serializers.DateTimeField(),
                    },
                )
            },
            {409: NOT_A_WEBHOOK},
        ),
    )
    def post(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = services.trigger_capture_arm(trigger=self.webhook(trigger_id))
        return Response({"status": "armed", "captureArmedUntil": trigger.capture_until}, status=202)


class PreviewSerializer(StrictSerializer):
    payload = serializers.JSONField(required=False, allow_null=True, help_text="The sample when absent.")
    # A mapping to try: its problems are the preview's answer (`errors`), not a refusal.
    mapping = serializers.DictField(required=False, help_text="The saved mapping when absent.")


class PreviewApi(WebhookActionApi):
    @extend_schema(
        request=PreviewSerializer,
        responses=answers(
            {
                200: inline_serializer(
                    "MappingPreview",
                    {
                        "output": serializers.JSONField(allow_null=True, help_text="The mapped start request."),
                        "errors": serializers.ListField(child=serializers.CharField()),
                    },
                )
            },
            {409: NOT_A_WEBHOOK},
            body=True,
        ),
    )
    def post(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = self.previewed(trigger_id)
        serializer = PreviewSerializer(data=_body_or_empty(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if trigger.type == TriggerType.MARKETO:
            return Response(
                marketo.marketo_mapping_preview(
                    trigger=trigger,
                    payload=data.get("payload"),
                    payload_given="payload" in data,
                    mapping=data.get("mapping"),
                )
            )
        if trigger.type == TriggerType.SFMC:
            return Response(
                sfmc_mapping_preview(
                    trigger=trigger,
                    payload=data.get("payload"),
                    payload_given="payload" in data,
                    mapping=data.get("mapping"),
                )
            )
        if trigger.type == TriggerType.EVENT:
            return Response(
                event_triggers.event_mapping_preview(
                    trigger=trigger,
                    payload=data.get("payload"),
                    payload_given="payload" in data,
                    mapping=data.get("mapping"),
                )
            )
        preview = webhook_actions.mapping_preview(
            trigger=trigger, payload=data.get("payload"), payload_given="payload" in data, mapping=data.get("mapping")
        )
        return Response(preview)


class MappablePropertiesApi(WebhookActionApi):
    @extend_schema(
        responses=answers(
            {
                200: inline_serializer(
                    "MappableProperties", {"properties": serializers.ListField(child=serializers.CharField())}
                )
            },
            {409: NOT_A_WEBHOOK},
        )
    )
    def get(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = self.previewed(trigger_id)
        sample: Any
        if trigger.type == TriggerType.MARKETO:
            sample = marketo.sample_body(trigger=trigger) or marketo.example_lead(marketo.marketo_config(trigger))
        elif trigger.type in (TriggerType.WEBHOOK, TriggerType.SFMC):  # SFMC: the last execute call
            sample = trigger.sample
        else:
            sample = event_triggers.sample_body(trigger=trigger)
        return Response({"properties": mappable_properties(sample) if sample is not None else []})


class SendTestApi(WebhookActionApi):
    @extend_schema(
        request=None,
        responses=answers(
            {202: SentTestSchema, 200: SentTestSchema},
            {
                409: f"no_sample (capture or paste one first), flow_archived; {NOT_A_WEBHOOK}",
                422: "mapping_failed: the saved mapping fails on the sample, or makes no valid start request.",
            },
        ),
    )
    def post(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = self.mapped(trigger_id)
        if trigger.type == TriggerType.SFMC:
            return _answer(sfmc_sample_send_test(trigger=trigger))
        if trigger.type == TriggerType.EVENT:
            return _answer(event_triggers.event_sample_send_test(trigger=trigger))
        return _answer(webhook_actions.sample_send_test(trigger=trigger))


class ReactivateApi(WebhookActionApi):
    @extend_schema(
        request=None,
        responses=answers({200: TriggerSchema}, {409: f"trigger_not_paused; {NOT_A_WEBHOOK}"}),
    )
    def post(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = services.trigger_reactivate(trigger=self.webhook(trigger_id))
        return Response(trigger_json(trigger, request))


def request_log_json(logged: WebhookRequest) -> dict[str, Any]:
    return {
        "id": logged.pk,
        "receivedAt": logged.received_at,
        "sourceIp": logged.source_ip,
        "method": logged.method,
        "outcome": logged.outcome,
        "statusCode": logged.status_code,
        "code": logged.code or None,
        "detail": logged.detail or None,
        "flowInvocationId": logged.flow_invocation_id or None,
        "held": logged.held_state or None,
        "replayOf": logged.replay_of_id,
    }


class RequestLogApi(WebhookActionApi):
    @extend_schema(
        operation_id="triggers_requests_list",
        responses=answers({200: RequestLogSchema(many=True)}, {409: NOT_A_WEBHOOK}),
    )
    def get(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = self.logged(trigger_id)
        entries = selectors.webhook_request_list(trigger=trigger)[:200]
        return Response([request_log_json(logged) for logged in entries])


class RequestDetailApi(WebhookActionApi):
    @extend_schema(responses=answers({200: RequestDetailSchema}, {409: NOT_A_WEBHOOK}))
    def get(self, request: Request, env: str, trigger_id: int, request_id: int) -> Response:
        logged = selectors.webhook_request_get(trigger=self.logged(trigger_id), request_id=request_id)
        detail = request_log_json(logged)
        detail.update(headers=logged.headers, query=logged.query, body=logged.body, errors=logged.errors)
        return Response(detail)


class RequestReplayApi(WebhookActionApi):
    @extend_schema(
        request=None, responses=answers({202: WebhookAnswerSchema, 200: WebhookAnswerSchema}, REPLAY_REFUSALS)
    )
    def post(self, request: Request, env: str, trigger_id: int, request_id: int) -> Response:
        trigger = self.webhook(trigger_id)
        logged = selectors.webhook_request_get(trigger=trigger, request_id=request_id)
        return _answer(webhook_actions.request_replay(trigger=trigger, logged=logged))


class HeldReplayApi(WebhookActionApi):
    @extend_schema(
        request=None,
        responses=answers(
            {
                200: inline_serializer(
                    "HeldReplayed",
                    {
                        "replayed": inline_serializer(
                            "HeldReplayResult",
                            {
                                "id": serializers.IntegerField(),
                                "statusCode": serializers.IntegerField(),
                                "answer": serializers.DictField(
                                    help_text="The answer the replay got, as a sender would."
                                ),
                            },
                            many=True,
                        )
                    },
                )
            },
            {409: f"trigger_paused (reactivate first), trigger_disabled; {NOT_A_WEBHOOK}"},
        ),
    )
    def post(self, request: Request, env: str, trigger_id: int) -> Response:
        results = webhook_actions.held_requests_replay(trigger=self.webhook(trigger_id))
        return Response({"replayed": [{"id": r.request_id, "statusCode": r.status, "answer": r.body} for r in results]})


class HeldDiscardApi(WebhookActionApi):
    @extend_schema(
        request=None,
        responses=answers(
            {200: inline_serializer("HeldDiscarded", {"discarded": serializers.IntegerField()})}, {409: NOT_A_WEBHOOK}
        ),
    )
    def post(self, request: Request, env: str, trigger_id: int) -> Response:
        return Response({"discarded": webhook_actions.held_requests_discard(trigger=self.webhook(trigger_id))})


class RotateKeyApi(WebhookActionApi):
    """POST triggers/{id}/rotate-key: a Marketo trigger's new API key, shown in this answer only;
    the old key stops working at once (install the new one in Marketo)."""

    @extend_schema(
        request=None,
        responses=answers({200: TriggerSchema}, {409: "not_marketo: only Marketo triggers have an API key."}),
    )
    def post(self, request: Request, env: str, trigger_id: int) -> Response:
        trigger = selectors.trigger_get(environment=self.environment, trigger_id=trigger_id)
        key = marketo.marketo_key_rotate(trigger=trigger)
        return Response({**trigger_json(trigger, request), "apiKey": key})
