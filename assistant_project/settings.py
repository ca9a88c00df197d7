"""Settings, read only from environment variables (see the table in README.md).

Parsing is strict: a malformed value stops start-up with a message naming the variable.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

# Lets classes such as admin.ModelAdmin[Model] be subscripted at run time, as the type stubs allow.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def _bool(name: str, default: bool) -> bool:
    """A boolean that must be spelled true/false/1/0/yes/no; anything else is an error."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def _int(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def _list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = _bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it to a long random string "
            '(python -c "import secrets; print(secrets.token_urlsafe(50))"), '
            "or set DEBUG=true for local development."
        )
    SECRET_KEY = "insecure-debug-only-key"  # noqa: S105 - only reachable with DEBUG on

# Provider API keys are encrypted with these (Fernet keys, comma-separated, newest first); never
# with SECRET_KEY, so that one leaking does not expose the other.
ENCRYPTION_KEYS = _list("ENCRYPTION_KEYS", [])
for _key in ENCRYPTION_KEYS:
    try:
        if len(base64.urlsafe_b64decode(_key.encode())) != 32:
            raise ValueError
    except (ValueError, binascii.Error):
        raise ImproperlyConfigured(
            "ENCRYPTION_KEYS must hold Fernet keys (32 url-safe base64-encoded bytes), comma-separated"
        ) from None
if not ENCRYPTION_KEYS and not DEBUG:
    raise ImproperlyConfigured(
        "ENCRYPTION_KEYS is not set. It encrypts provider API keys at rest; generate one with "
        '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.'
    )
if SECRET_KEY in ENCRYPTION_KEYS:
    raise ImproperlyConfigured("ENCRYPTION_KEYS must not contain SECRET_KEY")

ALLOWED_HOSTS = _list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = _list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "csp",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "assistant_project.accounts",
    "providers",
    "chat",
    "documents",
    "audio",
    "analytics",
]

MIDDLEWARE = [
    "assistant_project.request_log.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "assistant_project.api_errors.DatabaseOutageMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "assistant_project.urls"

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
                "assistant_project.context_processors.navigation",
                "assistant_project.context_processors.budget",
            ],
        },
    },
]

WSGI_APPLICATION = "assistant_project.wsgi.application"
ASGI_APPLICATION = "assistant_project.asgi.application"

try:
    DATABASES = {"default": env.db_url("DATABASE_URL")}
except ImproperlyConfigured:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. `make run` and `make test` start an embedded PostgreSQL "
        "and set it for you; otherwise set it, e.g. postgres://user:pass@host:5432/assistant"
    ) from None
except Exception as exc:  # environ raises several types for a malformed URL
    raise ImproperlyConfigured(f"DATABASE_URL is malformed: {exc}") from None
DATABASES["default"]["CONN_MAX_AGE"] = _int("DB_CONN_MAX_AGE", 0, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
# A psycopg connection pool per process (Django 5.1+): streams give their connection back while
# they wait on a provider, and taking one again is cheap. DB_POOL_SIZE connections at most.
DB_POOL_SIZE = _int("DB_POOL_SIZE", 0, minimum=0)
if DB_POOL_SIZE:
    if DATABASES["default"]["CONN_MAX_AGE"]:
        raise ImproperlyConfigured("DB_POOL_SIZE and DB_CONN_MAX_AGE cannot both be set: the pool keeps connections.")
    DATABASES["default"]["OPTIONS"]["pool"] = {"min_size": 1, "max_size": DB_POOL_SIZE, "timeout": 10}

REDIS_URL = os.environ.get("REDIS_URL", "")
if not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_URL is not set. `make run` and `make test` start an embedded Redis and set it "
        "for you; otherwise set it, e.g. redis://localhost:6379/0"
    )
if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"REDIS_URL must start with redis://, rediss:// or unix://, not {REDIS_URL!r}")

