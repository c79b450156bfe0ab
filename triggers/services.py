"""Writes for triggers: the api trigger, webhook triggers' configuration, modes, samples and logs."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from flows.models import AnalyticsEvent, Flow, FlowStatus
from workbench.errors import FieldErrors, Invalid, Refused
from workbench.json_values import UnstorableJSON, check_storable
from workbench.shapes import NON_FIELD, Shape, validate_shape

from .ip_allowlist import AllowedIpsField
from .mapping import MappingConfig, validate_mapping_config
from .models import (
    HeldState,
    SecurityConfig,
    Trigger,
    TriggerMode,
    TriggerModeChange,
    TriggerType,
    WebhookConfig,
    WebhookRequest,
)
from .signatures import SignatureSerializer

CAPTURE_WINDOW = timedelta(minutes=15)
MAX_NAME_LENGTH = 200
MEMBER_MODES = (TriggerMode.TEST, TriggerMode.LIVE, TriggerMode.DISABLED)
# What the API shows instead of a signature secret; sent back unchanged, it keeps the secret.
SECRET_MASK = "********"


class TriggerRefused(Refused):
    """A refusal of a trigger operation, raised before anything is written."""


FLOW_NOT_PUBLISHED_DETAIL = (
    "This flow has no published version yet, so a live trigger would have nothing to start. "
    "Publish the flow first, then switch the trigger to live; until then it can run in test mode."
)
FLOW_ARCHIVED_DETAIL = "This flow is archived and starts nothing, so its triggers cannot go live."


def live_refusal(*, flow_id: int) -> TriggerRefused | None:
    """Why a trigger of this flow may not be live now (SPEC 4 "Modes"), or None when it may.

    Read from the database, not from a flow instance the caller may have loaded before a
    publish or an archive: going live is the moment real customers start being reached.
    """
    state = Flow.objects.filter(pk=flow_id).values("status", "published_version").first()
    if state is None or state["status"] == FlowStatus.ARCHIVED:
        return TriggerRefused(409, "flow_archived", FLOW_ARCHIVED_DETAIL)
    if state["published_version"] is None:
        return TriggerRefused(409, "flow_not_published", FLOW_NOT_PUBLISHED_DETAIL)
    return None


def refuse_live_unless_published(flow_id: int) -> None:
    refusal = live_refusal(flow_id=flow_id)
    if refusal is not None:
        raise refusal


def clean_name(name: Any) -> str:
    """A trigger's name as the marketer typed it, trimmed; blank is allowed ("Webhook 12" shows)."""
    if not isinstance(name, str):
        raise TriggerRefused(400, "invalid_request", "The name is not valid.", {"name": ["Expected a text."]})
    name = " ".join(name.split())
    if len(name) > MAX_NAME_LENGTH:
        raise TriggerRefused(
            400, "invalid_request", "The name is too long.", {"name": [f"At most {MAX_NAME_LENGTH} characters."]}
        )
    return name


def configured_trigger_create(
    *, flow: Flow, type: TriggerType, config: Mapping[str, Any], by: User | None, name: str, mode: str
) -> Trigger:
    """A new trigger of a kind whose configuration its module has cleaned (segment, event): born
    in test mode, then moved to `mode` as a member would move it (live needs a published flow)."""
    if Flow.objects.filter(pk=flow.pk, status=FlowStatus.ARCHIVED).exists():
        raise TriggerRefused(409, "flow_archived", "This flow is archived and starts nothing; it gets no new triggers.")
    name_clean = clean_name(name)
    with transaction.atomic():
        trigger = Trigger.objects.create(
            environment_id=flow.environment_id,
            flow=flow,
            type=type,
            name=name_clean,
            mode=TriggerMode.TEST,
            config=dict(config),
            created_by=by,
        )
        if mode != TriggerMode.TEST:
            trigger = trigger_mode_set(trigger=trigger, mode=mode, by=by)
    return trigger


