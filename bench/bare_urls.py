"""The product's URLs plus the start benchmark's reference endpoint, `POST /bench/bare`."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

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


def ping(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns: list[URLPattern | URLResolver] = [
    path("bench/bare", BareStartApi.as_view()),
    path("bench/ping", ping),
    *product_urlpatterns,
]