CACHES = {
    "default": {
        "BACKEND": "assistant_project.cache.SharedPoolRedisCache",
        "LOCATION": REDIS_URL,
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Sign-in attempts: failures allowed per account and per client address within the lockout window.
LOGIN_MAX_FAILURES = _int("LOGIN_MAX_FAILURES", 5, minimum=1)
LOGIN_MAX_FAILURES_PER_ADDRESS = _int("LOGIN_MAX_FAILURES_PER_ADDRESS", 20, minimum=1)
LOGIN_LOCKOUT_SECONDS = _int("LOGIN_LOCKOUT_SECONDS", 900, minimum=1)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

VAR_DIR = Path(os.environ.get("VAR_DIR", "") or BASE_DIR / "var")
STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", "") or VAR_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", "") or VAR_DIR / "media")
MEDIA_URL = "/media/"
STORAGES: dict[str, Any] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Tests render pages without running collectstatic first.
WHITENOISE_USE_FINDERS = DEBUG or _bool("WHITENOISE_USE_FINDERS", False)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# HTTPS=true when the site is served over TLS (production): plain-HTTP requests are redirected,
# cookies are sent over HTTPS only, and browsers are told to keep to HTTPS (HSTS). Behind a proxy
# that ends TLS, TRUST_X_FORWARDED_PROTO=true makes its X-Forwarded-Proto header count.
HTTPS = _bool("HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
# Health checks and metrics scrapes come from inside the deployment, often over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]
if _bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = _int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = _bool("SECURE_HSTS_PRELOAD", True)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# Content Security Policy (django-csp): scripts, styles and everything else from this origin only;
# no inline script or style, no eval, no framing. Pages link their scripts from static/js.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "media-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Celery: Redis is both broker and result store.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = _int("CELERY_TASK_TIME_LIMIT", 600, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = max(1, CELERY_TASK_TIME_LIMIT - 30)
CELERY_WORKER_CONCURRENCY = _int("CELERY_WORKER_CONCURRENCY", 2, minimum=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "assistant")
# Workers log through LOGGING below (JSON lines, secrets scrubbed), not Celery's own set-up.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Chat: the longest message accepted, and the longest an answer may stream.
CHAT_MAX_MESSAGE_CHARS = _int("CHAT_MAX_MESSAGE_CHARS", 32000, minimum=1)
CHAT_STREAM_MAX_SECONDS = _int("CHAT_STREAM_MAX_SECONDS", 600, minimum=10)
# A streaming answer untouched this long lost the process streaming it (streams save or send a
# heartbeat every 5 s at most); it is marked interrupted, keeping its partial text.
CHAT_STREAM_STALE_SECONDS = _int("CHAT_STREAM_STALE_SECONDS", 60, minimum=2)

# The largest request body on routes that take no upload (JSON bodies: long chat contexts with
# images); upload routes have their own limits below. Bigger bodies are refused before being read.
REQUEST_MAX_BYTES = _int("REQUEST_MAX_BYTES", 10 * 2**20, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES

# Documents: uploads, ingestion, retrieval.
DOCUMENT_MAX_BYTES = _int("DOCUMENT_MAX_BYTES", 20 * 2**20, minimum=1024)
DOCUMENT_MAX_FILES = _int("DOCUMENT_MAX_FILES", 20, minimum=1)
DOCUMENT_INGEST_TIME_LIMIT = _int("DOCUMENT_INGEST_TIME_LIMIT", 600, minimum=10)
DOCUMENTS_EMBEDDING_GROUP = os.environ.get("DOCUMENTS_EMBEDDING_GROUP", "") or "local-embed"
DOCUMENTS_RERANK_GROUP = os.environ.get("DOCUMENTS_RERANK_GROUP", "")
DOCUMENTS_HNSW_EF_SEARCH = _int("DOCUMENTS_HNSW_EF_SEARCH", 100, minimum=10)

# Audio: uploads, the length transcribed, the text spoken, and the model groups used.
AUDIO_MAX_BYTES = _int("AUDIO_MAX_BYTES", 25 * 2**20, minimum=1024)
AUDIO_MAX_SECONDS = _int("AUDIO_MAX_SECONDS", 1800, minimum=1)
SPEECH_MAX_CHARS = _int("SPEECH_MAX_CHARS", 4096, minimum=1)
AUDIO_TRANSCRIPTION_GROUP = os.environ.get("AUDIO_TRANSCRIPTION_GROUP", "") or "local-stt"
AUDIO_SPEECH_GROUP = os.environ.get("AUDIO_SPEECH_GROUP", "") or "local-tts"

HEALTH_CHECK_TIMEOUT = _int("HEALTH_CHECK_TIMEOUT", 2, minimum=1)
# Deployment health is judged on the calls of this many recent seconds.
HEALTH_WINDOW = _int("HEALTH_WINDOW", 900, minimum=60)
# Seconds between periodic probes of deployments (0 turns them off). Paid providers are probed only
# when an operator turns probing on for the deployment.
PROBE_INTERVAL = _int("PROBE_INTERVAL", 300, minimum=0)
# Analytics: raw call rows are kept this many days (hourly roll-ups are kept for good); /metrics is
# served to staff, and to these client addresses (e.g. a Prometheus server).
ANALYTICS_RETENTION_DAYS = _int("ANALYTICS_RETENTION_DAYS", 90, minimum=1)
METRICS_ALLOWED_IPS = _list("METRICS_ALLOWED_IPS", [])
# Recovery: every RECOVERY_INTERVAL seconds (and when a worker starts) documents and transcriptions
# whose task was lost are sent again; one mid-way with no progress for TASK_STALE_SECONDS counts as
# lost (longer than any task may run), as does a streaming answer silent for CHAT_STREAM_STALE_SECONDS.
RECOVERY_INTERVAL = _int("RECOVERY_INTERVAL", 60, minimum=1)
TASK_STALE_SECONDS = _int(
    "TASK_STALE_SECONDS", max(DOCUMENT_INGEST_TIME_LIMIT + 30, CELERY_TASK_TIME_LIMIT) + 60, minimum=1
)
CELERY_BEAT_SCHEDULE: dict[str, Any] = {
    "analytics-rollup": {"task": "analytics.rollup", "schedule": 300},
    "analytics-prune": {"task": "analytics.prune", "schedule": 86400},
    "recover-documents": {"task": "documents.recover", "schedule": RECOVERY_INTERVAL},
    "recover-transcriptions": {"task": "audio.recover", "schedule": RECOVERY_INTERVAL},
    "interrupt-stale-streams": {"task": "chat.interrupt_stale_streams", "schedule": RECOVERY_INTERVAL},
}
if PROBE_INTERVAL:
    CELERY_BEAT_SCHEDULE["probe-deployments"] = {"task": "providers.probe_deployments", "schedule": PROBE_INTERVAL}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "assistant_project.accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "assistant_project.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Universal AI Assistant Platform API",
    "DESCRIPTION": "Chat, documents, audio and analytics over many LLM providers.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "assistant_project.api_schema.add_error_responses",
    ],
}

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not {LOG_LEVEL!r}")