def configured_trigger_save(
    *, trigger: Trigger, config: Mapping[str, Any], by: User | None, name: str | None, mode: str | None
) -> Trigger:
    """Save a cleaned configuration, name and mode together: nothing is written when any is refused."""
    name_clean = clean_name(name) if name is not None else trigger.name
    if mode == TriggerMode.LIVE and trigger.mode != TriggerMode.LIVE:
        refuse_live_unless_published(trigger.flow_id)
    with transaction.atomic():
        trigger.config = dict(config)
        trigger.name = name_clean
        trigger.save(update_fields=["config", "name", "updated_at"])
        if mode is not None and mode != trigger.mode:
            trigger = trigger_mode_set(trigger=trigger, mode=mode, by=by)
    return trigger


def api_trigger_ensure(*, flow: Flow) -> Trigger:
    """Give a flow its api trigger (subscribed to flows' `flow_created`); idempotent."""
    trigger, _ = Trigger.objects.get_or_create(
        flow=flow,
        type=TriggerType.API,
        defaults={"environment_id": flow.environment_id, "mode": TriggerMode.LIVE},
    )
    return trigger


def trigger_rename(*, trigger: Trigger, name: str) -> Trigger:
    """Give a trigger the name the marketer knows it by (blank: its kind and id show)."""
    trigger.name = clean_name(name)
    with transaction.atomic():
        trigger.save(update_fields=["name", "updated_at"])
    return trigger


def trigger_delete(*, trigger: Trigger) -> None:
    if trigger.type == TriggerType.API:
        raise TriggerRefused(409, "api_trigger_required", "Every flow keeps its API trigger; it cannot be removed.")
    if trigger.mode != TriggerMode.DISABLED:
        raise TriggerRefused(409, "trigger_not_disabled", "Disable the trigger before deleting it.")
    with transaction.atomic():
        trigger.delete()


# --- Webhook configuration ----------------------------------------------------------------


DEFAULT_MAPPING: MappingConfig = {"type": "none"}
SECURITY_MESSAGE = 'Expected {"allowedIps": [...], "signature": {...} or null}.'


class SecuritySerializer(Shape):
    """Who may call a webhook trigger: addresses and ranges, and how requests are signed."""

    not_an_object = SECURITY_MESSAGE

    allowedIps = AllowedIpsField(required=False)
    signature = SignatureSerializer(required=False, allow_null=True)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping) and set(data) - set(self.fields):
            raise ValidationError({NON_FIELD: [SECURITY_MESSAGE]})
        return super().to_internal_value(data)


def default_webhook_config() -> WebhookConfig:
    return {"mapping": DEFAULT_MAPPING, "shapeCheck": False, "security": {"allowedIps": [], "signature": None}}


def webhook_config_clean(
    *, mapping: Any = None, shape_check: Any = None, security: Any = None, current: WebhookConfig | None = None
) -> WebhookConfig:
    """A webhook trigger's config from what was given over what it had; 400 with every problem.

    Each part is its declared shape (`AnyMappingSerializer`, `SecuritySerializer`); a part not given keeps
    its current value. A signature whose secret is `SECRET_MASK` keeps the saved secret.
    """
    config = default_webhook_config()
    if current:
        config.update(current)
    errors: FieldErrors = {}
    if mapping is not None:
        try:
            config["mapping"] = validate_mapping_config(mapping)
        except Invalid as invalid:
            errors.update(invalid.within("mapping"))
    if shape_check is not None:
        if isinstance(shape_check, bool):
            config["shapeCheck"] = shape_check
        else:
            errors["shapeCheck"] = ["Expected true or false."]
    if security is not None:
        try:
            config["security"] = _clean_security(security, config["security"])
        except Invalid as invalid:
            errors.update(invalid.within("security"))
    if errors:
        raise TriggerRefused(400, "invalid_request", "The trigger configuration is not valid.", errors)
    return config


