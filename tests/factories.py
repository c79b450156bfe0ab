"""factory-boy factories for the models the suite builds directly.

Factories build fixtures only; what a test exercises goes through the product's services
and endpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import factory
from django.contrib.auth import get_user_model

from customers.models import Customer, TestUser
from workbench.models import Environment, Membership, Role

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password(PASSWORD)


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Environment
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"env-{n}")
    name = factory.LazyAttribute(lambda env: f"Environment {env.slug}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    environment = factory.SubFactory(EnvironmentFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.VIEWER


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    environment = factory.SubFactory(EnvironmentFactory)
    user_id = factory.Sequence(lambda n: f"customer-{n:05d}")
    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.LazyAttribute(lambda customer: f"{customer.user_id}@example.com")


class TestUserFactory(factory.django.DjangoModelFactory):
    # Not a test class: pytest collects only classes named *Tests.
    class Meta:
        model = TestUser

    environment = factory.SubFactory(EnvironmentFactory)
    user_id = factory.Sequence(lambda n: f"tester-{n}")
    name = factory.Sequence(lambda n: f"Tester {n}")


def flow_started_at(
    moment: Any,
    *,
    flow: Any,
    user_ids: Sequence[str],
    mode: str = "live",
    failing: Sequence[str] = (),
    source: str = "api",
) -> Any:
    """History for analytics (analytics helper): start `flow` through the start pipeline as if
    at `moment`: accepted, fanned out and run then; the runs of `failing` user ids fail.
    Returns the invocation. Test starts reach only the environment's test users."""
    from unittest import mock

    from django.db import transaction

    from flows import services
    from flows.models import Invocation
    from flows.selectors import flow_for_start

    real_card_for = services._card_for

    def card_for(run: Any, *args: Any) -> Any:
        if run.user_id in failing:
            raise RuntimeError("The card's image could not be loaded")
        return real_card_for(run, *args)

    # The pipeline's own fan-out runs after commit and then finds the work done.
    with transaction.atomic():
        result = services.invocations_accept(
            flow=flow_for_start(flow=flow),
            mode=mode,
            starts=services.start_requests_check({"targetUserIds": list(user_ids)}),
            source=source,
        )
        invocation_id = result.outcomes[0].invocation_id
        Invocation.objects.filter(pk=invocation_id).update(created_at=moment)
        with (
            mock.patch("django.utils.timezone.now", return_value=moment),
            mock.patch.object(services, "_card_for", card_for),
        ):
            for chunk in services.invocations_fan_out(invocation_ids=[invocation_id]):
                services.runs_execute(run_ids=chunk)
    return Invocation.objects.get(pk=invocation_id)
