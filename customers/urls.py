"""Workbench pages for customers, under /e/<env>/: the environment's home, customers, test users."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import views

urlpatterns: list[URLPattern] = [
    path("", views.environment_home, name="environment_home"),
    path("customers/", views.customer_list, name="customer_list"),
    path("customers/<path:user_id>", views.customer_detail, name="customer_detail"),
    path("test-users/", views.testuser_list, name="test_user_list"),
    path("test-users/new", views.testuser_create, name="test_user_create"),
    path("test-users/mine", views.my_test_user_set, name="my_test_user_set"),
    path("test-users/<int:test_user_id>/delete", views.testuser_delete, name="test_user_delete"),
]