def _clean_security(security: Any, current: SecurityConfig) -> SecurityConfig:
    """The given security settings over the current ones, the masked secret restored."""
    if isinstance(security, dict) and isinstance(security.get("signature"), dict):
        signature = security["signature"]
        if signature.get("secret") == SECRET_MASK:
            saved = current.get("signature")
            if not saved:
                # The mask stands for a saved secret; with none saved it would become the secret.
                raise Invalid({"signature.secret": ["There is no saved secret to keep: enter the signing secret."]})
            security = {**security, "signature": {**signature, "secret": saved["secret"]}}
    given: SecurityConfig = validate_shape(SecuritySerializer(), security, root="")
    return {**current, **given}


def _check_sample(sample: Any) -> None:
    try:
        check_storable(sample)
    except UnstorableJSON as error:
        raise TriggerRefused(400, "invalid_request", "The sample is not valid.", {"sample": [str(error)]}) from error


def webhook_trigger_create(
    *,
    flow: Flow,
    by: User | None = None,
    name: str = "",
    sample: Any = None,
    mapping: Any = None,
    shape_check: Any = None,
    security: Any = None,
    mode: str = TriggerMode.TEST,
) -> Trigger:
    """A new webhook trigger with its unguessable URL token, in test mode unless `mode` says.

    Refused: an archived flow (409 flow_archived: it starts nothing), `live` on a flow with no
    published version (409 flow_not_published), and any invalid part (400, every problem).
    """
    if Flow.objects.filter(pk=flow.pk, status=FlowStatus.ARCHIVED).exists():
        raise TriggerRefused(409, "flow_archived", "This flow is archived and starts nothing; it gets no new triggers.")
    name_clean = clean_name(name)
    config = webhook_config_clean(mapping=mapping, shape_check=shape_check, security=security)
    _check_sample(sample)
    with transaction.atomic():
        trigger = Trigger.objects.create(
            environment_id=flow.environment_id,
            flow=flow,
            type=TriggerType.WEBHOOK,
            name=name_clean,
            mode=TriggerMode.TEST,
            config=config,
            token=secrets.token_urlsafe(32),
            sample=sample,
            created_by=by,
        )
        if mode != TriggerMode.TEST:
            # Through the mode change, so that its checks and its history are the same.
            trigger = trigger_mode_set(trigger=trigger, mode=mode, by=by)
    return trigger


def webhook_trigger_update(
    *,
    trigger: Trigger,
    by: User | None = None,
    sample: Any = None,
    sample_given: bool = False,
    mapping: Any = None,
    shape_check: Any = None,
    security: Any = None,
    mode: str | None = None,
    name: str | None = None,
) -> Trigger:
    """Change a webhook trigger's configuration, name and, optionally, its mode (recorded).

    Nothing is written when any part is refused, going live included (409 flow_not_published).
    """
    config = webhook_config_clean(mapping=mapping, shape_check=shape_check, security=security, current=trigger.config)
    _check_sample(sample)
    name_clean = clean_name(name) if name is not None else trigger.name
    if mode == TriggerMode.LIVE and trigger.mode != TriggerMode.LIVE:
        refuse_live_unless_published(trigger.flow_id)
    with transaction.atomic():
        trigger.config = config
        trigger.name = name_clean
        if sample_given:
            trigger.sample = sample
        trigger.save(update_fields=["config", "name", "sample", "updated_at"])
        if mode is not None and mode != trigger.mode:
            trigger_mode_set(trigger=trigger, mode=mode, by=by)
    return trigger


def _record_mode_change(trigger: Trigger, from_mode: str, to_mode: str, by: User | None, reason: str) -> None:
    TriggerModeChange.objects.create(
        trigger=trigger, from_mode=from_mode, to_mode=to_mode, changed_by=by, reason=reason
    )


