"""factory-boy factories for the models the suite builds directly.

Factories build fixtures only; what a test exercises goes through the product's services
and endpoints.
"""

from __future__ import annotations

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
