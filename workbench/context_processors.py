from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from .models import Role
from .selectors import membership_list_for_user


def workbench_shell(request: HttpRequest) -> dict[str, Any]:
    """The environment switcher and the current member's role, for every page."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    return {
        "memberships": membership_list_for_user(user=user),
        "current_environment": getattr(request, "environment", None),
        "current_membership": membership,
        "can_edit": membership is not None and membership.has_role(Role.EDITOR),
        "is_owner": membership is not None and membership.has_role(Role.OWNER),
    }
