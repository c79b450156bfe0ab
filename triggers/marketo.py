"""Adobe Marketo Self-Service Flow Step triggers (SPEC section 7, `marketo`).

A Marketo admin installs the trigger as a service (Admin → Service Providers → Add new
service) from its OpenAPI document, `GET /integrations/marketo/<token>/openapi.json`, and the
API key the Workbench showed once. Smart campaigns then send their leads in batches to
`submitAsyncAction`; each lead starts the flow once and its result goes back to Marketo's
callback URL.

Configuration (`MarketoTriggerConfig`): the API key (only its SHA-256 is stored), the lead
field holding our `userId` (`leadUserIdField`, default `userId`), the variables offered to
Marketo users in the flow step (`flowFields`) and the `mapping` (the webhook mapping engine).

What the mapping reads, per lead (`lead_body`, also the sample the Workbench previews: the
last lead received):

    {
      "userId": "<the lead's leadUserIdField value as text, or null>",
      "lead": {"id": 123, ...the lead fields Marketo sent (objectContext)},
      "fields": {"<flow field name>": <value the Marketo user set in the flow step>, ...},
      "flowStepContext": {...everything Marketo sent as the flow step's values},
      "campaignId": 4567,
      "munchkinId": "123-ABC-456",
      "programMemberContext": {...}, "triggeringContext": {...}   (when Marketo sends them)
    }

The default mapping takes `targetUserIds` from `$.userId` and `variables` from `$.fields`.
Whatever the mapping says, a lead's `flowInvocationId` is derived from Marketo's batch
`token` and the lead's `id` (`lead_key`), so a batch Marketo submits again starts nothing new.

The life of a batch:
1. `marketo_submit` (on the request): checks the key, the JSON and its shape, and makes the
   batch durable with ONE insert (`MarketoBatch`), then answers 201. Nothing else.
2. `marketo_batch_process` (a worker, `triggers.marketo_process_batch`): claims the batch
   (lease), maps each lead, starts them through the start pipeline, and in the same
   transaction writes the callbacks (`MarketoCallback`, at most 1,000 leads each), the
   request-log entry of the batch and the trigger's sample.
3. `marketo_callback_deliver` (the same worker right after that commit, `marketo_batch_run`;
   later ones `triggers.marketo_deliver_callback`): claims a due callback (lease), POSTs it
   through the SSRF guard (`triggers.outbound`) and records the attempt in the request log; a
   failure is retried with exponential backoff for CALLBACK_RETRY_WINDOW; a URL the guard
   refuses is never retried.
4. `marketo_sweep` (beat): sends again batches nobody processed and callbacks that are due,
   including those whose worker died holding the lease.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from flows.models import Flow, FlowStatus, Mode
from flows.selectors import FlowForStart, flow_for_start
from flows.services import FlowRefused, invocations_accept
from flows.start_requests import MAX_ID_LENGTH, StartRequest, parse_start_requests
from workbench.celery import enqueue
from workbench.client_address import client_address
from workbench.errors import FieldErrors, Invalid
from workbench.json_values import MAX_JSON_DEPTH, UnstorableJSON, check_storable, loads_storable

from . import services
from .auto_starts import start_mode, test_user_ids
from .mapping import MappingConfig, MappingError, WebhookInput, apply_mapping, validate_mapping_config
from .models import (
    MarketoBatch,
    MarketoCallback,
    MarketoCallbackStatus,
    MarketoFlowField,
    MarketoTriggerConfig,
    RequestOutcome,
    Trigger,
    TriggerMode,
    TriggerType,
    WebhookRequest,
)
from .outbound import OutboundFailed, OutboundRefused, post_json
from .webhook_actions import mapping_output

logger = logging.getLogger(__name__)

DEFAULT_LEAD_USER_ID_FIELD = "userId"
DEFAULT_MARKETO_MAPPING: MappingConfig = {
    "type": "structured",
    "structured": {"targetUserIds": "$.userId", "variables": "$.fields"},
}
# Marketo's data types for flow attributes (its Service Provider Interface, `fieldType`).
FIELD_TYPES = ("string", "text", "boolean", "integer", "float", "date", "datetime", "email", "url", "score")
# The flow attribute every flow step has: which flow it starts (its primary attribute).
ACTION_FLOW_ATTRIBUTE = "actionFlow"
FIELD_NAME = re.compile(r"^(?!actionFlow$)[A-Za-z][A-Za-z0-9_]{0,49}$")
LEAD_FIELD_NAME = re.compile(r"^(?!id$)[A-Za-z][A-Za-z0-9_]{0,99}$")
MAX_FLOW_FIELDS = 20
MAX_LABEL = 100
MAX_DESCRIPTION = 500
FLOW_FIELD_KEYS = ("name", "label", "type", "required", "description")

API_KEY_PREFIX = "mkto_"
API_KEY_HEADER = "x-api-key"
# Results per callback: Marketo takes at most 1,000 leads per callback (SPEC section 7).
CALLBACK_LEADS = 1000
# A worker's claim on a batch or a callback; past it, the sweep gives the work to another.
BATCH_LEASE = timedelta(minutes=5)
CALLBACK_LEASE = timedelta(seconds=60)
# Failed callbacks are retried after 15 s, 30 s, 1 min, ... at most 10 min apart, for 6 hours.
CALLBACK_FIRST_DELAY = timedelta(seconds=15)
CALLBACK_MAX_DELAY = timedelta(minutes=10)
CALLBACK_RETRY_WINDOW = timedelta(hours=6)
SWEEP_LIMIT = 500
# Headers of Marketo's requests never kept (the API key is a credential).
MASK = "********"
# Marketo's credentials in a body the log keeps as text (a refused call's, perhaps not JSON).
_SECRETS_IN_TEXT = re.compile(rb'"(apiCallBackKey|token)"\s*:\s*"(?:[^"\\]|\\.)*"')
UNLOGGED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", API_KEY_HEADER})
MAX_LOGGED_HEADER = 1000


# --- Configuration --------------------------------------------------------------------------


def api_key_new() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_matches(config: dict[str, Any], key: str | None) -> bool:
    """Whether `key` is the trigger's API key (constant time)."""
    stored = config.get("apiKeyHash")
    if not key or not isinstance(stored, str):
        return False
    return hmac.compare_digest(api_key_hash(key), stored)


