"""The triggers' hot-path reads: what an API start and a webhook request need, each in ONE statement.

Per request the API start needs its caller (the bearer token's credential and environment),
the flow (in that environment), the flow's latest version and its API trigger's id, all read
with the token in one statement (a round trip costs a start about a tenth of its CPU time
under load, measured); a webhook needs its trigger, the flow and the latest version. The ORM
would take a query each and compile them on every call (a quarter of a start's time,
measured), so each read here is one statement of constant text, built once
from the models' metadata and prepared once per connection (`workbench.raw_rows`).

They return typed values: the flow as `flows.selectors.FlowForStart`, which is all the start
pipeline reads, the caller as workbench.authentication reads it (the credential with its
environment), and the webhook's trigger as a model instance read whole. No SQL text leaves
this module.
"""

from __future__ import annotations

import datetime
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, Protocol, TypeVar

from django.db import connection
from django.utils import timezone
from oauth2_provider.models import AccessToken

from flows.models import Flow, FlowVersion
from flows.selectors import FlowForStart
from workbench.authentication import credential_in_use, token_checksum
from workbench.models import ApiCredential, Environment
from workbench.raw_rows import ModelColumns, RowVersion, prepared_cursor, row_version_sql

from .models import Trigger, TriggerType


@dataclass(frozen=True)
class ApiStartTarget:
    flow: FlowForStart
    api_trigger_id: int | None  # every flow has one; a flow made without its hooks has none


@dataclass(frozen=True)
class ApiStartRead:
    """An API start's caller and, when the caller's environment has it, the flow it starts."""

    credential: ApiCredential  # with its environment
    target: ApiStartTarget | None
    expires: datetime.datetime  # the token's
    # The token's, the credential's, its environment's and the flow's rows as read (PostgreSQL,
    # with a target): a later start from this read is written only while all are unchanged.
    versions: tuple[RowVersion, ...] = ()


@dataclass(frozen=True)
class WebhookTarget:
    trigger: Trigger
    flow: FlowForStart
    # The trigger's and the flow's rows as read (PostgreSQL; none elsewhere): a later start
    # from this read is written only while both are unchanged (see RecentReads).
    versions: tuple[RowVersion, ...] = ()


def api_start_read(*, token: str, flow_id: int | str) -> ApiStartRead | None:
    """The active credential of this bearer token, with the flow `flow_id` of its environment
    as a start reads it (None for another environment's flow or an id that is not a number);
    None for a token that is unknown, expired or revoked. What `credential_for_token` reads,
    and the start's target, in one statement."""
    try:
        pk = int(flow_id)
    except (TypeError, ValueError):
        pk = 0  # no flow has it: the caller still learns whether the token is good
    statement = _api_start_read_statement(connection.vendor)
    with prepared_cursor() as cursor:
        cursor.execute(statement.sql, [pk, token_checksum(token)])
        row = cursor.fetchone()
    if row is None:
        return None
    credential = credential_in_use(row, credential=statement.credential, environment=statement.environment)
    if credential is None:
        return None
    expires = row[0] if timezone.is_aware(row[0]) else timezone.make_aware(row[0], datetime.UTC)
    flow_start = 1 + statement.credential.width + statement.environment.width
    if row[flow_start] is None:  # the flow's id: no such flow in the credential's environment
        return ApiStartRead(credential=credential, target=None, expires=expires)
    flow = statement.flows.read(row, flow_start)
    after_flow = flow_start + statement.flows.width
    target = ApiStartTarget(flow=flow, api_trigger_id=row[after_flow])
    versions: tuple[RowVersion, ...] = ()
    if statement.with_versions:
        token_id, token_version, credential_version, environment_version, flow_version = row[after_flow + 1 :]
        versions = (
            RowVersion(AccessToken, token_id, token_version),
            RowVersion(ApiCredential, credential.pk, credential_version),
            RowVersion(Environment, credential.environment.pk, environment_version),
            RowVersion(Flow, flow.id, flow_version),
        )
    return ApiStartRead(credential=credential, target=target, expires=expires, versions=versions)


