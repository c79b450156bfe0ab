"""The Workbench shell: which environment a page is about, and who may see or change it."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django_htmx.middleware import HtmxDetails

from .models import Environment, Membership, Role
from .selectors import membership_get

View = Callable[..., HttpResponse]


class WorkbenchRequest(HttpRequest):
    """A request to an environment's page, as the view sees it once `environment_page` let it
    in: the environment, the member's membership, and django-htmx's details (`htmx`)."""

    environment: Environment
    membership: Membership
    htmx: HtmxDetails


def environment_page(minimum_role: str = Role.VIEWER) -> Callable[[View], View]:
    """Decorate a view taking `env` (a slug): members only, at least `minimum_role`.

    Non-members get 404, exactly as if the environment did not exist; members below the
    role get 403. The view finds `request.environment` and `request.membership` set.
    """

    def decorate(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, env: str, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = membership_get(user=request.user, environment_slug=env)
            page_request = cast(WorkbenchRequest, request)
            # Set before the role check, so that the 403 page keeps the environment's shell.
            page_request.membership = membership
            page_request.environment = membership.environment
            if not membership.has_role(minimum_role):
                raise PermissionDenied(f"This needs the {minimum_role} role.")
            return view(page_request, *args, **kwargs)

        return wrapper

    return decorate


def current_membership(request: WorkbenchRequest) -> Membership:
    """The membership `environment_page` resolved for this request."""
    return request.membership


def can_edit(request: HttpRequest) -> bool:
    membership = getattr(request, "membership", None)
    return membership is not None and membership.has_role(Role.EDITOR)