def _key_parts(key: str) -> dict[str, str]:
    return {"apiKeyHash": api_key_hash(key), "apiKeyHint": key[-4:]}


def _clean_flow_fields(value: Any) -> list[MarketoFlowField]:
    if not isinstance(value, list):
        raise Invalid({"flowFields": ['Expected a list of fields: [{"name", "label", "type"}].']})
    if len(value) > MAX_FLOW_FIELDS:
        raise Invalid({"flowFields": [f"At most {MAX_FLOW_FIELDS} fields."]})
    errors: FieldErrors = {}
    fields: list[MarketoFlowField] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        at = f"flowFields.{index}"
        if not isinstance(item, dict):
            errors[at] = ['Expected an object: {"name", "label", "type", "required", "description"}.']
            continue
        unknown = sorted(set(item) - set(FLOW_FIELD_KEYS))
        if unknown:
            errors[at] = [f"Unknown keys: {', '.join(unknown)}."]
            continue
        name = item.get("name")
        if not isinstance(name, str) or not FIELD_NAME.match(name):
            errors[f"{at}.name"] = [
                "Expected a name of letters, digits and _ starting with a letter (at most 50); "
                f"{ACTION_FLOW_ATTRIBUTE} is the flow step's own."
            ]
            continue
        if name in seen:
            errors[f"{at}.name"] = [f"{name} is defined twice."]
            continue
        seen.add(name)
        field: MarketoFlowField = {"name": name, "label": name, "type": "string", "required": False}
        label = item.get("label")
        if label is not None:
            if not isinstance(label, str) or len(label) > MAX_LABEL:
                errors[f"{at}.label"] = [f"Expected a text of at most {MAX_LABEL} characters."]
            elif label.strip():
                field["label"] = label.strip()
        kind = item.get("type")
        if kind is not None:
            if kind not in FIELD_TYPES:
                errors[f"{at}.type"] = [f"Expected one of {', '.join(FIELD_TYPES)}."]
            else:
                field["type"] = kind
        required = item.get("required")
        if required is not None:
            if not isinstance(required, bool):
                errors[f"{at}.required"] = ["Expected true or false."]
            else:
                field["required"] = required
        description = item.get("description")
        if description is not None:
            if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
                errors[f"{at}.description"] = [f"Expected a text of at most {MAX_DESCRIPTION} characters."]
            elif description.strip():
                field["description"] = description.strip()
        fields.append(field)
    if errors:
        raise Invalid(errors)
    return fields


def marketo_config_clean(
    *, lead_user_id_field: Any = None, flow_fields: Any = None, mapping: Any = None, current: Any = None
) -> dict[str, Any]:
    """The configuration (without the key) from what was given over what it had; 400 with every problem."""
    config: dict[str, Any] = {
        "leadUserIdField": DEFAULT_LEAD_USER_ID_FIELD,
        "flowFields": [],
        "mapping": DEFAULT_MARKETO_MAPPING,
    }
    if current:
        config.update(current)
    errors: FieldErrors = {}
    if lead_user_id_field is not None:
        if isinstance(lead_user_id_field, str) and LEAD_FIELD_NAME.match(lead_user_id_field):
            config["leadUserIdField"] = lead_user_id_field
        else:
            errors["leadUserIdField"] = [
                "Expected a Marketo lead field's API name (letters, digits and _, starting with a letter; not id)."
            ]
    if flow_fields is not None:
        try:
            config["flowFields"] = _clean_flow_fields(flow_fields)
        except Invalid as invalid:
            errors.update(invalid.errors)
    if mapping is not None:
        try:
            config["mapping"] = validate_mapping_config(mapping)
        except Invalid as invalid:
            errors.update(invalid.within("mapping"))
    if errors:
        raise services.TriggerRefused(400, "invalid_request", "The Marketo trigger is not valid.", errors)
    return config


@dataclass(frozen=True)
class CreatedTrigger:
    trigger: Trigger
    api_key: str  # shown once


def marketo_trigger_create(
    *,
    flow: Flow,
    by: User | None = None,
    name: str = "",
    lead_user_id_field: Any = None,
    flow_fields: Any = None,
    mapping: Any = None,
    mode: str = TriggerMode.TEST,
) -> CreatedTrigger:
    """A new Marketo trigger with its URL token and API key (the key is returned, never stored)."""
    config = marketo_config_clean(lead_user_id_field=lead_user_id_field, flow_fields=flow_fields, mapping=mapping)
    key = api_key_new()
    with transaction.atomic():
        trigger = services.configured_trigger_create(
            flow=flow, type=TriggerType.MARKETO, config={**config, **_key_parts(key)}, by=by, name=name, mode=mode
        )
        trigger.token = secrets.token_urlsafe(32)
        trigger.save(update_fields=["token", "updated_at"])
    return CreatedTrigger(trigger=trigger, api_key=key)


def marketo_trigger_update(
    *,
    trigger: Trigger,
    by: User | None = None,
    name: str | None = None,
    lead_user_id_field: Any = None,
    flow_fields: Any = None,
    mapping: Any = None,
    mode: str | None = None,
) -> Trigger:
    """Change a Marketo trigger's settings, name and mode; nothing is written when any part is refused."""
    config = marketo_config_clean(
        lead_user_id_field=lead_user_id_field, flow_fields=flow_fields, mapping=mapping, current=trigger.config
    )
    return services.configured_trigger_save(trigger=trigger, config=config, by=by, name=name, mode=mode)