def trigger_mode_set(*, trigger: Trigger, mode: str, by: User | None = None) -> Trigger:
    """A member's mode change: test, live or disabled (paused is the system's to set).

    Live needs a published flow (409 flow_not_published) that is not archived (409 flow_archived).
    """
    if trigger.type == TriggerType.API:
        raise TriggerRefused(409, "api_trigger_mode", "The API trigger's mode is chosen per request (/start or /test).")
    if mode not in MEMBER_MODES:
        raise TriggerRefused(
            400, "invalid_request", "A member sets test, live or disabled.", {"mode": ["Use test, live or disabled."]}
        )
    with transaction.atomic():
        locked = Trigger.objects.select_for_update().get(pk=trigger.pk)
        if locked.mode == mode:
            return locked
        if mode == TriggerMode.LIVE:
            refuse_live_unless_published(locked.flow_id)
        _record_mode_change(locked, locked.mode, mode, by, "")
        locked.mode, locked.mode_before_pause, locked.paused_reason = mode, "", ""
        locked.save(update_fields=["mode", "mode_before_pause", "paused_reason", "updated_at"])
    trigger.mode, trigger.mode_before_pause, trigger.paused_reason = locked.mode, "", ""
    return locked


def trigger_pause(*, trigger: Trigger, reason: str) -> bool:
    """The system pauses a test or live trigger; True when this call paused it."""
    with transaction.atomic():
        paused = Trigger.objects.filter(pk=trigger.pk, mode__in=[TriggerMode.TEST, TriggerMode.LIVE]).update(
            mode=TriggerMode.PAUSED, mode_before_pause=F("mode"), paused_reason=reason, updated_at=timezone.now()
        )
        if paused:
            _record_mode_change(trigger, trigger.mode, TriggerMode.PAUSED, None, reason)
            AnalyticsEvent.objects.create(
                environment_id=trigger.environment_id,
                name="trigger-paused",
                flow_id=trigger.flow_id,
                test=trigger.mode == TriggerMode.TEST,
                properties={"triggerId": trigger.pk, "reason": reason},
            )
    return bool(paused)


def trigger_reactivate(*, trigger: Trigger, by: User | None = None) -> Trigger:
    """Paused → the mode it had before the pause; back to live only while the flow is published."""
    with transaction.atomic():
        locked = Trigger.objects.select_for_update().get(pk=trigger.pk)
        if locked.mode != TriggerMode.PAUSED:
            raise TriggerRefused(409, "trigger_not_paused", "Only a paused trigger can be reactivated.")
        restored = locked.mode_before_pause or TriggerMode.TEST
        if restored == TriggerMode.LIVE:
            refuse_live_unless_published(locked.flow_id)
        _record_mode_change(locked, locked.mode, restored, by, "Reactivated")
        locked.mode, locked.mode_before_pause, locked.paused_reason = restored, "", ""
        locked.save(update_fields=["mode", "mode_before_pause", "paused_reason", "updated_at"])
    return locked


def trigger_capture_arm(*, trigger: Trigger) -> Trigger:
    """The next request to the URL (within 15 minutes) becomes the sample and starts nothing."""
    _require_webhook(trigger)
    trigger.capture_until = timezone.now() + CAPTURE_WINDOW
    trigger.save(update_fields=["capture_until", "updated_at"])
    return trigger


def _require_webhook(trigger: Trigger) -> None:
    if trigger.type != TriggerType.WEBHOOK:
        raise TriggerRefused(409, "not_a_webhook", "Only webhook triggers have this action.")


@dataclass(frozen=True)
class PrunedLog:
    deleted: int


def request_log_prune(*, now: Any = None) -> PrunedLog:
    """Delete request log entries older than their environment's retention; held ones stay."""
    now = now or timezone.now()
    deleted = 0
    retention_days = (
        Trigger.objects.filter(type=TriggerType.WEBHOOK)
        .values_list("environment__request_log_retention_days", flat=True)
        .order_by()  # the default ordering's columns would make every trigger a distinct row
        .distinct()
    )
    for days in retention_days:
        count, _ = (
            WebhookRequest.objects.filter(
                environment__request_log_retention_days=days, received_at__lt=now - timedelta(days=days)
            )
            .exclude(held_state=HeldState.HELD)
            .delete()
        )
        deleted += count
    return PrunedLog(deleted=deleted)
