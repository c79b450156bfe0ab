"""The product's URLs plus the live benchmarks' reference endpoints.

`POST /bench/bare` is the starts reference (DRF), `POST /bench/bare-hook` the webhooks one (a
plain Django view, as the webhook endpoint is). Each has a "durable" twin that also writes
the body as one row and commits before answering: the least any endpoint that promises
durable acceptance must do, so the benchmarks can show how far the goal is from that floor.

And a "round trips" twin that first makes as many lookups as the product must (a start reads
its credential with its flow, a webhook its trigger: one statement each), each one prepared
primary-key read in its own round trip, then writes the row: the floor of an endpoint that looks up what it
needs and keeps what it accepted, with none of the work in between.

And a "rows" twin of that: the same lookups, then the rows the product keeps instead of the
one-column row (a start's invocation; a webhook's invocation and its request-log entry, in one
statement), into copies of the product's tables with all their indexes, from one prepared
INSERT of parameters: how much of the gap is the rows that SPEC's reads need, and how much
the application's own work.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, URLResolver, path
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.bench_starts import CARD_STEP
from bench.harness import DURABLE_FLOOR_TABLE, ROWS_FLOOR_TABLES
from workbench.raw_rows import prepared_cursor
from workbench.urls import handler404, handler500
from workbench.urls import urlpatterns as product_urlpatterns

__all__ = ["handler404", "handler500", "urlpatterns"]


class BareStartApi(APIView):
    """Parse the start's JSON and answer 202 with the same envelope: no auth, no database."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        targets = request.data.get("targetUserIds", [])
        answer = {"flowInvocationId": "0" * 32, "status": "accepted", "targetCount": len(targets)}
        return Response({"data": {"invocations": [{**answer, "ignoredUserIds": []}]}}, status=status.HTTP_202_ACCEPTED)


# Lookups per request before the write: an API start reads its credential (authentication)
# with its flow and the API trigger, in one statement; a webhook reads its trigger with the
# flow. Since triggers.start_reads.RecentReads only a token's first start (of a flow) in a
# process reads; the floors that count a lookup are then above what a warm request pays.
START_LOOKUPS = 1
WEBHOOK_LOOKUPS = 1


class BareDurableStartApi(BareStartApi):
    """The bare start endpoint, plus one committed row: the floor of a durable acceptance."""

    lookups = 0

    def post(self, request: Request) -> Response:
        write_durable_row(request.body, lookups=self.lookups)
        return super().post(request)


class BareRoundTripsStartApi(BareDurableStartApi):
    """The durable floor with a start's lookups before the write."""

    lookups = START_LOOKUPS


class BareRowsStartApi(BareDurableStartApi):
    """The round trips floor writing a start's invocation, not a one-column row."""

    def post(self, request: Request) -> Response:
        write_product_rows(request.data.get("targetUserIds", []), request.body, lookups=START_LOOKUPS)
        return BareStartApi.post(self, request)


def write_durable_row(body: bytes, *, lookups: int = 0) -> None:
    """Insert `body` as one row of a table with nothing but a primary key, and commit; first,
    `lookups` primary-key reads of that table, each its own round trip.

    Prepared statements in autocommit: one round trip each, one commit, the fastest reads and
    durable write a request can make on PostgreSQL.
    """
    with prepared_cursor() as cursor:
        for _ in range(lookups):
            cursor.execute(f"SELECT id FROM {DURABLE_FLOOR_TABLE} WHERE id = %s", [1])
            cursor.fetchone()
        cursor.execute(f"INSERT INTO {DURABLE_FLOOR_TABLE} (body) VALUES (%s)", [body.decode()])