def marketo_key_rotate(*, trigger: Trigger) -> str:
    """A new API key for the trigger; the old one stops working at once. Returns the new key."""
    if trigger.type != TriggerType.MARKETO:
        raise services.TriggerRefused(409, "not_marketo", "Only Marketo triggers have an API key to rotate.")
    key = api_key_new()
    with transaction.atomic():
        locked = Trigger.objects.select_for_update().get(pk=trigger.pk)
        locked.config = {**locked.config, **_key_parts(key)}
        locked.save(update_fields=["config", "updated_at"])
    trigger.config = locked.config
    return key


def marketo_config(trigger: Trigger) -> MarketoTriggerConfig:
    config: dict[str, Any] = {
        "apiKeyHash": "",
        "apiKeyHint": "",
        "leadUserIdField": DEFAULT_LEAD_USER_ID_FIELD,
        "flowFields": [],
        "mapping": DEFAULT_MARKETO_MAPPING,
        **trigger.config,
    }
    typed: MarketoTriggerConfig = config  # type: ignore[assignment]
    return typed


# --- The service Marketo installs -------------------------------------------------------------


def base_path(trigger: Trigger) -> str:
    return f"/integrations/marketo/{trigger.token}/"


def _flow_name(trigger: Trigger) -> str:
    return trigger.flow.name


def _attribute(api_name: str, name: str, data_type: str, description: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiName": api_name,
        "i18n": {"en_US": {"name": name, "description": description, "uiTooltip": description}},
        "dataType": data_type,
        **extra,
    }


def service_definition(trigger: Trigger, base_url: str) -> dict[str, Any]:
    """`getServiceDefinition`: what Marketo shows and sends for this flow step."""
    config = marketo_config(trigger)
    flow_name = _flow_name(trigger)
    lead_field = config["leadUserIdField"]
    flow_attributes = [
        _attribute(
            ACTION_FLOW_ATTRIBUTE,
            "Action flow",
            "string",
            f"The Action Flow this step starts ({flow_name}).",
            enforcePicklistSelect=True,
            picklistUrl=f"{base_url}getPicklist",
        )
    ]
    for field in config["flowFields"]:
        flow_attributes.append(
            _attribute(
                field["name"],
                field.get("label") or field["name"],
                field.get("type") or "string",
                field.get("description") or f"The flow's {field['name']} variable.",
                required=bool(field.get("required")),
            )
        )
    return {
        "apiName": f"actionFlow{trigger.pk}",
        "i18n": {
            "en_US": {
                "name": f"Start {flow_name}"[:100],
                "filterName": f"Started {flow_name}"[:100],
                "triggerName": f"Starts {flow_name}"[:100],
                "description": f"Starts the Action Flow “{flow_name}” for each lead, with the lead's "
                f"{lead_field} as the customer's userId; the result (success and flowInvocationId, "
                "or the reason it failed) is written to the lead's activity.",
            }
        },
        "primaryAttribute": ACTION_FLOW_ATTRIBUTE,
        "invocationPayloadDef": {
            "flowAttributes": flow_attributes,
            "fields": [
                {
                    "serviceAttribute": lead_field,
                    "suggestedMarketoAttribute": lead_field,
                    "description": {"en_US": "The lead field that holds the customer's userId in the Action Flow app."},
                    "dataType": "string",
                    "required": True,
                }
            ],
            "userDrivenMapping": False,
            "campaignContext": True,
            "triggerContext": True,
            "programContext": False,
            "programMemberContext": True,
            "subscriptionContext": True,
        },
        "callbackPayloadDef": {
            "attributes": [
                _attribute(
                    "flowInvocationId",
                    "Flow invocation id",
                    "string",
                    "The id of the flow's start for this lead (find it in the Action Flow Workbench).",
                )
            ],
            "fields": [],
            "userDrivenMapping": False,
        },
    }


def service_status(trigger: Trigger) -> dict[str, list[str]]:
    """`status`: what Marketo logs about the service (polled nightly and on install)."""
    found = Flow.objects.filter(pk=trigger.flow_id).values("name", "status", "published_version").first()
    flow: dict[str, Any] = dict(found) if found else {}
    info: list[str] = [f"Starts the Action Flow “{flow.get('name', '')}” in {trigger.mode} mode."]
    warnings: list[str] = []
    errors: list[str] = []
    if trigger.mode == TriggerMode.DISABLED:
        errors.append("The trigger is disabled in the Action Flow Workbench: batches are refused.")
    elif trigger.mode == TriggerMode.PAUSED:
        errors.append(f"The trigger is paused: {trigger.paused_reason or 'a member must reactivate it'}.")
    elif trigger.mode == TriggerMode.TEST:
        warnings.append("The trigger is in test mode: only test users are started; other leads fail (not_a_test_user).")
    if flow.get("status") == FlowStatus.ARCHIVED:
        errors.append("The flow is archived and starts nothing.")
    elif trigger.mode == TriggerMode.LIVE and flow.get("published_version") is None:
        errors.append("The flow is not published: live starts are refused (flow_not_published).")
    return {"info": info, "warnings": warnings, "errors": errors}


