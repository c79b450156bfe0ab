"""Salesforce Marketing Cloud Journey Builder custom activity triggers (`sfmc`, SPEC section 7).

A marketer drops our activity into a journey; Journey Builder then calls the trigger's base URL
`/integrations/sfmc/{token}/` (`triggers.sfmc_urls`):
- `config.json`: the activity's configuration (`activity_config`), read when the activity is
  installed and whenever a journey uses it;
- the base itself: the configuration inspector page that Journey Builder frames (Postmonger);
- `execute`: once per contact reaching the activity, a compact JWT signed HS256 with the
  Installed Package's signing secret (`jwtSecret`), whose claims carry `inArguments` (a list
  of objects, the bindings of `config.json` resolved for the contact), `keyValue` (the
  contact key), `journeyId`, `activityId`, `definitionInstanceId`, `activityInstanceId` and
  `activityObjectID`;
- `save`, `validate`, `publish`, `stop`: the journey's lifecycle, JSON or JWT bodies.

Configuration `{"jwtSecret", "inArguments", "mapping"}` (`SfmcConfig`). The mapping is the
webhook mapping engine (`triggers.mapping`) applied to the execute call as this JSON body
(`mapping_input`):

    {
      "userId": <the "userId" in-argument when there is one, else keyValue>,
      "inArguments": {<the in-argument objects merged into one, later keys winning>},
      "keyValue", "journeyId", "activityId", "definitionInstanceId",
      "activityInstanceId", "activityObjectID"
    }

The default mapping takes `targetUserIds` from `$.userId` and `variables` from
`$.inArguments`. The last execute call's body, as above, is the trigger's sample
(`Trigger.sample`, refreshed at most once a second): what members map and preview against.

An execute call (`sfmc_execute`) is checked in this order, each refusal with its own code and
every call written to the trigger's request log (`WebhookRequest`, the path under `:path`):
token (404) → mode (403 trigger_disabled) → the JWT, HS256 only, with the saved secret
(401 signature_invalid: another algorithm, `none`, a wrong signature, garbage or JSON) → its
claims (400 invalid_payload) → mapping (422 mapping_failed) → durable acceptance, `200 {}`
(also for a duplicate). Its `flowInvocationId` is derived from `activityId`,
`definitionInstanceId` and `keyValue` whatever the mapping says, so Journey Builder's retries,
concurrent ones too, start once. Test mode reaches test users only (the start pipeline's rule).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypedDict

import jwt
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from flows.models import Flow, FlowStatus, Mode
from flows.selectors import FlowForStart
from flows.services import FlowRefused, StaleRead, invocations_accept, start_requests_check
from flows.start_requests import StartRequest
from workbench.client_address import client_address
from workbench.errors import FieldErrors, Invalid
from workbench.json_values import UnstorableJSON, check_storable
from workbench.raw_rows import RowVersion
from workbench.shapes import NOT_ONLY_WHITE_SPACE, Text, validate_shape

from . import services
from .intake import Answer, IncomingRequest, accepted_answer, accepted_as_before, log_entry, refused_start
from .mapping import MappingConfig, MappingError, WebhookInput, apply_mapping, validate_mapping_config
from .models import RequestOutcome, Trigger, TriggerMode, TriggerType, WebhookRequest
from .start_reads import WebhookTarget, recent_sfmc_targets, webhook_target
from .webhook_actions import mapping_output, starts_send_as_test

DEFAULT_IN_ARGUMENTS: list[dict[str, str]] = [{"userId": "{{Contact.Key}}"}]
DEFAULT_SFMC_MAPPING: MappingConfig = {
    "type": "structured",
    "structured": {"targetUserIds": "$.userId", "variables": "$.inArguments"},
}
# The lifecycle calls of configurationArguments (SPEC 7), beside execute.
CONFIG_CALLS = ("save", "validate", "publish", "stop")
# Who may frame the configuration inspector: Marketing Cloud's application hosts (Journey
# Builder's frame, jbinteractions.<stack>.marketingcloudapps.com) and the Marketing Cloud shell
# around it (mc.<stack>.exacttarget.com); frame-ancestors checks every ancestor.
FRAME_ANCESTORS = ["https://*.exacttarget.com", "https://*.marketingcloudapps.com"]
# HS256 keys shorter than its hash are weak (RFC 7518 3.2); Marketing Cloud's are much longer.
MIN_SECRET_LENGTH = 32
MAX_SECRET_LENGTH = 512
MAX_IN_ARGUMENTS = 50
MAX_IN_ARGUMENT_KEYS = 20
MAX_IN_ARGUMENT_VALUE = 1000
KEY_PREFIX = "sfmc-"
# Limits announced in config.json: how long Journey Builder waits for execute, how often and how
# far apart it retries, and how many calls it makes at once.
EXECUTE_TIMEOUT_MS = 10000
EXECUTE_RETRY_COUNT = 3
EXECUTE_RETRY_DELAY_MS = 1000
EXECUTE_CONCURRENT_REQUESTS = 5
LOGGED_PATH = ":path"
# How often the sample follows the newest execute call (see `_sample_keep`).
SAMPLE_REFRESH = timedelta(seconds=1)


class SfmcConfig(TypedDict):
    """An sfmc trigger's `config`, as `sfmc_config_clean` stores it ("" : no secret yet)."""

    jwtSecret: str
    inArguments: list[dict[str, str]]
    mapping: MappingConfig


