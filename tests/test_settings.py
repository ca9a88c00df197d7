"""Settings come only from the environment, parsed strictly."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import ROOT


def load_settings(show: str = "DEBUG", **overrides: str | None) -> subprocess.CompletedProcess[str]:
    """Load the settings in a fresh process with these variables; prints ``NAME value`` of ``show``."""
    env = {key: value for key, value in os.environ.items() if key not in {"DEBUG", "SECRET_KEY"}}
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    code = f"import django; django.setup(); from django.conf import settings; print({show!r}, settings.{show})"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "assistant_project.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_secret_key_outside_debug_is_a_clear_error() -> None:
    result = load_settings(SECRET_KEY=None)
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set" in result.stderr


def test_debug_is_off_unless_set() -> None:
    result = load_settings(SECRET_KEY="x" * 50)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "DEBUG False"


def test_debug_on_allows_missing_secret_key() -> None:
    result = load_settings(DEBUG="true", SECRET_KEY=None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "DEBUG True"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG must be true or false, not 'maybe'"),
        ("CELERY_TASK_TIME_LIMIT", "ten", "CELERY_TASK_TIME_LIMIT must be an integer, not 'ten'"),
        ("CELERY_WORKER_CONCURRENCY", "0", "CELERY_WORKER_CONCURRENCY must be at least 1"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL must start with redis://"),
        ("REDIS_URL", None, "REDIS_URL is not set"),
        ("DATABASE_URL", None, "DATABASE_URL is not set"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be one of"),
        ("ENCRYPTION_KEYS", "not-a-fernet-key", "ENCRYPTION_KEYS must hold Fernet keys"),
        ("ENCRYPTION_KEYS", None, "ENCRYPTION_KEYS is not set"),
        ("HEALTH_WINDOW", "10", "HEALTH_WINDOW must be at least 60"),
    ],
)
def test_malformed_values_stop_start_up(name: str, value: str | None, message: str) -> None:
    result = load_settings("DEBUG", SECRET_KEY="x" * 50, **{name: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_encryption_keys_must_not_be_the_secret_key() -> None:
    key = "A" * 43 + "="
    result = load_settings("DEBUG", SECRET_KEY=key, ENCRYPTION_KEYS=key)
    assert result.returncode != 0
    assert "ENCRYPTION_KEYS must not contain SECRET_KEY" in result.stderr


PRODUCTION = {
    "DEBUG": "false",
    "HTTPS": "true",
    "ALLOWED_HOSTS": "assistant.example.com",
    "SECRET_KEY": "k3J9-vQ2xR7mZp4LwT8sYb1NcF6hGd0aUe5iOoKj2MnBqVrXyWz_3tHs",
}


def check_deploy(**overrides: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **PRODUCTION, **overrides, "DJANGO_SETTINGS_MODULE": "assistant_project.settings"}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_reports_nothing_with_production_settings() -> None:
    result = check_deploy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_flags_plain_http() -> None:
    """A control: without HTTPS the same check names what is missing."""
    result = check_deploy(HTTPS="false")
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


def test_https_settings_redirect_and_send_hsts_and_secure_cookies(db: None, settings: Any) -> None:
    from django.test import Client

    from tests.factories import PASSWORD, UserFactory

    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    UserFactory(username="dora")
    client = Client()
    plain = client.get("/accounts/login/")
    assert plain.status_code == 301
    assert plain["Location"] == "https://testserver/accounts/login/"
    assert client.get("/health").status_code != 301  # health checks from inside the deployment stay on HTTP

    page = client.get("/accounts/login/", secure=True)
    assert page["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert page["X-Content-Type-Options"] == "nosniff"
    assert page["Referrer-Policy"] == "same-origin"
    assert page["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in page["Content-Security-Policy"]
    assert page.cookies["csrftoken"]["secure"]
    signed_in = client.post(
        "/accounts/login/",
        {"username": "dora", "password": PASSWORD, "csrfmiddlewaretoken": page.cookies["csrftoken"].value},
        secure=True,
    )
    assert signed_in.status_code == 302
    assert signed_in.cookies["sessionid"]["secure"]
    assert signed_in.cookies["sessionid"]["httponly"]