def picklist(trigger: Trigger, name: Any) -> dict[str, Any] | None:
    """`getPicklist` choices for a flow attribute, or None for a name without a list."""
    if name != ACTION_FLOW_ATTRIBUTE:
        return None
    return {"choices": [{"displayValue": {"en_US": _flow_name(trigger)}, "submittedValue": str(trigger.flow_id)}]}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def openapi_document(trigger: Trigger, base_url: str, support_url: str) -> dict[str, Any]:
    """`openapi.json`: the document Marketo installs the service from (its Service Provider
    Interface, schema version 1.0.0)."""
    flow_name = _flow_name(trigger)
    status_lists = {
        "type": "object",
        "properties": {key: {"type": "array", "items": {"type": "string"}} for key in ("info", "warnings", "errors")},
    }
    errors = {
        "400": {"description": "Bad Request: the body is not a batch (JSON with token, callbackUrl, objectData)."},
        "401": {"description": "Unauthorized: no or a wrong x-api-key."},
        "403": {"description": "Forbidden: the trigger is disabled in the Action Flow Workbench."},
        "429": {"description": "Too Many Requests: retry later."},
        "500": {"description": "Internal Server Error."},
    }
    return {
        "openapi": "3.0.1",
        "info": {
            "title": f"Action Flow: {flow_name}",
            "description": f"Starts the Action Flow “{flow_name}” from Marketo smart campaigns, one start per lead.",
            "version": "1.0.0",
            "x-providerName": "Action Flow Workbench",
            "x-schemaVersion": "1.0.0",
            "x-supportContact": support_url,
        },
        "servers": [{"url": base_url}],
        "security": [{"apiKey": []}],
        "paths": {
            "/getServiceDefinition": {
                "get": {
                    "summary": "The service definition Marketo installs.",
                    "responses": {"200": {"description": "Service definition", **_json_content({"type": "object"})}},
                }
            },
            "/status": {
                "get": {
                    "summary": "The service's status.",
                    "responses": {"200": {"description": "Status", **_json_content(status_lists)}},
                }
            },
            "/submitAsyncAction": {
                "post": {
                    "summary": "A batch of leads: each starts the flow; results go to the callback.",
                    "requestBody": {
                        "required": True,
                        **_json_content(
                            {
                                "type": "object",
                                "required": ["token", "callbackUrl", "objectData"],
                                "properties": {
                                    "token": {"type": "string"},
                                    "callbackUrl": {"type": "string", "format": "uri"},
                                    "apiCallBackKey": {"type": "string"},
                                    "campaignId": {"type": "integer"},
                                    "context": {"type": "object"},
                                    "objectData": {"type": "array", "items": {"type": "object"}},
                                },
                            }
                        ),
                    },
                    "callbacks": {
                        "selfServiceFlowComplete": {
                            "{$request.body#/callbackUrl}": {
                                "post": {
                                    "parameters": [
                                        {
                                            "in": "header",
                                            "name": "x-api-key",
                                            "required": True,
                                            "schema": {"type": "string"},
                                        },
                                        {
                                            "in": "header",
                                            "name": "x-callback-token",
                                            "required": True,
                                            "schema": {"type": "string"},
                                        },
                                    ],
                                    "requestBody": _json_content({"type": "object"}),
                                    "responses": {
                                        "200": {"description": "Received"},
                                        "404": {"description": "Not Found"},
                                        "405": {"description": "Invalid input"},
                                    },
                                }
                            }
                        }
                    },
                    "responses": {"201": {"description": "Accepted: the batch is durable."}, **errors},
                }
            },
            "/getPicklist": {
                "post": {
                    "summary": "Choices of a flow attribute (actionFlow: this flow).",
                    "requestBody": {"required": True, **_json_content({"type": "object"})},
                    "responses": {"200": {"description": "Choices", **_json_content({"type": "object"})}},
                }
            },
            "/serviceIcon": {
                "get": {
                    "summary": "The flow step's icon.",
                    "responses": {
                        "200": {
                            "description": "Icon",
                            "content": {"image/svg+xml": {"schema": {"type": "string", "format": "binary"}}},
                        }
                    },
                }
            },
        },
        "components": {"securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}}},
    }


SERVICE_ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
    '<rect width="64" height="64" rx="14" fill="#4f46e5"/>'
    '<path d="M20 18l26 14-26 14z" fill="#fff"/></svg>'
)


# --- The request: make the batch durable ------------------------------------------------------


@dataclass(frozen=True)
class IncomingCall:
    method: str
    path: str  # /submitAsyncAction, /status, ...
    headers: dict[str, str]  # names lower-case
    body: bytes
    remote_addr: str
    forwarded_for: str | None = None


@dataclass
class Answer:
    status: int
    body: dict[str, Any]


def _refused(status: int, code: str, detail: str, errors: Any = None) -> Answer:
    body: dict[str, Any] = {"detail": detail, "code": code}
    if errors is not None:
        body["errors"] = errors
    return Answer(status=status, body=body)


def marketo_trigger_for_token(token: str) -> Trigger | None:
    return Trigger.objects.filter(token=token, type=TriggerType.MARKETO).select_related("flow").first()


def _logged_headers(call: IncomingCall) -> dict[str, str]:
    headers = {name: value[:MAX_LOGGED_HEADER] for name, value in call.headers.items() if name not in UNLOGGED_HEADERS}
    headers[":path"] = call.path
    return headers


def _source_ip(call: IncomingCall) -> str:
    return client_address(call.remote_addr, call.forwarded_for, settings.TRUSTED_PROXIES)


def _logged_text(body: bytes) -> str:
    masked = _SECRETS_IN_TEXT.sub(rb'"\1": "********"', body)
    return masked.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def call_log(trigger: Trigger, call: IncomingCall, answer: Answer, outcome: str, detail: str = "") -> None:
    """A call from Marketo in the trigger's request log (the API key is never kept)."""
    WebhookRequest.objects.create(
        environment_id=trigger.environment_id,
        trigger=trigger,
        source_ip=_source_ip(call),
        method=call.method,
        headers=_logged_headers(call),
        body=_logged_text(call.body),
        outcome=outcome,
        status_code=answer.status,
        code=str(answer.body.get("code", "")),
        detail=detail or str(answer.body.get("detail", "")),
    )