def webhook_target(*, token: str, trigger_type: str = TriggerType.WEBHOOK) -> WebhookTarget | None:
    """The webhook trigger with this token and its flow as a start reads it, or None. Triggers
    of other types called at a token of theirs (a Marketing Cloud activity) say their type.

    A webhook's trigger comes without its sample (deferred: Django reads it if asked, which
    only a shape check does): a captured payload can be large, and parsing it on every
    request would cost more than the request's own body."""
    sql, trigger_columns, flow_columns = _webhook_statement(TriggerType(trigger_type).value, connection.vendor)
    with prepared_cursor() as cursor:
        cursor.execute(sql, [token])
        row = cursor.fetchone()
    if row is None:
        return None
    trigger = trigger_columns.instance(row)
    flow = flow_columns.read(row, trigger_columns.width)
    versions: tuple[RowVersion, ...] = ()
    if connection.vendor == "postgresql":
        trigger_version, flow_version = row[trigger_columns.width + flow_columns.width :]
        versions = (RowVersion(Trigger, trigger.pk, trigger_version), RowVersion(Flow, flow.id, flow_version))
    return WebhookTarget(trigger=trigger, flow=flow, versions=versions)


class _Versioned(Protocol):
    @property
    def versions(self) -> tuple[RowVersion, ...]: ...


K = TypeVar("K", bound=Hashable)
R = TypeVar("R", bound=_Versioned)


class RecentReads(Generic[K, R]):
    """The reads of the starts this process accepted last, so that the next request for the
    same key needs no read: its start is written only while the rows read are unchanged
    (`flows.services.invocations_accept(unchanged=read.versions)`), which the write itself
    checks. Anything else than such a start (a refusal, a changed row, a repeated key) is
    answered from a fresh read, as if the attempt had not been made: it wrote nothing.

    A read costs a request about a fifth of its CPU time (measured for a webhook, serially:
    Python 1,000-1,230 µs with it, 770-850 µs without). Bounded: past MAX_SIZE keys the
    oldest is forgotten. Per process; threads share it (single dictionary operations).
    """

    MAX_SIZE = 1000

    def __init__(self) -> None:
        self._reads: dict[K, R] = {}

    def get(self, key: K) -> R | None:
        return self._reads.get(key)

    def remember(self, key: K, read: R) -> None:
        if not read.versions:
            return  # nothing to check a later write against (not PostgreSQL)
        if key not in self._reads and len(self._reads) >= self.MAX_SIZE:
            self._reads.pop(next(iter(self._reads)), None)
        self._reads[key] = read

    def forget(self, key: K) -> None:
        self._reads.pop(key, None)

    def clear(self) -> None:
        self._reads.clear()


# Webhooks and Marketing Cloud activities by token (apart: one must never answer at the
# other's URL); API starts by the token's checksum and the flow id of the URL.
recent_webhook_targets: RecentReads[str, WebhookTarget] = RecentReads()
recent_sfmc_targets: RecentReads[str, WebhookTarget] = RecentReads()
recent_api_starts: RecentReads[tuple[str, str], ApiStartRead] = RecentReads()


@dataclass(frozen=True)
class _FlowColumns:
    """A flow (aliased `f`) and its latest version (aliased `v`), as FlowForStart holds them."""

    flow: ModelColumns[Flow]
    version: ModelColumns[FlowVersion]
    join: str  # the latest version, joined on its number

    @property
    def sql(self) -> str:
        return f"{self.flow.sql}, {self.version.sql}"

    @property
    def width(self) -> int:
        return self.flow.width + self.version.width

    def read(self, row: Sequence[Any], start: int = 0) -> FlowForStart:
        flow_id, environment_id, status, draft = self.flow.values(row, start)
        number, definition = self.version.values(row, start + self.flow.width)
        return FlowForStart(
            id=flow_id,
            environment_id=environment_id,
            status=status,
            draft=draft,
            latest_version_number=number,
            latest_version_definition=definition,
        )


@cache
def _flow_columns() -> _FlowColumns:
    """Built once; the latest version is found by a correlated subquery (SQLite runs it too)."""
    quote = connection.ops.quote_name
    flow_fields = [Flow._meta.get_field(name) for name in ("id", "environment", "status", "draft")]
    version_fields = [FlowVersion._meta.get_field(name) for name in ("number", "definition")]
    version_table = quote(FlowVersion._meta.db_table)
    version_flow = quote(FlowVersion._meta.get_field("flow").column)
    flow_pk, number = quote(Flow._meta.pk.column), quote(FlowVersion._meta.get_field("number").column)
    join = (  # names from the models' metadata only
        f"LEFT JOIN {version_table} v ON v.{version_flow} = f.{flow_pk} AND v.{number} = "  # noqa: S608
        f"(SELECT MAX(w.{number}) FROM {version_table} w WHERE w.{version_flow} = f.{flow_pk})"
    )
    return _FlowColumns(
        flow=ModelColumns.of(Flow, "f", flow_fields),  # type: ignore[arg-type]
        version=ModelColumns.of(FlowVersion, "v", version_fields),  # type: ignore[arg-type]
        join=join,
    )


