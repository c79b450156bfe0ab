"""Triggers: what starts a flow. Every flow has exactly one `api` trigger."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypedDict

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from flows.models import Flow
from workbench.models import Environment

if TYPE_CHECKING:  # the shapes' modules declare them with DRF, which models need not import
    from .mapping import MappingConfig
    from .signatures import SignatureConfig


class JSONTextField(models.TextField):
    """A JSON value stored as its text, so that it keeps the key order it arrived in.

    Samples are shown back to members and their paths listed in document order; PostgreSQL's
    jsonb would reorder the keys (shortest first). Nothing queries inside a sample.
    """

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return None if value is None else json.loads(value)

    def get_prep_value(self, value: Any) -> Any:
        return None if value is None else json.dumps(value)


class TriggerType(models.TextChoices):
    API = "api", "API"
    WEBHOOK = "webhook", "Webhook"
    SEGMENT = "segment", "Segment"
    EVENT = "event", "Event"
    SFMC = "sfmc", "Salesforce Marketing Cloud"
    MARKETO = "marketo", "Marketo"


class TriggerMode(models.TextChoices):
    TEST = "test", "Test"
    LIVE = "live", "Live"
    DISABLED = "disabled", "Disabled"
    PAUSED = "paused", "Paused"


class SecurityConfig(TypedDict, total=False):
    """Who may call a webhook: an empty allowlist allows every address; no signature, no check."""

    allowedIps: list[str]
    signature: SignatureConfig | None


class WebhookConfig(TypedDict):
    """A webhook trigger's `config`, as `triggers.services.webhook_config_clean` stores it."""

    mapping: MappingConfig
    shapeCheck: bool
    security: SecurityConfig


class SegmentOn(models.TextChoices):
    ENTERED = "entered", "Entered"
    EXITED = "exited", "Exited"


class Reentry(models.TextChoices):
    ALWAYS = "always", "Every time"
    ONCE = "once", "Once per customer, ever"


class SegmentTriggerConfig(TypedDict):
    """A segment trigger's `config` (SPEC section 5), as `triggers.segment_triggers` stores it."""

    segmentId: int
    on: str  # SegmentOn
    reentry: str  # Reentry


class EventTriggerConfig(TypedDict):
    """An event trigger's `config` (SPEC section 5), as `triggers.event_triggers` stores it."""

    eventName: str
    where: list[dict[str, Any]]
    mapping: MappingConfig


class Trigger(models.Model):
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="triggers")
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="triggers")
    type = models.CharField(max_length=10, choices=TriggerType.choices)
    # What the marketer calls it ("Orders from Shopify"); blank shows as "Webhook <id>".
    name = models.CharField(max_length=200, blank=True)
    # The api trigger's mode is per request (/start is live, /test is test); it shows "live".
    mode = models.CharField(max_length=10, choices=TriggerMode.choices, default=TriggerMode.TEST)
    paused_reason = models.TextField(blank=True)
    # The mode a paused trigger returns to when a member reactivates it.
    mode_before_pause = models.CharField(max_length=10, choices=TriggerMode.choices, blank=True)
    # Type-specific configuration (sections 4 and 5 of the SPEC). For webhooks:
    # {"mapping": {...}, "shapeCheck": bool, "security": {"allowedIps": [...], "signature": {...} | None}}.
    config = models.JSONField(default=dict, blank=True)
    # Webhooks: the unguessable token of /hooks/{token}, the sample payload, and until when
    # the next request is captured as the sample.
    token = models.CharField(max_length=64, unique=True, null=True, blank=True)
    sample = JSONTextField(null=True, blank=True)
    capture_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["flow", "id"]
        constraints = [
            models.UniqueConstraint(fields=["flow"], condition=Q(type="api"), name="one_api_trigger_per_flow"),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} of {self.flow.name}"

    @property
    def display_name(self) -> str:
        """The name the marketer gave it, else its kind and id ("Webhook 12"); the API trigger is "API"."""
        if self.name:
            return self.name
        if self.type == TriggerType.API:
            return "API"
        return f"{self.get_type_display()} {self.pk}"

    @property
    def webhook_config(self) -> WebhookConfig:
        """A webhook trigger's configuration, typed (every key is written on create)."""
        config: WebhookConfig = self.config
        return config

    @property
    def segment_config(self) -> SegmentTriggerConfig:
        config: SegmentTriggerConfig = self.config
        return config

    @property
    def event_config(self) -> EventTriggerConfig:
        config: EventTriggerConfig = self.config
        return config


