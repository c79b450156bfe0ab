"""The webhook endpoint: /hooks/{token}, POST or PUT, no OAuth (SPEC section 4).

A thin edge over the intake service: it hands over the raw body, lower-cased headers, the
query (last value of a repeated key) and the connection's address, and answers JSON.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from workbench.api_errors import json_error_response

from .intake import IncomingRequest, webhook_receive


@csrf_exempt
@require_http_methods(["POST", "PUT"])
def webhook_endpoint(request: HttpRequest, token: str) -> JsonResponse:
    try:
        body = request.body
    except RequestDataTooBig:  # a body without Content-Length that grew past the limit
        return json_error_response(413, "payload_too_large", "The request body is over the limit of 1 MiB.")
    incoming = IncomingRequest(
        method=request.method or "POST",
        headers={name.lower(): value for name, value in request.headers.items()},
        query={key: request.GET.getlist(key)[-1] for key in request.GET},
        body=body,
        remote_addr=request.META.get("REMOTE_ADDR", ""),
        forwarded_for=request.META.get("HTTP_X_FORWARDED_FOR"),
    )
    answer = webhook_receive(token=token, request=incoming)
    return JsonResponse(answer.body, status=answer.status)
