"""Marketo's endpoints, under /integrations/marketo/<token>/ (SPEC section 7): thin edges over
`triggers.marketo`. `openapi.json` is public; every other path needs the trigger's API key in
`x-api-key` (401 otherwise). Answers are JSON (the icon excepted); no session, no CSRF."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from workbench.api_errors import json_error_response
from workbench.json_values import UnstorableJSON, loads_storable

from . import marketo
from .models import RequestOutcome, Trigger

SUPPORT_PATH = "/api/docs/"
NOT_FOUND = "No Marketo service at this URL."


def _call(request: HttpRequest, path: str) -> marketo.IncomingCall | HttpResponse:
    try:
        body = request.body
    except RequestDataTooBig:
        return json_error_response(413, "payload_too_large", "The request body is over the limit of 1 MiB.")
    return marketo.IncomingCall(
        method=request.method or "GET",
        path=path,
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body,
        remote_addr=request.META.get("REMOTE_ADDR", ""),
        forwarded_for=request.META.get("HTTP_X_FORWARDED_FOR"),
    )


def _base_url(request: HttpRequest, trigger: Trigger) -> str:
    return request.build_absolute_uri(marketo.base_path(trigger))


Handler = Callable[[HttpRequest, Trigger, marketo.IncomingCall], HttpResponse]


def _keyed(path: str, handler: Handler) -> Callable[[HttpRequest, str], HttpResponse]:
    """The endpoint: the trigger of the token (404), the call, the key (401), then the handler."""

    @csrf_exempt
    def view(request: HttpRequest, token: str) -> HttpResponse:
        trigger = marketo.marketo_trigger_for_token(token)
        if trigger is None:
            return json_error_response(404, "not_found", NOT_FOUND)
        call = _call(request, path)
        if isinstance(call, HttpResponse):
            return call
        refused = marketo.authenticated(trigger, call)
        if refused is not None:
            return JsonResponse(refused.body, status=refused.status)
        return handler(request, trigger, call)

    view.__name__ = f"marketo_{path.strip('/')}"
    return view


@require_GET
def openapi_json(request: HttpRequest, token: str) -> HttpResponse:
    trigger = marketo.marketo_trigger_for_token(token)
    if trigger is None:
        return json_error_response(404, "not_found", NOT_FOUND)
    document = marketo.openapi_document(trigger, _base_url(request, trigger), request.build_absolute_uri(SUPPORT_PATH))
    return JsonResponse(document)


def _service_definition(request: HttpRequest, trigger: Trigger, call: marketo.IncomingCall) -> HttpResponse:
    answer = marketo.Answer(200, marketo.service_definition(trigger, _base_url(request, trigger)))
    marketo.call_log(trigger, call, answer, RequestOutcome.ACCEPTED, "Marketo read the service definition.")
    return JsonResponse(answer.body)


def _status(request: HttpRequest, trigger: Trigger, call: marketo.IncomingCall) -> HttpResponse:
    status = marketo.service_status(trigger)
    detail = f"Marketo checked the status: {len(status['errors'])} error(s), {len(status['warnings'])} warning(s)."
    marketo.call_log(trigger, call, marketo.Answer(200, {}), RequestOutcome.ACCEPTED, detail)
    return JsonResponse(status)


def _submit(request: HttpRequest, trigger: Trigger, call: marketo.IncomingCall) -> HttpResponse:
    answer = marketo.marketo_submit(trigger=trigger, call=call)
    return JsonResponse(answer.body, status=answer.status)


def _picklist(request: HttpRequest, trigger: Trigger, call: marketo.IncomingCall) -> HttpResponse:
    try:
        body = loads_storable(call.body) if call.body else {}
    except UnstorableJSON as error:
        return json_error_response(400, "invalid_json", str(error))
    name = body.get("name") if isinstance(body, dict) else None
    choices = marketo.picklist(trigger, name)
    if choices is None:
        return json_error_response(404, "not_found", f"No list of choices for {name!r}.")
    return JsonResponse(choices)


def _icon(request: HttpRequest, trigger: Trigger, call: marketo.IncomingCall) -> HttpResponse:
    response = HttpResponse(marketo.SERVICE_ICON, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response


service_definition = require_GET(_keyed("/getServiceDefinition", _service_definition))
status = require_GET(_keyed("/status", _status))
submit_async_action = require_POST(_keyed("/submitAsyncAction", _submit))
get_picklist = require_POST(_keyed("/getPicklist", _picklist))
service_icon = require_GET(_keyed("/serviceIcon", _icon))