class TriggerOnceStart(models.Model):
    """A customer a `reentry: once` segment trigger has started: never again (SPEC section 5).

    Written in the transaction of the start; the unique constraint, not a read before the
    write, is what makes a second start impossible.
    """

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="+", db_index=False)
    user_id = models.CharField(max_length=255)
    started_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trigger", "user_id"], name="one_once_start_per_trigger_customer")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} started by trigger {self.trigger_id}"


class MemberBackfill(models.Model):
    """A publish asked to start a segment's existing members, too many to start in its own
    transaction: the task that starts them claims this row (a lease) and deletes it when done,
    and the sweep sends the task again for a row nobody holds, so a lost message loses nobody.
    """

    trigger = models.OneToOneField(Trigger, on_delete=models.CASCADE, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"existing members of trigger {self.trigger_id}"


class TriggerModeChange(models.Model):
    """Every mode change, by a member or by the system (auto-pause), with when and why."""

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="mode_changes")
    from_mode = models.CharField(max_length=10, choices=TriggerMode.choices)
    to_mode = models.CharField(max_length=10, choices=TriggerMode.choices)
    reason = models.TextField(blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.from_mode} → {self.to_mode}"


class RequestOutcome(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    DUPLICATE = "duplicate", "Duplicate"
    HELD = "held", "Held"
    REFUSED = "refused", "Refused"
    SAMPLE_CAPTURED = "sample_captured", "Sample captured"


class HeldState(models.TextChoices):
    HELD = "held", "Held"
    REPLAYED = "replayed", "Replayed"
    DISCARDED = "discarded", "Discarded"


class WebhookRequest(models.Model):
    """One request to a webhook trigger's URL, refused or not: the trigger's request log."""

    # Every webhook writes one of these rows, so it keeps only the indexes its reads need: the
    # composite ones below start with the foreign keys, and the held and replay indexes cover
    # only the few rows that are held or replays. No database constraints on the foreign keys,
    # as flows' Invocation has none (see UNCONSTRAINED_FOREIGN_KEYS in the tests).
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    trigger = models.ForeignKey(
        Trigger, on_delete=models.CASCADE, related_name="requests", db_index=False, db_constraint=False
    )
    received_at = models.DateTimeField(default=timezone.now)
    source_ip = models.CharField(max_length=64, blank=True)
    method = models.CharField(max_length=10)
    headers = models.JSONField(default=dict)  # selected headers, names lower-case
    query = models.JSONField(default=dict)
    body = models.TextField(blank=True)  # the raw body as text (UTF-8, undecodable bytes replaced)
    outcome = models.CharField(max_length=20, choices=RequestOutcome.choices)
    status_code = models.PositiveSmallIntegerField()
    code = models.CharField(max_length=50, blank=True)  # the machine code of a refusal
    detail = models.TextField(blank=True)
    errors = models.JSONField(null=True, blank=True)
    mode = models.CharField(max_length=10, blank=True)  # test or live, when it started something
    flow_invocation_id = models.CharField(max_length=255, blank=True)
    held_state = models.CharField(max_length=10, choices=HeldState.choices, blank=True)
    replay_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="replays", db_index=False
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["trigger", "-received_at"]),
            models.Index(
                fields=["trigger", "held_state", "received_at"],
                condition=~models.Q(held_state=""),
                name="webhook_requests_held",
            ),
            models.Index(fields=["environment", "received_at"]),
            models.Index(
                fields=["replay_of"], condition=models.Q(replay_of__isnull=False), name="webhook_request_replays"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.outcome} at {self.received_at:%Y-%m-%d %H:%M:%S}"


class ManualSendStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class ManualSend(models.Model):
    """A customers-dashboard "Send to N customers" action (SPEC section 6).

    The audience is fixed when the member confirms (`user_ids`, at most the environment's
    manual send limit), so what runs is what was shown. Each customer starts under the key
    `dash-<id>-<userId>`: at most once per action, however often the work is retried.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # How the audience was chosen: the filter's rules, or the saved segment's id and name.
    rules = models.JSONField(null=True, blank=True)
    segment_id = models.BigIntegerField(null=True, blank=True)
    description = models.CharField(max_length=500, blank=True)
    user_ids = models.JSONField(default=list)
    # The values the member gave the flow's variables for this send (defaults fill the rest).
    variables = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=ManualSendStatus.choices, default=ManualSendStatus.QUEUED)
    started_count = models.PositiveIntegerField(default=0)  # customers handled so far
    failed_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Send of flow {self.flow_id} to {len(self.user_ids)} customers"


class CsvTaskStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class CsvTask(models.Model):
    """A CSV bulk send (SPEC section 6): one start per data row of an uploaded file.

    The file is staged into `CsvChunk` rows before the upload is answered, so any worker can
    process it and no process ever holds it whole. Progress (`rows_done`, `rows_failed`,
    `next_chunk`) is written in the same transaction as a chunk's starts: a worker killed
    mid-file leaves the task exactly where its last committed chunk left it.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="+")
    mode = models.CharField(max_length=10)  # flows.models.Mode
    status = models.CharField(max_length=10, choices=CsvTaskStatus.choices, default=CsvTaskStatus.QUEUED)
    file_name = models.CharField(max_length=255, blank=True)
    columns = models.JSONField(default=list)  # the header, as given
    rows_total = models.PositiveIntegerField(default=0)  # data rows: the header is not counted
    rows_done = models.PositiveIntegerField(default=0)  # started or in error
    rows_failed = models.PositiveIntegerField(default=0)
    # Customers reached: the dry run's count until confirmed, then what the starts reached.
    target_count = models.PositiveIntegerField(default=0)
    # Nothing starts before this is set: the API confirms at upload, the Workbench after its dry run.
    confirmed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # A worker's claim: whoever holds an unexpired lease processes the task; the sweep resends
    # a confirmed task whose lease expired (its worker died) or that was never picked up.
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True)
    next_chunk = models.PositiveIntegerField(default=0)  # the first chunk not yet processed
    last_error = models.TextField(blank=True)
    # The Workbench's dry run, checked by a worker (a big file takes longer than a request):
    # rows checked so far, then the result (csv_tasks.CsvDryRun as JSON).
    dry_run_rows = models.PositiveIntegerField(default=0)
    dry_run = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["environment", "-created_at"]),
            models.Index(fields=["flow", "-created_at"]),
            # The sweep's scan: unfinished tasks only.
            models.Index(
                fields=["lease_until"], name="csv_task_unfinished", condition=Q(status__in=["queued", "running"])
            ),
        ]

    def __str__(self) -> str:
        return f"CSV task {self.pk} of flow {self.flow_id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (CsvTaskStatus.COMPLETED, CsvTaskStatus.FAILED, CsvTaskStatus.CANCELLED)


class CsvChunk(models.Model):
    """Up to CHUNK_ROWS data rows of a task's file, re-serialized as CSV text (no header)."""

    task = models.ForeignKey(CsvTask, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    first_row = models.PositiveIntegerField()  # the file's row number of its first row (header: 1)
    row_count = models.PositiveIntegerField()
    text = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "number"], name="one_csv_chunk_per_number")]

    def __str__(self) -> str:
        return f"Chunk {self.number} of CSV task {self.task_id}"


class CsvRowError(models.Model):
    """A row that started nothing, and why (the header is row 1)."""

    task = models.ForeignKey(CsvTask, on_delete=models.CASCADE, related_name="row_errors")
    row = models.PositiveIntegerField()
    message = models.TextField()

    class Meta:
        ordering = ["row"]
        constraints = [models.UniqueConstraint(fields=["task", "row"], name="one_csv_error_per_row")]

    def __str__(self) -> str:
        return f"Row {self.row} of CSV task {self.task_id}: {self.message}"


