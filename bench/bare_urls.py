"""The product's URLs plus the live benchmarks' reference endpoints.

`POST /bench/bare` is the starts reference (DRF), `POST /bench/bare-hook` the webhooks one (a
plain Django view, as the webhook endpoint is). Each has a "durable" twin that also writes
the body as one row and commits before answering: the least any endpoint that promises
durable acceptance must do, so the benchmarks can show how far the goal is from that floor.
"""

from __future__ import annotations

import json
from typing import cast

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, URLResolver, path
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.harness import DURABLE_FLOOR_TABLE
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


class BareDurableStartApi(BareStartApi):
    """The bare start endpoint, plus one committed row: the floor of a durable acceptance."""

    def post(self, request: Request) -> Response:
        write_durable_row(request.body)
        return super().post(request)


def write_durable_row(body: bytes) -> None:
    """Insert `body` as one row of a table with nothing but a primary key, and commit.

    A prepared statement in autocommit: one round trip, one commit, the fastest durable write
    a request can make on PostgreSQL.
    """
    with prepared_cursor() as cursor:
        cursor.execute(f"INSERT INTO {DURABLE_FLOOR_TABLE} (body) VALUES (%s)", [body.decode()])


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


def ping(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns: list[URLPattern | URLResolver] = [
    path("bench/bare", BareStartApi.as_view()),
    path("bench/bare-durable", BareDurableStartApi.as_view()),
    path("bench/bare-hook", bare_hook),
    path("bench/bare-durable-hook", bare_durable_hook),
    path("bench/ping", ping),
    *cast("list[URLPattern | URLResolver]", product_urlpatterns),  # mypy infers list[object] there
]
