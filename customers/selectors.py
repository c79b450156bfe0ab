"""Reads for customers and test users, always scoped to one environment."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404

from workbench.models import Environment

from .models import Customer, Event, TestUser


def customer_list(*, environment: Environment, search: str = "") -> QuerySet[Customer]:
    """Customers of the environment; `search` matches userId, name or email."""
    customers = Customer.objects.filter(environment=environment)
    search = search.strip()
    if search:
        customers = customers.filter(
            Q(user_id__icontains=search) | Q(name__icontains=search) | Q(email__icontains=search)
        )
    return customers.order_by("user_id")


def customer_get(*, environment: Environment, user_id: str) -> Customer:
    customer = Customer.objects.filter(environment=environment, user_id=user_id).first()
    if customer is None:
        raise Http404("No such customer")
    return customer


def event_list_for_user(*, environment: Environment, user_id: str) -> QuerySet[Event]:
    """A customer's custom events, newest first (the (environment, user_id, name, occurred_at)
    index finds them; slice the queryset for the most recent)."""
    return Event.objects.filter(environment=environment, user_id=user_id).order_by("-occurred_at", "-id")


def testuser_list(*, environment: Environment) -> QuerySet[TestUser]:
    return TestUser.objects.filter(environment=environment).select_related("membership__user")


def testuser_get(*, environment: Environment, test_user_id: int) -> TestUser:
    test_user = testuser_list(environment=environment).filter(pk=test_user_id).first()
    if test_user is None:
        raise Http404("No such test user")
    return test_user


def testuser_ids(*, environment: Environment) -> set[str]:
    return set(TestUser.objects.filter(environment=environment).values_list("user_id", flat=True))
