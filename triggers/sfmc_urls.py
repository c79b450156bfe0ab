"""The public Marketing Cloud activity URLs under /integrations/sfmc/<token>/ (SPEC section 7),
and their thin edges over `triggers.sfmc`: no OAuth, no CSRF (Journey Builder calls them), JSON
answers, except the base itself, the configuration inspector page that Journey Builder frames.

The inspector is the one page of the site that may be framed, and only by Marketing Cloud's
hosts: its Content-Security-Policy's `frame-ancestors` names them (`sfmc.FRAME_ANCESTORS`) and
it is exempt from `X-Frame-Options: DENY`, which would forbid every frame whatever the policy
says (a browser honouring both takes the stricter). Every other page keeps DENY.
"""

from __future__ import annotations

from collections.abc import Callable

from csp.decorators import csp_replace
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import URLPattern, path
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from workbench.api_errors import json_error_response

from . import sfmc
from .intake import IncomingRequest

ICON = "img/sfmc-activity.png"


def _incoming(request: HttpRequest) -> IncomingRequest | JsonResponse:
    try:
        body = request.body
    except RequestDataTooBig:
        return json_error_response(413, "payload_too_large", "The request body is over the limit of 1 MiB.")
    headers = {name.lower(): value for name, value in request.headers.items()}
    headers[sfmc.LOGGED_PATH] = request.path
    return IncomingRequest(
        method=request.method or "POST",
        headers=headers,
        query={key: request.GET.getlist(key)[-1] for key in request.GET},
        body=body,
        remote_addr=request.META.get("REMOTE_ADDR", ""),
        forwarded_for=request.META.get("HTTP_X_FORWARDED_FOR"),
    )


def _not_found() -> JsonResponse:
    return json_error_response(404, "not_found", "No Marketing Cloud activity at this URL.")


def _base_url(request: HttpRequest, token: str) -> str:
    return request.build_absolute_uri(f"/integrations/sfmc/{token}/")


@require_GET
@xframe_options_exempt
@csp_replace({"frame-ancestors": sfmc.FRAME_ANCESTORS})  # type: ignore[arg-type]  # its stubs: views of one argument
def inspector(request: HttpRequest, token: str) -> HttpResponse:
    """The configuration inspector Journey Builder shows for the activity (Postmonger)."""
    target = sfmc.sfmc_target(token=token)
    if target is None:
        return _not_found()
    trigger = target.trigger
    context = {
        "trigger": trigger,
        "flow_name": trigger.flow.name,
        "in_arguments": sfmc.sfmc_config(trigger).get("inArguments") or sfmc.DEFAULT_IN_ARGUMENTS,
        "execute_url": _base_url(request, token) + "execute",
        "icon": static(ICON),
    }
    return render(request, "triggers/sfmc_inspector.html", context)


@require_GET
def config_json(request: HttpRequest, token: str) -> JsonResponse:
    target = sfmc.sfmc_target(token=token)
    if target is None:
        return _not_found()
    config = sfmc.activity_config(
        trigger=target.trigger,
        base_url=_base_url(request, token),
        icon_url=request.build_absolute_uri(static(ICON)),
    )
    return JsonResponse(config, json_dumps_params={"ensure_ascii": False})


@csrf_exempt
@require_POST
def execute(request: HttpRequest, token: str) -> JsonResponse:
    incoming = _incoming(request)
    if isinstance(incoming, JsonResponse):
        return incoming
    answer = sfmc.sfmc_execute(token=token, request=incoming)
    return JsonResponse(answer.body, status=answer.status)


def _config_call(call: str) -> Callable[[HttpRequest, str], JsonResponse]:
    @csrf_exempt
    @require_POST
    def view(request: HttpRequest, token: str) -> JsonResponse:
        incoming = _incoming(request)
        if isinstance(incoming, JsonResponse):
            return incoming
        answer = sfmc.sfmc_config_call(token=token, call=call, request=incoming)
        return JsonResponse(answer.body, status=answer.status)

    view.__name__ = f"sfmc_{call}"
    return view


urlpatterns: list[URLPattern] = [
    path("<str:token>/", inspector, name="sfmc_inspector"),
    path("<str:token>/config.json", config_json, name="sfmc_config_json"),
    path("<str:token>/execute", execute, name="sfmc_execute"),
    *[path(f"<str:token>/{call}", _config_call(call), name=f"sfmc_{call}") for call in sfmc.CONFIG_CALLS],
]