# --- Marketo Self-Service Flow Step (SPEC section 7) -----------------------------------------


class MarketoFlowField(TypedDict, total=False):
    """A variable offered to Marketo users in the flow step (a flow attribute)."""

    name: str  # the attribute's apiName; the key in each lead's flowStepContext
    label: str
    type: str  # one of Marketo's field types (triggers.marketo.FIELD_TYPES)
    required: bool
    description: str


class MarketoTriggerConfig(TypedDict):
    """A Marketo trigger's `config`, as `triggers.marketo` stores it. The API key is kept only
    as its SHA-256 (`apiKeyHash`) and its last characters (`apiKeyHint`, to recognise it)."""

    apiKeyHash: str
    apiKeyHint: str
    leadUserIdField: str
    flowFields: list[MarketoFlowField]
    mapping: MappingConfig


class MarketoBatch(models.Model):
    """One `submitAsyncAction` call: made durable with ONE insert before Marketo gets its 201.

    The request is kept as it came (`body`, its raw text); a worker claims the batch (a lease),
    starts one flow per lead and writes the callbacks in one transaction that also sets
    `processed_at`. The sweep resends a batch nobody processed or whose worker died.
    """

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="+", db_index=False)
    received_at = models.DateTimeField(default=timezone.now)
    source_ip = models.CharField(max_length=64, blank=True)
    headers = models.JSONField(default=dict)  # selected request headers (never the API key)
    token = models.TextField()  # Marketo's callback token (x-callback-token)
    callback_url = models.TextField()
    api_callback_key = models.TextField(blank=True)  # Marketo's key for the callback (x-api-key)
    munchkin_id = models.CharField(max_length=100, blank=True)
    campaign_id = models.CharField(max_length=100, blank=True)
    lead_count = models.PositiveIntegerField(default=0)
    body = models.TextField()  # the request body as text
    lease_until = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["trigger", "-received_at"], name="marketo_batch_trigger"),
            # The sweep's scan: batches not processed yet.
            models.Index(fields=["received_at"], name="marketo_batch_unprocessed", condition=Q(processed_at=None)),
        ]

    def __str__(self) -> str:
        return f"Marketo batch {self.pk} of trigger {self.trigger_id} ({self.lead_count} leads)"


class MarketoCallbackStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    REFUSED = "refused", "Refused"  # the URL is not allowed (http, private address): never retried
    GAVE_UP = "gave_up", "Gave up"  # failed for longer than the retry window


class MarketoCallback(models.Model):
    """The results of up to 1,000 leads of a batch, to POST back to Marketo: an outbox row.

    Written in the transaction that started the leads' flows, so a restart loses none. A
    worker claims a due row with a lease (`lease_until`) before it sends; a worker killed
    mid-send leaves the lease to expire and the sweep sends it again. Every attempt is a row of
    the trigger's request log (method CALLBACK).
    """

    batch = models.ForeignKey(MarketoBatch, on_delete=models.CASCADE, related_name="callbacks")
    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="+", db_index=False)
    part = models.PositiveIntegerField(default=0)  # 0, 1, ... for batches of more than 1,000 leads
    object_data = models.JSONField(default=list)  # [{"leadData": {"id"}, "activityData": {...}}]
    lead_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=10, choices=MarketoCallbackStatus.choices, default=MarketoCallbackStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)  # the receiver's HTTP status
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "part"]
        constraints = [models.UniqueConstraint(fields=["batch", "part"], name="one_marketo_callback_per_part")]
        indexes = [
            models.Index(fields=["trigger", "-created_at"], name="marketo_callback_trigger"),
            # The sweep's scan: callbacks still to send.
            models.Index(fields=["next_attempt_at"], name="marketo_callback_due", condition=Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"Callback {self.part} of Marketo batch {self.batch_id} ({self.status})"