def authenticated(trigger: Trigger, call: IncomingCall) -> Answer | None:
    """None when the call carries the trigger's API key; else the 401 (logged)."""
    key = call.headers.get(API_KEY_HEADER)
    if api_key_matches(trigger.config, key):
        return None
    detail = "Send the trigger's API key in the x-api-key header." if not key else "The x-api-key is not valid."
    answer = _refused(401, "api_key_invalid", detail)
    call_log(trigger, call, answer, RequestOutcome.REFUSED)
    return answer


def _batch_shape(body: Any) -> FieldErrors:
    if not isinstance(body, dict):
        return {"request": ["Expected a JSON object: {token, callbackUrl, apiCallBackKey, context, objectData}."]}
    errors: FieldErrors = {}
    if not isinstance(body.get("token"), str) or not body["token"]:
        errors["token"] = ["Expected Marketo's callback token."]
    if not isinstance(body.get("callbackUrl"), str) or not body["callbackUrl"]:
        errors["callbackUrl"] = ["Expected the callback URL."]
    if "apiCallBackKey" in body and not isinstance(body["apiCallBackKey"], str):
        errors["apiCallBackKey"] = ["Expected a text."]
    if not isinstance(body.get("objectData"), list):
        errors["objectData"] = ["Expected the list of leads."]
    if "context" in body and not isinstance(body["context"], dict):
        errors["context"] = ["Expected an object."]
    return errors


def _munchkin_id(body: dict[str, Any]) -> str:
    subscription = (body.get("context") or {}).get("subscription")
    munchkin = subscription.get("munchkinId") if isinstance(subscription, dict) else None
    return munchkin if isinstance(munchkin, str) else ""


_SURROGATE_OR_NUL_ESCAPE = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")
_BRACKETS = re.compile(rb"[\[\]{}]")


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise UnstorableJSON(f"The number {text[:40]} is out of range.")
    return number


def _refuse_constant(name: str) -> Any:
    raise UnstorableJSON(f"{name} is not JSON.")