@dataclass(frozen=True)
class _ApiStartReadStatement:
    sql: str
    credential: ModelColumns[ApiCredential]
    environment: ModelColumns[Environment]
    flows: _FlowColumns
    with_versions: bool  # then the token's id and the four rows' versions end each row


@cache
def _api_start_read_statement(vendor: str) -> _ApiStartReadStatement:
    """The token's unrevoked credential and its environment (as workbench.authentication reads
    them), LEFT JOINed to the flow in that environment, its latest version and its API trigger."""
    quote = connection.ops.quote_name
    flows, trigger, credential_meta = _flow_columns(), Trigger._meta, ApiCredential._meta
    credential, environment = ModelColumns.of(ApiCredential, "c"), ModelColumns.of(Environment, "e")
    flow_table, flow_pk = quote(Flow._meta.db_table), quote(Flow._meta.pk.column)

    def column(meta: Any, name: str) -> str:
        return quote(meta.get_field(name).column)

    versions = ""
    if vendor == "postgresql":
        aliases = ("t", "c", "e", "f")
        versions = f", t.{quote(AccessToken._meta.pk.column)}, " + ", ".join(row_version_sql(a) for a in aliases)
    # Only names from the models' metadata and a TriggerType value are formatted in; the flow
    # id and the token's checksum are parameters.
    sql = (
        f"SELECT t.{column(AccessToken._meta, 'expires')}, {credential.sql}, {environment.sql}, "  # noqa: S608
        f"{flows.sql}, tr.{quote(trigger.pk.column)}{versions} "
        f"FROM {quote(AccessToken._meta.db_table)} t "
        f"JOIN {quote(credential_meta.db_table)} c "
        f"ON c.{column(credential_meta, 'application')} = t.{column(AccessToken._meta, 'application')} "
        f"JOIN {quote(Environment._meta.db_table)} e "
        f"ON e.{quote(Environment._meta.pk.column)} = c.{column(credential_meta, 'environment')} "
        f"LEFT JOIN {flow_table} f ON f.{column(Flow._meta, 'environment')} = e.{quote(Environment._meta.pk.column)} "
        f"AND f.{flow_pk} = %s {flows.join} "
        f"LEFT JOIN {quote(trigger.db_table)} tr ON tr.{column(trigger, 'flow')} = f.{flow_pk} "
        f"AND tr.{column(trigger, 'type')} = '{TriggerType.API.value}' "
        f"WHERE t.{column(AccessToken._meta, 'token_checksum')} = %s "
        f"AND c.{column(credential_meta, 'revoked_at')} IS NULL"
    )
    return _ApiStartReadStatement(
        sql=sql, credential=credential, environment=environment, flows=flows, with_versions=bool(versions)
    )


@cache
def _webhook_statement(trigger_type: str, vendor: str) -> tuple[str, ModelColumns[Trigger], _FlowColumns]:
    """The trigger of a token and type, with its flow and the flow's latest version, and on
    PostgreSQL the versions of the trigger's and the flow's rows."""
    quote = connection.ops.quote_name
    meta = Trigger._meta
    read_fields = [
        field for field in meta.concrete_fields if trigger_type != TriggerType.WEBHOOK or field.name != "sample"
    ]
    trigger, flows = ModelColumns.of(Trigger, "t", read_fields), _flow_columns()
    flow_pk = quote(Flow._meta.pk.column)
    # Only names from the models' metadata and a TriggerType value are formatted in; the token
    # is a parameter.
    kind = TriggerType(trigger_type).value
    versions = f", {row_version_sql('t')}, {row_version_sql('f')}" if vendor == "postgresql" else ""
    sql = (
        f"SELECT {trigger.sql}, {flows.sql}{versions} FROM {quote(meta.db_table)} t "  # noqa: S608
        f"JOIN {quote(Flow._meta.db_table)} f ON f.{flow_pk} = t.{quote(meta.get_field('flow').column)} "
        f"{flows.join} WHERE t.{quote(meta.get_field('token').column)} = %s "
        f"AND t.{quote(meta.get_field('type').column)} = '{kind}'"
    )
    return sql, trigger, flows
