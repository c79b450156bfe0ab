"""Test settings: the only overrides the suite needs."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "*")

from . import settings
from .settings import *  # noqa: F403

STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
# The suite runs tasks in-process (eagerly) even when a broker is configured; the service
# tests switch that off and talk to a real worker, whose processes get WORKBENCH_TEST_EAGER=0.
CELERY_TASK_ALWAYS_EAGER = os.environ.get("WORKBENCH_TEST_EAGER", "1") == "1"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_COOKIES = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
# Serve static files from the apps and static/ directly, as `runserver` does (no collectstatic).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# Marketo callbacks in the tests go to a receiver on 127.0.0.1 over http (the tests of the
# guard itself switch this off).
OUTBOUND_ALLOW_PRIVATE = os.environ.get("OUTBOUND_ALLOW_PRIVATE", "1") == "1"