def _bracket_depth(raw: bytes) -> int:
    """The deepest nesting the brackets allow (brackets inside strings count too: never less)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(raw):
        depth += 1 if match.group() in (b"[", b"{") else -1
        deepest = max(deepest, depth)
    return deepest


def loads_batch(raw: bytes) -> Any:
    """A batch's JSON, as strict as `loads_storable` but without walking 1,000 leads' values
    when the text shows they hold nothing unstorable (no escaped NUL or surrogate, shallow
    nesting; measured: the walk was two thirds of the request's time). Else the careful path."""
    if raw[:3] == b"\xef\xbb\xbf" or _SURROGATE_OR_NUL_ESCAPE.search(raw) or _bracket_depth(raw) > MAX_JSON_DEPTH:
        return loads_storable(raw)
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except UnstorableJSON:
        raise
    except ValueError:  # not UTF-8, not JSON, an integer of over 4,300 digits: the careful path says why
        return loads_storable(raw)


def marketo_submit(*, trigger: Trigger, call: IncomingCall) -> Answer:
    """`submitAsyncAction`, after the key check: 201 once the batch is durable (one INSERT).

    Refusals (logged): 403 trigger_disabled, 400 invalid_json / invalid_request.
    """
    if trigger.mode == TriggerMode.DISABLED:
        answer = _refused(403, "trigger_disabled", "This Marketo trigger is disabled in the Action Flow Workbench.")
        call_log(trigger, call, answer, RequestOutcome.REFUSED)
        return answer
    try:
        body = loads_batch(call.body)
    except UnstorableJSON as error:
        answer = _refused(400, "invalid_json", str(error))
        call_log(trigger, call, answer, RequestOutcome.REFUSED)
        return answer
    errors = _batch_shape(body)
    if errors:
        answer = _refused(400, "invalid_request", "The batch is not valid.", errors)
        call_log(trigger, call, answer, RequestOutcome.REFUSED)
        return answer
    campaign = body.get("campaignId")
    batch = MarketoBatch.objects.create(
        trigger_id=trigger.pk,
        source_ip=_source_ip(call),
        headers=_logged_headers(call),
        token=body["token"],
        callback_url=body["callbackUrl"],
        api_callback_key=body.get("apiCallBackKey") or "",
        munchkin_id=_munchkin_id(body)[:100],
        campaign_id=str(campaign)[:100] if isinstance(campaign, (int, str)) else "",
        lead_count=len(body["objectData"]),
        body=call.body.decode("utf-8"),
    )
    batch_id = batch.pk
    transaction.on_commit(lambda: enqueue("triggers.marketo_process_batch", batch_id))
    return Answer(status=201, body={"status": "accepted", "leads": batch.lead_count})


# --- The worker: start one flow per lead ------------------------------------------------------


def lead_key(token: str, lead_id: Any) -> str:
    """The flowInvocationId of a lead of a batch: the same batch token and lead, the same key."""
    digest = hashlib.sha256(f"{token}|{lead_id}".encode()).hexdigest()[:32]
    key = f"mkto-{digest}-{lead_id}"
    return key if len(key) <= MAX_ID_LENGTH else f"mkto-{digest}"


def _as_user_id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        value = str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def lead_body(item: dict[str, Any], batch_body: dict[str, Any], config: MarketoTriggerConfig) -> dict[str, Any]:
    """What the mapping reads for one lead (see the module docstring)."""
    lead: dict[str, Any] = item["objectContext"] if isinstance(item.get("objectContext"), dict) else {}
    step: dict[str, Any] = item["flowStepContext"] if isinstance(item.get("flowStepContext"), dict) else {}
    names = [field["name"] for field in config["flowFields"]]
    body: dict[str, Any] = {
        "userId": _as_user_id(lead.get(config["leadUserIdField"])),
        "lead": lead,
        "fields": {name: step[name] for name in names if name in step and step[name] is not None},
        "flowStepContext": step,
        "campaignId": batch_body.get("campaignId"),
        "munchkinId": _munchkin_id(batch_body),
    }
    for extra in ("programMemberContext", "triggeringContext"):
        if isinstance(item.get(extra), dict):
            body[extra] = item[extra]
    return body


def example_lead(config: MarketoTriggerConfig) -> dict[str, Any]:
    """A lead as Marketo would send it for this configuration: the preview until one arrives."""
    examples = {"boolean": True, "integer": 3, "float": 1.5, "score": 10, "date": "2026-12-01"}
    fields = {
        field["name"]: examples.get(field.get("type") or "string", f"example {field.get('label') or field['name']}")
        for field in config["flowFields"]
    }
    item = {
        "objectContext": {"id": 1001, config["leadUserIdField"]: "tester-1", "email": "lead@example.com"},
        "flowStepContext": {ACTION_FLOW_ATTRIBUTE: "1", **fields},
    }
    return lead_body(item, {"campaignId": 1234, "context": {"subscription": {"munchkinId": "123-ABC-456"}}}, config)


@dataclass
class _Lead:
    lead_id: Any
    starts: list[StartRequest]
    result: dict[str, Any] | None = None  # activityData once known


def _failure(code: str, reason: str) -> dict[str, Any]:
    return {"success": False, "errorCode": code, "reason": reason[:1000]}


def _lead_starts(config: MarketoTriggerConfig, body: dict[str, Any], key: str) -> list[StartRequest] | dict[str, Any]:
    """The lead's starts through the mapping, keyed by the lead; or its failure."""
    no_user = body.get("userId") is None
    try:
        output = apply_mapping(
            config.get("mapping") or DEFAULT_MARKETO_MAPPING,
            WebhookInput(body=body, headers={}, query={}, method="POST"),
        )
        check_storable(output)
        starts = parse_start_requests(output)
    except (MappingError, Invalid, UnstorableJSON) as failed:
        if no_user:
            return _failure(
                "missing_user_id",
                f"The lead has no value in {config['leadUserIdField']}, the field that holds its userId.",
            )
        return _failure("mapping_failed", f"The mapping failed: {failed}")
    count = len(starts)
    return [
        dataclasses.replace(start, flow_invocation_id=key if count == 1 else f"{key}-{index}")
        for index, start in enumerate(starts)
    ]


def _not_starting(trigger: Trigger, flow: FlowForStart) -> dict[str, Any]:
    if flow.status == FlowStatus.ARCHIVED:
        return _failure("flow_archived", "The flow is archived and starts nothing.")
    if trigger.mode == TriggerMode.PAUSED:
        return _failure("trigger_paused", "The trigger is paused in the Action Flow Workbench.")
    return _failure("trigger_disabled", "The trigger is disabled in the Action Flow Workbench.")


def _accept(trigger: Trigger, flow: FlowForStart, mode: str, leads: list[_Lead]) -> None:
    """Start the leads' flows, all at once when possible, else lead by lead (one refusal,
    say missing variables, fails that lead alone)."""
    if not leads:
        return
    starts = [start for lead in leads for start in lead.starts]
    try:
        with transaction.atomic():
            result = invocations_accept(
                flow=flow, mode=mode, starts=starts, source=TriggerType.MARKETO, trigger_id=trigger.pk
            )
    except FlowRefused:
        if len(leads) == 1:
            _accept_alone(trigger, flow, mode, leads[0])
            return
        for lead in leads:
            _accept_alone(trigger, flow, mode, lead)
        return
    keys = {outcome.flow_invocation_id for outcome in result.outcomes}
    for lead in leads:
        first = lead.starts[0].flow_invocation_id
        lead.result = {"success": True, "flowInvocationId": first} if first in keys else _failure("not_started", "")


def _accept_alone(trigger: Trigger, flow: FlowForStart, mode: str, lead: _Lead) -> None:
    try:
        with transaction.atomic():
            invocations_accept(
                flow=flow, mode=mode, starts=lead.starts, source=TriggerType.MARKETO, trigger_id=trigger.pk
            )
    except FlowRefused as refused:
        lead.result = _failure(refused.code, refused.detail)
    else:
        lead.result = {"success": True, "flowInvocationId": lead.starts[0].flow_invocation_id}


ACCEPT_CHUNK = 500


def _results(trigger: Trigger, batch: MarketoBatch, body: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
    """Every addressable lead's callback entry, in the batch's order, and the last lead's body."""
    config = marketo_config(trigger)
    flow = flow_for_start(flow=trigger.flow)
    mode = start_mode(trigger, flow)
    test_users = test_user_ids(trigger.environment_id) if mode == Mode.TEST else set()
    leads: list[_Lead] = []
    sample = None
    for item in body.get("objectData") or []:
        context = item.get("objectContext") if isinstance(item, dict) else None
        lead_id = context.get("id") if isinstance(context, dict) else None
        if lead_id is None or isinstance(lead_id, (dict, list, bool)):
            logger.warning("Marketo batch %s: a lead without an id cannot be answered; skipped", batch.pk)
            continue
        assert isinstance(item, dict)
        mapped_body = lead_body(item, body, config)
        sample = mapped_body
        lead = _Lead(lead_id=lead_id, starts=[])
        leads.append(lead)
        if mode is None:
            lead.result = _not_starting(trigger, flow)
            continue
        starts = _lead_starts(config, mapped_body, lead_key(batch.token, lead_id))
        if isinstance(starts, dict):
            lead.result = starts
            continue
        if mode == Mode.TEST:
            kept = []
            for start in starts:
                targets = [user for user in start.target_user_ids if user in test_users]
                if targets:
                    kept.append(dataclasses.replace(start, target_user_ids=targets))
            if not kept:
                others = ", ".join(sorted({u for s in starts for u in s.target_user_ids}))[:200]
                lead.result = _failure(
                    "not_a_test_user", f"The trigger is in test mode and {others} is not a test user."
                )
                continue
            starts = kept
        lead.starts = starts
    pending = [lead for lead in leads if lead.result is None]
    assert mode is not None or not pending
    for index in range(0, len(pending), ACCEPT_CHUNK):
        _accept(trigger, flow, mode or Mode.TEST, pending[index : index + ACCEPT_CHUNK])
    entries = [{"leadData": {"id": lead.lead_id}, "activityData": lead.result} for lead in leads]
    return entries, sample


def _summary(entries: list[dict[str, Any]]) -> str:
    failed: dict[str, int] = {}
    for entry in entries:
        data = entry["activityData"]
        if not data.get("success"):
            failed[data.get("errorCode", "")] = failed.get(data.get("errorCode", ""), 0) + 1
    done = len(entries) - sum(failed.values())
    text = f"Batch of {len(entries):,} lead{'s' if len(entries) != 1 else ''}: {done:,} started"
    if failed:
        text += ", " + ", ".join(f"{count:,} failed ({code})" for code, count in sorted(failed.items()))
    return text + "."


def _redacted_body(body: dict[str, Any]) -> str:
    """A batch as its log entry shows it: Marketo's callback key and token are credentials."""
    shown = {**body, **{key: MASK for key in ("apiCallBackKey", "token") if body.get(key)}}
    return json.dumps(shown)  # escaped: a lone surrogate stays text PostgreSQL stores


def marketo_batch_process(*, batch_id: int, now: datetime | None = None) -> list[int]:
    """Start a batch's leads and write their callbacks (see the module docstring, step 2); the
    ids of the callbacks written (none when the batch was not claimed).

    Idempotent: a processed batch is not claimed again, and a batch whose worker died before
    its commit is processed again from scratch (its leads' keys make repeated starts duplicates).
    """
    now = now or timezone.now()
    claimed = (
        MarketoBatch.objects.filter(pk=batch_id, processed_at=None)
        .filter(Q(lease_until=None) | Q(lease_until__lt=now))
        .update(lease_until=now + BATCH_LEASE)
    )
    if claimed != 1:
        return []
    batch = MarketoBatch.objects.select_related("trigger", "trigger__flow").get(pk=batch_id)
    trigger = batch.trigger
    body = json.loads(batch.body)
    with transaction.atomic():
        entries, sample = _results(trigger, batch, body)
        callbacks = [
            MarketoCallback(
                batch=batch,
                trigger=trigger,
                part=part,
                object_data=entries[start : start + CALLBACK_LEADS],
                lead_count=len(entries[start : start + CALLBACK_LEADS]),
                failed_count=sum(
                    1 for e in entries[start : start + CALLBACK_LEADS] if not e["activityData"]["success"]
                ),
                next_attempt_at=now,
                created_at=now,
            )
            for part, start in enumerate(range(0, len(entries), CALLBACK_LEADS))
        ]
        MarketoCallback.objects.bulk_create(callbacks)
        first_key = next((e["activityData"]["flowInvocationId"] for e in entries if e["activityData"]["success"]), "")
        WebhookRequest.objects.create(
            environment_id=trigger.environment_id,
            trigger=trigger,
            received_at=batch.received_at,
            source_ip=batch.source_ip,
            method="POST",
            headers=batch.headers,
            body=_redacted_body(body),
            outcome=RequestOutcome.ACCEPTED,
            status_code=201,
            detail=_summary(entries),
            mode=trigger.mode if trigger.mode in (TriggerMode.TEST, TriggerMode.LIVE) else "",
            flow_invocation_id=first_key,
        )
        if sample is not None:
            Trigger.objects.filter(pk=trigger.pk).update(sample=sample)
        MarketoBatch.objects.filter(pk=batch.pk).update(processed_at=now, lease_until=None)
        ids = [callback.pk for callback in MarketoCallback.objects.filter(batch=batch).order_by("part")]
    return ids


def marketo_batch_run(*, batch_id: int) -> int:
    """The worker's whole job for a batch: start its leads, then post their callbacks at once,
    from this worker, rather than queueing them behind the runs the starts just fanned out.
    A callback this misses (the worker dies between the commit and the post) is due already:
    the sweep sends it. Returns the number of callbacks delivered."""
    delivered = 0
    for callback_id in marketo_batch_process(batch_id=batch_id):
        delivered += marketo_callback_deliver(callback_id=callback_id) == "callback_delivered"
    return delivered


# --- The worker: post the results back ---------------------------------------------------------


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff: 15 s after the first failure, doubling, at most 10 min."""
    delay = CALLBACK_FIRST_DELAY * (2 ** max(attempts - 1, 0))
    return min(delay, CALLBACK_MAX_DELAY)


def callback_body(callback: MarketoCallback, batch: MarketoBatch, now: datetime) -> bytes:
    payload = {
        "munchkinId": batch.munchkin_id,
        "token": batch.token,
        "time": now.isoformat().replace("+00:00", "Z"),
        "objectData": callback.object_data,
    }
    return json.dumps(payload, ensure_ascii=False).encode()


def marketo_callback_deliver(*, callback_id: int, now: datetime | None = None) -> str:
    """POST one callback if it is due and nobody holds it; record the attempt (step 3)."""
    now = now or timezone.now()
    claimed = (
        MarketoCallback.objects.filter(pk=callback_id, status=MarketoCallbackStatus.PENDING, next_attempt_at__lte=now)
        .filter(Q(lease_until=None) | Q(lease_until__lt=now))
        .update(lease_until=now + CALLBACK_LEASE, attempts=F("attempts") + 1)
    )
    if claimed != 1:
        return "not due"
    callback = MarketoCallback.objects.select_related("batch", "trigger").get(pk=callback_id)
    batch = callback.batch
    body = callback_body(callback, batch, now)
    headers = {"x-api-key": batch.api_callback_key, "x-callback-token": batch.token}
    status = 0
    address = ""
    code = "callback_delivered"
    leads = f"{callback.lead_count:,} lead result{'s' if callback.lead_count != 1 else ''}"
    try:
        response = post_json(batch.callback_url, body, headers)
    except OutboundRefused as refused:
        callback.status, callback.last_error, code = MarketoCallbackStatus.REFUSED, refused.reason, "callback_refused"
        detail = f"Callback refused, never sent: {refused.reason}"
    except OutboundFailed as failed:
        address, callback.last_error = failed.address, failed.reason
        code, detail = _schedule_retry(callback, now, failed.reason)
    else:
        status, address = response.status, response.address
        callback.last_status = response.status
        if 200 <= response.status < 300:
            callback.status, callback.delivered_at, callback.last_error = MarketoCallbackStatus.DELIVERED, now, ""
            detail = f"Callback delivered ({leads}): Marketo answered {response.status}."
        else:
            answer = response.body[:300].decode("utf-8", errors="replace")
            callback.last_error = f"HTTP {response.status}: {answer}"
            code, detail = _schedule_retry(callback, now, f"Marketo answered {response.status}")
    callback.lease_until = None
    with transaction.atomic():
        callback.save(
            update_fields=["status", "last_status", "last_error", "next_attempt_at", "lease_until", "delivered_at"]
        )
        logged = json.dumps({**json.loads(body), "token": MASK})  # the token is Marketo's credential
        _attempt_log(callback, batch, logged, now, status, address, code, f"{detail} Attempt {callback.attempts}.")
    return code


def _schedule_retry(callback: MarketoCallback, now: datetime, reason: str) -> tuple[str, str]:
    delay = retry_delay(callback.attempts)
    if now + delay > callback.created_at + CALLBACK_RETRY_WINDOW:
        callback.status = MarketoCallbackStatus.GAVE_UP
        return "callback_gave_up", f"Callback failed: {reason}. Retried for {CALLBACK_RETRY_WINDOW}; giving up."
    callback.next_attempt_at = now + delay
    when = callback.next_attempt_at.strftime("%H:%M:%S UTC")
    return "callback_failed", f"Callback failed: {reason}. Retrying in {int(delay.total_seconds())} s (at {when})."


def _attempt_log(
    callback: MarketoCallback,
    batch: MarketoBatch,
    body: str,
    now: datetime,
    status: int,
    address: str,
    code: str,
    detail: str,
) -> None:
    trigger = callback.trigger
    WebhookRequest.objects.create(
        environment_id=trigger.environment_id,
        trigger=trigger,
        received_at=now,
        source_ip=address[:64],
        method="CALLBACK",
        headers={
            ":url": batch.callback_url[:MAX_LOGGED_HEADER],
            "x-callback-token": "********",
            "content-type": "application/json",
        },
        body=body,
        outcome=RequestOutcome.ACCEPTED if code == "callback_delivered" else RequestOutcome.REFUSED,
        status_code=status,
        code=code,
        detail=detail,
        mode=trigger.mode if trigger.mode in (TriggerMode.TEST, TriggerMode.LIVE) else "",
    )


# --- The sweep ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    batches: list[int]
    callbacks: list[int]


def marketo_sweep(*, now: datetime | None = None) -> SweepResult:
    """Batches committed but not processed (their message lost, their worker dead) and
    callbacks that are due and held by nobody: their ids, for the tasks to be sent again."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.SWEEP_STALE_SECONDS)
    free = Q(lease_until=None) | Q(lease_until__lt=now)
    batches = list(
        MarketoBatch.objects.filter(processed_at=None, received_at__lt=stale)
        .filter(free)
        .order_by("received_at")
        .values_list("pk", flat=True)[:SWEEP_LIMIT]
    )
    callbacks = list(
        MarketoCallback.objects.filter(status=MarketoCallbackStatus.PENDING, next_attempt_at__lte=now)
        .filter(free)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_LIMIT]
    )
    return SweepResult(batches=batches, callbacks=callbacks)


# --- Sample and preview -----------------------------------------------------------------------


def sample_body(*, trigger: Trigger) -> dict[str, Any] | None:
    """The last lead received (what the mapping is previewed on), or None before the first batch."""
    return trigger.sample if isinstance(trigger.sample, dict) else None


def marketo_mapping_preview(
    *, trigger: Trigger, payload: Any = None, payload_given: bool = False, mapping: Any = None
) -> dict[str, Any]:
    """What a lead (the last one received, else an example) maps to; starts nothing."""
    config = marketo_config(trigger)
    body = payload if payload_given else (sample_body(trigger=trigger) or example_lead(config))
    preview = mapping_output(body=body, mapping=mapping, saved=config.get("mapping"))
    output = preview["output"]
    if isinstance(output, dict):
        lead = body.get("lead") if isinstance(body, dict) else None
        lead_id = lead.get("id") if isinstance(lead, dict) else None
        preview = {**preview, "output": {**output, "flowInvocationId": f"mkto-<batch token hash>-{lead_id}"}}
    return preview


def callback_list(*, trigger: Trigger) -> QuerySet[MarketoCallback]:
    return MarketoCallback.objects.filter(trigger=trigger).select_related("batch").order_by("-created_at", "-id")


def callback_counts(*, trigger: Trigger) -> dict[str, int]:
    """The trigger's callbacks by status (pending, delivered, refused, gave_up), for its page."""
    counts = dict.fromkeys(MarketoCallbackStatus.values, 0)
    rows = MarketoCallback.objects.filter(trigger=trigger).values("status").annotate(n=Count("id")).order_by()
    for row in rows:
        counts[row["status"]] = row["n"]
    return counts