def sfmc_config(trigger: Trigger) -> SfmcConfig:
    config: SfmcConfig = trigger.config
    return config


# --- Configuration --------------------------------------------------------------------------


@extend_schema_field(
    {
        "anyOf": [
            {"type": "string", "enum": [services.SECRET_MASK]},
            {
                "type": "string",
                "minLength": MIN_SECRET_LENGTH,
                "maxLength": MAX_SECRET_LENGTH,
                "pattern": re.compile(NOT_ONLY_WHITE_SPACE.regex).pattern,
            },
        ]
    }
)
class JwtSecretField(Text):
    """The Installed Package's JWT signing secret; the mask keeps the saved one (if any)."""

    def run_validation(self, data: Any = serializers.empty) -> Any:
        if data == services.SECRET_MASK:
            return data
        return super().run_validation(data)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "help_text",
            "The Installed Package's JWT Signing Secret (write-only: always shown masked). "
            f"{MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters; the mask keeps the saved one.",
        )
        super().__init__(
            min_length=MIN_SECRET_LENGTH,
            max_length=MAX_SECRET_LENGTH,
            trim_whitespace=False,
            validators=[NOT_ONLY_WHITE_SPACE],
            **kwargs,
        )


IN_ARGUMENTS_SCHEMA = {
    "type": "array",
    "minItems": 1,
    "maxItems": MAX_IN_ARGUMENTS,
    "items": {
        "type": "object",
        "minProperties": 1,
        "maxProperties": MAX_IN_ARGUMENT_KEYS,
        "additionalProperties": {"type": "string", "maxLength": MAX_IN_ARGUMENT_VALUE},
    },
    "description": "The Journey Builder bindings to request, e.g. "
    '[{"userId": "{{Contact.Key}}"}, {"firstName": "{{Contact.Attribute.Profile.FirstName}}"}].',
}


@extend_schema_field(IN_ARGUMENTS_SCHEMA)
class InArgumentsField(serializers.Field):
    """A list of objects of text values, as Journey Builder's inArguments are."""

    def to_internal_value(self, data: Any) -> list[dict[str, str]]:
        problems = in_arguments_problems(data)
        if problems:
            raise serializers.ValidationError(problems)
        return [dict(item) for item in data]

    def to_representation(self, value: Any) -> Any:
        return value