# The rows a start keeps, as the product writes them for the benchmarks' flow: every value a
# parameter or a constant (an environment and flow id that no foreign key checks).
DEFINITION = json.dumps(
    {"variables": [{"name": "firstName", "default": "there", "required": False}], "steps": [CARD_STEP]}
)
INVOCATION_INSERT = (
    f"INSERT INTO {ROWS_FLOOR_TABLES['flows_invocation']} (environment_id, flow_id, mode, flow_invocation_id, "
    "source, trigger_id, chain_depth, status, content_hash, request, definition, version_number, variables, "
    "notification_detail, metadata, card_options, target_user_ids, ignored_user_ids, created_at) VALUES "
    "(1, 1, 'live', %s, 'api', 1, 1, 'accepted', %s, %s::jsonb, %s::jsonb, 1, %s::jsonb, '{}', '{}', '{}', "
    "%s::jsonb, '[]', now()) RETURNING flow_invocation_id"
)
# A webhook's: the invocation and, in the same statement, its request-log entry.
WEBHOOK_ROWS_INSERT = (
    f"WITH invocation AS ({INVOCATION_INSERT}) INSERT INTO {ROWS_FLOOR_TABLES['triggers_webhookrequest']} "
    "(environment_id, trigger_id, received_at, source_ip, method, headers, query, body, outcome, status_code, code, "
    "detail, mode, flow_invocation_id, held_state) SELECT 1, 1, now(), '127.0.0.1', 'POST', %s::jsonb, '{}', %s, "
    "'accepted', 202, '', '', 'live', flow_invocation_id, '' FROM invocation RETURNING id"
)


def write_product_rows(targets: Any, body: bytes, *, lookups: int, headers: dict[str, str] | None = None) -> None:
    """`lookups` prepared primary-key reads, then a start's invocation (with, given the request's
    `headers`, a webhook's request-log entry) in one prepared INSERT, committed."""
    key = uuid.uuid4().hex
    request = json.dumps({"targetUserIds": targets, "flowInvocationId": key, "variables": {"firstName": "Ada"}})
    invocation = [key, "0" * 64, request, DEFINITION, '{"firstName": "Ada"}', json.dumps(targets)]
    with prepared_cursor() as cursor:
        for _ in range(lookups):
            cursor.execute(f"SELECT id FROM {DURABLE_FLOOR_TABLE} WHERE id = %s", [1])
            cursor.fetchone()
        if headers is None:
            cursor.execute(INVOCATION_INSERT, invocation)
        else:
            cursor.execute(WEBHOOK_ROWS_INSERT, [*invocation, json.dumps(headers), body.decode()])
        cursor.fetchone()


@csrf_exempt
def bare_hook(request: HttpRequest) -> JsonResponse:
    """Read and parse the webhook's JSON body and answer 202: no token, signature, mapping or database."""
    json.loads(request.body)
    return JsonResponse({"status": "accepted"}, status=202)


@csrf_exempt
def bare_durable_hook(request: HttpRequest) -> JsonResponse:
    """The bare webhook view, plus one committed row: the floor of a durable acceptance."""
    json.loads(request.body)
    write_durable_row(request.body)
    return JsonResponse({"status": "accepted"}, status=202)


@csrf_exempt
def bare_round_trips_hook(request: HttpRequest) -> JsonResponse:
    """The durable webhook floor with a webhook's lookup before the write."""
    json.loads(request.body)
    write_durable_row(request.body, lookups=WEBHOOK_LOOKUPS)
    return JsonResponse({"status": "accepted"}, status=202)


@csrf_exempt
def bare_rows_hook(request: HttpRequest) -> JsonResponse:
    """The round trips webhook floor writing a webhook's invocation and request-log entry."""
    delivery = json.loads(request.body)
    headers = {name.lower(): value for name, value in request.headers.items() if name.lower() != "authorization"}
    write_product_rows([delivery["customer"]["id"]], request.body, lookups=WEBHOOK_LOOKUPS, headers=headers)
    return JsonResponse({"status": "accepted"}, status=202)


def ping(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns: list[URLPattern | URLResolver] = [
    path("bench/bare", BareStartApi.as_view()),
    path("bench/bare-durable", BareDurableStartApi.as_view()),
    path("bench/bare-hook", bare_hook),
    path("bench/bare-durable-hook", bare_durable_hook),
    path("bench/bare-round-trips", BareRoundTripsStartApi.as_view()),
    path("bench/bare-round-trips-hook", bare_round_trips_hook),
    path("bench/bare-rows", BareRowsStartApi.as_view()),
    path("bench/bare-rows-hook", bare_rows_hook),
    path("bench/ping", ping),
    *cast("list[URLPattern | URLResolver]", product_urlpatterns),  # mypy infers list[object] there
]
