"""Settings for the Action Flow Workbench.

Everything comes from environment variables, parsed by the small strict helpers below
(healthchecks' style): a bad value stops start-up with ImproperlyConfigured instead of
silently falling back. The defaults give a working single-machine setup: SQLite and
in-process background work. Production differs only by environment variables.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def envint(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in envstr(name, default).split(",") if item.strip()]


def envnetworks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for item in envlist(name):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an IP address or CIDR range") from None
    return networks


DEBUG = envbool("DJANGO_DEBUG", False)
# The development key is only acceptable when debugging locally.
SECRET_KEY = envstr("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS")
# Proxies whose X-Forwarded-For hops are honoured (addresses or CIDR ranges).
TRUSTED_PROXIES = envnetworks("TRUSTED_PROXIES")
# Outbound calls (Marketo callbacks) go only to https URLs whose host resolves to a public
# address; 1 lifts both rules (tests with a local receiver, on-premises callback targets).
OUTBOUND_ALLOW_PRIVATE = envbool("OUTBOUND_ALLOW_PRIVATE", False)

# Cookies are secure unless we are debugging on this machine over plain HTTP.
SECURE_COOKIES = envbool("DJANGO_SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if envbool("DJANGO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Only a deployment that is known to be served over HTTPS may tell browsers to insist on
    # it (SecurityMiddleware sends the header on HTTPS requests only). Subdomains are left out:
    # they may be other services, not all on HTTPS.
    SECURE_HSTS_SECONDS = 365 * 24 * 3600
    SECURE_HSTS_INCLUDE_SUBDOMAINS = False

# Content-Security-Policy (django-csp). The pages load nothing from other origins and run no
# inline script: htmx and the few page scripts are static files. Styles are 'self' too: the
# templates use no style attributes or <style> blocks, and htmx's injected indicator styles
# are switched off in base.html (they live in workbench.css). The API docs page adds only
# `data:` images (workbench/urls.py); its inline style and script are files there.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# Failed log-ins and failed OAuth2 client authentications allowed per window before further
# attempts are refused with 429 (workbench.security explains the two counters).
AUTH_FAILURE_WINDOW_SECONDS = envint("AUTH_FAILURE_WINDOW_SECONDS", 60)
AUTH_FAILURES_PER_ADDRESS = envint("AUTH_FAILURES_PER_ADDRESS", 10)
AUTH_FAILURES_PER_ACCOUNT = envint("AUTH_FAILURES_PER_ACCOUNT", 30)
RATELIMIT_IP_META_KEY = "workbench.security.client_ip"
# A cache outage must not stop every log-in and token: the secret is the gate, the limit a brake.
RATELIMIT_FAIL_OPEN = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "oauth2_provider",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "import_export",
    "workbench",
    "customers",
    "segments",
    "flows",
    "triggers",
]

MIDDLEWARE = [
    "workbench.middleware.ApiGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: it needs the user, and its 404 must pass CommonMiddleware's APPEND_SLASH redirect.
    "workbench.error_pages.WorkbenchErrorPagesMiddleware",
]

ROOT_URLCONF = "workbench.urls"
WSGI_APPLICATION = "workbench.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "workbench.context_processors.workbench_shell",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
# SQLite by default. WAL, immediate transactions and a busy timeout let the embedded
# default take concurrent requests without "database is locked" failures.
SQLITE_PATH = Path(envstr("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")))
DATABASE_URL = envstr("DATABASE_URL")
# The hot paths (starts, webhooks, API authentication) prepare their statements on
# PostgreSQL (workbench.raw_rows.prepared_cursor). Behind a transaction-mode pooler such as
# PgBouncer, which may hand each statement another server connection, set this to 0.
DATABASE_PREPARED_STATEMENTS = envbool("DATABASE_PREPARED_STATEMENTS", True)
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", 60))}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, with a health check that needs no round trip per request.
        DATABASES["default"]["ENGINE"] = "workbench.postgresql"
        DATABASES["default"].setdefault("OPTIONS", {})
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
        if DATABASE_PREPARED_STATEMENTS:
            # psycopg prepares no statement while this is None (Django's default); a threshold
            # no statement reaches prepares only those executed with prepare=True.
            DATABASES["default"]["OPTIONS"]["prepare_threshold"] = 2**31 - 1
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(SQLITE_PATH),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed names and compression in production (after `collectstatic`); plain while debugging.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Cache ----------------------------------------------------------------------------
# Rate-limit counters live here. The default is per process; with several gunicorn workers
# or machines set CACHE_URL (redis://host:6379/1) so that they share one count.
CACHE_URL = envstr("CACHE_URL")
if CACHE_URL and not CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"CACHE_URL must be a redis://, rediss:// or unix:// URL, got {CACHE_URL!r}")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    if CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

# --- Request limits -------------------------------------------------------------------
API_MAX_BODY_BYTES = 1024 * 1024  # SPEC section 3: 1 MiB
CSV_MAX_BODY_BYTES = 128 * 1024 * 1024  # SPEC section 3: CSV uploads 128 MiB
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
BATCH_UPSERT_MAX_PROFILES = 1000

# --- REST API and OAuth2 --------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["workbench.authentication.CredentialTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["workbench.parsers.StorableJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "workbench.api_errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

OAUTH2_PROVIDER = {
    "SCOPES": {
        "events": "Start flows, send events and customer data",
        "workbench": "Read and change configuration",
        "auth": "Manage credentials",
    },
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
    "OAUTH2_VALIDATOR_CLASS": "workbench.oauth.CredentialOAuth2Validator",
    "PKCE_REQUIRED": False,
}

# Named explicitly so that migrations can reference the swappable OAuth2 models.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"

SPECTACULAR_SETTINGS = {
    "TITLE": "Action Flow Workbench API",
    "DESCRIPTION": "Start Action Flows, send customer data and events, and manage configuration.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Request components of their own: they carry minLength 1 for non-blank fields and
    # additionalProperties false for serializers that refuse unknown fields (workbench.schema).
    "COMPONENT_SPLIT_REQUEST": True,
    # Several choice sets share a field name (status, type, mode): each gets a name of its own.
    "ENUM_NAME_OVERRIDES": {
        "FlowStatusEnum": "flows.models.FlowStatus",
        "InvocationStatusEnum": "flows.models.InvocationStatus",
        "RunStatusEnum": "flows.models.RunStatus",
        "StartModeEnum": "flows.models.Mode",
        "TriggerTypeEnum": "triggers.models.TriggerType",
        "TriggerModeEnum": "triggers.models.TriggerMode",
        "MemberTriggerModeEnum": ["test", "live", "disabled"],
        "MappingTypeEnum": "triggers.mapping.MAPPING_TYPES",
        "StartStatusEnum": ["accepted", "duplicate"],
        "StepTypeEnum": ["send_card", "wait"],
        "WebhookTypeEnum": ["webhook"],
        "CsvTaskStatusEnum": "triggers.models.CsvTaskStatus",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "workbench.schema.document_non_drf_endpoints",
    ],
}

# --- Background work ------------------------------------------------------------------
# Without a broker, tasks run in-process (the embedded default for `make run`).
_broker_url = envstr("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = not _broker_url
# Never used in eager mode; named so that Celery does not look for a broker on localhost.
CELERY_BROKER_URL = _broker_url or "memory://localhost/"
CELERY_TASK_EAGER_PROPAGATES = True
# Redis and SQS redeliver an unacknowledged message after this long: it must outlast the
# longest task. Nothing is sent with a countdown or eta (the sweep resumes waits).
CELERY_VISIBILITY_TIMEOUT = envint("CELERY_VISIBILITY_TIMEOUT", 3600)
CELERY_TASK_SOFT_TIME_LIMIT = envint("CELERY_TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", 330)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_TASK_DEFAULT_QUEUE = envstr("CELERY_QUEUE", "workbench")
# Executing runs (publishing cards) may have workers of its own: with CELERY_RUNS_QUEUE set,
# `flows.execute_runs` goes to that queue (`celery -A workbench worker -Q <it>`) and a burst of
# cards never delays intake (fan-outs, CSV tasks, segment work) on the default queue.
CELERY_RUNS_QUEUE = envstr("CELERY_RUNS_QUEUE", "")
CELERY_TASK_ROUTES = {"flows.execute_runs": {"queue": CELERY_RUNS_QUEUE}} if CELERY_RUNS_QUEUE else {}
# Without a broker there is no `celery beat`: `make run` runs the same schedule in-process.
INPROCESS_BEAT = envbool("WORKBENCH_INPROCESS_BEAT", False)
# The sweep resends committed work nobody picked up and is the only thing that resumes `wait`
# steps: its interval is a wait's resolution (a 1 s wait resumes after 1 to 2 s).
SWEEP_INTERVAL_SECONDS = envint("SWEEP_INTERVAL_SECONDS", 1)
if SWEEP_INTERVAL_SECONDS < 1:
    raise ImproperlyConfigured(f"SWEEP_INTERVAL_SECONDS must be at least 1, got {SWEEP_INTERVAL_SECONDS}")
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {"task": "workbench.record_worker_heartbeat", "schedule": 60.0},
    "flows-sweep": {"task": "flows.sweep", "schedule": float(SWEEP_INTERVAL_SECONDS)},
    "triggers-prune-request-log": {"task": "triggers.prune_request_log", "schedule": 3600.0},
    "triggers-resend-member-backfills": {"task": "triggers.resend_member_backfills", "schedule": 30.0},
    "triggers-resend-csv-tasks": {"task": "triggers.resend_csv_tasks", "schedule": 30.0},
    "triggers-resend-manual-sends": {"task": "triggers.resend_manual_sends", "schedule": 30.0},
    # Marketo: batches nobody processed and callbacks that are due (retries with backoff).
    "triggers-marketo-sweep": {"task": "triggers.marketo_sweep", "schedule": 5.0},
    "customers-prune-message-keys": {"task": "customers.prune_message_keys", "schedule": 3600.0},
    # Segments: evaluations and marks nobody picked up are sent again; time-relative rules are
    # re-checked every minute (SPEC section 5: "at least every minute").
    "segments-sweep": {"task": "segments.sweep", "schedule": 5.0},
    "segments-time-recheck": {"task": "segments.time_recheck", "schedule": 60.0},
}

# Committed work that nobody picked up for this long is sent again by the sweep.
SWEEP_STALE_SECONDS = envint("SWEEP_STALE_SECONDS", 30)
# Segments: a statement of one segment's evaluation that runs longer fails that segment only; a
# full evaluation's lease (renewed at every batch) lets another worker take over a dead one's;
# customers flipped per transaction (each holds one advisory lock per customer: keep it under
# PostgreSQL's max_locks_per_transaction).
SEGMENT_STATEMENT_TIMEOUT_MS = envint("SEGMENT_STATEMENT_TIMEOUT_MS", 60_000)
SEGMENT_LEASE_SECONDS = envint("SEGMENT_LEASE_SECONDS", 30)
SEGMENT_EVALUATION_BATCH = envint("SEGMENT_EVALUATION_BATCH", 1000)

# --- Product limits -------------------------------------------------------------------
DEFAULT_MANUAL_SEND_LIMIT = 10_000

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    # In-process tasks would log every success into the server's console.
    "loggers": {"celery.app.trace": {"level": "WARNING" if CELERY_TASK_ALWAYS_EAGER else "INFO"}},
}