def in_arguments_problems(value: Any) -> list[str]:
    """What is wrong with an inArguments value ([] when nothing is)."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_IN_ARGUMENTS:
        return [f"Expected a list of 1 to {MAX_IN_ARGUMENTS} objects, such as {json.dumps(DEFAULT_IN_ARGUMENTS)}."]
    problems = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not 1 <= len(item) <= MAX_IN_ARGUMENT_KEYS:
            problems.append(f"Item {index}: expected an object of 1 to {MAX_IN_ARGUMENT_KEYS} names and values.")
            continue
        for key, binding in item.items():
            if not isinstance(binding, str) or len(binding) > MAX_IN_ARGUMENT_VALUE:
                problems.append(
                    f"Item {index}, {key!r}: expected a text of at most {MAX_IN_ARGUMENT_VALUE} characters "
                    '(a binding such as "{{Contact.Key}}", or a fixed value).'
                )
    return problems


def sfmc_config_clean(
    *, jwt_secret: Any = None, in_arguments: Any = None, mapping: Any = None, current: Any = None
) -> SfmcConfig:
    """The configuration from what was given over what it had; 400 invalid_request with every problem.

    A `jwt_secret` equal to `SECRET_MASK` keeps the saved secret, as the API shows it masked."""
    config: dict[str, Any] = {"jwtSecret": "", "inArguments": DEFAULT_IN_ARGUMENTS, "mapping": DEFAULT_SFMC_MAPPING}
    if current:
        config.update(current)
    errors: FieldErrors = {}
    if jwt_secret is not None and jwt_secret != services.SECRET_MASK:  # the mask keeps what is saved
        try:
            config["jwtSecret"] = validate_shape(JwtSecretField(), jwt_secret, root="jwtSecret")
        except Invalid as invalid:
            errors.update({"jwtSecret": [m for messages in invalid.errors.values() for m in messages]})
    if in_arguments is not None:
        problems = in_arguments_problems(in_arguments)
        if problems:
            errors["inArguments"] = problems
        else:
            try:
                check_storable(in_arguments)
            except UnstorableJSON as error:
                errors["inArguments"] = [str(error)]
            else:
                config["inArguments"] = [dict(item) for item in in_arguments]
    if mapping is not None:
        try:
            config["mapping"] = validate_mapping_config(mapping)
        except Invalid as invalid:
            errors.update(invalid.within("mapping"))
    if errors:
        raise services.TriggerRefused(400, "invalid_request", "The Marketing Cloud trigger is not valid.", errors)
    return {"jwtSecret": config["jwtSecret"], "inArguments": config["inArguments"], "mapping": config["mapping"]}


def in_arguments_text(in_arguments: list[dict[str, str]]) -> str:
    """In-arguments as the setup page edits them: one "name: binding" per line."""
    return "\n".join(f"{key}: {value}" for item in in_arguments for key, value in item.items())


def in_arguments_from_text(text: str) -> list[dict[str, str]]:
    """The page's "name: binding" lines as in-arguments; Invalid saying which line is wrong."""
    in_arguments: list[dict[str, str]] = []
    problems: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, binding = line.partition(":")
        name = name.strip()
        if not colon or not name:
            problems.append(f"Line {number}: write a name, a colon and the binding (userId: {{{{Contact.Key}}}}).")
        elif name in seen:
            problems.append(f"Line {number}: {name} is named twice.")
        else:
            seen.add(name)
            in_arguments.append({name: binding.strip()})
    if not in_arguments and not problems:
        problems.append("Add at least one in-argument, such as userId: {{Contact.Key}}.")
    if problems:
        raise Invalid({"inArguments": problems})
    return in_arguments


