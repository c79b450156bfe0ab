"""The Workbench shell: which environment a page is about, and who may see or change it."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from .models import Membership, Role
from .selectors import membership_get

View = Callable[..., HttpResponse]


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
            if not membership.has_role(minimum_role):
                raise PermissionDenied(f"This needs the {minimum_role} role.")
            request.membership = membership  # type: ignore[attr-defined]
            request.environment = membership.environment  # type: ignore[attr-defined]
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def current_membership(request: HttpRequest) -> Membership:
    """The membership `environment_page` resolved for this request."""
    return request.membership  # type: ignore[attr-defined]


def can_edit(request: HttpRequest) -> bool:
    membership = getattr(request, "membership", None)
    return membership is not None and membership.has_role(Role.EDITOR)
