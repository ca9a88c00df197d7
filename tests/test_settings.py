"""Settings come only from the environment, parsed strictly."""

from __future__ import annotations

import os
import subprocess
import sys

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