def sfmc_trigger_create(
    *,
    flow: Flow,
    by: User | None = None,
    name: str = "",
    jwt_secret: Any = None,
    in_arguments: Any = None,
    mapping: Any = None,
    mode: str = TriggerMode.TEST,
) -> Trigger:
    """A new Marketing Cloud trigger with its unguessable base URL token, in test mode unless
    `mode` says (live needs a published flow). The secret may come later: until it is set,
    execute calls are refused (401)."""
    if Flow.objects.filter(pk=flow.pk, status=FlowStatus.ARCHIVED).exists():
        raise services.TriggerRefused(
            409, "flow_archived", "This flow is archived and starts nothing; it gets no new triggers."
        )
    name_clean = services.clean_name(name)
    config = sfmc_config_clean(jwt_secret=jwt_secret, in_arguments=in_arguments, mapping=mapping)
    with transaction.atomic():
        trigger = Trigger.objects.create(
            environment_id=flow.environment_id,
            flow=flow,
            type=TriggerType.SFMC,
            name=name_clean,
            mode=TriggerMode.TEST,
            config=dict(config),
            token=secrets.token_urlsafe(32),
            created_by=by,
        )
        if mode != TriggerMode.TEST:
            trigger = services.trigger_mode_set(trigger=trigger, mode=mode, by=by)
    return trigger


def sfmc_trigger_update(
    *,
    trigger: Trigger,
    by: User | None = None,
    name: str | None = None,
    jwt_secret: Any = None,
    in_arguments: Any = None,
    mapping: Any = None,
    mode: str | None = None,
) -> Trigger:
    """Change the configuration, name and mode; nothing is written when any part is refused."""
    config = sfmc_config_clean(
        jwt_secret=jwt_secret, in_arguments=in_arguments, mapping=mapping, current=trigger.config
    )
    return services.configured_trigger_save(trigger=trigger, config=config, by=by, name=name, mode=mode)


def masked_secret(trigger: Trigger) -> str | None:
    """The secret as the API and the pages show it: the mask when one is saved, else None."""
    return services.SECRET_MASK if trigger.config.get("jwtSecret") else None


def sfmc_api_json(trigger: Trigger, base_url: str) -> dict[str, Any]:
    """The trigger's own fields in the configuration API (`url`: the absolute base URL)."""
    config = sfmc_config(trigger)
    return {
        "url": base_url,
        "configJsonUrl": f"{base_url}config.json",
        "jwtSecret": masked_secret(trigger),
        "inArguments": config.get("inArguments") or DEFAULT_IN_ARGUMENTS,
        "mapping": config.get("mapping") or DEFAULT_SFMC_MAPPING,
        "sample": trigger.sample,
    }


# --- config.json ----------------------------------------------------------------------------


def base_path(trigger: Trigger) -> str:
    return f"/integrations/sfmc/{trigger.token}/"


def activity_config(*, trigger: Trigger, base_url: str, icon_url: str) -> dict[str, Any]:
    """The custom activity's config.json (SPEC 7) for a trigger whose absolute base URL
    (ending in "/") is `base_url`."""
    in_arguments = sfmc_config(trigger).get("inArguments") or DEFAULT_IN_ARGUMENTS
    flow_name = trigger.flow.name
    return {
        "workflowApiVersion": "1.1",
        "metaData": {"icon": icon_url, "category": "message", "isConfigured": False},
        "type": "REST",
        "lang": {
            "en-US": {
                "name": f"Action Flow: {flow_name}"[:100],
                "description": f"Starts the Action Flow “{flow_name}” for each contact that reaches this activity.",
            }
        },
        "arguments": {
            "execute": {
                "inArguments": in_arguments,
                "outArguments": [],
                "url": f"{base_url}execute",
                "verb": "POST",
                "body": "",
                "header": "",
                "format": "json",
                "useJwt": True,
                "timeout": EXECUTE_TIMEOUT_MS,
                "retryCount": EXECUTE_RETRY_COUNT,
                "retryDelay": EXECUTE_RETRY_DELAY_MS,
                "concurrentRequests": EXECUTE_CONCURRENT_REQUESTS,
            }
        },
        "configurationArguments": {
            call: {"url": f"{base_url}{call}", "verb": "POST", "useJwt": True} for call in CONFIG_CALLS
        },
        "userInterfaces": {"configInspector": {"size": "scm-lg"}},
        "schema": {
            "arguments": {
                "execute": {
                    "inArguments": [
                        {key: {"dataType": "Text", "isNullable": key != "userId", "direction": "in"} for key in item}
                        for item in in_arguments
                    ],
                    "outArguments": [],
                }
            }
        },
    }