LOG_FORMAT = os.environ.get("LOG_FORMAT", "json").lower()
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, not {LOG_FORMAT!r}")
# Loggers that write request payloads at DEBUG (the provider SDK's request dumps: prompts, documents;
# SQL with its parameters) stay at WARNING unless LOG_CONTENT=true, whatever LOG_LEVEL says.
LOG_CONTENT = _bool("LOG_CONTENT", False)
PAYLOAD_LOGGERS = ("openai", "httpx", "httpcore", "urllib3", "django.db.backends")

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "json_line": {"format": "%(message)s"},
    },
    "filters": {"redact_secrets": {"()": "providers.redaction.RedactSecretsFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["redact_secrets"]},
        "requests": {"class": "logging.StreamHandler", "formatter": "json_line", "filters": ["redact_secrets"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # One JSON object per line and request (assistant_project.request_log).
        "assistant.requests": {"handlers": ["requests"], "level": "INFO", "propagate": False},
        **({} if LOG_CONTENT else {name: {"level": "WARNING"} for name in PAYLOAD_LOGGERS}),
        # LiteLLM's loggers carry their own handlers; the gateway removes them so that every line
        # goes through the redaction filter above.
        # LOG_CONTENT=true lets their DEBUG lines (whole requests) through.
        **{
            name: {"level": "DEBUG" if LOG_CONTENT else "ERROR", "propagate": True}
            for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")
        },
    },
}