# --- Receiving ------------------------------------------------------------------------------


def sfmc_target(*, token: str) -> WebhookTarget | None:
    """The Marketing Cloud trigger of a base URL token, with its flow as a start reads it (the
    webhooks' one prepared statement: execute is a hot path)."""
    return webhook_target(token=token, trigger_type=TriggerType.SFMC)


class JwtInvalid(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# How far Marketing Cloud's clock may be from ours when `exp`, `nbf` and `iat` are checked:
# Journey Builder signs with its own clock, and a contact refused for a few seconds of skew
# would be retried and then dropped from the journey.
JWT_CLOCK_LEEWAY = timedelta(seconds=60)


def jwt_claims(body: bytes, secret: str) -> dict[str, Any]:
    """The claims of a compact JWT signed HS256 with `secret`; JwtInvalid for anything else
    (`none`, any other algorithm, a wrong signature, a token expired for longer than
    JWT_CLOCK_LEEWAY, no JWT at all)."""
    if not secret:
        raise JwtInvalid("no JWT signing secret is set on this trigger yet")
    try:
        token = body.decode("ascii").strip()
    except UnicodeDecodeError:
        raise JwtInvalid("the body is not a JWT") from None
    if token.count(".") != 2:
        raise JwtInvalid("the body is not a compact JWT (header.payload.signature)")
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], leeway=JWT_CLOCK_LEEWAY)
    except jwt.InvalidAlgorithmError:
        raise JwtInvalid("only HS256 is accepted") from None
    except jwt.InvalidSignatureError:
        raise JwtInvalid("the signature does not match the secret") from None
    except jwt.PyJWTError as error:
        raise JwtInvalid(str(error) or "the JWT is not valid") from None
    if not isinstance(claims, dict):
        raise JwtInvalid("the JWT's payload is not an object")
    return claims


def merged_in_arguments(in_arguments: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for item in in_arguments if isinstance(in_arguments, list) else []:
        if isinstance(item, dict):
            merged.update(item)
    return merged


CLAIMS = ("keyValue", "journeyId", "activityId", "definitionInstanceId", "activityInstanceId", "activityObjectID")
REQUIRED_CLAIMS = ("keyValue", "activityId", "definitionInstanceId")


def claims_problems(claims: dict[str, Any]) -> list[str]:
    problems = []
    in_arguments = claims.get("inArguments", [])
    if not isinstance(in_arguments, list) or not all(isinstance(item, dict) for item in in_arguments):
        problems.append("inArguments: expected a list of objects.")
    for name in REQUIRED_CLAIMS:
        value = claims.get(name)
        if not isinstance(value, str) or not value:
            problems.append(f"{name}: expected a text.")
    return problems


def mapping_input(claims: dict[str, Any]) -> dict[str, Any]:
    """An execute call's claims as the mapping reads them (see the module docstring)."""
    merged = merged_in_arguments(claims.get("inArguments"))
    user_id = merged.get("userId")
    body: dict[str, Any] = {
        "userId": user_id if isinstance(user_id, str) and user_id.strip() else claims.get("keyValue"),
        "inArguments": merged,
    }
    body.update({name: claims.get(name) for name in CLAIMS})
    return body


def invocation_key(*, activity_id: str, definition_instance_id: str, key_value: str) -> str:
    """The flowInvocationId of a contact's pass through the activity: the same for every retry."""
    identity = json.dumps([activity_id, definition_instance_id, key_value], ensure_ascii=False)
    return KEY_PREFIX + hashlib.sha256(identity.encode()).hexdigest()[:48]


def _keyed(starts: list[StartRequest], key: str) -> list[StartRequest]:
    if len(starts) == 1:
        return [dataclasses.replace(starts[0], flow_invocation_id=key)]
    return [dataclasses.replace(start, flow_invocation_id=f"{key}-{index}") for index, start in enumerate(starts)]


def _mapped_starts(trigger: Trigger, body: dict[str, Any]) -> list[StartRequest] | Answer:
    """The starts the saved mapping makes of the body, or the 422 answer saying why not."""
    mapping = sfmc_config(trigger).get("mapping") or DEFAULT_SFMC_MAPPING
    try:
        mapped = apply_mapping(mapping, WebhookInput(body=body, headers={}, query={}, method="POST"))
        check_storable(mapped)
    except MappingError as failed:
        return Answer.refused(422, "mapping_failed", "The mapping failed.", {"mapping": failed.errors})
    except UnstorableJSON as error:
        return Answer.refused(422, "mapping_failed", "The mapping failed.", {"mapping": [f"The output: {error}"]})
    try:
        return start_requests_check(mapped)
    except FlowRefused as refused:
        return refused_start(refused)


def _refused_by_mode(trigger: Trigger) -> Answer | None:
    if trigger.mode == TriggerMode.DISABLED:
        return Answer.refused(403, "trigger_disabled", "This Marketing Cloud trigger is disabled.")
    if trigger.mode == TriggerMode.PAUSED:
        return Answer.refused(403, "trigger_paused", f"This trigger is paused: {trigger.paused_reason}")
    return None


def sfmc_execute(*, token: str, request: IncomingRequest) -> Answer:
    """Journey Builder's execute call for one contact (see the module docstring)."""
    source_ip = _source_ip(request)
    answer = accepted_as_before(
        recent_sfmc_targets,
        token,
        lambda recent: _execute(recent.trigger, recent.flow, request, source_ip, read_as=recent.versions),
    )
    if answer is not None:
        return answer
    target = sfmc_target(token=token)
    if target is None:
        return Answer.refused(404, "not_found", "No Marketing Cloud activity at this URL.")
    trigger = target.trigger
    answer = _execute(trigger, target.flow, request, source_ip)
    if answer.outcome == RequestOutcome.ACCEPTED:
        recent_sfmc_targets.remember(token, target)
    elif answer.outcome != RequestOutcome.DUPLICATE:
        _log(trigger, request, source_ip, answer)  # an accepted start's entry was written with it
    return answer


def _execute(
    trigger: Trigger, flow: FlowForStart, request: IncomingRequest, source_ip: str, read_as: Sequence[RowVersion] = ()
) -> Answer:
    """1. Mode, JWT and claims. 2. The sample: the newest call's mapping input. 3. Map and key
    the starts. 4. Accept them with the log entry made for "accepted" as an extra row (one
    statement); repeats are logged for what they were. With `read_as` (a recent read's rows,
    see intake.accepted_as_before) only the starts are written, while those rows hold:
    StaleRead otherwise, and when the sample is due to be kept."""
    refused = _refused_by_mode(trigger)
    if refused is not None:
        return refused
    try:
        claims = jwt_claims(request.body, sfmc_config(trigger).get("jwtSecret", ""))
    except JwtInvalid as invalid:
        return Answer.refused(401, "signature_invalid", f"The JWT is not valid: {invalid.reason}.")
    problems = claims_problems(claims)
    if problems:
        return Answer.refused(400, "invalid_payload", "The execute call is not valid.", {"claims": problems})
    body = mapping_input(claims)
    try:
        check_storable(body)
    except UnstorableJSON as error:
        return Answer.refused(400, "invalid_payload", f"The execute call cannot be stored: {error}")
    if read_as and _sample_due(trigger, request.received_at):
        raise StaleRead
    _sample_keep(trigger, body, request.received_at)
    starts = _mapped_starts(trigger, body)
    if isinstance(starts, Answer):
        return starts
    key = invocation_key(
        activity_id=claims["activityId"],
        definition_instance_id=claims["definitionInstanceId"],
        key_value=claims["keyValue"],
    )
    starts = _keyed(starts, key)
    mode = Mode.LIVE if trigger.mode == TriggerMode.LIVE else Mode.TEST
    if_accepted = _execute_answer(accepted_answer([start.flow_invocation_id or "" for start in starts], mode, True))
    try:
        result = invocations_accept(
            flow=flow,
            mode=mode,
            starts=starts,
            source=TriggerType.SFMC,
            trigger_id=trigger.pk,
            extra_rows=[log_entry(trigger, request, source_ip, if_accepted)],
            unchanged=read_as,
        )
    except FlowRefused as refused_start_:
        return refused_start(refused_start_)
    keys = [outcome.flow_invocation_id for outcome in result.outcomes]
    answer = _execute_answer(accepted_answer(keys, mode, result.any_accepted))
    if not result.extra_rows_written:
        _log(trigger, request, source_ip, answer)
    return answer


def _sample_keep(trigger: Trigger, body: dict[str, Any], now: datetime) -> None:
    """Keep the call's mapping input as the sample, at most once per SAMPLE_REFRESH: every call
    writing the one trigger row would queue a journey's concurrent calls behind its lock."""
    if not _sample_due(trigger, now):
        return
    Trigger.objects.filter(Q(updated_at__lte=now - SAMPLE_REFRESH) | Q(sample__isnull=True), pk=trigger.pk).update(
        sample=body, updated_at=now
    )


def _sample_due(trigger: Trigger, now: datetime) -> bool:
    return trigger.sample is None or trigger.updated_at <= now - SAMPLE_REFRESH


def _execute_answer(answer: Answer) -> Answer:
    """Journey Builder reads only the status: `200 {}`, accepted or a duplicate alike."""
    return dataclasses.replace(answer, status=200, body={})


def sfmc_config_call(*, token: str, call: str, request: IncomingRequest) -> Answer:
    """save, validate, publish or stop: 200 {} (validate and publish: 400 while the trigger
    could start nothing). A JWT body must verify; a JSON (or empty) body is taken as it is."""
    target = sfmc_target(token=token)
    if target is None:
        return Answer.refused(404, "not_found", "No Marketing Cloud activity at this URL.")
    trigger, source_ip = target.trigger, _source_ip(request)
    answer = _config_call(trigger, target.flow, call, request)
    _log(trigger, request, source_ip, answer)
    return answer


def _config_call(trigger: Trigger, flow: FlowForStart, call: str, request: IncomingRequest) -> Answer:
    text = request.body.strip()
    if text and not text.startswith((b"{", b"[")):
        try:
            jwt_claims(text, sfmc_config(trigger).get("jwtSecret", ""))
        except JwtInvalid as invalid:
            return Answer.refused(401, "signature_invalid", f"The JWT is not valid: {invalid.reason}.")
    elif text:
        try:
            json.loads(text)
        except ValueError:
            return Answer.refused(400, "invalid_payload", "The body is neither JSON nor a JWT.")
    if call in ("validate", "publish"):
        reason = not_ready_reason(trigger, flow)
        if reason is not None:
            return Answer.refused(400, reason[0], reason[1])
    return Answer(status=200, body={}, outcome=RequestOutcome.ACCEPTED)


def not_ready_reason(trigger: Trigger, flow: FlowForStart) -> tuple[str, str] | None:
    """Why a journey using this activity should not be validated or published now, or None."""
    if trigger.mode == TriggerMode.DISABLED:
        return "trigger_disabled", "The Action Flow trigger is disabled: enable it (test or live) in the Workbench."
    if trigger.mode == TriggerMode.PAUSED:
        return "trigger_paused", "The Action Flow trigger is paused: reactivate it in the Workbench."
    if flow.status == FlowStatus.ARCHIVED:
        return "flow_archived", "The Action Flow is archived and starts nothing."
    if trigger.mode == TriggerMode.LIVE and flow.latest_version_number is None:
        return "flow_not_published", "The Action Flow has no published version: publish it in the Workbench."
    if not sfmc_config(trigger).get("jwtSecret"):
        return "secret_missing", "No JWT signing secret is set on the Action Flow trigger: paste it in the Workbench."
    return None


# --- The request log ------------------------------------------------------------------------


def _source_ip(request: IncomingRequest) -> str:
    return client_address(request.remote_addr, request.forwarded_for, settings.TRUSTED_PROXIES)


def _log(trigger: Trigger, request: IncomingRequest, source_ip: str, answer: Answer) -> None:
    log_entry(trigger, request, source_ip, answer).instance().save()


def jwt_as_sent(body: str) -> dict[str, str] | None:
    """A logged JWT's header and claims as they were sent, as indented JSON for members reading
    the log (NOT verified: the entry's outcome says whether it was); None for no JWT."""
    token = body.strip()
    if token.count(".") != 2:
        return None
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return {
        "header": json.dumps(header, indent=2, ensure_ascii=False),
        "claims": json.dumps(claims, indent=2, ensure_ascii=False),
    }


def logged_call(entry: WebhookRequest) -> str:
    """Which call a log entry was: execute, save, validate, publish or stop."""
    path = str((entry.headers or {}).get(LOGGED_PATH, ""))
    return path.rstrip("/").rsplit("/", 1)[-1] or "inspector"


# --- Sample, preview and test ---------------------------------------------------------------


EXAMPLE_CLAIMS: dict[str, Any] = {
    "inArguments": [{"userId": "tester-1"}],
    "keyValue": "tester-1",
    "journeyId": "00000000-0000-0000-0000-000000000001",
    "activityId": "00000000-0000-0000-0000-000000000002",
    "definitionInstanceId": "00000000-0000-0000-0000-000000000003",
    "activityInstanceId": "00000000-0000-0000-0000-000000000004",
    "activityObjectID": "00000000-0000-0000-0000-000000000005",
}


def sfmc_mapping_preview(
    *, trigger: Trigger, payload: Any = None, payload_given: bool = False, mapping: Any = None
) -> dict[str, Any]:
    """What an execute call's mapping input (the last call's when none is given) maps to; starts
    nothing. The output shows the flowInvocationId the call starts under."""
    body = payload if payload_given else trigger.sample
    if body is None:
        return {"output": None, "errors": [NO_SAMPLE]}
    preview = mapping_output(body=body, mapping=mapping, saved=sfmc_config(trigger).get("mapping"))
    output = preview["output"]
    if isinstance(output, dict) and isinstance(body, dict):
        activity, run, contact = (body.get(name) for name in ("activityId", "definitionInstanceId", "keyValue"))
        if isinstance(activity, str) and isinstance(run, str) and isinstance(contact, str):
            key = invocation_key(activity_id=activity, definition_instance_id=run, key_value=contact)
            preview = {**preview, "output": {**output, "flowInvocationId": key}}
    return preview


NO_SAMPLE = (
    "Journey Builder has not called execute yet: run a test of the journey (or wait for a contact), "
    "and the last call becomes the sample."
)


def sfmc_sample_send_test(*, trigger: Trigger) -> Answer:
    """Run the sample through the saved mapping as a test start (a fresh key each time)."""
    if trigger.sample is None:
        return Answer.refused(409, "no_sample", NO_SAMPLE)
    starts = _mapped_starts(trigger, trigger.sample)
    if isinstance(starts, Answer):
        return starts
    sample = trigger.sample if isinstance(trigger.sample, dict) else {}
    key = invocation_key(
        activity_id=str(sample.get("activityId")),
        definition_instance_id=str(sample.get("definitionInstanceId")),
        key_value=str(sample.get("keyValue")),
    )
    return starts_send_as_test(trigger=trigger, starts=_keyed(starts, key))
